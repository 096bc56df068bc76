"""Kafka: the [[kafka]] section (one element per cluster) and the ``kafka`` handler.

Each alert becomes one Kafka message on the handler's topic: the key is the alert ID and
the value the alert JSON as Kapacitor writes it (Go's ``json.Encoder``, so with a
trailing newline) or, with a ``template``, that Go template rendered with the alert data
Kapacitor gives it (``.ID .Message .Details .Time .Duration .Level .Data
.PreviousLevel .Recoverable``).

TICKscript::

    |alert()
        .kafka()
            .cluster('prod')               // the [[kafka]] element's id
            .kafkaTopic('alerts')          // the Kafka topic (required)
            .template('{{.ID}}: {{.Message}}')
            .partitionHashAlgorithm('murmur2')
            .disablePartitionById()

Topic handler (``kind: kafka``) options: ``cluster``, ``topic``, ``template``,
``disablePartitionById``, ``partitionAlgorithm``.

Partitioning: by default, as Kapacitor 1.5.7's writer (kafka-go's LeastBytes balancer)
does, each message goes to the partition that has had the fewest bytes (keys and
values) from this writer so far, the lowest-numbered one on a tie, so the first message
goes to the first partition. ``partitionHashAlgorithm`` (Kapacitor 1.6) makes the alert
ID's hash choose instead, so one alert always lands in the same partition: ``crc32``
(also called ``crc32c``) is ``crc32(id) % partitions``; ``murmur2`` is Kafka's Java
partitioner; ``murmur3`` and ``fnv-1a`` take the 32-bit hash as a signed number, as
sarama does. ``disablePartitionById`` spreads messages over the partitions in turn.

Delivery: the ``kafka`` service keeps one writer per cluster and topic. A writer sends
with ``acks=-1`` (all in-sync replicas have stored it, kafka-go's default), asks the
broker to answer within ``timeout`` less one second as kafka-go does, and waits at
most ``timeout`` (0 means 10s) for the broker. As kafka-go batches them, each
partition's messages go together, one Produce request per partition, once
``batch-size`` (0 means 100) of them are waiting or ``batch-timeout`` (0 means 1s) after
the first of them arrived, whichever comes first. A failed delivery fails the handler, which is logged as
"alert handler failed" with the broker's error, and the task goes on.

Connections use TLS with ``use-ssl`` (``ssl-ca``, ``ssl-cert``, ``ssl-key``,
``insecure-skip-verify``) and SASL when ``sasl-username`` or ``sasl-mechanism`` is set:
PLAIN (the default), SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER, with
``sasl_extensions``; ``sasl-version`` 0 or 1 (the default) selects the handshake. The
OAUTHBEARER token is the static ``sasl-access-token``, or one fetched with OAuth 2.0
client credentials (``sasl-oauth-client-id``/``-secret`` at ``sasl-oauth-token-url``, or
Auth0 / Azure AD through ``sasl-oauth-service``; see :mod:`.oauth2_token`) and renewed
before it expires. GSSAPI (Kerberos) is refused with a clear error.
"""

from __future__ import annotations

import itertools
import math
import random
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from kapa_core.plugin_api import (
    TLS,
    ConfigError,
    Duration,
    Event,
    HandlerError,
    HandlerKind,
    KapaError,
    Section,
    ServiceContext,
    TemplateError,
    TLSFileError,
    hookimpl,
    option,
    parse_template,
    require_choice,
    setting,
    unique_elements,
)

from . import kafka_wire as wire
from .oauth2_token import SERVICES as OAUTH_SERVICES
from .oauth2_token import ClientCredentials, TokenError

SASL_MECHANISMS = ("", "PLAIN", "OAUTHBEARER", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI")
DEFAULT_TIMEOUT = 10.0
DEFAULT_BATCH_SIZE = 100
DEFAULT_BATCH_TIMEOUT = 1.0
#: Seconds a stopping writer may take to send the batches still waiting.
FINAL_FLUSH_TIMEOUT = 5.0
#: The client ID of every request, the one Kapacitor 1.5.7's kafka-go gives (its
#: program name and the machine's host name), so that brokers (their logs, client-id
#: quotas) see kapa-core as they saw Kapacitor.
CLIENT_ID = f"kapacitord@{socket.gethostname()} (github.com/segmentio/kafka-go)"


@dataclass(frozen=True, kw_only=True)
class KafkaConfig:
    enabled: bool = False
    id: str = "default"
    brokers: list[str] = setting([])
    timeout: Duration = setting(Duration(0), doc="0 means 10s.")
    batch_size: int = setting(0, doc="0 means 100.")
    batch_timeout: Duration = setting(Duration(0), doc="0 means 1s.")
    use_ssl: bool = False
    ssl_ca: str = ""
    ssl_cert: str = ""
    ssl_key: str = ""
    insecure_skip_verify: bool = False
    sasl_username: str = ""
    sasl_password: str = setting("", redact=True)
    sasl_mechanism: str = ""
    sasl_version: str = ""
    sasl_gssapi_service_name: str = ""
    sasl_gssapi_auth_type: str = ""
    sasl_gssapi_disable_pafxfast: bool = False
    sasl_gssapi_kerberos_config_path: str = ""
    sasl_gssapi_key_tab_path: str = ""
    sasl_gssapi_realm: str = ""
    sasl_extensions: dict[str, str] = setting({}, key="sasl_extensions")
    sasl_oauth_service: str = ""
    sasl_oauth_client_id: str = ""
    sasl_oauth_client_secret: str = setting("", redact=True)
    sasl_oauth_token_url: str = ""
    sasl_oauth_scopes: list[str] = setting([])
    sasl_oauth_parameters: dict[str, str] = setting({})
    sasl_oauth_token_expiry_margin: Duration = Duration(10_000_000_000)
    sasl_access_token: str = setting("", redact=True)
    sasl_oauth_tenant_id: str = ""

    def validate(self) -> None:
        if not self.enabled:
            return
        if not self.id:
            raise ConfigError("id", "must be set")
        if not self.brokers:
            raise ConfigError("brokers", "must specify at least one broker (host:port)")
        require_choice(self.sasl_mechanism, "sasl-mechanism", SASL_MECHANISMS)
        if self.batch_size < 0:
            raise ConfigError("batch-size", "must not be negative")
        require_choice(self.sasl_version, "sasl-version", ("", "0", "1"))
        if self.sasl_mechanism == "OAUTHBEARER":
            self._validate_oauth()

    def _validate_oauth(self) -> None:
        """Kapacitor's checks of the sasl-oauth-* keys."""
        service = self.sasl_oauth_service.lower()
        if self.sasl_access_token:
            if service or self.sasl_oauth_token_url:
                raise ConfigError("sasl-access-token", "cannot be set with "
                                  "sasl-oauth-service and sasl-oauth-token-url")
            return
        if not self.sasl_oauth_client_id or not self.sasl_oauth_client_secret:
            raise ConfigError("sasl-oauth-client-id", "sasl-oauth-client-id and "
                              "sasl-oauth-client-secret are required for OAUTHBEARER "
                              "(or a static sasl-access-token)")
        if service not in OAUTH_SERVICES:
            raise ConfigError("sasl-oauth-service", f"service {self.sasl_oauth_service!r} not "
                              "supported (expected custom, auth0 or azuread)")
        if service in ("", "custom", "auth0") and not self.sasl_oauth_token_url:
            raise ConfigError("sasl-oauth-token-url", "required for the "
                              f"{service or 'custom'} service")
        if service == "auth0" and not self.sasl_oauth_parameters.get("audience"):
            raise ConfigError("sasl-oauth-parameters", "the audience parameter is required "
                              "for Auth0")
        if service == "azuread":
            if not self.sasl_oauth_tenant_id:
                raise ConfigError("sasl-oauth-tenant-id", "required for AzureAD")
            if self.sasl_oauth_token_url:
                raise ConfigError("sasl-oauth-token-url", "cannot be set for AzureAD")
        if self.sasl_oauth_token_expiry_margin < 0:
            raise ConfigError("sasl-oauth-token-expiry-margin", "must not be negative")


def _seconds(value: Duration, default: float) -> float:
    return value / 1e9 if value > 0 else default


def _ssl_context(config: KafkaConfig) -> ssl.SSLContext:
    try:
        return TLS.of(config).context()
    except TLSFileError as exc:
        raise HandlerError(f"kafka: cluster {config.id!r}: cannot load the TLS files: "
                           f"ssl-{exc.which}: {exc}") from None


def _sasl(config: KafkaConfig, check_url: Any = None) -> wire.SaslConfig | None:
    if not (config.sasl_username or config.sasl_mechanism):
        return None
    mechanism = config.sasl_mechanism or "PLAIN"
    if mechanism == "GSSAPI":
        raise HandlerError(f"kafka: cluster {config.id!r}: SASL GSSAPI (Kerberos) is not "
                           "supported")
    token_source = None
    if mechanism == "OAUTHBEARER" and not config.sasl_access_token:
        credentials = ClientCredentials.for_service(
            config.sasl_oauth_service, token_url=config.sasl_oauth_token_url,
            tenant=config.sasl_oauth_tenant_id, client_id=config.sasl_oauth_client_id,
            client_secret=config.sasl_oauth_client_secret,
            scopes=config.sasl_oauth_scopes, params=config.sasl_oauth_parameters,
            margin=config.sasl_oauth_token_expiry_margin / 1e9, check_url=check_url)

        async def token_source() -> str:
            try:
                return await credentials.token()
            except (TokenError, KapaError) as exc:
                raise wire.KafkaError(f"cluster {config.id!r}: {exc}") from None
    return wire.SaslConfig(mechanism=mechanism, username=config.sasl_username,
                           password=config.sasl_password,
                           version=int(config.sasl_version or 1),
                           token=config.sasl_access_token, token_source=token_source,
                           extensions=tuple(sorted(config.sasl_extensions.items())))


@dataclass
class _Pending:
    partition: int
    message: wire.Message
    error: wire.KafkaError | None = None
    #: called with the error when the message cannot be delivered
    report: Callable[[wire.KafkaError], None] | None = None


class TopicWriter:
    """Sends one cluster's messages for one topic, in batches, one request at a time.

    ``enqueue`` adds a message to its partition's batch and returns; its ``report`` is
    called if it cannot be delivered. As kafka-go's writer (Kapacitor 1.5.7's) does, each
    partition's batch is sent, as one Produce request, when it holds ``batch_size``
    messages or ``batch_timeout`` seconds after its first message arrived; a retriable
    failure (a dropped connection, a moved leader) is tried once more with fresh
    metadata.
    """

    def __init__(self, client: wire.KafkaClient, topic: str, *, batch_size: int,
                 timeout: float, batch_timeout: float = DEFAULT_BATCH_TIMEOUT) -> None:
        self.client = client
        self.topic = topic
        self.batch_size = batch_size
        self.batch_timeout = batch_timeout
        self.timeout = timeout
        self._batches: dict[int, list[_Pending]] = {}  # partition: its open batch
        self._due: dict[int, float] = {}  # partition: when its batch is sent (trio time)
        self._wake = trio.Event()
        self._turn = itertools.count()
        self._bytes: dict[int, int] = {}  # partition: bytes sent there (least_bytes)

    async def partitions(self) -> list[int]:
        return sorted((await self.client.metadata(self.topic)).partitions)

    def next_partition(self, partitions: list[int]) -> int:
        """Round-robin over ``partitions`` (when partitioning by ID is disabled)."""
        return partitions[next(self._turn) % len(partitions)]

    def least_bytes(self, partitions: list[int], size: int) -> int:
        """The partition that has had the fewest bytes so far (the lowest on a tie), now
        counted with ``size`` more; the counts start again when the partitions change."""
        if any(p not in self._bytes for p in partitions):
            self._bytes = dict.fromkeys(sorted(partitions), 0)
        partition = min(self._bytes, key=self._bytes.__getitem__)
        self._bytes[partition] += size
        return partition

    def broker_timeout_ms(self) -> int:
        """The timeout a Produce request gives the broker: as kafka-go's, ``timeout``
        less the second it keeps for the round trip (a quarter of ``timeout`` when that
        is shorter than a second)."""
        rtt = 1.0 if self.timeout >= 1.0 else self.timeout / 4
        return int((self.timeout - rtt) * 1000)

    def _add(self, pending: _Pending) -> None:
        batch = self._batches.setdefault(pending.partition, [])
        if not batch:
            self._due[pending.partition] = trio.current_time() + self.batch_timeout
        batch.append(pending)
        if len(batch) >= self.batch_size:
            self._due[pending.partition] = -math.inf  # full: send it now

    def enqueue(self, partition: int, message: wire.Message,
                report: Callable[[wire.KafkaError], None]) -> None:
        """Send ``message`` without waiting, as Kapacitor's asynchronous writer does;
        ``report`` is called with the error if it cannot be delivered."""
        self._add(_Pending(partition, message, report=report))
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                now = trio.current_time()
                ready = sorted((due, p) for p, due in self._due.items() if due <= now)
                if not ready:
                    with trio.move_on_at(min(self._due.values(), default=math.inf)):
                        await self._wake.wait()
                    self._wake = trio.Event()
                    continue
                for _, partition in ready:
                    batch = self._batches.pop(partition)
                    del self._due[partition]
                    for pending in batch[self.batch_size:]:  # more than a batch at once
                        self._add(pending)
                    await self._deliver(batch[:self.batch_size])
                    self._report(batch[:self.batch_size])
        finally:
            # As kafka-go's Close: what waits for its batch is sent before stopping.
            with trio.move_on_after(FINAL_FLUSH_TIMEOUT, shield=True):
                while self._batches:
                    partition = next(iter(self._batches))
                    batch = self._batches.pop(partition)
                    self._due.pop(partition, None)
                    for start in range(0, len(batch), self.batch_size):
                        await self._deliver(batch[start:start + self.batch_size])
                    self._report(batch)
            stopped = wire.KafkaError("the kafka service stopped")
            for batch in self._batches.values():
                for pending in batch:
                    pending.error = stopped
                self._report(batch)
            self._batches.clear()
            self._due.clear()

    @staticmethod
    def _report(batch: list[_Pending]) -> None:
        for pending in batch:
            if pending.error is not None and pending.report is not None:
                pending.report(pending.error)

    async def _deliver(self, batch: list[_Pending]) -> None:
        waiting: dict[int, list[_Pending]] = {}
        for pending in batch:
            waiting.setdefault(pending.partition, []).append(pending)
        try:
            for attempt in range(2):
                failed = await self._produce(waiting)
                for partition in set(waiting) - set(failed):
                    del waiting[partition]  # delivered
                if not failed:
                    return
                if attempt or not all(exc.retriable for exc in failed.values()):
                    break
            for partition, exc in failed.items():
                for pending in waiting.pop(partition, ()):
                    pending.error = exc
        finally:
            for items in waiting.values():
                for pending in items:
                    pending.error = pending.error or wire.KafkaError("not sent")

    async def _produce(self, waiting: dict[int, list[_Pending]]) -> dict[int, wire.KafkaError]:
        batches = {p: wire.record_batch([x.message for x in items])
                   for p, items in waiting.items()}
        try:
            with trio.fail_after(self.timeout):
                return await self.client.produce(self.topic, batches, acks=-1,
                                                 timeout_ms=self.broker_timeout_ms())
        except wire.KafkaError as exc:
            return dict.fromkeys(batches, exc)
        except trio.TooSlowError:
            error = wire.KafkaError(f"no answer from the brokers within {self.timeout:g}s",
                                    retriable=True)
            return dict.fromkeys(batches, error)


class KafkaService:
    """The ``kafka`` service: one client per cluster and one writer per (cluster, topic),
    made on first use; a config override re-opens the service with new ones."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.elements: tuple[KafkaConfig, ...] = tuple(ctx.config or ())
        self.log = ctx.logger
        self._check = getattr(ctx.app, "check_outgoing", None)
        self._nursery: trio.Nursery | None = None
        self._clients: dict[str, wire.KafkaClient] = {}
        self._writers: dict[tuple[str, str], TopicWriter] = {}

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        for element in self.elements:
            if element.enabled and element.use_ssl and element.insecure_skip_verify:
                self.log.warn("insecure-skip-verify: TLS certificates of the Kafka brokers "
                              "are not verified", cluster=element.id)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            for client in self._clients.values():
                await client.aclose()

    def cluster(self, wanted: str) -> KafkaConfig:
        """The enabled ``[[kafka]]`` element ``wanted``; with no id, the only enabled one."""
        if not wanted:
            enabled = [e for e in self.elements if e.enabled]
            if len(enabled) == 1:
                return enabled[0]
            raise HandlerError("kafka: no cluster given (use .cluster('id') or the cluster "
                               "option)")
        for element in self.elements:
            if element.id == wanted:
                if not element.enabled:
                    raise HandlerError(f"kafka: [[kafka]] cluster {wanted!r} is not enabled")
                return element
        raise HandlerError(f"kafka: unknown cluster {wanted!r} (no [[kafka]] element with "
                           "that id)")

    def _client(self, config: KafkaConfig) -> wire.KafkaClient:
        client = self._clients.get(config.id)
        if client is None:
            client = wire.KafkaClient(wire.ClientConfig(
                brokers=tuple(config.brokers), client_id=CLIENT_ID,
                timeout=_seconds(config.timeout, DEFAULT_TIMEOUT),
                ssl_context=_ssl_context(config) if config.use_ssl else None,
                sasl=_sasl(config, self._check), check_address=self._check_address))
            self._clients[config.id] = client
        return client

    def _check_address(self, url: str) -> None:
        """Refuse a broker address in a ``-blacklist-cidrs`` range."""
        if self._check is None:
            return
        try:
            self._check(url)
        except KapaError as exc:
            raise wire.KafkaError(str(exc)) from None

    def writer(self, config: KafkaConfig, topic: str) -> TopicWriter:
        if self._nursery is None:
            raise HandlerError("kafka: the kafka service is not running")
        writer = self._writers.get((config.id, topic))
        if writer is None:
            writer = TopicWriter(self._client(config), topic,
                                 batch_size=config.batch_size or DEFAULT_BATCH_SIZE,
                                 timeout=_seconds(config.timeout, DEFAULT_TIMEOUT),
                                 batch_timeout=_seconds(config.batch_timeout,
                                                        DEFAULT_BATCH_TIMEOUT))
            self._writers[(config.id, topic)] = writer
            self._nursery.start_soon(writer.run)
        return writer


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="kafka", schema=KafkaConfig, multiple=True, element_key="id",
                    default_elements=1, check=unique_elements("id"), service=KafkaService,
                    doc="Send alerts to Apache Kafka.")]


TEMPLATE_NAME = "kafka alert template"


@dataclass(frozen=True, kw_only=True)
class KafkaOptions:
    cluster: str = option("", doc="The [[kafka]] element's id.")
    topic: str = option("", tick="kafkaTopic", doc="The Kafka topic.")
    template: str = option("", doc="Go template for the message value.")
    disable_partition_by_id: bool = option(False, key="disablePartitionById")
    partition_algorithm: str = option("", tick="partitionHashAlgorithm",
                                      key="partitionAlgorithm",
                                      doc="crc32, murmur2, murmur3 or fnv-1a (default: "
                                      "the partition with the fewest bytes).")

    def validate(self) -> None:
        if self.partition_algorithm not in wire.ALGORITHMS:
            raise ConfigError("partitionAlgorithm", f"kafka: invalid partition algorithm "
                              f"{self.partition_algorithm!r} (crc32, murmur2, murmur3, "
                              "fnv-1a)")
        if self.template:
            try:
                parse_template(self.template, TEMPLATE_NAME)
            except TemplateError as exc:
                raise ConfigError("template", f"kafka: {exc}") from None


def alert_data(event: Event) -> Any:
    """Kapacitor's ``alert.Data``, the dot of a Kafka template (``{{ .Data }}`` prints
    its JSON, as Go's models.Result does)."""
    return event.alert_template_data()


class KafkaHandler:
    """Writes each alert to the cluster's topic without waiting for the broker, as
    Kapacitor's asynchronous writer does (so that the alerts of a handler can share a
    partition's batch); a message that cannot be delivered is logged as "alert handler
    failed" by the service."""

    def __init__(self, options: KafkaOptions, context: Any) -> None:
        self.options = options
        self.service = context
        self.template = (parse_template(options.template, TEMPLATE_NAME)
                         if options.template else None)

    def _value(self, event: Event) -> bytes:
        if self.template is None:
            return (event.json() + "\n").encode()
        try:
            return self.template.execute(alert_data(event)).encode()
        except TemplateError as exc:
            raise HandlerError(f"kafka: failed to execute alert template: {exc}") from None

    async def handle(self, event: Event) -> None:
        service = self.service
        if not isinstance(service, KafkaService):
            raise HandlerError("kafka: the kafka service is not running")
        config = service.cluster(self.options.cluster)
        topic = self.options.topic
        if not topic:
            raise HandlerError("kafka: no topic (set .kafkaTopic('name') or the topic option)")
        value = self._value(event)
        key = event.id.encode()
        timeout = _seconds(config.timeout, DEFAULT_TIMEOUT)
        where = f"kafka: cluster {config.id!r}, topic {topic!r}"
        try:
            writer = service.writer(config, topic)
            with trio.fail_after(timeout):
                partitions = await writer.partitions()
            if self.options.disable_partition_by_id:
                partition = writer.next_partition(partitions)
            elif not self.options.partition_algorithm:
                partition = writer.least_bytes(partitions, len(key) + len(value))
            elif not key:
                partition = random.choice(partitions)
            else:
                partition = wire.partition_for(self.options.partition_algorithm, key,
                                               partitions)
            message = wire.Message(key, value, time.time_ns() // 1_000_000)
        except wire.KafkaError as exc:
            raise HandlerError(f"{where}: {exc}") from None
        except trio.TooSlowError:
            raise HandlerError(f"{where}: no answer from the brokers in time") from None

        def report(exc: wire.KafkaError) -> None:
            service.log.error("alert handler failed", kind="kafka", alert=event.id,
                              err=f"{where}: {exc}")

        writer.enqueue(partition, message, report)


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="kafka", options=KafkaOptions, factory=KafkaHandler,
                        section="kafka", doc="Write alerts to a Kafka topic.")]

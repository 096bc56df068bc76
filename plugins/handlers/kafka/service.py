"""The ``kafka`` service: one client per cluster and, per (cluster, topic), a writer that
batches messages by partition as Kapacitor 1.5.7's kafka-go writer does."""

from __future__ import annotations

import itertools
import math
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import trio

from kapa_core.plugin_api import (
    TLS,
    HandlerError,
    KapaError,
    ServiceContext,
    TLSFileError,
)

from . import wire
from .config import (
    CLIENT_ID,
    DEFAULT_BATCH_SIZE,
    DEFAULT_BATCH_TIMEOUT,
    DEFAULT_TIMEOUT,
    FINAL_FLUSH_TIMEOUT,
    KafkaConfig,
    seconds,
)
from .oauth2_token import TIMEOUT as TOKEN_TIMEOUT
from .oauth2_token import ClientCredentials, TokenError


def _ssl_context(config: KafkaConfig) -> ssl.SSLContext:
    try:
        return TLS.of(config).context()
    except TLSFileError as exc:
        raise HandlerError(f"kafka: cluster {config.id!r}: cannot load the TLS files: "
                           f"ssl-{exc.which}: {exc}") from None


def _sasl(config: KafkaConfig, check_url: Callable[[str], None],
          http_client: Callable[[], httpx.AsyncClient] | None = None
          ) -> wire.SaslConfig | None:
    if not (config.sasl_username or config.sasl_mechanism):
        return None
    mechanism = config.sasl_mechanism or "PLAIN"
    if mechanism == "GSSAPI":
        raise HandlerError(f"kafka: cluster {config.id!r}: SASL GSSAPI (Kerberos) is not "
                           "supported")
    token_source: Callable[[], Awaitable[str]] | None = None
    if mechanism == "OAUTHBEARER" and not config.sasl_access_token:
        credentials = ClientCredentials.for_service(
            config.sasl_oauth_service, token_url=config.sasl_oauth_token_url,
            tenant=config.sasl_oauth_tenant_id, client_id=config.sasl_oauth_client_id,
            client_secret=config.sasl_oauth_client_secret,
            scopes=config.sasl_oauth_scopes, params=config.sasl_oauth_parameters,
            margin=config.sasl_oauth_token_expiry_margin / 1e9, check_url=check_url,
            http_client=http_client)

        async def fetch_token() -> str:
            try:
                return await credentials.token()
            except (TokenError, KapaError) as exc:
                raise wire.KafkaError(f"cluster {config.id!r}: {exc}") from None

        token_source = fetch_token
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
        self._check = ctx.check_outgoing
        self._http_client = ctx.http_client
        self._nursery: trio.Nursery | None = None
        self._clients: dict[str, wire.KafkaClient] = {}
        self._writers: dict[tuple[str, str], TopicWriter] = {}

    async def serve(self, *,
                    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                    ) -> None:
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
                timeout=seconds(config.timeout, DEFAULT_TIMEOUT),
                ssl_context=_ssl_context(config) if config.use_ssl else None,
                sasl=_sasl(config, self._check, lambda: self._http_client(timeout=TOKEN_TIMEOUT)),
                check_address=self._check_address))
            self._clients[config.id] = client
        return client

    def _check_address(self, url: str) -> None:
        """Refuse a broker address in a ``-blacklist-cidrs`` range."""
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
                                 timeout=seconds(config.timeout, DEFAULT_TIMEOUT),
                                 batch_timeout=seconds(config.batch_timeout,
                                                        DEFAULT_BATCH_TIMEOUT))
            self._writers[(config.id, topic)] = writer
            self._nursery.start_soon(writer.run)
        return writer



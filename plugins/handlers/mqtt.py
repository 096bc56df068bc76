"""MQTT: the [[mqtt]] section (one element per broker) and the ``mqtt`` handler.

Each alert event is published to an MQTT broker: the payload is the alert message text
(the alert node's ``.message()``), the topic a Go template rendered per event with the
alert's template data (``{{ .TaskName }}``, ``{{ .Level }}``, ``{{ index .Tags "host" }}``
… as in Kapacitor 1.5.4+). In TICKscript::

    |alert()
        .crit(lambda: "value" > 90)
        .mqtt('alerts/{{ .TaskName }}/{{ .Level }}')
            .brokerName('local')
            .qos(1)
            .retained(TRUE)

As a topic handler: ``{"kind": "mqtt", "options": {"broker-name": "local", "topic":
"alerts/{{ .ID }}", "qos": 2, "retained": true}}``.

Options: ``broker-name`` picks the [[mqtt]] element by ``name`` (empty: the element with
``default = true``, or the only one); ``topic`` is required and may not render to an
empty name or contain the wildcards ``+``/``#``; ``qos`` is 0 (fire and forget), 1 (the
broker's PUBACK is awaited) or 2 (PUBREC/PUBREL/PUBCOMP), anything else is refused when
the task or handler is defined; ``retained`` sets the retain flag, so a subscriber
arriving later still receives the last alert of the topic.

Connections belong to the section's service: one MQTT 3.1.1 session per broker (clean
session, keep-alive 30 s, client id ``client-id`` or else the element's ``name`` (as Kapacitor),
``username``/``password`` when set), opened by the first alert and reused by every
handler of that broker. The service pings idle sessions to keep them alive; a publish on a
session that dropped reconnects (QoS 1 and 2 notice it by the missing acknowledgement and
publish once more on a new session, QoS 0 pings an idle session first), and it sends
DISCONNECT when it closes (shutdown, or a config override of [[mqtt]]). URLs:
``tcp://`` and ``mqtt://`` (port 1883 by default), ``ssl://``, ``tls://`` and
``mqtts://`` (port 8883) with ``ssl-ca``, ``ssl-cert``, ``ssl-key`` and
``insecure-skip-verify``; MQTT over WebSocket with ``ws://host[:port][/path]`` (port 80)
and ``wss://`` (port 443, TLS with the same settings): the session runs in binary frames
of a WebSocket upgraded at the URL's path and query, ``/mqtt`` when it has none (as
paho), with subprotocol ``mqtt`` (see ``mqtt_websocket``). A refused CONNECT or
WebSocket upgrade (named by its HTTP status), an unreachable or silent broker, a
disabled or unknown broker fail the event with a HandlerError naming the broker, which
the alert framework logs as "alert handler failed".
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import trio

from kapa_core.plugin_api import (
    TLS,
    ConfigError,
    Event,
    HandlerError,
    HandlerKind,
    KapaError,
    Section,
    ServiceContext,
    TemplateError,
    TLSFileError,
    hookimpl,
    one_default,
    parse_template,
    require_url,
    setting,
    unique_elements,
)

from .mqtt_wire import (
    Connection,
    ConnectionLost,
    MQTTError,
    check_topic_name,
)

#: Keep-alive announced in CONNECT (seconds); idle sessions are pinged at half of it.
KEEPALIVE = 30
#: Bound on TCP connect + TLS handshake + WebSocket upgrade + CONNACK.
CONNECT_TIMEOUT = 10.0
#: Bound on one publish, waiting for the connection and the acknowledgements included.
PUBLISH_TIMEOUT = 30.0
#: A session idle for longer than this is checked with PINGREQ before a QoS 0 publish on
#: it, so that a broker restart does not silently swallow the message.
PROBE_AFTER = 1.0
PING_TIMEOUT = 5.0
#: Bound on sending DISCONNECT to every broker when the service closes.
CLOSE_TIMEOUT = 2.0

PLAIN_SCHEMES = {"tcp": 1883, "mqtt": 1883}
TLS_SCHEMES = {"ssl": 8883, "tls": 8883, "mqtts": 8883}
#: MQTT over WebSocket (wss with TLS), upgraded at the URL's path or else at /mqtt.
WEBSOCKET_SCHEMES = {"ws": 80, "wss": 443}
DEFAULT_WEBSOCKET_PATH = "/mqtt"
#: Characters left as they are in a request target (RFC 3986 pchar, "/" and "%").
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"


@dataclass(frozen=True, kw_only=True)
class MQTTConfig:
    enabled: bool = False
    name: str = "default"
    default: bool = False
    url: str = setting("", doc="tcp://host:1883, ssl://host:8883 or ws://host:80.")
    ssl_ca: str = ""
    ssl_cert: str = ""
    ssl_key: str = ""
    insecure_skip_verify: bool = False
    client_id: str = ""
    username: str = ""
    password: str = setting("", redact=True)

    def validate(self) -> None:
        if not self.enabled:
            return
        if not self.name:
            raise ConfigError("name", "must be set")
        require_url(self.url, "url", ("tcp", "ssl", "ws", "wss", "tls", "mqtt", "mqtts"))


def _check(elements: tuple[MQTTConfig, ...]) -> None:
    unique_elements("name")(elements)
    one_default(elements)


@dataclass(frozen=True)
class BrokerAddress:
    """Where a broker URL points: host, port, whether TLS is used, and for ws:// and
    wss:// the HTTP path (with the query) of the WebSocket upgrade."""

    host: str
    port: int
    tls: bool
    websocket_path: str | None = None


def broker_address(config: MQTTConfig) -> BrokerAddress:
    """The address of a broker URL; HandlerError for what cannot be used."""
    parts = urlsplit(config.url)
    scheme = parts.scheme.lower()
    default_port = (PLAIN_SCHEMES.get(scheme) or TLS_SCHEMES.get(scheme)
                    or WEBSOCKET_SCHEMES.get(scheme))
    if default_port is None:
        raise HandlerError(f"mqtt: broker {config.name!r}: unsupported URL {config.url!r}")
    try:
        port = parts.port
    except ValueError:
        raise HandlerError(f"mqtt: broker {config.name!r}: invalid port in "
                           f"{config.url!r}") from None
    if not parts.hostname:
        raise HandlerError(f"mqtt: broker {config.name!r}: no host in {config.url!r}")
    path = None
    if scheme in WEBSOCKET_SCHEMES:
        # paho's default path; the request target must be ASCII, so escape the rest.
        path = quote(parts.path or DEFAULT_WEBSOCKET_PATH, safe=_PATH_SAFE)
        if parts.query:
            path += "?" + quote(parts.query, safe=_PATH_SAFE + "?")
    return BrokerAddress(parts.hostname, port or default_port,
                         scheme in TLS_SCHEMES or scheme == "wss", path)


def ssl_context(config: MQTTConfig) -> ssl.SSLContext:
    """The TLS settings of a broker: CA file, client certificate, verification."""
    try:
        return TLS.of(config).context()
    except TLSFileError as exc:
        raise HandlerError(f"mqtt: broker {config.name!r}: TLS settings: ssl-{exc.which}: "
                           f"{exc}") from None


class BrokerClient:
    """The session with one broker, opened on first use and shared by its handlers.

    A lock serializes publishes (each waits for its own acknowledgements), so one
    connection needs no reader task.
    """

    def __init__(self, config: MQTTConfig, service: MQTTService) -> None:
        self.config = config
        self.service = service
        # Kapacitor uses the [[mqtt]] element's name when client-id is empty.
        self.client_id = config.client_id or config.name
        self._conn: Connection | None = None
        self._lock = trio.Lock()
        self._closed = False

    def _fail(self, message: str) -> HandlerError:
        return HandlerError(f"mqtt: broker {self.config.name!r} ({self.config.url}): "
                            f"{message}")

    async def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        if self._closed:
            raise self._fail("the MQTT service is closing")
        with trio.move_on_after(PUBLISH_TIMEOUT) as scope:
            async with self._lock:
                try:
                    await self._publish(topic, payload, qos, retain)
                except MQTTError as exc:
                    raise self._fail(str(exc)) from None
        if scope.cancelled_caught:
            raise self._fail(f"no answer within {PUBLISH_TIMEOUT:g}s")

    async def _publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        # QoS 1 and 2 learn of a dropped session from the missing acknowledgement; a QoS 0
        # message would vanish into it, so an idle session is pinged first.
        conn, fresh = await self._connection(probe=qos == 0)
        try:
            await conn.publish(topic, payload, qos=qos, retain=retain)
            return
        except ConnectionLost:
            await self._drop()
            if fresh:
                raise
        except BaseException:
            await self._drop()  # the session's state is unknown: start over next time
            raise
        # The reused session had dropped under us: once more on a new one.
        conn, _ = await self._connection(probe=False)
        try:
            await conn.publish(topic, payload, qos=qos, retain=retain)
        except BaseException:
            await self._drop()
            raise

    async def _connection(self, *, probe: bool) -> tuple[Connection, bool]:
        """The open session, or a new one; and whether it is new.

        A session idle for 1.5 keep-alives has been given up by the broker and is replaced;
        with ``probe``, one idle for over PROBE_AFTER must first answer a PINGREQ.
        """
        conn = self._conn
        if conn is not None and not conn.closed:
            idle = trio.current_time() - conn.last_sent
            if idle < KEEPALIVE * 1.5:
                if not probe or idle < PROBE_AFTER:
                    return conn, False
                try:
                    with trio.fail_after(PING_TIMEOUT):
                        await conn.ping()
                    return conn, False
                except (MQTTError, trio.TooSlowError) as exc:
                    self.service.log.info("MQTT connection lost, reconnecting",
                                          broker=self.config.name,
                                          err=str(exc) or "no PINGRESP")
        await self._drop()
        self._conn = await self._open()
        return self._conn, True

    async def _open(self) -> Connection:
        config = self.config
        address = broker_address(config)
        context = ssl_context(config) if address.tls else None
        self.service.check_outgoing(config.url)
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                conn = await Connection.open(
                    address.host, address.port, client_id=self.client_id,
                    username=config.username, password=config.password,
                    keepalive=KEEPALIVE, ssl_context=context,
                    websocket_path=address.websocket_path)
        except trio.TooSlowError:
            raise MQTTError(f"no CONNACK within {CONNECT_TIMEOUT:g}s") from None
        self.service.log.info("connected to MQTT broker", broker=config.name,
                              url=config.url, client_id=self.client_id)
        return conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.abort()

    async def keep_alive(self) -> None:
        """Ping the session when nothing was sent for half the keep-alive; close it when
        the broker does not answer (the next publish reconnects)."""
        while not self._closed:
            await trio.sleep(KEEPALIVE / 2)
            if self._lock.locked():
                continue
            async with self._lock:
                conn = self._conn
                if conn is None or trio.current_time() - conn.last_sent < KEEPALIVE / 2:
                    continue
                try:
                    with trio.fail_after(PING_TIMEOUT):
                        await conn.ping()
                except (MQTTError, trio.TooSlowError) as exc:
                    self.service.log.info("MQTT connection lost", broker=self.config.name,
                                          err=str(exc) or "no PINGRESP")
                    await self._drop()

    async def close(self) -> None:
        """DISCONNECT and close; a publish still holding the session is cut off."""
        self._closed = True
        with trio.move_on_after(CLOSE_TIMEOUT):
            async with self._lock:
                conn, self._conn = self._conn, None
                if conn is not None:
                    await conn.disconnect()
                    self.service.log.debug("disconnected from MQTT broker",
                                           broker=self.config.name)
        await self._drop()


class _QuietLog:
    """Stands in for a logger when a handler runs without one."""

    def _ignore(self, msg: str, **kv: Any) -> None:
        pass

    debug = info = warn = error = _ignore


class MQTTService:
    """The [[mqtt]] section's service: picks brokers and owns their sessions."""

    def __init__(self, config: tuple[MQTTConfig, ...], log: Any = None,
                 check_outgoing: Any = None) -> None:
        self.config = tuple(config or ())
        self.log = log if log is not None else _QuietLog()
        self._check_outgoing = check_outgoing
        self._clients: dict[str, BrokerClient] = {}
        self._nursery: trio.Nursery | None = None

    @classmethod
    def from_context(cls, context: ServiceContext) -> MQTTService:
        app = context.app
        return cls(context.config, context.logger, getattr(app, "check_outgoing", None))

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for client in self._clients.values():
                    nursery.start_soon(client.keep_alive)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            with trio.CancelScope(shield=True):
                await self.close()

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()

    def check_outgoing(self, url: str) -> None:
        if self._check_outgoing is None:
            return
        try:
            self._check_outgoing(url)
        except KapaError as exc:
            raise HandlerError(f"mqtt: {exc}") from None

    def element(self, name: str) -> MQTTConfig:
        """The [[mqtt]] element ``name``, or the default one when ``name`` is empty."""
        if name:
            for element in self.config:
                if element.name == name:
                    break
            else:
                known = ", ".join(repr(e.name) for e in self.config) or "none"
                raise HandlerError(f"mqtt: unknown broker {name!r} (configured: {known})")
        else:
            defaults = [e for e in self.config if e.default]
            if defaults:
                element = defaults[0]
            elif len(self.config) == 1:
                element = self.config[0]
            else:
                raise HandlerError("mqtt: no broker name given and no default broker: set "
                                   ".brokerName() or default = true on one [[mqtt]] element")
        if not element.enabled:
            raise HandlerError(f"mqtt: broker {element.name!r} is not enabled "
                               "([[mqtt]] enabled = false)")
        return element

    def client(self, name: str) -> BrokerClient:
        config = self.element(name)
        client = self._clients.get(config.name)
        if client is None:
            client = self._clients[config.name] = BrokerClient(config, self)
            if self._nursery is not None:
                self._nursery.start_soon(client.keep_alive)
        return client

    async def publish(self, broker_name: str, topic: str, payload: bytes, qos: int,
                      retain: bool) -> None:
        await self.client(broker_name).publish(topic, payload, qos, retain)


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="mqtt", schema=MQTTConfig, multiple=True, element_key="name",
                    default_elements=1, check=_check, service=MQTTService.from_context,
                    doc="Publish alerts to MQTT brokers.")]


@dataclass(frozen=True, kw_only=True)
class MQTTOptions:
    """``.mqtt('topic').brokerName('name').qos(1).retained(TRUE)``."""

    broker_name: str = ""
    topic: str = ""
    qos: int = 0
    retained: bool = False

    def validate(self) -> None:
        if not 0 <= self.qos <= 2:
            raise ConfigError("qos", f"mqtt: invalid QoS {self.qos} (expected 0, 1 or 2)")
        if not self.topic:
            raise ConfigError("topic", "mqtt: a topic is required")
        try:
            parse_template(self.topic, "topic")
        except TemplateError as exc:
            raise ConfigError("topic", f"mqtt: invalid topic template: {exc}") from None


class MQTTHandler:
    """Publishes each event's message to the rendered topic of the chosen broker."""

    def __init__(self, options: MQTTOptions, context: Any) -> None:
        self.options = options
        self.context = context
        self.topic = parse_template(options.topic, "topic")

    async def handle(self, event: Event) -> None:
        try:
            topic = self.topic.execute(event.template_data())
        except TemplateError as exc:
            raise HandlerError(f"mqtt: topic template: {exc}") from None
        try:
            check_topic_name(topic)
        except MQTTError as exc:
            raise HandlerError(f"mqtt: cannot publish: {exc}") from None
        payload = event.state.message.encode()
        options = self.options
        if isinstance(self.context, MQTTService):
            await self.context.publish(options.broker_name, topic, payload, options.qos,
                                       options.retained)
            return
        # No running service (it is being re-opened): a session for this event only.
        service = MQTTService(getattr(self.context, "config", ()),
                              getattr(self.context, "log", None),
                              getattr(self.context, "check_outgoing", None))
        try:
            await service.publish(options.broker_name, topic, payload, options.qos,
                                  options.retained)
        finally:
            with trio.CancelScope(shield=True):
                await service.close()


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="mqtt", options=MQTTOptions, factory=MQTTHandler,
                        section="mqtt", args=("topic",),
                        doc="Publish the alert message to an MQTT topic.")]

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
handler of that broker. The sessions are paho-mqtt clients driven from trio's worker
threads (one call at a time per broker, no thread of their own). The service pings idle
sessions to keep them alive; a publish on a session that dropped reconnects (QoS 1 and 2
notice it by the missing acknowledgement and publish once more on a new session, QoS 0
pings an idle session first), and it sends DISCONNECT when it closes (shutdown, or a
config override of [[mqtt]]). URLs:
``tcp://`` and ``mqtt://`` (port 1883 by default), ``ssl://``, ``tls://`` and
``mqtts://`` (port 8883) with ``ssl-ca``, ``ssl-cert``, ``ssl-key`` and
``insecure-skip-verify``; MQTT over WebSocket with ``ws://host[:port][/path]`` (port 80)
and ``wss://`` (port 443, TLS with the same settings): paho's websockets transport,
upgraded at the URL's path and query, ``/mqtt`` when it has none, with subprotocol
``mqtt``. A refused CONNECT or WebSocket upgrade, an unreachable or silent broker, a
disabled or unknown broker fail the event with a HandlerError naming the broker, which
the alert framework logs as "alert handler failed".
"""

from __future__ import annotations

import math
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import paho.mqtt.client as paho
import trio
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

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
#: Longest single wait of a worker thread on the socket, so that a session closed from
#: trio (shutdown, a publish given up) is noticed soon.
POLL_INTERVAL = 0.25

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


class MQTTError(Exception):
    """An MQTT exchange failed: a refusal, a timeout or a lost connection."""


class ConnectionLost(MQTTError):
    """The connection broke, was closed, or the broker hung up."""


def check_topic_name(topic: str) -> None:
    """Raise MQTTError unless ``topic`` may be published to (3.1.1 section 4.7)."""
    if not topic:
        raise MQTTError("the topic is empty")
    if "+" in topic or "#" in topic:
        raise MQTTError(f"topic {topic!r} contains a wildcard (+ or #)")
    if "\x00" in topic:
        raise MQTTError(f"topic {topic!r} contains a NUL character")
    if len(topic.encode()) > 0xFFFF:
        raise MQTTError("the topic is longer than 65535 bytes")


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


#: What a publish of each QoS waits for before it is done.
_AWAITED = {0: "PUBLISH sent", 1: "PUBACK", 2: "PUBCOMP"}


class Session:
    """One connected paho client. Blocking: only ever called from one worker thread at a
    time (the broker's lock serializes), and it runs no network thread of its own; every
    wait is bounded by the deadline it is given (``time.monotonic()`` seconds)."""

    def __init__(self, client: paho.Client) -> None:
        self.client = client
        #: ``time.monotonic()`` of the last packet sent (for keep-alive and probes).
        self.last_sent = time.monotonic()
        self.closed = False

    @classmethod
    def open(cls, address: BrokerAddress, *, client_id: str, username: str, password: str,
             keepalive: int, context: ssl.SSLContext | None, deadline: float) -> Session:
        """Connect (TLS and the WebSocket upgrade included), send CONNECT and wait for a
        CONNACK that accepts the session."""
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             clean_session=True, protocol=MQTTProtocolVersion.MQTTv311,
                             transport="tcp" if address.websocket_path is None
                             else "websockets", reconnect_on_failure=False)
        client.connect_timeout = max(0.1, deadline - time.monotonic())
        if address.websocket_path is not None:
            # paho writes an IPv6 address into Host without the brackets it needs.
            host = f"[{address.host}]" if ":" in address.host else address.host
            default_port = 443 if address.tls else 80
            client.ws_set_options(path=address.websocket_path, headers={
                "Host": host if address.port == default_port else f"{host}:{address.port}"})
        if context is not None:
            client.tls_set_context(context)
        if username or password:
            client.username_pw_set(username, password or None)
        answers: list[ReasonCode] = []
        client.on_connect = lambda _c, _u, _f, code, _p: answers.append(code)
        where = f"{address.host}:{address.port}"
        session = cls(client)
        try:
            try:
                client.connect(address.host, address.port, keepalive=keepalive)
            except paho.WebsocketConnectionError as exc:
                raise ConnectionLost(f"WebSocket handshake with {where} failed: "
                                     f"{_describe(exc)}") from None
            except ssl.SSLError as exc:
                raise ConnectionLost(f"TLS handshake with {where} failed: "
                                     f"{_describe(exc)}") from None
            except (OSError, ValueError) as exc:
                raise ConnectionLost(f"cannot connect to {where}: {_describe(exc)}") from None
            session._wait(lambda: bool(answers), deadline, "CONNACK", CONNECT_TIMEOUT)
            code = answers[0]
            if code.is_failure:
                raise MQTTError(f"connection refused: {str(code).lower()} (CONNACK)")
        except BaseException:
            session.abort()
            raise
        return session

    def _wait(self, done: Callable[[], bool], deadline: float, what: str,
              limit: float) -> None:
        """Run the client's network loop until ``done()``; ConnectionLost when the
        connection goes, MQTTError past ``deadline`` (``limit`` seconds after the start,
        for the message)."""
        client = self.client
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise MQTTError(f"no {what} within {limit:g}s")
            if self.closed:
                raise ConnectionLost("the connection is closed")
            rc = client.loop(min(remaining, POLL_INTERVAL))
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS and not done():
                self.closed = True
                raise ConnectionLost(f"the connection to the broker was lost "
                                     f"({paho.error_string(rc).rstrip('.')})")

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool,
                deadline: float) -> None:
        """PUBLISH and, for QoS 1 and 2, complete the broker's acknowledgements."""
        if self.closed:
            raise ConnectionLost("the connection is closed")
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        self.last_sent = time.monotonic()
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self.closed = True
            raise ConnectionLost(f"publish failed ({paho.error_string(info.rc).rstrip('.')})")
        self._wait(info.is_published, deadline, _AWAITED[qos], PUBLISH_TIMEOUT)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:  # a QoS 0 message lost on the way
            self.closed = True
            raise ConnectionLost(f"publish failed ({paho.error_string(info.rc).rstrip('.')})")

    def ping(self, deadline: float) -> None:
        """PINGREQ, then wait for the PINGRESP."""
        if self.closed:
            raise ConnectionLost("the connection is closed")
        client = self.client
        # paho sends PINGREQ itself only after a whole keep-alive; ask for one now.
        if client._send_pingreq() != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self.closed = True
            raise ConnectionLost("PINGREQ could not be sent")
        self.last_sent = now = time.monotonic()
        # As paho does after a PINGREQ of its own: the keep-alive clock starts over, or
        # its network loop would give the session up before the PINGRESP could arrive
        # when nothing came in for a whole keep-alive.
        with client._msgtime_mutex:
            client._last_msg_out = now
            client._last_bytes_received = now
        self._wait(lambda: client._ping_t == 0, deadline, "PINGRESP", PING_TIMEOUT)

    def disconnect(self) -> None:
        """Send DISCONNECT (if the connection is still up) and close."""
        if not self.closed:
            self.client.disconnect()
        self.abort()

    def abort(self) -> None:
        """Close the connection without a word to the broker (any thread)."""
        self.closed = True
        self.client._reset_sockets()


def _mask_client_frames() -> None:
    """Have paho mask the pong and close frames it answers a server with.

    paho 2.x sends those two unmasked, and RFC 6455 section 5.1 has a server fail the
    connection on an unmasked client frame (the ``websockets`` library does): a broker or
    proxy that pings would drop every session. Every frame a client sends must be masked,
    so the wrapper's frame builder is made to always mask.
    """
    wrapper: Any = paho._WebsocketWrapper
    build = wrapper._create_frame
    if getattr(build, "masks_always", False):
        return

    def create_frame(self: Any, opcode: int, data: bytearray,
                     do_masking: int = 1) -> bytearray:
        return build(self, opcode, data, 1)  # type: ignore[no-any-return]

    create_frame.masks_always = True  # type: ignore[attr-defined]
    wrapper._create_frame = create_frame


_mask_client_frames()

_T = TypeVar("_T")


async def _in_thread(function: Callable[[], _T]) -> _T:
    """``function()`` on a trio worker thread; a cancelled caller does not wait for it
    (the caller closes the session, which ends the thread's wait soon)."""
    return await trio.to_thread.run_sync(function, abandon_on_cancel=True)


class BrokerClient:
    """The session with one broker, opened on first use and shared by its handlers.

    A lock serializes publishes (each waits for its own acknowledgements on a worker
    thread), so one connection needs no reader of its own.
    """

    def __init__(self, config: MQTTConfig, service: MQTTService) -> None:
        self.config = config
        self.service = service
        # Kapacitor uses the [[mqtt]] element's name when client-id is empty.
        self.client_id = config.client_id or config.name
        self._session: Session | None = None
        self._lock = trio.Lock()
        self._closed = False

    def _fail(self, message: str) -> HandlerError:
        return HandlerError(f"mqtt: broker {self.config.name!r} ({self.config.url}): "
                            f"{message}")

    async def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        if self._closed:
            raise self._fail("the MQTT service is closing")
        deadline = time.monotonic() + PUBLISH_TIMEOUT
        with trio.move_on_after(PUBLISH_TIMEOUT) as scope:
            async with self._lock:
                try:
                    await self._publish(topic, payload, qos, retain, deadline)
                except MQTTError as exc:
                    raise self._fail(str(exc)) from None
        if scope.cancelled_caught:
            raise self._fail(f"no answer within {PUBLISH_TIMEOUT:g}s")

    async def _publish(self, topic: str, payload: bytes, qos: int, retain: bool,
                       deadline: float) -> None:
        # QoS 1 and 2 learn of a dropped session from the missing acknowledgement; a QoS 0
        # message would vanish into it, so an idle session is pinged first.
        session, fresh = await self._connection(probe=qos == 0)
        try:
            await _in_thread(lambda: session.publish(topic, payload, qos, retain, deadline))
            return
        except ConnectionLost:
            self._drop()
            if fresh:
                raise
        except BaseException:
            self._drop()  # the session's state is unknown: start over next time
            raise
        # The reused session had dropped under us: once more on a new one.
        session, _ = await self._connection(probe=False)
        try:
            await _in_thread(lambda: session.publish(topic, payload, qos, retain, deadline))
        except BaseException:
            self._drop()
            raise

    async def _connection(self, *, probe: bool) -> tuple[Session, bool]:
        """The open session, or a new one; and whether it is new.

        A session idle for 1.5 keep-alives has been given up by the broker and is replaced;
        with ``probe``, one idle for over PROBE_AFTER must first answer a PINGREQ.
        """
        session = self._session
        if session is not None and not session.closed:
            idle = time.monotonic() - session.last_sent
            if idle < KEEPALIVE * 1.5:
                if not probe or idle < PROBE_AFTER:
                    return session, False
                try:
                    await self._ping(session)
                    return session, False
                except MQTTError as exc:
                    self.service.log.info("MQTT connection lost, reconnecting",
                                          broker=self.config.name, err=str(exc))
        self._drop()
        self._session = await self._open()
        return self._session, True

    async def _ping(self, session: Session) -> None:
        deadline = time.monotonic() + PING_TIMEOUT
        try:
            await _in_thread(lambda: session.ping(deadline))
        except BaseException:
            self._drop()
            raise

    async def _open(self) -> Session:
        config = self.config
        address = broker_address(config)
        context = ssl_context(config) if address.tls else None
        self.service.check_outgoing(config.url)
        deadline = time.monotonic() + CONNECT_TIMEOUT
        keepalive = max(1, math.ceil(KEEPALIVE))
        session = await _in_thread(lambda: Session.open(
            address, client_id=self.client_id, username=config.username,
            password=config.password, keepalive=keepalive, context=context,
            deadline=deadline))
        self.service.log.info("connected to MQTT broker", broker=config.name,
                              url=config.url, client_id=self.client_id)
        return session

    def _drop(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.abort()

    async def keep_alive(self) -> None:
        """Ping the session when nothing was sent for half the keep-alive; close it when
        the broker does not answer (the next publish reconnects)."""
        while not self._closed:
            await trio.sleep(KEEPALIVE / 2)
            if self._lock.locked():
                continue
            async with self._lock:
                session = self._session
                if session is None or session.closed or (
                        time.monotonic() - session.last_sent < KEEPALIVE / 2):
                    continue
                try:
                    await self._ping(session)
                except MQTTError as exc:
                    self.service.log.info("MQTT connection lost", broker=self.config.name,
                                          err=str(exc))

    async def close(self) -> None:
        """DISCONNECT and close; a publish still holding the session is cut off."""
        self._closed = True
        with trio.move_on_after(CLOSE_TIMEOUT):
            async with self._lock:
                session, self._session = self._session, None
                if session is not None:
                    try:
                        await _in_thread(session.disconnect)
                    finally:
                        session.abort()
                    self.service.log.debug("disconnected from MQTT broker",
                                           broker=self.config.name)
        self._drop()


#: The service test's ``qos``: Kapacitor's QoSLevel names (its decoder spells the third
#: one "exactly-one", while its encoder writes "exactly-once", which it then refuses).
TEST_QOS = {"at-most-once": 0, "at-least-once": 1, "exactly-one": 2}
_TEST_OPTION_TYPES: dict[str, type | tuple[type, ...]] = {
    "broker-name": str, "topic": str, "message": str, "qos": str, "retained": bool}
_GO_TYPES = {"broker-name": "string", "topic": "string", "message": "string",
             "qos": "mqtt.QoSLevel", "retained": "bool"}


def _json_kind(value: Any) -> str:
    """How Go's encoding/json names the kind of a decoded JSON value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else "null"


def _go_quote(text: str) -> str:
    """``text`` as Go's %q writes a plain string."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


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

    # -- /kapacitor/v1/service-tests/mqtt, as Kapacitor's mqtt service answers it -------
    def default_broker_name(self) -> str:
        """Kapacitor's default broker: the element with ``default = true``, or the only
        element there is (enabled or not); empty when neither."""
        name = next((e.name for e in self.config if e.default), "")
        return self.config[0].name if len(self.config) == 1 else name

    def test_options(self) -> dict[str, Any]:
        return {"broker-name": self.default_broker_name(), "topic": "",
                "message": "test MQTT message", "qos": "at-most-once", "retained": False}

    async def test(self, options: dict[str, Any]) -> None:
        """Publish ``message`` as it is (no template) to ``topic`` of the broker."""
        defaults = self.test_options()
        options = {key: defaults[key] if options.get(key) is None else options[key]
                   for key in defaults}  # a JSON null leaves a Go field as it was
        for key, kind in _TEST_OPTION_TYPES.items():
            value = options.get(key)
            if not isinstance(value, kind) or (kind is str and isinstance(value, bool)):
                raise KapaError(f"failed to decode JSON body:json: cannot unmarshal "
                                f"{_json_kind(value)} into Go struct field "
                                f"testOptions.{key} of type {_GO_TYPES[key]}")
        qos_name = options["qos"]
        if qos_name not in TEST_QOS:
            raise KapaError("failed to decode JSON body:invalid QoS")
        topic = options["topic"]
        if not topic:
            raise KapaError("missing MQTT topic")
        name = options["broker-name"] or self.default_broker_name()
        if not any(e.name == name and e.enabled for e in self.config):
            raise KapaError(f"unknown MQTT broker {_go_quote(name)}")
        try:
            check_topic_name(topic)
        except MQTTError as exc:
            raise HandlerError(f"mqtt: cannot publish: {exc}") from None
        await self.publish(name, topic, options["message"].encode(), TEST_QOS[qos_name],
                           options["retained"])

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

"""The MQTT sessions: paho-mqtt clients driven from trio's worker threads.

A :class:`Session` is one connected paho client, used from one worker thread at a time
and running no network thread of its own; a :class:`BrokerClient` owns the session with
one broker, opens it on first use, keeps it alive and reconnects when it dropped.
"""

from __future__ import annotations

import math
import ssl
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import paho.mqtt.client as paho
import trio
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from kapa_core.plugin_api import HandlerError

from .config import BrokerAddress, MQTTConfig, broker_address, ssl_context

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


class Log(Protocol):
    """The logger a service writes to (``ServiceContext.logger`` is one)."""

    def debug(self, msg: str, **kv: Any) -> None: ...
    def info(self, msg: str, **kv: Any) -> None: ...
    def warn(self, msg: str, **kv: Any) -> None: ...
    def error(self, msg: str, **kv: Any) -> None: ...


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
    wrapper: Any = paho._WebsocketWrapper  # private to paho, so untyped
    build: Callable[[Any, int, bytearray, int], bytearray] = wrapper._create_frame
    if getattr(build, "masks_always", False):
        return

    def create_frame(self: Any, opcode: int, data: bytearray,
                     do_masking: int = 1) -> bytearray:
        return build(self, opcode, data, 1)

    # marks paho's patched method, so importing this module again does not wrap it twice
    create_frame.masks_always = True  # type: ignore[attr-defined]  # a function attribute
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

    def __init__(self, config: MQTTConfig, log: Log,
                 check_outgoing: Callable[[str], None]) -> None:
        self.config = config
        self.log = log
        self.check_outgoing = check_outgoing
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
                    self.log.info("MQTT connection lost, reconnecting",
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
        self.check_outgoing(config.url)
        deadline = time.monotonic() + CONNECT_TIMEOUT
        keepalive = max(1, math.ceil(KEEPALIVE))
        session = await _in_thread(lambda: Session.open(
            address, client_id=self.client_id, username=config.username,
            password=config.password, keepalive=keepalive, context=context,
            deadline=deadline))
        self.log.info("connected to MQTT broker", broker=config.name,
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
                    self.log.info("MQTT connection lost", broker=self.config.name,
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
                    self.log.debug("disconnected from MQTT broker",
                                           broker=self.config.name)
        self._drop()


#: The service test's ``qos``: Kapacitor's QoSLevel names (its decoder spells the third

"""MQTT over WebSocket: a trio stream that carries bytes in WebSocket binary frames.

MQTT 3.1.1 section 6 runs the MQTT byte stream over a WebSocket (RFC 6455) whose
subprotocol is ``mqtt``: the client sends every byte in masked binary frames, and the
frames it receives may split or join MQTT packets anywhere. :class:`WebSocketStream`
wraps a connected TCP or TLS stream, does the opening handshake in :meth:`open`, and then
behaves as a plain byte stream, so :class:`~.mqtt_wire.Connection` runs on it unchanged.
Framing and the handshake come from ``wsproto`` (sans-IO, built on h11)::

    tcp = await trio.open_tcp_stream("broker", 80)
    stream = await WebSocketStream.open(tcp, host="broker", path="/mqtt")

Pings are answered with pongs while receiving; a close frame or the end of the TCP
stream reads as end of stream (``b""``), a close with an error code or a text frame as
``trio.BrokenResourceError``. A refused upgrade is a :class:`HandshakeFailed` naming the
HTTP status.
"""

from __future__ import annotations

import contextlib
from http import HTTPStatus

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

#: The subprotocol MQTT 3.1.1 section 6 registers for the WebSocket handshake.
SUBPROTOCOL = "mqtt"
#: Close codes that end the stream normally (going away, no code, transport closed).
_NORMAL_CLOSE = {CloseReason.NORMAL_CLOSURE, CloseReason.GOING_AWAY,
                 CloseReason.NO_STATUS_RCVD, CloseReason.ABNORMAL_CLOSURE}
_RECEIVE_SIZE = 65536


class HandshakeFailed(Exception):
    """The server refused the WebSocket upgrade or answered it wrongly."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def authority(host: str, port: int, default_port: int) -> str:
    """The ``Host`` header of a request to ``host:port`` (the port only when not the
    scheme's default; an IPv6 address in brackets)."""
    shown = f"[{host}]" if ":" in host else host
    return shown if port == default_port else f"{shown}:{port}"


def _status_text(status: int) -> str:
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


class WebSocketStream(trio.abc.Stream):
    """A byte stream over one client WebSocket; make one with :meth:`open`."""

    def __init__(self, stream: trio.abc.Stream, ws: WSConnection) -> None:
        self.stream = stream
        self._ws = ws
        self._buffer = bytearray()
        self._send_lock = trio.Lock()
        self._eof = False
        self._error = ""
        self._closed = False
        #: The subprotocol the server chose (None when it named none).
        self.subprotocol: str | None = None

    @classmethod
    async def open(cls, stream: trio.abc.Stream, *, host: str, path: str,
                   subprotocol: str = SUBPROTOCOL) -> WebSocketStream:
        """Send the upgrade request for ``path`` over ``stream`` (connected, and TLS
        already negotiated for wss) and wait for the 101 answer; ``host`` is the Host
        header. HandshakeFailed for a refusal, a bad answer or a server that hung up."""
        ws_stream = cls(stream, WSConnection(ConnectionType.CLIENT))
        try:
            request = ws_stream._ws.send(Request(host=host, target=path,
                                                 subprotocols=[subprotocol]))
        except (LocalProtocolError, UnicodeError) as exc:
            raise HandshakeFailed(f"cannot request {path!r}: {exc}") from None
        await stream.send_all(request)
        while ws_stream._ws.state is ConnectionState.CONNECTING:
            data = await stream.receive_some(_RECEIVE_SIZE)
            if not data:
                raise HandshakeFailed(f"the server closed the connection before answering "
                                      f"the upgrade of {path}")
            try:
                ws_stream._ws.receive_data(data)
                events = list(ws_stream._ws.events())
            except RemoteProtocolError as exc:
                raise HandshakeFailed(f"bad answer to the upgrade of {path}: "
                                      f"{exc}") from None
            for event in events:
                if isinstance(event, RejectConnection):
                    raise HandshakeFailed(f"the server refused the upgrade of {path}: "
                                          f"{_status_text(event.status_code)}",
                                          event.status_code)
                if isinstance(event, AcceptConnection):
                    ws_stream.subprotocol = event.subprotocol
                else:  # frames that came right behind the 101
                    await ws_stream._send_bytes(ws_stream._handle(event))
        return ws_stream

    # -- trio.abc.Stream --------------------------------------------------------------
    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` as one masked binary frame."""
        if self._closed:
            raise trio.ClosedResourceError("the WebSocket stream is closed")
        if self._ws.state is not ConnectionState.OPEN:
            raise trio.BrokenResourceError(self._error or "the WebSocket is closing")
        if not data:
            await trio.lowlevel.checkpoint()
            return
        await self._send_bytes(self._ws.send(BytesMessage(data=bytes(data))))

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """The payload of binary frames, up to ``max_bytes``; ``b""`` once closed."""
        if self._closed:
            raise trio.ClosedResourceError("the WebSocket stream is closed")
        while not self._buffer:
            if self._error:
                raise trio.BrokenResourceError(self._error)
            if self._eof:
                await trio.lowlevel.checkpoint()
                return b""
            data = await self.stream.receive_some(_RECEIVE_SIZE)
            try:
                self._ws.receive_data(data or None)  # None: the TCP stream ended
            except LocalProtocolError:  # data after the connection was closed
                self._eof = True
                continue
            reply = b"".join(self._handle(event) for event in self._ws.events())
            if reply:
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await self._send_bytes(reply)
        size = len(self._buffer) if max_bytes is None else max_bytes
        chunk = bytes(self._buffer[:size])
        del self._buffer[:size]
        return chunk

    async def aclose(self) -> None:
        """Send a close frame when the WebSocket is still open, then close the stream."""
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        try:
            if self._ws.state is ConnectionState.OPEN:
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await self._send_bytes(self._ws.send(
                        CloseConnection(code=CloseReason.NORMAL_CLOSURE)))
        finally:
            await self.stream.aclose()

    # -- internals --------------------------------------------------------------------
    async def _send_bytes(self, data: bytes) -> None:
        if not data:
            return
        async with self._send_lock:
            await self.stream.send_all(data)

    def _handle(self, event: Event) -> bytes:
        """Buffer the data of ``event``; the bytes to answer with (pong, close)."""
        if isinstance(event, BytesMessage):
            self._buffer += event.data
        elif isinstance(event, Ping):
            return self._reply(event.response())
        elif isinstance(event, CloseConnection):
            self._eof = True
            if event.code not in _NORMAL_CLOSE:
                self._error = f"the WebSocket was closed with code {event.code}" + (
                    f": {event.reason}" if event.reason else "")
            return self._reply(event.response())
        elif isinstance(event, TextMessage):
            # MQTT section 6: any frame other than binary closes the connection.
            self._eof = True
            self._error = "the server sent a text frame (MQTT needs binary frames)"
            return self._reply(CloseConnection(code=CloseReason.UNSUPPORTED_DATA))
        return b""  # Pong, or handshake events already dealt with

    def _reply(self, event: Event) -> bytes:
        """The bytes of ``event`` when the connection state still allows sending it."""
        if self._ws.state not in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            return b""
        try:
            return self._ws.send(event)
        except LocalProtocolError:
            return b""

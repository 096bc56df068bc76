"""MQTT 3.1.1 on the wire: packet encoding and decoding, and one connection over trio.

The encoders and parsers work on bytes only (no I/O), so any transport can use them::

    data = publish("alerts/cpu", b"cpu is CRITICAL", qos=1, packet_id=7)
    reader = PacketReader()
    reader.feed(received)
    packet = reader.next()          # a Packet, or None until a whole one arrived

:class:`Connection` is a publisher's session over a trio stream (TCP, TLS through
``trio.SSLStream``, or either one carrying a WebSocket, see :mod:`.mqtt_websocket`):
CONNECT and the CONNACK check, PUBLISH with the QoS 1 (PUBACK) and QoS 2
(PUBREC/PUBREL/PUBCOMP) handshakes, PINGREQ and DISCONNECT. It is not safe for
concurrent use; callers serialize. Every failure is an :class:`MQTTError`: a refused
CONNECT is a :class:`ConnectRefused` naming the broker's reason, a broken or closed
stream a :class:`ConnectionLost`. Callers bound each call with a trio timeout.
"""

from __future__ import annotations

import contextlib
import ssl
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import trio

from .mqtt_websocket import HandshakeFailed, WebSocketStream, authority

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = (
    8, 9, 10, 11, 12, 13, 14)

#: The largest Remaining Length the 4-byte variable integer can express.
MAX_REMAINING = 268_435_455

#: CONNACK return codes of MQTT 3.1.1 (section 3.2.2.3) and what they mean.
CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}


class MQTTError(Exception):
    """An MQTT exchange failed: a protocol violation, a refusal or a lost connection."""


class ConnectRefused(MQTTError):
    """The broker answered CONNECT with a non-zero return code."""

    def __init__(self, code: int) -> None:
        reason = CONNACK_REASONS.get(code, "unknown reason")
        super().__init__(f"connection refused: {reason} (CONNACK return code {code})")
        self.code = code
        self.reason = reason


class ConnectionLost(MQTTError):
    """The stream broke, was closed, or the broker hung up."""


@dataclass(frozen=True, slots=True)
class Packet:
    """One control packet: its type (1-14), the fixed header's flag bits and its body."""

    type: int
    flags: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded PUBLISH."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int = 0


# -- encoding -----------------------------------------------------------------------------
def encode_length(length: int) -> bytes:
    """The Remaining Length as MQTT's variable-length integer (1 to 4 bytes)."""
    if not 0 <= length <= MAX_REMAINING:
        raise MQTTError(f"packet too large ({length} bytes; at most {MAX_REMAINING})")
    out = bytearray()
    while True:
        length, digit = divmod(length, 128)
        out.append(digit | (0x80 if length else 0))
        if not length:
            return bytes(out)


def encode_string(text: str | bytes) -> bytes:
    """A UTF-8 string (or raw bytes) prefixed by its two-byte length."""
    data = text.encode() if isinstance(text, str) else text
    if len(data) > 0xFFFF:
        raise MQTTError(f"string too long for MQTT ({len(data)} bytes; at most 65535)")
    return struct.pack("!H", len(data)) + data


def encode_packet(kind: int, flags: int, body: bytes = b"") -> bytes:
    """Fixed header (type, flags, Remaining Length) followed by ``body``."""
    return bytes([(kind << 4) | (flags & 0x0F)]) + encode_length(len(body)) + body


def connect(client_id: str, *, username: str = "", password: str = "",
            keepalive: int = 30, clean_session: bool = True) -> bytes:
    """CONNECT for protocol level 4 (3.1.1). A password without a user name is sent with
    an empty user name, since 3.1.1 allows a password only after a user name."""
    if not 0 <= keepalive <= 0xFFFF:
        raise MQTTError(f"keep-alive must be 0-65535 seconds, got {keepalive}")
    flags = 0x02 if clean_session else 0
    payload = encode_string(client_id)
    if username or password:
        flags |= 0x80
        payload += encode_string(username)
    if password:
        flags |= 0x40
        payload += encode_string(password)
    header = encode_string("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive)
    return encode_packet(CONNECT, 0, header + payload)


def publish(topic: str, payload: bytes, *, qos: int = 0, retain: bool = False,
            packet_id: int = 0, dup: bool = False) -> bytes:
    """PUBLISH; ``packet_id`` (1-65535) is required for QoS 1 and 2."""
    if qos not in (0, 1, 2):
        raise MQTTError(f"invalid QoS {qos} (expected 0, 1 or 2)")
    body = encode_string(topic)
    if qos:
        if not 0 < packet_id <= 0xFFFF:
            raise MQTTError(f"QoS {qos} needs a packet id 1-65535, got {packet_id}")
        body += struct.pack("!H", packet_id)
    flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    return encode_packet(PUBLISH, flags, body + payload)


def ack(kind: int, packet_id: int) -> bytes:
    """PUBACK, PUBREC, PUBREL (whose flags must be 0b0010), PUBCOMP or UNSUBACK."""
    if kind not in (PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK):
        raise MQTTError(f"packet type {kind} is not an acknowledgement")
    return encode_packet(kind, 0x02 if kind == PUBREL else 0, struct.pack("!H", packet_id))


def subscribe(packet_id: int, topics: Sequence[tuple[str, int]]) -> bytes:
    """SUBSCRIBE to ``(topic filter, maximum QoS)`` pairs."""
    if not topics:
        raise MQTTError("SUBSCRIBE needs at least one topic filter")
    body = struct.pack("!H", packet_id)
    for topic, qos in topics:
        body += encode_string(topic) + bytes([qos])
    return encode_packet(SUBSCRIBE, 0x02, body)


PINGREQ_PACKET = encode_packet(PINGREQ, 0)
DISCONNECT_PACKET = encode_packet(DISCONNECT, 0)


# -- decoding -----------------------------------------------------------------------------
class PacketReader:
    """Splits a byte stream into packets: ``feed()`` what arrived, ``next()`` to take one."""

    def __init__(self, max_size: int = MAX_REMAINING) -> None:
        self._buffer = bytearray()
        self.max_size = max_size

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next(self) -> Packet | None:
        """The next complete packet, or None when more bytes are needed."""
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        length = 0
        for index in range(1, 5):
            if index >= len(buffer):
                return None
            byte = buffer[index]
            length |= (byte & 0x7F) << (7 * (index - 1))
            if not byte & 0x80:
                break
        else:
            raise MQTTError("malformed Remaining Length (more than 4 bytes)")
        if length > self.max_size:
            raise MQTTError(f"packet of {length} bytes is larger than the limit "
                            f"({self.max_size})")
        start = index + 1
        if len(buffer) < start + length:
            return None
        packet = Packet(buffer[0] >> 4, buffer[0] & 0x0F, bytes(buffer[start:start + length]))
        del buffer[:start + length]
        return packet


def parse_connack(packet: Packet) -> tuple[bool, int]:
    """``(session present, return code)`` of a CONNACK."""
    if packet.type != CONNACK or len(packet.body) != 2:
        raise MQTTError(f"expected CONNACK, got packet type {packet.type} with "
                        f"{len(packet.body)} bytes")
    return bool(packet.body[0] & 0x01), packet.body[1]


def parse_packet_id(packet: Packet) -> int:
    """The packet id of PUBACK, PUBREC, PUBREL, PUBCOMP or UNSUBACK."""
    if len(packet.body) != 2:
        raise MQTTError(f"packet type {packet.type}: expected a 2-byte packet id, got "
                        f"{len(packet.body)} bytes")
    return int(struct.unpack("!H", packet.body)[0])


def parse_publish(packet: Packet) -> Message:
    if packet.type != PUBLISH:
        raise MQTTError(f"expected PUBLISH, got packet type {packet.type}")
    qos = (packet.flags >> 1) & 0x03
    if qos == 3:
        raise MQTTError("PUBLISH with QoS 3")
    body = packet.body
    if len(body) < 2:
        raise MQTTError("PUBLISH too short")
    (size,) = struct.unpack("!H", body[:2])
    end = 2 + size
    if len(body) < end + (2 if qos else 0):
        raise MQTTError("PUBLISH too short")
    try:
        topic = body[2:end].decode()
    except UnicodeDecodeError:
        raise MQTTError("PUBLISH topic is not valid UTF-8") from None
    packet_id = 0
    if qos:
        (packet_id,) = struct.unpack("!H", body[end:end + 2])
        end += 2
    return Message(topic, body[end:], qos, bool(packet.flags & 0x01),
                   bool(packet.flags & 0x08), packet_id)


def parse_suback(packet: Packet) -> tuple[int, list[int]]:
    """``(packet id, granted QoS per filter)``; 0x80 marks a refused filter."""
    if packet.type != SUBACK or len(packet.body) < 3:
        raise MQTTError(f"expected SUBACK, got packet type {packet.type}")
    (packet_id,) = struct.unpack("!H", packet.body[:2])
    return packet_id, list(packet.body[2:])


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


# -- a connection over trio -----------------------------------------------------------------
class Connection:
    """One MQTT session over a trio stream. Use :meth:`open` to make one."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._reader = PacketReader()
        self._next_id = 0
        self.closed = False
        #: ``trio.current_time()`` of the last packet sent (for keep-alive).
        self.last_sent = trio.current_time()

    @classmethod
    async def open(cls, host: str, port: int, *, client_id: str, username: str = "",
                   password: str = "", keepalive: int = 30, clean_session: bool = True,
                   ssl_context: ssl.SSLContext | None = None,
                   websocket_path: str | None = None) -> Connection:
        """Connect (TLS when ``ssl_context`` is given; over a WebSocket upgraded at
        ``websocket_path`` when given), send CONNECT, check the CONNACK."""
        try:
            tcp = await trio.open_tcp_stream(host, port)
        except OSError as exc:
            raise ConnectionLost(f"cannot connect to {host}:{port}: {exc}") from None
        stream: trio.abc.Stream = tcp
        if ssl_context is not None:
            stream = trio.SSLStream(tcp, ssl_context, server_hostname=host)
        conn = cls(stream)
        try:
            if isinstance(stream, trio.SSLStream):
                try:
                    await stream.do_handshake()
                except trio.BrokenResourceError as exc:
                    raise ConnectionLost(f"TLS handshake with {host}:{port} failed: "
                                         f"{_describe(exc)}") from None
            if websocket_path is not None:
                default_port = 443 if ssl_context is not None else 80
                try:
                    conn.stream = await WebSocketStream.open(
                        stream, host=authority(host, port, default_port), path=websocket_path)
                except (HandshakeFailed, trio.BrokenResourceError) as exc:
                    raise ConnectionLost(f"WebSocket handshake with {host}:{port} failed: "
                                         f"{_describe(exc)}") from None
            await conn.send(connect(client_id, username=username, password=password,
                                    keepalive=keepalive, clean_session=clean_session))
            packet = await conn.receive()
            _, code = parse_connack(packet)
            if code:
                raise ConnectRefused(code)
        except BaseException:
            await conn.abort()
            raise
        return conn

    def next_packet_id(self) -> int:
        self._next_id = self._next_id % 0xFFFF + 1
        return self._next_id

    async def send(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionLost("the connection is closed")
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self.closed = True
            raise ConnectionLost(f"send failed: {_describe(exc)}") from None
        self.last_sent = trio.current_time()

    async def receive(self) -> Packet:
        """The next packet from the broker; ConnectionLost when it hung up."""
        while True:
            packet = self._reader.next()
            if packet is not None:
                return packet
            if self.closed:
                raise ConnectionLost("the connection is closed")
            try:
                data = await self.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                self.closed = True
                raise ConnectionLost(f"receive failed: {_describe(exc)}") from None
            if not data:
                self.closed = True
                raise ConnectionLost("the broker closed the connection")
            self._reader.feed(data)

    async def _expect(self, kind: int, packet_id: int) -> None:
        """Wait for the acknowledgement ``kind`` of ``packet_id``.

        A publisher-only session receives nothing unasked, so anything else is a
        leftover (a late PINGRESP) and is skipped.
        """
        while True:
            packet = await self.receive()
            if packet.type == kind and parse_packet_id(packet) == packet_id:
                return

    async def publish(self, topic: str, payload: bytes, *, qos: int = 0,
                      retain: bool = False) -> None:
        """PUBLISH and, for QoS 1 and 2, complete the broker's acknowledgements."""
        packet_id = self.next_packet_id() if qos else 0
        await self.send(publish(topic, payload, qos=qos, retain=retain,
                                packet_id=packet_id))
        if qos == 1:
            await self._expect(PUBACK, packet_id)
        elif qos == 2:
            await self._expect(PUBREC, packet_id)
            await self.send(ack(PUBREL, packet_id))
            await self._expect(PUBCOMP, packet_id)

    async def ping(self) -> None:
        """PINGREQ, then wait for the PINGRESP."""
        await self.send(PINGREQ_PACKET)
        while (await self.receive()).type != PINGRESP:
            pass

    async def disconnect(self) -> None:
        """Send DISCONNECT (if the stream is still up) and close."""
        if not self.closed:
            with contextlib.suppress(MQTTError):
                await self.send(DISCONNECT_PACKET)
        await self.abort()

    async def abort(self) -> None:
        """Close the stream without a word to the broker."""
        self.closed = True
        await trio.aclose_forcefully(self.stream)


def _describe(exc: BaseException) -> str:
    """The most telling text of a stream error (trio wraps the OS or TLS error)."""
    cause = exc.__cause__ or exc
    return str(cause) or type(cause).__name__

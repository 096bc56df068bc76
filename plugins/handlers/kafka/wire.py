"""A minimal Kafka producer on trio: the parts of the Kafka binary protocol the handler needs.

Every request is a big-endian frame: ``int32 size`` then the header ``int16 api_key,
int16 api_version, int32 correlation_id, string client_id`` and the body; the response is
``int32 size, int32 correlation_id`` and its body. Spoken here:

* ApiVersions v0 (key 18), once per connection, to pick the versions of the two below:
  those Kapacitor 1.5.7's kafka-go uses (Metadata v1, Produce v7 or else v3) when the
  broker speaks them, else the highest both sides speak (and refuse brokers older than
  0.11);
* Metadata v1-v8 (key 3) for one topic: its partitions and their leaders;
* Produce v3-v8 (key 0) with the ``acks`` asked (the handler asks -1) carrying RecordBatch v2 ("magic 2", CRC-32C);
* SaslHandshake v0/v1 (key 17) and SaslAuthenticate v0 (key 36) for SASL PLAIN,
  SCRAM-SHA-256/512 and OAUTHBEARER (a static token, or one fetched for each connection).

Partitioners choose a partition from the message key as Kapacitor's do: ``crc32``
(IEEE CRC-32 modulo the partition count), ``murmur2`` (Kafka's Java murmur2, masked
positive), ``murmur3`` and ``fnv-1a`` (32-bit hash taken as int32, remainder made
positive, as sarama's hash partitioner does).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import ssl
import struct
import zlib
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import trio

PRODUCE, METADATA, SASL_HANDSHAKE, API_VERSIONS, SASL_AUTHENTICATE = 0, 3, 17, 18, 36
#: The versions spoken here (the non-flexible ones; Kafka 4 dropped Metadata below v4).
SPOKEN_PRODUCE = (3, 4, 5, 6, 7, 8)
SPOKEN_METADATA = (1, 2, 3, 4, 5, 6, 7, 8)
#: The versions Kapacitor 1.5.7's kafka-go uses, best first (Metadata v1 always, the
#: highest of Produce v7 and v3 the broker speaks): taken when the broker speaks one,
#: so that brokers see the requests they saw from Kapacitor. Brokers speaking none
#: (Kafka 4 dropped Metadata below v4) get the highest of the spoken ones.
KAPACITOR_PRODUCE = (7, 3)
KAPACITOR_METADATA = (1,)

#: Names of the error codes a producer is likely to see (the Kafka protocol guide's table).
ERRORS = {
    -1: "UNKNOWN_SERVER_ERROR", 1: "OFFSET_OUT_OF_RANGE", 2: "CORRUPT_MESSAGE",
    3: "UNKNOWN_TOPIC_OR_PARTITION", 4: "INVALID_FETCH_SIZE", 5: "LEADER_NOT_AVAILABLE",
    6: "NOT_LEADER_OR_FOLLOWER", 7: "REQUEST_TIMED_OUT", 8: "BROKER_NOT_AVAILABLE",
    9: "REPLICA_NOT_AVAILABLE", 10: "MESSAGE_TOO_LARGE", 13: "NETWORK_EXCEPTION",
    17: "INVALID_TOPIC_EXCEPTION", 18: "RECORD_LIST_TOO_LARGE", 19: "NOT_ENOUGH_REPLICAS",
    20: "NOT_ENOUGH_REPLICAS_AFTER_APPEND", 21: "INVALID_REQUIRED_ACKS",
    29: "TOPIC_AUTHORIZATION_FAILED", 31: "CLUSTER_AUTHORIZATION_FAILED",
    33: "UNSUPPORTED_SASL_MECHANISM", 34: "ILLEGAL_SASL_STATE", 35: "UNSUPPORTED_VERSION",
    42: "INVALID_REQUEST", 43: "UNSUPPORTED_FOR_MESSAGE_FORMAT", 58: "SASL_AUTHENTICATION_FAILED",
    87: "INVALID_RECORD",
}
#: Errors after which fresh metadata may route the next attempt elsewhere.
RETRIABLE = frozenset({3, 5, 6, 7, 8, 13})


class KafkaError(Exception):
    """A failed exchange with a broker (connection, protocol or a Kafka error code).

    ``retriable`` marks failures that a new attempt, with fresh metadata or a new
    connection, may get past.
    """

    def __init__(self, message: str, *, retriable: bool = False) -> None:
        super().__init__(message)
        self.retriable = retriable


def error_name(code: int) -> str:
    return f"{ERRORS.get(code, 'error')} ({code})"


# -- CRC-32C (Castagnoli), the RecordBatch checksum ---------------------------------------

def _crc32c_table() -> tuple[int, ...]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC32C = _crc32c_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C of ``data`` (reflected polynomial 0x82F63B78), continuing from ``crc``."""
    crc ^= 0xFFFFFFFF
    table = _CRC32C
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# -- partitioners -------------------------------------------------------------------------

def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (seed 0x9747b28c) as an unsigned 32-bit value."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    rest = length % 4
    if rest >= 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h


def murmur3(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86 32-bit."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF
    h = seed & mask
    whole = len(data) - len(data) % 4
    for i in range(0, whole, 4):
        k = (int.from_bytes(data[i:i + 4], "little") * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        h ^= (k * c2) & mask
        h = ((h << 13) | (h >> 19)) & mask
        h = (h * 5 + 0xE6546B64) & mask
    tail = data[whole:]
    if tail:
        k = (int.from_bytes(tail, "little") * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        h ^= (k * c2) & mask
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    h ^= h >> 16
    return h


def fnv1a(data: bytes) -> int:
    """32-bit FNV-1a."""
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def _signed_remainder(h: int, count: int) -> int:
    """sarama's hash partitioner: ``int32(h) % count``, negated when negative."""
    signed = h - (1 << 32) if h & 0x80000000 else h
    return abs(signed) % count


PARTITIONERS: dict[str, Callable[[bytes, int], int]] = {
    "crc32": lambda key, n: zlib.crc32(key) % n,
    "murmur2": lambda key, n: (murmur2(key) & 0x7FFFFFFF) % n,
    "murmur3": lambda key, n: _signed_remainder(murmur3(key), n),
    "fnv-1a": lambda key, n: _signed_remainder(fnv1a(key), n),
}
#: The algorithm names accepted, with Kapacitor 1.6's name for the default one.
ALGORITHMS = {"": "crc32", "crc32": "crc32", "crc32c": "crc32", "murmur2": "murmur2",
              "murmur3": "murmur3", "fnv-1a": "fnv-1a"}


def partition_for(algorithm: str, key: bytes, partitions: Sequence[int]) -> int:
    """The partition (from the sorted ``partitions``) the hash of ``key`` picks."""
    index = PARTITIONERS[ALGORITHMS[algorithm]](key, len(partitions))
    return sorted(partitions)[index]


# -- encoding -----------------------------------------------------------------------------

def i8(v: int) -> bytes:
    return struct.pack(">b", v)


def i16(v: int) -> bytes:
    return struct.pack(">h", v)


def i32(v: int) -> bytes:
    return struct.pack(">i", v)


def i64(v: int) -> bytes:
    return struct.pack(">q", v)


def string(v: str | None) -> bytes:
    if v is None:
        return i16(-1)
    raw = v.encode()
    return i16(len(raw)) + raw


def blob(v: bytes | None) -> bytes:
    if v is None:
        return i32(-1)
    return i32(len(v)) + v


def array(items: Sequence[bytes]) -> bytes:
    return i32(len(items)) + b"".join(items)


def varint(v: int) -> bytes:
    """A zig-zag LEB128 varint/varlong as records use them."""
    z = (v << 1) ^ (v >> 63)
    out = bytearray()
    while True:
        byte = z & 0x7F
        z >>= 7
        if z:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _varbytes(v: bytes | None) -> bytes:
    return varint(-1) if v is None else varint(len(v)) + v


@dataclass(frozen=True)
class Message:
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    headers: tuple[tuple[str, bytes | None], ...] = ()


def record_batch(messages: Sequence[Message]) -> bytes:
    """A RecordBatch v2 (magic 2, no compression, no producer id) holding ``messages``."""
    if not messages:
        raise ValueError("a record batch needs at least one message")
    first = messages[0].timestamp_ms
    records = []
    for offset, m in enumerate(messages):
        body = (i8(0) + varint(m.timestamp_ms - first) + varint(offset) + _varbytes(m.key)
                + _varbytes(m.value) + varint(len(m.headers))
                + b"".join(_varbytes(k.encode()) + _varbytes(v) for k, v in m.headers))
        records.append(varint(len(body)) + body)
    after_crc = (i16(0) + i32(len(messages) - 1) + i64(first)
                 + i64(max(m.timestamp_ms for m in messages)) + i64(-1) + i16(-1) + i32(-1)
                 + array(records))
    tail = i32(-1) + i8(2) + struct.pack(">I", crc32c(after_crc)) + after_crc
    return i64(0) + i32(len(tail)) + tail


# -- decoding -----------------------------------------------------------------------------

class Reader:
    """Reads a response body; running past its end raises :class:`KafkaError`."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise KafkaError("malformed response from the broker (truncated)")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def i8(self) -> int:
        return int.from_bytes(self._take(1), "big", signed=True)

    def i16(self) -> int:
        return int.from_bytes(self._take(2), "big", signed=True)

    def i32(self) -> int:
        return int.from_bytes(self._take(4), "big", signed=True)

    def i64(self) -> int:
        return int.from_bytes(self._take(8), "big", signed=True)

    def string(self) -> str | None:
        n = self.i16()
        return None if n < 0 else self._take(n).decode("utf-8", "replace")

    def blob(self) -> bytes | None:
        n = self.i32()
        return None if n < 0 else self._take(n)

    def count(self) -> int:
        n = self.i32()
        if n > len(self.data):
            raise KafkaError("malformed response from the broker (array size)")
        return max(n, 0)


# -- connections --------------------------------------------------------------------------

@dataclass(frozen=True)
class SaslConfig:
    """SASL settings: ``mechanism`` PLAIN, SCRAM-SHA-256/512 or OAUTHBEARER; handshake
    ``version`` 0 (raw tokens after the handshake) or 1 (SaslAuthenticate requests)."""

    mechanism: str = "PLAIN"
    username: str = ""
    password: str = ""
    version: int = 1
    token: str = ""
    extensions: tuple[tuple[str, str], ...] = ()
    #: fetches the OAUTHBEARER token for each new connection (instead of ``token``)
    token_source: Callable[[], Awaitable[str]] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ClientConfig:
    brokers: tuple[str, ...]
    client_id: str = "kapacitor"
    timeout: float = 10.0
    ssl_context: ssl.SSLContext | None = None
    sasl: SaslConfig | None = None
    #: called with ``kafka://host:port`` before each connection; raises to refuse it
    check_address: Callable[[str], None] | None = None


def _reason(exc: OSError) -> str:
    """The underlying cause of trio's "all attempts to connect ... failed"."""
    cause = exc.__cause__
    while isinstance(cause, BaseExceptionGroup) and cause.exceptions:
        cause = cause.exceptions[-1]
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return exc.strerror or str(exc)


def split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        raise KafkaError(f"invalid broker address {address!r} (expected host:port)")
    return host.strip("[]"), int(port)


class BrokerConnection:
    """One TCP (or TLS) connection to a broker; requests go one at a time."""

    def __init__(self, address: str, stream: trio.abc.Stream, client_id: str) -> None:
        self.address = address
        self.stream = stream
        self.client_id = client_id
        self.broken = False
        self._lock = trio.Lock()
        self._correlation = 0
        self._buffer = bytearray()
        #: the version of each API used on this connection (ApiVersions may raise them)
        self.versions = {PRODUCE: SPOKEN_PRODUCE[0], METADATA: SPOKEN_METADATA[0]}

    @classmethod
    async def open(cls, address: str, config: ClientConfig) -> BrokerConnection:
        host, port = split_address(address)
        if config.check_address is not None:
            config.check_address(f"kafka://{address}")
        try:
            stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
        except OSError as exc:
            raise KafkaError(f"cannot connect to broker {address}: {_reason(exc)}",
                             retriable=True) from None
        if config.ssl_context is not None:
            stream = trio.SSLStream(stream, config.ssl_context, server_hostname=host)
            try:
                await stream.do_handshake()
            except (trio.BrokenResourceError, ssl.SSLError) as exc:
                await trio.aclose_forcefully(stream)
                cause = exc.__cause__ or exc
                raise KafkaError(f"TLS handshake with broker {address} failed: {cause}"
                                 ) from None
        conn = cls(address, stream, config.client_id)
        try:
            await conn._check_versions()
            if config.sasl is not None:
                await conn._authenticate(config.sasl)
        except BaseException:
            await conn.aclose()
            raise
        return conn

    async def aclose(self) -> None:
        self.broken = True
        await trio.aclose_forcefully(self.stream)

    async def request(self, api_key: int, version: int, body: bytes) -> Reader:
        """Send one request and return a reader over its response body."""
        async with self._lock:
            if self.broken:
                raise KafkaError(f"connection to broker {self.address} is closed", retriable=True)
            self._correlation = (self._correlation + 1) & 0x7FFFFFFF
            correlation = self._correlation
            header = i16(api_key) + i16(version) + i32(correlation) + string(self.client_id)
            try:
                await self._send(header + body)
                reader = Reader(await self._frame())
            except BaseException:
                await self.aclose()  # a half-done exchange leaves the stream unusable
                raise
            if reader.i32() != correlation:
                await self.aclose()
                raise KafkaError(f"broker {self.address} answered out of order")
            return reader

    async def _send(self, payload: bytes) -> None:
        try:
            await self.stream.send_all(i32(len(payload)) + payload)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise KafkaError(f"broker {self.address} closed the connection ({exc})",
                             retriable=True) from None

    async def _exactly(self, n: int) -> bytes:
        while len(self._buffer) < n:
            try:
                chunk = await self.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                raise KafkaError(f"broker {self.address} closed the connection ({exc})",
                                 retriable=True) from None
            if not chunk:
                raise KafkaError(f"broker {self.address} closed the connection", retriable=True)
            self._buffer += chunk
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out

    async def _frame(self) -> bytes:
        size = struct.unpack(">i", await self._exactly(4))[0]
        if size < 0 or size > 100 * 1024 * 1024:
            raise KafkaError(f"broker {self.address} sent an invalid frame size {size}")
        return await self._exactly(size)

    async def _check_versions(self) -> None:
        """Pick the Metadata and Produce versions from what the broker says it speaks."""
        reader = await self.request(API_VERSIONS, 0, b"")
        code = reader.i16()
        if code != 0:
            return  # a broker may refuse v0 yet speak the rest; Produce will tell
        versions = {}
        for _ in range(reader.count()):
            key, low, high = reader.i16(), reader.i16(), reader.i16()
            versions[key] = (low, high)
        for key, spoken, preferred, what in (
                (PRODUCE, SPOKEN_PRODUCE, KAPACITOR_PRODUCE, "Produce"),
                (METADATA, SPOKEN_METADATA, KAPACITOR_METADATA, "Metadata")):
            low, high = versions.get(key, (0, -1))
            usable = [v for v in spoken if low <= v <= high]
            if not usable:
                raise KafkaError(f"broker {self.address} speaks {what} v{low}-v{high}, none "
                                 f"of v{spoken[0]}-v{spoken[-1]} (Kafka 0.11 or newer is "
                                 "needed)")
            self.versions[key] = next((v for v in preferred if v in usable), usable[-1])

    async def _authenticate(self, sasl: SaslConfig) -> None:
        mechanism = sasl.mechanism.upper() or "PLAIN"
        if mechanism == "OAUTHBEARER" and sasl.token_source is not None:
            sasl = replace(sasl, token=await sasl.token_source())
        exchange = _sasl_exchange(mechanism, sasl)
        token = next(exchange)  # raises for a mechanism not spoken here
        reader = await self.request(SASL_HANDSHAKE, 1 if sasl.version >= 1 else 0,
                                    string(mechanism))
        code = reader.i16()
        offered = [reader.string() for _ in range(reader.count())]
        if code != 0:
            raise KafkaError(f"broker {self.address} refused SASL mechanism {mechanism}: "
                             f"{error_name(code)}; it offers {', '.join(map(str, offered))}")
        while True:
            reply = await self._sasl_round(token, sasl.version)
            try:
                token = exchange.send(reply)
            except StopIteration:
                return

    async def _sasl_round(self, token: bytes, version: int) -> bytes:
        if version >= 1:
            reader = await self.request(SASL_AUTHENTICATE, 0, blob(token))
            code, message, reply = reader.i16(), reader.string(), reader.blob()
            if code != 0:
                raise KafkaError(f"SASL authentication with broker {self.address} failed: "
                                 f"{error_name(code)}: {message or ''}".rstrip(": "))
            return reply or b""
        async with self._lock:
            await self._send(token)
            try:
                return await self._frame()
            except KafkaError:
                raise KafkaError(f"SASL authentication with broker {self.address} failed "
                                 "(connection closed)") from None


def _sasl_exchange(mechanism: str, sasl: SaslConfig) -> Generator[bytes, bytes, None]:
    """Yields each client token and receives the server's reply to it."""
    if mechanism == "PLAIN":
        yield b"\0" + sasl.username.encode() + b"\0" + sasl.password.encode()
        return
    if mechanism == "OAUTHBEARER":
        extra = "".join(f"{k}={v}\x01" for k, v in sasl.extensions)
        yield f"n,,\x01auth=Bearer {sasl.token}\x01{extra}\x01".encode()
        return
    if mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        yield from _scram(hashlib.sha256 if mechanism.endswith("256") else hashlib.sha512,
                          sasl.username, sasl.password)
        return
    raise KafkaError(f"SASL mechanism {mechanism} is not supported (PLAIN, SCRAM-SHA-256, "
                     "SCRAM-SHA-512, OAUTHBEARER)")


def _scram(digest: Callable[..., Any], username: str, password: str
           ) -> Generator[bytes, bytes, None]:
    """RFC 5802 SCRAM client (no channel binding)."""
    name = username.replace("=", "=3D").replace(",", "=2C")
    nonce = base64.b64encode(os.urandom(18)).decode()
    first_bare = f"n={name},r={nonce}"
    server_first = (yield f"n,,{first_bare}".encode()).decode()
    fields = dict(part.split("=", 1) for part in server_first.split(",") if "=" in part)
    if not fields.get("r", "").startswith(nonce) or "s" not in fields or "i" not in fields:
        raise KafkaError("SCRAM: unexpected server-first message")
    salted = hashlib.pbkdf2_hmac(digest().name, password.encode(),
                                 base64.b64decode(fields["s"]), int(fields["i"]))
    client_key = hmac.new(salted, b"Client Key", digest).digest()
    stored = digest(client_key).digest()
    final_bare = f"c=biws,r={fields['r']}"
    auth_message = f"{first_bare},{server_first},{final_bare}".encode()
    signature = hmac.new(stored, auth_message, digest).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    server_final = (yield f"{final_bare},p={base64.b64encode(proof).decode()}".encode()
                    ).decode()
    server_key = hmac.new(salted, b"Server Key", digest).digest()
    expected = base64.b64encode(hmac.new(server_key, auth_message, digest).digest()).decode()
    if server_final != f"v={expected}":
        raise KafkaError("SCRAM: the broker's signature does not match")


# -- the client ---------------------------------------------------------------------------

#: Seconds after which a topic's partitions and leaders are asked for again.
METADATA_MAX_AGE = 300.0


@dataclass
class TopicMetadata:
    partitions: dict[int, int] = field(default_factory=dict)  # partition -> leader id
    fetched: float = 0.0  # trio.current_time() when it was fetched


class KafkaClient:
    """Connections to one cluster's brokers and the partition leaders of its topics.

    ``metadata(topic)`` asks the configured brokers in turn; ``produce`` sends one
    Produce request per leader and returns each partition's error code (0 = stored).
    """

    def __init__(self, config: ClientConfig) -> None:
        if not config.brokers:
            raise KafkaError("no brokers configured")
        self.config = config
        self._brokers: dict[int, str] = {}
        self._topics: dict[str, TopicMetadata] = {}
        self._connections: dict[str, BrokerConnection] = {}
        self._connecting: dict[str, trio.Lock] = {}

    async def aclose(self) -> None:
        for conn in list(self._connections.values()):
            await conn.aclose()
        self._connections.clear()

    async def _connection(self, address: str) -> BrokerConnection:
        lock = self._connecting.setdefault(address, trio.Lock())
        async with lock:
            conn = self._connections.get(address)
            if conn is None or conn.broken:
                conn = await BrokerConnection.open(address, self.config)
                self._connections[address] = conn
            return conn

    def forget(self, topic: str) -> None:
        """Drop cached metadata so the next call asks the brokers again."""
        self._topics.pop(topic, None)

    async def metadata(self, topic: str) -> TopicMetadata:
        cached = self._topics.get(topic)
        if cached is not None and trio.current_time() - cached.fetched < METADATA_MAX_AGE:
            return cached
        errors = []
        for address in (*self.config.brokers, *self._brokers.values()):
            try:
                conn = await self._connection(address)
                version = conn.versions[METADATA]
                body = array([string(topic)])
                if version >= 4:
                    body += i8(1)  # allow_auto_topic_creation, as v1-v3 always do
                if version >= 8:
                    body += i8(0) + i8(0)  # no authorized operations
                meta = self._parse_metadata(topic, version, await conn.request(
                    METADATA, version, body))
            except KafkaError as exc:
                errors.append(str(exc))
                continue
            self._topics[topic] = meta
            return meta
        raise KafkaError("; ".join(dict.fromkeys(errors)) or "no broker answered")

    def _parse_metadata(self, topic: str, version: int, r: Reader) -> TopicMetadata:
        if version >= 3:
            r.i32()  # throttle time
        for _ in range(r.count()):
            node, host, port = r.i32(), r.string(), r.i32()
            r.string()  # rack
            self._brokers[node] = f"{host}:{port}"
        if version >= 2:
            r.string()  # cluster id
        r.i32()  # controller id
        meta = None
        for _ in range(r.count()):
            code, name = r.i16(), r.string()
            r.i8()  # is_internal
            parts = {}
            for _ in range(r.count()):
                p_code, index, leader = r.i16(), r.i32(), r.i32()
                if version >= 7:
                    r.i32()  # leader epoch
                for _ in range(3 if version >= 5 else 2):  # replicas, isr, offline
                    for _ in range(r.count()):
                        r.i32()
                if p_code not in (0, 9):  # REPLICA_NOT_AVAILABLE still has a leader
                    leader = -1
                parts[index] = leader
            if version >= 8:
                r.i32()  # topic authorized operations
            if name == topic:
                if code != 0:
                    raise KafkaError(f"topic {topic!r}: {error_name(code)}")
                meta = TopicMetadata(parts, trio.current_time())
        if meta is None or not meta.partitions:
            raise KafkaError(f"topic {topic!r}: the broker returned no partitions")
        return meta

    async def produce(self, topic: str, batches: dict[int, bytes], *, acks: int = 1,
                      timeout_ms: int = 10_000) -> dict[int, KafkaError]:
        """Send each partition's record batch to its leader.

        Returns the partitions that failed with the reason (an empty dict: all stored).
        """
        meta = await self.metadata(topic)
        by_leader: dict[int, list[int]] = {}
        failed: dict[int, KafkaError] = {}
        for partition in batches:
            leader = meta.partitions.get(partition, -1)
            if leader < 0 or leader not in self._brokers:
                failed[partition] = KafkaError(f"partition {partition} has no leader",
                                               retriable=True)
                self.forget(topic)
            else:
                by_leader.setdefault(leader, []).append(partition)

        async def send(leader: int, partitions: list[int]) -> None:
            parts = [i32(p) + blob(batches[p]) for p in partitions]
            body = (string(None) + i16(acks) + i32(timeout_ms)
                    + array([string(topic) + array(parts)]))
            try:
                conn = await self._connection(self._brokers[leader])
                version = conn.versions[PRODUCE]
                answered = self._parse_produce(version, await conn.request(
                    PRODUCE, version, body))
            except KafkaError as exc:
                failed.update({p: exc for p in partitions})
                return
            address = self._brokers[leader]
            for p in partitions:
                code = answered.get((topic, p))
                if code is None:
                    failed[p] = KafkaError(f"broker {address} did not answer for partition {p}")
                elif code != 0:
                    failed[p] = KafkaError(f"broker {address}: {error_name(code)}",
                                           retriable=code in RETRIABLE)
                    if code in RETRIABLE:
                        self.forget(topic)

        async with trio.open_nursery() as nursery:
            for leader, partitions in by_leader.items():
                nursery.start_soon(send, leader, partitions)
        return failed

    @staticmethod
    def _parse_produce(version: int, r: Reader) -> dict[tuple[str, int], int]:
        out = {}
        for _ in range(r.count()):
            name = r.string() or ""
            for _ in range(r.count()):
                index, code = r.i32(), r.i16()
                r.i64()  # base offset
                r.i64()  # log append time
                if version >= 5:
                    r.i64()  # log start offset
                if version >= 8:
                    for _ in range(r.count()):  # record errors
                        r.i32()
                        r.string()
                    r.string()  # error message
                out[(name, index)] = code
        return out

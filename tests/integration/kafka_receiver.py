"""A protocol-level Kafka broker for tests, written apart from the producer it checks.

It listens on a free 127.0.0.1 port (optionally TLS) and parses, byte by byte, the
requests a producer sends: ApiVersions v0, Metadata v1-v8 (answered with itself as the
leader of ``partitions`` partitions of every topic asked for), Produce v3-v8 (every
RecordBatch v2 is checked: lengths, magic, its CRC-32C computed here bit by bit, offset
deltas, record lengths) and SASL (PLAIN, SCRAM-SHA-256/512 and OAUTHBEARER, whose token
must equal the password) over SaslHandshake v0/v1 + SaslAuthenticate v0 or raw tokens.
Produce is answered with ``produce_error`` (0: stored), after ``produce_delay`` seconds.
Whatever breaks the protocol is appended to ``failures`` and the connection is dropped.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field


def crc32c_bitwise(data: bytes) -> int:
    """CRC-32C computed one bit at a time (polynomial 0x1EDC6F41, reflected)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


class ProtocolError(Exception):
    pass


class AuthFailed(Exception):
    pass


MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")


class Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ProtocolError(f"need {n} bytes at {self.pos}, have {len(self.data)}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> int:
        return struct.unpack(">" + fmt, self.take(struct.calcsize(fmt)))[0]

    def nstring(self) -> str | None:
        n = self.unpack("h")
        return None if n == -1 else self.take(n).decode()

    def nbytes(self) -> bytes | None:
        n = self.unpack("i")
        return None if n == -1 else self.take(n)

    def uvarint(self) -> int:
        shift = value = 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise ProtocolError("varint too long")

    def varint(self) -> int:
        z = self.uvarint()
        return (z >> 1) ^ -(z & 1)

    def var_bytes(self) -> bytes | None:
        n = self.varint()
        return None if n < 0 else self.take(n)

    def done(self) -> bool:
        return self.pos == len(self.data)


@dataclass
class Received:
    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    timestamp_ms: int


def parse_record_set(data: bytes) -> list[tuple[bytes | None, bytes | None, list, int]]:
    """Every record of a Produce partition's record set; raises ProtocolError."""
    out = []
    c = Cursor(data)
    while not c.done():
        c.unpack("q")  # base offset
        length = c.unpack("i")
        batch = Cursor(c.take(length))
        batch.unpack("i")  # partition leader epoch
        magic = batch.unpack("b")
        if magic != 2:
            raise ProtocolError(f"magic {magic}, expected 2")
        crc = batch.unpack("I")
        rest = batch.data[batch.pos:]
        if crc32c_bitwise(rest) != crc:
            raise ProtocolError(f"CRC-32C mismatch: batch says {crc:#010x}, "
                                f"data gives {crc32c_bitwise(rest):#010x}")
        attributes = batch.unpack("h")
        if attributes & 0x7:
            raise ProtocolError(f"compression {attributes & 7} not expected")
        last_offset_delta = batch.unpack("i")
        first_ts = batch.unpack("q")
        max_ts = batch.unpack("q")
        batch.unpack("q")  # producer id
        batch.unpack("h")  # producer epoch
        batch.unpack("i")  # base sequence
        count = batch.unpack("i")
        if last_offset_delta != count - 1:
            raise ProtocolError(f"lastOffsetDelta {last_offset_delta} for {count} records")
        for index in range(count):
            size = batch.varint()
            record = Cursor(batch.take(size))
            record.unpack("b")  # attributes
            ts = first_ts + record.varint()
            if record.varint() != index:
                raise ProtocolError("offset deltas are not 0, 1, 2...")
            key = record.var_bytes()
            value = record.var_bytes()
            headers = []
            for _ in range(record.varint()):
                name = record.var_bytes() or b""
                headers.append((name.decode(), record.var_bytes()))
            if not record.done():
                raise ProtocolError("record length does not match its content")
            if ts > max_ts:
                raise ProtocolError("record timestamp after maxTimestamp")
            out.append((key, value, headers, ts))
        if not batch.done():
            raise ProtocolError("batch length does not match its records")
    return out


def _s(text: str | None) -> bytes:
    if text is None:
        return struct.pack(">h", -1)
    raw = text.encode()
    return struct.pack(">h", len(raw)) + raw


def _array(items: list[bytes]) -> bytes:
    return struct.pack(">i", len(items)) + b"".join(items)


@dataclass
class KafkaReceiver:
    """Start with ``start()`` (or as a context manager); stop with ``close()``."""

    partitions: int = 3
    produce_error: int = 0
    #: seconds to hold each Produce answer back (lets a producer's queue build up)
    produce_delay: float = 0.0
    #: the versions offered in ApiVersions and accepted (Metadata v1-v8, Produce v3-v8
    #: are understood here)
    metadata_versions: tuple[int, int] = (1, 1)
    produce_versions: tuple[int, int] = (3, 3)
    sasl: tuple[str, str] | None = None
    ssl_context: ssl.SSLContext | None = None
    records: list[Received] = field(default_factory=list)
    requests: list[tuple[int, int, str | None]] = field(default_factory=list)
    produce_requests: list[dict] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    authenticated: list[str] = field(default_factory=list)
    oauth_extensions: list[dict[str, str]] = field(default_factory=list)

    def start(self) -> KafkaReceiver:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        return self

    def __enter__(self) -> KafkaReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()

    def topic_records(self, topic: str) -> list[Received]:
        with self._lock:
            return [r for r in self.records if r.topic == topic]

    # -- server -------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _fail(self, message: str) -> None:
        with self._lock:
            self.failures.append(message)

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.ssl_context is not None:
                conn = self.ssl_context.wrap_socket(conn, server_side=True)
                with self._lock:
                    self._conns.append(conn)
            self._session(conn)
        except (OSError, ssl.SSLError, ConnectionError):
            pass
        except ProtocolError as exc:
            self._fail(str(exc))
        finally:
            conn.close()

    @staticmethod
    def _read_exact(conn: socket.socket, n: int) -> bytes | None:
        data = bytearray()
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return bytes(data)

    def _read_frame(self, conn: socket.socket) -> bytes | None:
        head = self._read_exact(conn, 4)
        if head is None:
            return None
        size = struct.unpack(">i", head)[0]
        if not 0 <= size < 10_000_000:
            raise ProtocolError(f"frame size {size}")
        return self._read_exact(conn, size)

    def _session(self, conn: socket.socket) -> None:
        authenticated = self.sasl is None
        raw_token_next = False
        exchange: Generator[bytes, bytes, bytes] | None = None
        while True:
            frame = self._read_frame(conn)
            if frame is None:
                return
            if raw_token_next:  # SASL after a v0 handshake: a bare size-prefixed token
                assert exchange is not None
                try:
                    reply = exchange.send(frame)
                except StopIteration as stop:
                    raw_token_next, authenticated, reply = False, True, stop.value
                except AuthFailed:
                    return  # a broker closes the connection on a failed v0 exchange
                conn.sendall(struct.pack(">i", len(reply)) + reply)
                continue
            c = Cursor(frame)
            api_key, version, correlation = c.unpack("h"), c.unpack("h"), c.unpack("i")
            client_id = c.nstring()
            with self._lock:
                self.requests.append((api_key, version, client_id))
            if not authenticated and api_key not in (17, 18, 36):
                raise ProtocolError(f"api {api_key} before SASL authentication")
            if api_key == 18:
                body = self._api_versions(version, c)
            elif api_key == 3:
                body = self._metadata(version, c)
            elif api_key == 0:
                body = self._produce(version, c)
            elif api_key == 17:
                mechanism = c.nstring() or ""
                ok = mechanism in MECHANISMS
                body = struct.pack(">h", 0 if ok else 33) + _array([_s(m) for m in MECHANISMS])
                raw_token_next = ok and version == 0
                if ok:
                    exchange = self._sasl_server(mechanism)
                    next(exchange)
            elif api_key == 36:
                if version != 0:
                    raise ProtocolError(f"SaslAuthenticate v{version}")
                if exchange is None:
                    raise ProtocolError("SaslAuthenticate before SaslHandshake")
                try:
                    reply = exchange.send(c.nbytes() or b"")
                except StopIteration as stop:
                    authenticated, reply = True, stop.value
                except AuthFailed:
                    body = (struct.pack(">h", 58) + _s("Authentication failed: Invalid "
                            "credentials") + struct.pack(">i", 0))
                    conn.sendall(struct.pack(">ii", len(body) + 4, correlation) + body)
                    return
                body = struct.pack(">h", 0) + _s(None) + struct.pack(">i", len(reply)) + reply
            else:
                raise ProtocolError(f"unexpected api key {api_key}")
            if not c.done():
                raise ProtocolError(f"api {api_key}: {len(c.data) - c.pos} unread bytes")
            conn.sendall(struct.pack(">ii", len(body) + 4, correlation) + body)

    def _api_versions(self, version: int, c: Cursor) -> bytes:
        if version != 0:
            raise ProtocolError(f"ApiVersions v{version}")
        supported = [(0, *self.produce_versions), (3, *self.metadata_versions), (17, 0, 1),
                     (18, 0, 0), (36, 0, 0)]
        return struct.pack(">h", 0) + _array([struct.pack(">hhh", *s) for s in supported])

    def _metadata(self, version: int, c: Cursor) -> bytes:
        low, high = self.metadata_versions
        if not low <= version <= high or not 1 <= version <= 8:
            raise ProtocolError(f"Metadata v{version}")
        count = c.unpack("i")
        topics = [c.nstring() for _ in range(max(count, 0))]
        if version >= 4 and c.unpack("b") != 1:
            raise ProtocolError("Metadata without allow_auto_topic_creation")
        if version >= 8:
            c.unpack("b")  # include cluster authorized operations
            c.unpack("b")  # include topic authorized operations
        one = _array([struct.pack(">i", 0)])
        brokers = _array([struct.pack(">i", 0) + _s("127.0.0.1") + struct.pack(">i", self.port)
                          + _s(None)])
        answer = []
        for topic in topics:
            parts = []
            for p in range(self.partitions):
                part = struct.pack(">hii", 0, p, 0)
                if version >= 7:
                    part += struct.pack(">i", 0)  # leader epoch
                part += one + one + (_array([]) if version >= 5 else b"")
                parts.append(part)
            answer.append(struct.pack(">h", 0) + _s(topic) + struct.pack(">b", 0)
                          + _array(parts)
                          + (struct.pack(">i", 0) if version >= 8 else b""))
        return ((struct.pack(">i", 0) if version >= 3 else b"") + brokers
                + (_s("test-cluster") if version >= 2 else b"") + struct.pack(">i", 0)
                + _array(answer) + (struct.pack(">i", 0) if version >= 8 else b""))

    def _partition_answer(self, version: int, partition: int, error: int, base: int) -> bytes:
        out = struct.pack(">ihqq", partition, error, base, -1)
        if version >= 5:
            out += struct.pack(">q", 0)  # log start offset
        if version >= 8:
            out += _array([]) + _s(None)  # record errors, error message
        return out

    def _produce(self, version: int, c: Cursor) -> bytes:
        low, high = self.produce_versions
        if not low <= version <= high or not 3 <= version <= 8:
            raise ProtocolError(f"Produce v{version}")
        transactional_id = c.nstring()
        acks, timeout_ms = c.unpack("h"), c.unpack("i")
        answers = []
        request = {"acks": acks, "timeout_ms": timeout_ms, "transactional_id": transactional_id,
                   "records": 0}
        error = self.produce_error
        for _ in range(c.unpack("i")):
            topic = c.nstring() or ""
            parts = []
            for _ in range(c.unpack("i")):
                partition = c.unpack("i")
                record_set = c.nbytes() or b""
                try:
                    records = parse_record_set(record_set)
                except ProtocolError as exc:
                    self._fail(f"{topic}/{partition}: {exc}")
                    parts.append(self._partition_answer(version, partition, 2, -1))
                    continue
                request["records"] += len(records)
                if error == 0:
                    with self._lock:
                        base = sum(1 for r in self.records
                                   if r.topic == topic and r.partition == partition)
                        self.records.extend(Received(topic, partition, k, v, h, ts)
                                            for k, v, h, ts in records)
                else:
                    base = -1
                parts.append(self._partition_answer(version, partition, error, base))
            answers.append(_s(topic) + _array(parts))
        with self._lock:
            self.produce_requests.append(request)
        if self.produce_delay:
            time.sleep(self.produce_delay)
        return _array(answers) + struct.pack(">i", 0)

    def _sasl_server(self, mechanism: str) -> Generator[bytes, bytes, bytes]:
        """The broker's side of one SASL exchange: receives each client token, yields
        each reply; returns the last reply on success, raises AuthFailed otherwise."""
        assert self.sasl is not None
        user, password = self.sasl
        token = yield b""
        if mechanism == "PLAIN":
            parts = token.split(b"\0")
            if len(parts) != 3:
                raise ProtocolError(f"malformed PLAIN token {token!r}")
            if (parts[1].decode(), parts[2].decode()) != (user, password):
                raise AuthFailed
            self._authenticated(parts[1].decode())
            return b""
        if mechanism == "OAUTHBEARER":
            text = token.decode()
            if not text.startswith("n,,\x01") or not text.endswith("\x01\x01"):
                raise ProtocolError(f"malformed OAUTHBEARER token {text!r}")
            pairs = dict(kv.split("=", 1) for kv in text[4:-2].split("\x01"))
            if pairs.pop("auth", "") != f"Bearer {password}":
                raise AuthFailed
            with self._lock:
                self.oauth_extensions.append(pairs)
            self._authenticated("(token)")
            return b""
        digest = hashlib.sha256 if mechanism == "SCRAM-SHA-256" else hashlib.sha512
        first = token.decode()
        if not first.startswith("n,,"):
            raise ProtocolError(f"malformed SCRAM client-first {first!r}")
        first_bare = first[3:]
        attrs = dict(kv.split("=", 1) for kv in first_bare.split(","))
        nonce = attrs["r"] + base64.b64encode(os.urandom(12)).decode()
        salt, rounds = os.urandom(16), 4096
        server_first = f"r={nonce},s={base64.b64encode(salt).decode()},i={rounds}"
        final = (yield server_first.encode()).decode()
        without_proof, _, proof = final.rpartition(",p=")
        if f"r={nonce}" not in without_proof.split(","):
            raise ProtocolError("SCRAM client-final with another nonce")
        salted = hashlib.pbkdf2_hmac(digest().name, password.encode(), salt, rounds)
        stored_key = digest(hmac.new(salted, b"Client Key", digest).digest()).digest()
        auth_message = f"{first_bare},{server_first},{without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, digest).digest()
        client_key = bytes(a ^ b for a, b in zip(base64.b64decode(proof), signature,
                                                 strict=False))
        if attrs["n"] != user or digest(client_key).digest() != stored_key:
            raise AuthFailed
        self._authenticated(user)
        server_key = hmac.new(salted, b"Server Key", digest).digest()
        return b"v=" + base64.b64encode(hmac.new(server_key, auth_message, digest).digest())

    def _authenticated(self, user: str) -> None:
        with self._lock:
            self.authenticated.append(user)

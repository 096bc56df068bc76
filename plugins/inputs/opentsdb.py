"""OpenTSDB: the ``[opentsdb]`` listener, telnet ``put`` lines and HTTP ``/api/put``.

One TCP port (``bind-address``, TLS with ``tls-enabled`` and ``certificate``) serves
both protocols; the first line a client sends decides which: an HTTP request line
(``POST /api/put HTTP/1.1``) makes the connection HTTP, anything else telnet. What is
received is written into ``database``.``retention-policy`` as a ``/write`` of the same
points would be (tasks, ``ingress`` statistics): measurement = metric, field
``value``, tags = tags.

Telnet: ``put <metric> <timestamp> <value> [<tagk=tagv> ...]`` per line; a timestamp
of 10 digits is seconds, of 13 digits milliseconds; ``version`` answers
``InfluxDB TSDB proxy``. HTTP: ``POST /api/put`` with one JSON data point or an array
of them (``gzip`` bodies too) answers 204; ``/api/metadata/put`` is accepted and
ignored; other paths 404. With ``?summary`` or ``?details`` the answer is OpenTSDB's:
200 (400 when a point failed) with ``{"failed":n,"success":m}``, and with
``details`` the failed points and why under ``errors``.

Statistics: Kapacitor 1.5.7 publishes none for this listener. kapa-core publishes
InfluxDB's: ``opentsdb`` with the tag ``bind`` (the bound address) and the fields
``httpConnsHandled``, ``tlConnsActive``, ``tlConnsHandled``, ``tlPointsRx`` (lines
read), ``tlBytesRx``, ``tlReadErr``, ``tlBadLine``, ``tlBadTime``, ``tlBadTag``,
``tlBadFloat``, ``batchesTx``, ``pointsTx``, ``batchesTxFail``, ``connsActive``,
``connsHandled``, ``droppedPointsInvalid``; and for its own additions
``httpPointsTx`` (points written from HTTP), ``httpReqFail`` (HTTP answers >= 400),
``tlsHandshakeErr``, ``linesTooLong`` and ``connsRefused``.

Different from Kapacitor on purpose (its vendored InfluxDB service): a 13-digit
timestamp is read as milliseconds (Kapacitor reads its last three digits as
microseconds); a line whose timestamp is not a number is dropped (Kapacitor writes it
at time 0); an infinite value is a bad float (it stops Kapacitor); a data point without
a metric is dropped; lines are at most ``MAX_LINE`` bytes and request bodies
``MAX_BODY``; bad lines are logged at most once every 10 seconds per kind of error.
Points are written as soon as a read from the socket has been parsed, at most
``batch-size`` per write; ``batch-pending``, ``batch-timeout`` and
``consistency-level`` are accepted and not needed.
"""

from __future__ import annotations

import email.utils
import gc
import json
import re
import ssl
import zlib
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import h11
import trio

from kapa_core.plugin_api import (
    ConfigError,
    Duration,
    InputContext,
    InputListener,
    Point,
    Section,
    hookimpl,
)

from .netinput import (
    READ_SIZE,
    LineBuffer,
    RateLimitedLog,
    bound_name,
    go_float,
    go_int,
    open_tcp,
    peer_name,
    serve_tcp,
)

DEFAULT_BIND = ":4242"
DEFAULT_DATABASE = "opentsdb"
DEFAULT_CERTIFICATE = "/etc/ssl/influxdb.pem"
#: The largest HTTP request body (after gzip decoding), in bytes.
MAX_BODY = 32 * 1024 * 1024
#: The largest HTTP request head, in bytes.
MAX_HEAD = 64 * 1024
#: Bytes looked at to tell HTTP from telnet when no newline came yet.
SNIFF_LIMIT = 8192
VERSION_ANSWER = b"InfluxDB TSDB proxy"
MIN_TIME = -(1 << 63) + 2
MAX_TIME = (1 << 63) - 2

_REQUEST_LINE = re.compile(rb"[A-Z]+ \S+ HTTP/[0-9]\.[0-9]\r?", re.ASCII)
_MAYBE_METHOD = re.compile(rb"[A-Z]{1,16}(?: |$)", re.ASCII)
_STATISTICS = ("httpConnsHandled", "tlConnsActive", "tlConnsHandled", "tlPointsRx",
               "tlBytesRx", "tlReadErr", "tlBadLine", "tlBadTime", "tlBadTag", "tlBadFloat",
               "batchesTx", "pointsTx", "batchesTxFail", "connsActive", "connsHandled",
               "droppedPointsInvalid", "httpPointsTx", "httpReqFail", "tlsHandshakeErr",
               "linesTooLong", "connsRefused")


@dataclass(frozen=True, kw_only=True)
class OpenTSDBConfig:
    enabled: bool = False
    bind_address: str = ":4242"
    database: str = "opentsdb"
    retention_policy: str = ""
    consistency_level: str = "one"
    tls_enabled: bool = False
    certificate: str = "/etc/ssl/influxdb.pem"
    batch_size: int = 1000
    batch_pending: int = 5
    batch_timeout: Duration = Duration(1_000_000_000)
    log_point_errors: bool = True

    def validate(self) -> None:
        address = self.bind_address or DEFAULT_BIND
        if self.enabled and ":" not in address:
            raise ConfigError("bind-address", f"invalid address {address!r} "
                              "(expected host:port)")


class _BadRequest(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class OpenTSDBListener:
    def __init__(self, config: OpenTSDBConfig, context: InputContext) -> None:
        self.config = config
        self.context = context
        self.log = context.log
        self.database = config.database or DEFAULT_DATABASE
        self.retention_policy = config.retention_policy
        self.batch_size = config.batch_size if config.batch_size > 0 else 1000
        self.log_points = config.log_point_errors
        log = context.log
        self.bad_line = RateLimitedLog(log, "malformed line", "info")
        self.bad_time = RateLimitedLog(log, "malformed time", "info")
        self.bad_tag = RateLimitedLog(log, "malformed tag data", "info")
        self.bad_float = RateLimitedLog(log, "bad float", "info")
        self.too_long = RateLimitedLog(log, "line too long, dropped", "info")
        self.dropped = RateLimitedLog(log, "dropping point", "info")
        self.write_failed = RateLimitedLog(log, "failed to write point batch to database")
        self.read_failed = RateLimitedLog(log, "error reading from openTSDB connection")
        self.tls_failed = RateLimitedLog(log, "TLS handshake error")
        self.client_failed = RateLimitedLog(context.log, "connection failed")
        self.refused = RateLimitedLog(log, "too many connections, closing a new one")
        self.accept_failed = RateLimitedLog(log, "error accepting openTSDB connection")

    # -- lifecycle ---------------------------------------------------------------------
    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        config = self.config
        # A failure here (certificate, address in use) reaches the daemon before
        # started(): at start it stops the daemon naming the section, as Kapacitor.
        self.tls: ssl.SSLContext | None = None
        if config.tls_enabled:
            self.tls = _server_context(config.certificate or DEFAULT_CERTIFICATE)
        listeners = await open_tcp(config.bind_address, DEFAULT_BIND)
        try:
            self.address = address = bound_name(listeners[0].socket)
            self.stats = stats = self.context.statistic("opentsdb", {"bind": address})
            for name in _STATISTICS:
                stats.set(name, 0)
            self.log.info("listening" + (" on TLS" if self.tls else ""), address=address,
                          database=self.database)
            task_status.started(address)
        except BaseException:
            for listener in listeners:
                listener.socket.close()
            raise
        try:
            await serve_tcp(listeners, self._client, refused=self._refused,
                            accept_failed=lambda err: self.accept_failed(err=err),
                            failed=self._client_failed)
        finally:
            self.log.info("closed service")

    def _client_failed(self, exc: BaseException) -> None:
        self.client_failed(err=f"{type(exc).__name__}: {exc}")

    def _refused(self) -> None:
        self.stats.add("connsRefused")
        self.refused()

    async def _client(self, raw: trio.SocketStream) -> None:
        stats = self.stats
        stats.add("connsActive")
        stats.add("connsHandled")
        try:
            stream: trio.abc.Stream = raw
            if self.tls is not None:
                tls_stream = trio.SSLStream(raw, self.tls, server_side=True)
                try:
                    await tls_stream.do_handshake()
                except trio.BrokenResourceError as exc:
                    stats.add("tlsHandshakeErr")
                    self.tls_failed(client=peer_name(raw),
                                    err=str(exc.__cause__ or exc) or "connection closed")
                    return
                stream = tls_stream
            try:
                is_http, first = await self._sniff(stream)
            except trio.BrokenResourceError:
                return
            if is_http:
                stats.add("httpConnsHandled")
                await self._http(stream, first)
            else:
                await self._telnet(stream, first)
        finally:
            stats.add("connsActive", -1)

    async def _sniff(self, stream: trio.abc.Stream) -> tuple[bool, bytes]:
        """(is it HTTP?, the bytes read to decide)."""
        buf = b""
        while True:
            newline = buf.find(b"\n")
            if newline >= 0:
                return bool(_REQUEST_LINE.fullmatch(buf[:newline])), buf
            if len(buf) >= SNIFF_LIMIT or (buf and not _MAYBE_METHOD.match(buf)):
                return False, buf
            data = await stream.receive_some(READ_SIZE)
            if not data:
                return False, buf
            buf += data

    # -- telnet ------------------------------------------------------------------------
    async def _telnet(self, stream: trio.abc.Stream, first: bytes) -> None:
        stats = self.stats
        stats.add("tlConnsActive")
        stats.add("tlConnsHandled")
        peer = peer_name(stream)
        lines = LineBuffer()
        data: bytes | bytearray = first
        try:
            while data:
                stats.add("tlBytesRx", len(data))
                block, dropped = lines.feed(data)
                if dropped:
                    stats.add("linesTooLong", dropped)
                    stats.add("tlBadLine", dropped)
                    self.too_long(client=peer, limit=lines.limit)
                if block:
                    for _ in range(self._put_lines(block, peer)):
                        await stream.send_all(VERSION_ANSWER)
                try:
                    data = await stream.receive_some(READ_SIZE)
                except trio.BrokenResourceError as exc:
                    stats.add("tlReadErr")
                    self.read_failed(client=peer, err=str(exc.__cause__ or exc))
                    return
            rest = lines.rest()
            if rest:  # a last line without a newline counts, as in InfluxDB
                for _ in range(self._put_lines(rest, peer)):
                    await stream.send_all(VERSION_ANSWER)
        finally:
            stats.add("tlConnsActive", -1)

    def _put_lines(self, block: bytes, peer: str) -> int:
        """Write the points of a block of telnet lines; how many ``version`` commands
        it held."""
        gc_was_enabled = gc.isenabled()
        gc.disable()  # many small dicts: the cyclic collector would only slow us down
        try:
            return self._parse_lines(block, peer)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _parse_lines(self, block: bytes, peer: str) -> int:
        stats = self.stats
        lines = block.decode("utf-8", "replace").split("\n")
        stats.add("tlPointsRx", len(lines))
        database, rp = self.database, self.retention_policy
        log = self.log_points
        points: list[Point] = []
        append = points.append
        versions = 0
        for line in lines:
            parts = line.split()
            if len(parts) < 4 or parts[0] != "put":
                if len(parts) == 1 and parts[0] == "version":
                    versions += 1
                    continue
                stats.add("tlBadLine")
                if log:
                    self.bad_line(line=line[:200], client=peer)
                continue
            stamp = parts[2]
            try:
                seconds = int(stamp) if stamp.isdigit() and stamp.isascii() \
                    else go_int(stamp)
            except ValueError:
                stats.add("tlBadTime")
                if log:
                    self.bad_time(time=stamp[:50], client=peer)
                continue
            if len(stamp) == 10:
                time = seconds * 1_000_000_000
            elif len(stamp) == 13:
                time = seconds * 1_000_000
                if not MIN_TIME <= time <= MAX_TIME:
                    stats.add("tlBadTime")
                    if log:
                        self.bad_time(time=stamp, client=peer)
                    continue
            else:
                stats.add("tlBadTime")
                if log:
                    self.bad_time(time=stamp[:50], client=peer,
                                  err="must be 10 or 13 chars")
                continue
            tags: dict[str, str] = {}
            for tag in parts[4:]:
                key, _, value = tag.partition("=")
                if not key or not value:
                    stats.add("tlBadTag")
                    if log:
                        self.bad_tag(tag=tag[:200], client=peer)
                    continue
                tags[key] = value
            try:
                value_ = go_float(parts[3])
            except ValueError:
                value_ = float("nan")
            if value_ != value_ or value_ in (float("inf"), float("-inf")):
                stats.add("tlBadFloat")
                if log:
                    self.bad_float(value=parts[3][:50], client=peer)
                continue
            append(Point(parts[1], tags, {"value": value_}, time, database, rp))
        if points:
            self._write(points)
        return versions

    def _write(self, points: list[Point]) -> bool:
        stats = self.stats
        size = self.batch_size
        ok = True
        for start in range(0, len(points), size):
            batch = points if len(points) <= size else points[start:start + size]
            try:
                self.context.write_points(self.database, self.retention_policy, batch)
            except Exception as exc:  # refused by the stream: counted, never fatal
                stats.add("batchesTxFail")
                self.write_failed(database=self.database,
                                  err=str(exc) or type(exc).__name__)
                ok = False
                continue
            stats.add("batchesTx")
            stats.add("pointsTx", len(batch))
        return ok

    # -- HTTP --------------------------------------------------------------------------
    async def _http(self, stream: trio.abc.Stream, first: bytes) -> None:
        h = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        h.receive_data(first)
        while True:
            try:
                event = await _next_event(stream, h)
                if isinstance(event, h11.ConnectionClosed) or \
                        not isinstance(event, h11.Request):
                    return
                status, headers, body = await self._exchange(stream, h, event)
            except h11.RemoteProtocolError as exc:
                if h.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    self.stats.add("httpReqFail")
                    await _send(stream, h, *_text(exc.error_status_hint,
                                                  "400 Bad Request"), close=True)
                return
            if status >= 400:
                self.stats.add("httpReqFail")
            close = h.their_state is not h11.DONE
            await _send(stream, h, status, headers, body, close=close)
            if close or h.our_state is h11.MUST_CLOSE:
                return
            try:
                h.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _exchange(self, stream: trio.abc.Stream, h: h11.Connection,
                        head: h11.Request) -> tuple[int, list[tuple[str, str]], bytes]:
        target = urlsplit(head.target.decode("latin-1"))
        path = unquote(target.path)
        body = bytearray()
        while True:
            event = await _next_event(stream, h)
            if isinstance(event, h11.Data):
                if len(body) + len(event.data) > MAX_BODY:  # the connection closes
                    return _text(413, f"request body too large: limit is {MAX_BODY} bytes")
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise h11.RemoteProtocolError("unexpected end of request")
        if path == "/api/metadata/put":
            return 204, [], b""
        if path != "/api/put":
            return _text(404, "404 page not found")
        if head.method != b"POST":
            return _text(405, "Method Not Allowed")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in head.headers}
        query = parse_qs(target.query, keep_blank_values=True)
        try:
            return self._put(bytes(body), headers.get("content-encoding", ""), query)
        except _BadRequest as exc:
            return _text(exc.status, exc.text)

    def _put(self, body: bytes, encoding: str, query: dict[str, list[str]]
             ) -> tuple[int, list[tuple[str, str]], bytes]:
        if encoding == "gzip":
            body = _gunzip(body)
        if not body:
            raise _BadRequest(400, "peek error: EOF")
        multi = body[:1] == b"["
        if body[:1] not in (b"{", b"["):
            raise _BadRequest(400, "expected JSON array or hash")
        kind = "array" if multi else "object"
        try:
            decoded, _ = _DECODER.raw_decode(body.decode("utf-8", "replace"))
        except (ValueError, RecursionError):
            raise _BadRequest(400, f"json {kind} decode error") from None
        items = decoded if multi else [decoded]
        if "details" in query or "summary" in query:
            return self._put_opentsdb(items, details="details" in query)
        try:
            data = [_go_point(item) for item in items]
        except ValueError:
            raise _BadRequest(400, f"json {kind} decode error") from None
        points: list[Point] = []
        for metric, stamp, value, tags in data:
            time = _nanoseconds(stamp)
            if not metric or time is None:
                self.stats.add("droppedPointsInvalid")
                self.dropped(metric=metric, err="no metric" if not metric
                             else "time outside range")
                continue
            points.append(Point(metric, tags, {"value": value}, time, self.database,
                                self.retention_policy))
        if points and not self._write_http(points):
            raise _BadRequest(500, "write series error: the stream refused the points")
        return 204, [], b""

    def _put_opentsdb(self, items: Any, *, details: bool
                      ) -> tuple[int, list[tuple[str, str]], bytes]:
        """/api/put?details or ?summary: each data point on its own, OpenTSDB's answer."""
        errors: list[dict[str, Any]] = []
        points: list[Point] = []
        for item in items if isinstance(items, list) else [items]:
            point, error = self._opentsdb_point(item)
            if point is not None:
                points.append(point)
            else:
                errors.append({"datapoint": item, "error": error})
        if points and not self._write_http(points):
            raise _BadRequest(500, "write series error: the stream refused the points")
        answer: dict[str, Any] = {"errors": errors} if details else {}
        answer |= {"failed": len(errors), "success": len(points)}
        body = json.dumps(answer, separators=(",", ":")).encode()
        return (400 if errors else 200), [("content-type", "application/json")], body

    def _opentsdb_point(self, item: Any) -> tuple[Point | None, str]:
        if not isinstance(item, dict):
            return None, "Unable to parse the data point"
        metric = item.get("metric")
        if not isinstance(metric, str) or not metric:
            return None, "Metric name was empty"
        stamp = item.get("timestamp")
        if isinstance(stamp, str) and stamp.isdigit() and stamp.isascii():
            stamp = int(stamp)
        if not isinstance(stamp, int) or isinstance(stamp, bool) or stamp <= 0:
            return None, "Invalid timestamp"
        time = _nanoseconds(stamp)
        if time is None:
            return None, "Invalid timestamp"
        raw = item.get("value")
        if raw is None or raw == "":
            return None, "Empty value"
        try:
            if isinstance(raw, bool):
                raise ValueError
            value = go_float(raw) if isinstance(raw, str) else float(raw)
        except (ValueError, TypeError, OverflowError):
            return None, "Unable to parse value to a number"
        if value != value or value in (float("inf"), float("-inf")):
            return None, "Unable to parse value to a number"
        tags = item.get("tags") or {}
        if not isinstance(tags, dict) or not all(
                isinstance(k, str) and k and isinstance(v, str) and v
                for k, v in tags.items()):
            return None, "Invalid tags"
        return Point(metric, dict(tags), {"value": value}, time, self.database,
                     self.retention_policy), ""

    def _write_http(self, points: list[Point]) -> bool:
        try:
            self.context.write_points(self.database, self.retention_policy, points)
        except Exception as exc:
            self.write_failed(database=self.database, err=str(exc) or type(exc).__name__)
            return False
        self.stats.add("httpPointsTx", len(points))
        return True


# -- helpers -------------------------------------------------------------------------

def _server_context(certificate: str) -> ssl.SSLContext:
    """A TLS server context from one PEM file holding the certificate and its key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(certfile=certificate, keyfile=certificate)
    except (OSError, ssl.SSLError) as exc:
        raise OSError(f"cannot load the certificate and key from {certificate}: "
                      f"{exc.strerror or exc}") from None
    return context


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _gunzip(body: bytes) -> bytes:
    if not body:
        raise _BadRequest(400, "could not read gzip, EOF")
    if body[:2] != b"\x1f\x8b":
        raise _BadRequest(400, "could not read gzip, gzip: invalid header")
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(body, MAX_BODY + 1)
    except zlib.error:
        raise _BadRequest(400, "json object decode error") from None
    if len(out) > MAX_BODY:
        raise _BadRequest(413, f"request body too large: limit is {MAX_BODY} bytes")
    return out


_FIELDS = {"metric": "metric", "timestamp": "timestamp", "value": "value", "tags": "tags"}


def _go_point(item: Any) -> tuple[str, int, float, dict[str, str]]:
    """A data point decoded as Go's encoding/json decodes it into InfluxDB's struct
    (keys matched without regard to case, missing or null ones zero): ValueError for a
    value of the wrong type."""
    metric, stamp, value = "", 0, 0.0
    tags: dict[str, str] = {}
    if item is None:
        return metric, stamp, value, tags
    if not isinstance(item, dict):
        raise ValueError("not an object")
    for key, raw in item.items():
        name = _FIELDS.get(key) or _FIELDS.get(key.lower())
        if name is None or raw is None:
            continue
        if name == "metric":
            if not isinstance(raw, str):
                raise ValueError("metric")
            metric = raw
        elif name == "timestamp":
            if not isinstance(raw, int) or isinstance(raw, bool) or \
                    not -(1 << 63) <= raw < (1 << 63):
                raise ValueError("timestamp")
            stamp = raw
        elif name == "value":
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                raise ValueError("value")
            try:
                value = float(raw)
            except OverflowError:
                raise ValueError("value") from None
            if value in (float("inf"), float("-inf")):
                raise ValueError("value")
        else:
            if not isinstance(raw, dict) or not all(isinstance(v, str | None)
                                                    for v in raw.values()):
                raise ValueError("tags")
            tags = {k: v or "" for k, v in raw.items()}
    return metric, stamp, value, tags


def _nanoseconds(stamp: int) -> int | None:
    """An OpenTSDB timestamp in ns: seconds below 10,000,000,000, milliseconds from
    there; None outside the range of a time."""
    time = stamp * 1_000_000_000 if stamp < 10_000_000_000 else stamp * 1_000_000
    return time if MIN_TIME <= time <= MAX_TIME else None


def _text(status: int, text: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """An answer as Go's http.Error writes it."""
    return status, [("content-type", "text/plain; charset=utf-8"),
                    ("x-content-type-options", "nosniff")], (text + "\n").encode()


async def _next_event(stream: trio.abc.Stream, h: h11.Connection) -> Any:
    while True:
        event = h.next_event()
        if event is not h11.NEED_DATA:
            return event
        if h.they_are_waiting_for_100_continue:
            await stream.send_all(h.send(h11.InformationalResponse(status_code=100,
                                                                   headers=[])) or b"")
        h.receive_data(bytes(await stream.receive_some(READ_SIZE)))


async def _send(stream: trio.abc.Stream, h: h11.Connection, status: int,
                headers: list[tuple[str, str]], body: bytes, *, close: bool) -> None:
    all_headers = [*headers, ("date", email.utils.formatdate(usegmt=True))]
    if status != 204:
        all_headers.append(("content-length", str(len(body))))
    if close:
        all_headers.append(("connection", "close"))
    data = h.send(h11.Response(status_code=status, headers=all_headers,
                               reason=HTTPStatus(status).phrase.encode())) or b""
    if body and status != 204:
        data += h.send(h11.Data(data=body)) or b""
    data += h.send(h11.EndOfMessage()) or b""
    await stream.send_all(data)


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="opentsdb", schema=OpenTSDBConfig,
                    doc="Receive OpenTSDB data.")]


@hookimpl
def kapa_input_listeners() -> list[InputListener]:
    return [InputListener(name="opentsdb", section="opentsdb", factory=OpenTSDBListener,
                          doc="OpenTSDB telnet put lines and HTTP /api/put.")]

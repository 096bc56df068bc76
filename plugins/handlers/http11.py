"""A lean HTTP/1.1 client for the post handler: plain-HTTP requests pipelined in order on
one kept-alive connection per origin, written and parsed by hand on a trio stream.

Why not httpx for every request: an alert rule that fires on every point asks for
thousands of POSTs a second to one receiver, in order. httpx spends several hundred
microseconds of Python per request (URL and header models, the connection pool, h11's
state machine, the event hooks), so one handler delivered about 1,700 alerts a second
and its queue overflowed (docs/performance.md). Here a request is a few byte strings
joined, and a batch of them is written with one ``send_all`` while a reader takes the
answers back in the same order: the server still gets one POST per event, in order,
and answers them one at a time, as HTTP/1.1 pipelining defines (RFC 9112 §9.3.2).
(h11, which the daemon's server uses, cannot do this: its client side waits for each
answer before the next request, as its documentation says.)

Only the plain case is handled here: ``http://`` URLs without userinfo, whose path and
query need no percent-encoding, no proxy in the environment, and headers that leave
the transport's own (Host, Content-Length, Connection…) alone. :func:`prepare` answers
None for anything else and the caller sends that request with httpx, as before, so TLS,
proxies, IDNA hosts and odd URLs keep exactly the behaviour they had.

Failure handling, per request (one outcome each, in order):

* an answer (any status) is a :class:`Response`;
* an answer that closes the connection (``Connection: close``, HTTP/1.0) ends the
  pipeline there: by HTTP's rules the server did not act on the requests after it, so
  they are written again on a new connection;
* a connection that breaks or stays silent past the timeout before answering fails the
  request waiting and every one written after it (the server may have acted on them,
  so a POST is never sent twice);
* a kept-alive connection is checked before it is reused: one the server has closed
  while idle (it is readable) or that has been idle for :data:`IDLE_SECONDS` is dropped
  and a new one opened, so an idle close does not fail the next alert.

The timeout applies to each step on its own (connecting, writing, waiting for each
answer), as httpx applies its timeout.
"""

from __future__ import annotations

import base64
import os
import re
import select
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import trio

#: A kept-alive connection idle longer than this is closed rather than reused (Go's
#: http.DefaultTransport closes idle connections after 90 s).
IDLE_SECONDS = 90.0
#: Idle connections kept (one per origin), the least recently used closed first.
MAX_IDLE = 16
#: Requests written before the writer lets the reader catch up: bounds the bytes in
#: flight so that neither side's buffers fill while the other waits.
WINDOW = 64
#: The most of a response body kept (the handler logs at most 500 characters of it);
#: the rest is read and dropped.
KEEP_BODY = 64 * 1024
#: The most header bytes an answer may have.
MAX_HEAD = 64 * 1024

#: What httpx sends unasked; the same here, so a receiver sees the same request
#: whichever path sent it (Accept-Encoding is left out: bodies are never decoded here).
try:
    from importlib.metadata import version as _version

    USER_AGENT = f"python-httpx/{_version('httpx')}"
except Exception:  # metadata missing (a vendored httpx): a plain name
    USER_AGENT = "python-httpx"

#: Header names the client writes itself: a handler that sets one goes through httpx,
#: which merges them as it always did (so does an Authorization header beside basic
#: auth: httpx lets the auth win).
_TRANSPORT = frozenset({"host", "content-length", "transfer-encoding", "connection",
                        "user-agent", "accept", "accept-encoding", "te", "upgrade",
                        "expect", "keep-alive", "proxy-connection", "trailer"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
#: path and query characters sent as they are (RFC 3986 unreserved, sub-delims, ':@/?%')
_PLAIN_TARGET = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*")
_HOST = re.compile(r"[A-Za-z0-9\-.]+")
_PROXY_VARIABLES = ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


class HTTP11Error(Exception):
    """A request that got no answer: the connection failed, broke or timed out."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    #: at most KEEP_BODY bytes of the body
    body: bytes

    @property
    def is_error(self) -> bool:
        return self.status >= 400

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)

    @property
    def text(self) -> str:
        """The body decoded by its charset (UTF-8 when none), as httpx's ``text``."""
        charset = "utf-8"
        ctype = self.header("content-type") or ""
        found = re.search(r"charset=\"?([\w.:-]+)", ctype, re.IGNORECASE)
        if found:
            charset = found.group(1)
        try:
            return self.body.decode(charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class Prepared:
    """One request ready for the wire, and the connection it goes on."""

    origin: tuple[str, int]
    wire: bytes


@dataclass(frozen=True, slots=True)
class _Target:
    origin: tuple[str, int]
    head: bytes  # "POST <target> HTTP/1.1\r\nHost: …\r\n"


_TARGETS: dict[str, _Target | None] = {}


def _target(url: str) -> _Target | None:
    """What a URL needs on the wire, or None when httpx must send it (cached: a post
    handler's URL is usually the same for every event)."""
    try:
        return _TARGETS[url]
    except KeyError:
        pass
    if len(_TARGETS) > 1024:
        _TARGETS.clear()
    found = _TARGETS[url] = _parse_target(url)
    return found


#: httpx refuses longer URLs ("URL too long"); such a URL goes to it, to be refused as before.
_MAX_URL = 65536


def _parse_target(url: str) -> _Target | None:
    if not url.isascii() or len(url) > _MAX_URL:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname or ""
    if parts.scheme.lower() != "http" or "@" in parts.netloc or parts.fragment \
            or "#" in url or not host:
        return None
    path = parts.path or "/"
    target = f"{path}?{parts.query}" if parts.query else path
    if "?" in url and not parts.query:
        target = path + "?"
    if not _PLAIN_TARGET.fullmatch(target):
        return None
    if ":" in host:  # an IPv6 literal
        shown = f"[{host}]"
    elif _HOST.fullmatch(host):
        host = shown = host.lower()
    else:
        return None
    port = 80 if port is None else port
    host_header = shown if port == 80 else f"{shown}:{port}"
    head = f"POST {target} HTTP/1.1\r\nHost: {host_header}\r\n".encode("ascii")
    return _Target((host, port), head)


def proxied() -> bool:
    """True when the environment names an HTTP proxy (then httpx sends everything)."""
    environ = os.environ
    return any(environ.get(name) for name in _PROXY_VARIABLES)


def prepare(url: str, headers: dict[str, str], body: bytes,
            auth: tuple[str, str] | None = None) -> Prepared | None:
    """The POST of ``body`` to ``url`` as bytes, or None when it is not a plain case
    (see the module's documentation) and httpx must send it."""
    target = _target(url)
    if target is None:
        return None
    lines = [target.head]
    for name, value in headers.items():
        lower = name.lower()
        if lower in _TRANSPORT or (auth is not None and lower == "authorization") \
                or not _TOKEN.fullmatch(name) \
                or _BAD_VALUE.search(value) or not value.isascii() or value != value.strip():
            return None  # httpx sends it, or refuses it as it always did
        lines.append(f"{name}: {value}\r\n".encode("ascii"))
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
        lines.append(f"Authorization: Basic {token}\r\n".encode("ascii"))
    lines.append(b"Accept: */*\r\nConnection: keep-alive\r\nUser-Agent: %s\r\n"
                 b"Content-Length: %d\r\n\r\n" % (USER_AGENT.encode(), len(body)))
    lines.append(body)
    return Prepared(target.origin, b"".join(lines))


# -- answers ----------------------------------------------------------------------------

class _Protocol(Exception):
    """The server's bytes are not HTTP/1.1: the connection cannot be used further."""


@dataclass(slots=True)
class _Head:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    keep_alive: bool


def _parse_head(raw: bytes) -> _Head:
    lines = raw.decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/1.") \
            or not status_line[1].isdigit() or len(status_line[1]) != 3:
        raise _Protocol(f"malformed status line {lines[0][:80]!r}")
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise _Protocol(f"malformed header line {line[:80]!r}")
        headers.append((name.lower(), value.strip()))
    connection = ",".join(v for k, v in headers if k == "connection").lower()
    keep_alive = "close" not in connection and (status_line[0] == "HTTP/1.1"
                                                or "keep-alive" in connection)
    return _Head(int(status_line[1]), status_line[2] if len(status_line) > 2 else "",
                 tuple(headers), keep_alive)


class _Reader:
    """Answers off one stream, in order, each within ``timeout`` seconds."""

    def __init__(self, stream: trio.SocketStream, timeout: float) -> None:
        self.stream = stream
        self.timeout = timeout
        self.buffer = bytearray()
        self.eof = False

    async def _more(self) -> None:
        with trio.move_on_after(self.timeout) as scope:
            data = await self.stream.receive_some(65536)
        if scope.cancelled_caught:
            raise HTTP11Error(f"no answer within {self.timeout:g} s")
        if not data:
            self.eof = True
            raise HTTP11Error("the server closed the connection without answering")
        self.buffer += data

    async def _line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            if len(self.buffer) > MAX_HEAD:
                raise _Protocol("line too long")
            await self._more()
        line = bytes(self.buffer[:end])
        del self.buffer[:end + 2]
        return line

    async def _exactly(self, size: int, keep: bytearray) -> None:
        while size:
            if not self.buffer:
                await self._more()
            take = min(size, len(self.buffer))
            if len(keep) < KEEP_BODY:
                keep += self.buffer[:min(take, KEEP_BODY - len(keep))]
            del self.buffer[:take]
            size -= take

    async def response(self) -> tuple[Response, bool]:
        """The next final answer and whether the connection may be reused."""
        while True:
            while (end := self.buffer.find(b"\r\n\r\n")) < 0:
                if len(self.buffer) > MAX_HEAD:
                    raise _Protocol("header section too long")
                await self._more()
            head = _parse_head(bytes(self.buffer[:end]))
            del self.buffer[:end + 4]
            if not 100 <= head.status < 200:
                break  # informational answers (100 Continue…) precede the real one
            if head.status == 101:
                raise _Protocol("unexpected 101 Switching Protocols")
        body = bytearray()
        reusable = head.keep_alive
        encoding = ",".join(v for k, v in head.headers if k == "transfer-encoding")
        length = [v for k, v in head.headers if k == "content-length"]
        if head.status in (204, 304):
            pass
        elif encoding:
            if encoding.lower().replace(" ", "").rsplit(",", 1)[-1] != "chunked":
                reusable = False  # delimited by the close
                await self._until_close(body)
            else:
                await self._chunked(body)
        elif length:
            if len(set(length)) != 1 or not length[0].isdigit():
                raise _Protocol(f"invalid Content-Length {length!r}")
            await self._exactly(int(length[0]), body)
        else:
            reusable = False
            await self._until_close(body)
        return Response(head.status, head.reason, head.headers, bytes(body)), reusable

    async def _chunked(self, body: bytearray) -> None:
        while True:
            size_text = (await self._line()).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _Protocol(f"invalid chunk size {size_text[:20]!r}") from None
            if size == 0:
                while await self._line():  # trailers, up to the blank line
                    pass
                return
            await self._exactly(size, body)
            if await self._line():
                raise _Protocol("chunk not followed by CRLF")

    async def _until_close(self, body: bytearray) -> None:
        while True:
            if self.buffer:
                room = max(0, KEEP_BODY - len(body))
                body += self.buffer[:room]
                self.buffer.clear()
            try:
                await self._more()
            except HTTP11Error:
                if self.eof:
                    return
                raise


class _Writer:
    """Writes the requests in windows of :data:`WINDOW`, counting what has gone out."""

    def __init__(self, stream: trio.SocketStream, wires: Sequence[bytes],
                 timeout: float) -> None:
        self.stream = stream
        self.wires = wires
        self.timeout = timeout
        self.sent = 0
        self.done = False
        self.failure: HTTP11Error | None = None
        #: set (and replaced) each time more has been written or writing failed
        self.progress = trio.Event()

    async def run(self) -> None:
        wires, timeout = self.wires, self.timeout
        try:
            for start in range(0, len(wires), WINDOW):
                chunk = wires[start:start + WINDOW]
                with trio.fail_after(timeout):
                    await self.stream.send_all(b"".join(chunk))
                self.sent += len(chunk)
                self._wake()
            self.done = True
        except trio.TooSlowError:
            self.failure = HTTP11Error(f"writing the request took over {timeout:g} s")
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self.failure = HTTP11Error(f"writing the request failed: {exc}")
        self._wake()

    def _wake(self) -> None:
        self.progress.set()
        self.progress = trio.Event()


# -- connections ------------------------------------------------------------------------

@dataclass(slots=True)
class _Connection:
    stream: trio.SocketStream
    idle_since: float

    def usable(self) -> bool:
        """Not idle too long, and not readable while idle (the server closed it, or
        sent something unasked: either way it cannot carry the next request)."""
        if time.monotonic() - self.idle_since > IDLE_SECONDS:
            return False
        poller = select.poll()  # not select(): descriptors past 1024 are common here
        try:
            poller.register(self.stream.socket.fileno(), select.POLLIN)
            return not poller.poll(0)
        except (OSError, ValueError):
            return False

    def close(self) -> None:
        self.stream.socket.close()


Outcome = Response | HTTP11Error


class Client11:
    """Kept-alive connections, one idle per origin, owned by one handler (which sends
    one batch at a time) and closed with it."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], _Connection] = {}
        self._closed = False  # a batch still under way then closes its connection

    async def pipeline(self, origin: tuple[str, int], wires: Sequence[bytes],
                       timeout: float) -> list[Outcome]:  # noqa: ASYNC109
        """Send the requests ``wires`` (from :func:`prepare`, same origin) in order and
        return one outcome for each."""
        outcomes: list[Outcome] = []
        while len(outcomes) < len(wires):
            connection = await self._connection(origin, timeout, outcomes, len(wires))
            if connection is None:
                break
            reusable = await self._exchange(connection, wires[len(outcomes):], timeout,
                                            outcomes)
            if reusable and not self._closed:
                connection.idle_since = time.monotonic()
                self._idle[origin] = connection
                if len(self._idle) > MAX_IDLE:  # a URL template naming many hosts
                    oldest = min(self._idle, key=lambda o: self._idle[o].idle_since)
                    self._idle.pop(oldest).close()
            else:
                connection.close()
        return outcomes

    async def _connection(self, origin: tuple[str, int], timeout: float,  # noqa: ASYNC109
                          outcomes: list[Outcome], total: int) -> _Connection | None:
        connection = self._idle.pop(origin, None)
        if connection is not None:
            if connection.usable():
                return connection
            connection.close()
        try:
            with trio.fail_after(timeout):
                stream = await trio.open_tcp_stream(*origin)
        except trio.TooSlowError:
            error = HTTP11Error(f"connecting to {origin[0]}:{origin[1]} timed out")
        except OSError as exc:
            error = HTTP11Error(str(exc) or type(exc).__name__)
        else:
            return _Connection(stream, time.monotonic())
        outcomes.extend([error] * (total - len(outcomes)))
        return None

    async def _exchange(self, connection: _Connection, wires: Sequence[bytes],
                        timeout: float, outcomes: list[Outcome]) -> bool:  # noqa: ASYNC109
        """Write ``wires`` while reading their answers into ``outcomes``; True when
        the connection may carry more. Stops early (False) at an answer that closes
        the connection: the requests after it are left for a new one."""
        reader = _Reader(connection.stream, timeout)
        writer = _Writer(connection.stream, wires, timeout)
        answered = 0
        failure: HTTP11Error | None = None
        reusable = True
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.run)
            while answered < len(wires):
                while answered >= writer.sent and writer.failure is None:
                    await writer.progress.wait()
                if answered >= writer.sent:
                    failure = writer.failure
                    break
                try:
                    response, reusable = await reader.response()
                except HTTP11Error as exc:
                    failure = exc
                    break
                except _Protocol as exc:
                    failure = HTTP11Error(f"invalid answer: {exc}")
                    break
                outcomes.append(response)
                answered += 1
                if not reusable:
                    break
            nursery.cancel_scope.cancel()
        if failure is not None:
            # The request waiting and all written after it: their fate is unknown.
            outcomes.extend([failure] * (len(wires) - answered))
            return False
        return reusable and writer.done and not reader.buffer

    def close(self) -> None:
        self._closed = True
        idle, self._idle = list(self._idle.values()), {}
        for connection in idle:
            connection.close()

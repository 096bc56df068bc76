"""The HTTP server: trio streams in, h11 for HTTP/1.1, one trio task per connection.

Written once for the whole API. It reads a complete request (body limit enforced before,
during and after gzip decoding), runs the middleware chain and the router, and writes
the response with the headers every Kapacitor response carries (``Request-Id``,
``X-Kapacitor-Version``). Slow clients are cut off by a header timeout and idle
keep-alive connections by an idle timeout, so one client cannot starve the others. A
request body must keep arriving (each read within the idle timeout) and must arrive at
an average of at least ``MIN_BODY_RATE`` bytes per second after the first idle timeout,
so a body trickled a byte at a time cannot hold a connection forever either.

``shutdown()`` is graceful: listeners close at once, idle connections are closed,
requests in flight get ``shutdown_timeout`` to finish, then the rest are cancelled.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import ssl
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, Sequence
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import h11
import trio

from kapa_core.errors import APIError, KapaError
from kapa_core.http import tls as https
from kapa_core.http.messages import JSON_TYPE, Request, Response
from kapa_core.http.router import Router
from kapa_core.logs import Logger
from kapa_core.models.duration import format_go

Middleware = Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]
CORS_METHODS = "DELETE, GET, OPTIONS, POST, PATCH"
CORS_HEADERS = ("Accept, Accept-Encoding, Authorization, Content-Length, Content-Type, "
                "X-CSRF-Token, X-HTTP-Method-Override")
MAX_HEAD_BYTES = 64 * 1024
#: Bytes per second a request body must average (beyond the first idle timeout).
MIN_BODY_RATE = 1000
GZIP_MIN_BYTES = 1024
#: Seconds a streamed body (live logs) has at shutdown to send what it holds.
STREAM_SHUTDOWN_GRACE = 0.25
#: the answer when even the error response cannot be built
INTERNAL_ERROR = Response(500, [("content-type", JSON_TYPE)],
                          b'{\n    "error": "internal error"\n}\n')
_HTTP_METHODS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"PATCH ", b"OPTIONS ")


class BodyTooLarge(Exception):
    pass


class _ClientGone(Exception):
    pass


def gunzip(data: bytes, limit: int) -> bytes:
    """Decompress gzip ``data`` without ever holding more than ``limit`` bytes (0 = none)."""
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = bytearray()
    chunk = data
    while chunk:
        room = (limit - len(out) + 1) if limit else 0
        out += decoder.decompress(chunk, room)
        if limit and len(out) > limit:
            raise BodyTooLarge
        chunk = decoder.unconsumed_tail
    out += decoder.flush()
    if limit and len(out) > limit:
        raise BodyTooLarge
    if not decoder.eof:
        raise zlib.error("truncated gzip body")
    return bytes(out)


class _Connection:
    """State of one client connection as the server tracks it for shutdown."""

    __slots__ = ("busy", "scope")

    def __init__(self, scope: trio.CancelScope) -> None:
        self.scope = scope
        self.busy = False


class HTTPServer:
    def __init__(self, router: Router, *, host: str, port: int, version: str, logger: Logger,
                 max_body_size: int = 25_000_000, shutdown_timeout: float = 10.0,
                 header_timeout: float = 30.0, idle_timeout: float = 120.0,
                 ssl_context: ssl.SSLContext | None = None, access_log: bool = True,
                 middleware: Sequence[Middleware] = ()) -> None:
        self.router = router
        self.host = host
        self.port = port
        self.version = version
        self.log = logger
        self.max_body_size = max_body_size
        self.shutdown_timeout = shutdown_timeout
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.ssl_context = ssl_context
        self.access_log = access_log
        self.middleware = list(middleware)
        self._connections: set[_Connection] = set()
        #: the streamed responses being sent (ended at once by shutdown)
        self._streams: set[trio.CancelScope] = set()
        self._accept_scope: trio.CancelScope | None = None
        self._closing = False
        self._drained = trio.Event()
        self._done = trio.Event()

    # -- lifecycle ------------------------------------------------------------------
    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        try:
            listeners = await trio.open_tcp_listeners(self.port, host=self.host or None)
        except OSError as exc:
            raise KapaError(f"cannot listen on {self.host}:{self.port}: "
                            f"{exc.strerror or exc}") from None
        bound = listeners[0].socket.getsockname()
        address = (self.host or bound[0], bound[1])
        protocol = "https" if self.ssl_context else "http"
        self.log.info("listening on", addr=f"{address[0]}:{address[1]}", protocol=protocol)
        try:
            async with trio.open_nursery() as connections:
                with trio.CancelScope() as accept_scope:
                    self._accept_scope = accept_scope
                    async with trio.open_nursery() as accepting:
                        for listener in listeners:
                            accepting.start_soon(self._accept, listener, connections)
                        task_status.started(address)
                # Accepting stopped: shutdown() is draining the connections.
        finally:
            for listener in listeners:
                with trio.CancelScope(shield=True):
                    await listener.aclose()
            self._done.set()

    async def shutdown(self) -> None:
        """Stop accepting, let in-flight requests finish (bounded), close everything."""
        if self._closing:
            await self._done.wait()
            return
        self._closing = True
        if self._accept_scope is not None:
            self._accept_scope.cancel()
        for conn in list(self._connections):
            if not conn.busy:
                conn.scope.cancel()
        for stream in list(self._streams):  # endless bodies (live logs) end now,
            stream.deadline = min(stream.deadline,  # once what waits is sent
                                  trio.current_time() + STREAM_SHUTDOWN_GRACE)
        if not self._connections:
            self._drained.set()
        with trio.move_on_after(self.shutdown_timeout):
            await self._drained.wait()
        for conn in list(self._connections):
            conn.scope.cancel()
        if self._accept_scope is not None:
            await self._done.wait()

    async def _accept(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:  # e.g. too many open files: back off, keep serving
                self.log.error("accept failed", err=str(exc))
                await trio.sleep(0.1)
                continue
            nursery.start_soon(self._serve_connection, stream)

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        try:
            peer = stream.socket.getpeername()
            client = (str(peer[0]), int(peer[1]))
        except OSError:
            client = ("", 0)
        with trio.CancelScope() as scope:
            conn = _Connection(scope)
            self._connections.add(conn)
            try:
                io: trio.abc.Stream = stream
                transport = https.TLSTransport(stream)
                if self.ssl_context is not None:
                    io = transport.start_tls(self.ssl_context)
                await self._session(io, client, conn)
            except ssl.SSLError as exc:
                await self._tls_failed(exc, client, transport)
            except trio.BrokenResourceError as exc:
                if isinstance(exc.__cause__, ssl.SSLError):
                    await self._tls_failed(exc.__cause__, client, transport)
            except (trio.ClosedResourceError, _ClientGone):
                pass
            except trio.TooSlowError:
                self.log.debug("connection closed: the client was too slow",
                               client=f"{client[0]}:{client[1]}")
            except Exception:  # the last guard: one connection never stops the server
                self.log.exception("connection failed", client=f"{client[0]}:{client[1]}")
            finally:
                self._connections.discard(conn)
                if self._closing and not self._connections:
                    self._drained.set()
                with trio.CancelScope(shield=True), trio.move_on_after(1), \
                        contextlib.suppress(trio.BrokenResourceError, OSError):
                    await stream.aclose()

    async def _tls_failed(self, exc: ssl.SSLError, client: tuple[str, int],
                          transport: https.TLSTransport) -> None:
        """One log line per failed handshake; plain HTTP gets Go's 400 answer."""
        peer = f"{client[0]}:{client[1]}"
        plain = https.is_plain_http(exc, transport.first)
        self.log.error("http: TLS handshake error", client=peer,
                       err=https.PLAIN_HTTP_ERROR if plain else https.describe(exc),
                       hint=https.PLAIN_HTTP_HINT if plain else None)
        with trio.move_on_after(1), contextlib.suppress(trio.BrokenResourceError,
                                                       trio.ClosedResourceError, OSError):
            if plain:
                await transport.send_all(https.PLAIN_HTTP_ANSWER)
                await transport.linger()
            else:
                await transport.send_alert()

    # -- one connection ----------------------------------------------------------------
    async def _receive(self, io: trio.abc.Stream, h: h11.Connection) -> None:
        data = await io.receive_some(65536)
        h.receive_data(cast(bytes, data))  # h11 appends it to a bytearray: either will do

    async def _next_event(self, io: trio.abc.Stream, h: h11.Connection) -> Any:
        while True:
            event = h.next_event()
            if event is not h11.NEED_DATA:
                return event
            await self._receive(io, h)

    async def _read_head(self, io: trio.abc.Stream, h: h11.Connection,
                         first: bool) -> Any:
        """Wait for a request head: idle timeout until bytes arrive, then header timeout."""
        with trio.CancelScope() as scope:
            scope.deadline = trio.current_time() + (self.header_timeout if first
                                                    else self.idle_timeout)
            started = False
            while True:
                event = h.next_event()
                if event is not h11.NEED_DATA:
                    return event
                await self._receive(io, h)
                if not started:
                    started = True
                    scope.deadline = min(scope.deadline,
                                         trio.current_time() + self.header_timeout)
        raise trio.TooSlowError  # the deadline passed

    async def _session(self, io: trio.abc.Stream, client: tuple[str, int],
                       conn: _Connection) -> None:
        h = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        first = True
        while True:
            try:
                event = await self._read_head(io, h, first)
            except h11.RemoteProtocolError as exc:
                await self._send_error(io, h, exc.error_status_hint, f"malformed request: {exc}")
                return
            first = False
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return
            if not isinstance(event, h11.Request):
                return
            conn.busy = True
            try:
                keep = await self._exchange(io, h, event, client)
            finally:
                conn.busy = False
            if not keep or self._closing or h.our_state is h11.MUST_CLOSE:
                return
            try:
                h.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _exchange(self, io: trio.abc.Stream, h: h11.Connection, head: h11.Request,
                        client: tuple[str, int]) -> bool:
        """Read one request's body, answer it; False when the connection must close."""
        started = time.monotonic()
        start_wall = dt.datetime.now(dt.UTC)
        request_id = str(uuid.uuid1())
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1"))
                   for k, v in head.headers]
        target = head.target.decode("latin-1")
        parts = urlsplit(target)
        request = Request(method=head.method.decode("ascii").upper(),
                          path=unquote(parts.path), raw_target=target,
                          query=parse_qs(parts.query, keep_blank_values=True),
                          headers=headers, client=client, request_id=request_id,
                          http_version=head.http_version.decode("ascii"))
        keep = True
        try:
            request.body = await self._read_body(io, h, request)
            response = await self._respond(request)
        except BodyTooLarge:
            response = Response.error(413, f"request body too large: limit is "
                                           f"{self.max_body_size} bytes")
            keep = False
        except (zlib.error, EOFError, OSError) as exc:
            response = Response.error(400, f"invalid gzip request body: {exc}")
            keep = False
        except h11.RemoteProtocolError as exc:
            response = Response.error(400, f"malformed request: {exc}")
            keep = False
        if response.stream is not None and keep:
            await self._send_stream(io, h, request, response)
            keep = False  # bytes the client sent meanwhile were not read as a request
        else:
            await self._send(io, h, request, response, close=not keep)
        if self.access_log:
            self._log_access(request, response, start_wall, time.monotonic() - started)
        return keep

    async def _read_body(self, io: trio.abc.Stream, h: h11.Connection,
                         request: Request) -> bytes:
        limit = self.max_body_size
        length = request.header("content-length")
        if limit and length and length.isdigit() and int(length) > limit:
            raise BodyTooLarge
        if h.they_are_waiting_for_100_continue:
            await io.send_all(h.send(h11.InformationalResponse(status_code=100, headers=[])))
        body = bytearray()
        deadline = trio.current_time() + self.idle_timeout
        while True:
            with trio.fail_at(min(deadline, trio.current_time() + self.idle_timeout)):
                event = await self._next_event(io, h)
            if isinstance(event, h11.Data):
                body += event.data
                deadline += len(event.data) / MIN_BODY_RATE
                if limit and len(body) > limit:
                    raise BodyTooLarge
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise _ClientGone
        data = bytes(body)
        if data and (request.header("content-encoding") or "").lower() == "gzip":
            data = gunzip(data, limit)
        return data

    async def _respond(self, request: Request) -> Response:
        if request.method == "OPTIONS":  # Kapacitor's CORS wrapper answers every OPTIONS
            return Response(200, [], b"")
        chain: Callable[[Request], Awaitable[Response]] = self.router.dispatch
        for mw in reversed(self.middleware):
            chain = _bind(mw, chain)
        try:
            return await chain(request)
        except APIError as exc:
            return Response.error(exc.status, exc.message)
        except Exception as exc:  # one failing request never takes the server down
            self.log.exception("request failed", method=request.method, path=request.path,
                               request_id=request.request_id)
            try:
                return Response.error(500, f"internal error: {type(exc).__name__}: {exc}")
            except Exception:
                return INTERNAL_ERROR

    # -- writing ----------------------------------------------------------------------
    def _final_headers(self, request: Request | None, response: Response,
                       close: bool) -> tuple[list[tuple[str, str]], bytes]:
        headers = [(k.lower(), v) for k, v in response.headers]
        names = {k for k, _ in headers}
        body = response.body
        if "content-type" not in names:
            headers.append(("content-type", JSON_TYPE))
        if request is not None:
            origin = request.header("origin")
            if origin:
                headers += [("access-control-allow-origin", origin),
                            ("access-control-allow-methods", CORS_METHODS),
                            ("access-control-allow-headers", CORS_HEADERS)]
            accept = (request.header("accept-encoding") or "").lower()
            if ("gzip" in accept and response.stream is None and len(body) >= GZIP_MIN_BYTES
                    and "content-encoding" not in names):
                body = gzip.compress(body, 5)
                headers.append(("content-encoding", "gzip"))
        headers += [("request-id", request.request_id if request else str(uuid.uuid1())),
                    ("x-kapacitor-version", self.version),
                    ("date", formatdate(usegmt=True))]
        if response.status not in (204, 304) and response.status >= 200 \
                and response.stream is None:  # a stream goes chunked (h11 frames it)
            headers.append(("content-length", str(len(body))))
        if close:
            headers.append(("connection", "close"))
        return headers, body

    def _head(self, request: Request | None, response: Response,
              close: bool) -> tuple[h11.Response, bytes]:
        """The response head (h11 checks every header as it is built) and body; a
        response that cannot be encoded becomes a 500, so the client always gets one."""
        try:
            if not isinstance(response.body, bytes):
                raise TypeError(f"response body is {type(response.body).__name__}, "
                                "not bytes")
            headers, body = self._final_headers(request, response, close)
            return h11.Response(status_code=response.status,
                                reason=_reason(response.status),
                                # h11 takes str or bytes for names and values alike
                                # (its annotation asks for one kind per list)
                                headers=cast("list[tuple[bytes, bytes]]",
                                             [(_canonical(k), _header_value(v))
                                              for k, v in headers])), body
        except Exception:
            self.log.exception("cannot encode response", status=response.status,
                               request_id=request.request_id if request else None)
            headers, body = self._final_headers(None, INTERNAL_ERROR, close)
            return h11.Response(status_code=500, reason=_reason(500),
                                headers=[(_canonical(k), v) for k, v in headers]), body

    async def _send(self, io: trio.abc.Stream, h: h11.Connection, request: Request | None,
                    response: Response, *, close: bool = False) -> None:
        head, body = self._head(request, response, close)
        try:
            data = h.send(head)
            if body and (request is None or request.method != "HEAD") and \
                    head.status_code not in (204, 304):
                data += h.send(h11.Data(data=body))
            data += h.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            self.log.error("cannot send response", err=str(exc))
            raise _ClientGone from None
        await io.send_all(data)

    async def _send_stream(self, io: trio.abc.Stream, h: h11.Connection, request: Request,
                           response: Response) -> None:
        """Send the head, then what ``response.stream`` writes, each piece as one chunk,
        until it returns (the body ends properly), the client goes away or the server
        shuts down. The connection is closed afterwards either way."""
        assert response.stream is not None
        head, body = self._head(request, response, close=False)
        try:
            await io.send_all(h.send(head))
            if request.method == "HEAD" or head.status_code != response.status:
                if body and request.method != "HEAD":
                    await io.send_all(h.send(h11.Data(data=body)))
                await io.send_all(h.send(h11.EndOfMessage()))
                return
        except (h11.LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            return
        broken = False  # the client is gone, or a write was cut short

        async def send(chunk: bytes) -> None:
            nonlocal broken
            if not chunk:
                return
            broken = True  # until the whole chunk is written
            try:
                await io.send_all(h.send(h11.Data(data=chunk)))
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                scope.cancel()
                await trio.lowlevel.checkpoint()  # raises Cancelled: the stream ends
            broken = False

        async def until_client_gone() -> None:
            nonlocal broken
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError,
                                     OSError):
                while await io.receive_some(4096):
                    pass  # a pipelined request is not served: the connection closes
            broken = True
            scope.cancel()

        with trio.CancelScope() as scope:
            self._streams.add(scope)
            if self._closing:
                scope.deadline = trio.current_time() + STREAM_SHUTDOWN_GRACE
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(until_client_gone)
                    await response.stream(send)
                    nursery.cancel_scope.cancel()
            except Exception:
                self.log.exception("streamed response failed", path=request.path,
                                   request_id=request.request_id)
                broken = True
            finally:
                self._streams.discard(scope)
        if broken:
            return
        with trio.move_on_after(1), contextlib.suppress(
                trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
            await io.send_all(h.send(h11.EndOfMessage()))

    async def _send_error(self, io: trio.abc.Stream, h: h11.Connection, status: int,
                          message: str) -> None:
        if h.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        with contextlib.suppress(trio.BrokenResourceError, _ClientGone):
            await self._send(io, h, None, Response.error(status, message), close=True)

    def _log_access(self, request: Request, response: Response, start: dt.datetime,
                    elapsed: float) -> None:
        self.log.info("http request", host=request.client[0],
                      username=request.context.get("username", "-"),
                      start=start.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                      method=request.method, uri=request.raw_target,
                      protocol=f"HTTP/{request.http_version}", status=response.status,
                      referer=request.header("referer") or "-",
                      **{"user-agent": request.header("user-agent") or "-",
                         "request-id": request.request_id},
                      duration=format_go(int(elapsed * 1e9)))


def _header_value(value: str) -> bytes:
    """A header value as bytes: request headers are read as Latin-1, so a value copied
    from one (``Origin`` into CORS headers) goes back out as the bytes that came in."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace")


def _canonical(name: str) -> str:
    """Header names as Go writes them: ``request-id`` -> ``Request-Id``."""
    return "-".join(part[:1].upper() + part[1:] for part in name.split("-"))


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def _bind(mw: Middleware, call_next: Callable[[Request], Awaitable[Response]]
          ) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        return await mw(request, call_next)
    return run

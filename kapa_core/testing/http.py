"""Loopback servers for tests: an HTTP server on a thread, one that records what reaches
it, and a TCP listener that keeps the bytes of each connection.

    with RecordingHTTPServer() as server:      # http://127.0.0.1:<free port>, answers 204
        ...                                    # point a handler or a node at server.url
        server.wait_for(1)                     # the requests, once one has arrived
        server.requests[0].json()              # method, path, query, headers, body

    RecordingHTTPServer(status=500, body=b'{"error": "no"}')  # every answer the same
    RecordingHTTPServer(respond=lambda request: (200, {"X-A": "1"}, b"ok"))  # per request

``http.server``'s default listen backlog is 5: when a daemon fires a burst of handler
requests at once (many alerts in the same instant), connections beyond the backlog can be
reset by the kernel and a test would see a delivery fail that kapa-core made correctly.
:class:`LocalHTTPServer` has a deeper backlog that takes the burst.

A server with its own handler class subclasses :class:`ServedHTTP`::

    class Receiver(ServedHTTP):
        def __init__(self) -> None:
            class Handler(BaseHTTPRequestHandler): ...
            super().__init__(Handler)
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


class LocalHTTPServer(ThreadingHTTPServer):
    request_queue_size = 256
    daemon_threads = True


class ServedHTTP:
    """A :class:`LocalHTTPServer` for ``handler`` on a free port of ``host``, served on a
    daemon thread from :meth:`start` (or entering ``with``) to :meth:`close` (or leaving)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1", *,
                 poll_interval: float = 0.5) -> None:
        self.server = LocalHTTPServer((host, 0), handler)
        self.host = host
        self.port = int(self.server.server_address[1])
        self.address = f"{host}:{self.port}"
        self.url = f"http://{host}:{self.port}"
        self._poll_interval = poll_interval
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        args=(self._poll_interval,), daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:  # shutdown() waits for serve_forever: only once begun
            self.server.shutdown()
            self._thread.join(5)
            self._thread = None
        self.server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Recorded:
    """One request as it reached a :class:`RecordingHTTPServer`. ``path`` is the request
    target as sent (query string included); ``headers`` have lower-case names."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    #: the path without its query string, and the query's values by name
    route: str = ""
    query: dict[str, list[str]] = field(default_factory=dict)

    def json(self) -> Any:
        """The body decoded as JSON (ValueError when it is not)."""
        return json.loads(self.body)

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def as_dict(self) -> dict[str, Any]:
        """The request as a dict (``headers`` case-insensitive), for tests that add
        fields of their own (e.g. the parsed JSON body)."""
        import httpx  # a dependency of kapa-core; only this view needs it

        return {"method": self.method, "path": self.path,
                "headers": httpx.Headers(self.headers), "body": self.body}


#: What a :class:`RecordingHTTPServer` answers: status, extra headers, body.
Answer = tuple[int, Mapping[str, str], bytes]


class RecordingHTTPServer(ServedHTTP):
    """An HTTP server on a free loopback port that keeps every request it gets (in
    ``requests``, in arrival order) and answers each with ``status``, ``headers`` and
    ``body``, or with what ``respond(request)`` returns."""

    def __init__(self, host: str = "127.0.0.1", status: int = 204,
                 headers: Mapping[str, str] | None = None, body: bytes = b"", *,
                 respond: Callable[[Recorded], Answer] | None = None) -> None:
        self.requests: list[Recorded] = []
        self.status = status
        self.headers = dict(headers or {})
        self.body = body
        self.respond = respond
        self._arrived = threading.Condition()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Recorded(self.command, self.path,
                                   {k.lower(): v for k, v in self.headers.items()}, data,
                                   parts.path, parse_qs(parts.query, keep_blank_values=True))
                recorder._record(request)
                if recorder.respond is not None:
                    status, extra, answer = recorder.respond(request)
                else:
                    status, extra, answer = recorder.status, recorder.headers, recorder.body
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                if answer and self.command != "HEAD":
                    self.wfile.write(answer)

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = do_PATCH = _any

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(Handler, host)

    def _record(self, request: Recorded) -> None:
        with self._arrived:
            self.requests.append(request)
            self._arrived.notify_all()

    def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[Recorded]:
        """The requests once at least ``count`` have arrived; AssertionError naming what
        did arrive after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{len(self.requests)} request(s) reached {self.url} in "
                        f"{timeout:g}s, expected {count}: {self.paths()}")
                self._arrived.wait(left)
            return list(self.requests)

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


class TCPRecorder:
    """Accepts connections on 127.0.0.1 and keeps what each one sent."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.address = f"{host}:{self.port}"
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(10)  # the sender closes once it has sent
                data = b""
                try:
                    while chunk := conn.recv(65536):
                        data += chunk
                except OSError:
                    pass
                self.received.append(data)

    def __enter__(self) -> TCPRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


__all__ = ["Answer", "LocalHTTPServer", "Recorded", "RecordingHTTPServer", "ServedHTTP",
           "TCPRecorder"]

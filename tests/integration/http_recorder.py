"""Loopback servers that record what reaches them, for outgoing-connection tests.

    with HTTPRecorder() as rec:          # http://127.0.0.1:<free port>, answers 204
        ...
        assert rec.requests == []        # nothing was sent
        rec.requests[0].headers["content-type"]  # a Recorded; header names in lower case

    HTTPRecorder(status=500)             # answers every request 500 (empty body)

    with TCPRecorder() as tcp:           # counts accepted connections and their bytes
        ...
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx

from tests.integration.local_http import ServedHTTP


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def as_dict(self) -> dict[str, Any]:
        """The request as a dict (``headers`` case-insensitive), for tests that add
        fields of their own (e.g. the parsed JSON body)."""
        return {"method": self.method, "path": self.path,
                "headers": httpx.Headers(self.headers), "body": self.body}


class HTTPRecorder(ServedHTTP):
    def __init__(self, host: str = "127.0.0.1", status: int = 204,
                 headers: dict[str, str] | None = None) -> None:
        self.requests: list[Recorded] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorder.requests.append(Recorded(self.command, self.path,
                                                  {k.lower(): v for k, v in
                                                   self.headers.items()}, body))
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = do_HEAD = _any

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(Handler, host)

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
                conn.settimeout(10)  # the handler closes once it has sent
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

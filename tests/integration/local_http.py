"""The HTTP server class the tests' local receivers use, and a base to run one on a thread.

``http.server``'s default listen backlog is 5: when a daemon fires a burst of handler
requests at once (many alerts in the same instant), connections beyond the backlog can
be reset by the kernel and the test would see a delivery fail that kapa-core made
correctly. A deeper backlog takes the burst.

A receiver subclasses :class:`ServedHTTP` with its request handler class::

    class Receiver(ServedHTTP):
        def __init__(self) -> None:
            class Handler(BaseHTTPRequestHandler): ...
            super().__init__(Handler)

    with Receiver() as receiver:     # serving from here ...
        receiver.url                 # http://127.0.0.1:<free port>
    # ... to here: shut down, socket closed
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LocalHTTPServer(ThreadingHTTPServer):
    request_queue_size = 256
    daemon_threads = True


class ServedHTTP:
    """A :class:`LocalHTTPServer` for ``handler`` on a free port of ``host``, served on a
    daemon thread from :meth:`start` (or entering ``with``) to :meth:`close` (or leaving)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1", *,
                 poll_interval: float = 0.5) -> None:
        self.server = LocalHTTPServer((host, 0), handler)
        self.port = int(self.server.server_address[1])
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

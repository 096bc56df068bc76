"""The HTTP server class the tests' local receivers use.

``http.server``'s default listen backlog is 5: when a daemon fires a burst of handler
requests at once (many alerts in the same instant), connections beyond the backlog can
be reset by the kernel and the test would see a delivery fail that kapa-core made
correctly. A deeper backlog takes the burst.
"""

from __future__ import annotations

from http.server import ThreadingHTTPServer


class LocalHTTPServer(ThreadingHTTPServer):
    request_queue_size = 256
    daemon_threads = True

"""Alert handler throughput: alerts through an HTTP handler to a local server.

    python benchmarks/bench_handlers.py [--alerts 2000] [--kind post slack]

Starts a local HTTP/1.1 server (keep-alive, answers 200) and the real daemon with a
``[[slack]]`` element pointing at it, defines ``alert().crit(lambda: TRUE)`` with the
``.post(url)`` or ``.slack()`` handler, writes ``--alerts`` points in one body (one
CRITICAL event each) and waits until the server has received them all. Prints alerts per
second (from the write until the last request arrived) and how many TCP connections the
daemon opened for them.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kapa_core.testing import DaemonProcess, ServedHTTP


class Receiver(ServedHTTP):
    """Counts requests and the client ports they came from."""

    def __init__(self) -> None:
        self.count = 0
        self.clients: set[tuple[str, int]] = set()
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with lock:
                    receiver.count += 1
                    receiver.clients.add(self.client_address)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(Handler)


def run(alerts: int, kind: str) -> None:
    with Receiver() as server:
        url = server.url + "/alert"
        config = {"http": {"log-enabled": False}, "logging": {"level": "WARN"},
                  "slack": [{"enabled": True, "default": True, "url": url,
                             "channel": "#bench"}]}
        handler = f".post('{url}')" if kind == "post" else ".slack()"
        with DaemonProcess(config) as daemon, httpx.Client(base_url=daemon.url,
                                                           timeout=60) as client:
            script = f"stream|from().measurement('m')|alert().crit(lambda: TRUE).id('a')" \
                     f"{handler}"
            response = client.post("/kapacitor/v1/tasks", json={
                "id": "bench", "type": "stream", "status": "enabled",
                "dbrps": [{"db": "db", "rp": "rp"}], "script": script})
            assert response.status_code == 200, response.text
            body = "\n".join(f"m v={i} {1_600_000_000 + i}" for i in range(alerts))
            start = time.perf_counter()
            response = client.post("/write", params={"db": "db", "rp": "rp",
                                                     "precision": "s"}, content=body)
            assert response.status_code == 204, response.text
            while server.count < alerts and time.perf_counter() - start < 600:
                time.sleep(0.005)
            elapsed = time.perf_counter() - start
    print(f"{kind}: {server.count} alerts in {elapsed:.2f} s = {server.count / elapsed:.0f}"
          f" alerts/s over {len(server.clients)} connection(s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--kind", nargs="+", default=["post", "slack"],
                        choices=["post", "slack"])
    args = parser.parse_args()
    for kind in args.kind:
        run(args.alerts, kind)


if __name__ == "__main__":
    main()

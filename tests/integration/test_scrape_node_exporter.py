"""The real end-to-end case: the Prometheus node exporter (Debian
``prometheus-node-exporter``) on a loopback port, found by a ``[[scraper]]`` through
static-discovery and then file-discovery; a task receives ``node_load1`` and writes it
out with httpOut, and the values equal what the exporter serves around the scrapes."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kapa_core.testing import DaemonProcess, wait_until

pytestmark = pytest.mark.integration

API = "/kapacitor/v1"
EXPORTER = shutil.which("prometheus-node-exporter") or "/usr/bin/prometheus-node-exporter"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Exporter:
    """The node exporter with only its loadavg collector, and every ``node_load1``
    value it served to a poller that reads it every 50 ms."""

    def __init__(self) -> None:
        self.address = f"127.0.0.1:{free_port()}"
        self.proc = subprocess.Popen(
            [EXPORTER, f"--web.listen-address={self.address}", "--collector.disable-defaults",
             "--collector.loadavg", "--web.disable-exporter-metrics"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.served: set[float] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def value(self) -> float | None:
        try:
            text = httpx.get(f"http://{self.address}/metrics", timeout=2).text
        except httpx.HTTPError:
            return None
        for line in text.splitlines():
            if line.startswith("node_load1 "):
                return float(line.split()[1])
        return None

    def _poll(self) -> None:
        while not self._stop.is_set():
            value = self.value()
            if value is not None:
                self.served.add(value)
            self._stop.wait(0.05)

    def start(self) -> Exporter:
        wait_until(self.value, what="the node exporter serving node_load1")
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def exporter() -> Iterator[Exporter]:
    server = Exporter()
    try:
        yield server.start()
    finally:
        server.close()


def scraper(discoverer: str, service: str) -> dict[str, Any]:
    return {"enabled": True, "name": "node", "discoverer-id": discoverer,
            "discoverer-service": service, "db": "prom", "rp": "autogen",
            "scrape-interval": "1s", "scrape-timeout": "900ms"}


def check_load(daemon: DaemonProcess, exporter: Exporter) -> None:
    script = ('dbrp "prom"."autogen"\n'
              "stream|from().measurement('node_load1')|httpOut('load')")
    response = httpx.post(daemon.url + API + "/tasks", json={
        "id": "load", "type": "stream", "script": script, "status": "enabled"})
    assert response.status_code == 200, response.text
    seen: list[tuple[str, float]] = []

    def received() -> list[tuple[str, float]]:
        out = httpx.get(daemon.url + API + "/tasks/load/load").json()
        for series in out.get("series") or []:
            assert series["name"] == "node_load1"
            assert series["tags"] == {"__name__": "node_load1", "instance": exporter.address}
            when, value = series["values"][0]
            if (when, value) not in seen:
                seen.append((when, value))
        return seen

    wait_until(received, until=lambda s: len(s) >= 3, timeout=15,
               what="three scrapes of node_load1")
    time.sleep(0.2)  # the poller's read just after the last scrape
    for _, value in seen:
        assert value in exporter.served, (value, sorted(exporter.served))


def test_node_load1_through_static_discovery(exporter: Exporter) -> None:
    config = {"static-discovery": [{"enabled": True, "id": "node",
                                    "targets": [exporter.address]}],
              "scraper": [scraper("node", "static-discovery")]}
    with DaemonProcess(config) as daemon:
        check_load(daemon, exporter)


def test_node_load1_through_file_discovery(exporter: Exporter, tmp_path: Path) -> None:
    (tmp_path / "node.yml").write_text(f"- targets: ['{exporter.address}']\n")
    config = {"file-discovery": [{"enabled": True, "id": "node",
                                  "files": [str(tmp_path / "*.yml")]}],
              "scraper": [scraper("node", "file-discovery")]}
    with DaemonProcess(config) as daemon:
        shown = httpx.get(daemon.url + API + "/discovery/file-discovery/node").json()
        assert json.dumps(shown["groups"][0]["targets"]) == json.dumps([exporter.address])
        check_load(daemon, exporter)

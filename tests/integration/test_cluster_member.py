"""A daemon with ``[cluster] enabled``, on a real nats-server with JetStream: its writes
go through the stream (``204`` once stored), its tasks read from it and give what a
single daemon gives, and a member killed with SIGKILL loses no acknowledged point."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from kapa_core.testing import DaemonProcess, wait_until
from kapa_core.testing.nats import NatsCluster, NatsServer

pytestmark = pytest.mark.integration

DBRPS = [{"db": "db", "rp": "rp"}]
WINDOWED = ("stream\n    |from()\n        .measurement('cpu')\n        .groupBy('host')\n"
            "    |window()\n        .period(10s)\n        .every(10s)\n"
            "    |mean('usage')\n    |httpOut('out')\n")


def member(nats: NatsServer, name: str = "t", data_dir: str | None = None,
           **extra: Any) -> DaemonProcess:
    # no _kapacitor statistics: they would go through the stream too
    return DaemonProcess({"cluster": {"enabled": True, "urls": [nats.url], "name": name,
                                      **extra}, "stats": {"enabled": False}},
                         data_dir=data_dir)


def define(daemon: DaemonProcess, task_id: str, script: str) -> None:
    answer = httpx.post(f"{daemon.url}/kapacitor/v1/tasks", json={
        "id": task_id, "type": "stream", "dbrps": DBRPS, "script": script,
        "status": "enabled"})
    assert answer.status_code == 200, answer.text


def write(daemon: DaemonProcess, body: str) -> httpx.Response:
    return httpx.post(f"{daemon.url}/write", params={"db": "db", "rp": "rp",
                                                     "precision": "s"}, content=body,
                      timeout=30)


def stream_messages(nats: NatsServer, stream: str) -> int:
    _status, doc = nats.monitor("/jsz?streams=true")
    for account in doc.get("account_details", []):
        for detail in account.get("stream_detail", []):
            if detail["name"] == stream:
                return int(detail["state"]["messages"])
    raise AssertionError(f"no stream {stream} on the server")


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(store_dir=tmp_path / "nats") as server:
        yield server


def test_tasks_give_what_a_single_daemon_gives(nats: NatsServer) -> None:
    bodies = ["\n".join(f"cpu,host=h{h} usage={(s * 7 + h * 13) % 100} {s}"
                        for h in range(3)) + f"\nmem,host=h0 used={s} {s}"
              for s in range(0, 60, 3)]
    outputs = []
    for daemon in (DaemonProcess(), member(nats)):
        with daemon:
            define(daemon, "cpu", WINDOWED)
            for body in bodies:
                assert write(daemon, body).status_code == 204
            task = f"{daemon.url}/kapacitor/v1/tasks/cpu"
            wait_until(lambda: httpx.get(task).json()["stats"]["node-stats"]["from1"],
                       until=lambda stats: stats["collected"] == 3 * len(bodies),
                       what="every cpu point read by the task")
            outputs.append(httpx.get(f"{task}/out").json())
    single, clustered = outputs
    assert clustered == single
    assert len(single["series"]) == 3


def test_a_write_is_answered_once_stored(nats: NatsServer) -> None:
    with member(nats, **{"publish-timeout": "1s"}) as daemon:
        assert write(daemon, "cpu,host=a usage=1 1\nmem used=2 1\nmem used=3 2").status_code \
            == 204
        assert stream_messages(nats, "t_points") == 2  # one per measurement of the write
        nats.stop()
        started = time.monotonic()
        refused = write(daemon, "cpu,host=a usage=5 5")
        assert refused.status_code == 500
        assert refused.json()["error"].startswith("points not stored: ")
        assert time.monotonic() - started < 15
        nats.start()
        wait_until(lambda: write(daemon, "cpu,host=a usage=6 6").status_code,
                   until=lambda status: status == 204, timeout=30,
                   what="writes stored again once NATS is back")


class _Recorder(BaseHTTPRequestHandler):
    received: list[Any]
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            self.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class Sequence:
    """A task posting each ``seq`` point to a local server, and the points it posted."""

    script: str
    received: list[Any]

    def seen(self) -> set[int]:
        with _Recorder.lock:
            return {int(row[1]) for doc in self.received for row in doc["series"][0]["values"]}

    def wait_for(self, acknowledged: list[int]) -> None:
        missing = wait_until(lambda: set(acknowledged) - self.seen(), until=lambda m: not m,
                             timeout=60, what="every acknowledged point posted")
        assert not missing


@pytest.fixture
def sequence() -> Iterator[Sequence]:
    received: list[Any] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 type("Recorder", (_Recorder,), {"received": received}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Sequence("stream\n    |from()\n        .measurement('seq')\n"
                       f"    |httpPost('http://127.0.0.1:{server.server_address[1]}/')\n",
                       received)
    finally:
        server.shutdown()


def test_a_killed_member_loses_no_acknowledged_point(nats: NatsServer, tmp_path: Path,
                                                     sequence: Sequence) -> None:
    acknowledged: list[int] = []
    data_dir = str(tmp_path / "member")
    daemon = member(nats, data_dir=data_dir).start()
    try:
        define(daemon, "seq", sequence.script)
        for n in range(400):
            if n == 200:
                daemon.kill()  # SIGKILL, whatever it had fetched and not acknowledged
                daemon = member(nats, data_dir=data_dir).start()
            if write(daemon, f"seq n={n}i {n + 1}").status_code == 204:
                acknowledged.append(n)
        sequence.wait_for(acknowledged)
        assert len(acknowledged) >= 390  # the restart took at most a few writes
    finally:
        daemon.close()


def test_a_nats_server_restarted_under_load_loses_no_acknowledged_point(
        sequence: Sequence) -> None:
    acknowledged: list[int] = []
    with NatsCluster(3) as nats, DaemonProcess({
            "cluster": {"enabled": True, "urls": nats.urls, "name": "ha", "replicas": 3},
            "stats": {"enabled": False}}) as daemon:
        define(daemon, "seq", sequence.script)
        for n in range(300):
            if n == 100:
                nats.restart(0)  # a clean restart
            if n == 200:
                nats.restart(1, kill=True)  # SIGKILL, then started again
            if write(daemon, f"seq n={n}i {n + 1}").status_code == 204:
                acknowledged.append(n)
        sequence.wait_for(acknowledged)
        assert len(acknowledged) >= 280, len(acknowledged)

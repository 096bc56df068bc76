"""The InfluxDB that batch cases query: one real ``influxd`` for a whole run, each case's
points loaded into it before the case runs.

A batch case's points go into the database and retention policy the case names (``db``,
default ``mydb``; ``rp``, default ``myrp``), which are dropped and created again first,
so a case never sees the points of the case before it.
"""

from __future__ import annotations

import time

import httpx

from tests.compat.casefile import Case
from tests.integration.influxd import InfluxD


def _ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxServer:
    """``InfluxServer().start()`` … ``load(case)`` … ``close()`` (always, even on failure)."""

    def __init__(self) -> None:
        self.influxd = InfluxD()

    @property
    def url(self) -> str:
        return self.influxd.url

    def start(self) -> InfluxServer:
        self.influxd.start()
        return self

    def load(self, case: Case) -> None:
        db = case.get("db", "mydb")
        rp = case.get("rp", "myrp")
        self.influxd.query(f"DROP DATABASE {_ident(db)}")
        self.influxd.query(f"CREATE DATABASE {_ident(db)} WITH NAME {_ident(rp)}")
        points = case.get("points", "").strip()
        if not points:
            return
        response = httpx.post(self.url + "/write", params={
            "db": db, "rp": rp, "precision": case.get("precision", "s")},
            content=points.encode(), timeout=30)
        if response.status_code != 204:
            raise RuntimeError(f"influxd refused the points of {case.name}: "
                               f"{response.status_code} {response.text}")

    def close(self) -> None:
        self.influxd.close()

    def __enter__(self) -> InfluxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def replay(client: httpx.Client, url: str, case: Case, timeout: float = 60.0) -> str:
    """Replay the batch task of ``case`` (defined, disabled) over the case's ``start`` ..
    ``stop`` with the points' own times and the fast clock, and wait for it to end.
    Returns the replay's error ("" when it finished)."""
    base = f"{url}/kapacitor/v1/replays"
    replay_id = case.task_id
    client.delete(f"{base}/{replay_id}")
    response = client.post(f"{base}/batch", json={
        "id": replay_id, "task": case.task_id, "start": case.get("start"),
        "stop": case.get("stop"), "recording-time": True, "clock": "fast"})
    if response.status_code != 201:
        return f"replay refused: {response.status_code} {response.json().get('error')}"
    deadline = time.monotonic() + timeout
    try:
        while True:
            body = client.get(f"{base}/{replay_id}").json()
            if body.get("status") != "running":
                return body.get("error", "")
            if time.monotonic() > deadline:
                return f"replay still running after {timeout} s"
            time.sleep(0.05)
    finally:
        client.delete(f"{base}/{replay_id}")

"""When a periodic barrier fires: every ``period`` counted from the group's first message,
not from the start of the task.

The expected times were taken from Kapacitor 1.5.7 (kapacitord run with the same task
and writes, the post arrival times measured the same way): a group whose first point
comes 1.2s after the task starts gets its first barrier 2s after that point
(``barrier().period(2s)``), so the window it closes is posted then.
"""

from __future__ import annotations

import time

import httpx
import pytest

from kapa_core.testing import DaemonProcess
from tests.compat.runner import Recorder


@pytest.fixture(scope="module")
def daemon():
    with DaemonProcess({"http": {"log-enabled": False},
                        "logging": {"level": "ERROR"}}) as d:
        yield d


@pytest.fixture()
def recorder():
    r = Recorder()
    yield r
    r.close()


def first_post_after_write(url: str, recorder: Recorder, delay: float,
                           timeout: float = 3.5) -> float | None:
    """Seconds from the write (``delay`` after the task starts) to the first post."""
    task = "periodic-phase"
    client = httpx.Client(timeout=10)
    client.delete(f"{url}/kapacitor/v1/tasks/{task}")
    script = f"""stream
    |from()
        .measurement('cpu')
    |barrier()
        .period(2s)
    |window()
        .period(10s)
        .every(1s)
    |httpPost('{recorder.http_url}/phase')
"""
    r = client.post(f"{url}/kapacitor/v1/tasks", json={
        "id": task, "type": "stream", "status": "enabled", "script": script,
        "dbrps": [{"db": "db", "rp": "rp"}]})
    assert r.status_code == 200, r.text
    try:
        time.sleep(delay)
        written = time.monotonic()
        client.post(f"{url}/write", params={"db": "db", "rp": "rp", "precision": "s"},
                    content=f"cpu,host=a v=1 {int(time.time())}".encode())
        while time.monotonic() - written < timeout:
            with recorder.lock:
                if recorder.posts.get("/phase"):
                    return time.monotonic() - written
            time.sleep(0.02)
        return None
    finally:
        client.delete(f"{url}/kapacitor/v1/tasks/{task}")
        client.close()


def test_periodic_barrier_ticks_from_the_groups_first_point(daemon, recorder) -> None:
    after = first_post_after_write(daemon.url, recorder, delay=1.2)
    # Kapacitor: 2s after the point (its group's ticker starts with it); a ticker
    # started with the task would have fired 0.8s after the point.
    assert after is not None and 1.6 < after < 2.6, after

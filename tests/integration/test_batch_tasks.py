"""Batch tasks against a real influxd: ``batch|query()`` schedules, the query kapa-core
builds (time range, GROUP BY, fill, WHERE), the batches it makes of the answer, and
failures that are counted while the schedule goes on.

The data is written once, at known timestamps around the time the module's influxd
starts (from 30 s before to 10 minutes after, however slowly the tests run): for
every second ``s`` host ``a`` has ``v = s % 7`` at s+0.25 and ``s % 7 + 1`` at s+0.75,
and host ``b`` has ``v = 10 + s % 5`` at s+0.5 except on seconds divisible by 3. A run's
expected output is computed from that model and the run's time window, which the tests
read back from the output (the first bucket's time) and check against the wall clock.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from kapa_core.testing import DaemonProcess, wait_until
from tests.integration.influxd import InfluxD

pytestmark = pytest.mark.integration
S = 1_000_000_000
_ids = itertools.count()


def model(start: int) -> dict[str, list[tuple[int, float]]]:
    seconds = range(start - 30, start + 600)
    a = [p for s in seconds for p in ((s * S + S // 4, float(s % 7)),
                                       (s * S + 3 * S // 4, float(s % 7 + 1)))]
    b = [(s * S + S // 2, float(10 + s % 5)) for s in seconds if s % 3]
    return {"a": a, "b": b}


#: The points written, by host: set by the ``influx`` fixture (not at import: collecting
#: the whole suite and the modules before this one may take minutes on a loaded machine).
DATA: dict[str, list[tuple[int, float]]] = {}


def in_window(host: str, start: int, stop: int) -> list[tuple[int, float]]:
    return [(t, v) for t, v in DATA[host] if start <= t < stop]


def rfc3339(ns: int) -> str:
    seconds, frac = divmod(ns, S)
    text = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{frac:09d}".rstrip("0") if frac else "") + "Z"


def parse_rfc3339(text: str) -> int:
    match = re.fullmatch(r"(.{19})(?:\.(\d+))?Z", text)
    assert match, text
    seconds = dt.datetime.strptime(match[1], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    return int(seconds.timestamp()) * S + int((match[2] or "0").ljust(9, "0"))


@pytest.fixture(scope="module")
def influx():
    with InfluxD() as server:
        server.query('CREATE DATABASE "db"')
        DATA.update(model(int(time.time())))
        lines = [f"cpu,host={host} v={v} {t}" for host, points in DATA.items()
                 for t, v in points]
        response = httpx.post(server.url + "/write", params={"db": "db", "precision": "ns"},
                              content="\n".join(lines).encode(), timeout=60)
        assert response.status_code == 204, response.text
        yield server


@pytest.fixture(scope="module")
def daemon(influx):
    config = {"influxdb": [{"enabled": True, "urls": [influx.url],
                            "disable-subscriptions": True}],
              "http": {"log-enabled": False}}
    with DaemonProcess(config) as d:
        yield d


def define(daemon: DaemonProcess, script: str) -> str:
    task_id = f"batch{next(_ids)}"
    body = {"id": task_id, "type": "batch", "dbrps": [{"db": "db", "rp": "autogen"}],
            "script": script, "status": "enabled"}
    response = httpx.post(daemon.url + "/kapacitor/v1/tasks", json=body)
    assert response.status_code == 200, response.text
    return task_id


def delete(daemon: DaemonProcess, task_id: str) -> None:
    httpx.delete(f"{daemon.url}/kapacitor/v1/tasks/{task_id}")


@pytest.fixture
def batch_task(daemon: DaemonProcess) -> Iterator[Callable[[str], str]]:
    """Defines an enabled batch task on db.autogen from a script and returns its id; the
    tasks a test defined are deleted when it ends, failed or not."""
    defined: list[str] = []

    def define_task(script: str) -> str:
        defined.append(define(daemon, script))
        return defined[-1]

    yield define_task
    for task_id in defined:
        delete(daemon, task_id)


def http_out(daemon: DaemonProcess, task_id: str, endpoint: str = "out") -> Any:
    response = httpx.get(f"{daemon.url}/kapacitor/v1/tasks/{task_id}/{endpoint}")
    assert response.status_code == 200, response.text
    return response.json()


def task(daemon: DaemonProcess, task_id: str) -> dict[str, Any]:
    return httpx.get(f"{daemon.url}/kapacitor/v1/tasks/{task_id}").json()


def query_stats(daemon: DaemonProcess, task_id: str) -> dict[str, Any]:
    return task(daemon, task_id)["stats"]["node-stats"]["query1"]


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}; last: {last!r}")


def wait_for_stats(daemon: DaemonProcess, task_id: str,
                   ready: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    """The query node's statistics once ``ready`` accepts them; fails with the last ones."""
    return wait_until(lambda: query_stats(daemon, task_id), 20, what, until=ready)


def windows(daemon: DaemonProcess, task_id: str, count: int, endpoint: str = "out",
            timeout: float = 20.0) -> list[Any]:
    """The first ``count`` different outputs of the endpoint."""
    seen: list[Any] = []

    def more() -> bool:
        body = http_out(daemon, task_id, endpoint)
        if body.get("series") and (not seen or body != seen[-1]):
            seen.append(body)
        return len(seen) >= count

    wait_for(more, timeout, f"{count} outputs of {endpoint}")
    return seen


def first_time(body: dict[str, Any]) -> int:
    return parse_rfc3339(body["series"][0]["values"][0][0])


def test_group_by_time_and_host_with_fill_gives_exact_buckets(daemon, batch_task) -> None:
    task_id = batch_task("""
batch
  |query('SELECT mean("v") FROM "db"."autogen"."cpu"')
    .period(2s)
    .every(1s)
    .align()
    .groupBy(time(1s), 'host')
    .fill(0)
  |httpOut('out')
""")
    info = task(daemon, task_id)
    assert info["type"] == "batch"
    assert info["dbrps"] == [{"db": "db", "rp": "autogen"}]
    outputs = windows(daemon, task_id, 2)
    for body in outputs:
        start = first_time(body)
        assert start % S == 0, "aligned windows start on whole seconds"
        # A recent window (how recent depends on how busy the machine is).
        assert time.time_ns() - 15 * S < start + 2 * S <= time.time_ns()
        expected = []
        for host in ("a", "b"):
            if not in_window(host, start, start + 2 * S):
                continue
            values = []
            for bucket in (start, start + S):
                points = [v for _, v in in_window(host, bucket, bucket + S)]
                values.append([rfc3339(bucket),
                               sum(points) / len(points) if points else 0.0])
            expected.append({"name": "cpu", "tags": {"host": host},
                             "columns": ["time", "mean"], "values": values})
        assert body == {"series": expected}
    assert first_time(outputs[1]) > first_time(outputs[0])
    stats = wait_for_stats(daemon, task_id, lambda stats: stats["batches_queried"] >= 4
                           and stats["points_queried"] >= 8, "4 batches and 8 points queried")
    assert stats["query_errors"] == 0 and stats["connect_errors"] == 0
    # Writes to the task's database do not reach a batch task.
    response = httpx.post(daemon.url + "/write?db=db&rp=autogen",
                          content=b"cpu,host=a v=99")
    assert response.status_code == 204
    time.sleep(0.2)
    assert task(daemon, task_id)["stats"]["task-stats"]["throughput"] == 0


def test_cron_schedule_runs_on_whole_seconds(daemon, batch_task) -> None:
    task_id = batch_task("""
batch
  |query('SELECT count("v"), max("v") FROM "db"."autogen"."cpu" WHERE "host" = \\'a\\'')
    .period(1s)
    .cron('* * * * * * *')
  |httpOut('out')
""")
    for body in windows(daemon, task_id, 2):
        start = first_time(body)
        assert start % S == 0
        assert start + S <= time.time_ns() < start + 16 * S
        # With an aggregate next to it, a selector's time is the window's start.
        values = [v for _, v in in_window("a", start, start + S)]
        assert body == {"series": [{"name": "cpu", "columns": ["time", "count", "max"],
                                    "values": [[rfc3339(start), float(len(values)),
                                                max(values)]]}]}


def test_unaligned_every_and_aligned_offset_windows(daemon, batch_task) -> None:
    unaligned = batch_task("""
batch
  |query('SELECT count("v") FROM "db"."autogen"."cpu"')
    .period(1s)
    .every(1s)
    .groupBy('host')
  |httpOut('out')
""")
    shifted = batch_task("""
batch
  |query('SELECT count("v") FROM "db"."autogen"."cpu"')
    .period(1s)
    .every(1s)
    .align()
    .offset(10s)
    .groupBy('host')
  |httpOut('out')
""")
    for task_id, aligned, back in ((unaligned, False, 0), (shifted, True, 10 * S)):
        body = windows(daemon, task_id, 1)[0]
        start = first_time(body)
        assert (start % S == 0) is aligned
        now = time.time_ns()
        assert now - back - 16 * S < start <= now - back - S
        expected = []
        for host in ("a", "b"):
            count = len(in_window(host, start, start + S))
            if count:
                expected.append({"name": "cpu", "tags": {"host": host},
                                 "columns": ["time", "count"],
                                 "values": [[rfc3339(start), float(count)]]})
        assert body == {"series": expected}


def test_where_clause_is_kept_and_anded_with_the_time_range(daemon, batch_task) -> None:
    task_id = batch_task("""
batch
  |query('SELECT count("v") FROM "db"."autogen"."cpu" WHERE "host" = \\'b\\' OR "host" = \\'z\\'')
    .period(3s)
    .every(1s)
    .align()
  |httpOut('out')
""")
    body = windows(daemon, task_id, 1)[0]
    start = first_time(body)
    # b has exactly two points in any three seconds (a has six: a dropped condition
    # would count eight, a dropped time range all of b's points).
    assert len(in_window("b", start, start + 3 * S)) == 2
    assert body == {"series": [{"name": "cpu", "columns": ["time", "count"],
                                "values": [[rfc3339(start), 2.0]]}]}


def test_unqualified_measurement_uses_the_task_dbrp(daemon, batch_task) -> None:
    task_id = batch_task("""
batch
  |query('SELECT count("v") AS n FROM cpu WHERE "host" = \\'b\\'')
    .period(3s)
    .every(1s)
    .align()
  |httpOut('out')
""")
    body = windows(daemon, task_id, 1)[0]
    start = first_time(body)
    expected = float(len(in_window("b", start, start + 3 * S)))
    assert body == {"series": [{"name": "cpu", "columns": ["time", "n"],
                                "values": [[rfc3339(start), expected]]}]}
    assert query_stats(daemon, task_id)["query_errors"] == 0


def test_stream_nodes_work_on_query_batches(daemon, batch_task) -> None:
    task_id = batch_task("""
var data = batch
  |query('SELECT "v" FROM "db"."autogen"."cpu" WHERE "host" = \\'a\\'')
    .period(2s)
    .every(1s)
    .align()
data
  |where(lambda: "v" > 2.0)
  |eval(lambda: "v" * 2.0).as('double')
  |max('double')
  |httpOut('max')
data
  |mean('v')
  |httpOut('mean')
data
  |alert()
    .crit(lambda: "v" >= 0.0)
    .all()
  |httpOut('alert')
""")
    # Each query returns host a's four raw points of [w, w + 2s), w a whole second; the
    # batch time (tmax) of a query not grouped by time is the end of its window, w + 2s
    # (as in Kapacitor, whose batch time is the query's stop time then).
    def window_from_stop(stop: int) -> list[tuple[int, float]]:
        raw = in_window("a", stop - 2 * S, stop)
        assert stop % S == 0 and len(raw) == 4
        return raw

    body = windows(daemon, task_id, 1, "alert")[0]
    raw = window_from_stop(first_time(body) + 7 * S // 4)
    assert body == {"series": [{"name": "cpu", "columns": ["time", "v"],
                                "values": [[rfc3339(t), v] for t, v in raw]}]}

    body = windows(daemon, task_id, 1, "mean")[0]
    raw = window_from_stop(first_time(body))
    mean = sum(v for _, v in raw) / 4
    assert body == {"series": [{"name": "cpu", "columns": ["time", "mean"],
                                "values": [[rfc3339(first_time(body)), mean]]}]}

    body = windows(daemon, task_id, 1, "max")[0]
    raw = window_from_stop(first_time(body))
    doubled = [v * 2 for _, v in raw if v > 2.0]
    assert doubled, "max emits nothing for a batch the where node emptied"
    assert body == {"series": [{"name": "cpu", "columns": ["time", "max"],
                                "values": [[rfc3339(first_time(body)), max(doubled)]]}]}


def test_failing_query_is_counted_and_logged_and_the_task_keeps_running(
        daemon, batch_task) -> None:
    task_id = batch_task("""
batch
  |query('SELECT mean("v") FROM "db"."autogen".cpu-bad')
    .period(1s)
    .every(1s)
    .align()
  |httpOut('out')
""")
    stats = wait_for_stats(daemon, task_id, lambda stats: stats["query_errors"] >= 2,
                           "two failed runs")
    assert stats["connect_errors"] == 0 and stats["batches_queried"] == 0
    line = daemon.wait_for_log(rf"error executing batch query.*task={task_id}")
    assert "cpu-bad" in line and "time >= " in line and "error parsing query" in line
    info = task(daemon, task_id)
    assert info["executing"] is True and info["error"] == ""


def test_influxdb_outage_is_counted_then_results_resume(
        daemon, batch_task, influx: InfluxD) -> None:
    task_id = batch_task("""
batch
  |query('SELECT count("v") FROM "db"."autogen"."cpu"')
    .period(1s)
    .every(1s)
    .align()
    .groupBy('host')
  |httpOut('out')
""")
    windows(daemon, task_id, 1)
    influx.stop()
    try:
        wait_for_stats(daemon, task_id, lambda stats: stats["connect_errors"] >= 2,
                       "connection errors while influxd is down")
        daemon.wait_for_log(rf"error executing batch query.*task={task_id}.*cannot "
                            "connect")
        assert task(daemon, task_id)["executing"] is True
        stopped_at = time.time_ns()
    finally:
        influx.start()
    down = query_stats(daemon, task_id)
    assert down["query_errors"] >= down["connect_errors"] >= 2

    def resumed() -> bool:
        body = http_out(daemon, task_id)
        return bool(body.get("series")) and first_time(body) > stopped_at

    wait_for(resumed, 20, "results after influxd restarted")
    wait_for_stats(daemon, task_id,
                   lambda stats: stats["batches_queried"] > down["batches_queried"],
                   f"more than {down['batches_queried']} batches queried")
    daemon.wait_for_log(rf"batch query succeeds again.*task={task_id}")

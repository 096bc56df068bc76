"""The [stats] service and /debug/vars through the real daemon.

Tasks on ``_kapacitor.autogen`` read the statistics the daemon writes into the stream
every ``stats-interval`` (1 s here), and the numbers are checked against what the tests
wrote, against the task API and against ``/kapacitor/v1/debug/vars``.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from kapa_core.models.duration import format_go
from kapa_core.testing import DaemonProcess, run_cli, to_toml, wait_until

pytestmark = pytest.mark.integration

API = "/kapacitor/v1"
STATS_DBRP = [{"db": "_kapacitor", "rp": "autogen"}]
GO_DURATION = re.compile(r"^(0s|\d+(\.\d+)?(ns|µs|ms|s))$")


@pytest.fixture(scope="module")
def daemon():
    with DaemonProcess({"stats": {"stats-interval": "1s"},
                        "http": {"log-enabled": False}}) as d:
        yield d


def define(daemon: DaemonProcess, task_id: str, script: str,
           dbrps: list[dict[str, str]] = STATS_DBRP) -> None:
    response = httpx.post(f"{daemon.url}{API}/tasks", json={
        "id": task_id, "type": "stream", "dbrps": dbrps, "script": script,
        "status": "enabled"})
    assert response.status_code == 200, response.text


def stats_task(daemon: DaemonProcess, task_id: str, measurement: str, where: str,
               group_by: str) -> None:
    define(daemon, task_id, f"""
stream
  |from()
    .database('_kapacitor')
    .retentionPolicy('autogen')
    .measurement('{measurement}')
    .where(lambda: {where})
    .groupBy({group_by})
  |httpOut('out')
""")


def write(daemon: DaemonProcess, db: str, lines: str) -> None:
    response = httpx.post(f"{daemon.url}/write?db={db}&rp=autogen&precision=s",
                          content=lines.strip().encode())
    assert response.status_code == 204, response.text


def series(daemon: DaemonProcess, task_id: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{daemon.url}{API}/tasks/{task_id}/out")
    assert response.status_code == 200, response.text
    return response.json()["series"] or []


def wait_for(probe: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll ``probe`` until it returns something truthy; the last value otherwise."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not value and time.monotonic() < deadline:
        time.sleep(0.1)
        value = probe()
    return value


def debug_vars(daemon: DaemonProcess) -> dict[str, Any]:
    response = httpx.get(f"{daemon.url}{API}/debug/vars")
    assert response.status_code == 200
    return response.json()


def identity(daemon: DaemonProcess) -> dict[str, str]:
    body = debug_vars(daemon)
    return {"host": "localhost", "cluster_id": body["cluster_id"],
            "server_id": body["server_id"]}


def task_stats(daemon: DaemonProcess, task_id: str) -> dict[str, dict[str, Any]]:
    return httpx.get(f"{daemon.url}{API}/tasks/{task_id}").json()["stats"]["node-stats"]


def parse_time(text: str) -> dt.datetime:
    whole = text.rstrip("Z").partition(".")[0]
    return dt.datetime.fromisoformat(whole).replace(tzinfo=dt.UTC)


def test_ingress_statistics_reach_a_task_on_kapacitor_autogen(daemon) -> None:
    stats_task(daemon, "ingress_watch", "ingress", "\"database\" == 'ingressdb'",
               "'measurement'")
    write(daemon, "ingressdb", "cpu v=1 1\ncpu v=2 2\ncpu v=3 3\nmem v=1 1")
    write(daemon, "ingressdb", "mem v=2 2")

    def counts() -> dict[str, int] | None:
        found = {s["tags"]["measurement"]: s["values"][0][1]
                 for s in series(daemon, "ingress_watch")}
        return found if found == {"cpu": 3, "mem": 2} else None

    assert wait_for(counts) == {"cpu": 3, "mem": 2}
    ids = identity(daemon)
    for s in series(daemon, "ingress_watch"):
        measurement = s["tags"]["measurement"]
        assert s["name"] == "ingress"
        assert s["tags"] == {"task_master": "main", "database": "ingressdb",
                             "retention_policy": "autogen", "measurement": measurement,
                             **ids}
        assert s["columns"] == ["time", "points_received"]
        stamped = parse_time(s["values"][0][0])  # wall-clock time, not data time
        assert abs((dt.datetime.now(dt.UTC) - stamped).total_seconds()) < 30
    # Later reports carry the new totals.
    write(daemon, "ingressdb", "cpu v=4 4\ncpu v=5 5")

    def updated() -> bool:
        return {s["tags"]["measurement"]: s["values"][0][1]
                for s in series(daemon, "ingress_watch")} == {"cpu": 5, "mem": 2}

    assert wait_for(updated)


WATCHED = "stream|from().measurement('cpu')|where(lambda: \"v\" > 1)|httpOut('w')"
ALERTING = "stream|from().measurement('cpu')|alert().crit(lambda: \"v\" > 3).topic('hot')"
WATCH_DB = [{"db": "watchdb", "rp": "autogen"}]
WATCH_POINTS = "cpu v=0 1\ncpu v=1 2\ncpu v=2 3\ncpu v=3 4\ncpu v=4 5\nmem v=9 6"
#: (parent, child) -> points on that edge of task "watched" after WATCH_POINTS. As in
#: Kapacitor, the task is only handed the measurement its from() names (not mem).
WATCHED_EDGES = {("stream", "stream0"): 5, ("stream0", "from1"): 5, ("from1", "where2"): 5,
                 ("where2", "http_out3"): 3}


@pytest.fixture(scope="module")
def watched(daemon):
    """Task ``watched`` (and ``alerting``) fed with WATCH_POINTS, plus stats tasks on
    its nodes and edges."""
    define(daemon, "watched", WATCHED, WATCH_DB)
    define(daemon, "alerting", ALERTING, WATCH_DB)
    stats_task(daemon, "nodes_watch", "nodes",
               "\"task\" == 'watched' OR \"task\" == 'alerting'", "'task', 'node'")
    stats_task(daemon, "edges_watch", "edges", "\"task\" == 'watched'", "'parent', 'child'")
    stats_task(daemon, "topics_watch", "topics", "\"id\" == 'hot'", "'id'")
    write(daemon, "watchdb", WATCH_POINTS)
    return daemon


def test_edge_statistics_count_what_each_edge_carried(watched) -> None:
    daemon = watched

    def edges() -> dict[tuple[str, str], tuple[int, int]] | None:
        found = {(s["tags"]["parent"], s["tags"]["child"]): tuple(s["values"][0][1:])
                 for s in series(daemon, "edges_watch")}
        expected = {k: (v, v) for k, v in WATCHED_EDGES.items()}
        return found if found == expected else None

    assert wait_for(edges), series(daemon, "edges_watch")
    ids = identity(daemon)
    for s in series(daemon, "edges_watch"):
        assert s["name"] == "edges"
        assert s["tags"] == {"task": "watched", "parent": s["tags"]["parent"],
                             "child": s["tags"]["child"], "type": "stream", **ids}
        assert s["columns"] == ["time", "collected", "emitted"]
    # The same numbers as the task API's node statistics: a node emits what its outgoing
    # edge carries.
    api = task_stats(daemon, "watched")
    for (parent, _child), count in WATCHED_EDGES.items():
        if parent != "stream":
            assert api[parent]["emitted"] == count


def test_node_statistics_with_node_specific_fields(watched) -> None:
    daemon = watched

    def nodes() -> dict[tuple[str, str], dict[str, Any]] | None:
        found = {(s["tags"]["task"], s["tags"]["node"]): s for s in series(daemon,
                                                                           "nodes_watch")}
        alert = found.get(("alerting", "alert2"))
        if len(found) != 7 or alert is None:
            return None
        values = dict(zip(alert["columns"], alert["values"][0], strict=True))
        return found if values["crits_triggered"] == 1 else None

    found = wait_for(nodes)
    assert found, series(daemon, "nodes_watch")
    assert set(found) == {("watched", "stream0"), ("watched", "from1"), ("watched", "where2"),
                          ("watched", "http_out3"), ("alerting", "stream0"),
                          ("alerting", "from1"), ("alerting", "alert2")}
    ids = identity(daemon)
    kinds = {"stream0": "stream", "from1": "from", "where2": "where",
             "http_out3": "http_out", "alert2": "alert"}
    for (task, node), s in found.items():
        assert s["name"] == "nodes"
        assert s["tags"] == {"task": task, "node": node, "type": "stream",
                             "kind": kinds[node], **ids}
        values = dict(zip(s["columns"], s["values"][0], strict=True))
        assert values["errors"] == 0
        assert "collected" not in values and "emitted" not in values
        if node != "alert2":
            assert s["columns"] == ["time", "avg_exec_time_ns", "errors",
                                    "working_cardinality"]
    watched_http = dict(zip(found[("watched", "http_out3")]["columns"],
                            found[("watched", "http_out3")]["values"][0], strict=True))
    assert watched_http["working_cardinality"] == 1  # one group kept by httpOut
    alert = dict(zip(found[("alerting", "alert2")]["columns"],
                     found[("alerting", "alert2")]["values"][0], strict=True))
    assert alert["alerts_triggered"] == 1 and alert["crits_triggered"] == 1
    assert alert["oks_triggered"] == alert["warns_triggered"] == 0
    api = task_stats(daemon, "alerting")["alert2"]
    assert api["alerts_triggered"] == alert["alerts_triggered"]
    assert api["working_cardinality"] == alert["working_cardinality"] == 1


def test_topic_statistics(watched) -> None:
    daemon = watched

    def topic() -> list[dict[str, Any]]:
        found = series(daemon, "topics_watch")
        return found if found and found[0]["values"][0][1] == 1 else []

    found = wait_for(topic)
    assert found, series(daemon, "topics_watch")
    assert found[0]["tags"] == {"id": "hot", **identity(daemon)}
    assert found[0]["columns"] == ["time", "collected"]


def test_debug_vars_shape_and_numbers_match_the_task_api(watched) -> None:
    daemon = watched

    def watched_edges(body: dict[str, Any]) -> dict[tuple[str, str], dict[str, int]]:
        return {(e["tags"]["parent"], e["tags"]["child"]): e["values"]
                for e in body["kapacitor"].values()
                if e["name"] == "edges" and e["tags"]["task"] == "watched"}

    def stats_points(body: dict[str, Any]) -> int:
        return sum(e["values"]["points_received"] for e in body["kapacitor"].values()
                   if e["name"] == "ingress" and e["tags"]["database"] == "_kapacitor")

    expected_edges = {k: {"collected": v, "emitted": v} for k, v in WATCHED_EDGES.items()}
    # Every point of WATCH_POINTS through the task (the last one, mem, after the others),
    # and a first statistics report written.
    body = wait_until(lambda: debug_vars(daemon), what="the edges of task watched",
                      until=lambda body: watched_edges(body) == expected_edges
                      and stats_points(body) > 0)
    assert {"cluster_id", "server_id", "host", "product", "version", "platform", "cmdline",
            "num_tasks", "num_enabled_tasks", "num_subscriptions", "memstats",
            "kapacitor"} <= set(body)
    assert body["product"] == "kapacitor" and body["host"] == "localhost"
    tasks = httpx.get(f"{daemon.url}{API}/tasks").json()["tasks"]
    assert body["num_tasks"] == len(tasks)
    assert body["num_enabled_tasks"] == sum(t["status"] == "enabled" for t in tasks)
    assert body["num_subscriptions"] == 0  # no InfluxDB configured
    assert set(body["memstats"]) == {"HeapObjects", "NumGC", "PauseTotalNs", "Sys"}
    entries = list(body["kapacitor"].values())
    assert all(set(e) == {"name", "tags", "values"} for e in entries)
    api = task_stats(daemon, "watched")
    nodes = {e["tags"]["node"]: e for e in entries
             if e["name"] == "nodes" and e["tags"]["task"] == "watched"}
    assert set(nodes) == set(api)
    for name, entry in nodes.items():
        values = entry["values"]
        assert values["errors"] == api[name]["errors"]
        assert values["working_cardinality"] == api[name]["working_cardinality"]
        # A duration variable, printed as Go prints durations.
        assert GO_DURATION.match(values["avg_exec_time_ns"]), values
        assert values["avg_exec_time_ns"] == format_go(api[name]["avg_exec_time_ns"])
    ingress = {e["tags"]["measurement"]: e["values"]["points_received"] for e in entries
               if e["name"] == "ingress" and e["tags"]["database"] == "watchdb"}
    assert ingress == {"cpu": 5, "mem": 1}
    master = {e["tags"]["parent"]: e["values"]["emitted"] for e in entries
              if e["name"] == "edges" and e["tags"]["task"] == "task_master:main"}
    received = sum(e["values"]["points_received"] for e in entries if e["name"] == "ingress")
    assert master["stats"] == stats_points(body) > 0
    assert master["write_points"] == received - stats_points(body)


def test_kapacitor_and_runtime_measurements(daemon) -> None:
    define(daemon, "global_watch",
           "stream|from().database('_kapacitor').measurement('kapacitor')|httpOut('out')")
    define(daemon, "runtime_watch",
           "stream|from().database('_kapacitor').measurement('runtime')|httpOut('out')")
    tasks = httpx.get(f"{daemon.url}{API}/tasks").json()["tasks"]

    def current() -> dict[str, Any] | None:
        found = series(daemon, "global_watch")
        if not found:
            return None
        values = dict(zip(found[0]["columns"], found[0]["values"][0], strict=True))
        return found[0] if values["num_tasks"] == len(tasks) else None

    found = wait_for(current)
    assert found, series(daemon, "global_watch")
    assert "tags" not in found  # Kapacitor's global statistic has no tags
    assert found["columns"] == ["time", "num_enabled_tasks", "num_subscriptions",
                                "num_tasks", "uptime"]
    values = dict(zip(found["columns"], found["values"][0], strict=True))
    assert values["num_enabled_tasks"] == sum(t["status"] == "enabled" for t in tasks)
    assert values["num_subscriptions"] == 0
    assert isinstance(values["uptime"], float) and values["uptime"] > 0
    runtime = wait_for(lambda: series(daemon, "runtime_watch"))
    assert runtime and "tags" not in runtime[0]
    assert runtime[0]["columns"] == ["time", "HeapObjects", "NumGC", "NumGoroutine",
                                     "PauseTotalNs", "Sys"]
    values = dict(zip(runtime[0]["columns"], runtime[0]["values"][0], strict=True))
    assert values["NumGoroutine"] >= len(tasks)  # at least one trio task per running task
    assert values["Sys"] > 1_000_000 and values["HeapObjects"] > 1000
    assert values["NumGC"] >= 0 and values["PauseTotalNs"] >= 0


def test_statistics_are_written_once_per_interval(daemon) -> None:
    def reports() -> int:
        entries = debug_vars(daemon)["kapacitor"].values()
        return next((e["values"]["points_received"] for e in entries
                     if e["name"] == "ingress" and e["tags"]["database"] == "_kapacitor"
                     and e["tags"]["measurement"] == "kapacitor"), 0)

    before = reports()
    wait_until(reports, 20, "a report", until=lambda count: count > before)
    first = reports()
    started = time.monotonic()
    # Reports keep coming ...
    wait_until(reports, 20, "three more reports", until=lambda count: count >= first + 3)
    # ... but no more often than once per interval (1 s): three more take three intervals,
    # minus how late the first was (a loaded machine delays some ticks, never all).
    assert time.monotonic() - started > 2


def test_disabled_stats_write_nothing() -> None:
    with DaemonProcess({"stats": {"enabled": False, "stats-interval": "1s"},
                        "http": {"log-enabled": False}}) as daemon:
        define(daemon, "everything", "stream|from()|httpOut('out')")
        write(daemon, "otherdb", "cpu v=1 1\ncpu v=2 2")
        time.sleep(2.5)
        assert series(daemon, "everything") == []
        entries = list(debug_vars(daemon)["kapacitor"].values())
        assert not [e for e in entries if e["name"] == "ingress"
                    and e["tags"]["database"] == "_kapacitor"]
        master = {e["tags"]["parent"]: e["values"] for e in entries
                  if e["name"] == "edges" and e["tags"]["task"] == "task_master:main"}
        assert master == {"write_points": {"collected": 2, "emitted": 2}}


def test_non_positive_interval_is_refused(tmp_path: Path) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text(to_toml({"data_dir": str(tmp_path / "data"),
                             "stats": {"stats-interval": "0s"}}))
    result = run_cli("run", "-config", str(conf), timeout=30)
    assert result.returncode == 1
    assert "stats-interval" in result.stderr and "greater than 0s" in result.stderr
    assert not (tmp_path / "data" / "kapacitor.db").exists()


def test_timing_sample_rate(tmp_path: Path) -> None:
    """Rate 1 times every execution, 0 none; a rate outside 0..1 is refused."""
    script = "stream|from().measurement('t')|eval(lambda: \"v\" * 2).as('d')|httpOut('o')"
    for rate in (1.0, 0.0):
        with DaemonProcess({"stats": {"timing-sample-rate": rate, "timing-movavg-size": 5},
                            "http": {"log-enabled": False}}) as daemon:
            define(daemon, "timed", script, dbrps=[{"db": "tdb", "rp": "autogen"}])
            write(daemon, "tdb", "\n".join(f"t v={i} {i}" for i in range(1, 40)))
            stats = wait_for(lambda d=daemon: (s := task_stats(d, "timed"))["eval2"][
                "collected"] == 39 and s)
            timed = [stats[n]["avg_exec_time_ns"] > 0 for n in ("from1", "eval2")]
            assert timed == [rate > 0] * 2, stats
    conf = tmp_path / "bad.conf"
    conf.write_text(to_toml({"data_dir": str(tmp_path / "data"),
                             "stats": {"timing-sample-rate": 1.5}}))
    result = run_cli("run", "-config", str(conf), timeout=30)
    assert result.returncode == 1
    assert "timing-sample-rate" in result.stderr and "between 0 and 1" in result.stderr

"""Node statistics through the task API with ``[stats]`` disabled, a setting a compat
case cannot express: Kapacitor times nodes only through its stats service, so every
``avg_exec_time_ns`` stays 0 and the whole ``node-stats`` block can be compared.

The expected block is what Kapacitor 1.5.7 answered for the same task and points
(taken from kapacitord with ``[stats] enabled = false``).
"""

from __future__ import annotations

import time

import httpx

from kapa_core.testing import DaemonProcess

API = "/kapacitor/v1"

SCRIPT = """stream
    |from()
        .measurement('cpu')
        .groupBy('host')
    |where(lambda: "value" > 1.0)
    |derivative('value')
    |alert()
        .crit(lambda: "derivative" > 0.5)
"""

POINTS = "\n".join(f"cpu,host={h} value={v} {31536000 + t}" for t in range(5)
                   for h, v in (("a", t * 1.0), ("b", 10.0 - t), ("c", t * t * 1.0)))

# From kapacitord 1.5.7: a leaf emits 0, the alert counts an error for each point whose
# lambda meets no "derivative" field (derivative() writes its result as "value").
EXPECTED = {
    "alert4": {"alerts_inhibited": 0, "alerts_triggered": 0, "avg_exec_time_ns": 0,
               "collected": 8, "crits_triggered": 0, "emitted": 0, "errors": 8,
               "infos_triggered": 0, "oks_triggered": 0, "warns_triggered": 0,
               "working_cardinality": 3},
    "derivative3": {"avg_exec_time_ns": 0, "collected": 11, "emitted": 8, "errors": 0,
                    "working_cardinality": 3},
    "from1": {"avg_exec_time_ns": 0, "collected": 15, "emitted": 15, "errors": 0,
              "working_cardinality": 0},
    "stream0": {"avg_exec_time_ns": 0, "collected": 15, "emitted": 15, "errors": 0,
                "working_cardinality": 0},
    "where2": {"avg_exec_time_ns": 0, "collected": 15, "emitted": 11, "errors": 0,
               "working_cardinality": 3},
}


def test_node_stats_without_the_stats_service() -> None:
    with DaemonProcess({"stats": {"enabled": False}, "http": {"log-enabled": False},
                        "logging": {"level": "ERROR"}}) as daemon:
        response = httpx.post(f"{daemon.url}{API}/tasks", json={
            "id": "t", "type": "stream", "status": "enabled", "script": SCRIPT,
            "dbrps": [{"db": "db", "rp": "autogen"}]})
        assert response.status_code == 200, response.text
        response = httpx.post(f"{daemon.url}/write?db=db&rp=autogen&precision=s",
                              content=POINTS.encode())
        assert response.status_code == 204, response.text
        deadline = time.monotonic() + 20
        while True:
            stats = httpx.get(f"{daemon.url}{API}/tasks/t").json()["stats"]["node-stats"]
            if stats == EXPECTED or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert stats == EXPECTED


def test_debug_vars_kind_is_the_node_description() -> None:
    """The ``kind`` tag of a node's statistics is its name without the ID: ``max`` for
    an InfluxQL node, ``http_out`` for httpOut (as kapacitord's /debug/vars shows)."""
    script = ("stream|from().measurement('cpu').groupBy('host')"
              "|window().period(1s).every(1s)|max('value')|httpOut('x')")
    with DaemonProcess({"stats": {"enabled": False}, "http": {"log-enabled": False},
                        "logging": {"level": "ERROR"}}) as daemon:
        response = httpx.post(f"{daemon.url}{API}/tasks", json={
            "id": "k", "type": "stream", "status": "enabled", "script": script,
            "dbrps": [{"db": "db", "rp": "autogen"}]})
        assert response.status_code == 200, response.text
        stats = httpx.get(f"{daemon.url}{API}/debug/vars").json()["kapacitor"].values()
        kinds = {s["tags"]["node"]: s["tags"]["kind"] for s in stats
                 if s["name"] == "nodes" and s["tags"].get("task") == "k"}
        assert kinds == {"stream0": "stream", "from1": "from", "window2": "window",
                         "max3": "max", "http_out4": "http_out"}


STATS_SCRIPTS = {
    "grouped": "stream|from().measurement('cpu').groupBy('host')|stats(200ms)|httpOut('s')",
    "window": "stream|from().measurement('cpu').groupBy('host')"
              "|window().period(2s).every(2s)|stats(200ms)|httpOut('s')",
    "nodata": "stream|from().measurement('none').groupBy('host')|stats(200ms)|httpOut('s')",
    "deadman": "stream|from().measurement('cpu').groupBy('host')|deadman(2.0, 200ms)"
               "|httpOut('s')",
}

# From kapacitord 1.5.7 (times left out: they are the wall clock's): one stats point per
# group the watched node sent to its first child, counting the points inside batches;
# one point with emitted 0 and no tags before any; deadman alerts per group.
STATS_EXPECTED = {
    "grouped": [({"host": "h0"}, [4]), ({"host": "h1"}, [3]), ({"host": "h2"}, [3])],
    "window": [({"host": "h0"}, [3]), ({"host": "h1"}, [2]), ({"host": "h2"}, [2])],
    "nodata": [(None, [0])],
    "deadman": [({"host": "h0"}, [0]), ({"host": "h1"}, [0]), ({"host": "h2"}, [0])],
}


def test_stats_node_counts_per_group() -> None:
    points = "\n".join(f"cpu,host=h{i % 3},dc=x value={i} {31536000 + i}" for i in range(10))
    with DaemonProcess({"stats": {"enabled": False}, "http": {"log-enabled": False},
                        "logging": {"level": "ERROR"}}) as daemon:
        for task_id, script in STATS_SCRIPTS.items():
            response = httpx.post(f"{daemon.url}{API}/tasks", json={
                "id": task_id, "type": "stream", "status": "enabled", "script": script,
                "dbrps": [{"db": "db", "rp": "autogen"}]})
            assert response.status_code == 200, response.text
        response = httpx.post(f"{daemon.url}/write?db=db&rp=autogen&precision=s",
                              content=points.encode())
        assert response.status_code == 204, response.text
        for task_id, expected in STATS_EXPECTED.items():
            deadline = time.monotonic() + 20
            while True:
                body = httpx.get(f"{daemon.url}{API}/tasks/{task_id}/s").json()
                got = sorted(((s.get("tags"), [v[1:] for v in s["values"]][-1])
                              for s in body.get("series") or []), key=repr)
                if expected[0][0] is not None:
                    # a tick before the points arrived leaves the no-group series in
                    # httpOut (Kapacitor's too): only the groups are compared
                    got = [g for g in got if g[0] is not None]
                if got == expected or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert got == expected, task_id
            stats = httpx.get(f"{daemon.url}{API}/tasks/{task_id}").json()["stats"]
            stats_node = stats["node-stats"]["stats2" if task_id != "window" else "stats3"]
            assert stats_node["collected"] == 0  # it has no parent edge


def test_failed_batch_queries_are_node_errors() -> None:
    """Each failed query run (here: a database InfluxDB does not have) is an error of the
    query node, as kapacitord counts it (4 errors after 2.2 s of runs every 500ms)."""
    import shutil

    import pytest

    if shutil.which("influxd") is None:
        pytest.skip("needs influxd")
    from tests.compat.influx import InfluxServer

    script = ("batch|query('SELECT value FROM \"nodb\".\"autogen\".\"cpu\"')"
              ".period(10s).every(300ms)|httpOut('o')")
    with InfluxServer() as influx, DaemonProcess({
            "stats": {"enabled": False}, "http": {"log-enabled": False},
            "logging": {"level": "ERROR"},
            "influxdb": [{"enabled": True, "name": "default", "default": True,
                          "urls": [influx.url], "disable-subscriptions": True}]}) as daemon:
        response = httpx.post(f"{daemon.url}{API}/tasks", json={
            "id": "b", "type": "batch", "status": "enabled", "script": script,
            "dbrps": [{"db": "nodb", "rp": "autogen"}]})
        assert response.status_code == 200, response.text
        deadline = time.monotonic() + 20
        while True:
            stats = httpx.get(f"{daemon.url}{API}/tasks/b").json()["stats"]["node-stats"]
            if stats["query1"]["errors"] >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert stats["query1"]["errors"] >= 2
        assert stats["query1"]["batches_queried"] == 0

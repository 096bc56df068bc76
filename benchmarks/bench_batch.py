"""Batch query latency: from the scheduled tick to the httpOut update, on a real influxd.

    python benchmarks/bench_batch.py [--hosts 1 100 1000] [--ticks 10] [--raw]

Starts influxd (tests/integration/influxd.py) and the daemon, writes one point per host
per second around now, and for each host count defines

    batch|query('SELECT mean("v") FROM "bench"."autogen"."cpu<hosts>"')
        .period(10s).every(1s).align().groupBy(time(1s), 'host')|httpOut('out')

(one measurement ``cpu<hosts>`` per host count; ``--raw``: ``SELECT "v" ...`` grouped
by host only, every point comes back). The tick
of a run is known from its output (the last 1s bucket ends on it; for raw queries the
window is found from the latest point). The endpoint is polled every ``POLL`` seconds;
the latency of a run is the time its output was first seen minus its tick, so it
includes InfluxDB's query time, the HTTP round trip, turning the answer into batches,
the httpOut node, and up to one poll interval plus one GET (whose cost grows with the
output: the poller competes with the query for the daemon's CPU). The last column is
the same query sent straight to influxd, for comparison.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kapa_core.influxdb.select_query import SelectQuery, TimeGroup
from kapa_core.testing import DaemonProcess
from tests.integration.influxd import InfluxD

S = 1_000_000_000
POLL = 0.002
SPAN = 240  # seconds of data written after now


def parse_time(text: str) -> int:
    import datetime as dt

    whole, _, frac = text.rstrip("Z").partition(".")
    base = dt.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    return int(base.timestamp()) * S + int(frac.ljust(9, "0") or 0)


def write_data(influx: InfluxD, hosts: int) -> None:
    """``cpu<hosts>``: ``hosts`` series with one point per second."""
    now = int(time.time())
    lines = [f"cpu{hosts},host=h{h} v={(s * 7 + h) % 100} {s * S}"
             for s in range(now - 15, now + SPAN) for h in range(hosts)]
    for i in range(0, len(lines), 50_000):
        response = httpx.post(influx.url + "/write", params={"db": "bench"},
                              content="\n".join(lines[i:i + 50_000]).encode(), timeout=60)
        response.raise_for_status()


def influx_alone(influx: InfluxD, hosts: int, raw: bool, runs: int = 5) -> float:
    """Median ms of the same query sent straight to influxd (answer read and decoded)."""
    text = f'{select_of(raw)} FROM "bench"."autogen"."cpu{hosts}"'
    dims: list[str | TimeGroup] = ["host"] if raw else [TimeGroup(S), "host"]
    took = []
    with httpx.Client(timeout=60) as client:
        for _ in range(runs):
            stop = int(time.time()) * S
            statement = SelectQuery(text, dims).render(stop - 10 * S, stop)
            started = time.perf_counter()
            response = client.post(influx.url + "/query",
                                   params={"q": statement, "db": "", "epoch": "ns"})
            response.json()
            took.append((time.perf_counter() - started) * 1e3)
    return statistics.median(took)


def select_of(raw: bool) -> str:
    return 'SELECT "v"' if raw else 'SELECT mean("v")'


def measure(daemon: DaemonProcess, hosts: int, ticks: int, raw: bool) -> list[float]:
    select = select_of(raw)
    group = "'host'" if raw else "time(1s), 'host'"
    script = (f"batch|query('{select} FROM \"bench\".\"autogen\".\"cpu{hosts}\"')"
              f".period(10s).every(1s).align().groupBy({group})|httpOut('out')")
    task_id = f"bench_{hosts}_{'raw' if raw else 'mean'}"
    body = {"id": task_id, "type": "batch", "dbrps": [{"db": "bench", "rp": "autogen"}],
            "script": script, "status": "enabled"}
    with httpx.Client(base_url=daemon.url, timeout=30) as client:
        client.delete(f"/kapacitor/v1/tasks/{task_id}")
        response = client.post("/kapacitor/v1/tasks", json=body)
        response.raise_for_status()
        latencies: list[float] = []
        last_tick = 0
        deadline = time.monotonic() + ticks * 3 + 10
        while len(latencies) < ticks + 1 and time.monotonic() < deadline:
            out = client.get(f"/kapacitor/v1/tasks/{task_id}/out").json()
            seen = time.time_ns()
            series = out.get("series")
            if series:
                latest = max(parse_time(row[0]) for s in series for row in s["values"])
                # mean: the last bucket starts 1s before the tick; raw: points sit on
                # whole seconds, the latest one 1s before the tick.
                tick = latest + S
                if tick != last_tick:
                    if last_tick:  # the first output may have been there before polling
                        latencies.append((seen - tick) / 1e6)
                    last_tick = tick
            time.sleep(POLL)
        stats = client.get(f"/kapacitor/v1/tasks/{task_id}").json()["stats"]["node-stats"]
        query = stats["query1"]
        client.delete(f"/kapacitor/v1/tasks/{task_id}")
    print(f"  {task_id}: batches_queried={query['batches_queried']} "
          f"points_queried={query['points_queried']} query_errors={query['query_errors']}",
          file=sys.stderr)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--ticks", type=int, default=10)
    parser.add_argument("--raw", action="store_true", help="query raw points instead of "
                        "mean per 1s bucket")
    args = parser.parse_args()
    with InfluxD() as influx:
        influx.query('CREATE DATABASE "bench"')
        for hosts in args.hosts:
            write_data(influx, hosts)
        config = {"influxdb": [{"enabled": True, "urls": [influx.url],
                                "disable-subscriptions": True}],
                  "http": {"log-enabled": False}, "logging": {"level": "WARN"}}
        with DaemonProcess(config) as daemon:
            print("hosts  points/run  tick->httpOut ms: median    p90     max   "
                  "influxd alone ms", flush=True)
            for hosts in args.hosts:
                latencies = measure(daemon, hosts, args.ticks, args.raw)
                if not latencies:
                    print(f"{hosts:>5}  no output", flush=True)
                    continue
                latencies.sort()
                p90 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.9))]
                alone = influx_alone(influx, hosts, args.raw)
                print(f"{hosts:>5}  {hosts * 10:>10}  {statistics.median(latencies):>23.1f}"
                      f" {p90:>7.1f} {latencies[-1]:>7.1f}   {alone:>14.1f}", flush=True)


if __name__ == "__main__":
    main()

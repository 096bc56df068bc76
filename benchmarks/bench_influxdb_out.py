"""influxDBOut throughput into a real InfluxDB 1.x.

    python benchmarks/bench_influxdb_out.py [--points 200000] [--batch 5000]
                                            [--buffer 1000] [--compression gzip none]

Starts a real influxd (tests/integration/influxd.py) and the real daemon with one
``[[influxdb]]`` cluster pointing at it, defines ``stream|from()|influxDBOut()`` writing
to database ``bench_out``, writes ``--points`` points through kapa-core's /write in
bodies of ``--batch`` points (as Telegraf sends them) and waits until the node's
``points_written`` plus ``points_dropped`` reaches the total. Prints points/s (from the
first write until the last point is in InfluxDB), write requests, drops, and the
daemon's peak RSS; then checks InfluxDB's own count.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kapa_core.testing import DaemonProcess
from tests.integration.influxd import InfluxD


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def out_stats(client: httpx.Client, task_id: str) -> dict[str, int]:
    nodes = client.get(f"/kapacitor/v1/tasks/{task_id}").json()["stats"]["node-stats"]
    return next(v for k, v in nodes.items() if k.startswith("influxdb_out"))


def run(points: int, batch: int, buffer: int, compression: str) -> None:
    with InfluxD() as influx:
        config = {"http": {"log-enabled": False, "max-body-size": 0},
                  "logging": {"level": "WARN"},
                  "influxdb": [{"enabled": True, "urls": [influx.url],
                                "disable-subscriptions": True,
                                "compression": compression}]}
        with DaemonProcess(config) as daemon, httpx.Client(base_url=daemon.url,
                                                           timeout=600) as client:
            script = (f"stream|from()|influxDBOut().database('bench_out')"
                      f".retentionPolicy('autogen').create().buffer({buffer})"
                      ".flushInterval(1s)")
            response = client.post("/kapacitor/v1/tasks", json={
                "id": "bench", "type": "stream", "status": "enabled",
                "dbrps": [{"db": "bench", "rp": "autogen"}], "script": script})
            assert response.status_code == 200, response.text
            base = 1_600_000_000
            bodies = ["\n".join(f"cpu,host=h{i % 100},region=r{i % 7} value={i},n={i}i "
                                f"{base + i}" for i in range(start, min(start + batch,
                                                                        points))).encode()
                      for start in range(0, points, batch)]
            time.sleep(0.5)  # let .create() run
            started = time.perf_counter()
            for body in bodies:
                response = client.post("/write?db=bench&rp=autogen&precision=s",
                                       content=body)
                assert response.status_code == 204, response.text
            while True:
                stats = out_stats(client, "bench")
                if stats["points_written"] + stats["points_dropped"] >= points:
                    break
                time.sleep(0.1)
            elapsed = time.perf_counter() - started
            assert daemon.proc is not None
            rss = peak_rss_mb(daemon.proc.pid)
            count = influx.query("SELECT count(value) FROM cpu", db="bench_out")
            stored = count["results"][0]["series"][0]["values"][0][1]
            print(f"influxDBOut {compression:<4} buffer {buffer:>5}: {points:,} points in "
                  f"{elapsed:6.2f} s = {points / elapsed:>10,.0f} points/s  "
                  f"dropped {stats['points_dropped']}  write errors "
                  f"{stats['write_errors']}  in InfluxDB {stored:,}  "
                  f"peak RSS {rss:5.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5000, help="points per /write body")
    parser.add_argument("--buffer", type=int, default=1000, help="influxDBOut().buffer()")
    parser.add_argument("--compression", nargs="+", choices=("gzip", "none"),
                        default=["gzip", "none"])
    args = parser.parse_args()
    for compression in args.compression:
        run(args.points, args.batch, args.buffer, compression)


if __name__ == "__main__":
    main()

"""``/write`` end-to-end rate: line protocol through the real daemon into the stream.

    python benchmarks/bench_write.py [--points 50000 200000] [--bodies 10]

Starts ``kapa-core`` as a subprocess on a free loopback port, defines a task that only
receives (``stream|from().measurement('m1')``) when the daemon has the task API, then
POSTs bodies shaped like Kapacitor's write benchmark (``m1 value=<i> <i>``, precision s)
and prints points per second: the time from the first byte sent to the last 204.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import line_body

from kapa_core.testing import DaemonProcess

TASK = "dbrp \"bench\".\"autogen\"\nstream|from().measurement('m1')\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, nargs="+", default=[50_000, 200_000],
                        help="points per body (default: 50000 200000)")
    parser.add_argument("--bodies", type=int, default=10, help="bodies per size (default 10)")
    args = parser.parse_args()
    config = {"http": {"log-enabled": False, "max-body-size": 0},
              "logging": {"level": "WARN"}}
    with DaemonProcess(config) as daemon, httpx.Client(base_url=daemon.url,
                                                       timeout=120) as client:
        task = client.post("/kapacitor/v1/tasks", json={"id": "bench", "type": "stream",
                                                         "script": TASK,
                                                         "status": "enabled"})
        receiving = "one receiving task" if task.status_code == 200 else "no task (the " \
            "task API is not available in this build)"
        print(f"kapa-core at {daemon.url}, {receiving}")
        for n in args.points:
            bodies = [line_body(n, k * n) for k in range(args.bodies)]
            rates = []
            for data in bodies:
                started = time.perf_counter()
                response = client.post("/write?db=bench&rp=autogen&precision=s", content=data)
                elapsed = time.perf_counter() - started
                assert response.status_code == 204, response.text
                rates.append(n / elapsed)
            print(f"/write, {n:>7,} points per body: median {statistics.median(rates):>10,.0f}"
                  f" points/s, best {max(rates):,.0f}")
        stats = client.get("/kapacitor/v1/debug/vars").json()["kapacitor"]
        received = sum(s["values"]["points_received"] for s in stats.values()
                       if s["name"] == "ingress")
        print(f"points received by the stream: {received:,}")


if __name__ == "__main__":
    main()

"""Engine throughput with the task shapes Kapacitor benchmarks itself with.

    python benchmarks/bench_tasks.py [--shape bare count] [--layout 10x50000 100x5000]

For each shape and layout (tasks x points) it starts the real daemon, defines the tasks,
writes the points through /write in one body per measurement (``m1 value=<i> <i>``,
precision s) and waits until every task's ``stream0`` node has collected every point (for
the alert shape: until its alert node has, with topics persisted as by default).
Prints deliveries/s (points x tasks / seconds) and the daemon's peak RSS.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (
    DAEMON_CONFIG,
    DONE_NODE,
    SHAPES,
    WRITE,
    define_tasks,
    peak_rss_mb,
    shape_bodies,
    wait_counter,
)

from kapa_core.testing import DaemonProcess


def run(shape: str, tasks: int, points: int) -> None:
    with DaemonProcess(DAEMON_CONFIG) as daemon, httpx.Client(base_url=daemon.url,
                                                              timeout=600) as client:
        ids = define_tasks(client, shape, tasks)
        bodies = shape_bodies(shape, points)
        points *= len(bodies)
        started = time.perf_counter()
        for body in bodies:
            response = client.post(WRITE, content=body)
            assert response.status_code == 204, response.text
        elapsed, stats = wait_counter(client, ids, DONE_NODE.get(shape, "stream0"),
                                      points * tasks, started, timeout=3600)
        assert elapsed is not None
        assert daemon.proc is not None
        rss = peak_rss_mb(daemon.proc.pid)
        dropped = sum(s["task-stats"]["points_dropped"] for s in stats)
        print(f"{shape:<6} {tasks:>4} tasks x {points:>7,} points: "
              f"{points * tasks / elapsed:>12,.0f} deliveries/s  {elapsed:6.2f} s  "
              f"peak RSS {rss:6.0f} MB  dropped {dropped}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", nargs="+", choices=sorted(SHAPES),
                        default=[s for s in SHAPES if s != "alert_topic"])
    parser.add_argument("--layout", nargs="+", default=["10x50000", "100x5000"],
                        help="tasks x points, e.g. 10x50000")
    args = parser.parse_args()
    for shape in args.shape:
        for layout in args.layout:
            tasks, points = (int(x) for x in layout.split("x"))
            run(shape, tasks, points)


if __name__ == "__main__":
    main()

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
from kapa_core.testing import DaemonProcess

SHAPES = {
    "bare": "stream|from().measurement('m1')",
    "count": "stream|from().measurement('m1')|window().period(100s).every(100s)"
             "|count('value')",
    "join": "var m1 = stream|from().measurement('m1')\n"
            "var m2 = stream|from().measurement('m2')\n"
            "m1|join(m2).as('m1', 'm2').tolerance(1s)"
            "|eval(lambda: \"m1.value\" * \"m2.value\").as('v')",
    "alert": "stream|from().measurement('m1')"
             "|alert().id('{{ .Name }}_{{ .TaskName }}')"
             ".info(lambda: \"value\" > 10).warn(lambda: \"value\" > 20)"
             ".crit(lambda: \"value\" > 30)",
    # Not one of Kapacitor's shapes: the same alert publishing to a named topic, so every
    # event's state (message and details rendered) is recorded and persisted.
    "alert_topic": "stream|from().measurement('m1')"
                   "|alert().id('{{ .Name }}_{{ .TaskName }}')"
                   ".info(lambda: \"value\" > 10).warn(lambda: \"value\" > 20)"
                   ".crit(lambda: \"value\" > 30).topic('bench')",
}
MEASUREMENTS = {"bare": ("m1",), "count": ("m1",), "join": ("m1", "m2"), "alert": ("m1",),
                "alert_topic": ("m1",)}
#: the node that must have collected every point; the alert shape is timed to its end
DONE_NODE = {"alert": "alert2", "alert_topic": "alert2"}


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(shape: str, tasks: int, points: int) -> None:
    config = {"http": {"log-enabled": False, "max-body-size": 0},
              "logging": {"level": "WARN"}}
    with DaemonProcess(config) as daemon, httpx.Client(base_url=daemon.url,
                                                       timeout=600) as client:
        for i in range(tasks):
            response = client.post("/kapacitor/v1/tasks", json={
                "id": f"{shape}{i}", "type": "stream", "status": "enabled",
                "dbrps": [{"db": "bench", "rp": "autogen"}], "script": SHAPES[shape]})
            assert response.status_code == 200, response.text
        bodies = ["\n".join(f"{m} value={i} {i}" for i in range(points)).encode()
                  for m in MEASUREMENTS[shape]]
        points *= len(bodies)
        started = time.perf_counter()
        for body in bodies:
            response = client.post("/write?db=bench&rp=autogen&precision=s", content=body)
            assert response.status_code == 204, response.text
        while True:
            listing = client.get("/kapacitor/v1/tasks", params={"fields": "stats"}).json()
            node = DONE_NODE.get(shape, "stream0")
            done = sum(t["stats"]["node-stats"].get(node, {}).get("collected", 0)
                       for t in listing["tasks"])
            if done >= points * tasks:
                break
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        assert daemon.proc is not None
        rss = peak_rss_mb(daemon.proc.pid)
        dropped = sum(t["stats"]["task-stats"]["points_dropped"] for t in listing["tasks"])
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

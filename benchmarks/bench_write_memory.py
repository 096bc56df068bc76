"""Peak memory of one large ``/write``: what a body of line protocol costs the daemon.

    python benchmarks/bench_write_memory.py [--sizes 5 20] [--shapes short telegraf bad]

For each body size (MB) and line shape, starts a fresh ``kapa-core`` (peak RSS is a
high-water mark), enables one task that receives the points, POSTs one body and prints
the daemon's peak resident memory (``VmHWM`` in ``/proc/<pid>/status``) before and
after, the growth as a multiple of the body size, and the time to the answer.

Shapes: ``short`` is ``m v=1`` (the most points per byte, the worst case), ``telegraf``
a typical line with two tags and a timestamp, ``bad`` a malformed line (refused, 400).
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
    "short": b"m v=1\n",
    "telegraf": b"cpu,host=server01,region=us-west usage_idle=97.64,usage_user=1.2 "
                b"1434055562000000000\n",
    "bad": b"m\n",
}
TASK = "dbrp \"bench\".\"autogen\"\nstream|from().measurement('m')\n"


def peak_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/<pid>/status")


def measure(size_mb: int, shape: str) -> None:
    line = SHAPES[shape]
    body = line * (size_mb * 1_000_000 // len(line))
    config = {"http": {"log-enabled": False}, "logging": {"level": "WARN"}}
    with DaemonProcess(config) as daemon, httpx.Client(base_url=daemon.url,
                                                       timeout=600) as client:
        assert daemon.proc is not None
        client.post("/kapacitor/v1/tasks", json={"id": "bench", "type": "stream",
                                                  "script": TASK, "status": "enabled"})
        before = peak_kb(daemon.proc.pid)
        started = time.perf_counter()
        response = client.post("/write?db=bench&rp=autogen", content=body)
        elapsed = time.perf_counter() - started
        after = peak_kb(daemon.proc.pid)
    growth = (after - before) * 1024
    print(f"{size_mb:>3} MB {shape:<9} {len(body) // len(line):>10,} lines  "
          f"HTTP {response.status_code}  peak RSS {before / 1024:6.0f} -> "
          f"{after / 1024:6.0f} MiB  (+{growth / 2**20:5.0f} MiB, "
          f"{growth / len(body):4.1f}x the body)  {elapsed:5.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 20],
                        help="body sizes in MB (default: 5 20)")
    parser.add_argument("--shapes", nargs="+", default=["short", "telegraf", "bad"],
                        choices=sorted(SHAPES), help="line shapes (default: all)")
    args = parser.parse_args()
    for size in args.sizes:
        for shape in args.shapes:
            measure(size, shape)


if __name__ == "__main__":
    main()

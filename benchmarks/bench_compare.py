"""Issue 18's table in one command: kapa-core, and Kapacitor 1.5.7 beside it when given.

    python benchmarks/bench_compare.py [--runs 3] [--kapacitord /opt/kbin/kapacitord]
    KAPACITOR_URL=http://127.0.0.1:9092 python benchmarks/bench_compare.py [--memory]

Every case runs on a fresh kapa-core daemon started here (the benchmark configuration of
bench_tasks.py), then on Kapacitor: a fresh kapacitord with a throw-away configuration for
each case when ``--kapacitord BIN`` is given (tests/compat/oracle.py), or the one running
at ``KAPACITOR_URL``, whose tasks each case deletes when it ends. The servers take turns
case by case (and run by run with ``--runs N``, whose median is printed), so that a change
in the machine's load hits both alike; only one of them works at a time.

Cases
  throughput  shapes bare, window 100s + count, alert (3 levels), join + eval, at layouts
              tasks x points T10xP50k and T100xP5k: ``m1 value=<i> <i>`` (join: m1 and m2)
              in one body per measurement, deliveries/s = points x tasks / seconds from the
              /write POST until every task's ``stream0`` (alert: its alert node) has
              collected every point, read from the tasks' node statistics.
  ingest      one bare task, bodies of 200k points: points/s from sending a body to its
              204 (the median over ``--ingest-bodies`` bodies, as bench_write.py).
  latency     a task whose alert fires on every point (``crit(lambda: TRUE)``, without
              stateChangesOnly, ``.message`` the point's ``seq``) posts to a local receiver;
              points are written at ``--latency-rate`` points/s (``--latency-batch`` a
              write) for ``--latency-seconds``. Latency of a point = its arrival at the
              receiver minus the 204 of the write that carried it; p50 and p99 are over
              every point after the first second. To keep it sound: writes follow a fixed
              schedule (open loop: ``--latency-writers`` threads, each on its own
              kept-alive connection, so a slow answer does not lower the offered rate;
              sends over an interval late are counted), bodies are built beforehand,
              the receiver is a separate process (its own interpreter lock) that answers
              at once on kept-alive connections and stamps each request when its last
              byte arrives, both sides read CLOCK_MONOTONIC (one clock for the whole
              machine), and every arrival is matched to its point by ``seq`` (missing
              ones are reported). A negative
              figure means the alert was delivered before the write was answered.
  memory      (``--memory``) 1,000,000 points over 10,000 series (``host`` tag) within one
              minute through ``groupBy('host')|window().period(1m).every(1m)|mean('v')``:
              RSS before, once every point is buffered, once every window has emitted (one
              point per series in the next minute closes them), and the same after the
              third round. Readings are taken 1 s after the counters show the work done.
              Kapacitor's RSS needs its pid: known with --kapacitord, else --kapacitor-pid.

Each measurement's line also says how many cores the server used and how busy the whole
machine was meanwhile (from /proc), so a noisy neighbour shows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from benchlib import (
    DAEMON_CONFIG,
    DONE_NODE,
    WRITE,
    Load,
    define_tasks,
    delete_tasks,
    machine_jiffies,
    receiver_main,
    rss_mib,
    shape_bodies,
    wait_counter,
)

from kapa_core.testing import DaemonProcess

SHAPE_NAMES = {"bare": "bare from()", "count": "window 100s + count",
               "alert": "alert (3 levels)", "join": "join + eval"}
Figures = dict[str, float | None]


# -- servers --------------------------------------------------------------------------

@dataclass
class Server:
    """Where a case runs: ``url`` and, when known, the server's ``pid``."""
    url: str
    pid: int | None
    load: Load = field(init=False)

    def __post_init__(self) -> None:
        self.load = Load(self.pid)


@dataclass
class Target:
    name: str
    binary: str | None = None  # kapacitord to start per case
    url: str | None = None  # a running Kapacitor
    pid: int | None = None  # its pid, when given
    version: str = ""

    @contextlib.contextmanager
    def server(self) -> Iterator[Server]:
        if self.name == "kapa-core":
            with DaemonProcess(DAEMON_CONFIG) as daemon:
                assert daemon.proc is not None
                yield Server(daemon.url, daemon.proc.pid)
        elif self.binary:
            from tests.compat.oracle import Kapacitor
            kapacitor = Kapacitor(self.binary)
            if not self.version:
                ping = httpx.get(kapacitor.url + "/kapacitor/v1/ping")
                version = ping.headers.get("X-Kapacitor-Version") or "(no version header)"
                self.version = f"Kapacitor {version}, {self.binary}"
            try:
                yield Server(kapacitor.url, kapacitor.proc.pid)
            finally:
                kapacitor.close()
        else:
            assert self.url
            yield Server(self.url, self.pid)


# -- cases ----------------------------------------------------------------------------

@dataclass
class Row:
    label: str
    unit: str
    higher_is_better: bool = True


@dataclass
class Case:
    name: str
    rows: list[Row]
    run: Callable[[httpx.Client, Server, argparse.Namespace], Figures]
    needs_pid: bool = False
    results: dict[tuple[str, str], list[float | None]] = field(default_factory=dict)


def throughput(shape: str, tasks: int, points: int, row: str
               ) -> Callable[[httpx.Client, Server, argparse.Namespace], Figures]:
    def run(client: httpx.Client, server: Server, args: argparse.Namespace) -> Figures:
        ids = define_tasks(client, shape, tasks, prefix="cmp")
        try:
            bodies = shape_bodies(shape, points)
            total = points * len(bodies) * tasks
            server.load.restart()
            started = time.perf_counter()
            for body in bodies:
                response = client.post(WRITE, content=body)
                assert response.status_code == 204, response.text
            elapsed, stats = wait_counter(client, ids, DONE_NODE.get(shape, "stream0"),
                                          total, started, args.timeout)
            server.load.stop()
            dropped = sum(s["task-stats"].get("points_dropped", 0) for s in stats)
            note = f"dropped {dropped}" if dropped else ""
            if elapsed is None:
                print(f"    timed out after {args.timeout:g} s {note}")
                return {row: None}
            print(f"    {total:,} deliveries in {elapsed:.2f} s {note}", end="")
            return {row: total / elapsed}
        finally:
            delete_tasks(client, ids)
    return run


def ingest(client: httpx.Client, server: Server, args: argparse.Namespace) -> Figures:
    ids = define_tasks(client, "bare", 1, prefix="cmp")
    try:
        n = args.ingest_points
        bodies = [b"\n".join(b"m1 value=%d %d" % (i, k * n + i) for i in range(n))
                  for k in range(args.ingest_bodies)]
        rates = []
        server.load.restart()
        for body in bodies:
            started = time.perf_counter()
            response = client.post(WRITE, content=body)
            elapsed = time.perf_counter() - started
            assert response.status_code == 204, response.text
            rates.append(n / elapsed)
        server.load.stop()
        done, _ = wait_counter(client, ids, "stream0", n * len(bodies), time.perf_counter(),
                               args.timeout)
        print(f"    {len(bodies)} bodies: " + ", ".join(f"{r:,.0f}" for r in rates)
              + ("" if done is not None else "; NOT all collected"), end="")
        return {"ingest": statistics.median(rates)}
    finally:
        delete_tasks(client, ids)


LATENCY_SCRIPT = ("stream|from().measurement('lat')|alert().id('lat')"
                  ".message('{{{{ index .Fields \"seq\" }}}}').details('')"
                  ".crit(lambda: TRUE).post('http://127.0.0.1:{port}/alert')")


def latency(client: httpx.Client, server: Server, args: argparse.Namespace) -> Figures:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    receiver = context.Process(target=receiver_main, args=(theirs,), daemon=True)
    receiver.start()
    ids: list[str] = []
    try:
        port = ours.recv()
        ids = define_tasks(client, "latency", 1, prefix="cmp",
                           script=LATENCY_SCRIPT.format(port=port))
        batch = args.latency_batch
        writes = max(1, round(args.latency_seconds * args.latency_rate / batch))
        base = time.time_ns()
        step = 1_000_000_000 // args.latency_rate
        bodies = [b"\n".join(b"lat seq=%di %d" % (s, base + s * step)
                             for s in range(k * batch, (k + 1) * batch))
                  for k in range(writes)]
        interval = batch * 1_000_000_000 // args.latency_rate
        receiving = Load(receiver.pid)
        server.load.restart()
        first = time.monotonic_ns() + 50_000_000
        acks, late = open_loop_writes(str(client.base_url), bodies, first, interval,
                                      args.latency_writers, args.timeout)
        spent = (time.monotonic_ns() - first) / 1e9
        server.load.stop()
        receiving.stop()
        total = writes * batch
        # wait for every point, or until nothing has arrived for 5 s
        deadline = time.monotonic() + args.timeout
        count, changed = -1, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - changed < 5:
            ours.send("count")
            now = ours.recv()
            if now >= total:
                break
            if now != count:
                count, changed = now, time.monotonic()
            time.sleep(0.1)
        ours.send("stop")
        arrivals, connections = ours.recv()
    finally:
        delete_tasks(client, ids)
        receiver.join(5)
        if receiver.is_alive():
            receiver.kill()
    seen: dict[int, int] = {}
    for at, body in arrivals:
        seq = int(json.loads(body)["message"])
        seen.setdefault(seq, at)
    skip = math.ceil(1_000_000_000 / interval)  # the first second warms up
    from_ack, from_send = [], []
    for seq, at in seen.items():
        k = seq // batch
        if k >= skip:
            from_ack.append((at - acks[k][1]) / 1e6)
            from_send.append((at - acks[k][0]) / 1e6)
    missing = total - len(seen)
    if not from_ack:
        print(f"    nothing delivered ({missing} missing; {connections})", end="")
        return {"p50": None, "p99": None}
    answer = statistics.median((a - s) / 1e6 for s, a in acks)
    print(f"    {total / spent:,.0f} points/s offered in {writes} writes ({late} late), "
          f"{len(seen):,} delivered, {missing} missing, {len(arrivals) - len(seen)} "
          f"duplicates; median /write answer {answer:.2f} ms; from the send: "
          f"p50 {percentile(from_send, 0.5):.2f} p99 {percentile(from_send, 0.99):.2f} ms; "
          f"from the 204: max {max(from_ack):.2f} ms, "
          f"{sum(1 for v in from_ack if v < 0)} negative; the receiver saw "
          f"{connections['connections']:,} connections, at most {connections['most open']:,} "
          f"open at once and used {receiving.process:.2f} cores", end="")
    return {"p50": percentile(from_ack, 0.5), "p99": percentile(from_ack, 0.99)}


def open_loop_writes(url: str, bodies: list[bytes], first: int, interval: int,
                     writers: int, timeout: float) -> tuple[list[tuple[int, int]], int]:
    """POST ``bodies[k]`` to ``url``/write at ``first + k * interval`` (monotonic ns)
    from up to ``writers`` threads, each with its own kept-alive connection, so that a
    slow answer does not hold back the next write (open loop). Returns each write's
    (sent, answered) and how many were sent over an interval late (every writer busy,
    or this process descheduled)."""
    acks: list[tuple[int, int]] = [(0, 0)] * len(bodies)
    delays = [0] * len(bodies)  # per write: sent - due
    local = threading.local()
    clients: list[httpx.Client] = []

    def write(k: int, due: int) -> None:
        own = getattr(local, "client", None)
        if own is None:
            own = local.client = httpx.Client(base_url=url, timeout=timeout)
            clients.append(own)
        sent = time.monotonic_ns()
        response = own.post("/write?db=bench&rp=autogen", content=bodies[k])
        acks[k], delays[k] = (sent, time.monotonic_ns()), sent - due
        assert response.status_code == 204, response.text

    try:
        paced(write, len(bodies), first, interval, writers)
    finally:
        for own in clients:
            own.close()
    return acks, sum(1 for d in delays if d > interval)


def paced(write: Callable[[int, int], Any], count: int, first: int, interval: int,
          workers: int) -> None:
    """Call ``write(k, due)`` for k in 0..count-1 on ``workers`` threads, the k-th at
    ``due = first + k * interval`` (monotonic ns), whatever the earlier ones took."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = []
        for k in range(count):
            due = first + k * interval
            now = time.monotonic_ns()
            if now < due:
                time.sleep((due - now) / 1e9)
            futures.append(pool.submit(write, k, due))
        for future in futures:
            future.result()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


MEMORY_SCRIPT = ("stream|from().measurement('mem').groupBy('host')"
                 "|window().period(1m).every(1m)|mean('v')")


def memory(client: httpx.Client, server: Server, args: argparse.Namespace) -> Figures:
    assert server.pid is not None
    pid = server.pid
    ids = define_tasks(client, "memory", 1, prefix="cmp", script=MEMORY_SCRIPT)
    series, per_series = args.memory_series, args.memory_points // args.memory_series
    step = 50_000 // per_series  # ms: every point within the first 50 s of the minute
    write = "/write?db=bench&rp=autogen&precision=ms"

    def settled() -> float:
        time.sleep(1)
        return rss_mib(pid)

    try:
        figures: Figures = {"baseline": settled()}
        server.load.restart()
        for r in range(args.memory_rounds):
            base = r * 60_000
            steps_per_body = max(1, 100_000 // series)
            for first in range(0, per_series, steps_per_body):
                body = b"\n".join(b"mem,host=h%d v=%d.5 %d" % (h, j, base + j * step)
                                  for j in range(first, min(per_series, first + steps_per_body))
                                  for h in range(series))
                response = client.post(write, content=body)
                assert response.status_code == 204, response.text
            collected = (r + 1) * series * per_series + r * series
            done, _ = wait_counter(client, ids, "window*", collected, time.perf_counter(),
                                   args.timeout)
            assert done is not None, "the points were not all collected"
            buffered = settled()
            closing = b"\n".join(b"mem,host=h%d v=0 %d" % (h, base + 60_000)
                                 for h in range(series))
            response = client.post(write, content=closing)
            assert response.status_code == 204, response.text
            done, stats = wait_counter(client, ids, "window*", (r + 1) * series,
                                       time.perf_counter(), args.timeout, counter="emitted")
            assert done is not None, "the windows did not all emit"
            emitted = settled()
            print(f"    round {r + 1}: buffered {buffered:,.0f} MiB, emitted {emitted:,.0f} MiB;",
                  end="")
            if r == 0:
                figures["buffered"], figures["emitted"] = buffered, emitted
            figures["buffered_last"], figures["emitted_last"] = buffered, emitted
        server.load.stop()
        return figures
    finally:
        delete_tasks(client, ids)


def relabel(run: Callable[[httpx.Client, Server, argparse.Namespace], Figures],
            labels: dict[str, str]) -> Callable[[httpx.Client, Server, argparse.Namespace],
                                                Figures]:
    """``run`` with its figures' keys replaced by the table's row labels."""
    def relabelled(client: httpx.Client, server: Server, args: argparse.Namespace) -> Figures:
        figures = run(client, server, args)
        return {labels[key]: figures.get(key) for key in labels}
    return relabelled


def cases(args: argparse.Namespace) -> list[Case]:
    found = []
    for shape in args.shape:
        for layout in args.layout:
            tasks, points = (int(x) for x in layout.lower().split("x"))
            label = f"{SHAPE_NAMES[shape]} T{tasks}xP{points // 1000}k"
            found.append(Case(label, [Row(label, "deliveries/s")],
                              throughput(shape, tasks, points, label)))
    if args.ingest:
        label = f"ingest, 1 bare task, {args.ingest_points // 1000}k pts/body"
        found.append(Case("ingest", [Row(label, "points/s")], relabel(ingest, {
            "ingest": label})))
    if args.latency:
        rate = f"{args.latency_rate:,} pts/s"
        labels = {"p50": f"alert latency p50 at {rate}", "p99": f"alert latency p99 at {rate}"}
        found.append(Case("alert latency", [Row(v, "ms", False) for v in labels.values()],
                          relabel(latency, labels)))
    if args.memory:
        million = f"{args.memory_points / 1e6:g}M"
        labels = {"baseline": "RSS before writing",
                  "buffered": f"RSS with {million} points buffered",
                  "emitted": "RSS after the windows emit",
                  "buffered_last": f"RSS buffered, round {args.memory_rounds}",
                  "emitted_last": f"RSS emitted, round {args.memory_rounds}"}
        found.append(Case("memory", [Row(v, "MiB", False) for v in labels.values()],
                          relabel(memory, labels), needs_pid=True))
    return found


# -- the sitting ----------------------------------------------------------------------

def describe_machine() -> str:
    busy, total = machine_jiffies()
    time.sleep(1)
    busy2, total2 = machine_jiffies()
    cores = os.cpu_count() or 1
    idle_busy = cores * (busy2 - busy) / max(1, total2 - total)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"{cores} cores; before starting: {idle_busy:.2f} cores busy (1 s sample), "
            f"load average {load}")


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:.2f}"
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e4 and unit != "MiB":
        return f"{value / 1e3:.0f}k"
    return f"{value:,.0f}"


def summary(values: list[float | None]) -> tuple[float | None, str]:
    """The median of the runs that finished, and their spread as +-% of it."""
    done = [v for v in values if v is not None]
    if not done:
        return None, ""
    middle = statistics.median(done)
    if len(done) < 2 or not middle:
        return middle, ""
    return middle, f"±{50 * (max(done) - min(done)) / abs(middle):.0f}%"


def table(found: list[Case], targets: list[Target], runs: int) -> None:
    head = ["case", "unit"] + [t.name for t in targets]
    if len(targets) == 2:
        head.append("ratio")
    lines = []
    for case in found:
        for row in case.rows:
            cells = [row.label, row.unit + ("" if row.higher_is_better else " (lower better)")]
            medians = []
            for target in targets:
                middle, spread = summary(case.results.get((row.label, target.name), []))
                medians.append(middle)
                cells.append(fmt(middle, row.unit) + (f" {spread}" if spread else ""))
            if len(targets) == 2:
                a, b = medians
                cells.append(f"{a / b:.2f}" if a is not None and b else "-")
            lines.append(cells)
    widths = [max(len(str(c[i])) for c in [head, *lines]) for i in range(len(head))]
    print()
    print(f"median of {runs} run{'s' if runs > 1 else ''}"
          + (" (± is half the range, as % of the median)" if runs > 1 else "")
          + ("; ratio = kapa-core / Kapacitor" if len(targets) == 2 else ""))
    for i, cells in enumerate([head, *lines]):
        print("  ".join(c.ljust(w) if j < 2 else c.rjust(w)
                        for j, (c, w) in enumerate(zip(cells, widths, strict=True))))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", nargs="*", default=list(SHAPE_NAMES),
                        choices=sorted(SHAPE_NAMES), help="throughput shapes (default: all; "
                        "none: no throughput case)")
    parser.add_argument("--layout", nargs="+", default=["10x50000", "100x5000"],
                        help="tasks x points (default: 10x50000 100x5000)")
    parser.add_argument("--runs", type=int, default=1, help="repeat each case; the median "
                        "is reported (default 1)")
    parser.add_argument("--no-ingest", dest="ingest", action="store_false",
                        help="leave out the ingest case")
    parser.add_argument("--ingest-points", type=int, default=200_000)
    parser.add_argument("--ingest-bodies", type=int, default=3,
                        help="bodies per ingest measurement (default 3)")
    parser.add_argument("--no-latency", dest="latency", action="store_false",
                        help="leave out the alert-latency case")
    parser.add_argument("--latency-rate", type=int, default=10_000, help="points/s")
    parser.add_argument("--latency-batch", type=int, default=100, help="points per write")
    parser.add_argument("--latency-seconds", type=float, default=10)
    parser.add_argument("--latency-writers", type=int, default=4,
                        help="threads writing, so that a slow answer does not delay the "
                             "next write (default 4)")
    parser.add_argument("--memory", action="store_true", help="add the memory case")
    parser.add_argument("--memory-points", type=int, default=1_000_000)
    parser.add_argument("--memory-series", type=int, default=10_000)
    parser.add_argument("--memory-rounds", type=int, default=3)
    parser.add_argument("--only-memory", action="store_true",
                        help="the memory case alone (implies --memory)")
    parser.add_argument("--kapacitord", metavar="BIN",
                        help="start this kapacitord (a fresh one per case) and compare")
    parser.add_argument("--kapacitor-pid", type=int,
                        help="the pid of the kapacitord at KAPACITOR_URL, for its RSS")
    parser.add_argument("--no-kapa-core", dest="kapa_core", action="store_false",
                        help="measure Kapacitor only")
    parser.add_argument("--timeout", type=float, default=180,
                        help="seconds a case may take before it counts as timed out")
    args = parser.parse_args()
    if args.only_memory:
        args.memory, args.shape, args.ingest, args.latency = True, [], False, False

    targets = [Target("kapa-core")] if args.kapa_core else []
    url = os.environ.get("KAPACITOR_URL")
    if args.kapacitord:
        targets.append(Target("Kapacitor", binary=args.kapacitord))
    elif url:
        version = httpx.get(url.rstrip("/") + "/kapacitor/v1/ping").headers.get(
            "X-Kapacitor-Version") or "(no version header)"
        targets.append(Target("Kapacitor", url=url.rstrip("/"), pid=args.kapacitor_pid,
                              version=f"Kapacitor {version} at {url}"))
    if not targets:
        parser.error("nothing to measure")
    commit = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %cI"],
                            capture_output=True, text=True).stdout.strip()
    print(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "|", describe_machine())
    print(f"kapa-core {commit}" + "".join(f" | {t.version}" for t in targets if t.version))
    sys.stdout.flush()

    found = cases(args)
    for case in found:
        for run in range(args.runs):
            for target in targets:
                if case.needs_pid and not target.binary and target.name != "kapa-core" \
                        and target.pid is None:
                    print(f"{case.name} on {target.name}: skipped (no pid: --kapacitor-pid)")
                    continue
                print(f"{case.name} on {target.name}"
                      + (f", run {run + 1}" if args.runs > 1 else "") + ":", flush=True)
                with target.server() as server, \
                        httpx.Client(base_url=server.url, timeout=args.timeout) as client:
                    figures = case.run(client, server, args)
                    load = server.load
                for label, value in figures.items():
                    case.results.setdefault((label, target.name), []).append(value)
                server_load = f"server {load.process:.2f} cores, " if server.pid else ""
                print(f"\n    -> {', '.join(f'{fmt(v, r.unit)} {r.unit}' for r, v in zip(case.rows, figures.values(), strict=True))}"
                      f" ({server_load}machine {load.machine:.2f} of {load.cores} cores busy)",
                      flush=True)
    table(found, targets, args.runs)
    print(f"\nkapa-core {commit}" + "".join(f" | {t.version}" for t in targets if t.version))
    print(f"\nload average at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())

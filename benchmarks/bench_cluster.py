"""What the JetStream hop of a cluster costs (docs/cluster.md, "Sizing"), on this machine.

    python benchmarks/bench_cluster.py [--runs 3] [--nats-cluster] [--members 1 2 3]

Setups, each started fresh here and stopped before the next: ``single``, one daemon
without ``[cluster]`` (the baseline), then 1, 2 and 3 members of one cluster on one
``nats-server`` (``--nats-cluster``: a three-server NATS cluster and ``replicas = 3``).
Members beat every 300 ms; the daemons' own statistics stream is off (it would go through
the stream too).

Cases, on each setup
  throughput  ``--tasks`` tasks (default 6), task k ``stream|from().measurement('m<k>')``,
              defined through the first member, run where placement puts them. Writers
              (``--writers`` threads, each with its own kept-alive connections) post
              ``--points`` points in bodies of ``--body`` lines, every body mixing all
              measurements (``m<i mod T> v=<i>i <i>``), to the members round-robin.
              acked/s = points / seconds from the first POST to the last 204;
              processed/s = points / seconds until the ``from1`` nodes have collected every
              point, summed over the tasks' owners (``GET /kapacitor/v1/tasks/<id>`` on the
              member where it is ``executing``). Every point reaches exactly one task, so
              processed/s is also deliveries/s. Then the same with ``--interleaved-points``
              points whose bodies alternate measurements line by line: the cluster
              publishes one message per run of lines of one measurement, so this is the
              cost of a message per point. A run in which a task moved or restarted (its
              counters start from 0 again) or did not get every point within ``--timeout``
              gives no processed figure and says so.
  latency     a task ``from().measurement('lat')|httpPost(<receiver>)``; writes of
              ``--latency-batch`` points at ``--latency-rate`` points/s for
              ``--latency-seconds``, on a fixed schedule (open loop: ``--writers`` threads),
              round-robin over the members; each point carries ``sent``, the writer's
              CLOCK_MONOTONIC reading just before its POST; the receiver (a separate
              process, benchlib.receiver_main) stamps each request's arrival on the same
              clock. Latency = arrival - sent; p50/p99 over the points after the first
              second. Run on ``single``, 1 member and the largest member count.
  hop cost    derived: (1/processed/s clustered - 1/processed/s single) in µs per point for
              1 member, and the p50 latency difference.

Each measurement's line says how many cores the daemons and the NATS servers used and how
busy the machine was meanwhile; the table gives medians of ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_compare import describe_machine, paced, percentile
from benchlib import DAEMON_CONFIG, Load, receiver_main

from kapa_core.testing import DaemonProcess
from kapa_core.testing.nats import NatsCluster, NatsServer

WRITE = "/write?db=bench&rp=autogen&precision=s"
DBRPS = [{"db": "bench", "rp": "autogen"}]
Figures = dict[str, float | None]


# -- setups ---------------------------------------------------------------------------

@dataclass
class Setup:
    """Running daemons (``members``, in order) and the pids of what they run on."""
    name: str
    members: list[DaemonProcess]
    nats_pids: list[int] = field(default_factory=list)
    loads: list[Load] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [m.url for m in self.members]

    def start_load(self) -> None:
        pids = [m.proc.pid for m in self.members if m.proc is not None]
        self.loads = [Load(pid) for pid in pids + self.nats_pids]

    def load_line(self) -> str:
        for load in self.loads:
            load.stop()
        daemons = sum(load.process for load in self.loads[:len(self.members)])
        nats = sum(load.process for load in self.loads[len(self.members):])
        machine = self.loads[0]
        return (f"daemons {daemons:.2f} cores, nats {nats:.2f} cores, machine "
                f"{machine.machine:.2f} of {machine.cores} cores busy")


def member_config(urls: list[str], member_id: str, replicas: int) -> dict[str, Any]:
    return {**DAEMON_CONFIG, "stats": {"enabled": False}, "cluster": {
        "enabled": True, "urls": urls, "name": "bench", "member-id": member_id,
        "heartbeat-interval": "300ms", "member-timeout": "1.5s", "replicas": replicas}}


@contextlib.contextmanager
def setup(members: int, nats_cluster: bool) -> Iterator[Setup]:
    """``members`` = 0: one daemon without ``[cluster]``; else that many members."""
    if members == 0:
        with DaemonProcess(DAEMON_CONFIG) as daemon:
            yield Setup("single", [daemon])
        return
    with contextlib.ExitStack() as stack:
        nats: NatsServer | NatsCluster
        if nats_cluster:
            nats = stack.enter_context(NatsCluster(3, name="bench"))
            urls, servers = nats.urls, nats.servers
        else:
            nats = stack.enter_context(NatsServer(server_name="bench"))
            urls, servers = [nats.url], [nats]
        daemons = [stack.enter_context(DaemonProcess(
            member_config(urls, f"m{i + 1}", 3 if nats_cluster else 1)))
            for i in range(members)]
        yield Setup(f"{members} member{'s' if members > 1 else ''}", daemons,
                    [s.proc.pid for s in servers if s.proc is not None])


def define(setup_: Setup, task_id: str, script: str) -> None:
    answer = httpx.post(f"{setup_.urls[0]}/kapacitor/v1/tasks", json={
        "id": task_id, "type": "stream", "status": "enabled", "dbrps": DBRPS,
        "script": script}, timeout=30)
    assert answer.status_code == 200, answer.text


def owners(setup_: Setup, ids: list[str], timeout: float = 30) -> dict[str, str]:
    """Wait until each task is ``executing`` on exactly one member; task -> its URL."""
    deadline = time.monotonic() + timeout
    while True:
        found: dict[str, list[str]] = {t: [] for t in ids}
        for url in setup_.urls:
            for task_id in ids:
                answer = httpx.get(f"{url}/kapacitor/v1/tasks/{task_id}", timeout=30)
                if answer.status_code == 200 and answer.json().get("executing"):
                    found[task_id].append(url)
        if all(len(on) == 1 for on in found.values()):
            return {t: on[0] for t, on in found.items()}
        if time.monotonic() > deadline:
            raise RuntimeError(f"tasks not placed within {timeout:g} s: {found}")
        time.sleep(0.1)


def collected(client: httpx.Client, url: str, task_id: str) -> int | None:
    """``from1``'s ``collected`` of a task on ``url``; None when it is not executing
    there (it moved: its counters started again from 0 elsewhere)."""
    task = client.get(f"{url}/kapacitor/v1/tasks/{task_id}").json()
    if not task.get("executing"):
        return None
    return int(task["stats"].get("node-stats", {}).get("from1", {}).get("collected", 0))


# -- throughput -----------------------------------------------------------------------

def define_throughput_tasks(setup_: Setup, args: argparse.Namespace) -> list[str]:
    ids = [f"tput{k}" for k in range(args.tasks)]
    for k, task_id in enumerate(ids):
        define(setup_, task_id, f"stream|from().measurement('m{k}')")
    return ids


def bodies_of(n: int, size: int, tasks: int, interleaved: bool, offset: int) -> list[bytes]:
    """``n`` points, point i of measurement ``m<i mod tasks>``, in bodies of ``size``
    lines; each body's lines sorted by measurement unless ``interleaved``."""
    bodies = []
    for start in range(0, n, size):
        indices = list(range(start, min(n, start + size)))
        if not interleaved:
            indices.sort(key=lambda i: (i % tasks, i))
        bodies.append(b"\n".join(b"m%d v=%di %d" % (i % tasks, i, offset + i + 1)
                                 for i in indices))
    return bodies


def throughput(setup_: Setup, args: argparse.Namespace, ids: list[str], n: int,
               interleaved: bool, offset: int) -> Figures:
    placed = owners(setup_, ids)
    spread = sorted(sum(1 for u in placed.values() if u == url) for url in setup_.urls)
    size, tasks = args.body, args.tasks
    bodies = bodies_of(n, size, tasks, interleaved, offset)
    expected = {t: sum(1 for i in range(n) if i % tasks == k) for k, t in enumerate(ids)}
    with httpx.Client(timeout=args.timeout) as poller:
        before = {t: collected(poller, placed[t], t) or 0 for t in ids}
        jobs: queue.Queue[int] = queue.Queue()
        for j in range(len(bodies)):
            jobs.put(j)
        failures: list[str] = []
        last_ack = [0.0]
        lock = threading.Lock()

        def writer() -> None:
            clients = {url: httpx.Client(base_url=url, timeout=args.timeout)
                       for url in setup_.urls}
            try:
                while True:
                    try:
                        j = jobs.get_nowait()
                    except queue.Empty:
                        return
                    url = setup_.urls[j % len(setup_.urls)]
                    answer = clients[url].post(WRITE, content=bodies[j])
                    now = time.perf_counter()
                    with lock:
                        if answer.status_code != 204:
                            failures.append(f"{answer.status_code} {answer.text[:200]}")
                        last_ack[0] = max(last_ack[0], now)
            finally:
                for client in clients.values():
                    client.close()

        setup_.start_load()
        started = time.perf_counter()
        threads = [threading.Thread(target=writer) for _ in range(args.writers)]
        for thread in threads:
            thread.start()
        waiting = set(ids)
        last = dict(before)
        troubles: list[str] = []  # a task that moved or restarted: its counter is off
        done_at: float | None = None
        while waiting:
            for task_id in sorted(waiting):
                count = collected(poller, placed[task_id], task_id)
                if count is None or count < last[task_id]:
                    troubles.append(f"{task_id} {'moved' if count is None else 'restarted'}")
                    waiting.discard(task_id)
                    continue
                last[task_id] = count
                if count - before[task_id] >= expected[task_id]:
                    waiting.discard(task_id)
            now = time.perf_counter()
            if not waiting:
                done_at = now
            elif now - started > args.timeout:
                break
            else:
                time.sleep(min(0.05, max(0.005, (now - started) / 200)))
        for thread in threads:
            thread.join()
        load = setup_.load_line()
    if failures:
        print(f"    {len(failures)} writes failed, first: {failures[0]}")
    acked = n / (last_ack[0] - started) if not failures else None
    print(f"    {n:,} points in {len(bodies)} bodies to {len(setup_.urls)} member(s), tasks "
          f"per member {spread}: acked in {last_ack[0] - started:.2f} s, ", end="")
    if troubles:
        print(f"no figure: {', '.join(troubles)} during the run; {load}")
        return {"acked": acked, "processed": None}
    if done_at is None:
        short = ", ".join(f"{t} {last[t] - before[t]}/{expected[t]}" for t in sorted(waiting))
        print(f"NOT all processed after {args.timeout:g} s (collected/sent: {short}); {load}")
        return {"acked": acked, "processed": None}
    print(f"processed in {done_at - started:.2f} s; {load}", flush=True)
    return {"acked": acked, "processed": n / (done_at - started)}


# -- latency --------------------------------------------------------------------------

def latency(setup_: Setup, args: argparse.Namespace, run: int) -> Figures:
    """One run on a fresh receiver process and a fresh task ``lat<run>`` posting to it."""
    context = multiprocessing.get_context("spawn")
    conn, theirs = context.Pipe()
    receiver = context.Process(target=receiver_main, args=(theirs,), daemon=True)
    receiver.start()
    task_id = f"lat{run}"
    try:
        port = conn.recv()
        define(setup_, task_id, "stream|from().measurement('lat')"
               f"|httpPost('http://127.0.0.1:{port}/lat')")
        owners(setup_, [task_id])
        return _latency(setup_, args, conn)
    finally:
        with contextlib.suppress(httpx.HTTPError):
            httpx.delete(f"{setup_.urls[0]}/kapacitor/v1/tasks/{task_id}", timeout=30)
        receiver.join(5)
        if receiver.is_alive():
            receiver.kill()


def _latency(setup_: Setup, args: argparse.Namespace, conn: Any) -> Figures:
    batch, rate = args.latency_batch, args.latency_rate
    writes = max(1, round(args.latency_seconds * rate / batch))
    interval = batch * 1_000_000_000 // rate
    late = [0]
    failures: list[str] = []
    local = threading.local()
    clients: list[httpx.Client] = []

    def write(k: int, due: int) -> None:
        own = getattr(local, "clients", None)
        if own is None:
            own = local.clients = {url: httpx.Client(base_url=url, timeout=args.timeout)
                                   for url in setup_.urls}
            clients.extend(own.values())
        url = setup_.urls[k % len(setup_.urls)]
        sent = time.monotonic_ns()
        if sent - due > interval:
            late[0] += 1
        body = b"\n".join(b"lat sent=%di,seq=%di %d" % (sent, s, s + 1)
                          for s in range(k * batch, (k + 1) * batch))
        answer = own[url].post(WRITE, content=body)
        if answer.status_code != 204:
            failures.append(f"{answer.status_code} {answer.text[:200]}")

    setup_.start_load()
    first = time.monotonic_ns() + 50_000_000
    try:
        paced(write, writes, first, interval, args.writers)
    finally:
        for client in clients:
            client.close()
    spent = (time.monotonic_ns() - first) / 1e9
    load = setup_.load_line()
    total = writes * batch
    # wait for every point (one request each: httpPost of a stream point), or until
    # nothing has arrived for 5 s
    deadline, count, changed = time.monotonic() + args.timeout, -1, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - changed < 5:
        conn.send("count")
        now_count = conn.recv()
        if now_count >= total:
            break
        if now_count != count:
            count, changed = now_count, time.monotonic()
        time.sleep(0.1)
    conn.send("stop")
    arrivals, _connections = conn.recv()
    seen: dict[int, float] = {}
    for at, body in arrivals:
        for series in json.loads(body).get("series", []):
            columns = series["columns"]
            for row in series["values"]:
                value = dict(zip(columns, row, strict=False))
                seen.setdefault(int(value["seq"]), (at - int(value["sent"])) / 1e6)
    skip = math.ceil(1_000_000_000 / interval) * batch  # the first second warms up
    latencies = [ms for seq, ms in seen.items() if seq >= skip]
    missing = total - len(seen)
    if failures:
        print(f"    {len(failures)} writes failed, first: {failures[0]}")
    if not latencies:
        print(f"    nothing delivered ({missing} missing); {load}")
        return {"p50": None, "p99": None}
    print(f"    {total / spent:,.0f} points/s offered in {writes} writes to "
          f"{len(setup_.urls)} member(s) ({late[0]} late), {len(seen):,} delivered, "
          f"{missing} missing, {len(arrivals) - len(seen)} duplicates; p50 "
          f"{percentile(latencies, 0.5):.2f} p99 {percentile(latencies, 0.99):.2f} "
          f"max {max(latencies):.2f} ms; {load}", flush=True)
    return {"p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99)}


# -- the sitting ----------------------------------------------------------------------

@dataclass
class Results:
    values: dict[tuple[str, str], list[float | None]] = field(default_factory=dict)

    def add(self, row: str, setup_name: str, value: float | None) -> None:
        self.values.setdefault((row, setup_name), []).append(value)

    def median(self, row: str, setup_name: str) -> float | None:
        done = [v for v in self.values.get((row, setup_name), []) if v is not None]
        return statistics.median(done) if done else None

    def cell(self, row: str, setup_name: str, unit: str) -> str:
        done = [v for v in self.values.get((row, setup_name), []) if v is not None]
        if not done:
            return "-"
        middle = statistics.median(done)
        text = f"{middle:.2f}" if unit.startswith("ms") else (
            f"{middle / 1e3:.1f}k" if middle >= 1e4 else f"{middle:,.0f}")
        if len(done) > 1 and middle:
            text += f" ±{50 * (max(done) - min(done)) / abs(middle):.0f}%"
        return text


def table(results: Results, rows: list[tuple[str, str]], setups: list[str]) -> None:
    head = ["case", "unit", *setups]
    lines = [[label, unit, *(results.cell(label, s, unit) for s in setups)]
             for label, unit in rows]
    widths = [max(len(c[i]) for c in [head, *lines]) for i in range(len(head))]
    for i, cells in enumerate([head, *lines]):
        print("  ".join(c.ljust(w) if j < 2 else c.rjust(w)
                        for j, (c, w) in enumerate(zip(cells, widths, strict=True))))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def hop_cost(results: Results, setups: list[str]) -> None:
    """Per point: what a clustered setup spends more than the single daemon."""
    single = results.median("processed", "single")
    single_p50 = results.median("p50", "single")
    print("\ncost of the JetStream hop per point (clustered - single):")
    for name in setups[1:]:
        parts = []
        clustered = results.median("processed", name)
        if single and clustered:
            parts.append(f"{1e6 / clustered - 1e6 / single:+.1f} µs of throughput time "
                         f"({1e6 / single:.1f} -> {1e6 / clustered:.1f} µs/point)")
        p50 = results.median("p50", name)
        if single_p50 is not None and p50 is not None:
            extra = p50 - single_p50  # ms
            parts.append(f"{1e3 * extra:+,.0f} µs of p50 latency" if abs(extra) < 10
                         else f"{extra:+,.0f} ms of p50 latency (the path is saturated)")
        if parts:
            print(f"  {name}: " + "; ".join(parts))


def guarded(running: Setup, case: Callable[[], Figures], keys: list[str]) -> Figures:
    """A case's figures, or none when it failed: said with the members' last errors,
    and the benchmark goes on with the next case."""
    try:
        return case()
    except (RuntimeError, AssertionError, httpx.HTTPError) as exc:
        print(f"    failed: {exc}")
        for n, member in enumerate(running.members):
            errors = [line for line in member.log().splitlines() if "lvl=error" in line]
            for line in errors[-3:]:
                print(f"    member {n + 1}: {line[:300]}")
        sys.stdout.flush()
        return dict.fromkeys(keys)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, nargs="+", default=[1, 2, 3],
                        help="member counts to measure besides the single daemon "
                             "(default 1 2 3)")
    parser.add_argument("--nats-cluster", action="store_true",
                        help="three NATS servers in one cluster and replicas = 3 "
                             "(default: one server, replicas = 1)")
    parser.add_argument("--runs", type=int, default=3,
                        help="runs of each case per setup; medians are reported (default 3)")
    parser.add_argument("--tasks", type=int, default=6, help="throughput tasks (default 6)")
    parser.add_argument("--points", type=int, default=60_000,
                        help="points per throughput run (default 60000)")
    parser.add_argument("--interleaved-points", type=int, default=3_000,
                        help="points per throughput run with interleaved bodies (each line "
                             "of another measurement than the line before; 0: none; "
                             "default 3000)")
    parser.add_argument("--body", type=int, default=1_000,
                        help="points per write body (default 1000)")
    parser.add_argument("--writers", type=int, default=4,
                        help="writer threads (default 4)")
    parser.add_argument("--no-latency", dest="latency", action="store_false",
                        help="leave out the latency case")
    parser.add_argument("--latency-rate", type=int, default=1_000,
                        help="points/s (default 1000)")
    parser.add_argument("--latency-batch", type=int, default=10,
                        help="points per write (default 10)")
    parser.add_argument("--latency-seconds", type=float, default=5,
                        help="seconds of writes per latency run (default 5)")
    parser.add_argument("--timeout", type=float, default=15,
                        help="seconds a run may take before it counts as timed out")
    args = parser.parse_args()
    if any(m < 1 for m in args.members):
        parser.error("--members: counts of 1 or more")

    commit = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %cI"],
                            capture_output=True, text=True).stdout.strip()
    nats_kind = "3 NATS servers, replicas 3" if args.nats_cluster else "1 NATS server"
    print(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "|", describe_machine())
    print(f"kapa-core {commit} | {nats_kind} | {args.tasks} tasks, {args.points:,} points "
          f"in bodies of {args.body:,}, {args.writers} writers", flush=True)

    counts = [0, *sorted(set(args.members))]
    latency_on = {0, min(counts[1:]), max(counts[1:])} if args.latency else set()
    results = Results()
    names = []
    started = time.monotonic()
    for members in counts:
        with setup(members, args.nats_cluster) as running:
            names.append(running.name)
            ids = define_throughput_tasks(running, args)
            offset = 0
            for run in range(args.runs):
                for interleaved, n in ((False, args.points),
                                       (True, args.interleaved_points)):
                    if not n:
                        continue
                    kind = "interleaved" if interleaved else "grouped"
                    print(f"throughput ({kind}) on {running.name}, run {run + 1}:",
                          flush=True)
                    figures = guarded(running, lambda: throughput(
                        running, args, ids, n, interleaved, offset),
                        ["acked", "processed"])
                    offset += n
                    for key, value in figures.items():
                        results.add(key + ("_mixed" if interleaved else ""), running.name,
                                    value)
            if members in latency_on:
                for run in range(args.runs):
                    print(f"latency on {running.name}, run {run + 1}:", flush=True)
                    for key, value in guarded(running, lambda: latency(running, args, run),
                                              ["p50", "p99"]).items():
                        results.add(key, running.name, value)

    rate = f"{args.latency_rate:,} pts/s"
    print(f"\n{nats_kind}; median of {args.runs} run{'s' if args.runs > 1 else ''}"
          + (" (± is half the range, as % of the median)" if args.runs > 1 else ""))
    table(results, [("acked", "points/s (204s)"), ("processed", "points/s (deliveries)"),
                    ("acked_mixed", "points/s, interleaved"),
                    ("processed_mixed", "points/s, interleaved"),
                    ("p50", f"ms at {rate}"), ("p99", f"ms at {rate}")], names)
    hop_cost(results, names)
    print(f"\nkapa-core {commit}; {time.monotonic() - started:.0f} s; load average at the "
          f"end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())

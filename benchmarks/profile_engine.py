"""Where kapa-core spends its time and memory on the shapes where it trails Kapacitor.

    python benchmarks/profile_engine.py ingest [--profiler py-spy|cprofile]
    python benchmarks/profile_engine.py window [--tasks 10 --points 50000]
    python benchmarks/profile_engine.py memory [--tracemalloc] [--daemon]

``ingest`` and ``window`` are two rows of ``benchmarks/bench_tasks.py``: one bare task
(``stream|from().measurement('m1')``) fed 200,000 points in one ``/write`` body, and ten
tasks of ``window().period(100s).every(100s)|count('value')`` fed 50,000 points each
(``m1 value=<i> <i>``, precision s). Each write is timed from the POST until every
task's ``stream0`` has collected every point, as the benchmark times it.

With ``--profiler py-spy`` (the default when ``py-spy`` is on the PATH or beside this
Python) the real daemon runs as a subprocess: one write is timed without a profiler,
then ``py-spy record`` attaches (``--function --threads --gil --format raw``,
``--native`` on request; only the thread holding the GIL is sampled, as the GIL is what
the work is serialised on) while ``--repeat`` more bodies (later timestamps) go through
it. With ``--profiler cprofile`` the same write handler, router and tasks run in this
process (no HTTP server: the body is handed to the handler) under cProfile, the worker
threads that parse the body each with their own profiler, merged at the end; there
``--timing-only`` times the writes without a profiler, e.g. to try ``--keep-points``.

Both print two tables in Markdown: the functions with the most samples (time) on top of
the stack ("self") and anywhere in it ("cumulative"), with their share of all samples,
and, for py-spy, the share of each thread. The raw profile (collapsed stacks, usable by
flamegraph tools; or a pstats file) is kept in ``--out``.

``memory`` buffers ``--points`` (1,000,000) points over ``--series`` (10,000) series in
``stream|from().measurement('m')|groupBy('host')|window().period(1m).every(1m)
|mean('v')`` (lines ``m,host=host<k> v=<float> <t>``, all within one minute, so no
window emits) by parsing and routing them in this process as the daemon does, then
accounts for every object the window buffers hold (``sys.getsizeof``, each object
counted once) in bytes per buffered point, and the process's RSS growth. With
``--tracemalloc`` it also lists the allocation sites of what stays allocated (RSS then
includes tracemalloc's own bookkeeping); with ``--daemon`` it writes the same points to
a real daemon instead and reports its RSS.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from kapa_core.engine.build import build_nodes  # noqa: E402
from kapa_core.engine.router import StreamRouter  # noqa: E402
from kapa_core.engine.task_master import CHUNK, TaskMaster  # noqa: E402
from kapa_core.http import write_api  # noqa: E402
from kapa_core.http.messages import Request  # noqa: E402
from kapa_core.logs import Logger  # noqa: E402
from kapa_core.models import lineprotocol  # noqa: E402
from kapa_core.pipeline.evaluate import evaluate  # noqa: E402
from kapa_core.testing import DaemonProcess  # noqa: E402

SCRIPTS = {
    "ingest": "stream|from().measurement('m1')",
    "window": "stream|from().measurement('m1')|window().period(100s).every(100s)"
              "|count('value')",
}
MEMORY_SCRIPT = ("stream|from().measurement('m')|groupBy('host')"
                 "|window().period(1m).every(1m)|mean('v')")
DBRP = ("bench", "autogen")
CONFIG = {"http": {"log-enabled": False, "max-body-size": 0}, "logging": {"level": "WARN"}}


def body(points: int, offset: int) -> bytes:
    """``points`` lines of ``m1 value=<i> <t>``, timestamps (seconds) from ``offset``."""
    return "\n".join(f"m1 value={i} {offset + i}" for i in range(points)).encode()


def parsed_twice(data: bytes) -> int:
    """How many of ``data``'s lines the write handler parses twice: a body larger than
    ``THREAD_PARSE_BYTES`` is checked piece by piece and only the points of the first
    ``KEEP_POINTS`` lines are kept; the other pieces are parsed again to be routed. With
    the compiled parser none: the check makes no points (see write_api)."""
    if len(data) <= write_api.THREAD_PARSE_BYTES or lineprotocol.COMPILED:
        return 0
    good = twice = 0
    for start, end, _ in lineprotocol.pieces(data, write_api.THREAD_PARSE_BYTES):
        lines = data.count(b"\n", start, end) + (end == len(data) and data[-1:] != b"\n")
        good += lines
        if good > write_api.KEEP_POINTS:
            twice += lines
    return twice


def load() -> str:
    """The machine's load averages and CPU count, to print beside every figure."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


# -- tables -----------------------------------------------------------------------------

def short(frame: str) -> str:
    """``func (/long/path/kapa_core/x/y.py:12)`` as ``func (kapa_core/x/y.py:12)``."""
    name, sep, where = frame.partition(" (")
    if not sep:
        return frame
    where = where.rstrip(")")
    for marker in ("/kapa_core/", "/site-packages/", "/lib/python3"):
        at = where.find(marker)
        if at >= 0:
            where = where[at + 1:]
            break
    return f"{name} ({where})"


def table(title: str, rows: Iterable[tuple[str, float]], total: float, unit: str,
          top: int, calls: dict[str, tuple[int, float]] | None = None) -> str:
    """A Markdown table of the ``top`` rows; ``calls`` adds each function's calls and
    calls per delivered point."""
    more = " calls | calls per point |" if calls is not None else ""
    out = [f"**{title}**", "", f"| function | {unit} | share |{more}",
           "|---|---:|---:|" + ("---:|---:|" if calls is not None else "")]
    for name, value in sorted(rows, key=lambda r: -r[1])[:top]:
        shown = f"{value:,.0f}" if unit == "samples" else f"{value:.3f}"
        line = f"| `{name}` | {shown} | {100 * value / total:.1f}% |"
        if calls is not None:
            n, per_point = calls[name]
            line += f" {n:,} | {per_point:.2f} |"
        out.append(line)
    return "\n".join(out) + "\n"


#: Frames every busy stack of a thread goes through (thread start-up, the module runner,
#: trio's run loop and thread cache, outcome's wrapper): left out of the cumulative table.
PLUMBING = ("threading.py", "<frozen runpy>", "outcome/", "trio/_core/_run.py",
            "trio/_core/_thread_cache.py", "kapa_core/cli/daemon.py")


#: The same for cProfile, which also sees the coroutine plumbing as builtins.
CPROFILE_PLUMBING = ("<method 'send' of", "_contextvars.Context", "trio.run")


def collapsed_tables(path: Path, top: int) -> str:
    """Self and cumulative tables from py-spy's raw (collapsed) output."""
    self_count: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        label = [f for f in frames if f.startswith(("thread (", "process "))]
        frames = [short(f) for f in frames if not f.startswith(("thread (", "process "))]
        threads[label[-1] if label else "?"] += count
        total += count
        if not frames:
            continue
        self_count[frames[-1]] += count
        for name in set(frames):
            if not any(marker in name for marker in PLUMBING):
                cumulative[name] += count
    if not total:
        return "(no samples)\n"
    out = [f"{total:,} samples in all\n",
           table("Threads", threads.items(), total, "samples", top),
           table("Self (top of stack)", self_count.items(), total, "samples", top),
           table("Cumulative (anywhere in the stack; thread start-up, runpy, trio's run "
                 "loop and thread cache left out)", cumulative.items(), total,
                 "samples", top)]
    return "\n".join(out)


def pstats_tables(stats: pstats.Stats, top: int, deliveries: int) -> str:
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    # The trio thread waiting in epoll while a worker thread parses is not work.
    raw = {k: v for k, v in raw.items() if "select.epoll" not in k[2]
           and "_io_epoll.py" not in k[0]}
    total = sum(tt for _, _, tt, _, _ in raw.values())
    rows_self = []
    rows_cum = []
    calls: dict[str, tuple[int, float]] = {}
    all_calls = 0
    for (filename, line, name), (_, nc, tt, ct, _) in raw.items():
        label = short(f"{name} ({filename}:{line})") if filename != "~" else name
        calls[label] = (nc, nc / deliveries)
        all_calls += nc
        rows_self.append((label, tt))
        if not any(marker in label for marker in PLUMBING + CPROFILE_PLUMBING):
            rows_cum.append((label, ct))
    return "\n".join([f"{total:.3f} s of profiled CPU time in all (waits in epoll left "
                      f"out); {all_calls:,} calls, "
                      f"{all_calls / deliveries:.1f} per delivered point\n",
                      table("Self (tottime)", rows_self, total, "seconds", top, calls),
                      table("Cumulative (cumtime; trio's run loop, generator sends and "
                            "contexts left out)", rows_cum, total, "seconds", top, calls)])


# -- py-spy against the daemon ----------------------------------------------------------

def py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def define_tasks(client: httpx.Client, script: str, tasks: int) -> None:
    for i in range(tasks):
        response = client.post("/kapacitor/v1/tasks", json={
            "id": f"t{i}", "type": "stream", "status": "enabled",
            "dbrps": [{"db": DBRP[0], "rp": DBRP[1]}], "script": script})
        assert response.status_code == 200, response.text


def timed_write(client: httpx.Client, data: bytes, expected: int) -> float:
    """Seconds from the POST until every task's stream0 collected ``expected`` points."""
    started = time.perf_counter()
    response = client.post(f"/write?db={DBRP[0]}&rp={DBRP[1]}&precision=s", content=data)
    assert response.status_code == 204, response.text
    while True:
        listing = client.get("/kapacitor/v1/tasks", params={"fields": "stats"}).json()
        done = sum(t["stats"]["node-stats"].get("stream0", {}).get("collected", 0)
                   for t in listing["tasks"])
        if done >= expected:
            return time.perf_counter() - started
        time.sleep(0.005)


def profile_daemon(args: argparse.Namespace, spy: str) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    raw = out / f"{args.row}-pyspy.txt"
    with DaemonProcess(CONFIG) as daemon, httpx.Client(base_url=daemon.url,
                                                       timeout=600) as client:
        assert daemon.proc is not None
        define_tasks(client, SCRIPTS[args.row], args.tasks)
        bodies = [body(args.points, k * args.points) for k in range(args.repeat + 1)]
        print(f"{args.row}: {args.tasks} task(s) x {args.points:,} points "
              f"({len(bodies[0]):,} bytes per body, {parsed_twice(bodies[0]):,} of its "
              f"lines parsed twice by the write handler, line-protocol parser "
              f"{lineprotocol.implementation()}); {load()}")
        elapsed = timed_write(client, bodies[0], args.points * args.tasks)
        print(f"without profiler: {elapsed:.3f} s, "
              f"{args.points * args.tasks / elapsed:,.0f} deliveries/s")
        command = [spy, "record", "--pid", str(daemon.proc.pid), "--rate", str(args.rate),
                   "--function", "--threads", "--format", "raw", "-o", str(raw)]
        if args.native:
            command.append("--native")
        if not args.all_threads:
            command.append("--gil")
        spy_proc = subprocess.Popen(command, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT)
        time.sleep(1.0)  # let it attach
        seconds = 0.0
        for k in range(1, args.repeat + 1):
            seconds += timed_write(client, bodies[k], (k + 1) * args.points * args.tasks)
        spy_proc.send_signal(signal.SIGINT)
        spy_out, _ = spy_proc.communicate(timeout=120)
        n = args.repeat * args.points * args.tasks
        print(f"under py-spy ({args.rate} Hz): {args.repeat} writes in {seconds:.3f} s, "
              f"{n / seconds:,.0f} deliveries/s; peak RSS {daemon.peak_rss_kb() / 1024:.0f}"
              f" MiB; {load()}")
        if not raw.exists():
            sys.exit(f"py-spy wrote no profile:\n{spy_out.decode(errors='replace')}")
    print(f"raw profile (collapsed stacks): {raw}\n")
    print(collapsed_tables(raw, args.top))


# -- cProfile in this process -----------------------------------------------------------

def profile_in_process(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    worker_profiles: list[cProfile.Profile] = []
    real_parse = write_api._parse

    profiling = threading.Event()

    def profiled_parse(*a: Any) -> lineprotocol.ParseResult:
        if threading.current_thread() is threading.main_thread() or \
                not profiling.is_set():
            return real_parse(*a)  # the trio thread's profiler sees it already
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            return real_parse(*a)
        finally:
            profiler.disable()
            worker_profiles.append(profiler)

    write_api._parse = profiled_parse  # type: ignore[assignment]
    if args.keep_points is not None:  # what if the checking pass kept more points
        write_api.KEEP_POINTS = args.keep_points
    main_profile = cProfile.Profile()
    bodies = [body(args.points, k * args.points) for k in range(args.repeat + 1)]
    timings: list[float] = []

    async def run() -> None:
        router = StreamRouter()
        log = Logger("bench")
        master = TaskMaster(router, log)
        api = write_api.WriteAPI(router, default_rp=lambda: DBRP[1], logger=log)
        async with trio.open_nursery() as nursery:
            await nursery.start(master.serve)
            pipeline = evaluate(SCRIPTS[args.row], "stream", dbrps=[DBRP]).pipeline
            tasks = [await master.start(f"t{i}", pipeline, [DBRP])
                     for i in range(args.tasks)]
            for k, data in enumerate(bodies):
                if k == 1 and not args.timing_only:
                    profiling.set()
                    main_profile.enable()
                request = Request("POST", "/write", query={
                    "db": [DBRP[0]], "rp": [DBRP[1]], "precision": ["s"]}, body=data)
                started = time.perf_counter()
                response = await api.write(request)
                assert response.status == 204, response.body
                expected = (k + 1) * args.points
                while any(t.source.collected < expected for t in tasks):
                    await trio.sleep(0)
                timings.append(time.perf_counter() - started)
            main_profile.disable()
            nursery.cancel_scope.cancel()

    print(f"{args.row}: {args.tasks} task(s) x {args.points:,} points, in process "
          f"(KEEP_POINTS {write_api.KEEP_POINTS:,}, {parsed_twice(bodies[0]):,} lines "
          f"parsed twice); {load()}")
    trio.run(run)
    write_api._parse = real_parse
    n = args.points * args.tasks
    if args.timing_only:
        rates = sorted(n / t for t in timings[1:])
        print(f"{args.repeat} writes after the first, without profiler: median "
              f"{statistics.median(rates):,.0f} deliveries/s (min {rates[0]:,.0f}, max "
              f"{rates[-1]:,.0f})")
        return
    print(f"without profiler: {timings[0]:.3f} s, {n / timings[0]:,.0f} deliveries/s")
    profiled = sum(timings[1:])
    print(f"under cProfile: {args.repeat} writes in {profiled:.3f} s, "
          f"{args.repeat * n / profiled:,.0f} deliveries/s (the profiler's overhead "
          f"inflates calls)\n")
    stats = pstats.Stats(main_profile)
    for profiler in worker_profiles:
        stats.add(profiler)
    path = out / f"{args.row}-cprofile.pstats"
    stats.dump_stats(str(path))
    print(f"pstats file: {path}\n")
    print(pstats_tables(stats, args.top, args.repeat * n))


# -- memory -----------------------------------------------------------------------------

def memory_lines(points: int, series: int, start: int, count: int) -> bytes:
    """Lines ``start`` .. ``start + count`` of the memory case: host ``i % series``, one
    point every 50 microseconds (all within one minute for a million points)."""
    base = 1_600_000_000_000_000_000
    step = 59_000_000_000 // max(points, 1)
    return "\n".join(f"m,host=host{i % series} v={i * 0.5} {base + i * step}"
                     for i in range(start, start + count)).encode()


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Accounting:
    """Bytes of each kind of object reachable from the window buffers, each object
    counted once (``sys.getsizeof``), and how many distinct objects of each kind."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.size: Counter[str] = Counter()
        self.count: Counter[str] = Counter()

    def add(self, kind: str, obj: object) -> None:
        if id(obj) in self.seen:
            return
        self.seen.add(id(obj))
        self.size[kind] += sys.getsizeof(obj)
        self.count[kind] += 1


def account(window_node: Any) -> tuple[Accounting, int]:
    acc = Accounting()
    buffered = 0
    acc.add("windows dict (node.windows)", window_node.windows)
    for group, window in window_node.windows.items():
        acc.add("group ID keys of node.windows", group)
        acc.add("per-series window object (_TimeWindow)", window)
        acc.add("per-series window tags dict", window.tags)
        acc.add("ring buffer (list, incl. spare capacity)", window.window)
        if getattr(window, "values", None) is not None:  # compact: two arrays
            buffered += window.size
            acc.add("compact ring: times (int64 array, incl. spare capacity)",
                    window.times)
            acc.add("compact ring: values (float64 array, incl. spare capacity)",
                    window.values)
            acc.add("compact ring: the series' tags dict", window.ptags)
            continue
        for p in window.window:
            if p is None:
                continue
            buffered += 1
            acc.add("Point object (groupBy's copy)", p)
            acc.add("Point.group: group ID string", p.group)
            acc.add("Point.dims tuple", p.dims)
            acc.add("Point.name string", p.name)
            acc.add("Point.database / retention_policy strings", p.database)
            acc.add("Point.database / retention_policy strings", p.retention_policy)
            acc.add("Point.time int", p.time)
            acc.add("tags dict", p.tags)
            for k, v in p.tags.items():
                acc.add("tag key strings", k)
                acc.add("tag value strings", v)
            acc.add("fields dict", p.fields)
            for k, v in p.fields.items():
                acc.add("field key strings", k)
                acc.add("field values (float)", v)
    return acc, buffered


def memory_in_process(args: argparse.Namespace) -> None:
    pipeline = evaluate(MEMORY_SCRIPT, "stream", dbrps=[DBRP]).pipeline
    nodes = build_nodes(pipeline, Logger("bench"))
    source = nodes[0]
    window_node: Any = next(n for n in nodes if type(n).__name__ == "WindowNode")
    print(f"memory: {args.points:,} points over {args.series:,} series in "
          f"{MEMORY_SCRIPT}; {load()}")
    gc.collect()
    if args.tracemalloc:
        tracemalloc.start(args.frames)
    before_rss = rss_kb()
    traced_before = tracemalloc.get_traced_memory()[0] if args.tracemalloc else 0
    snapshot_before = tracemalloc.take_snapshot() if args.tracemalloc else None
    piece = 50_000  # lines per parse, about what the write handler parses at a time
    shared_tags: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
    started = time.perf_counter()
    for start in range(0, args.points, piece):
        data = memory_lines(args.points, args.series, start, min(piece, args.points - start))
        result = lineprotocol.parse(data, precision="n", database=DBRP[0],
                                    retention_policy=DBRP[1])
        assert not result.errors, result.errors[:3]
        if args.intern_tags:  # what if the parser shared one tags dict per series
            for p in result.points:
                key = tuple(p.tags.items())
                p.tags = shared_tags.setdefault(key, p.tags)
        for at in range(0, len(result.points), CHUNK):  # as RunningTask._consume
            chunk = result.points[at:at + CHUNK]
            for child in source.children:
                child.receive_points(chunk)
        del data, result
    elapsed = time.perf_counter() - started
    gc.collect()
    after_rss = rss_kb()
    traced = tracemalloc.get_traced_memory()[0] - traced_before if args.tracemalloc else 0
    snapshot = tracemalloc.take_snapshot() if args.tracemalloc else None
    acc, buffered = account(window_node)
    print(f"routed in {elapsed:.1f} s; buffered points: {buffered:,} in "
          f"{len(window_node.windows):,} windows")
    grown = (after_rss - before_rss) * 1024
    print(f"RSS {before_rss / 1024:.0f} -> {after_rss / 1024:.0f} MiB: "
          f"+{grown / 2**20:.0f} MiB, {grown / max(buffered, 1):.0f} bytes per buffered "
          "point" + (" (tracemalloc's bookkeeping included)" if args.tracemalloc else ""))
    total = sum(acc.size.values())
    out = [f"\nObjects reachable from the window buffers (sys.getsizeof, each counted "
           f"once): {total / 2**20:.1f} MiB, {total / max(buffered, 1):.1f} bytes per "
           "point\n", "| object | distinct objects | bytes | bytes per point | share |",
           "|---|---:|---:|---:|---:|"]
    for kind, size in sorted(acc.size.items(), key=lambda kv: -kv[1]):
        out.append(f"| {kind} | {acc.count[kind]:,} | {size:,} | "
                   f"{size / max(buffered, 1):.1f} | {100 * size / total:.1f}% |")
    out.append(f"| **all** | {sum(acc.count.values()):,} | {total:,} | "
               f"{total / max(buffered, 1):.1f} | 100% |")
    print("\n".join(out))
    print(f"\nwhat the data needs: 16 bytes per point (an int64 time and a float64 value) "
          f"= {16 * buffered / 2**20:.1f} MiB")
    if snapshot is not None and snapshot_before is not None:
        print(f"\ntracemalloc: {traced / 2**20:.1f} MiB still allocated, "
              f"{traced / max(buffered, 1):.1f} bytes per buffered point; by allocation "
              "site:\n")
        print("| allocated at | blocks | bytes per point | share |\n|---|---:|---:|---:|")
        diffs = snapshot.compare_to(snapshot_before, "lineno")
        for diff in diffs[:args.top]:
            frame = diff.traceback[0]
            where = short(f"x ({frame.filename}:{frame.lineno})").partition(" (")[2][:-1]
            print(f"| `{where}` | {diff.count_diff:,} | "
                  f"{diff.size_diff / max(buffered, 1):.1f} | "
                  f"{100 * diff.size_diff / max(traced, 1):.1f}% |")
    del nodes, source, window_node


def memory_daemon(args: argparse.Namespace) -> None:
    config = {"http": {"log-enabled": False, "max-body-size": 0},
              "logging": {"level": "WARN"}}
    with DaemonProcess(config) as daemon, httpx.Client(base_url=daemon.url,
                                                       timeout=600) as client:
        assert daemon.proc is not None
        pid = daemon.proc.pid

        def rss() -> int:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
            return 0

        define_tasks(client, MEMORY_SCRIPT, 1)
        time.sleep(0.5)
        before = rss()
        piece = 100_000
        for start in range(0, args.points, piece):
            data = memory_lines(args.points, args.series, start,
                                min(piece, args.points - start))
            response = client.post(f"/write?db={DBRP[0]}&rp={DBRP[1]}", content=data)
            assert response.status_code == 204, response.text
        while True:
            stats = client.get("/kapacitor/v1/tasks/t0").json()["stats"]["node-stats"]
            window = next(v for k, v in stats.items() if k.startswith("window"))
            if window["collected"] >= args.points:
                break
            time.sleep(0.05)
        after = rss()
        print(f"daemon: RSS {before / 1024:.0f} -> {after / 1024:.0f} MiB with "
              f"{args.points:,} points buffered (+{(after - before) / 1024:.0f} MiB, "
              f"{(after - before) * 1024 / args.points:.0f} bytes per point); peak "
              f"{daemon.peak_rss_kb() / 1024:.0f} MiB; {load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("row", choices=["ingest", "window", "memory"])
    parser.add_argument("--profiler", choices=["py-spy", "cprofile"],
                        help="default: py-spy when installed, else cprofile")
    parser.add_argument("--tasks", type=int, help="tasks (default: 1 ingest, 10 window)")
    parser.add_argument("--points", type=int,
                        help="points per write (ingest 200000, window 50000) or buffered "
                             "(memory 1000000)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="profiled writes after the unprofiled one (default 5)")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples/s (200)")
    parser.add_argument("--native", action="store_true", help="py-spy --native")
    parser.add_argument("--all-threads", action="store_true",
                        help="py-spy: sample every thread py-spy takes as active, not "
                             "only the one holding the GIL (waits in epoll and idle "
                             "worker threads then show up too)")
    parser.add_argument("--top", type=int, default=20, help="rows per table (20)")
    parser.add_argument("--out", default="/tmp/kapa-profile",
                        help="where raw profiles go (default /tmp/kapa-profile)")
    parser.add_argument("--keep-points", type=int,
                        help="cprofile: the write handler's KEEP_POINTS (default as in "
                             "kapa_core/http/write_api.py); a large value parses no line "
                             "twice")
    parser.add_argument("--timing-only", action="store_true",
                        help="cprofile: no profiler, only the median rate of the writes "
                             "after the first (to try a setting such as --keep-points)")
    parser.add_argument("--series", type=int, default=10_000, help="memory: series")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="memory: also list allocation sites")
    parser.add_argument("--frames", type=int, default=1, help="tracemalloc frames (1)")
    parser.add_argument("--intern-tags", action="store_true",
                        help="memory: share one tags dict per series (a what-if)")
    parser.add_argument("--daemon", action="store_true",
                        help="memory: measure a real daemon's RSS instead")
    args = parser.parse_args()
    if args.row == "memory":
        args.points = args.points or 1_000_000
        (memory_daemon if args.daemon else memory_in_process)(args)
        return
    args.tasks = args.tasks or (1 if args.row == "ingest" else 10)
    args.points = args.points or (200_000 if args.row == "ingest" else 50_000)
    spy = py_spy()
    profiler = args.profiler or ("py-spy" if spy else "cprofile")
    if profiler == "py-spy":
        if spy is None:
            sys.exit("py-spy is not installed (pip install py-spy), or use --profiler "
                     "cprofile")
        profile_daemon(args, spy)
    else:
        profile_in_process(args)


if __name__ == "__main__":
    main()

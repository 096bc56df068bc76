"""Fuzz soak: the fuzz suite's targets, for minutes or hours, without pytest.

    python benchmarks/fuzz_soak.py --minutes 30
    python benchmarks/fuzz_soak.py --inputs 1000000 --targets 'lineprotocol.*,tickscript.*'
    python benchmarks/fuzz_soak.py --targets api.query,api.task --daemon-url http://127.0.0.1:9092

Targets are those of ``tests/fuzz_targets.py`` (``--list`` prints them):

* parsers, run in process on ``--jobs`` worker processes (one per core by default): line
  protocol, TICKscript (parse + evaluate, lambdas), Go templates, the list endpoints'
  glob patterns and paging, the JSON body readers and JSON Patch. An input fails when it
  raises anything but the documented errors, or runs past ``--watchdog`` seconds;
* ``api.*``: the JSON bodies of every endpoint, query and path parameters, config
  overrides, service tests, users, line protocol through /write and TICKscript through
  task create, sent by ``--clients`` concurrent keep-alive clients to a real daemon
  (its own ``kapa_core.testing.DaemonProcess`` unless ``--daemon-url``). An input fails
  on a 5xx, a connection closed without an answer, an answer slower than 10 s, or a
  ``/ping`` on a new connection (every ``--ping-every`` inputs) slower than 1 s. A daemon
  of its own that dies is started again, its log is checked for exceptions.

Inputs come from ``random.Random`` drawing the same schemas the hypothesis tests use (no
shrinking, but ~100x faster). Targets run one after another; ``--minutes`` is shared
between them, ``--inputs`` caps each (whichever comes first). Every ~10 s a progress line;
at the end a table per target (inputs, failures, inputs/s, the slowest input) and the
distinct failures. The first ``--keep`` failing inputs of each kind are written to
``--out`` (a report, and the raw request body). Exit status 1 when anything failed.
"""

from __future__ import annotations

import argparse
import fnmatch
import multiprocessing as mp
import os
import queue
import random
import re
import signal
import socket
import sys
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.fuzz_targets import (
    DAEMON_ARGS,
    DAEMON_CONFIG,
    HTTP_TARGETS,
    PARSER_TARGETS,
    Connection,
    Ctx,
    Finding,
    RandomGen,
    discover,
    ping,
    run_input,
    setup_calls,
    short,
)

BLOCK = 1000  # inputs per reseed: input i is reproducible from (seed, target, worker, i)
PROGRESS_S = 10.0
# Exceptions that reached the server without a 5xx to show for it ("request failed" lines
# come with a 500, counted already).
LOG_FAILURE = ('msg="connection failed"', 'msg="cannot encode')


# -- results ----------------------------------------------------------------------------------

@dataclass
class Stats:
    target: str
    tried: int = 0
    failures: int = 0
    seconds: float = 0.0
    slowest: float = 0.0
    slowest_input: str = ""
    kinds: Counter[str] = field(default_factory=Counter)
    saved: list[str] = field(default_factory=list)
    extra: str = ""

    def add_slow(self, seconds: float, describe: Any) -> None:
        if seconds > self.slowest:
            self.slowest = seconds
            self.slowest_input = describe() if callable(describe) else describe


class Saver:
    """Writes the first ``keep`` failing inputs of each kind under ``out/<target>/``."""

    def __init__(self, out: Path, keep: int) -> None:
        self.out, self.keep = out, keep
        self.per_kind: Counter[tuple[str, str]] = Counter()
        self.lock = threading.Lock()

    def save(self, stats: Stats, kind: str, report: str, body: bytes | None = None,
             *, count: bool = True) -> None:
        with self.lock:
            if count:
                stats.failures += 1
                stats.kinds[kind] += 1
            self.per_kind[stats.target, kind] += 1
            n = self.per_kind[stats.target, kind]
            if n > self.keep:
                return
            folder = self.out / stats.target.replace("/", "_")
            folder.mkdir(parents=True, exist_ok=True)
            index = sum(1 for _ in folder.glob("*.txt")) + 1
            path = folder / f"{index:03d}.txt"
            path.write_text(f"{kind}\n\n{report}\n", encoding="utf-8", errors="backslashreplace")
            if body:
                path.with_suffix(".body").write_bytes(body)
            stats.saved.append(str(path))


# -- parsers, in worker processes ---------------------------------------------------------------

class Hang(Exception):
    pass


def _on_alarm(signum: int, frame: Any) -> None:
    raise Hang("watchdog")


def _block_rng(seed: str, target: str, worker: int, block: int) -> random.Random:
    return random.Random(f"{seed}:{target}:{worker}:{block}")


def regenerate(seed: str, target: str, worker: int, index: int) -> Any:
    """Input ``index`` of ``worker`` again, from its block's seed."""
    schema = PARSER_TARGETS[target].schema
    rng = _block_rng(seed, target, worker, index // BLOCK)
    for _ in range(index % BLOCK):
        schema.gen(rng)
    return schema.gen(rng)


def signature(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {str(exc)[:90]}{where}"


def parser_worker(target: str, seed: str, worker: int, quota: int, deadline: float,
                  watchdog: float, keep: int, tried: Any, failed: Any,
                  results: mp.Queue) -> None:
    """Run ``target`` until ``quota`` inputs or ``deadline``; report on ``results``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, _on_alarm)
    spec = PARSER_TARGETS[target]
    gen, run = spec.schema.gen, spec.run
    rng = _block_rng(seed, target, worker, 0)
    kinds: Counter[str] = Counter()
    samples: list[tuple[str, str, int]] = []
    slowest, slowest_input = 0.0, ""
    perf = time.perf_counter
    setitimer, real = signal.setitimer, signal.ITIMER_REAL
    i = 0
    started = perf()
    while i < quota:
        if i % BLOCK == 0:
            if i and time.time() > deadline:
                break
            rng = _block_rng(seed, target, worker, i // BLOCK)
        tried.value = i  # the input now running, for the parent's stall check
        value = gen(rng)
        t0 = perf()
        setitimer(real, watchdog)
        try:
            run(value)
        except BaseException as exc:  # a failure is whatever escapes
            setitimer(real, 0)
            if isinstance(exc, KeyboardInterrupt):
                raise
            kind = "hang (watchdog)" if isinstance(exc, Hang) else signature(exc)
            kinds[kind] += 1
            failed.value += 1
            if kinds[kind] <= keep:
                samples.append((kind, f"input #{i} of worker {worker} (seed {seed!r}):\n"
                                f"{short(value, 4000)}\n\n" + "".join(
                                    traceback.format_exception(exc)[-12:]), i))
        else:
            setitimer(real, 0)
        spent = perf() - t0
        if spent > slowest:
            slowest, slowest_input = spent, short(value, 200)
        i += 1
    tried.value = i
    results.put({"worker": worker, "tried": i, "seconds": perf() - started,
                 "kinds": dict(kinds), "samples": samples, "slowest": slowest,
                 "slowest_input": slowest_input})


def run_parser_target(target: str, args: argparse.Namespace, deadline: float,
                      saver: Saver, log: Any) -> Stats:
    stats = Stats(target)
    ctx = mp.get_context("fork")
    results: mp.Queue = ctx.Queue()
    jobs = max(1, args.jobs)
    quota = -(-args.inputs // jobs) if args.inputs else 2**62
    workers: dict[int, tuple[Any, Any, Any]] = {}
    started = time.time()

    def spawn(w: int, start_quota: int) -> None:
        tried, failed = ctx.Value("q", 0, lock=False), ctx.Value("q", 0, lock=False)
        proc = ctx.Process(target=parser_worker, daemon=True, args=(
            target, args.seed, w, start_quota, deadline, args.watchdog, args.keep, tried,
            failed, results))
        proc.start()
        workers[w] = (proc, tried, failed)

    for w in range(jobs):
        spawn(w, quota)
    reports: dict[int, dict[str, Any]] = {}
    last_seen = {w: (0, time.time()) for w in workers}
    next_progress = time.time() + PROGRESS_S
    while len(reports) < len(workers):
        try:
            report = results.get(timeout=0.5)
            reports[report["worker"]] = report
        except queue.Empty:
            pass
        now = time.time()
        for w, (proc, tried, _failed) in list(workers.items()):
            if w in reports:
                continue
            if tried.value != last_seen[w][0]:
                last_seen[w] = (tried.value, now)
            elif now - last_seen[w][1] > args.stall and proc.is_alive():
                # Stuck where the watchdog cannot interrupt (C code): the input again.
                proc.kill()
                proc.join()
                index = tried.value
                value = regenerate(args.seed, target, w, index)
                saver.save(stats, "stall (no progress, the watchdog not honoured)",
                           f"input #{index} of worker {w} (seed {args.seed!r}):\n"
                           f"{short(value, 4000)}")
                reports[w] = {"worker": w, "tried": index, "seconds": now - started,
                              "kinds": {}, "samples": [], "slowest": args.stall,
                              "slowest_input": short(value, 200)}
            elif not proc.is_alive() and w not in reports:
                proc.join()
                try:
                    reports[w] = results.get(timeout=2)
                    continue
                except queue.Empty:
                    pass
                saver.save(stats, f"worker died (exit {proc.exitcode})",
                           f"worker {w} died near input #{tried.value}")
                reports[w] = {"worker": w, "tried": tried.value, "seconds": now - started,
                              "kinds": {}, "samples": [], "slowest": 0, "slowest_input": ""}
        if now >= next_progress:
            next_progress = now + PROGRESS_S
            done = sum(t.value for _p, t, _f in workers.values())
            bad = sum(f.value for _p, _t, f in workers.values())
            log(f"{target}: {done} inputs, {bad} failures, "
                f"{done / max(now - started, 1e-9):.0f}/s")
    for proc, _t, _f in workers.values():
        proc.join(5)
    for report in reports.values():
        stats.tried += report["tried"]
        stats.add_slow(report["slowest"], report["slowest_input"])
        for kind, count in report["kinds"].items():
            stats.kinds[kind] += count
            stats.failures += count
        for kind, text, _index in report["samples"]:
            saver.save(stats, kind, text, count=False)
    stats.seconds = time.time() - started
    return stats


# -- the HTTP API, against a daemon -------------------------------------------------------------

class Daemon:
    """The daemon the HTTP targets hit: given (``--daemon-url``) or our own."""

    def __init__(self, url: str | None, log: Any) -> None:
        self.external = bool(url)
        self.log = log
        self.process: Any = None
        self.lock = threading.Lock()
        self.generation = 0
        self.restarts = 0
        self.log_seen = 0
        self.log_failures: list[str] = []
        self.gone = False
        if url:
            self._address(url)
        else:
            self.start()
        conn = Connection(self.host, self.port)
        run_input(conn, setup_calls())
        self.ctx = discover(conn)
        conn.close()

    def _address(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 9092

    def start(self) -> None:
        from kapa_core.testing import DaemonProcess
        config = {**DAEMON_CONFIG, "logging": {"level": "WARN"}}
        self.process = DaemonProcess(config, args=DAEMON_ARGS)
        self.process.start()
        self._address(self.process.url)
        self.log_seen = 0

    def alive(self) -> bool:
        if self.external:  # someone else's: does it still accept connections?
            try:
                socket.create_connection((self.host, self.port), timeout=5).close()
            except OSError:
                return False
            return True
        return self.process.proc is not None and self.process.proc.poll() is None

    def restart_if_dead(self, generation: int) -> bool:
        """Start a daemon of our own again after it died; False if it cannot be."""
        with self.lock:
            if generation != self.generation:
                return True  # another client restarted it already
            if self.alive():
                return True
            if self.external:
                self.log(f"the daemon at {self.host}:{self.port} is gone; the api targets stop")
                self.gone = True
                return False
            self.collect_log()
            code = self.process.proc.poll()
            self.log(f"the daemon died (exit {code}); starting it again")
            self.process.close()
            self.start()
            conn = Connection(self.host, self.port)
            run_input(conn, setup_calls())
            conn.close()
            self.restarts += 1
            self.generation += 1
            return True

    def collect_log(self) -> list[str]:
        """New log lines that show an exception reaching the server."""
        if self.external or self.process is None:
            return []
        lines = self.process.log().splitlines()
        fresh, self.log_seen = lines[self.log_seen:], len(lines)
        bad = [line for line in fresh if any(mark in line for mark in LOG_FAILURE)]
        self.log_failures += bad
        return bad

    def close(self) -> None:
        if self.process is not None:
            self.process.close()


def run_http_target(target: str, args: argparse.Namespace, deadline: float, daemon: Daemon,
                    saver: Saver, log: Any) -> Stats:
    stats = Stats(target)
    make_steps = HTTP_TARGETS[target]
    lock = threading.Lock()
    state = {"tried": 0, "stop": False, "since_ping": 0, "last": {}}
    quota = args.inputs or 2**62
    started = time.time()
    token = f"{random.Random(f'{args.seed}:{target}').randrange(16**4):04x}"

    def client(c: int) -> None:
        ctx = Ctx(daemon.ctx.config_keys, daemon.ctx.services, prefix=f"fz{token}c{c}_",
                  log_level="WARN" if not daemon.external else "INFO")
        generation = daemon.generation
        conn = Connection(daemon.host, daemon.port)
        gen = RandomGen(random.Random(f"{args.seed}:{target}:{c}"))
        while True:
            with lock:
                if state["stop"] or state["tried"] >= quota:
                    break
                state["tried"] += 1
                state["since_ping"] += 1
            if generation != daemon.generation:
                conn.close()
                conn, generation = Connection(daemon.host, daemon.port), daemon.generation
            t0 = time.perf_counter()
            calls: list[Any] = []
            steps = make_steps(gen, ctx)
            try:
                calls = run_input(conn, _recording(steps, calls))
            except Finding as finding:
                conn.close()
                body = finding.calls[-1].body if finding.calls else None
                saver.save(stats, finding.signature, finding.report(2000), body)
                if finding.kind in ("dropped", "refused", "hang") and not daemon.alive():
                    if not daemon.restart_if_dead(generation):
                        state["stop"] = True
                        break
                    saver.save(stats, "the daemon died", finding.report(2000), body)
            except OSError as exc:  # e.g. connection refused while connecting
                conn.close()
                saver.save(stats, f"connect: {exc}", f"{exc}\nlast input: {calls[-1:]}")
                if not daemon.restart_if_dead(generation):
                    state["stop"] = True
                    break
            spent = time.perf_counter() - t0
            if calls:
                with lock:
                    state["last"][c] = calls
                    if spent > stats.slowest:
                        stats.add_slow(spent, lambda calls=calls: " | ".join(
                            call.describe(120).replace("\n", " ") for call in calls))
        conn.close()

    def pinger() -> None:
        while not state["stop"]:
            time.sleep(0.02)
            if state["since_ping"] < args.ping_every and not state["stop"]:
                continue
            state["since_ping"] = 0
            generation = daemon.generation
            try:
                ping(daemon.host, daemon.port)
            except Finding as finding:
                with lock:
                    recent = "\n".join(f"client {c}: " + " | ".join(
                        call.describe(300) for call in calls)
                        for c, calls in state["last"].items())
                if generation == daemon.generation and daemon.alive():
                    saver.save(stats, f"ping: {finding.detail}",
                               f"{finding.detail}\nthe inputs in flight or just done:\n{recent}")

    threads = [threading.Thread(target=client, args=(c,), daemon=True)
               for c in range(args.clients)]
    ping_thread = threading.Thread(target=pinger, daemon=True)
    for thread in [*threads, ping_thread]:
        thread.start()
    next_progress = time.time() + PROGRESS_S
    while any(t.is_alive() for t in threads):
        time.sleep(0.2)
        now = time.time()
        if now >= deadline:
            state["stop"] = True
        if now >= next_progress:
            next_progress = now + PROGRESS_S
            for line in daemon.collect_log():
                saver.save(stats, "logged: " + _log_err(line), line)
            log(f"{target}: {state['tried']} inputs, {stats.failures} failures, "
                f"{state['tried'] / max(now - started, 1e-9):.0f}/s")
    state["stop"] = True
    for thread in [*threads, ping_thread]:
        thread.join(30)
    try:
        ping(daemon.host, daemon.port)
    except Finding as finding:
        saver.save(stats, f"ping after the target: {finding.detail}", finding.report())
    for line in daemon.collect_log():
        saver.save(stats, "logged: " + _log_err(line), line)
    stats.tried = min(state["tried"], quota)
    stats.seconds = time.time() - started
    return stats


def _recording(steps: Any, calls: list[Any]) -> Any:
    """Pass ``steps`` through, keeping each call (for the slowest-input report)."""
    answer = None
    try:
        call = next(steps)
        while True:
            calls.append(call)
            answer = yield call
            call = steps.send(answer)
    except StopIteration:
        return


def _log_err(line: str) -> str:
    marker = line.find(" msg=")
    text = line[marker + 1:] if marker >= 0 else line
    text = re.sub(r"(client|request_id|status)=\S+ ", "", text)
    return re.sub(r"\d+", "N", text)[:140]


# -- main ------------------------------------------------------------------------------------------

def choose(patterns: str) -> list[str]:
    names = [*PARSER_TARGETS, *HTTP_TARGETS]
    if patterns in ("", "all"):
        return names
    groups = {"parsers": list(PARSER_TARGETS), "http": list(HTTP_TARGETS)}
    chosen: list[str] = []
    for pattern in patterns.split(","):
        pattern = pattern.strip()
        matched = groups.get(pattern) or [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not matched:
            raise SystemExit(f"no target matches {pattern!r}; --list shows them")
        chosen += [n for n in matched if n not in chosen]
    return chosen


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Targets: " + ", ".join([*PARSER_TARGETS, *HTTP_TARGETS]),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=None,
                        help="total wall time, shared by the targets (default 5, or no "
                             "limit with --inputs)")
    parser.add_argument("--inputs", type=int, default=0,
                        help="stop each target after this many inputs")
    parser.add_argument("--targets", default="all",
                        help="comma list of targets or globs ('parsers', 'http', "
                             "'api.*', 'lineprotocol.bytes'; default all)")
    parser.add_argument("--seed", default=str(int(time.time())),
                        help="random seed (default: the time); inputs are reproducible")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="worker processes for the parser targets (default: cores)")
    parser.add_argument("--clients", type=int, default=4,
                        help="concurrent keep-alive clients for the api targets")
    parser.add_argument("--daemon-url", default=None,
                        help="fuzz this running daemon instead of starting one (it should "
                             "have [auth] enabled for the users endpoints, and a deny "
                             "list for outgoing connections)")
    parser.add_argument("--ping-every", type=int, default=50,
                        help="ping on a new connection every K api inputs (default 50)")
    parser.add_argument("--watchdog", type=float, default=5.0,
                        help="seconds one parser input may run (default 5)")
    parser.add_argument("--stall", type=float, default=60.0,
                        help="seconds without progress before a parser worker is killed")
    parser.add_argument("--out", default="fuzz-failures",
                        help="directory for failing inputs (default ./fuzz-failures)")
    parser.add_argument("--keep", type=int, default=5,
                        help="failing inputs kept per target and kind (default 5)")
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    args = parser.parse_args()
    if args.list:
        for name in PARSER_TARGETS:
            print(f"{name:24} parser, in process")
        for name, fn in HTTP_TARGETS.items():
            print(f"{name:24} {(fn.__doc__ or 'HTTP').strip().splitlines()[0]}")
        return 0
    targets = choose(args.targets)
    signal.signal(signal.SIGTERM, _stop)  # like Ctrl-C: report, stop our daemon, exit
    minutes = args.minutes if args.minutes is not None else (None if args.inputs else 5.0)
    began = time.time()
    end = began + minutes * 60 if minutes else float("inf")

    def log(text: str) -> None:
        print(f"[{time.time() - began:7.0f}s] {text}", flush=True)

    saver = Saver(Path(args.out), args.keep)
    log(f"targets: {', '.join(targets)}; seed {args.seed!r}; "
        f"{f'{minutes:g} minutes' if minutes else 'no time limit'}"
        f"{f', {args.inputs} inputs each' if args.inputs else ''}")
    results: list[Stats] = []
    daemon: Daemon | None = None
    try:
        for n, target in enumerate(targets):
            remaining = len(targets) - n
            deadline = (time.time() + (end - time.time()) / remaining if minutes
                        else float("inf"))
            if target in PARSER_TARGETS:
                stats = run_parser_target(target, args, deadline, saver, log)
            else:
                if daemon is not None and daemon.gone:
                    log(f"{target}: skipped, the daemon is gone")
                    continue
                if daemon is None:
                    daemon = Daemon(args.daemon_url, log)
                    log(f"daemon at {daemon.host}:{daemon.port}"
                        f"{' (ours)' if not daemon.external else ''}")
                stats = run_http_target(target, args, deadline, daemon, saver, log)
            results.append(stats)
            log(f"{target}: done, {stats.tried} inputs, {stats.failures} failures, "
                f"{stats.tried / max(stats.seconds, 1e-9):.0f}/s")
    except KeyboardInterrupt:
        log("interrupted")
    finally:
        if daemon is not None:
            if not daemon.external and not daemon.alive():
                log("the daemon is dead at the end")
            daemon.close()
    report(results, daemon, saver, args)
    return 1 if any(s.failures for s in results) else 0


def report(results: list[Stats], daemon: Daemon | None, saver: Saver,
           args: argparse.Namespace) -> None:
    print()
    print(f"{'target':22} {'inputs':>10} {'failures':>8} {'inputs/s':>9} {'slowest':>8}  "
          "slowest input")
    for s in results:
        rate = s.tried / max(s.seconds, 1e-9)
        print(f"{s.target:22} {s.tried:>10} {s.failures:>8} {rate:>9.0f} "
              f"{s.slowest:>7.3f}s  {s.slowest_input[:100]}")
    total = sum(s.tried for s in results)
    print(f"{'total':22} {total:>10} {sum(s.failures for s in results):>8}")
    if daemon is not None and daemon.restarts:
        print(f"\nthe daemon died and was started again {daemon.restarts} time(s)")
    for s in results:
        if s.kinds:
            print(f"\n{s.target}: {len(s.kinds)} distinct failure(s)")
            for kind, count in s.kinds.most_common(20):
                print(f"  {count:>7} x {kind}")
    saved = [p for s in results for p in s.saved]
    if saved:
        print(f"\nfailing inputs saved under {args.out}/ ({len(saved)} files), e.g. {saved[0]}")


if __name__ == "__main__":
    sys.exit(main())

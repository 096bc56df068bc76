"""Run Kapacitor's barrier scenarios and its stepped union scenario on the real Kapacitor
and on kapa-core, in real time, and report where what they produce differs.

    python -m tests.compat.scenarios_barrier --kapacitord BIN --source DIR [NAME_GLOB...]

DIR is a checkout of Kapacitor at v1.5.7. Nothing of the scenarios is stored here: the
scripts are read from its integrations/streamer_test.go, and so is each scenario's plan.

``TestStream_Barrier_*`` feed points through a Go channel with a clock near "now" and
count (and check) what an ``httpPost`` receives, so they depend on the wall clock. Here
each is translated as follows:

- the script is the scenario's, its ``httpPost`` pointed at a recorder;
- its N points (``make([][]interface{}, N)``) are at ``zero + i`` seconds, where
  ``zero`` is now (whole seconds) moved back as the scenario moves its clock
  (``time.Now().UTC().Add(-22 * time.Second)``); the values are fixed floats of our own;
- the scenario's actions are done in its order and in real time: each
  ``dataChannel <- point`` loop is one ``/write`` of all the points, each
  ``time.Sleep(n * time.Second)`` a pause of n seconds, ``close(dataChannel)`` the end:
  the task is deleted (right away after a pause, after half a second after a write so
  that what the write caused reaches the recorder, as the Go test's drain does).

Tolerance: every time stamp in a posted body is written as its offset from ``zero``
(``zero+10s``), so that runs at different wall-clock times compare; everything else is
compared exactly, the number of posts included. The barrier's own times (the last point
plus ``idle``, or the wall clock for ``period``) never appear in a body (a window's rows
carry its points' times); they only decide whether a window is emitted before the end,
and the scenarios' pauses leave at least half a second either way.

``TestStream_Union_Stepped`` moves a replay clock in steps and reads the ``httpOut``
after each: here the points of its .srpl (moved to 1971-01-01) up to each step's time
are written, and the ``httpOut`` read once it is stable. Kapacitor's own test compares
the series ignoring their order (a union's parents race into it), so a difference in
series order alone is reported as such.

Each scenario is run ``--runs`` times (default 2) on each daemon, both daemons at the
same time; a scenario whose answers change between runs is reported as unstable.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.compat.oracle import Kapacitor
from tests.compat.runner import Recorder
from tests.compat.scenarios import EPOCH_1971, FUNC, SCRIPT, arg_parser, script_text, srpl_points

NAMES = ("TestStream_Barrier_*", "TestStream_Union_Stepped")
_COUNT = re.compile(r"testValues := make\(\[\]\[\]interface\{\}, (\d+)\)")
_BACK = re.compile(r"clock\.New\(time\.Now\(\)\.UTC\(\)\.Add\(-(\d+) \* time\.Second\)\)")
_ACTION = re.compile(r"dataChannel <- point|time\.Sleep\((\d+) \* time\.Second\)|"
                     r"close\(dataChannel\)")
_EXPECT = re.compile(r"rc != (\d+)")
_STEP = re.compile(r"\bt:\s*(?:(\d+) \* )?time\.Second,")
#: How far apart (seconds) the same post may arrive from the two daemons.
TIMING = 0.5
_STAMP = re.compile(r'"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)"')


@dataclass
class Scenario:
    name: str
    script: str
    db: str = "dbname"
    rp: str = "rpname"
    count: int = 0                  # barrier: how many points
    back: int = 0                   # barrier: zero is now minus this many seconds
    actions: list[tuple[str, int]] = field(default_factory=list)
    go_posts: int | None = None     # barrier: how many posts the Go test expects
    steps: list[int] = field(default_factory=list)  # union: step times in seconds
    points: list[tuple[int, str]] = field(default_factory=list)  # union: (second, line)


def scenarios(source: Path) -> list[Scenario]:
    text = (source / "integrations" / "streamer_test.go").read_text()
    found = []
    for name, body in FUNC.findall(text):
        if not any(fnmatch.fnmatch(name, n) for n in NAMES):
            continue
        literal = SCRIPT.search(body)
        script = script_text(literal.group(1)) if literal else None
        if script is None:
            print(f"{name}: script not read, left out", file=sys.stderr)
            continue
        s = Scenario(name, script.replace("\t", "    "))
        if name.startswith("TestStream_Barrier_"):
            count, back = _COUNT.search(body), _BACK.search(body)
            s.count = int(count.group(1)) if count else 0
            s.back = int(back.group(1)) if back else 0
            for m in _ACTION.finditer(body):
                if m.group(0).startswith("dataChannel"):
                    s.actions.append(("write", 0))
                elif m.group(1):
                    s.actions.append(("sleep", int(m.group(1))))
                else:
                    s.actions.append(("close", 0))
            expect = _EXPECT.search(body)
            s.go_posts = int(expect.group(1)) if expect else None
        else:
            data = srpl_points(source / "integrations" / "testdata" / f"{name}.srpl")
            if data is None:
                print(f"{name}: no points, left out", file=sys.stderr)
                continue
            s.db, s.rp, lines = data
            for line in lines.splitlines():
                s.points.append((int(line.rpartition(" ")[2]) - EPOCH_1971, line))
            s.steps = [int(m.group(1) or 1) for m in _STEP.finditer(body)]
        found.append(s)
    return found


def relative(body: str, zero: int) -> str:
    """The body with each RFC 3339 time stamp written as its offset from ``zero``."""
    def offset(m: re.Match[str]) -> str:
        stamp = m.group(1)
        whole, _, frac = stamp[:-1].partition(".")
        t = dt.datetime.fromisoformat(whole).replace(tzinfo=dt.UTC)
        ns = int(t.timestamp()) * 10**9 + int((frac + "000000000")[:9]) - zero * 10**9
        sign = "-" if ns < 0 else "+"
        secs = f"{abs(ns) / 1e9:.9f}".rstrip("0").rstrip(".")
        return f'"zero{sign}{secs}s"'
    return _STAMP.sub(offset, body)


class Run:
    """One scenario on one daemon: what the recorder got (barrier) or what the httpOut
    showed at each step (union)."""

    def __init__(self, url: str, scenario: Scenario, recorder: Recorder, tag: str) -> None:
        self.url = url
        self.s = scenario
        self.recorder = recorder
        self.path = f"/{tag}/{scenario.name}"
        self.task = f"barrier-check-{tag}-{scenario.name}"
        self.client = httpx.Client(timeout=30)

    def define(self) -> None:
        script = self.s.script.replace("{{POST}}", self.recorder.http_url + self.path)
        self.client.delete(f"{self.url}/kapacitor/v1/tasks/{self.task}")
        r = self.client.post(f"{self.url}/kapacitor/v1/tasks", json={
            "id": self.task, "type": "stream", "status": "enabled", "script": script,
            "dbrps": [{"db": self.s.db, "rp": self.s.rp}]})
        if r.status_code != 200:
            raise RuntimeError(f"{self.s.name}: task refused: {r.text}")

    def write(self, lines: list[str]) -> None:
        r = self.client.post(f"{self.url}/write", content="\n".join(lines).encode(),
                             params={"db": self.s.db, "rp": self.s.rp, "precision": "s"})
        if r.status_code != 204:
            raise RuntimeError(f"{self.s.name}: write refused: {r.status_code} {r.text}")

    def stop(self) -> None:
        self.client.delete(f"{self.url}/kapacitor/v1/tasks/{self.task}")

    def barrier(self, zero: int) -> list[str]:
        lines = [f"cpu value={i + 0.25 + i * i / 64} {zero + i}" for i in range(self.s.count)]
        self.define()
        last = ""
        self.arrivals: list[float] = []  # seconds from the first write to each post
        self.started = time.monotonic()
        first = True
        for action, seconds in self.s.actions:
            if action == "write":
                if first:
                    self.started, first = time.monotonic(), False
                self.write(lines)
            elif action == "sleep":
                self.watch(seconds)
            else:
                if last == "write":
                    self.watch(0.5)
                break
            last = action
        self.stop()
        self.watch(0.2)  # a post under way when the task stopped
        with self.recorder.lock:
            return [relative(b, zero) for b in self.recorder.posts.get(self.path, [])]

    def watch(self, seconds: float) -> None:
        """Wait, noting when each post arrives."""
        end = time.monotonic() + seconds
        while True:
            with self.recorder.lock:
                n = len(self.recorder.posts.get(self.path, []))
            now = time.monotonic()
            self.arrivals += [round(now - self.started, 2)] * (n - len(self.arrivals))
            if now >= end:
                return
            time.sleep(min(0.02, end - now))

    def union(self) -> list[str]:
        self.define()
        shown, written = [], 0
        endpoint = re.search(r"httpOut\('(\w+)'\)", self.s.script)
        assert endpoint is not None
        for step in self.s.steps:
            batch = [line for t, line in self.s.points[written:] if t <= step]
            written += len(batch)
            if batch:
                self.write(batch)
            shown.append(self.stable(f"{self.url}/kapacitor/v1/tasks/{self.task}/"
                                     f"{endpoint.group(1)}"))
        self.stop()
        return shown

    def stable(self, url: str, settle: float = 0.5, timeout: float = 5) -> str:
        last, since, deadline = self.client.get(url).text, time.monotonic(), \
            time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.client.get(url).text
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= settle:
                break
        return last

    def close(self) -> None:
        self.client.close()


def run_both(urls: dict[str, str], s: Scenario, recorder: Recorder
             ) -> tuple[dict[str, list[str]], dict[str, list[float]]]:
    """Run the scenario on each daemon at the same time; what each produced, and when
    (seconds from the first write) each post arrived."""
    zero = int(time.time()) - s.back
    out: dict[str, list[str]] = {}
    arrivals: dict[str, list[float]] = {}
    errors: list[BaseException] = []

    def one(tag: str, url: str) -> None:
        run = Run(url, s, recorder, tag)
        try:
            out[tag] = run.union() if s.steps else run.barrier(zero)
            arrivals[tag] = getattr(run, "arrivals", [])
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            run.close()

    threads = [threading.Thread(target=one, args=item) for item in urls.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return out, arrivals


def sorted_series(bodies: list[str]) -> list[str]:
    def key(body: str) -> str:
        try:
            result = json.loads(body)
        except ValueError:
            return body
        result["series"] = sorted(result.get("series") or [],
                                  key=lambda row: json.dumps(row, sort_keys=True))
        return json.dumps(result, sort_keys=True)
    return [key(b) for b in bodies]


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser("tests.compat.scenarios_barrier", __doc__)
    parser.add_argument("--runs", type=int, default=2, help="runs of each scenario")
    parser.add_argument("--show", action="store_true", help="print what Kapacitor produced")
    args = parser.parse_args(argv)
    chosen = [s for s in scenarios(args.source)
              if not args.patterns or any(fnmatch.fnmatch(s.name, p) for p in args.patterns)]
    recorder = Recorder()
    from kapa_core.testing import DaemonProcess
    server = Kapacitor(args.kapacitord)
    differ, unstable = [], []
    try:
        with DaemonProcess({"http": {"log-enabled": False},
                            "logging": {"level": "ERROR"}}) as daemon:
            urls = {"kapacitor": server.url, "kapa-core": daemon.url}
            for s in chosen:
                runs = []
                for i in range(args.runs):
                    recorder.reset()
                    got, when = run_both(urls, s, recorder)
                    runs.append(got)
                    k, c = got["kapacitor"], got["kapa-core"]
                    what = "httpOut steps" if s.steps else "posts"
                    verdict = "equal" if k == c else \
                        "series order only" if sorted_series(k) == sorted_series(c) else "DIFFER"
                    tk, tc = when["kapacitor"], when["kapa-core"]
                    if verdict == "equal" and any(abs(a - b) > TIMING for a, b in zip(tk, tc)):
                        verdict = "DIFFER in timing"
                    note = f" (posts at {tk} s / {tc} s after the write)" if tk or tc else ""
                    go = f" (the Go test expects {s.go_posts})" if s.go_posts is not None \
                        else ""
                    print(f"{s.name} run {i + 1}: {len(k)} {what} from Kapacitor, {len(c)} "
                          f"from kapa-core{go}: {verdict}{note}", flush=True)
                    if args.show:
                        print("\n".join(f"  {b.strip()}" for b in k))
                    if verdict != "equal" and not args.quiet:
                        for n in range(max(len(k), len(c))):
                            a = k[n] if n < len(k) else "-"
                            b = c[n] if n < len(c) else "-"
                            if a != b:
                                print(f"  [{n}] Kapacitor: {a.strip()}\n"
                                      f"  [{n}] kapa-core: {b.strip()}")
                    if verdict.startswith("DIFFER") and s.name not in differ:
                        differ.append(s.name)
                for tag in ("kapacitor", "kapa-core"):
                    if any(r[tag] != runs[0][tag] for r in runs[1:]):
                        unstable.append(f"{s.name} ({tag})")
    finally:
        server.close()
        recorder.close()
    for name in differ:
        print("DIFFERS", name)
    for name in unstable:
        print("UNSTABLE", name)
    print(f"{len(chosen) - len(differ)} of {len(chosen)} scenarios equal", file=sys.stderr)
    return 1 if differ or unstable else 0


if __name__ == "__main__":
    sys.exit(main())

"""Run Kapacitor's own batch scenarios on the real Kapacitor and on kapa-core, each fed
from its own recorded batches, and report where their outputs differ.

    python -m tests.compat.batch_scenarios --kapacitord BIN --source DIR [NAME_GLOB...]

DIR is a checkout of Kapacitor at v1.5.7. The scenarios are the
``testBatcherWithOutput`` calls of its integrations/batcher_test.go (and the
``testBatcher`` ones checked through the alerts they post to the test's server, here the
runner's ``{{POST}}``); their data are the recorded batches of
integrations/testdata/<name>.<n>.brpl (JSON batches, one file a batch collector of the
task), which Kapacitor's test hands straight to the task with its times moved so that
each file starts at 1971-01-01.

Here the files become one batch recording in Kapacitor's format (a zip archive, entry
``n`` holding file ``n`` with its points moved to start at 1971-01-01 as the test moves
them), replayed with the recording's times and the fast clock on both daemons:
kapacitord is made to record a batch for the task and its recording file in its replay
dir is then overwritten with the scenario's; kapa-core gets the file in its replay dir
and registers it with ``POST /kapacitor/v1/recordings/import``. Both then run
``POST /kapacitor/v1/replays``, so every scenario is fed exactly what the test feeds
it. The script's ``httpOut`` (gone once a replay ends) becomes an ``httpPost`` to the
runner; where the test compares ignoring the order of the series, so does this check.

Nothing of the scenarios is stored here: this is a check to run against a checkout.
"""

from __future__ import annotations

import fnmatch
import http.server
import json
import re
import shutil
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

from kapa_core.models.batch import format_time
from kapa_core.models.recordfile import batches_archive
from tests.compat.casefile import Case
from tests.compat.influx import _ident
from tests.compat.oracle import Kapacitor, show_diff
from tests.compat.runner import CaseRun, Recorder, matches, run_until_equal, run_until_stable
from tests.compat.scenarios import arg_parser, script_text

FUNC = re.compile(r"^func (TestBatch_\w+)\(t \*testing\.T\) \{$(.*?)^\}$", re.M | re.S)
SCRIPT = re.compile(r"var script = ((?:`[^`]*`\s*(?:\+\s*[\w.]+\s*\+\s*)?)+)")
CALL = re.compile(r'testBatcherWithOutput\(\s*t,\s*"(\w+)",\s*script,\s*(\d+)\s*\*\s*'
                  r'time\.Second,\s*er,\s*(true|false)\s*\)')
#: A scenario checked through the alerts it posts to the test's server (testBatcher, the
#: clock moved on by fastForwardTask).
ALERTS = re.compile(r'testBatcher\(\s*t,\s*"(\w+)",\s*script\s*\).*?fastForwardTask\(\s*clock,'
                    r'\s*et,\s*replayErr,\s*tm,\s*(\d+)\s*\*\s*time\.Second\s*\)', re.S)
HTTP_OUT = re.compile(r"\|httpOut\(\s*'[^']*'\s*\)")
FROM = re.compile(r'\bFROM\s+"([^"]+)"\."([^"]+)"\.', re.I)
#: Where the test's replay moves the first point of each file (its clock's zero).
EPOCH_1971 = datetime(1971, 1, 1, tzinfo=timezone.utc)
START_1971 = int(EPOCH_1971.timestamp()) * 10**9


class Skip(Exception):
    """A scenario this check cannot run as the test runs it."""


def _nanos(stamp: str) -> int:
    stamp = stamp.rstrip("Z")
    whole, _, frac = stamp.partition(".")
    t = datetime.fromisoformat(whole).replace(tzinfo=timezone.utc)
    seconds = int((t - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds())
    return seconds * 10**9 + int((frac + "000000000")[:9])


def _batches(text: str) -> list[dict]:
    """The JSON values of a .brpl, one after another (one a line, or spread over lines)."""
    decoder, out, i = json.JSONDecoder(), [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        value, i = decoder.raw_decode(text, i)
        out.append(value)


def moved(text: str) -> str:
    """One test data file as the test's replay hands it to the task: the points moved
    so that the first point of the file is at 1971-01-01 (a batch's own ``tmax`` is
    kept, as the replay keeps it), one JSON batch a line."""
    out, shift = [], None
    for batch in _batches(text):
        for point in batch.get("points") or []:
            t = _nanos(point["time"])
            if shift is None:
                shift = START_1971 - t
            point["time"] = format_time(t + shift)
        out.append(json.dumps(batch, separators=(",", ":")) + "\n")
    return "".join(out)


def recording(testdata: Path, name: str) -> bytes:
    """The scenario's files <name>.0.brpl, <name>.1.brpl, ... as one batch recording."""
    files = []
    while (testdata / f"{name}.{len(files)}.brpl").exists():
        files.append(testdata / f"{name}.{len(files)}.brpl")
    if not files:
        raise Skip(f"no {name}.0.brpl")
    return batches_archive(moved(f.read_text()) for f in files)


#: Where a scenario with a request ``.timeout()`` posts: an answer 100ms late.
SLOW_URL = "{{SLOW}}"


class SlowServer:
    """An HTTP server that reads each request and answers 200 after 100ms."""

    def __init__(self) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(0.1)
                try:
                    self.send_response(200)
                    self.end_headers()
                except OSError:
                    pass  # the daemon gave up waiting

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/slow"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def scenarios(source: Path) -> tuple[list[Case], list[tuple[str, str]]]:
    text = (source / "integrations" / "batcher_test.go").read_text()
    found, skipped = [], []
    testdata = source / "integrations" / "testdata"
    for name, body in FUNC.findall(text):
        script, call = SCRIPT.search(body), CALL.search(body) or ALERTS.search(body)
        if not call:
            continue  # checked by the test's own code, not through an output
        try:
            if not script or "Sprintf" in body:
                raise Skip("script built by Go code")
            tick = script_text(script.group(1))
            if tick is None:
                raise Skip("script splices in a Go value")
            data_name, seconds = call.group(1), int(call.group(2))
            dbrps = list(dict.fromkeys(FROM.findall(tick)))
            if not dbrps:
                raise Skip("a query names no database and retention policy")
            if ".timeout(" in tick:
                # The test's server answers after 100ms, so a 1ms timeout always
                # fires: the slow server does the same, on both daemons.
                tick = tick.replace("{{POST}}", SLOW_URL)
            tick = HTTP_OUT.sub("|httpPost('{{POST:out}}')", tick).replace("\t", "    ")
            if len(dbrps) > 1:  # the task may read every database its queries name
                tick = "".join(f"dbrp {_ident(d)}.{_ident(r)}\n" for d, r in dbrps) + tick
            (db, rp) = dbrps[0]
            found.append(Case(name, source, {
                "type": "batch", "db": db, "rp": rp, "script": tick,
                "recording": recording(testdata, data_name), "seconds": seconds,
                "ignore_order": (call.groups() + (None,))[2] == "true",
                "implicit_dbrp": len(dbrps) > 1}))
        except Skip as why:
            skipped.append((name, str(why)))
    return found, skipped


def _wait(client: httpx.Client, url: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(url).json()
        if body.get("status") != "running" or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


class RecordingRun(CaseRun):
    """A scenario fed from its recording: the file placed in the daemon's replay dir
    (``replay_dir``), registered (kapacitord: a batch recording of the task made first,
    its file then overwritten; kapa-core: imported), and replayed."""

    replay_dir: Path
    kapacitord: bool

    def write(self) -> None:
        self.replay_error = self.replay()

    def replay(self) -> str:
        case, client = self.case, self.client
        base = f"{self.url}/kapacitor/v1"
        rid = case.task_id
        client.delete(f"{base}/recordings/{rid}")
        client.delete(f"{base}/replays/{rid}")
        path = self.replay_dir / f"{rid}.brpl"
        if self.kapacitord:
            response = client.post(f"{base}/recordings/batch", json={
                "id": rid, "task": rid, "start": "1971-01-01T00:00:00Z",
                "stop": "1971-01-01T00:00:01Z"})
            if response.status_code != 201:
                return f"recording refused: {response.status_code} {response.text}"
            _wait(client, f"{base}/recordings/{rid}")
            path.write_bytes(case.get("recording"))
        else:
            path.write_bytes(case.get("recording"))
            response = client.post(f"{base}/recordings/import", json={"id": rid})
            if response.status_code != 201:
                return f"import refused: {response.status_code} {response.text}"
        try:
            response = client.post(f"{base}/replays", json={
                "id": rid, "task": rid, "recording": rid, "recording-time": True,
                "clock": "fast"})
            if response.status_code != 201:
                return f"replay refused: {response.status_code} {response.text}"
            body = _wait(client, f"{base}/replays/{rid}")
            return "still running" if body.get("status") == "running" else \
                body.get("error", "")
        finally:
            client.delete(f"{base}/replays/{rid}")
            client.delete(f"{base}/recordings/{rid}")


def run_class(replay_dir: Path, kapacitord: bool) -> type[CaseRun]:
    return type("Run", (RecordingRun,), {"replay_dir": replay_dir,
                                         "kapacitord": kapacitord})


def unordered(case: Case, outputs: dict) -> dict:
    """A scenario Kapacitor's test checks ignoring the order of its series (the groups
    of a join, combine or measurement grouping come out in Go's map order): its posted
    bodies sorted."""
    if not case.get("ignore_order"):
        return outputs
    return {k: sorted(v) if k.startswith("post") and isinstance(v, list) else v
            for k, v in outputs.items()}


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser("tests.compat.batch_scenarios", __doc__)
    args = parser.parse_args(argv)

    def wanted(name: str) -> bool:
        return not args.patterns or any(fnmatch.fnmatch(name, p) for p in args.patterns)

    cases, skipped = scenarios(args.source)
    cases = [c for c in cases if wanted(c.name)]
    slow = SlowServer()
    for case in cases:
        case.data["script"] = case.data["script"].replace(SLOW_URL, slow.url)
    skipped = [s for s in skipped if wanted(s[0])]
    from tests.compat.influx import InfluxServer

    workdir = Path(tempfile.mkdtemp(prefix="batch-scenarios-"))
    recorder = Recorder()
    influx = InfluxServer().start()  # the daemons' [influxdb]; nothing is queried
    try:
        server = Kapacitor(args.kapacitord, influx.url)
        try:
            runs = run_class(Path(server.dir) / "replay", True)
            for case in cases:
                case.expected = run_until_stable(server.url, case, recorder, workdir,
                                                 run_class=runs)
        finally:
            server.close()
        from kapa_core.testing import DaemonProcess
        results = {}
        replay_dir = workdir / "replay"
        replay_dir.mkdir()
        config = {"http": {"log-enabled": False}, "logging": {"level": "ERROR"},
                  "replay": {"dir": str(replay_dir)},
                  "influxdb": [{"enabled": True, "name": "default", "default": True,
                                "urls": [influx.url], "disable-subscriptions": True}]}
        with DaemonProcess(config) as daemon:
            runs = run_class(replay_dir, False)
            for case in cases:
                got = run_until_equal(daemon.url, case, recorder, workdir, case.expected,
                                      timeout=5, run_class=runs)
                results[case.name] = matches(unordered(case, got),
                                             unordered(case, case.expected))
                if not results[case.name] and not args.quiet:
                    print(show_diff(case.name, got, case.expected))
        for case in cases:
            empty = "" if any(case.expected.get(k) for k in case.expected
                              if k.startswith("post")) else " (no output)"
            if case.expected.get("replay error"):
                empty += f" (replay error: {case.expected['replay error']})"
            order = " (series order ignored, as the test does)" \
                if case.get("ignore_order") else ""
            print(f"{'equal' if results[case.name] else 'DIFFERS'} {case.name}{empty}{order}")
        for name, why in skipped:
            print(f"skipped {name}: {why}")
        equal = sum(results.values())
        print(f"{equal} equal, {len(cases) - equal} differ, {len(skipped)} skipped",
              file=sys.stderr)
        return 1 if equal < len(cases) else 0
    finally:
        recorder.close()
        slow.close()
        influx.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

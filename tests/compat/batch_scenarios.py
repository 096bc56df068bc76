"""Run Kapacitor's own batch scenarios on the real Kapacitor and on kapa-core, and
report where their outputs differ.

    python -m tests.compat.batch_scenarios --kapacitord BIN --source DIR [NAME_GLOB...]

DIR is a checkout of Kapacitor at v1.5.7. The scenarios are the
``testBatcherWithOutput`` calls of its integrations/batcher_test.go (and the
``testBatcher`` ones checked through the alerts they post to the test's server, here the
runner's ``{{POST}}``); their data are the
recorded batches of integrations/testdata/<name>.<n>.brpl (JSON batches, one file a
query). Kapacitor's test hands those batches straight to the
task; kapa-core has no recording replay, so here each batch is turned back into points
of a real ``influxd`` (times moved to start at 1971-01-01 as the test's replay does, the
tags the query's WHERE asks for added, an aggregate's column written back as the field
it aggregates) and the task is replayed as a batch case over 1971-01-01 .. + the
scenario's duration. This gives the recorded batches back exactly for a raw query, and
for an aggregate whose value over one point is that point (mean, sum, min, max, first,
last) when each recorded value lies alone at the start of its GROUP BY time() bucket.
A scenario that cannot be checked this way is skipped with its reason (another
aggregate, an aggregate without a time bucket, a recorded field the query does not
select, recorded rows its WHERE excludes, points of one query that another would read
too); ``--approximate`` runs the
ones that can run anyway, marked with what differs from the recording. The script's
``httpOut`` (gone once a replay ends) becomes an ``httpPost`` to the runner; where the
test compares ignoring the order of the series, so does this check.

Nothing of the scenarios is stored here: this is a check to run against a checkout.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import NamedTuple

import httpx

from tests.compat.casefile import Case
from tests.compat.influx import _ident
from tests.compat.oracle import Kapacitor, show_diff
from tests.compat.runner import Recorder, matches, run_until_equal, run_until_stable
from tests.compat.scenarios import arg_parser, script_text

FUNC = re.compile(r"^func (TestBatch_\w+)\(t \*testing\.T\) \{$(.*?)^\}$", re.M | re.S)
SCRIPT = re.compile(r"var script = ((?:`[^`]*`\s*(?:\+\s*[\w.]+\s*\+\s*)?)+)")
CALL = re.compile(r'testBatcherWithOutput\(\s*t,\s*"(\w+)",\s*script,\s*(\d+)\s*\*\s*'
                  r'time\.Second,\s*er,\s*(true|false)\s*\)')
#: A scenario checked through the alerts it posts to the test's server (testBatcher, the
#: clock moved on by fastForwardTask).
ALERTS = re.compile(r'testBatcher\(\s*t,\s*"(\w+)",\s*script\s*\).*?fastForwardTask\(\s*clock,'
                    r'\s*et,\s*replayErr,\s*tm,\s*(\d+)\s*\*\s*time\.Second\s*\)', re.S)
QUERY = re.compile(r"\|query\(\s*(?:'''(.*?)'''|'((?:[^'\\]|\\.)*)')\s*\)", re.S)
HTTP_OUT = re.compile(r"\|httpOut\(\s*'[^']*'\s*\)")
FROM = re.compile(r'\bFROM\s+"([^"]+)"\."([^"]+)"\.', re.I)
NOT_EQUAL = re.compile(r'"(\w+)"\s*!=\s*\'([^\']*)\'')
EQUAL = re.compile(r'"(\w+)"\s*=\s*\'([^\']*)\'')
ITEM = re.compile(r'^(?:(\w+)\(\s*"?(\w+)"?\s*\)|"?(\w+)"?)(?:\s+as\s+"?(\w+)"?)?$', re.I)
#: Aggregates whose value over a single point is that point's value.
FAITHFUL = {"mean", "sum", "min", "max", "first", "last"}
EPOCH_1971 = datetime(1971, 1, 1, tzinfo=timezone.utc)


class Skip(Exception):
    """A scenario this set-up cannot check faithfully."""


def columns(query: str) -> dict[str, tuple[str, bool]]:
    """The columns of a query's rows: name -> (the field it reads, aggregated?)."""
    m = re.search(r"SELECT\s+(.*?)\s+FROM\b", query, re.I | re.S)
    if not m:
        raise Skip("query without SELECT ... FROM")
    out = {}
    for item in m.group(1).split(","):
        parsed = ITEM.match(item.strip())
        if not parsed:
            raise Skip(f"select item {item.strip()!r} not understood")
        func, arg, field, alias = parsed.groups()
        if func:
            if func.lower() not in FAITHFUL:
                raise Skip(f"{func}() over one point per bucket does not give the "
                           "recorded value back")
            out[alias or func.lower()] = (arg, True)
        elif field == "*":
            raise Skip("SELECT *")
        else:
            out[alias or field] = (field, False)
    return out


def _key(text: str) -> str:
    return re.sub(r"([ ,=])", r"\\\1", text)


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(float(value))  # the test's JSON decoding makes every number a float
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


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


class Point(NamedTuple):
    measurement: str
    tags: dict[str, str]
    line: str


def _leave_out(notes: list[str] | None, why: str, note: str) -> None:
    """Skip with ``why``; in the approximate run (``notes`` given), note ``note`` once."""
    if notes is None:
        raise Skip(why)
    if note not in notes:
        notes.append(note)


def points(query: str, data: Path, notes: list[str]) -> list[Point]:
    """Line protocol for the batches of one .brpl so that ``query`` returns them again.
    A field the query does not select cannot come back: Skip, unless ``notes`` is
    given a place (the approximate run), where the field is left out and noted."""
    cols = columns(query)
    where = query.split("WHERE", 1)[1] if re.search(r"\bWHERE\b", query) else ""
    extra = dict(EQUAL.findall(where))
    out, shift = [], None
    for batch in _batches(data.read_text()):
        for point in batch.get("points") or []:
            t = _nanos(point["time"])
            if shift is None:  # the first point of the file moves to 1971-01-01
                shift = int(EPOCH_1971.timestamp()) * 10**9 - t
            tags = {**extra, **(batch.get("tags") or {}), **(point.get("tags") or {})}
            tags = {k: v for k, v in tags.items() if v != ""}
            excluded = [f"{k} = {v!r}" for k, v in extra.items() if tags.get(k) != v] + \
                [f"{k} != {v!r}" for k, v in NOT_EQUAL.findall(where) if tags.get(k) == v]
            if excluded:
                _leave_out(notes, f"{data.name} holds rows the query's WHERE excludes "
                                  f"({', '.join(excluded)})",
                           f"{data.name}: rows the query's WHERE excludes left out")
                continue
            fields = {}
            for name, value in (point.get("fields") or {}).items():
                if value is None:
                    continue
                if name not in cols:
                    _leave_out(notes, f"{data.name} holds field {name!r}, which the query "
                                      "does not select: no query result gives it back",
                               f"{data.name} field {name!r} left out (not selected)")
                    continue
                source, aggregated = cols[name]
                if aggregated and not isinstance(value, (int, float)):
                    raise Skip(f"aggregate column {name} holds {value!r}")
                fields[source] = value
            if not fields:
                continue
            head = _key(batch["name"]) + "".join(
                f",{_key(k)}={_key(v)}" for k, v in sorted(tags.items()))
            body = ",".join(f"{_key(k)}={_value(v)}" for k, v in sorted(fields.items()))
            out.append(Point(batch["name"], tags, f"{head} {body} {t + shift}"))
    return out


MEASUREMENT = re.compile(r'\bFROM\s+"[^"]+"\."[^"]+"\.(?:/((?:[^/\\]|\\.)*)/|"([^"]+)"|(\w+))',
                         re.I)


def reads(query: str, measurement: str, tags: dict[str, str] | None = None) -> bool:
    """Whether ``query`` reads a point of ``measurement`` (with ``tags``: as far as the
    tag equalities of its WHERE tell)."""
    m = MEASUREMENT.search(query)
    if not m:
        return False
    regex, quoted, bare = m.groups()
    if not (re.search(regex, measurement) if regex is not None
            else measurement == (quoted or bare)):
        return False
    where = query.split("WHERE", 1)[1] if re.search(r"\bWHERE\b", query) else ""
    return tags is None or all(tags.get(k) == v for k, v in EQUAL.findall(where))


def pair(queries: list[str], testdata: Path, name: str) -> list[str]:
    """The query whose rows each <name>.<n>.brpl holds, in file order. The test hands
    file n to the task's n-th batch collector (the pipeline's walk order, not the
    script's); here a file goes with the one query that reads its batches'
    measurement and has a column for each of their fields, else with the query of
    its own rank."""
    files = [testdata / f"{name}.{i}.brpl" for i in range(len(queries))]
    for data in files:
        if not data.exists():
            raise Skip(f"no {data.name}")
    out = []
    for i, data in enumerate(files):
        batches = _batches(data.read_text())
        names = {b.get("name", "") for b in batches}
        fields = {f for b in batches for p in b.get("points") or [] for f in p["fields"]}
        fits = [q for q in queries if all(reads(q, n) for n in names)]
        if len(fits) > 1:
            fits = [q for q in fits if fields <= set(columns(q))]
        out.append(fits[0] if len(fits) == 1 else queries[i])
    return out


TIME_GROUP = re.compile(r"\.groupBy\(\s*time\((\d+)s(?:\s*,\s*(\d+)s)?\)")


def check_buckets(tick: str, query: str, pts: list[Point],
                  notes: list[str] | None) -> None:
    """An aggregate gives each recorded value back only when each lies alone at the
    start of its own GROUP BY time() bucket; Skip otherwise (noted instead, with
    ``notes``: the approximate run)."""
    try:
        _check_buckets(tick, query, pts)
    except Skip as why:
        _leave_out(notes, str(why), str(why))


def _check_buckets(tick: str, query: str, pts: list[Point]) -> None:
    if not any(agg for _, agg in columns(query).values()):
        return
    after = tick[tick.index(query) + len(query):]
    chain = after[:after.find("|")] if "|" in after else after
    by_time = TIME_GROUP.search(chain)
    if not by_time:
        raise Skip("an aggregate query without groupBy(time(...)): one row a window")
    width = int(by_time.group(1)) * 10**9
    offset = int(by_time.group(2) or 0) * 10**9
    seen = set()
    for p in pts:
        t = int(p.line.rsplit(" ", 1)[1]) - offset
        key = (p.measurement, tuple(sorted(p.tags.items())), t // width)
        if t % width or key in seen:
            raise Skip("recorded aggregate values that do not each lie alone at the "
                       "start of a bucket: re-aggregating them changes them")
        seen.add(key)


def scenarios(source: Path, approximate: bool = False
              ) -> tuple[list[Case], list[tuple[str, str]]]:
    text = (source / "integrations" / "batcher_test.go").read_text()
    found, skipped = [], []
    for name, body in FUNC.findall(text):
        script, call = SCRIPT.search(body), CALL.search(body) or ALERTS.search(body)
        if not call:
            continue  # checked by the test's own code, not through an output
        try:
            if not script or "Sprintf" in body:
                raise Skip("script built by Go code")
            if ".timeout(" in script.group(1):
                raise Skip("outcome depends on a 1ms timeout")
            tick = script_text(script.group(1))
            if tick is None:
                raise Skip("script splices in a Go value")
            data_name, seconds = call.group(1), int(call.group(2))
            queries = [a or b for a, b in QUERY.findall(tick)]
            if not queries:
                raise Skip("no query")
            testdata = source / "integrations" / "testdata"
            paired = pair(queries, testdata, data_name)
            notes: list[str] | None = [] if approximate else None
            loaded = []
            for i, query in enumerate(paired):
                dbrp = FROM.search(query)
                if not dbrp:
                    raise Skip("a query names no database and retention policy")
                loaded.append((dbrp.groups(), points(
                    query, testdata / f"{data_name}.{i}.brpl", notes)))
            for query, (_, pts) in zip(paired, loaded):
                check_buckets(tick, query, pts, notes)
            for i, (dbrp, pts) in enumerate(loaded):
                for j, other in enumerate(paired):
                    if j != i and FROM.search(other).groups() == dbrp and any(
                            reads(other, p.measurement, p.tags) for p in pts):
                        raise Skip(f"the points recorded for one query ({data_name}.{i}"
                                   f".brpl) would also be read by another ({data_name}"
                                   f".{j}.brpl's)")
            loads: dict[tuple[str, str], list[str]] = {}
            for dbrp, pts in loaded:
                loads.setdefault(dbrp, []).extend(p.line for p in pts)
            (db, rp) = next(iter(loads))
            stop = EPOCH_1971 + timedelta(seconds=seconds)
            tick = HTTP_OUT.sub("|httpPost('{{POST:out}}')", tick).replace("\t", "    ")
            if len(loads) > 1:  # the task may read every database its queries name
                tick = "".join(f"dbrp {_ident(d)}.{_ident(r)}\n" for d, r in loads) + tick
            found.append(Case(name, source, {
                "type": "batch", "db": db, "rp": rp, "script": tick, "loads": loads,
                "ignore_order": (call.groups() + (None,))[2] == "true", "implicit_dbrp": len(loads) > 1,
                "approximate": "; ".join(notes or []),
                "start": EPOCH_1971.isoformat().replace("+00:00", "Z"),
                "stop": stop.isoformat().replace("+00:00", "Z")}))
        except Skip as why:
            skipped.append((name, str(why)))
    return found, skipped


def load(influx, case: Case) -> None:
    """Every database and retention policy the case's queries read, made afresh with
    the case's points."""
    for (db, rp), lines in case.get("loads").items():
        influx.influxd.query(f"DROP DATABASE {_ident(db)}")
        influx.influxd.query(f"CREATE DATABASE {_ident(db)} WITH NAME {_ident(rp)}")
        if lines:
            response = httpx.post(influx.url + "/write", params={
                "db": db, "rp": rp, "precision": "n"},
                content="\n".join(lines).encode(), timeout=30)
            if response.status_code != 204:
                raise RuntimeError(f"influxd refused the points of {case.name}: "
                                   f"{response.status_code} {response.text}")


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
    parser.add_argument("--approximate", action="store_true",
                        help="also run, marked approximate, the scenarios whose recorded "
                             "batches hold fields their query does not select (left out) "
                             "or aggregates that re-aggregating would change")
    args = parser.parse_args(argv)

    def wanted(name: str) -> bool:
        return not args.patterns or any(fnmatch.fnmatch(name, p) for p in args.patterns)

    cases, skipped = scenarios(args.source, args.approximate)
    cases = [c for c in cases if wanted(c.name)]
    skipped = [s for s in skipped if wanted(s[0])]
    from tests.compat.influx import InfluxServer

    workdir = Path(tempfile.mkdtemp(prefix="batch-scenarios-"))
    recorder = Recorder()
    influx = InfluxServer().start()
    try:
        server = Kapacitor(args.kapacitord, influx.url)
        try:
            for case in cases:
                load(influx, case)
                case.expected = run_until_stable(server.url, case, recorder, workdir)
        finally:
            server.close()
        from kapa_core.testing import DaemonProcess
        results = {}
        config = {"http": {"log-enabled": False}, "logging": {"level": "ERROR"},
                  "influxdb": [{"enabled": True, "name": "default", "default": True,
                                "urls": [influx.url], "disable-subscriptions": True}]}
        with DaemonProcess(config) as daemon:
            for case in cases:
                load(influx, case)
                got = run_until_equal(daemon.url, case, recorder, workdir, case.expected,
                                      timeout=5)
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
            if case.get("approximate"):
                order += f" (approximate: {case.get('approximate')})"
            print(f"{'equal' if results[case.name] else 'DIFFERS'} {case.name}{empty}{order}")
        for name, why in skipped:
            print(f"skipped {name}: {why}")
        equal = sum(results.values())
        print(f"{equal} equal, {len(cases) - equal} differ, {len(skipped)} skipped",
              file=sys.stderr)
        return 1 if equal < len(cases) else 0
    finally:
        recorder.close()
        influx.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

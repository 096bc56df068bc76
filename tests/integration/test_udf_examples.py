"""The example UDFs of examples/udf/ through the daemon, compared with Kapacitor 1.5.7.

Every case is a task using a UDF (run as a process, or served on a unix socket), the
points written to it, and what the task shows: its httpOut output, or the error its
definition or its run ends in. The same UDF programs were run under the real Kapacitor
1.5.7 and its answers are stored in ``udf_kapacitor_expected.json``; kapa-core must give
the same. Record them again (when a case changes) with::

    .venv/bin/python -m tests.integration.test_udf_examples --kapacitord /opt/kbin/kapacitord

(``--kapacitor-agent`` names Kapacitor's udf/agent sources, whose own examples are
recorded too). The UDF programs run with this interpreter (so they import
``kapa_core.udf.agent``); Kapacitor sees only the wire protocol. Besides the three
examples, a few small programs (``PROGRAMS``) cover what Kapacitor's own UDF tests check:
options of every value type, an option given twice, the node and task IDs in the init
request, the group IDs, dimensions and batch headers a UDF receives, an error response, a
crash, a malformed frame, a silent UDF. Batch tasks query a real InfluxDB (influxd).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.udf_programs import GARBAGE, SILENT, stream_udf

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "udf"
EXPECTED_FILE = Path(__file__).with_name("udf_kapacitor_expected.json")
API = "/kapacitor/v1"
PYTHON = sys.executable

#: Small UDF programs for what the examples do not show.
PROGRAMS = {
    # TestStream_CustomFunctions: options of every value type; answers each point with
    # a point of its name, time, group and tags, customField 42 and what init received.
    "custom": '''
from kapa_core.udf.agent import Agent, Handler, udf_pb2
KINDS = {udf_pb2.BOOL: "boolValue", udf_pb2.INT: "intValue", udf_pb2.DOUBLE: "doubleValue",
         udf_pb2.STRING: "stringValue", udf_pb2.DURATION: "durationValue"}
class H(Handler):
    def __init__(self, agent):
        self.agent = agent
        self.seen = ""
    def info(self):
        r = udf_pb2.Response()
        r.info.wants = r.info.provides = udf_pb2.STREAM
        r.info.options["opt1"].valueTypes.append(udf_pb2.STRING)
        r.info.options["opt2"].valueTypes.extend(
            [udf_pb2.BOOL, udf_pb2.INT, udf_pb2.DOUBLE, udf_pb2.STRING, udf_pb2.DURATION])
        r.info.options["opt3"].valueTypes.append(udf_pb2.INT)
        r.info.options["none"].SetInParent()
        return r
    def init(self, req):
        parts = []
        for o in req.options:
            values = ",".join(f"{udf_pb2.ValueType.Name(v.type)}:"
                              f"{getattr(v, KINDS[v.type])!r}" for v in o.values)
            parts.append(f"{o.name}({values})")
        self.seen = f"{req.taskID}/{req.nodeID} " + " ".join(parts)
        r = udf_pb2.Response(); r.init.success = True; return r
    def point(self, p):
        r = udf_pb2.Response()
        r.point.name = p.name; r.point.time = p.time; r.point.group = p.group
        r.point.tags.update(p.tags)
        r.point.fieldsDouble["customField"] = 42.0
        r.point.fieldsString["init"] = self.seen
        r.point.fieldsString["wire"] = (
            f"db={p.database} rp={p.retentionPolicy} group={p.group!r} "
            f"dims={list(p.dimensions)} byName={p.byName} tags={sorted(p.tags.items())}")
        self.agent.write_response(r)
a = Agent(); a.handler = H(a); a.start(); a.wait()
''',
    # a batch function whose end differs from its begin: which name, tags and group
    # the output batch gets
    "rename": '''
from kapa_core.udf.agent import Agent, Handler, udf_pb2
class H(Handler):
    def __init__(self, agent):
        self.agent = agent
    def info(self):
        r = udf_pb2.Response(); r.info.wants = r.info.provides = udf_pb2.BATCH; return r
    def init(self, req):
        r = udf_pb2.Response(); r.init.success = True; return r
    def begin_batch(self, b):
        r = udf_pb2.Response(); r.begin.CopyFrom(b)
        r.begin.name = "begin_" + b.name; r.begin.tags["from"] = "begin"
        self.agent.write_response(r)
    def point(self, p):
        r = udf_pb2.Response(); r.point.CopyFrom(p)
        r.point.name = "point_" + p.name; r.point.tags["from"] = "point"
        r.point.fieldsInt["n"] = 7; r.point.fieldsBool["ok"] = True
        r.point.fieldsString["s"] = "x"
        self.agent.write_response(r)
    def end_batch(self, e):
        r = udf_pb2.Response(); r.end.CopyFrom(e)
        r.end.name = "end_" + e.name; r.end.tags["from"] = "end"
        self.agent.write_response(r)
a = Agent(); a.handler = H(a); a.start(); a.wait()
''',
    # a batch function that describes the begin and end it received in one point
    "headers": '''
from kapa_core.udf.agent import Agent, Handler, udf_pb2
def tags(m):
    return sorted(m.tags.items())
class H(Handler):
    def __init__(self, agent):
        self.agent = agent
    def info(self):
        r = udf_pb2.Response(); r.info.wants = r.info.provides = udf_pb2.BATCH; return r
    def init(self, req):
        r = udf_pb2.Response(); r.init.success = True; return r
    def begin_batch(self, b):
        self.begin = udf_pb2.BeginBatch(); self.begin.CopyFrom(b); self.points = []
    def point(self, p):
        self.points.append(f"{p.name!r} {p.group!r} {list(p.dimensions)} {p.byName} "
                           f"{tags(p)} {p.database!r} {p.retentionPolicy!r}")
    def end_batch(self, e):
        b = self.begin
        r = udf_pb2.Response(); r.begin.CopyFrom(b); self.agent.write_response(r)
        r = udf_pb2.Response()
        r.point.time = e.tmax
        r.point.fieldsString["begin"] = (f"{b.name!r} {b.group!r} {tags(b)} size={b.size} "
                                         f"byName={b.byName}")
        r.point.fieldsString["end"] = (f"{e.name!r} {e.group!r} {tags(e)} tmax={e.tmax} "
                                       f"byName={e.byName}")
        r.point.fieldsString["points"] = " | ".join(self.points)
        self.agent.write_response(r)
        r = udf_pb2.Response(); r.end.CopyFrom(e); self.agent.write_response(r)
a = Agent(); a.handler = H(a); a.start(); a.wait()
''',
    # answers info and init, then an error response on the first point
    "failing": stream_udf('''
    raise ValueError("cannot take " + p.name)
'''),
    # answers info and init, then writes bytes that are no message
    "garbage": GARBAGE,
    # answers info and init, then stops answering anything, keepalives included
    "silent": SILENT,
    # answers info and init, then exits on the first point
    "crashing": stream_udf('''
    os._exit(3)
''', 'import os'),
}


@dataclass(frozen=True)
class Function:
    """One ``[udf.functions.<name>]``: an example or a program of PROGRAMS, as a
    process or (``socket``) served on a unix socket by a server the harness starts."""

    name: str
    program: str
    args: tuple[str, ...] = ()
    socket: bool = False
    timeout: str = "10s"


FUNCTIONS = [
    Function("movingAvg", "moving_avg"),
    Function("movingAvgSocket", "moving_avg", socket=True),
    Function("outliers", "outliers"),
    Function("outliersSocket", "outliers", socket=True),
    Function("mirror", "mirror"),
    Function("mirrorSocket", "mirror", socket=True),
    Function("mirrorBatch", "mirror", ("--batch",)),
    Function("mirrorBatchSocket", "mirror", ("--batch",), socket=True),
    Function("customFunc", "custom"),
    Function("rename", "rename"),
    Function("headers", "headers"),
    Function("failing", "failing"),
    Function("crashing", "crashing"),
    Function("garbage", "garbage"),
    Function("silent", "silent", timeout="1s"),
]


@dataclass(frozen=True)
class Case:
    """A task and its points. ``until`` is ``output`` (httpOut 'out' shows what is
    expected), ``define`` (the definition's answer) or ``error`` (the task's error
    after the points). A ``batch`` task queries INFLUX_POINTS from a real InfluxDB."""

    name: str
    script: str
    points: str = ""
    until: str = "output"
    kind: str = "stream"


def _stream(measurement: str, middle: str, group_by: str = ".groupBy('host')") -> str:
    return (f"dbrp \"db\".\"rp\"\nstream\n    |from().measurement('{measurement}'){group_by}\n"
            f"{middle}    |httpOut('out')\n")


def _batch(query: str, group_by: str, middle: str) -> str:
    return (f"dbrp \"udfdb\".\"autogen\"\nbatch\n    |query('{query}')\n"
            f"        .period(500000h).every(1s){group_by}\n{middle}    |httpOut('out')\n")


# A moving average: two groups, ten values each, a point past the window closes it.
_AVG_POINTS = "\n".join(
    [f"{{m}},host=a value={v} {t}" for t, v in enumerate([1, 2, 3, 4, 5, 6, 7, 8, 9, 0])]
    + [f"{{m}},host=b value={v}i {t}" for t, v in enumerate([2, 4, 6, 8, 10, 2, 4, 6, 8, 1])]
    + ["{m},host=a value=0 10", "{m},host=b value=0i 10"])

# Outliers: Kapacitor's own test data (5..100), in a shuffled order, per host.
_OUTLIER_VALUES = [5, 6, 7, 13, 33, 35, 36, 45, 46, 47, 48, 50, 51, 52, 53, 54, 80, 85, 90,
                   100]
_OUTLIER_POINTS = "\n".join(
    [f"{{m}},host=a value={v} {t}" for t, v in
     enumerate(_OUTLIER_VALUES[7:] + _OUTLIER_VALUES[:7])]
    + [f"{{m}},host=b value={v}i {t}" for t, v in
       enumerate([10, 11, 12, 11, 10, 12, 11, -40, 10, 11, 90, 12, 11, 10])]
    + ["{m},host=a value=1 20", "{m},host=b value=1i 20"])

#: What the batch cases query (InfluxDB line protocol, seconds): the outliers data.
INFLUX_POINTS = "\n".join(
    [f"lat,host=a value={v} {t}" for t, v in enumerate(_OUTLIER_VALUES[7:] + _OUTLIER_VALUES[:7])]
    + [f"lat,host=b value={v} {t}" for t, v in
       enumerate([10, 11, 12, 11, 10, 12, 11, -40, 10, 11, 90, 12, 11, 10])])

# Mirror: every field type, tags, several groups.
_MIRROR_POINTS = "\n".join([
    '{m},host=a,dc=x f=1.5,i=2i,s="one",b=true 1',
    '{m},host=b,dc=x f=-2.25,i=-3i,s="two",b=false 2',
    '{m},host=a,dc=y f=3,i=4i,s="three",b=true 3',
    '{m},host=a,dc=x f=4.5 4',
    '{m},host=a,dc=x f=0 20',
    '{m},host=b,dc=x f=0 20',
])


def _cases() -> list[Case]:
    cases: list[Case] = []
    window10 = "    |window().period(10s).every(10s)\n"
    for fn in ("movingAvg", "movingAvgSocket"):
        m = f"avg_{fn}"
        cases.append(Case(m, _stream(m, f"    @{fn}().field('value').size(3).as('mean')\n"
                                        + window10), _AVG_POINTS.format(m=m)))
    for fn in ("outliers", "outliersSocket"):
        m = f"outl_{fn}"
        cases.append(Case(m, _stream(m, "    |window().period(20s).every(20s)\n"
                                        f"    @{fn}().field('value').scale(1.5)\n"),
                          _OUTLIER_POINTS.format(m=m)))
    # batches too small for quartiles go on empty
    m = "outl_small"
    cases.append(Case(m, _stream(m, "    |window().period(20s).every(20s)\n"
                                    "    @outliers().field('value')\n"), "\n".join(
        [f"{m},host=a value=1 1", f"{m},host=a value=2 2", f"{m},host=b value=1 3",
         f"{m},host=a value=1 30", f"{m},host=b value=1 30"])))
    for fn in ("mirror", "mirrorSocket"):
        m = f"mirror_{fn}"
        cases.append(Case(m, _stream(m, f"    @{fn}()\n" + window10), _MIRROR_POINTS.format(m=m)))
        m = f"mirrornogroup_{fn}"
        cases.append(Case(m, _stream(m, f"    @{fn}()\n" + window10, group_by=""),
                          _MIRROR_POINTS.format(m=m)))
    for fn in ("mirrorBatch", "mirrorBatchSocket"):
        m = f"mirrorb_{fn}"
        cases.append(Case(m, _stream(m, window10 + f"    @{fn}()\n"),
                          _MIRROR_POINTS.format(m=m)))
        m = f"mirrorbname_{fn}"
        cases.append(Case(m, _stream(m, window10 + f"    @{fn}()\n", group_by=".groupBy(*)"),
                          _MIRROR_POINTS.format(m=m)))
    # a stream UDF after a batch node: window() then count() give a stream again
    m = "custom"
    cases.append(Case(m, _stream(
        m, "    |window().period(10s).every(10s)\n    |count('value')\n"
           "    @customFunc().opt1('count').opt2(FALSE, 1, 1.0, '1.0', 1s)"
           ".opt3(1).opt3(-2).none()\n", group_by=""),
        "\n".join([f"custom,host=serverA value={i} {i}" for i in range(10)]
                  + ["custom,host=serverA value=0 10"])))
    m = "custom_durations"
    cases.append(Case(m, _stream(
        m, "    @customFunc().opt2(TRUE, -7, 2.5, '', 90m).opt2(FALSE, 0, -0.5, 'x', 1ms)\n"),
        f"{m},host=a value=1 1"))
    # points the function sends without dimensions form one group downstream
    m = "custom_regroup"
    cases.append(Case(m, _stream(m, "    @customFunc()\n" + window10), "\n".join(
        [f"{m},host=a value=1 1", f"{m},host=b value=2 2", f"{m},host=a value=3 3",
         f"{m},host=a value=0 20"])))
    # what the daemon sends: group IDs, dimensions, byName, database and retention policy
    for m, group_by in (("wire_none", ""), ("wire_host", ".groupBy('host')"),
                        ("wire_two", ".groupBy('host', 'dc')"),
                        ("wire_name", ".groupByMeasurement().groupBy('dc')")):
        cases.append(Case(m, _stream(m, "    @customFunc()\n", group_by=group_by),
                          f'{m},host=a,dc=x f=1 1'))
        mb = f"{m}_batch"
        cases.append(Case(mb, _stream(mb, window10 + "    @headers()\n", group_by=group_by),
                          _MIRROR_POINTS.format(m=mb)))
    m = "mirrorb_measurement"
    cases.append(Case(m, _stream(m, window10 + "    @mirrorBatch()\n    |count('f')\n",
                                 group_by=".groupByMeasurement().groupBy('dc')"),
                      _MIRROR_POINTS.format(m=m)))
    m = "renamed"
    cases.append(Case(m, _stream(m, window10 + "    @rename()\n"), "\n".join(
        [f"{m},host=a value=1 1", f"{m},host=a value=2 2", f"{m},host=b value=3 3",
         f"{m},host=a value=4 20", f"{m},host=b value=5 20"])))
    # batch tasks: batches queried from InfluxDB (points in 1970, a period reaching them)
    for fn in ("outliers", "outliersSocket"):
        m = f"batch_{fn}"
        cases.append(Case(m, _batch("SELECT value FROM \"udfdb\".\"autogen\".\"lat\"",
                                    ".groupBy('host')", f"    @{fn}().field('value')\n"),
                          kind="batch"))
    for m, group_by in (("batch_headers", ".groupBy('host')"),
                        ("batch_headers_name", ".groupBy(*).groupByMeasurement()")):
        cases.append(Case(m, _batch("SELECT value, host FROM \"udfdb\".\"autogen\".\"lat\"",
                                    group_by, "    @headers()\n"), kind="batch"))
    # the examples against Kapacitor's own (see KAPACITOR_EXAMPLES): float values only,
    # which Kapacitor's examples read
    m = "example_avg"
    cases.append(Case(m, _stream(m, "    @movingAvg().field('value').size(4).as('mean')\n"
                                    + window10), "\n".join(
        [f"{m},host={h} value={v} {t}" for h, vs in (("a", [3, 1.5, 8, -2, 7, 7, 0.25, 9]),
                                                     ("b", [10, 20, 30, 40, 50]))
         for t, v in enumerate(vs)] + [f"{m},host=a value=0 20", f"{m},host=b value=0 20"])))
    m = "example_outliers"
    cases.append(Case(m, _stream(m, "    |window().period(20s).every(20s)\n"
                                    "    @outliers().field('value').scale(1.5)\n"),
                      "\n".join(line.replace("i ", " ") for line in
                                 _OUTLIER_POINTS.format(m=m).splitlines())))
    # errors at definition
    defines = {
        "init_refused": "    @movingAvg().field('value')\n",
        "init_refused_socket": "    @movingAvgSocket().size(3)\n",
        "outliers_refused": "    |window().period(1s).every(1s)\n    @outliers().field('v')"
                            ".scale(0.5)\n",
        "unknown_option": "    @movingAvg().field('value').size(3).window(3)\n",
        "wrong_type": "    @movingAvg().field('value').size('3')\n",
        "wrong_count": "    @movingAvg().field('value', 'other').size(3)\n",
        "too_few": "    @customFunc().opt2(TRUE, 1)\n",
        "int_for_double": "    |window().period(1s).every(1s)\n    @outliers().field('v')"
                          ".scale(2)\n",
        "stream_into_batch_udf": "    @outliers().field('value')\n",
        "batch_into_stream_udf": "    |window().period(1s).every(1s)\n"
                                 "    @movingAvg().field('value').size(3)\n",
        "batch_udf_into_stream_node": "    |window().period(1s).every(1s)\n"
                                      "    @outliers().field('value')\n"
                                      "    |window().period(1s).every(1s)\n",
        "unknown_udf": "    @nosuch()\n",
    }
    for name, middle in defines.items():
        cases.append(Case(name, _stream(name, middle), until="define"))
    # errors while running
    for name, fn in (("error_response", "failing"), ("crash", "crashing"),
                     ("malformed", "garbage"), ("keepalive", "silent")):
        cases.append(Case(name, _stream(name, f"    @{fn}()\n"), f"{name},host=a value=1 1",
                          until="error"))
    return cases


CASES = _cases()

#: Cases also recorded with Kapacitor's own example in place of kapa-core's: case ->
#: (function name, the example under Kapacitor's udf/agent/examples).
KAPACITOR_EXAMPLES = {
    "example_avg": ("kapacitorMovingAvg", "moving_avg/moving_avg.py"),
    "example_outliers": ("kapacitorOutliers", "outliers/outliers.py"),
}
KAPACITOR_AGENT = Path("/opt/kgo/src/github.com/influxdata/kapacitor/udf/agent")


# -- the harness: UDF programs, socket servers, one daemon of either kind -----------------------
class Programs:
    """The UDF programs in a directory, and the socket servers of the socket functions."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        for name, code in PROGRAMS.items():
            (directory / f"{name}.py").write_text(code)
        self.servers: list[subprocess.Popen[bytes]] = []

    def path(self, program: str) -> Path:
        example = EXAMPLES / f"{program}.py"
        return example if example.exists() else self.dir / f"{program}.py"

    def socket_path(self, fn: Function) -> str:
        return str(self.dir / f"{fn.name}.sock")

    def start_servers(self) -> None:
        for fn in FUNCTIONS:
            if fn.socket:
                path = self.socket_path(fn)
                self.servers.append(subprocess.Popen(
                    [PYTHON, "-u", str(self.path(fn.program)), *fn.args, "--socket", path],
                    stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 15
        while not all(os.path.exists(self.socket_path(fn)) for fn in FUNCTIONS if fn.socket):
            if time.monotonic() > deadline:
                raise RuntimeError("the socket UDF servers did not start")
            time.sleep(0.05)

    def stop_servers(self) -> None:
        for server in self.servers:
            server.kill()
            server.wait(10)

    def config(self) -> dict[str, dict[str, Any]]:
        """``[udf.functions]`` for every function."""
        out: dict[str, dict[str, Any]] = {}
        for fn in FUNCTIONS:
            if fn.socket:
                out[fn.name] = {"socket": self.socket_path(fn), "timeout": fn.timeout}
            else:
                out[fn.name] = {"prog": PYTHON,
                                "args": ["-u", str(self.path(fn.program)), *fn.args],
                                "timeout": fn.timeout}
        return out

    def toml(self) -> str:
        lines = []
        for name, conf in self.config().items():
            lines.append(f"[udf.functions.{name}]")
            for key, value in conf.items():
                lines.append(f"  {key} = {json.dumps(value)}")
        return "\n".join(lines) + "\n"


def define(url: str, case: Case) -> httpx.Response:
    return httpx.post(url + API + "/tasks", json={
        "id": case.name, "type": case.kind, "script": case.script, "status": "enabled"},
        timeout=30)


def write(url: str, points: str) -> None:
    response = httpx.post(url + API + "/write?db=db&rp=rp&precision=s", content=points,
                          timeout=30)
    assert response.status_code == 204, response.text


def output(url: str, task: str) -> Any:
    response = httpx.get(f"{url}{API}/tasks/{task}/out", timeout=30)
    return response.json() if response.status_code == 200 else {"status": response.status_code}


def task_state(url: str, task: str) -> dict[str, Any] | None:
    response = httpx.get(f"{url}{API}/tasks/{task}", timeout=30)
    if response.status_code != 200:
        return None
    view = response.json()
    return {"error": view.get("error", ""), "executing": view.get("executing")}


def start(url: str, case: Case) -> dict[str, Any]:
    """Define the case's task (enabled) and write its points; the definition's answer."""
    response = define(url, case)
    if response.status_code == 200 and case.points:
        write(url, case.points)
    return {"status": response.status_code,
            "error": response.json().get("error") if response.status_code != 200 else ""}


def observe(url: str, case: Case, started: dict[str, Any]) -> dict[str, Any]:
    """What the started case shows now: its output, or the definition's answer and the
    task's state."""
    if case.until == "output":
        got = output(url, case.name)
        return {"output": _query_times(got) if case.kind == "batch" else got}
    return {**started, "task": task_state(url, case.name)}


def _query_times(out: Any) -> Any:
    """A batch query's end is the time it ran: its ``tmax``, and a row at that time
    (the data is from 1970), show as ``T``."""
    out = json.loads(re.sub(r"tmax=\d+", "tmax=T", json.dumps(out)))
    for series in out.get("series") or ():
        for row in series.get("values") or ():
            if not str(row[0]).startswith("1970-"):
                row[0] = "T"
    return out


@contextlib.contextmanager
def influx_with_data() -> Iterator[str]:
    """A real InfluxDB holding INFLUX_POINTS in udfdb.autogen; yields its URL."""
    from tests.integration.influxd import InfluxD

    with InfluxD() as server:
        server.query('CREATE DATABASE "udfdb"')
        response = httpx.post(server.url + "/write", params={"db": "udfdb", "precision": "s"},
                              content=INFLUX_POINTS, timeout=30)
        assert response.status_code == 204, response.text
        yield server.url


def settle(url: str, case: Case, done: Callable[[dict[str, Any]], bool],
           timeout: float) -> dict[str, Any]:
    """Start a case and poll what it shows until ``done`` (or the timeout)."""
    started = start(url, case)
    deadline = time.monotonic() + timeout
    while True:
        got = observe(url, case, started)
        if done(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


# -- the tests ---------------------------------------------------------------------------------
#: Cases where kapa-core deliberately does more than Kapacitor 1.5.7, and why.
DIFFERS = {
    "error_response": "Kapacitor logs the error response and leaves the task executing "
                      "with no error and no output (a keepalive timeout is logged later); "
                      "kapa-core fails the task with the UDF's message",
    "crash": "Kapacitor leaves the task executing with no error until a keepalive timeout "
             "is logged; kapa-core fails the task with the exit status and stderr tail",
    "malformed": "Kapacitor leaves the task executing with no error until a keepalive "
                 "timeout is logged; kapa-core fails the task with the read error",
    "keepalive": "Kapacitor logs the keepalive timeout and kills the process, leaving the "
                 "task executing with no error; kapa-core fails the task with that message",
}


#: Answers kapa-core gives otherwise on purpose: case -> (Kapacitor's answer -> kapa-core's).
ADJUSTED: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    # a task that cannot start is refused with 400 (Kapacitor: 500), the same message
    "stream_into_batch_udf": lambda answer: {**answer, "status": 400},
    "batch_into_stream_udf": lambda answer: {**answer, "status": 400},
    # the TICKscript error names the config section that would define the function
    "unknown_udf": lambda answer: {**answer, "error": answer["error"] + " (no UDF named "
                                   "'nosuch' is configured: [udf.functions.nosuch])"},
}


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    """Kapacitor's answers, as kapa-core is to give them."""
    cases = json.loads(EXPECTED_FILE.read_text())["cases"]
    return {name: ADJUSTED.get(name, dict)(answer) for name, answer in cases.items()}


@pytest.fixture(scope="module")
def programs() -> Iterator[Programs]:
    # a short directory: unix socket paths are limited to about 100 bytes
    with tempfile.TemporaryDirectory(prefix="udfx-") as directory:
        progs = Programs(Path(directory))
        progs.start_servers()
        try:
            yield progs
        finally:
            progs.stop_servers()


@pytest.fixture(scope="module")
def daemon_url(programs: Programs) -> Iterator[str]:
    from kapa_core.testing import DaemonProcess

    with influx_with_data() as influx_url, DaemonProcess({
            "udf": {"functions": programs.config()}, "logging": {"level": "INFO"},
            "influxdb": [{"enabled": True, "name": "default", "urls": [influx_url],
                          "disable-subscriptions": True}]}) as daemon:
        daemon.wait_for_log(r'msg="UDF available" .*udf=rename')
        yield daemon.url


def _wanted(case: Case, expected: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    if case.name in DIFFERS:
        return lambda got: bool(got["task"] and got["task"]["error"])
    return lambda got: got == expected[case.name]


@pytest.fixture(scope="module")
def kapa_answers(daemon_url: str, expected: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every case started at once on the daemon, then observed until each shows what
    Kapacitor showed (or a deadline passes): the cases run side by side."""
    answers: dict[str, dict[str, Any]] = {}
    started = {case.name: start(daemon_url, case) for case in CASES}
    running = list(CASES)
    deadline = time.monotonic() + 15
    while running:
        for case in list(running):
            got = observe(daemon_url, case, started[case.name])
            if _wanted(case, expected)(got) or time.monotonic() > deadline:
                answers[case.name] = got
                running.remove(case)
        time.sleep(0.05)
    return answers


SAME = [c for c in CASES if c.name not in DIFFERS]


@pytest.mark.parametrize("case", SAME, ids=[c.name for c in SAME])
def test_kapa_core_answers_as_kapacitor(case: Case, kapa_answers: dict[str, dict[str, Any]],
                                        expected: dict[str, Any]) -> None:
    assert kapa_answers[case.name] == expected[case.name]


def test_the_expected_answers_show_real_output(expected: dict[str, Any]) -> None:
    """The recording holds data for every output case (a UDF that never answered would
    record empty outputs and make the comparison meaningless)."""
    for case in CASES:
        if case.until == "output":
            assert expected[case.name]["output"].get("series"), case.name


def test_an_error_response_fails_the_task_with_the_udfs_message(
        kapa_answers: dict[str, dict[str, Any]], expected: dict[str, Any]) -> None:
    # Kapacitor: the task stays executing, silent
    assert expected["error_response"]["task"] == {"error": "", "executing": True}
    got = kapa_answers["error_response"]
    assert got["status"] == 200
    assert got["task"]["executing"] is False
    assert got["task"]["error"].startswith(
        "failing2: error processing request of type point: cannot take error_response"), got


def test_a_crash_fails_the_task_with_the_exit_status(
        kapa_answers: dict[str, dict[str, Any]], expected: dict[str, Any]) -> None:
    assert expected["crash"]["task"] == {"error": "", "executing": True}
    got = kapa_answers["crash"]
    assert got["task"]["executing"] is False
    assert got["task"]["error"].startswith("crashing2: "), got
    assert "exited with status 3" in got["task"]["error"], got


def test_a_malformed_frame_fails_the_task_with_a_read_error(
        kapa_answers: dict[str, dict[str, Any]], expected: dict[str, Any]) -> None:
    assert expected["malformed"]["task"] == {"error": "", "executing": True}
    got = kapa_answers["malformed"]["task"]
    assert got["executing"] is False
    assert got["error"].startswith("garbage2: read error: "), got


def test_a_silent_udf_fails_the_task_after_its_timeout(
        kapa_answers: dict[str, dict[str, Any]], expected: dict[str, Any]) -> None:
    assert expected["keepalive"]["task"] == {"error": "", "executing": True}
    got = kapa_answers["keepalive"]["task"]
    assert got["executing"] is False
    # Kapacitor's words (it logs them), then what became of the process
    assert re.fullmatch(r"silent2: keepalive timedout, last keepalive received was: "
                        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? \+0000 UTC"
                        r" \(process killed by signal 9\)", got["error"]), got


def test_a_process_and_a_socket_udf_give_the_same_output(
        kapa_answers: dict[str, dict[str, Any]]) -> None:
    pairs = [("avg_movingAvg", "avg_movingAvgSocket"), ("outl_outliers", "outl_outliersSocket"),
             ("mirror_mirror", "mirror_mirrorSocket"),
             ("mirrorb_mirrorBatch", "mirrorb_mirrorBatchSocket")]
    for process, socket_ in pairs:
        a = json.dumps(kapa_answers[process]["output"]).replace(process, "X")
        assert a == json.dumps(kapa_answers[socket_]["output"]).replace(socket_, "X")


def test_the_outliers_are_those_kapacitors_example_finds(
        kapa_answers: dict[str, dict[str, Any]]) -> None:
    series = {s["tags"]["host"]: [row[1] for row in s["values"]]
              for s in kapa_answers["outl_outliers"]["output"]["series"]}
    # a: Kapacitor's TestServer_UDFBatchAgents data, 5 outliers (Q1 = 35, Q3 = 54, fences
    # 6.5 and 82.5); b: Q1 = 10.5, Q3 = 12, fences 8.25 and 14.25; in the order of values
    assert series == {"a": [5, 6, 85, 90, 100], "b": [-40, 90]}


def _rounded(answer: Any) -> Any:
    """``answer`` with its floats rounded to 9 decimals (Kapacitor's moving average
    updates its mean incrementally: the last digits differ)."""
    if isinstance(answer, float):
        return round(answer, 9)
    if isinstance(answer, list):
        return [_rounded(a) for a in answer]
    if isinstance(answer, dict):
        return {k: _rounded(v) for k, v in answer.items()}
    return answer


@pytest.mark.parametrize("case", sorted(KAPACITOR_EXAMPLES))
def test_the_examples_answer_as_kapacitors_own_examples(case: str,
                                                       expected: dict[str, Any]) -> None:
    """On Kapacitor 1.5.7, moving_avg.py and outliers.py gave what Kapacitor's own
    examples (with its own Python agent) gave."""
    assert _rounded(expected[case]) == _rounded(expected[f"{case}@kapacitor_example"])


# -- recording Kapacitor's answers ---------------------------------------------------------------
def _own_agent(source: Path, directory: Path) -> str:
    """``[udf.functions]`` TOML running Kapacitor's own examples with its own Python
    agent (beside kapa-core's ``udf_pb2``: Kapacitor's generated one does not load with
    today's protobuf; the messages are the same)."""
    package = directory / "own" / "kapacitor" / "udf"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "agent.py").write_text((source / "py/kapacitor/udf/agent.py").read_text())
    (package / "udf_pb2.py").write_text((ROOT / "kapa_core/udf/udf_pb2.py").read_text())
    lines = []
    for ours, (theirs, example) in KAPACITOR_EXAMPLES.items():
        lines += [f"[udf.functions.{theirs}]", f"  prog = {json.dumps(PYTHON)}",
                  f"  args = {json.dumps(['-u', str(source / 'examples' / example)])}",
                  '  timeout = "10s"', f"  [udf.functions.{theirs}.env]",
                  f"    PYTHONPATH = {json.dumps(str(directory / 'own'))}"]
    return "\n".join(lines) + "\n"


def _as_kapacitor_example(case: Case) -> Case:
    """``case`` with Kapacitor's example in place of kapa-core's (and a task and
    measurement of its own)."""
    theirs = KAPACITOR_EXAMPLES[case.name][0]
    ours = {"example_avg": "movingAvg", "example_outliers": "outliers"}[case.name]
    name = f"{case.name}_kapacitor"
    return Case(name, case.script.replace(f"@{ours}()", f"@{theirs}()")
                .replace(case.name, name), case.points.replace(case.name, name))


def record(kapacitord: str, source: Path) -> dict[str, Any]:
    from tests.compat.oracle import Kapacitor

    with tempfile.TemporaryDirectory(prefix="udfx-") as directory, \
            contextlib.ExitStack() as stack:
        progs = Programs(Path(directory))
        progs.start_servers()
        server = None
        try:
            influx_url = stack.enter_context(influx_with_data())
            server = Kapacitor(kapacitord, influx_url, extra_conf=progs.toml()
                               + _own_agent(source, Path(directory)))
            answers = {}
            for case in CASES:
                answers[case.name] = _stable(server.url, case)
                if case.name in DIFFERS:
                    answers[case.name]["kapa_core_differs"] = DIFFERS[case.name]
                print(f"{case.name}: {json.dumps(answers[case.name])[:150]}", flush=True)
            for name in KAPACITOR_EXAMPLES:
                variant = _as_kapacitor_example(next(c for c in CASES if c.name == name))
                answer = json.dumps(_stable(server.url, variant))
                key = f"{name}@kapacitor_example"
                answers[key] = json.loads(answer.replace(variant.name, name))
                print(f"{key}: {json.dumps(answers[key])[:150]}", flush=True)
            return answers
        finally:
            if server is not None:
                server.close()
            progs.stop_servers()


def _stable(url: str, case: Case) -> dict[str, Any]:
    """A case's answer on Kapacitor once it has not changed for a while: its output
    once there is one, the task's state two seconds after its start (a refused init
    shows as the task's error)."""
    last: dict[str, Any] = {}
    since = time.monotonic()

    def done(got: dict[str, Any]) -> bool:
        nonlocal last, since
        if got != last:
            last, since = got, time.monotonic()
            return False
        if case.until == "output":
            return bool(got["output"].get("series")) and time.monotonic() - since > 1.0
        return time.monotonic() - since > 2.0

    return settle(url, case, done, timeout=15)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="record Kapacitor's answers to the UDF "
                                     "example cases")
    parser.add_argument("--kapacitord", required=True, help="a kapacitord 1.5.7 binary")
    parser.add_argument("--kapacitor-agent", type=Path, default=KAPACITOR_AGENT,
                        help="udf/agent of Kapacitor's v1.5.7 sources (default: %(default)s)")
    args = parser.parse_args(argv)
    answers = record(args.kapacitord, args.kapacitor_agent)
    with contextlib.suppress(FileNotFoundError):
        kept = json.loads(EXPECTED_FILE.read_text())
        answers = {**kept.get("cases", {}), **answers}
    EXPECTED_FILE.write_text(json.dumps({
        "recorded_with": "kapacitord 1.5.7 (python -m tests.integration.test_udf_examples)",
        "cases": {name: answers[name] for name in sorted(answers)}}, indent=1,
        sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Record how Kapacitor 1.5.7's ``[[graphite]]`` input maps lines, for the template tests.

    python -m tests.compat.graphite_oracle /opt/kbin/kapacitord

starts kapacitord with one graphite listener per case of ``CASES`` (its templates, tags
and separator), sends every line of the case over TCP, one at a time, and writes what
became of it into tests/unit/graphite_kapacitor.json: the point a task received (posted
by an ``httpPost`` node), the parse error Kapacitor logged, or nothing (a NaN value,
dropped without a word). A time within a minute of the wall clock is stored as "now".
It also records the error kapacitord gives at start for each config of ``BAD_CONFIGS``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from kapa_core.testing import RecordingHTTPServer
from tests.compat.oracle import KAPACITOR_CONF, free_port

OUT = Path(__file__).resolve().parents[1] / "unit" / "graphite_kapacitor.json"

CASES: list[dict] = [
    {"name": "default template", "lines": [
        "cpu.idle.host1 1 1356998400", "x 5 1356998400", "a..b 2 1356998400"]},
    {"name": "default template, separator", "separator": "_", "lines": [
        "cpu.idle.host1 1 1356998400", "single 2 1356998400"]},
    {"name": "host measurement field", "templates": ["host.measurement.field"], "lines": [
        "h1.cpu.idle 1.5 1356998400", "h1.cpu 2 1356998400", "h1.cpu.idle.extra 3 1356998400",
        "h1 4 1356998400"]},
    {"name": "greedy measurement", "templates": [".host.measurement*"], "lines": [
        "servers.localhost.cpu.loadavg.10 0.5 1356998400", "servers.localhost 1 1356998400"]},
    {"name": "greedy measurement, separator", "separator": "_",
     "templates": [".host.measurement*"], "lines": [
         "servers.localhost.cpu.loadavg.10 0.5 1356998400"]},
    {"name": "two fields", "templates": ["measurement.measurement.field.field.region"],
     "lines": ["cpu.usage.idle.percent.eu-east 99 1356998400"]},
    {"name": "greedy field", "separator": "_", "templates": ["measurement.host.field*"],
     "lines": ["cpu.h1.user.total 1 1356998400", "cpu.h1.user 2 1356998400"]},
    {"name": "greedy field and measurement", "templates": ["measurement*.field*"],
     "lines": ["a.b 1 1356998400"]},
    {"name": "filters", "templates": [
        "cpu.* measurement.measurement.host", "mem.* measurement.field.host",
        "*.app env.service.resource.measurement",
        "stats.*.count .host.measurement* type=count",
        "stats.* .host.measurement* region=us-west,agent=sensu",
        "measurement.host region=default"], "lines": [
        "cpu.load.h1 1 1356998400", "mem.free.h2 2 1356998400", "prod.app.web.req 3 1356998400",
        "stats.h3.count.requests 4 1356998400", "stats.h3.requests 5 1356998400",
        "other.h4 6 1356998400", "cpu 7 1356998400", "cpu.load 8 1356998400",
        "dev.app 9 1356998400"]},
    {"name": "tags joined", "templates": ["region.region.measurement"], "lines": [
        "us.west.cpu 1 1356998400", "us.west 2 1356998400"]},
    {"name": "template tag then part", "separator": "-",
     "templates": ["region.measurement region=z"], "lines": ["eu.cpu 1 1356998400"]},
    {"name": "default tags", "tags": ["dc=x", "host=default"],
     "templates": ["measurement.host"], "lines": [
         "cpu.h1 1 1356998400", "cpu 2 1356998400"]},
    {"name": "default tags and template tags", "tags": ["dc=x", "zone=a"],
     "templates": ["measurement.host zone=b,rack=r1"], "lines": ["cpu.h1 1 1356998400"]},
    {"name": "values", "lines": [
        "v.a 1e3 1356998400", "v.b -2.5 1356998400", "v.c abc 1356998400",
        "v.d NaN 1356998400", "v.e +Inf 1356998400", "v.f 1e400 1356998400",
        "v.g 0x1p-2 1356998400", "v.h 1_0 1356998400", "v.i -inf 1356998400",
        "v.j .5 1356998400", "v.k 7. 1356998400", "v.l 0 1356998400"]},
    {"name": "timestamps", "lines": [
        "t.a 1 1356998400.25", "t.b 1 -1", "t.c 1 N", "t.d 1 3000000000",
        "t.e 1 -2147558401", "t.f 1 1356998400.1", "t.g 1", "t.h 1 2 3", "t.i",
        "t.j 1 -2147558400", "t.k 1 2147472000", "t.l 1 2147472001", "t.m 1 1e9",
        "t.n 1 -1.0", "t.o 1 -0.5"]},
    {"name": "empty template parts", "templates": ["measurement..host"], "lines": [
        "cpu.skipped.h1 1 1356998400"]},
    {"name": "wildcard inherits", "templates": [
        "a measurement.x", "a.*.c measurement.y.z"], "lines": [
        "a.q.d 1 1356998400", "a.q.c 2 1356998400", "a 3 1356998400", "b.q 4 1356998400",
        "a.q 5 1356998400"]},
    {"name": "exact before wildcard", "templates": [
        "*.b measurement.one", "a.* measurement.two", "a.b.c measurement.three.x"], "lines": [
        "a.b 1 1356998400", "z.b 2 1356998400", "a.z 3 1356998400", "a.b.c 4 1356998400",
        "a.b.d 5 1356998400"]},
]

BAD_CONFIGS: list[dict] = [
    {"templates": ["measurement.host", "measurement.field"]},
    {"templates": ["host.field"]},
    {"templates": ["a b c d"]},
    {"templates": ["cpu.*.a* measurement"]},
    {"templates": ["cpu..x measurement"]},
    {"templates": ["measurement region"]},
    {"templates": ["measurement region=a,b"]},
    {"templates": ["measurement region="]},
    {"templates": [""]},
    {"tags": ["a"]},
    {"tags": ["=b"]},
]


def toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def listener_conf(i: int, port: int, case: dict) -> str:
    conf = (f'[[graphite]]\n  enabled = true\n  bind-address = "127.0.0.1:{port}"\n'
            f'  database = "g{i}"\n  retention-policy = "autogen"\n  batch-timeout = "5ms"\n'
            f'  batch-size = 1\n')
    if "separator" in case:
        conf += f'  separator = "{case["separator"]}"\n'
    if case.get("templates"):
        conf += f'  templates = {toml_list(case["templates"])}\n'
    if case.get("tags"):
        conf += f'  tags = {toml_list(case["tags"])}\n'
    return conf


def start(binary: str, extra: str) -> tuple[subprocess.Popen, str, Path]:
    directory = Path(tempfile.mkdtemp(prefix="kapacitor-graphite-"))
    port = free_port()
    conf = KAPACITOR_CONF.format(dir=directory, port=port, influx_enabled="false",
                                 influx_url="http://127.0.0.1:8086")
    conf = conf.replace('level = "ERROR"', 'level = "INFO"') + extra
    (directory / "k.conf").write_text(conf, encoding="utf-8")
    proc = subprocess.Popen([binary, "-config", str(directory / "k.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return proc, f"http://127.0.0.1:{port}", directory


def startup_error(binary: str, case: dict) -> str:
    proc, _, _ = start(binary, listener_conf(0, free_port(), case))
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return ""
    found = re.search(r"invalid configuration: (.*?)\. To generate", err)
    return found.group(1) if found else err.strip().splitlines()[-1]


def point_of(body: bytes) -> dict:
    series = json.loads(body)["series"][0]
    row = dict(zip(series["columns"], series["values"][0], strict=True))
    stamp = row.pop("time")
    when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    if abs(when.timestamp() - time.time()) < 60:
        stamp = "now"
    return {"name": series["name"], "tags": series.get("tags") or {}, "fields": row,
            "time": stamp}


def main(binary: str) -> None:
    ports = [free_port() for _ in CASES]
    extra = "".join(listener_conf(i, p, c) for i, (p, c) in enumerate(zip(ports, CASES,
                                                                          strict=True)))
    recorder = RecordingHTTPServer()
    recorder.__enter__()
    proc, url, directory = start(binary, extra)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/kapacitor/v1/ping").status_code == 204:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("kapacitord did not start")
            time.sleep(0.1)
        for i in range(len(CASES)):
            script = (f'dbrp "g{i}"."autogen"\nstream|from()'
                      f"|httpPost('{recorder.url}/g{i}')")
            answer = httpx.post(url + "/kapacitor/v1/tasks", json={
                "id": f"g{i}", "type": "stream", "script": script, "status": "enabled"})
            assert answer.status_code == 200, answer.text
        log = directory / "kapacitor.log"
        results = []
        for i, (port, case) in enumerate(zip(ports, CASES, strict=True)):
            outcomes = []
            for line in case["lines"]:
                seen, logged = len(recorder.requests), len(log.read_text())
                with socket.create_connection(("127.0.0.1", port)) as conn:
                    conn.sendall(line.encode() + b"\n")
                    deadline = time.monotonic() + 1.5
                    outcome: dict = {"line": line}
                    while time.monotonic() < deadline:
                        if len(recorder.requests) > seen:
                            outcome["point"] = point_of(recorder.requests[seen].body)
                            break
                        text = log.read_text()[logged:]
                        found = re.search(r'unable to parse line: (.*)\\n" service=graphite',
                                          text)
                        if found:
                            error = found.group(1).replace('\\"', '"')
                            outcome["error"] = error[len(line) + 2:]
                            break
                        time.sleep(0.02)
                    else:
                        outcome["dropped"] = True
                outcomes.append(outcome)
            results.append({k: v for k, v in case.items() if k != "lines"}
                           | {"outcomes": outcomes})
            print(f"case {i} done", file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait(10)
        recorder.__exit__(None, None, None)
    bad = [{"config": case, "error": startup_error(binary, case)} for case in BAD_CONFIGS]
    OUT.write_text(json.dumps({"kapacitor": "1.5.7", "cases": results, "bad_configs": bad},
                              indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/opt/kbin/kapacitord")

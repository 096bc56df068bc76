"""The ``kapa`` client against a kapa-core daemon, compared with what Kapacitor 1.5.7's
``kapacitor`` client prints against kapacitord for the same sequence of commands.

``kapa_client_expected.json`` holds the real client's answers (stdout, stderr, exit
code of every step, volatile parts normalised). To make it again::

    python -m tests.integration.test_kapa_client --record \\
        --kapacitor /opt/kbin/kapacitor --kapacitord /opt/kbin/kapacitord

``--against-kapacitord`` instead runs ``kapa`` against the real kapacitord and prints
every difference from the stored answers; ``--client /opt/kbin/kapacitor`` runs another
client against kapa-core (a daemon started for the run).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from kapa_core.testing import DaemonProcess

pytestmark = pytest.mark.integration

EXPECTED = Path(__file__).with_name("kapa_client_expected.json")
KAPA = [sys.executable, "-m", "kapa_core.cli.kapa"]
#: As the oracle's kapacitord runs: no internal statistics stream (it would show in
#: ``stats ingress``).
DAEMON_CONFIG = {"logging": {"level": "ERROR"}, "stats": {"enabled": False}}

FILES = {
    "cpu.tick": """stream
    |from()
        .measurement('cpu')
    |alert()
        .id('cpu:{{ index .Tags "host" }}')
        .message('{{ .ID }} is {{ .Level }}')
        .crit(lambda: "usage" > 90)
        .topic('cpu')
""",
    "cpu2.tick": """stream
    |from()
        .measurement('cpu')
    |alert()
        .id('cpu:{{ index .Tags "host" }}')
        .message('{{ .ID }} is {{ .Level }}')
        .warn(lambda: "usage" > 50)
        .crit(lambda: "usage" > 90)
        .topic('cpu')
""",
    "batch.tick": """batch
    |query('SELECT mean(usage) FROM "telegraf"."autogen".cpu')
        .period(5m)
        .every(5m)
    |log()
""",
    "template.tick": """// the measurement to watch
var measurement string
var where_filter = lambda: TRUE
var groups = [*]
var field = 'usage'
var crit lambda
var window = 5m
var scale = 1.5
var count = 3
var name = 'tmpl'

stream
    |from()
        .measurement(measurement)
        .where(where_filter)
        .groupBy(groups)
    |window()
        .period(window)
        .every(window)
    |mean(field)
    |eval(lambda: "mean" * scale)
        .as('value')
    |alert()
        .crit(crit)
        .topic(name)
""",
    "vars.json": json.dumps({
        "measurement": {"type": "string", "value": "mem"},
        "where_filter": {"type": "lambda", "value": "\"host\" == 'a'"},
        "groups": {"type": "list", "value": [{"type": "string", "value": "host"},
                                             {"type": "string", "value": "dc"}]},
        "crit": {"type": "lambda", "value": "\"mean\" > 80"},
        "window": {"type": "duration", "value": "10m"},
        "scale": {"type": "float", "value": 2.5},
        "count": {"type": "int", "value": 7},
    }),
    "task.yaml": """id: fromfile
template-id: tmpl
dbrps:
  - db: telegraf
    rp: autogen
vars:
  measurement:
    type: string
    value: disk
  crit:
    type: lambda
    value: '"mean" > 95'
""",
    "handler.yaml": """topic: cpu
id: log1
kind: log
options:
  path: /tmp/kapa-client-alerts.log
""",
    "handler2.json": json.dumps({
        "topic": "cpu", "id": "post1", "kind": "post", "match": "changed() == TRUE",
        "options": {"url": "http://127.0.0.1:9/alerts", "headers": {"X-A": "<b>&"}},
    }),
    "handler3.json": json.dumps({"topic": "cpu", "id": "log1", "kind": "log",
                                 "options": {"path": "/tmp/kapa-client-alerts2.log",
                                             "mode": 420}}),
    "bad.json": "{not json",
}

#: The steps: a command line (``{dir}`` is the files' directory, ``{url}`` the server),
#: or ``("write", db, rp, lines)`` to write points, or ``("wait", seconds)``.
Step = tuple[Any, ...]
STEPS: list[Step] = [
    ("define", "cpu", "-type", "stream", "-tick", "{dir}/cpu.tick",
     "-dbrp", "telegraf.autogen"),
    ("define", "b1", "-type", "batch", "-tick", "{dir}/batch.tick",
     "-dbrp", '"tele graf"."rp"', "-dbrp", "other.autogen"),
    ("list", "tasks"),
    ("show", "cpu"),
    ("enable", "cpu"),
    ("list", "tasks", "c*", "b*"),
    ("define", "cpu", "-tick", "{dir}/cpu2.tick"),
    ("show", "-replay", "", "cpu"),
    ("define-template", "tmpl", "-type", "stream", "-tick", "{dir}/template.tick"),
    ("list", "templates"),
    ("show-template", "tmpl"),
    ("define", "fromtmpl", "-template", "tmpl", "-vars", "{dir}/vars.json",
     "-dbrp", "telegraf.autogen"),
    ("show", "fromtmpl"),
    ("define", "fromfile", "-file", "{dir}/task.yaml"),
    ("define", "other", "-file", "{dir}/task.yaml"),
    ("show", "fromfile"),
    ("list", "tasks"),
    ("disable", "cpu"),
    ("enable", "c*", "from*"),
    ("reload", "cpu"),
    ("disable", "fromtmpl", "fromfile"),
    ("list", "tasks", "*"),
    ("define-topic-handler", "{dir}/handler.yaml"),
    ("define-topic-handler", "{dir}/handler2.json"),
    ("define-topic-handler", "{dir}/handler3.json"),
    ("define-topic-handler", "{dir}/bad.json"),
    ("define-topic-handler", "{dir}/nothere.yaml"),
    ("write", "telegraf", "autogen", [
        "cpu,host=a usage=95 1000000000000000000",
        "cpu,host=b usage=10 1000000002000000000",
        "cpu,host=c usage=60 1000000001000000000",
    ]),
    ("wait", 1.0),
    ("list", "topics"),
    ("list", "topic-handlers"),
    ("list", "topic-handlers", "c*", "log*"),
    ("show-topic-handler", "cpu", "post1"),
    ("show-topic-handler", "cpu", "log1"),
    ("show-topic", "cpu"),
    ("stats", "ingress"),
    ("list", "service-tests", "smtp", "alerta"),
    ("service-tests", "smtp", "alerta"),
    ("level", "debug"),
    ("level", "bogus"),
    ("show-topic-handler", "cpu", "nosuch"),
    ("delete", "topic-handlers", "cpu", "post*"),
    ("list", "topic-handlers"),
    ("delete", "tasks", "from*"),
    ("delete", "templates", "tmpl"),
    ("delete", "topics", "cpu"),
    ("delete", "tasks", "nosuch"),
    ("list", "tasks"),
    ("list", "templates"),
    ("list", "topics"),
]


#: Steps that change nothing and depend on nothing the steps above do: they run
#: alongside them (each command is a new process, most of the time is its start).
CHECKS: list[Step] = [
    ("define", "cpu", "-type", "stream", "-tick", "{dir}/missing.tick",
     "-dbrp", "telegraf.autogen"),
    ("define", "x", "-bogus", "1"),
    ("define", "x", "-dbrp", "nodot"),
    ("define", "x", "-tick"),
    ("define",),
    ("level",),
    ("show", "nosuch"),
    ("show-template", "nosuch"),
    ("show-topic", "nosuch"),
    ("show-topic-handler", "cpu"),
    ("show",),
    ("list",),
    ("list", "bogus"),
    ("delete", "tasks"),
    ("delete", "bogus", "x"),
    ("enable",),
    ("enable", "nosuch"),
    ("stats",),
    ("stats", "bogus"),
    ("service-tests",),
    ("help",),
    ("help", "show"),
    ("help", "define"),
    ("help", "define-template"),
    ("help", "service-tests"),
    ("help", "replay-live"),
    ("help", "push"),
    ("push",),
    ("bogus",),
    ("-x", "list", "tasks"),
    ("-skipVerify=maybe", "list", "tasks"),
    ("-url", "http://127.0.0.1:1", "list", "tasks"),
    ("-url", "ftp://x", "list", "tasks"),
    ("-url", "{url}", "list", "tasks", "nosuch"),
    ("--url={url}", "--", "list", "topics", "nosuch"),
    ("-skipVerify", "list", "templates", "nosuch"),
    ("define", "x", "-vars", "{dir}/bad.json"),
    ("define", "x", "-file", "{dir}/bad.json"),
    ("define", "x", "-file", "{dir}/cpu.tick"),
    ("define-topic-handler",),
    ("define-template",),
]


# -- normalising what changes from run to run ------------------------------------------
def normalise(text: str, url: str, workdir: str) -> str:
    text = text.replace(workdir, "{dir}").replace(url, "{url}")
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", text)
    lines = []
    for line in text.split("\n"):
        if line.startswith(("Created:", "Modified:", "LastEnabled:")):
            label = line.split(":", 1)[0]
            zero = line.endswith("01 Jan 01 00:00 UTC")
            line = f"{label}: " + ("<zero time>" if zero else "<time>")
        lines.append(line)
    text = "\n".join(lines)
    # node statistics in the DOT output depend on timing
    text = re.sub(r'avg_exec_time_ns="[^"]*"', 'avg_exec_time_ns="T"', text)
    return text


def run_step(client: Sequence[str], url: str, workdir: str, step: Step) -> dict[str, Any]:
    args = [str(a).replace("{dir}", workdir).replace("{url}", url) for a in step]
    env = {**os.environ, "KAPACITOR_URL": url, "TZ": "UTC"}
    env.pop("KAPACITOR_UNSAFE_SSL", None)
    result = subprocess.run([*client, *args], capture_output=True, text=True, env=env,
                            cwd=workdir, timeout=60, check=False)
    return {"args": list(step), "code": result.returncode,
            "stdout": normalise(result.stdout, url, workdir),
            "stderr": normalise(result.stderr, url, workdir)}


def run_scenario(client: Sequence[str], url: str,
                 on_step: Callable[[dict[str, Any]], None] | None = None
                 ) -> list[dict[str, Any]]:
    """Every step of STEPS in order, CHECKS in a second thread meanwhile; the results
    of STEPS then those of CHECKS."""
    results = []
    with tempfile.TemporaryDirectory(prefix="kapa-client-") as workdir:
        for name, content in FILES.items():
            Path(workdir, name).write_text(content, encoding="utf-8")
        http = httpx.Client(base_url=url, timeout=30)
        with ThreadPoolExecutor(max_workers=1) as pool:
            checks = pool.submit(lambda: [run_step(client, url, workdir, step)
                                          for step in CHECKS])
            for step in STEPS:
                if step[0] == "write":
                    _, db, rp, lines = step
                    response = http.post("/kapacitor/v1/write",
                                         params={"db": db, "rp": rp},
                                         content="\n".join(lines).encode())
                    assert response.status_code == 204, response.text
                    continue
                if step[0] == "wait":
                    time.sleep(step[1])
                    continue
                result = run_step(client, url, workdir, step)
                results.append(result)
                if on_step is not None:
                    on_step(result)
            for result in checks.result():
                results.append(result)
                if on_step is not None:
                    on_step(result)
        http.close()
    return results


def differences(got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> list[str]:
    out = []
    for g, e in zip(got, expected):
        assert g["args"] == e["args"], (g["args"], e["args"])
        for key in ("code", "stdout", "stderr"):
            if g[key] != e[key]:
                out.append(f"$ kapa {' '.join(map(str, g['args']))}\n  {key}: expected "
                           f"{e[key]!r}\n  {' ' * len(key)}  got      {g[key]!r}")
    if len(got) != len(expected):
        out.append(f"{len(got)} steps run, {len(expected)} expected")
    return out


# -- the tests ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def daemon() -> Any:
    with DaemonProcess(DAEMON_CONFIG) as d:
        yield d


@pytest.fixture(scope="module")
def scenario(daemon: DaemonProcess) -> list[dict[str, Any]]:
    return run_scenario(KAPA, daemon.url)


def _expected() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(EXPECTED.read_text(encoding="utf-8"))["steps"]
    return data


def test_every_step_prints_what_kapacitor_prints(scenario: list[dict[str, Any]]) -> None:
    diffs = differences(scenario, _expected())
    assert not diffs, "\n".join(diffs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--record", action="store_true")
    parser.add_argument("--against-kapacitord", action="store_true")
    parser.add_argument("--client", help="a client to run against kapa-core")
    parser.add_argument("--kapacitor", default="/opt/kbin/kapacitor")
    parser.add_argument("--kapacitord", default="/opt/kbin/kapacitord")
    opts = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.compat.oracle import Kapacitor

    def show(result: dict[str, Any]) -> None:
        print(f"$ {' '.join(map(str, result['args']))}  -> {result['code']}", flush=True)

    if opts.record or opts.against_kapacitord:
        server = Kapacitor(opts.kapacitord)
        try:
            client = [opts.kapacitor] if opts.record else KAPA
            results = run_scenario(client, server.url, show)
        finally:
            server.close()
        if opts.record:
            EXPECTED.write_text(json.dumps(
                {"made_with": "kapacitor and kapacitord 1.5.7", "steps": results},
                indent=1) + "\n", encoding="utf-8")
            return 0
    else:
        with DaemonProcess(DAEMON_CONFIG) as d:
            results = run_scenario([opts.client] if opts.client else KAPA, d.url, show)
    diffs = differences(results, _expected())
    print("\n".join(diffs) or "no differences")
    return 1 if diffs else 0


if __name__ == "__main__":
    raise SystemExit(main())

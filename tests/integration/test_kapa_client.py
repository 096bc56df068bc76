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
KAPACITOR_CLIENT = "/opt/kbin/kapacitor"
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
    "taskvars.json": json.dumps({"id": "fromtmpl", "vars": {
        "measurement": {"type": "string", "value": "swap"},
        "crit": {"type": "lambda", "value": "\"mean\" > 70"}}}),
    "onlyvars.json": json.dumps({"vars": {
        "measurement": {"type": "string", "value": "net"}}}),
}

#: The steps: a command line (``{dir}`` is the files' directory, ``{url}`` the server),
#: or ``("write", db, rp, lines)`` to write points, or ``("wait_events", topic, n)`` to
#: wait until the topic has n events.
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
    ("define", "fromtmpl", "-vars", "{dir}/taskvars.json"),
    ("define", "fromtmpl", "-vars", "{dir}/onlyvars.json"),
    ("define-template", "tmpl", "-tick", "{dir}/template.tick"),
    ("show", "fromtmpl"),
    ("show", "b1"),
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
    ("wait_events", "cpu", 3),
    ("list", "topics"),
    ("list", "topic-handlers"),
    ("list", "topic-handlers", "c*", "log*"),
    ("show-topic-handler", "cpu", "post1"),
    ("show-topic-handler", "cpu", "log1"),
    ("show-topic", "cpu"),
    ("show", "cpu"),
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
    # kapacitor counts the arguments: a task ID and pairs (a lone -no-reload is refused)
    ("define", "cpu", "-tick", "{dir}/cpu.tick", "-no-reload"),
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
    ("-url", "http://a b", "list", "tasks"),
    ("-url", "http://localhost:9a", "list", "tasks"),
    ("-url", "http://localhost:99999", "list", "tasks"),
    ("-url", "http://u:secret@localhost:1", "show", "x"),
    ("-url", "http://localhost:1", "list", "service-tests"),
    ("-url", "://x", "list", "tasks"),
    ("-url", "localhost:9092", "list", "tasks"),
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
    text = re.sub(r'throughput="[^"]*"', 'throughput="T"', text)
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


def _wait_events(http: httpx.Client, topic: str, count: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        response = http.get(f"/kapacitor/v1/alerts/topics/{topic}/events")
        if response.status_code == 200 and len(response.json()["events"]) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"topic {topic} did not get {count} events")


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
                if step[0] == "wait_events":
                    _wait_events(http, step[1], step[2])
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



def kapa(*args: str, url: str | None = None, env: dict[str, str] | None = None,
         shell_input: str | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    if url is not None:
        full_env["KAPACITOR_URL"] = url
    return subprocess.run([*KAPA, *args], capture_output=True, text=True, env=full_env,
                          timeout=60, check=False, input=shell_input)


def test_json_output_on_list_and_show(daemon: DaemonProcess) -> None:
    """``--json`` anywhere after the command prints the API's objects instead of the
    table; the table's flags still parse as Go's flag package parses them."""
    api = httpx.Client(base_url=daemon.url + "/kapacitor/v1", timeout=30)
    script = "stream\n    |from()\n        .measurement('j')\n    |alert()\n        .topic('j')\n"
    assert api.post("/tasks", json={"id": "json_task", "type": "stream", "script": script,
                                    "dbrps": [{"db": "d", "rp": "r"}]}).status_code == 200
    assert api.post("/templates", json={"id": "json_tmpl", "type": "stream",
                                        "script": "var m string\n" + script.replace(
                                            "'j')\n    |alert", "m)\n    |alert", 1)
                                        }).status_code == 200
    handler = {"id": "h1", "kind": "log", "options": {"path": "/tmp/kapa-json.log"}}
    assert api.post("/alerts/topics/j/handlers", json=handler).status_code == 200
    try:
        listed = kapa("list", "tasks", "json_*", "--json", url=daemon.url)
        assert listed.returncode == 0, listed.stderr
        tasks = json.loads(listed.stdout)
        assert [t["id"] for t in tasks] == ["json_task"]
        assert tasks[0]["dbrps"] == [{"db": "d", "rp": "r"}]
        assert tasks[0]["status"] == "disabled"

        shown = kapa("show", "--json", "-replay", "", "json_task", url=daemon.url)
        assert shown.returncode == 0, shown.stderr
        task = json.loads(shown.stdout)
        assert task["id"] == "json_task" and task["script"].startswith("stream")
        assert "digraph json_task" in task["dot"]

        template = json.loads(kapa("show-template", "json_tmpl", "--json",
                                   url=daemon.url).stdout)
        assert template["vars"]["m"]["type"] == "string"
        templates = json.loads(kapa("list", "templates", "--json", url=daemon.url).stdout)
        assert [t["id"] for t in templates] == ["json_tmpl"]
        handlers = json.loads(kapa("list", "topic-handlers", "j", "--json",
                                   url=daemon.url).stdout)
        assert [(h["topic"], h["id"], h["kind"]) for h in handlers] == [("j", "h1", "log")]
        shown_handler = json.loads(kapa("show-topic-handler", "j", "h1", "--json",
                                        url=daemon.url).stdout)
        assert shown_handler["options"] == {"path": "/tmp/kapa-json.log"}
        topics = json.loads(kapa("list", "topics", "j", "--json", url=daemon.url).stdout)
        assert [t["id"] for t in topics] == ["j"]
        topic = json.loads(kapa("show-topic", "j", "--json", url=daemon.url).stdout)
        assert topic["id"] == "j" and [h["id"] for h in topic["handlers"]] == ["h1"]

        # Without --json the same command prints Kapacitor's table.
        table = kapa("list", "tasks", "json_*", url=daemon.url)
        assert table.stdout.splitlines()[0].startswith("ID        Type      Status")
        # --json is not a flag of "define": Go's flag package refuses it there.
        refused = kapa("define", "json_task", "--json", "x", url=daemon.url)
        assert refused.returncode == 2
        assert refused.stderr.startswith("flag provided but not defined: -json\n")
    finally:
        api.delete("/tasks/json_task")
        api.delete("/templates/json_tmpl")
        api.delete("/alerts/topics/j")
        api.close()


def test_stats_general_version_and_vars(daemon: DaemonProcess) -> None:
    general = kapa("stats", "general", url=daemon.url)
    assert general.returncode == 0, general.stderr
    lines = general.stdout.splitlines()
    assert [line[:30].rstrip() for line in lines] == [
        "ClusterID:", "ServerID:", "Host:", "Tasks:", "Enabled Tasks:", "Subscriptions:",
        "Platform:", "Version:"]
    assert all(len(line) >= 60 for line in lines), lines  # %-30s%-30s
    debug = httpx.get(daemon.url + "/kapacitor/v1/debug/vars").json()
    assert lines[0][30:].rstrip() == debug["cluster_id"]
    assert lines[7][30:].rstrip() == debug["version"]
    if os.access(KAPACITOR_CLIENT, os.X_OK):  # the real client, when it is here
        real = subprocess.run([KAPACITOR_CLIENT, "-url", daemon.url, "stats", "general"],
                              capture_output=True, text=True, timeout=60, check=False)
        assert real.stdout == general.stdout
    as_json = json.loads(kapa("stats", "general", "--json", url=daemon.url).stdout)
    assert as_json["server_id"] == debug["server_id"]

    version = kapa("version", url="http://127.0.0.1:1")  # no server needed
    assert version.returncode == 0
    assert re.fullmatch(r"Kapacitor OSS 1\.5\.7 \(git: kapa-core \S+\)\n", version.stdout)

    printed = kapa("vars", url=daemon.url)
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout)["cluster_id"] == debug["cluster_id"]


def test_shell_completion(daemon: DaemonProcess, tmp_path: Path) -> None:
    """The bash script completes commands, kinds and the daemon's task ids."""
    api = httpx.Client(base_url=daemon.url + "/kapacitor/v1", timeout=30)
    script = "stream\n    |from()\n        .measurement('c')\n    |log()\n"
    for task_id in ("compl_a", "compl_b"):
        assert api.post("/tasks", json={"id": task_id, "type": "stream", "script": script,
                                        "dbrps": [{"db": "d", "rp": "r"}]}).status_code == 200
    shim = tmp_path / "kapa"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m kapa_core.cli.kapa "$@"\n')
    shim.chmod(0o755)
    try:
        completion = kapa("completion", "bash")
        assert completion.returncode == 0 and "complete -F _kapa kapa" in completion.stdout
        (tmp_path / "kapa.bash").write_text(completion.stdout)
        probe = (f'source {tmp_path / "kapa.bash"}\n'
                 'complete_words() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _kapa; '
                 'echo "${COMPREPLY[*]}"; }\n'
                 'complete_words kapa sh\n'
                 'complete_words kapa list t\n'
                 'complete_words kapa -url "$KAPACITOR_URL" enable compl_\n'
                 'complete_words kapa stats ""\n')
        env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}",
               "KAPACITOR_URL": "http://127.0.0.1:1"}
        env["KAPACITOR_URL"] = daemon.url
        result = subprocess.run(["bash", "-c", probe], capture_output=True, text=True,
                                env=env, timeout=60, check=False)
        assert result.stdout.splitlines() == [
            "show show-template show-topic-handler show-topic",
            "tasks templates topics topic-handlers",
            "compl_a compl_b",
            "general ingress"], result.stderr
        zsh = kapa("completion", "zsh")
        assert zsh.returncode == 0 and zsh.stdout.startswith("#compdef kapa")
        assert kapa("completion", "fish").returncode == 2
    finally:
        for task_id in ("compl_a", "compl_b"):
            api.delete(f"/tasks/{task_id}")
        api.close()


def test_lists_and_deletes_page_through_more_than_100(daemon: DaemonProcess) -> None:
    """The client asks 100 at a time, as kapacitor does, and goes on while pages are
    full: 103 tasks are all listed (sorted by id), enabled and deleted."""
    api = httpx.Client(base_url=daemon.url + "/kapacitor/v1", timeout=30)
    script = "stream\n    |from()\n        .measurement('p')\n    |log()\n"
    ids = [f"pg{n:03d}" for n in range(103)]
    for task_id in reversed(ids):
        response = api.post("/tasks", json={"id": task_id, "type": "stream",
                                            "script": script,
                                            "dbrps": [{"db": "d", "rp": "r"}]})
        assert response.status_code == 200, response.text
    try:
        listed = kapa("list", "tasks", "pg*", url=daemon.url)
        rows = listed.stdout.splitlines()
        assert [row.split()[0] for row in rows[1:]] == ids
        assert kapa("enable", "pg*", url=daemon.url).returncode == 0
        enabled = api.get("/tasks", params={"pattern": "pg*", "fields": "status",
                                            "limit": "1000"}).json()["tasks"]
        assert {t["status"] for t in enabled} == {"enabled"} and len(enabled) == 103
        deleted = kapa("delete", "tasks", "pg*", url=daemon.url)
        assert deleted.returncode == 0, deleted.stderr
        assert api.get("/tasks", params={"pattern": "pg*"}).json()["tasks"] == []
    finally:
        for task_id in ids:
            api.delete(f"/tasks/{task_id}")
        api.close()


class FakeKapacitor:
    """A small HTTP(S) server answering ``GET /kapacitor/v1/tasks`` as Kapacitor does
    for a user ``ad@min`` with password ``p:ss``, and ``/kapacitor/v1/templates`` with a
    bad gateway page; it keeps the Authorization headers it got."""

    TASKS = {"tasks": [{"link": {"rel": "self", "href": "/kapacitor/v1/tasks/t"},
                        "id": "t", "type": "stream", "status": "enabled",
                        "executing": True, "dbrps": [{"db": "d", "rp": "r"}]}]}

    def __init__(self, cert: tuple[Path, Path] | None = None) -> None:
        import base64
        import ssl
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        good = "Basic " + base64.b64encode(b"ad@min:p:ss").decode()
        seen = self.authorizations = []  # type: list[str | None]

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                seen.append(self.headers.get("Authorization"))
                if self.path.startswith("/kapacitor/v1/templates"):
                    status, body = 502, b"bad gateway"
                elif self.headers.get("Authorization") != good:
                    status, body = 401, b'{"error":"authorization failed"}'
                else:
                    status, body = 200, json.dumps(FakeKapacitor.TASKS).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if cert is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(cert[0]), str(cert[1]))
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def with_user(self, user: str, password: str) -> str:
        return self.url.replace("://", f"://{user}:{password}@", 1)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


TASKS_TABLE = ("ID Type      Status    Executing Databases and Retention Policies\n"
               't  stream    enabled   true      ["d"."r"]\n')


def test_user_and_password_in_the_url_are_basic_auth() -> None:
    server = FakeKapacitor()
    try:
        ok = kapa("-url", server.with_user("ad%40min", "p%3Ass"), "list", "tasks")
        assert (ok.returncode, ok.stdout, ok.stderr) == (0, TASKS_TABLE, "")
        wrong = kapa("list", "tasks", url=server.with_user("ad%40min", "nope"))
        assert (wrong.returncode, wrong.stdout, wrong.stderr) == (
            3, "", "authorization failed\n")
        anonymous = kapa("list", "tasks", url=server.url)
        assert (anonymous.returncode, anonymous.stderr) == (3, "authorization failed\n")
        assert server.authorizations[2] is None
        # An answer that is not Kapacitor's JSON error: the Go client's words.
        page = kapa("list", "templates", url=server.url)
        assert (page.returncode, page.stderr) == (
            3, "invalid response: code 502: body: bad gateway\n")
    finally:
        server.close()


def test_skip_verify_for_a_self_signed_certificate(tmp_path: Path) -> None:
    from tests.integration.pki import self_signed

    server = FakeKapacitor(self_signed(tmp_path))
    url = server.with_user("ad%40min", "p%3Ass")
    try:
        refused = kapa("list", "tasks", url=url)
        assert refused.returncode == 3
        assert refused.stderr == (
            f'Get "{server.url.replace("://", "://ad@min:***@")}/kapacitor/v1/tasks?'
            "dot-view=attributes&fields=type&fields=status&fields=executing&fields=dbrps"
            "&limit=100&offset=0&pattern=&replay-id=&script-format=formatted\": "
            "x509: certificate signed by unknown authority\n")
        assert "p:ss" not in refused.stderr and "p%3Ass" not in refused.stderr
        flag = kapa("-skipVerify", "list", "tasks", url=url)
        assert (flag.returncode, flag.stdout) == (0, TASKS_TABLE)
        env = kapa("list", "tasks", url=url, env={"KAPACITOR_UNSAFE_SSL": "t"})
        assert (env.returncode, env.stdout) == (0, TASKS_TABLE)
        # -skipVerify=false does not undo the environment, as in kapacitor
        both = kapa("-skipVerify=false", "list", "tasks", url=url,
                    env={"KAPACITOR_UNSAFE_SSL": "true"})
        assert both.returncode == 0
        bad = kapa("list", "tasks", url=url, env={"KAPACITOR_UNSAFE_SSL": "maybe"})
        assert (bad.returncode, bad.stderr) == (
            1, 'strconv.ParseBool: parsing "maybe": invalid syntax\n')
    finally:
        server.close()

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

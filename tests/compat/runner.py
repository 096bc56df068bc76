"""Run one compatibility case against a server that speaks Kapacitor's HTTP API (the real
Kapacitor or kapa-core) and collect what the case's task produced.

What is collected, as raw text so that the comparison is byte for byte:

- ``httpOut <endpoint>``: the body of every ``httpOut('<endpoint>')`` of the script;
- ``post`` / ``post:<name>``: the bodies posted to ``{{POST}}`` / ``{{POST:<name>}}``
  (alert ``.post()``, ``httpPost()``), in arrival order;
- ``tcp``: what alert ``.tcp('{{TCP}}')`` sent, one entry per connection;
- ``log``: the lines alert ``.log('{{LOG}}')`` wrote;
- ``error``: the error of a task that was refused (then nothing else is run);
- ``task <field>``: fields of the task named by the case's ``inspect`` list (``dot``,
  ``vars``, ``error``...), with timings masked (``stats`` is the ``node-stats``
  block only); ``dot:labels`` is the DOT asked for with
  ``dot-view=labels``, ``script:raw`` the script with ``script-format=raw``;
- ``template <field>``: for ``inspect`` entries ``template:<field>`` of a case that sets
  ``template = true`` (its script is defined as a template, the task made from it).

A case may also set ``status = "disabled"`` to define the task without starting it, and
``implicit_dbrp = true`` to send no ``dbrps`` (its script has ``dbrp`` statements).
"""

from __future__ import annotations

import http.server
import json
import re
import socketserver
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

from tests.compat.casefile import Case

HTTP_OUT = re.compile(r"""httpOut\(\s*'((?:[^'\\]|\\.)*)'\s*\)""")
POST = re.compile(r"\{\{POST(?::([A-Za-z0-9_]+))?\}\}")
#: What kapa-core adds after each bad line listed in a refused /write.
WRITE_LINE_NUMBER = re.compile(r" \(line \d+\)$", re.M)


class Recorder:
    """An HTTP server and a TCP server on loopback that keep what they receive."""

    def __init__(self) -> None:
        self.posts: dict[str, list[str]] = defaultdict(list)
        self.tcp: list[str] = []
        self.generation = 0  # bumped by reset(): a late connection of a previous case
        self.lock = threading.Lock()
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace")
                with recorder.lock:
                    recorder.posts[self.path].append(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        class TCPHandler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                # Entries in the order the connections were accepted (each event opens
                # one after the previous closed), not the order their threads finish.
                with recorder.lock:
                    generation, index = recorder.generation, len(recorder.tcp)
                    recorder.tcp.append("")
                chunks = []
                while data := self.request.recv(65536):
                    chunks.append(data)
                with recorder.lock:
                    if recorder.generation == generation:
                        recorder.tcp[index] = b"".join(chunks).decode("utf-8", "replace")

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.tcp_server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), TCPHandler)
        self.tcp_server.daemon_threads = True
        self.http.daemon_threads = True
        for server in (self.http, self.tcp_server):
            threading.Thread(target=server.serve_forever, daemon=True).start()

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    @property
    def tcp_address(self) -> str:
        return f"127.0.0.1:{self.tcp_server.server_address[1]}"

    def reset(self) -> None:
        with self.lock:
            self.posts.clear()
            self.tcp.clear()
            self.generation += 1

    def close(self) -> None:
        self.http.shutdown()
        self.tcp_server.shutdown()
        self.http.server_close()
        self.tcp_server.server_close()


def _mask_timings(dot: str) -> str:
    # Execution times and the throughput (measured each second) depend on the machine.
    dot = re.sub(r'avg_exec_time_ns="[^"]*"', 'avg_exec_time_ns="X"', dot)
    dot = re.sub(r'avg_exec_time_ns=[^"\\]+', 'avg_exec_time_ns=X', dot)
    return re.sub(r"Throughput: [0-9.]+|throughput=\"[0-9.]+", lambda m: m.group(0).rstrip(
        "0123456789.") + "X", dot)


#: The cluster and server IDs (random UUIDs of each server) that alert details show.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _mask_ids(text: str) -> str:
    return _UUID.sub("<uuid>", text)


class CaseRun:
    """One case against one server: define the task, write the points, collect outputs."""

    def __init__(self, url: str, case: Case, recorder: Recorder, workdir: Path) -> None:
        self.url = url.rstrip("/")
        self.case = case
        self.recorder = recorder
        self.log_path = workdir / (case.task_id + ".log")
        self.client = httpx.Client(timeout=30)

    def script(self) -> str:
        text = self.case.get("script", "")

        def post(m: re.Match[str]) -> str:
            return f"{self.recorder.http_url}/{m.group(1) or 'post'}"

        text = POST.sub(post, text)
        text = text.replace("{{TCP}}", self.recorder.tcp_address)
        # {{DIR}}: the absolute path of the case's folder (files a sideload() reads).
        text = text.replace("{{DIR}}", str(self.case.path.parent.resolve()))
        return text.replace("{{LOG}}", str(self.log_path))

    def define(self) -> httpx.Response:
        case = self.case
        self.client.delete(f"{self.url}/kapacitor/v1/tasks/{case.task_id}")
        body: dict[str, Any] = {
            "id": case.task_id, "type": case.get("type", "stream"),
            "dbrps": [{"db": case.get("db", "mydb"), "rp": case.get("rp", "myrp")}],
            "script": self.script(),
            # a batch case's task runs in a replay, not as a live task
            "status": case.get("status", "disabled" if case.get("type") == "batch"
                               else "enabled")}
        if "vars" in case.data:
            body["vars"] = json.loads(case.get("vars"))
        if case.get("implicit_dbrp"):  # the script's dbrp statements name them
            del body["dbrps"]
        if case.get("template"):
            # The script is a template; the task is made from it with the case's vars.
            templates = f"{self.url}/kapacitor/v1/templates"
            self.client.delete(f"{templates}/{case.task_id}")
            response = self.client.post(templates, json={
                "id": case.task_id, "type": body["type"], "script": body.pop("script")})
            if response.status_code != 200:
                return response
            body["template-id"] = case.task_id
        return self.client.post(f"{self.url}/kapacitor/v1/tasks", json=body)

    def write(self) -> None:
        if self.case.get("type") == "batch":  # the points are in InfluxDB: replay them
            from tests.compat.influx import replay
            self.replay_error = replay(self.client, self.url, self.case)
            return
        points = self.case.get("points", "").strip()
        if not points:
            return
        case = self.case
        params = {"db": case.get("db", "mydb"), "rp": case.get("rp", "myrp"),
                  "precision": case.get("precision", "s")}
        response = self.client.post(f"{self.url}/write", params=params,
                                    content=points.encode())
        if response.status_code != 204:
            if not case.get("write_refused"):
                raise RuntimeError(f"write refused: {response.status_code} {response.text}")
            # A case that sets write_refused compares the answer ("write"); kapa-core's
            # " (line N)" after each bad line (docs/api.md) is left out.
            self.write_answer = f"{response.status_code} " + \
                WRITE_LINE_NUMBER.sub("", response.text)

    def collect(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        case = self.case
        batch = case.get("type") == "batch"  # httpOut is gone once a replay ends
        if batch and getattr(self, "replay_error", ""):
            out["replay error"] = self.replay_error
        if getattr(self, "write_answer", ""):
            out["write"] = self.write_answer
        for endpoint in [] if batch else HTTP_OUT.findall(case.get("script", "")):
            r = self.client.get(f"{self.url}/kapacitor/v1/tasks/{case.task_id}/{endpoint}")
            out[f"httpOut {endpoint}"] = r.text if r.status_code == 200 else \
                f"status {r.status_code}"
        with self.recorder.lock:
            for path, bodies in self.recorder.posts.items():
                key = "post" if path == "/post" else "post:" + path.lstrip("/")
                out[key] = [_mask_ids(b) for b in bodies]
            if self.recorder.tcp:
                out["tcp"] = [_mask_ids(b) for b in self.recorder.tcp]
        if self.log_path.exists():
            out["log"] = _mask_ids(self.log_path.read_text(encoding="utf-8")).splitlines()
        if case.get("inspect"):
            for name in case.get("inspect"):
                what = "template" if name.startswith("template:") else "task"
                field, _, form = name.removeprefix("template:").partition(":")
                params = {"dot-view": form} if field == "dot" and form else \
                    {"script-format": form} if form else {}
                kind = "templates" if what == "template" else "tasks"
                r = self.client.get(f"{self.url}/kapacitor/v1/{kind}/{case.task_id}",
                                    params=params)
                value = r.json().get(field)
                if field == "dot" and isinstance(value, str):
                    value = _mask_timings(value)
                elif field == "stats" and isinstance(value, dict):
                    # the node statistics (task-stats is a throughput), timings masked
                    value = {node: {k: "X" if k == "avg_exec_time_ns" else v
                                    for k, v in values.items()}
                             for node, values in (value.get("node-stats") or {}).items()}
                out[f"{what} {name.removeprefix('template:')}"] = value \
                    if isinstance(value, str) else json.dumps(value, sort_keys=True)
        return out

    def start(self) -> dict[str, Any] | None:
        """Define the task and write the points; Kapacitor's refusal if the define fails."""
        response = self.define()
        if response.status_code != 200:
            # the case's folder as {{DIR}} again: the error is the same wherever the
            # project is checked out (a sideload names the files it could not read)
            out = refused(response)
            out["error"] = str(out["error"]).replace(
                str(self.case.path.parent.resolve()), "{{DIR}}")
            return out
        self.write()
        return None

    def cleanup(self) -> None:
        self.client.delete(f"{self.url}/kapacitor/v1/tasks/{self.case.task_id}")
        if self.case.get("template"):
            self.client.delete(f"{self.url}/kapacitor/v1/templates/{self.case.task_id}")
        self.log_path.unlink(missing_ok=True)
        self.recorder.reset()
        self.client.close()


def refused(response: httpx.Response) -> dict[str, Any]:
    try:
        message = response.json().get("error", response.text)
    except ValueError:
        message = response.text
    return {"error": message}


def run_until_stable(url: str, case: Case, recorder: Recorder, workdir: Path,
                     settle: float = 0.6, timeout: float = 10.0,
                     run_class: type[CaseRun] | None = None) -> dict[str, Any]:
    """For the oracle: run the case and return its outputs once they stop changing
    (``run_class``: a CaseRun subclass that feeds the case its own way)."""
    run = (run_class or CaseRun)(url, case, recorder, workdir)
    try:
        if (refusal := run.start()) is not None:
            return refusal
        deadline = time.monotonic() + timeout
        last = run.collect()
        stable_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = run.collect()
            if now != last:
                last, stable_since = now, time.monotonic()
            elif time.monotonic() - stable_since >= settle:
                break
        return last
    finally:
        run.cleanup()


def run_until_equal(url: str, case: Case, recorder: Recorder, workdir: Path,
                    expected: dict[str, Any], settle: float = 0.2,
                    timeout: float = 10.0,
                    run_class: type[CaseRun] | None = None) -> dict[str, Any]:
    """For the suite: run the case and return its outputs as soon as they equal
    ``expected`` and still do ``settle`` seconds later; at the deadline, the last seen."""
    run = (run_class or CaseRun)(url, case, recorder, workdir)
    try:
        if (refusal := run.start()) is not None:
            return refusal
        deadline = time.monotonic() + timeout
        while True:
            now = run.collect()
            if matches(now, expected):
                time.sleep(settle)
                now = run.collect()
                if matches(now, expected):
                    return now
            if time.monotonic() > deadline:
                return now
            time.sleep(0.05)
    finally:
        run.cleanup()


def matches(got: dict[str, Any], expected: dict[str, Any]) -> bool:
    """Equal outputs; a refusal matches when kapa-core's message starts with Kapacitor's
    (kapa-core may add a caret diagnostic after it)."""
    if "error" in expected or "error" in got:
        return "error" in got and "error" in expected and \
            str(got["error"]).startswith(str(expected["error"]))
    return got == expected

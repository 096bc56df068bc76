"""Run Kapacitor's alert-handler scenarios over HTTP services on the real Kapacitor and on
kapa-core, and report where the requests the services send differ.

    python -m tests.compat.scenarios_handlers --kapacitord BIN --source DIR [NAME_GLOB...]

DIR is a checkout of Kapacitor at v1.5.7. Each scenario named in ``SERVICES`` below is a
test of integrations/streamer_test.go that configures a service (Slack, PagerDuty,
``[[httppost]]``...) to send to a test HTTP server. Here the same service settings are
given to both daemons (TOML for kapacitord, the same sections for kapa-core), pointed at
a recording HTTP server; the scenario's script is taken from the checkout and its
``.srpl`` points are written through ``/write``, moved to 1971 as the other scenario
checks do. What is compared, request by request: the method, the path, the query, the
headers a service's API defines (content type, authorization, configured headers) and
the body (JSON as data, form bodies as parsed forms), plus the scenario's httpOut.
The cluster and server IDs and each daemon's own URL (PagerDuty's ``client_url``) are
masked. Nothing of Kapacitor's tests is stored here.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.compat.casefile import Case
from tests.compat.oracle import Kapacitor, show_diff
from tests.compat.runner import CaseRun
from tests.compat.scenarios import CALL, FUNC, PIECE, SCRIPT, arg_parser, srpl_points

#: Headers every client sends its own way; the rest (content type, authorization,
#: headers a service or a script configures) are compared.
TRANSPORT_HEADERS = frozenset({"host", "user-agent", "accept-encoding",
                               "content-length", "connection", "transfer-encoding"})
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class ServiceRecorder:
    """An HTTP server on loopback keeping every request (method, path, query, headers,
    body) and answering each with the next of ``statuses`` (then 200).

    It also has what ``runner.CaseRun`` reads of a recorder (``http_url``, ``posts``,
    ``tcp``, ``lock``, ``reset``), so a scenario runs through the suite's runner."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.default_status = 200
        self.posts: dict[str, list[str]] = {}
        self.tcp: list[str] = []
        self.lock = threading.Lock()
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                split = urlsplit(self.path)
                with recorder.lock:
                    recorder.requests.append({
                        "method": self.command, "path": split.path, "query": split.query,
                        "headers": [(k.lower(), v) for k, v in self.headers.items()],
                        "body": body.decode("utf-8", "replace")})
                    status = recorder.statuses.pop(0) if recorder.statuses \
                        else recorder.default_status
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT = do_GET = do_PATCH = do_DELETE = handle_any  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    tcp_address = "127.0.0.1:9"  # no scenario here sends over TCP

    def reset(self, statuses: list[int] | None = None, default_status: int = 200) -> None:
        with self.lock:
            self.requests.clear()
            self.statuses = list(statuses or [])
            self.default_status = default_status

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.requests]

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@dataclass
class Service:
    """How a scenario's test sets up its service: the config sections (given the
    recorder's URL), the answers of its test server, whether the order of requests is
    part of what the test checks."""

    config: Callable[[str], dict[str, Any]]
    statuses: list[int] = field(default_factory=list)
    default_status: int = 200
    ordered: bool = False


def _httppost(url: str, **extra: Any) -> dict[str, Any]:
    return {"httppost": [{"endpoint": "test", "url": url, **extra}]}


ROW_TEMPLATE = ('{{.Name}} host={{index .Tags "host"}} type={{index .Tags "type"}}'
                '{{range .Values}} {{index . "time"}} {{index . "value"}}{{end}}')

#: Each scenario's service settings, as its test's tmInit makes them. A config file
#: must name every element of a section that has several ([[slack]], [[discord]]), which
#: the Go test's unnamed default need not: it is named "default" here (no request shows
#: the name).
SERVICES: dict[str, Service] = {
    "TestStream_HttpPostEndpoint": Service(_httppost, ordered=True),
    "TestStream_HttpPostEndpoint_CustomBody": Service(
        lambda u: _httppost(u, **{"row-template": ROW_TEMPLATE}), ordered=True),
    "TestStream_HttpPostEndpoint_StatusCodes": Service(
        _httppost, statuses=[200, 201, 404, 403, 500, 502], ordered=True),
    "TestStream_AlertSlack": Service(lambda u: {"slack": [
        {"enabled": True, "default": True, "workspace": "default",
         "url": u + "/test/slack/url",
         "channel": "#channel"},
        {"enabled": True, "workspace": "company_private", "url": u + "/test/slack/url2",
         "channel": "#channel"}]}),
    "TestStream_AlertTelegram": Service(lambda u: {"telegram": {
        "enabled": True, "url": u + "/bot", "token": "TOKEN:AUTH", "chat-id": "123456789",
        "disable-web-page-preview": True, "disable-notification": False}}),
    "TestStream_AlertHipChat": Service(lambda u: {"hipchat": {
        "enabled": True, "url": u, "room": "1231234", "token": "testtoken1231234"}}),
    "TestStream_AlertAlerta": Service(lambda u: {"alerta": {
        "enabled": True, "url": u, "origin": "Kapacitor"}}, default_status=201),
    "TestStream_AlertDiscord": Service(lambda u: {"discord": [
        {"enabled": True, "default": True, "workspace": "default",
         "url": u + "/test/discord/url"},
        {"enabled": True, "workspace": "company_private", "username": "comp testy",
         "url": u + "/test/discord/url2"}]}),
    "TestStream_AlertPushover": Service(lambda u: {"pushover": {
        "enabled": True, "url": u, "user-key": "user",
        "token": "KzGDORePKggMaC0QOYAMyEEuzJnyUi"}}),
    "TestStream_AlertOpsGenie": Service(lambda u: {"opsgenie": {
        "enabled": True, "url": u, "api-key": "api_key"}}),
    "TestStream_AlertOpsGenie2": Service(lambda u: {"opsgenie2": {
        "enabled": True, "url": u, "api-key": "api_key"}}),
    "TestStream_AlertOpsGenie2_Recovery": Service(lambda u: {"opsgenie2": {
        "enabled": True, "url": u, "api-key": "api_key", "recovery_action": "notes"}},
        ordered=True),
    "TestStream_AlertPagerDuty": Service(lambda u: {"pagerduty": {
        "enabled": True, "url": u, "service-key": "service_key"}}),
    "TestStream_AlertPagerDuty2": Service(lambda u: {"pagerduty2": {
        "enabled": True, "url": u, "routing-key": "routing_key"}}),
    "TestStream_AlertPagerDuty2_ServiceKey": Service(lambda u: {"pagerduty2": {
        "enabled": True, "url": u, "routing-key": "routing_key"}}),
    "TestStream_AlertHTTPPostEndpoint": Service(
        lambda u: _httppost(u, headers={"Authorization": "works"})),
    "TestStream_AlertVictorOps": Service(lambda u: {"victorops": {
        "enabled": True, "url": u, "api-key": "api_key", "routing-key": "routing_key"}}),
    "TestStream_AlertVictorOps_JSON_Data": Service(lambda u: {"victorops": {
        "enabled": True, "url": u, "api-key": "api_key", "routing-key": "routing_key",
        "json-data": True}}),
    "TestStream_AlertTalk": Service(lambda u: {"talk": {
        "enabled": True, "url": u, "author_name": "Kapacitor"}}),
    "TestStream_AlertServiceNow": Service(lambda u: {"servicenow": {
        "enabled": True, "url": u, "source": "Kapacitor"}}, default_status=201),
    "TestStream_AlertTeams": Service(lambda u: {"teams": {
        "enabled": True, "channel-url": u}}),
}


class ScenarioCase(Case):
    """A scenario run under its Go test's task name (alerts show it: PagerDuty's
    details, Alerta's event, PagerDuty v2's class)."""

    @property
    def task_id(self) -> str:
        return str(self.data["task"])


def scenarios(source: Path) -> list[tuple[ScenarioCase, Service]]:
    text = (source / "integrations" / "streamer_test.go").read_text()
    found = []
    for name, body in FUNC.findall(text):
        if name not in SERVICES:
            continue
        script, call = SCRIPT.search(body), CALL.search(body)
        if not script or not call:
            print(f"{name}: no script found", file=sys.stderr)
            continue
        pieces = []
        for piece, expr in PIECE.findall(script.group(1)):
            pieces.append("{{URL}}" if expr == "ts.URL" else piece)
        script_text = "".join(pieces)
        if "Sprintf(script, ts.URL)" in body:  # Teams: the channel URL put in by Go
            script_text = script_text.replace("%s", "{{URL}}")
        data = source / "integrations" / "testdata" / f"{call.group(1)}.srpl"
        loaded = srpl_points(data)
        if loaded is None:
            print(f"{name}: no usable {data.name}", file=sys.stderr)
            continue
        db, rp, points = loaded
        case = ScenarioCase(name, data, {"script": script_text.replace("\t", "    "),
                                         "points": points, "db": db, "rp": rp,
                                         "task": call.group(1)})
        found.append((case, SERVICES[name]))
    return found


def toml_sections(config: dict[str, Any]) -> str:
    """Service sections as TOML for kapacitord."""
    from kapa_core.testing import to_toml
    return to_toml(config)


def normalize(request: dict[str, Any], own_url: str, recorder_url: str) -> dict[str, Any]:
    """A request as compared: IDs and the daemon's own URL masked, the body parsed."""

    def mask(text: str) -> str:
        text = _UUID.sub("<uuid>", text.replace(own_url, "<kapacitor-url>"))
        return text.replace(recorder_url, "<recorder>")

    headers = {k: mask(v) for k, v in request["headers"] if k not in TRANSPORT_HEADERS
               and (k, v) != ("accept", "*/*")}  # an Accept a client adds by itself
    raw = mask(request["body"])
    ctype = headers.get("content-type", "").split(";")[0].strip()
    body: Any = raw
    if ctype == "application/x-www-form-urlencoded":
        body = {"form": parse_qs(raw, keep_blank_values=True)}
    else:
        try:
            body = {"json": json.loads(raw)}
        except ValueError:
            pass
        else:  # Alerta's tags come from iterating a Go map: in random order
            data = body["json"]
            if isinstance(data, dict) and "rawData" in data and \
                    isinstance(data.get("tags"), list):
                if len(data["tags"]) > 1:
                    raw = ""  # nor can the bytes be compared
                data["tags"] = sorted(data["tags"])
    return {"method": request["method"], "path": mask(request["path"]),
            "query": parse_qs(mask(request["query"]), keep_blank_values=True),
            "headers": headers, "body": body, "raw": raw}


def raw_notes(got: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """Bodies equal as data but not as bytes (key order, spacing, a final newline):
    printed as notes, since some orders are Go map orders (Alerta's tags are random)."""
    notes = []
    for g, e in zip(got.get("requests", []), expected.get("requests", [])):
        if g["raw"] != e["raw"]:
            notes.append(f"  bytes differ for {e['path']}:\n    Kapacitor: {e['raw']!r}"
                         f"\n    kapa-core: {g['raw']!r}")
    return notes


def without_raw(outputs: dict[str, Any]) -> dict[str, Any]:
    return {**outputs, "requests": [{k: v for k, v in r.items() if k != "raw"}
                                    for r in outputs.get("requests", [])]}


def run(url: str, case: ScenarioCase, service: Service, recorder: ServiceRecorder,
        workdir: Path, expected: dict[str, Any] | None = None,
        timeout: float = 15.0, settle: float = 1.0) -> dict[str, Any]:
    """Run one scenario on the daemon at ``url``; its outputs once they stop changing
    (or, given ``expected``, as soon as they equal it for a moment)."""
    recorder.reset(service.statuses, service.default_status)
    scripted = ScenarioCase(case.name, case.path, {
        **case.data, "script": case.data["script"].replace("{{URL}}", recorder.http_url)})
    runner = CaseRun(url, scripted, recorder, workdir)  # type: ignore[arg-type]

    def outputs() -> dict[str, Any]:
        out = runner.collect()
        requests = [normalize(r, url, recorder.http_url) for r in recorder.snapshot()]
        if not service.ordered:
            requests.sort(key=lambda r: json.dumps({**r, "raw": ""}, sort_keys=True))
        out["requests"] = requests
        return out

    try:
        response = runner.define()
        if response.status_code != 200:
            return {"error": response.text}
        runner.write()
        deadline = time.monotonic() + timeout
        last, since = outputs(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = outputs()
            if expected is not None and without_raw(now) == without_raw(expected):
                time.sleep(0.3)
                if without_raw(now := outputs()) == without_raw(expected):
                    return now
            if now != last:
                last, since = now, time.monotonic()
            elif expected is None and time.monotonic() - since >= settle:
                break
        return last
    finally:
        runner.cleanup()


BASE = {"http": {"log-enabled": False}, "logging": {"level": "ERROR"},
        "hostname": "localhost"}


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser("tests.compat.scenarios_handlers", __doc__)
    parser.add_argument("--bytes", action="store_true",
                        help="also print the bodies equal as data but not as bytes")
    args = parser.parse_args(argv)
    found = [(c, s) for c, s in scenarios(args.source)
             if not args.patterns or any(fnmatch.fnmatch(c.name, p) for p in args.patterns)]
    missing = set(SERVICES) - {c.name for c, _ in scenarios(args.source)}
    for name in sorted(missing):
        print(f"{name}: not found in the checkout", file=sys.stderr)
    workdir = Path(tempfile.mkdtemp(prefix="scenarios-handlers-"))
    recorder = ServiceRecorder()
    from kapa_core.testing import DaemonProcess
    differ = []
    try:
        for case, service in found:
            config = service.config(recorder.http_url)
            server = Kapacitor(args.kapacitord, extra_conf=toml_sections(config))
            try:
                expected = run(server.url, case, service, recorder, workdir)
            finally:
                server.close()
            with DaemonProcess({**BASE, **config}) as daemon:
                got = run(daemon.url, case, service, recorder, workdir, expected,
                          timeout=6)
                log = [line for line in daemon.lines if "ERROR" in line or "error" in line]
            if without_raw(got) != without_raw(expected) or not expected.get("requests"):
                differ.append(case.name)
                if not args.quiet:
                    print(show_diff(case.name, without_raw(got), without_raw(expected)))
                    for line in log[-5:]:
                        print("  kapa-core log:", line)
            elif not args.quiet:
                print(f"EQUAL {case.name}: {len(expected['requests'])} requests",
                      flush=True)
                if args.bytes:
                    print("\n".join(raw_notes(got, expected)))
        for name in differ:
            print("DIFFERS", name)
        print(f"{len(found) - len(differ)} of {len(found)} scenarios equal", file=sys.stderr)
        return 1 if differ else 0
    finally:
        recorder.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

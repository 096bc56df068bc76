"""Run Kapacitor's own scenarios that send alerts or points to a configured service (not
over HTTP) on the real Kapacitor and on kapa-core, and report where what the service
received differs.

    python -m tests.compat.scenarios_services --kapacitord BIN --source DIR [NAME_GLOB...]

DIR is a checkout of Kapacitor at v1.5.7. Each scenario's script is read from its
integrations/streamer_test.go and its points from integrations/testdata/<name>.srpl
(moved to start at 1971-01-01), as tests/compat/scenarios.py does; nothing of them is
stored here. What is ours is the receiving end: for each scenario the check starts a
receiver on 127.0.0.1 (a TCP recorder, an SMTP server, a UDP socket decoding SNMP
traps, a Kafka broker, programs that keep their arguments and standard input, log files
in a temporary folder, a real ``influxd`` behind a recording proxy), configures the
service the Go test sets up so that it points at that receiver, once as TOML for
kapacitord and once as a dict for kapa-core, and compares everything received: as data
(JSON bodies decoded, mail headers parsed, traps decoded) and as bytes where the order
is fixed (JSON lines, mail bodies, trap varbinds, line protocol, request parameters and
headers, Kafka client IDs and protocol versions); request IDs, mail dates, Kafka
timestamps and host names are masked.

One difference is known and left: kapa-core gzips influxDBOut writes unless its
``[[influxdb]] compression = "none"`` (a setting Kapacitor 1.5.7 does not have; it
never compresses), so TestStream_InfluxDBOut differs in ``Content-Encoding``.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import fnmatch
import gzip
import http.server
import json
import os
import re
import shutil
import socket
import socketserver
import stat
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

from tests.compat.casefile import Case
from tests.compat.oracle import Kapacitor, free_port, show_diff
from tests.compat.runner import CaseRun, Recorder, _mask_ids
from tests.compat.scenarios import FUNC, arg_parser, srpl_points

# -- the scenario's script, read from the Go test -----------------------------------------
SCRIPT = re.compile(r"var script = (fmt\.Sprintf\(\s*`[^`]*`(?:\s*,\s*[\w.]+)*\s*\)|"
                    r"(?:`[^`]*`\s*(?:\+\s*[\w.]+\s*\+\s*)?)+)")
PIECE = re.compile(r"`([^`]*)`|\+\s*([\w.]+)\s*\+")


def go_script(source: Path, name: str, values: dict[str, str]) -> str:
    """The script of Go test ``name``: its backquoted pieces, with each Go expression
    spliced in (``+ ts.Addr +``) or formatted in (``fmt.Sprintf(`...%s...`, a, b)``)
    replaced by ``values[expression]``."""
    text = (source / "integrations" / "streamer_test.go").read_text()
    body = next((b for n, b in FUNC.findall(text) if n == name), None)
    if body is None:
        raise LookupError(f"{name} is not in streamer_test.go")
    literal = SCRIPT.search(body)
    if literal is None:
        raise LookupError(f"{name} has no script")
    expression = literal.group(1)
    if expression.startswith("fmt.Sprintf"):
        template = expression[expression.index("`") + 1:expression.rindex("`")]
        args = re.findall(r"[\w.]+", expression[expression.rindex("`") + 1:])
        script = template.replace("%%", "\0") % tuple(values[a] for a in args)
        script = script.replace("\0", "%")
    else:
        script = "".join(piece if not expr else values[expr]
                         for piece, expr in PIECE.findall(expression))
    return script.replace("\t", "    ")


# -- receivers ----------------------------------------------------------------------------
class Receiver:
    """What a scenario's service sends to: started before the server, its config, what
    it received (``collect``, as data), and ``rewrite`` of the script (paths, addresses).
    """

    def __init__(self, workdir: Path, **settings: Any) -> None:
        self.workdir = workdir
        #: more keys of the service's section (the same for both servers)
        self.settings = settings

    def config(self) -> dict[str, Any]:
        return {}

    def values(self) -> dict[str, str]:
        """Values of the Go expressions the test splices into its script."""
        return {}

    def rewrite(self, script: str) -> str:
        return script

    def collect(self) -> dict[str, Any]:
        return {}

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass


def _sorted(items: list[Any]) -> list[Any]:
    """Several handlers of one alert send concurrently: compare in a fixed order."""
    return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return {"not JSON": text}


class TCPReceiver(Receiver):
    """Alert ``.tcp()``: one JSON document per connection."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.recorder = Recorder()

    def values(self) -> dict[str, str]:
        return {"ts.Addr": self.recorder.tcp_address}

    def rewrite(self, script: str) -> str:
        """``{{TCP}}`` is the recorder's host:port, ``{{TCP_PORT}}`` its port."""
        address = self.recorder.tcp_address
        return script.replace("{{TCP}}", address).replace(
            "{{TCP_PORT}}", address.rpartition(":")[2])

    def collect(self) -> dict[str, Any]:
        with self.recorder.lock:
            sent = list(self.recorder.tcp)
        return {"tcp": _sorted([_json(text) for text in sent]),
                "tcp raw": sorted(sent)} if sent else {}

    def reset(self) -> None:
        self.recorder.reset()

    def close(self) -> None:
        self.recorder.close()


class SensuReceiver(Receiver):
    """A Sensu client socket: reads one JSON line per connection, answers ``ok`` and
    closes (Kapacitor reads the answer up to the end of the connection)."""

    def __init__(self, workdir: Path, **settings: Any) -> None:
        super().__init__(workdir, **settings)
        self.received: list[str] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline()
                with receiver.lock:
                    receiver.received.append(line.decode("utf-8", "replace"))
                self.wfile.write(b"ok")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.address = f"127.0.0.1:{self.server.server_address[1]}"

    def config(self) -> dict[str, Any]:
        return {"sensu": {"enabled": True, "addr": self.address, "source": "Kapacitor",
                          **self.settings}}

    def collect(self) -> dict[str, Any]:
        with self.lock:
            sent = list(self.received)
        return {"sensu": _sorted([_json(text) for text in sent]),
                "sensu raw": sorted(sent)} if sent else {}

    def reset(self) -> None:
        with self.lock:
            self.received.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class KafkaSink(Receiver):
    """A Kafka broker (tests/integration/kafka_receiver.py) with three partitions."""

    def __init__(self, workdir: Path, offered: tuple[int, int] | None = None,
                 **settings: Any) -> None:
        """``offered``: the Metadata and Produce versions the broker offers, both
        ``(0, offered)`` (default: Metadata v1 and Produce v3 only)."""
        super().__init__(workdir, **settings)
        from tests.integration.kafka_receiver import KafkaReceiver
        broker = KafkaReceiver()
        if offered is not None:
            broker.metadata_versions, broker.produce_versions = offered, offered
        self.broker = broker.start()

    def config(self) -> dict[str, Any]:
        return {"kafka": [{"enabled": True, "id": "default", "brokers": [self.broker.address],
                           "batch-size": 1, **self.settings}]}

    def collect(self) -> dict[str, Any]:
        now = time.time() * 1000
        with self.broker._lock:
            records = list(self.broker.records)
            requests = list(self.broker.produce_requests)
            failures = list(self.broker.failures)
            # the client ID names the machine: masked
            calls = sorted({(key, version, (client or "").replace(socket.gethostname(),
                                                                   "<host>"))
                            for key, version, client in self.broker.requests})
        out: dict[str, Any] = {}
        if records:
            out["records"] = _sorted([{
                "topic": r.topic, "partition": r.partition,
                "key": None if r.key is None else r.key.decode("utf-8", "replace"),
                # the default details name the server's random IDs
                "value": None if r.value is None else _mask_ids(r.value.decode("utf-8",
                                                                             "replace")),
                "headers": [[k, None if v is None else v.decode("utf-8", "replace")]
                            for k, v in r.headers],
                # the time the record was made: only whether it is about now
                "timestamp": "now" if abs(r.timestamp_ms - now) < 60_000 else r.timestamp_ms,
            } for r in records])
            out["produce requests"] = _sorted([
                # kafka-go gives the broker what is left of its timeout, to the ms
                {"acks": r["acks"], "timeout_s": round(r["timeout_ms"] / 1000),
                 "records": r["records"],
                 "transactional_id": r["transactional_id"]} for r in requests])
            # (API key, version, client ID) of every request the producer made
            out["request kinds"] = [list(call) for call in calls]
        if failures:
            out["protocol failures"] = failures
        return out

    def reset(self) -> None:
        with self.broker._lock:
            self.broker.records.clear()
            self.broker.produce_requests.clear()
            self.broker.failures.clear()
            self.broker.requests.clear()

    def close(self) -> None:
        self.broker.close()


EXEC_PROGRAM = """#!/bin/sh
out="{dir}/$(basename "$0").$$"
for arg in "$@"; do printf '%s\\n' "$arg"; done > "$out.args"
cat > "$out.stdin"
"""


class ExecReceiver(Receiver):
    """Alert ``.exec()``: the programs the Go test names are replaced by programs in a
    temporary folder that keep their arguments and standard input."""

    PROGRAMS = ("/bin/my-script", "/bin/my-other-script")

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.bin = workdir / "exec-bin"
        self.out = workdir / "exec-out"
        self.bin.mkdir()
        self.out.mkdir()
        for program in self.PROGRAMS:
            path = self.bin / Path(program).name
            path.write_text(EXEC_PROGRAM.format(dir=self.out))
            path.chmod(0o755)

    def rewrite(self, script: str) -> str:
        for program in self.PROGRAMS:
            script = script.replace(f"'{program}'", f"'{self.bin / Path(program).name}'")
        return script

    def collect(self) -> dict[str, Any]:
        runs = []
        for args in sorted(self.out.glob("*.args")):
            stdin = args.with_suffix(".stdin")
            if not stdin.exists():
                continue
            data = _mask_ids(stdin.read_text())
            runs.append({"program": args.name.split(".")[0],
                         "args": args.read_text().splitlines(),
                         "stdin": _json(data), "stdin raw": data})
        return {"runs": _sorted(runs)} if runs else {}

    def reset(self) -> None:
        for path in self.out.iterdir():
            path.unlink()


class SMTPReceiver(Receiver):
    """An SMTP server (aiosmtpd) keeping each message's envelope, headers and body."""

    def __init__(self, workdir: Path, **settings: Any) -> None:
        super().__init__(workdir, **settings)
        from aiosmtpd.controller import Controller
        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any,  # noqa: N802
                                  envelope: Any) -> str:
                message = email.message_from_bytes(envelope.content,
                                                   policy=email.policy.compat32)
                headers = sorted([name, "<date>" if name.lower() == "date" else value]
                                 for name, value in message.items())
                with receiver.lock:
                    receiver.messages.append({
                        "helo": session.host_name,
                        "mail options": list(envelope.mail_options),
                        "rcpt options": list(envelope.rcpt_options),
                        "from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                        "headers": headers, "body": message.get_payload()})
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def config(self) -> dict[str, Any]:
        return {"smtp": {"enabled": True, "host": "127.0.0.1", "port": self.port,
                         "from": "test@example.com", **self.settings}}

    def collect(self) -> dict[str, Any]:
        with self.lock:
            return {"mail": _sorted(list(self.messages))} if self.messages else {}

    def reset(self) -> None:
        with self.lock:
            self.messages.clear()

    def close(self) -> None:
        self.controller.stop()


def _tlv(element: Any) -> str:
    """A BER element's bytes in hex (tag, minimal length, contents)."""
    size = len(element.raw)
    length = bytes([size]) if size < 128 else bytes(
        [0x80 | ((size.bit_length() + 7) // 8)]) + size.to_bytes((size.bit_length() + 7)
                                                                 // 8, "big")
    return (bytes([element.tag]) + length + element.raw).hex()


class SNMPReceiver(Receiver):
    """A UDP socket decoding each trap with the BER decoder of the snmptrap tests."""

    COMMUNITY = "public"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.traps: list[Any] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        from tests.integration.test_handler_snmptrap import decode_trap, read_element
        while not self.stop.is_set():
            try:
                datagram = self.sock.recv(65536)
            except (TimeoutError, OSError):
                continue
            try:
                trap = decode_trap(datagram)
                decoded: Any = {
                    "version": trap.version, "community": trap.community.decode(),
                    "pdu": hex(trap.pdu_tag), "error status": trap.error_status,
                    "error index": trap.error_index,  # the request ID is random
                    "varbinds": [[oid, hex(tag), value.decode("utf-8", "replace")
                                  if isinstance(value, bytes) else value]
                                 for oid, tag, value in trap.varbinds]}
                # the bytes too, but for the (random) request ID: the varbinds'
                # encoding and every length form are compared
                message, _ = read_element(datagram, 0)
                version, community, pdu = message.children()
                _, status, index, varbinds = pdu.children()
                decoded["bytes"] = [_tlv(e) for e in (version, community, status, index,
                                                      varbinds)]
            except (AssertionError, IndexError, ValueError) as exc:
                decoded = {"undecodable": datagram.hex(), "why": str(exc)}
            with self.lock:
                self.traps.append(decoded)

    def config(self) -> dict[str, Any]:
        return {"snmptrap": {"enabled": True,
                             "addr": f"127.0.0.1:{self.sock.getsockname()[1]}",
                             "community": self.COMMUNITY, "retries": 2}}

    def collect(self) -> dict[str, Any]:
        with self.lock:
            return {"traps": _sorted(list(self.traps))} if self.traps else {}

    def reset(self) -> None:
        with self.lock:
            self.traps.clear()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


class LogReceiver(Receiver):
    """Alert ``.log()``: the files the Go test formats into its script, in a temporary
    folder; each file's mode and the alerts written to it."""

    NAMES = {"normalPath": "normal.log", "modePath": "mode.log"}

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.dir = workdir / "logs"
        self.dir.mkdir()

    def values(self) -> dict[str, str]:
        return {expr: str(self.dir / name) for expr, name in self.NAMES.items()}

    def collect(self) -> dict[str, Any]:
        out = {}
        for name in self.NAMES.values():
            path = self.dir / name
            if path.exists():
                out[name] = {"mode": oct(stat.S_IMODE(path.stat().st_mode)),
                             "lines": [_json(line) for line in path.read_text().splitlines()],
                             "raw": path.read_text()}
        return out

    def reset(self) -> None:
        for path in self.dir.iterdir():
            path.unlink()


#: The request headers of a write or query that are compared (the body is compared
#: decompressed).
HEADERS = ("Content-Type", "Content-Encoding", "User-Agent")


class InfluxReceiver(Receiver):
    """A real ``influxd`` behind a proxy that records every request but pings: the
    queries and writes, then the databases, retention policies and points in it."""

    def __init__(self, workdir: Path, prepare: tuple[str, ...] = (),
                 compression: str = "") -> None:
        super().__init__(workdir)
        from tests.integration.influxd import InfluxD
        self.prepare = prepare  # queries run on influxd before the scenario
        # kapa-core's [[influxdb]] compression (gzip by default; Kapacitor 1.5.7 has no
        # such setting and never compresses); only kapa-core is given it
        self.compression = compression
        self.influxd = InfluxD().start()
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self
        upstream = self.influxd.url

        class Proxy(http.server.BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urllib.parse.urlsplit(self.path)
                if url.path != "/ping":
                    params = urllib.parse.parse_qsl(url.query, keep_blank_values=True)
                    if self.headers.get("Content-Encoding") == "gzip":
                        text = gzip.decompress(body).decode("utf-8", "replace")
                    else:
                        text = body.decode("utf-8", "replace")
                    form = urllib.parse.parse_qsl(text) if self.headers.get(
                        "Content-Type", "").startswith("application/x-www-form") else []
                    with receiver.lock:
                        receiver.requests.append({
                            "method": self.command, "path": url.path,
                            "params": [list(p) for p in sorted(params + form)],
                            "headers": {k: self.headers.get(k, "") for k in HEADERS},
                            "body": "" if form else text})
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length", "connection")}
                r = httpx.request(self.command, upstream + self.path, headers=headers,
                                  content=body, timeout=30)
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding",
                                         "connection", "content-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            do_GET = do_POST = do_HEAD = _forward  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
        self.proxy.daemon_threads = True
        threading.Thread(target=self.proxy.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.proxy.server_address[1]}"
        self.reset()

    def config(self) -> dict[str, Any]:
        element = {"enabled": True, "name": "default", "default": True, "urls": [self.url],
                   "disable-subscriptions": True}
        if self.compression:
            element["compression"] = self.compression
        return {"influxdb": [element]}

    def collect(self) -> dict[str, Any]:
        with self.lock:
            requests = list(self.requests)
        out: dict[str, Any] = {"requests": requests}
        out["databases"] = self._values("SHOW DATABASES")
        for (db,) in out["databases"]:
            out[f"retention policies on {db}"] = self._values(
                f'SHOW RETENTION POLICIES ON "{db}"')
            for (rp, *_) in out[f"retention policies on {db}"]:
                out[f"points in {db}.{rp}"] = self._series(f'SELECT * FROM "{db}"."{rp}"./.*/')
            out[f"field keys in {db}"] = self._series(f'SHOW FIELD KEYS ON "{db}"')
        return out

    def _result(self, q: str) -> dict[str, Any]:
        return self.influxd.query(q, epoch="ns")["results"][0]

    def _values(self, q: str) -> list[list[Any]]:
        series = self._result(q).get("series", [])
        return [v for s in series for v in s.get("values", [])]

    def _series(self, q: str) -> Any:
        return self._result(q).get("series", [])

    def reset(self) -> None:
        for (db,) in self._values("SHOW DATABASES"):
            self.influxd.query(f'DROP DATABASE "{db}"')
        for q in self.prepare:
            self.influxd.query(q)
        with self.lock:
            self.requests.clear()

    def close(self) -> None:
        self.proxy.shutdown()
        self.proxy.server_close()
        self.influxd.close()


# -- the scenarios ------------------------------------------------------------------------
@dataclass
class Scenario:
    name: str  # the Go test
    receiver: Callable[[Path], Receiver]
    points: str | None = "TestStream_Alert"  # the .srpl replayed; None: the task only runs
    db: str = "dbname"
    rp: str = "rpname"


SCENARIOS = [
    Scenario("TestStream_AlertSensu", SensuReceiver),
    Scenario("TestStream_AlertTCP", TCPReceiver),
    Scenario("TestStream_AlertKafka", KafkaSink),
    Scenario("TestStream_AlertExec", ExecReceiver),
    Scenario("TestStream_AlertEmail", SMTPReceiver),
    Scenario("TestStream_AlertSNMPTrap", SNMPReceiver),
    Scenario("TestStream_AlertLog", LogReceiver),
    # The Go test's InfluxDB takes any write; a real one needs the database and
    # retention policy the task writes to.
    Scenario("TestStream_InfluxDBOut", lambda d: InfluxReceiver(
        d, ('CREATE DATABASE "db" WITH NAME "rp"',)), points="TestStream_InfluxDBOut"),
    Scenario("TestStream_InfluxDBOut_CreateDatabase", InfluxReceiver, points=None),
    Scenario("TestStream_InfluxDBOut_CreateDatabaseAndRP", InfluxReceiver, points=None),
]


def _case(scenario: Scenario, source: Path, receiver: Receiver) -> Case:
    script = receiver.rewrite(go_script(source, scenario.name, receiver.values()))
    data: dict[str, Any] = {"script": script, "db": scenario.db, "rp": scenario.rp}
    path = source / "integrations" / "streamer_test.go"
    if scenario.points:
        path = source / "integrations" / "testdata" / f"{scenario.points}.srpl"
        loaded = srpl_points(path)
        if loaded is None:
            raise LookupError(f"no usable points in {path}")
        data["db"], data["rp"], data["points"] = loaded
    return Case(scenario.name, path, data)


def run(url: str, case: Case, receiver: Receiver, workdir: Path,
        expected: dict[str, Any] | None = None, settle: float = 1.5,
        timeout: float = 20.0) -> dict[str, Any]:
    """Start the case's task, write its points and return what the receiver got once it
    stops changing (and, given ``expected``, as soon as it equals it for a moment)."""
    # the script has no {{POST}}/{{TCP}} placeholders: no recorder is needed
    case_run = CaseRun(url, case, SimpleNamespace(http_url="", tcp_address=""), workdir)
    try:
        response = case_run.define()
        if response.status_code != 200:
            return {"error": response.json().get("error", response.text)}
        case_run.write()
        deadline = time.monotonic() + timeout
        last, since = receiver.collect(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = receiver.collect()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= (0.3 if now == expected else settle):
                break
        task = case_run.client.get(f"{case_run.url}/kapacitor/v1/tasks/{case.task_id}")
        if task.status_code == 200 and task.json().get("error"):
            last = {**last, "task error": task.json()["error"]}
        return last
    finally:
        case_run.client.delete(f"{case_run.url}/kapacitor/v1/tasks/{case.task_id}")
        case_run.client.close()


def on_kapacitor(kapacitord: str, case: Case, receiver: Receiver,
                 workdir: Path) -> dict[str, Any]:
    """What ``receiver`` got from the case's task on a throw-away kapacitord configured
    for it."""
    from kapa_core.testing import to_toml
    config = receiver.config()
    influx = config.pop("influxdb", None)
    server = Kapacitor(kapacitord, influx_url=influx[0]["urls"][0] if influx else None,
                       extra_conf=to_toml(config) if config else "")
    try:
        return run(server.url, case, receiver, workdir)
    finally:
        server.close()


def on_kapa_core(case: Case, receiver: Receiver, workdir: Path,
                 expected: dict[str, Any] | None = None,
                 timeout: float = 20.0) -> tuple[dict[str, Any], list[str]]:
    """(What ``receiver`` got from the case's task on a throw-away kapa-core configured
    for it, kapa-core's log lines)."""
    from kapa_core.testing import DaemonProcess
    config: dict[str, Any] = {"http": {"log-enabled": False}, "logging": {"level": "INFO"},
                              **receiver.config()}
    with DaemonProcess(config) as daemon:
        got = run(daemon.url, case, receiver, workdir, expected, timeout=timeout)
        return got, daemon.log().splitlines()


def run_scenario(scenario: Scenario, source: Path, kapacitord: str,
                 workdir: Path) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(Kapacitor's outputs, kapa-core's, kapa-core's log lines)."""
    receiver = scenario.receiver(workdir)
    try:
        case = _case(scenario, source, receiver)
        expected = on_kapacitor(kapacitord, case, receiver, workdir)
        receiver.reset()
        got, log = on_kapa_core(case, receiver, workdir, expected)
        return expected, got, log
    finally:
        receiver.close()


def main(argv: list[str] | None = None) -> int:
    args = arg_parser("tests.compat.scenarios_services", __doc__).parse_args(argv)
    chosen = [s for s in SCENARIOS
              if not args.patterns or any(fnmatch.fnmatch(s.name, p) for p in args.patterns)]
    differ = []
    for scenario in chosen:
        workdir = Path(tempfile.mkdtemp(prefix="scenarios-services-"))
        try:
            expected, got, log = run_scenario(scenario, args.source, args.kapacitord, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if got != expected:
            differ.append(scenario.name)
            if not args.quiet:
                print(show_diff(scenario.name, got, expected))
                errors = [line for line in log if re.search(r"\b(ERROR|WARN)", line)]
                if errors:
                    print("kapa-core logged:\n  " + "\n  ".join(errors[-10:]))
        elif not args.quiet:
            print(f"same: {scenario.name}: {json.dumps(expected, sort_keys=True)[:400]}")
        sys.stdout.flush()
    for name in differ:
        print("DIFFERS", name)
    print(f"{len(chosen) - len(differ)} of {len(chosen)} scenarios equal", file=sys.stderr)
    return 1 if differ else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())

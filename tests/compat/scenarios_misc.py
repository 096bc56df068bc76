"""Kapacitor's sideload, loopback and autoscale scenarios, run on the real Kapacitor and
on kapa-core, with their outputs compared.

    python -m tests.compat.scenarios_misc --kapacitord BIN --source DIR [NAME_GLOB...]

DIR is a checkout of Kapacitor at v1.5.7: the points are read from its
integrations/testdata/<name>.srpl (moved to start at 1971-01-01, as the other scenario
checks do). The scripts are our own translations of the scenarios of
integrations/streamer_test.go; the sideload files are written here into a throw-away
directory. The autoscale scenarios run against a local fake of the part of the
Kubernetes and Docker Swarm APIs that Kapacitor 1.5.7's clients call (the scale
subresource of deployments, replicasets and replicationcontrollers; a swarm service and
its update), configured as ``[[kubernetes]]`` and ``[[swarm]]`` on both daemons; the
requests each daemon makes are compared too.

TestStream_CustomFunctions is not here: it needs UDFs, which kapa-core does not run yet.
"""

from __future__ import annotations

import fnmatch
import http.server
import json
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.compat.oracle import Kapacitor, show_diff
from tests.compat.scenarios import EPOCH_1971, arg_parser

# -- the points of a scenario ----------------------------------------------------------


def srpl_points(source: Path, name: str) -> tuple[str, str, str]:
    """(db, rp, line protocol) of integrations/testdata/<name>.srpl, moved so that its
    first point is at 1971-01-01T00:00:00Z (seconds precision)."""
    lines = (source / "integrations" / "testdata" / f"{name}.srpl").read_text().splitlines()
    triples = [lines[i:i + 3] for i in range(0, len(lines) - 2, 3)]
    out, shift = [], None
    for _, _, line in triples:
        head, _, stamp = line.rpartition(" ")
        t = int(stamp)
        if shift is None:
            shift = EPOCH_1971 - t
        out.append(f"{head} {t + shift}")
    return triples[0][0], triples[0][1], "\n".join(out)


# -- a fake of the Kubernetes and Docker Swarm APIs -------------------------------------

#: The replicas each resource starts with in the fake cloud.
INITIAL = {"serviceA": 1, "serviceB": 10}


def rich_spec(replicas: int) -> dict[str, Any]:
    """A service spec as a newer Docker daemon answers it: fields Kapacitor's Docker
    types know (some in another case), fields they do not, nulls and a float."""
    return {
        "Name": "rich", "Labels": {"z": "1", "a": "<2>"},
        "TaskTemplate": {
            "ContainerSpec": {"Image": "nginx:1.13@sha256:abc", "Args": ["-g", "daemon off;"],
                              "Env": ["A=1"], "TTY": False, "StopGracePeriod": 10000000000,
                              "DNSConfig": {}, "Isolation": "default", "Init": None,
                              "Mounts": [{"Type": "volume", "Source": "data", "Target": "/d",
                                          "VolumeOptions": {"Labels": {"k": "v"}}}],
                              "Secrets": [{"SecretID": "s1", "SecretName": "n",
                                           "File": {"Name": "f", "UID": "0", "GID": "0",
                                                    "Mode": 292}}],
                              "healthcheck": {"Test": ["CMD", "true"], "Retries": 3}},
            "Resources": {"Limits": {}, "Reservations": {"MemoryBytes": 1024}},
            "RestartPolicy": {"Condition": "any", "Delay": 5000000000, "MaxAttempts": 0},
            "Placement": {"Constraints": ["node.role==worker"], "Platforms": [{"OS": "linux"}]},
            "ForceUpdate": 2, "Runtime": "container"},
        "Mode": {"Replicated": {"Replicas": replicas}},
        "UpdateConfig": {"Parallelism": 1, "FailureAction": "pause", "Monitor": 5000000000,
                         "MaxFailureRatio": 0.1, "Order": "stop-first"},
        "RollbackConfig": {"Parallelism": 1},
        "EndpointSpec": {"Mode": "vip", "Ports": [{"Protocol": "tcp", "TargetPort": 80,
                                                   "PublishedPort": 8080,
                                                   "PublishMode": "ingress"}]},
        "Networks": None,
    }


class FakeCloud:
    """An HTTP server answering the Kubernetes scale subresource
    (``/apis/extensions/v1beta1/namespaces/<ns>/<kind>/<name>/scale``, GET and PATCH) and
    Docker Swarm services (``/v1.30/services/<id>`` GET and ``.../update`` POST), with
    replica counts kept per resource; it records every request."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.replicas: dict[str, int] = {}
        self.versions: dict[str, int] = {}
        self.lock = threading.Lock()
        cloud = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _record(self, body: bytes) -> None:
                extra = []
                for name in ("Authorization", "Content-Type"):
                    if self.headers.get(name):
                        extra.append(f"{name}: {self.headers[name]}")
                with cloud.lock:
                    cloud.requests.append(" ".join([self.command, self.path, *extra]) +
                                          (" " + body.decode() if body else ""))

            def _answer(self, code: int, doc: Any) -> None:
                data = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self._record(b"")
                self._answer(*cloud.get(self.path))

            def do_PATCH(self) -> None:  # noqa: N802
                body = self._body()
                self._record(body)
                self._answer(*cloud.patch(self.path, body))

            def do_POST(self) -> None:  # noqa: N802
                body = self._body()
                self._record(body)
                self._answer(*cloud.post(self.path, body))

            def log_message(self, *args: Any) -> None:
                pass

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.replicas.clear()
            self.versions.clear()

    def _current(self, name: str) -> int:
        return self.replicas.setdefault(name, INITIAL.get(name, 0))

    def get(self, path: str) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if path == "/api":  # the Kubernetes service test
            return 200, {"kind": "APIVersions", "versions": ["v1"]}
        if path == "/info":  # the Swarm service test
            return 200, {"ID": "fake", "ServerVersion": "17.06.0-ce"}
        with self.lock:
            if parts[:3] == ["apis", "extensions", "v1beta1"] and len(parts) == 8 \
                    and parts[3] == "namespaces" and parts[7] == "scale":
                ns, kind, name = parts[4], parts[5], parts[6]
                if name == "missing":
                    return 404, {"kind": "Status", "status": "Failure", "code": 404,
                                 "message": f'{kind} "{name}" not found'}
                meta = {"name": name, "namespace": ns, "selfLink": path}
                if name == "noselflink":  # Kubernetes 1.20 and later have no selfLink
                    del meta["selfLink"]
                return 200, {"kind": "Scale", "apiVersion": "extensions/v1beta1",
                             "metadata": meta,
                             "spec": {"replicas": self._current(name)},
                             "status": {"replicas": self._current(name)}}
            if parts[:2] == ["v1.30", "services"] and len(parts) == 3:
                name = parts[2]
                if name == "missing":
                    return 404, {"message": f"service {name} not found"}
                spec: dict[str, Any] = {"Name": name, "Labels": {"app": name},
                                        "Mode": {"Replicated": {
                                            "Replicas": self._current(name)}}}
                if name == "rich":
                    spec = rich_spec(self._current(name))
                elif name == "global":  # a global service has no replica count
                    spec = {"Name": name, "Mode": {"Global": {}}}
                return 200, {"ID": name,
                             "Version": {"Index": self.versions.setdefault(name, 7)},
                             "CreatedAt": "2017-01-01T00:00:00Z", "Spec": spec}
        return 404, {"message": "not found"}

    def patch(self, path: str, body: bytes) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if len(parts) < 2 or parts[-1] != "scale":
            return 404, {"kind": "Status", "status": "Failure", "code": 404,
                         "message": "the server could not find the requested resource"}
        try:
            ops = json.loads(body)
            value = ops[0]["value"]
        except (ValueError, LookupError, TypeError):
            return 400, {"kind": "Status", "message": "bad patch"}
        with self.lock:
            self.replicas[parts[-2]] = value
        return 200, {"kind": "Scale"}

    def post(self, path: str, body: bytes) -> tuple[int, Any]:
        parts = path.split("?")[0].strip("/").split("/")
        if parts[:2] != ["v1.30", "services"] or len(parts) != 4 or parts[3] != "update":
            return 404, {"message": "not found"}
        try:
            spec = json.loads(body)
            value = spec["Mode"]["Replicated"]["Replicas"]
        except (ValueError, LookupError, TypeError):
            return 400, {"message": "bad spec"}
        with self.lock:
            self.replicas[parts[2]] = value
            self.versions[parts[2]] = self.versions.get(parts[2], 7) + 1
        return 200, {}

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


# -- the scenarios ---------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    data: str  # the .srpl file under integrations/testdata
    #: task id -> (script, dbrps); the first task's dbrp is where the points are written
    tasks: list[tuple[str, str, list[tuple[str, str]]]]
    #: task ids whose node statistics are compared (working_cardinality, events...)
    stats: list[str] = field(default_factory=list)
    #: compare the requests made to the fake cloud
    cloud: bool = False
    #: (db, rp, line protocol) written instead of the .srpl file's points
    points: tuple[str, str, str] | None = None


SIDELOAD_FILES = {
    # our own sideload tree: t0/<v>, t1/<v>, t2/<v>, as YAML and as JSON
    "t0/b.yml": "f1: 7\n",
    "t0/c.yml": "f1: 21\nf2: 4.25\n",
    "t0/b.json": '{"f1": 7}\n',
    "t0/c.json": '{\n  "f1": 21,\n  "f2": 4.25\n}\n',
    "t1/n.yml": "f2: 1.5\nother: 3\n",
    "t1/o.yml": "f1: 99\nf2: 8.5\n",
    "t1/n.json": '{"f2": 1.5, "other": 3}\n',
    "t1/o.json": '{"f1": 99, "f2": 8.5}\n',
    "t2/y.yml": "t3: yes-tag\nother: 64\n",
    "t2/y.json": '{"t3": "yes-tag", "other": 64}\n',
}

SIDELOAD = """
stream
    |from()
        .database('dbname')
        .retentionPolicy('rpname')
        .measurement('m')
        .groupBy('t0', 't1', 't2')
    |sideload()
        .source('file://{dir}')
        .order('t0/{{{{.t0}}}}.{ext0}', 't1/{{{{.t1}}}}.{ext0}', 't2/{{{{.t2}}}}.yml')
        .field('f1', 0)
        .field('f2', 0.0)
        .tag('t3', 'none')
{more}    |httpOut('out')
"""

SIDELOAD_MORE = """    |sideload()
        .source('file://{dir}')
        .order('t0/{{{{.t0}}}}.yml', 't1/{{{{.t1}}}}.yml', 't2/{{{{.t2}}}}.yml')
        .field('other', -1.0)
"""

DBRP = [("dbname", "rpname")]

LOOP_INTO = """
stream
    |from()
        .measurement('cpu')
    |kapacitorLoopback()
        .database('other-db')
        .retentionPolicy('other-rp')
"""

LOOP_COUNT = """
stream
    |from()
        .measurement('cpu')
    |window()
        .every(10s)
        .period(10s)
    |count('value')
    |httpOut('out')
"""

LOOP_SELF = """
stream
    |from()
        .measurement('cpu')
    |kapacitorLoopback()
        .database('dbname')
        .retentionPolicy('rpname')
"""

AUTOSCALE = """
stream
    |from()
        .measurement('scale')
        .groupBy('deployment')
    |{node}
        .replicas(lambda: int("replicas"))
{bounds}    |httpOut('out')
"""

MIN_MAX = "        .min(3)\n        .max(500)\n"

CARDINALITY = """
stream
    |from()
        .measurement('cpu')
        .groupBy('host', 'cpu')
    |k8sAutoscale()
        .resourceName('a')
        .replicas(lambda: int(0))
"""


def scenario_list(sideload_dir: Path) -> list[Scenario]:
    d = str(sideload_dir)
    side = [
        Scenario("TestStream_Sideload", "TestStream_Sideload", [
            ("sideload", SIDELOAD.format(dir=d, ext0="yml", more=""), DBRP)]),
        Scenario("TestStream_Sideload_JSON", "TestStream_Sideload", [
            ("sideload", SIDELOAD.format(dir=d, ext0="json", more=""), DBRP)]),
        Scenario("TestStream_Sideload_Multiple", "TestStream_Sideload", [
            ("sideload", SIDELOAD.format(dir=d, ext0="yml",
                                         more=SIDELOAD_MORE.format(dir=d)), DBRP)]),
    ]
    loop = [
        Scenario("TestStream_KapacitorLoopback", "TestStream_KapacitorLoopback", [
            ("loop", LOOP_INTO, DBRP), ("count", LOOP_COUNT, [("other-db", "other-rp")])],
            stats=["loop", "count"]),
        Scenario("TestStream_KapacitorLoopback_PreventLoop", "TestStream_KapacitorLoopback",
                 [("loop", LOOP_SELF, DBRP)]),
    ]
    scale = []
    for node in ("k8sAutoscale().resourceNameTag('deployment')",
                 "swarmAutoscale().serviceNameTag('deployment')"):
        kind = node.split("(")[0]
        for bounds, prefix in (("", ""), (MIN_MAX, "min-max-")):
            scale.append(Scenario(
                f"TestStream_Autoscale/{prefix}{kind}", "TestStream_Autoscale",
                [("scale", AUTOSCALE.format(node=node, bounds=bounds), DBRP)],
                stats=["scale"], cloud=True))
    scale.append(Scenario("TestStream_K8sAutoscaleCardinality", "TestStream_Cardinality",
                          [("cardinality", CARDINALITY, DBRP)], stats=["cardinality"],
                          cloud=True))
    return side + loop + scale


def write_sideload_files(root: Path) -> None:
    for rel, text in SIDELOAD_FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


# -- running one scenario --------------------------------------------------------------


def _node_stats(task: dict[str, Any]) -> str:
    stats = (task.get("stats") or {}).get("node-stats") or {}
    for values in stats.values():
        values.pop("avg_exec_time_ns", None)
    return json.dumps(stats, sort_keys=True)


def collect(client: httpx.Client, url: str, scenario: Scenario, cloud: FakeCloud | None
            ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for task_id, script, _ in scenario.tasks:
        if "httpOut('out')" in script:
            r = client.get(f"{url}/kapacitor/v1/tasks/{task_id}/out")
            out[f"{task_id} httpOut"] = r.text if r.status_code == 200 else \
                f"status {r.status_code}"
        if task_id in scenario.stats:
            task = client.get(f"{url}/kapacitor/v1/tasks/{task_id}").json()
            out[f"{task_id} stats"] = _node_stats(task)
            out[f"{task_id} error"] = task.get("error", "")
    if cloud is not None and scenario.cloud:
        with cloud.lock:
            out["cloud requests"] = list(cloud.requests)
    return out


def run(url: str, scenario: Scenario, source: Path | None, cloud: FakeCloud | None,
        expected: dict[str, Any] | None = None, timeout: float = 10.0) -> dict[str, Any]:
    """Define the scenario's tasks, write its points and collect its outputs: once they
    have not changed for a while (``expected`` None), or as soon as they equal it."""
    db, rp, points = scenario.points or srpl_points(source, scenario.data)
    if cloud is not None:
        cloud.reset()
    with httpx.Client(timeout=30) as client:
        try:
            out: dict[str, Any] = {}
            for task_id, script, dbrps in scenario.tasks:
                client.delete(f"{url}/kapacitor/v1/tasks/{task_id}")
                r = client.post(f"{url}/kapacitor/v1/tasks", json={
                    "id": task_id, "type": "stream", "status": "enabled", "script": script,
                    "dbrps": [{"db": d, "rp": p} for d, p in dbrps]})
                if r.status_code != 200:
                    out[f"{task_id} refused"] = r.json().get("error", r.text)
            if out:
                return out
            r = client.post(f"{url}/write", params={"db": db, "rp": rp, "precision": "s"},
                            content=points.encode())
            if r.status_code != 204:
                raise RuntimeError(f"write refused: {r.status_code} {r.text}")
            deadline = time.monotonic() + timeout
            last, since = collect(client, url, scenario, cloud), time.monotonic()
            while time.monotonic() < deadline:
                time.sleep(0.1)
                now = collect(client, url, scenario, cloud)
                if expected is not None and now == expected:
                    time.sleep(0.3)
                    return collect(client, url, scenario, cloud)
                if now != last:
                    last, since = now, time.monotonic()
                elif expected is None and time.monotonic() - since >= 1.0:
                    break
            return last
        finally:
            for task_id, _, _ in scenario.tasks:
                client.delete(f"{url}/kapacitor/v1/tasks/{task_id}")


def services_toml(cloud_url: str) -> str:
    return f"""
[[kubernetes]]
  enabled = true
  id = ""
  in-cluster = false
  api-servers = ["{cloud_url}"]
  token = "t0ken"
[[swarm]]
  enabled = true
  id = ""
  servers = ["{cloud_url}"]
"""


def services_config(cloud_url: str) -> dict[str, Any]:
    return {"kubernetes": [{"enabled": True, "id": "", "in-cluster": False,
                            "api-servers": [cloud_url], "token": "t0ken"}],
            "swarm": [{"enabled": True, "id": "", "servers": [cloud_url]}]}


def main(argv: list[str] | None = None) -> int:
    args = arg_parser("tests.compat.scenarios_misc", __doc__).parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="scenarios-misc-"))
    write_sideload_files(workdir / "sideload")
    chosen = [s for s in scenario_list(workdir / "sideload")
              if not args.patterns or any(fnmatch.fnmatch(s.name, p) for p in args.patterns)]
    cloud = FakeCloud()
    try:
        server = Kapacitor(args.kapacitord, extra_conf=services_toml(cloud.url))
        expected = {}
        try:
            for s in chosen:
                expected[s.name] = run(server.url, s, args.source, cloud)
        finally:
            server.close()
        from kapa_core.testing import DaemonProcess
        differ = []
        config = {"http": {"log-enabled": False}, "logging": {"level": "ERROR"},
                  **services_config(cloud.url)}
        with DaemonProcess(config) as daemon:
            for s in chosen:
                got = run(daemon.url, s, args.source, cloud, expected[s.name], timeout=5)
                if got != expected[s.name]:
                    differ.append(s.name)
                    if not args.quiet:
                        print(show_diff(s.name, got, expected[s.name]))
                elif not args.quiet:
                    print(f"equal {s.name}: {json.dumps(got)[:300]}")
        for name in differ:
            print("DIFFERS", name)
        print(f"{len(chosen) - len(differ)} of {len(chosen)} scenarios equal",
              file=sys.stderr)
        return 1 if differ else 0
    finally:
        cloud.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

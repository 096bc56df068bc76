"""Run Kapacitor's cardinality scenarios on the real Kapacitor and on kapa-core, and
report where the node statistics they show through the API differ.

    python -m tests.compat.scenarios_stats --kapacitord BIN --source DIR [NAME_GLOB...]

DIR is a checkout of Kapacitor at v1.5.7. The scenarios are the ``TestStream_*Cardinality``
functions of its integrations/streamer_test.go: each runs a script over the points of
integrations/testdata/TestStream_Cardinality.srpl and checks the node statistics of the
task afterwards (chiefly ``working_cardinality``). Here each script is defined as a task
on both daemons, the points are written (moved to start at 1971-01-01 as the scenario's
replay does), and once the statistics stop changing the two answers are compared:

- ``node-stats`` of ``GET /kapacitor/v1/tasks/<id>``: every statistic of every node
  (``avg_exec_time_ns`` too: with ``[stats]`` disabled both daemons report 0);
- the node attributes and edge counts of the task's DOT (throughput masked);
- the task's ``nodes`` and ``edges`` statistics in ``/kapacitor/v1/debug/vars`` (their
  tags and values).

The statistics the Go test itself expects are printed next to a difference, and a value
the Go test expects that the real daemon does not show through the API is noted (the Go
test reads them after closing the stream, the API while the task runs).

The Kubernetes autoscale scenario's mocked client becomes the fake Kubernetes API of
tests.compat.scenarios_misc (the same replica counts), configured on both daemons; other
scenarios that configure services of their own (``tmInit``) would be left out and
listed. Nothing of the scenarios is stored here.

``--cases GLOB`` runs the same comparison over the stream compatibility cases matching
GLOB (their scripts and points, outputs pointed at a closed port) instead. Counts that
follow wall-clock time (a barrier's period or idle time) may differ between two runs of
the same daemon.
"""

from __future__ import annotations

import fnmatch
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.compat.oracle import Kapacitor
from tests.compat.runner import _mask_timings
from tests.compat.scenarios import EPOCH_1971, FUNC, SCRIPT, arg_parser, script_text

#: One node's expected statistics in the Go test: ``"name": map[string]interface{}{``.
_NODE = re.compile(r'"(\w+)":\s*map\[string\]interface\{\}\{(.*?)\n\s*\},', re.S)
_STAT = re.compile(r'"(\w+)":\s*int64\((-?\d+)\)')
_CALL = re.compile(r'testStreamerCardinality\(\s*t,\s*"(\w+)",\s*script,\s*es,\s*(\w+)\)')


@dataclass
class Scenario:
    name: str
    script: str
    points: list[str]
    go_stats: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped: str = ""
    db: str = "mydb"
    rp: str = "myrp"
    precision: str = "s"


def srpl_points(path: Path) -> list[str]:
    """The points of a .srpl file (db, rp, line triples) in line protocol, seconds,
    moved so that the first one is at 1971-01-01T00:00:00Z."""
    lines = path.read_text().splitlines()
    out, shift = [], None
    for i in range(0, len(lines) - 2, 3):
        head, _, stamp = lines[i + 2].rpartition(" ")
        t = int(stamp)
        if shift is None:
            shift = EPOCH_1971 - t
        out.append(f"{head} {t + shift}")
    return out


def go_expected_stats(body: str) -> dict[str, dict[str, int]]:
    start = body.find("es := map[string]map[string]interface{}{")
    if start < 0:
        return {}
    return {node: {k: int(v) for k, v in _STAT.findall(stats)}
            for node, stats in _NODE.findall(body[start:])}


def scenarios(source: Path) -> list[Scenario]:
    integrations = source / "integrations"
    text = (integrations / "streamer_test.go").read_text()
    found = []
    for name, body in FUNC.findall(text):
        call = _CALL.search(body)
        script = SCRIPT.search(body)
        if not call or not script:
            continue
        scenario = Scenario(name, script_text(script.group(1)) or "",
                            srpl_points(integrations / "testdata" / f"{call.group(1)}.srpl"),
                            go_expected_stats(body))
        if call.group(2) != "nil" and "K8sService" not in body:
            scenario.skipped = "configures services of its own (tmInit)"
        found.append(scenario)
    return found


def from_cases(pattern: str) -> list[Scenario]:
    """The stream compat cases matching ``pattern`` (e.g. ``'window/*'``) as scenarios:
    their script and points, outputs pointed at a closed port (both daemons then count
    the same failures). Cases that are refused, templates and cases with vars are left
    out."""
    from tests.compat.casefile import all_cases

    out = []
    for case in all_cases(pattern + ".toml"):
        # (a case kapa-core differs on is one where Kapacitor fails, often by crashing)
        if case.get("type", "stream") != "stream" or "error" in case.expected \
                or case.get("kapa_core_differs") \
                or case.get("template") or "vars" in case.data \
                or case.get("implicit_dbrp") or case.get("status") == "disabled":
            continue
        script = re.sub(r"\{\{POST(?::\w+)?\}\}", "http://127.0.0.1:1/post",
                        case.get("script", ""))
        script = script.replace("{{TCP}}", "127.0.0.1:1").replace("{{LOG}}", "/dev/null")
        script = script.replace("{{DIR}}", str(case.path.parent.resolve()))
        points = case.get("points", "").strip().split("\n")
        out.append(Scenario(case.name, script, points, db=case.get("db", "mydb"),
                            rp=case.get("rp", "myrp"),
                            precision=case.get("precision", "s")))
    return out


class Run:
    """One daemon: define each scenario's task, write its points, read its statistics."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.client = httpx.Client(timeout=30)

    def stats(self, scenario: Scenario, settle: float = 0.6,
              timeout: float = 10.0) -> dict[str, Any]:
        task_id = "stats." + scenario.name.replace("/", ".")
        tasks = f"{self.url}/kapacitor/v1/tasks"
        self.client.delete(f"{tasks}/{task_id}")
        r = self.client.post(tasks, json={
            "id": task_id, "type": "stream", "status": "enabled",
            "dbrps": [{"db": scenario.db, "rp": scenario.rp}],
            "script": scenario.script.replace("\t", "    ")})
        if r.status_code != 200:
            return {"error": r.text}
        r = self.client.post(f"{self.url}/write", content="\n".join(scenario.points),
                             params={"db": scenario.db, "rp": scenario.rp,
                                     "precision": scenario.precision})
        if r.status_code != 204:
            return {"error": f"write: {r.status_code} {r.text}"}
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        try:
            while time.monotonic() < deadline:
                now = self._read(task_id)
                if now != last:
                    last, since = now, time.monotonic()
                elif time.monotonic() - since >= settle:
                    break
                time.sleep(0.1)
        finally:
            self.client.delete(f"{tasks}/{task_id}")
        return last or {}

    def _read(self, task_id: str) -> dict[str, Any]:
        task = self.client.get(f"{self.url}/kapacitor/v1/tasks/{task_id}").json()
        return {"node-stats": (task.get("stats") or {}).get("node-stats"),
                "dot": _mask_timings(task.get("dot") or ""), "error": task.get("error"),
                "vars": self._vars(task_id)}

    def _vars(self, task_id: str) -> dict[str, Any]:
        """The task's ``nodes`` and ``edges`` statistics of ``/debug/vars``, keyed by
        their name and tags (without the server's own tags)."""
        stats = self.client.get(f"{self.url}/kapacitor/v1/debug/vars").json()
        out = {}
        for stat in (stats.get("kapacitor") or {}).values():
            tags = stat.get("tags") or {}
            if tags.get("task") != task_id:
                continue
            key = {k: v for k, v in tags.items()
                   if k not in ("task", "host", "cluster_id", "server_id")}
            out[stat.get("name") + json.dumps(key, sort_keys=True)] = stat.get("values")
        return out

    def close(self) -> None:
        self.client.close()


def _flat(stats: dict[str, Any] | None) -> dict[str, Any]:
    return {f"{node}.{k}": v for node, values in (stats or {}).items()
            for k, v in values.items()}


def differences(scenario: Scenario, kapacitor: dict[str, Any],
                core: dict[str, Any]) -> list[str]:
    out = []
    if kapacitor.get("error") != core.get("error"):
        out.append(f"  error: kapacitor {kapacitor.get('error')!r}, "
                   f"kapa-core {core.get('error')!r}")
    ks, cs = _flat(kapacitor.get("node-stats")), _flat(core.get("node-stats"))
    go = _flat(scenario.go_stats)
    for key in sorted(set(ks) | set(cs)):
        if ks.get(key, "-") != cs.get(key, "-"):
            note = f" (Go test expects {go[key]})" if key in go else ""
            out.append(f"  {key}: kapacitor {ks.get(key, '-')}, "
                       f"kapa-core {cs.get(key, '-')}{note}")
    kv, cv = kapacitor.get("vars") or {}, core.get("vars") or {}
    for key in sorted(set(kv) | set(cv)):
        if kv.get(key) != cv.get(key):
            out.append(f"  debug/vars {key}: kapacitor {kv.get(key, '-')}, "
                       f"kapa-core {cv.get(key, '-')}")
    if kapacitor.get("dot") != core.get("dot"):
        out.append("  dot differs:\n    kapacitor: " + json.dumps(kapacitor.get("dot"))
                   + "\n    kapa-core: " + json.dumps(core.get("dot")))
    return out


def go_notes(scenario: Scenario, kapacitor: dict[str, Any]) -> list[str]:
    """What the Go test expects that the real daemon does not show through the API."""
    ks = _flat(kapacitor.get("node-stats"))
    return [f"  note: {key} is {ks.get(key, '-')} through the API, the Go test expects "
            f"{value}" for key, value in sorted(_flat(scenario.go_stats).items())
            if ks.get(key, "-") != value]


def main(argv: list[str] | None = None) -> int:
    parser = arg_parser("tests.compat.scenarios_stats", __doc__)
    parser.add_argument("--cases", metavar="GLOB",
                        help="compare the stream compat cases matching GLOB (such as "
                             "'window/*') instead of Kapacitor's scenarios")
    args = parser.parse_args(argv)
    chosen = from_cases(args.cases) if args.cases else scenarios(args.source)
    chosen = [s for s in chosen
              if not args.patterns or any(fnmatch.fnmatch(s.name, p) for p in args.patterns)]
    runnable = [s for s in chosen if not s.skipped]
    for s in chosen:
        if s.skipped:
            print(f"LEFT OUT {s.name}: {s.skipped}")
    # The Kubernetes scenario's test client: a fake Kubernetes API with the same
    # replica counts (serviceA 1, serviceB 10, others 0), configured on both daemons.
    from tests.compat.scenarios_misc import FakeCloud, services_config, services_toml

    cloud = FakeCloud()
    try:
        return _compare(args, runnable, cloud, services_toml(cloud.url),
                        services_config(cloud.url))
    finally:
        cloud.close()


def _compare(args: Any, runnable: list[Scenario], cloud: Any, kapacitor_conf: str,
             core_conf: dict[str, Any]) -> int:
    expected = {}
    server = Kapacitor(args.kapacitord, extra_conf=kapacitor_conf)
    try:
        run = Run(server.url)
        for s in runnable:
            cloud.reset()
            try:
                expected[s.name] = run.stats(s)
            except httpx.TransportError as exc:  # it crashed: note it, start another
                expected[s.name] = {"error": f"kapacitord failed: {exc}"}
                run.close()
                server.close()
                server = Kapacitor(args.kapacitord, extra_conf=kapacitor_conf)
                run = Run(server.url)
        run.close()
    finally:
        server.close()
    from kapa_core.testing import DaemonProcess
    differ = []
    # [stats] disabled on both: the oracle's Kapacitor runs without it
    cloud.reset()
    with DaemonProcess({"http": {"log-enabled": False}, "stats": {"enabled": False},
                        "logging": {"level": "ERROR"}, **core_conf}) as daemon:
        run = Run(daemon.url)
        for s in runnable:
            cloud.reset()
            got = run.stats(s)
            lines = differences(s, expected[s.name], got)
            notes = go_notes(s, expected[s.name])
            if lines:
                differ.append(s.name)
            if not args.quiet and (lines or notes):
                print(f"--- {s.name}")
                print("\n".join(lines + notes))
        run.close()
    for name in differ:
        print("DIFFERS", name)
    print(f"{len(runnable) - len(differ)} of {len(runnable)} scenarios equal",
          file=sys.stderr)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())

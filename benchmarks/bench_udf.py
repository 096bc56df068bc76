"""UDF throughput: points/s through a moving average UDF, by the way the UDF runs.

    python benchmarks/bench_udf.py [--points 100000] [--runs 1]
                                   [--variant bare process socket inprocess ...]
                                   [--kapacitord /opt/kbin/kapacitord]

The task is ``stream|from().measurement('m1')@movingAvg().field('value').size(10)
.as('avg')|httpOut('out')`` with the moving average of examples/udf/moving_avg.py, run
(a) ``process``: as a process UDF (kapa-core's agent on stdin/stdout),
(b) ``socket``: as a socket UDF (the same program serving a unix socket),
(c) ``inprocess``: in the daemon (``python = "moving_avg:MovingAverage"``),
(d) ``bare``: no UDF (``stream|from()|httpOut()``), the ceiling.
When kapacitord exists (default /opt/kbin/kapacitord), the same tasks also run on
Kapacitor 1.5.7: ``kapacitor-process`` (the same program with kapa-core's agent) and
``kapacitor-own-agent`` (Kapacitor's own Python agent and its moving_avg example, with
kapa-core's generated udf_pb2 in place of Kapacitor's, which current protobuf refuses to
load), plus ``kapacitor-bare``. ``own-agent`` runs that last program under kapa-core.

Each run writes ``--points`` points (``m1 value=<i> <i>``, precision s) in one body and
waits until the httpOut node has collected them all; it prints points/s from the start
of the write to then, and CPU time per point (user and system, from /proc: steadier than
points/s on a busy machine) of the daemon and of the UDF's own process (the process UDF,
or the socket server): a process UDF runs on a second core, so its points/s can match an
in-process UDF's while it costs the machine more.
A benchmark, not a test: no assertions on the figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from kapa_core.testing import DaemonProcess, wait_until  # noqa: E402

MOVING_AVG = ROOT / "examples" / "udf" / "moving_avg.py"
KAPACITOR_AGENT = Path("/opt/kgo/src/github.com/influxdata/kapacitor/udf/agent")
UDF = ".field('value').size(10).as('avg')"
SCRIPTS = {
    "bare": "stream|from().measurement('m1')|httpOut('out')",
    "process": f"stream|from().measurement('m1')@movingAvg(){UDF}|httpOut('out')",
    "socket": f"stream|from().measurement('m1')@movingAvgSocket(){UDF}|httpOut('out')",
    "inprocess": f"stream|from().measurement('m1')@movingAvgPy(){UDF}|httpOut('out')",
    "own-agent": f"stream|from().measurement('m1')@movingAvgOwn(){UDF}|httpOut('out')",
}
KAPA_VARIANTS = ["bare", "process", "socket", "inprocess", "own-agent"]
KAPACITOR_VARIANTS = {"kapacitor-bare": "bare", "kapacitor-process": "process",
                      "kapacitor-own-agent": "own-agent"}


def own_agent_dir(tmp: Path) -> Path | None:
    """Kapacitor's Python agent and moving_avg example, importable with today's
    protobuf: its agent module beside kapa-core's udf_pb2 (the same messages)."""
    agent = KAPACITOR_AGENT / "py" / "kapacitor" / "udf" / "agent.py"
    example = KAPACITOR_AGENT / "examples" / "moving_avg" / "moving_avg.py"
    if not agent.exists() or not example.exists():
        return None
    package = tmp / "own" / "kapacitor" / "udf"
    package.mkdir(parents=True)
    (tmp / "own" / "kapacitor" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    shutil.copy(agent, package / "agent.py")
    shutil.copy(ROOT / "kapa_core" / "udf" / "udf_pb2.py", package / "udf_pb2.py")
    text = example.read_text().replace("level=logging.DEBUG", "level=logging.WARNING")
    (tmp / "own" / "moving_avg_own.py").write_text(text)
    return tmp / "own"


def python_env(*paths: Path) -> dict[str, str]:
    joined = os.pathsep.join(str(p) for p in [*paths, ROOT])
    return {"PYTHONPATH": joined}


def node_collected(stats: dict[str, Any], prefix: str) -> int:
    return sum(node.get("collected", 0) for name, node in
               stats.get("node-stats", {}).items() if name.startswith(prefix))


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry))
    return out


def udf_cpu(pid: int, servers: list[int]) -> dict[int, float]:
    """CPU seconds of the daemon's child processes (process UDFs) and of ``servers``."""
    out = {}
    for child in [*children(pid), *servers]:
        try:
            out[child] = cpu_seconds(child)
        except OSError:
            pass
    return out


def run_one(client: httpx.Client, write_path: str, variant: str, script_key: str,
            points: int, pid: int, servers: list[int]) -> tuple[float, float, float]:
    """points/s, the daemon's CPU microseconds per point and those of the UDF's own
    process (a process UDF, a socket server)."""
    task_id = f"bench_{variant.replace('-', '_')}"
    response = client.post("/kapacitor/v1/tasks", json={
        "id": task_id, "type": "stream", "status": "enabled",
        "dbrps": [{"db": "bench", "rp": "autogen"}],
        "script": SCRIPTS[script_key]})
    response.raise_for_status()
    body = "\n".join(f"m1 value={i} {i + 1}" for i in range(points)).encode()
    cpu = cpu_seconds(pid)
    udf = udf_cpu(pid, servers)
    started = time.perf_counter()
    response = client.post(write_path, params={"db": "bench", "rp": "autogen",
                                               "precision": "s"}, content=body)
    assert response.status_code == 204, response.text
    while True:
        view = client.get(f"/kapacitor/v1/tasks/{task_id}").json()
        if view.get("error"):
            raise RuntimeError(f"{variant}: the task failed: {view['error']}")
        if node_collected(view.get("stats", {}), "http_out") >= points:
            break
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(pid) - cpu
    udf_after = udf_cpu(pid, servers)
    used = sum(after - udf.get(child, after) for child, after in udf_after.items())
    client.delete(f"/kapacitor/v1/tasks/{task_id}")
    return points / elapsed, cpu / points * 1e6, used / points * 1e6


def report(variant: str, results: list[tuple[float, float, float]],
           figures: dict[str, float]) -> None:
    best, cpu, udf = max(results)
    figures[variant] = best
    figures[variant + " cpu"] = cpu + udf
    extra = ""
    if variant == "inprocess" and "process" in figures:
        extra = (f"  ({best / figures['process']:.1f}x process in points/s, "
                 f"{figures['process cpu'] / (cpu + udf):.1f}x in CPU per point)")
    print(f"{variant:<20} {best:>10,.0f} points/s  CPU us/point: daemon {cpu:5.2f} "
          f"+ UDF process {udf:5.2f} = {cpu + udf:5.2f}{extra}", flush=True)


def kapa_core(variants: list[str], points: int, runs: int, tmp: Path,
              figures: dict[str, float]) -> None:
    socket_path = tmp / "moving_avg.sock"
    functions: dict[str, Any] = {
        "movingAvg": {"prog": sys.executable, "args": ["-u", str(MOVING_AVG)],
                      "timeout": "10s"},
        "movingAvgSocket": {"socket": str(socket_path), "timeout": "10s"},
    }
    if "inprocess" in variants:
        functions["movingAvgPy"] = {"python": "moving_avg:MovingAverage"}
    own = own_agent_dir(tmp) if "own-agent" in variants else None
    if own is not None:
        functions["movingAvgOwn"] = {"prog": sys.executable,
                                     "args": ["-u", str(own / "moving_avg_own.py")],
                                     "env": {"PYTHONPATH": str(own)}, "timeout": "10s"}
    elif "own-agent" in variants:
        variants = [v for v in variants if v != "own-agent"]
    server = subprocess.Popen([sys.executable, "-u", str(MOVING_AVG), "--socket",
                               str(socket_path)], env={**os.environ,
                                                       **python_env()})
    try:
        wait_until(lambda: socket_path.exists(), timeout=10)
        config = {"http": {"log-enabled": False, "max-body-size": 0},
                  "logging": {"level": "WARN"}, "udf": {"functions": functions}}
        with DaemonProcess(config, env=python_env(MOVING_AVG.parent)) as daemon, \
                httpx.Client(base_url=daemon.url, timeout=600) as client:
            for variant in variants:
                assert daemon.proc is not None
                rates = [run_one(client, "/write", variant, variant, points,
                                 daemon.proc.pid, [server.pid]) for _ in range(runs)]
                report(variant, rates, figures)
    finally:
        server.kill()
        server.wait(10)


def kapacitor(binary: str, variants: list[str], points: int, runs: int, tmp: Path,
              figures: dict[str, float]) -> None:
    from tests.compat.oracle import Kapacitor

    conf = (f'[udf.functions.movingAvg]\n  prog = "{sys.executable}"\n'
            f'  args = ["-u", "{MOVING_AVG}"]\n  timeout = "10s"\n'
            f'  [udf.functions.movingAvg.env]\n    PYTHONPATH = "{ROOT}"\n')
    own = own_agent_dir(tmp / "k") if "kapacitor-own-agent" in variants else None
    if own is not None:
        conf += (f'[udf.functions.movingAvgOwn]\n  prog = "{sys.executable}"\n'
                 f'  args = ["-u", "{own / "moving_avg_own.py"}"]\n  timeout = "10s"\n'
                 f'  [udf.functions.movingAvgOwn.env]\n    PYTHONPATH = "{own}"\n')
    elif "kapacitor-own-agent" in variants:
        variants = [v for v in variants if v != "kapacitor-own-agent"]
    server = Kapacitor(binary, extra_conf=conf)
    try:
        with httpx.Client(base_url=server.url, timeout=600) as client:
            for variant in variants:
                rates = [run_one(client, "/kapacitor/v1/write", variant,
                                 KAPACITOR_VARIANTS[variant], points, server.proc.pid, [])
                         for _ in range(runs)]
                report(variant, rates, figures)
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1, help="runs per variant; the best "
                        "is printed")
    parser.add_argument("--variant", nargs="+",
                        choices=[*KAPA_VARIANTS, *KAPACITOR_VARIANTS],
                        default=[*KAPA_VARIANTS, *KAPACITOR_VARIANTS])
    parser.add_argument("--kapacitord", default="/opt/kbin/kapacitord",
                        help="Kapacitor 1.5.7's daemon (skipped when it does not exist)")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-udf-") as name:
        tmp = Path(name)
        ours = [v for v in args.variant if v in KAPA_VARIANTS]
        if ours:
            kapa_core(ours, args.points, args.runs, tmp, figures)
        theirs = [v for v in args.variant if v in KAPACITOR_VARIANTS]
        if theirs and os.path.exists(args.kapacitord):
            kapacitor(args.kapacitord, theirs, args.points, args.runs, tmp, figures)
        elif theirs:
            print(f"{args.kapacitord} not found: Kapacitor not measured")


if __name__ == "__main__":
    main()

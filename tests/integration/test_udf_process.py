"""Process and socket UDFs through the real daemon: examples/udf/moving_avg.py run as a
child process (stdin/stdout) and served on a unix socket, speaking the UDF wire protocol.
Bad functions — one that refuses its options, crashes, writes garbage, never answers —
fail their task with a clear error; the daemon and the other tasks keep running, and no
UDF process outlives its task."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kapa_core.testing import DaemonProcess, wait_until
from tests.integration.udf_programs import GARBAGE, SILENT, stream_udf

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MOVING_AVG = ROOT / "examples" / "udf" / "moving_avg.py"
API = "/kapacitor/v1"

#: Misbehaving UDF programs, each named for what it does.
BAD = {
    # answers info, then crashes on the first point with a message on stderr
    "crash": stream_udf('''
    print("about to fail on", p.name, file=sys.stderr, flush=True)
    import os; os._exit(3)
''', 'import sys'),
    # answers info and init, then writes bytes that are no message
    "garbage": GARBAGE,
    # answers info and init, then stops answering anything (keepalives included)
    "silent": SILENT,
    # never answers the info request
    "mute": "import time\ntime.sleep(3600)\n",
    # provides a stream but answers a point with a batch
    "wrongedge": stream_udf('''
    r = udf_pb2.Response(); r.begin.name = p.name; a.write_response(r)
'''),
    # closes its stdout and keeps running
    "closer": stream_udf('''
    os.close(1); time.sleep(3600)
''', 'import os, time'),
    # answers each point with 20,000 points as fast as it can
    "flood": stream_udf('''
    r = udf_pb2.Response(); r.point.CopyFrom(p)
    for i in range(20000):
        r.point.time = p.time + i
        a.write_response(r)
'''),
}


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("udfs")
    for name, code in BAD.items():
        (directory / f"{name}.py").write_text(code)
    return directory


@pytest.fixture(scope="module")
def socket_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = str(tmp_path_factory.mktemp("sock") / "moving_avg.sock")
    server = subprocess.Popen([sys.executable, "-u", str(MOVING_AVG), "--socket", path],
                              stderr=subprocess.PIPE)
    try:
        wait_until(lambda: os.path.exists(path), timeout=10)
        yield path
    finally:
        server.kill()
        server.wait(10)


def _process(program: Path, timeout: str = "10s") -> dict[str, object]:
    return {"prog": sys.executable, "args": ["-u", str(program)], "timeout": timeout}


@pytest.fixture(scope="module")
def daemon(programs: Path, socket_server: str) -> Iterator[DaemonProcess]:
    functions = {
        "movingAvg": _process(MOVING_AVG),
        "movingAvgSocket": {"socket": socket_server, "timeout": "10s"},
        "crash": _process(programs / "crash.py"),
        "garbage": _process(programs / "garbage.py"),
        "silent": _process(programs / "silent.py", timeout="1s"),
        "mute": _process(programs / "mute.py", timeout="1s"),
        "wrongedge": _process(programs / "wrongedge.py"),
        "closer": _process(programs / "closer.py"),
        "flood": _process(programs / "flood.py"),
    }
    with DaemonProcess({"udf": {"functions": functions}}) as process:
        process.wait_for_log(r'msg="UDF available" .*udf=silent')
        yield process


def define(daemon: DaemonProcess, task_id: str, udf: str, options: str = "") -> httpx.Response:
    script = (f'dbrp "db"."rp"\nstream\n    |from().measurement(\'{task_id}\').groupBy(\'host\')\n'
              f"    @{udf}(){options}\n    |httpOut('out')\n")
    return httpx.post(daemon.url + API + "/tasks", json={
        "id": task_id, "type": "stream", "script": script, "status": "enabled"}, timeout=30)


def write(daemon: DaemonProcess, measurement: str, values: list[float]) -> None:
    lines = "\n".join(f"{measurement},host=h{i % 2} value={v} {i + 1}000000000"
                      for i, v in enumerate(values))
    response = httpx.post(daemon.url + API + "/write?db=db&rp=rp", content=lines)
    assert response.status_code == 204, response.text


def http_out(daemon: DaemonProcess, task_id: str) -> dict:
    return httpx.get(f"{daemon.url}{API}/tasks/{task_id}/out").json()


def task(daemon: DaemonProcess, task_id: str) -> dict:
    return httpx.get(f"{daemon.url}{API}/tasks/{task_id}").json()


def children(pid: int) -> list[int]:
    """The live child processes of ``pid``."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry))
    return out


def zombies(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] == "Z":
                out.append(int(entry))
    return out


def averages(series: list[dict]) -> dict[str, list[float]]:
    return {s["tags"]["host"]: [row[1] for row in s["values"]] for s in series}


@pytest.mark.parametrize("udf", ["movingAvg", "movingAvgSocket"])
def test_a_moving_average_runs_as_a_task_node(daemon: DaemonProcess, udf: str) -> None:
    task_id = f"avg_{udf}"
    response = define(daemon, task_id, udf, ".field('value').size(2).as('avg')")
    assert response.status_code == 200, response.text
    write(daemon, task_id, [1, 10, 3, 20, 5, 30])  # h0: 1 3 5, h1: 10 20 30

    def done() -> bool:
        out = http_out(daemon, task_id)
        return any(s["values"][0][0].endswith("06Z") for s in out.get("series", []))
    wait_until(done, timeout=15)
    out = http_out(daemon, task_id)
    # httpOut keeps the last point of each group: the average of its last two values
    assert {s["tags"]["host"]: s["values"][0][1:] for s in out["series"]} == \
        {"h0": [4.0], "h1": [25.0]}
    assert out["series"][0]["columns"] == ["time", "avg"]
    httpx.delete(f"{daemon.url}{API}/tasks/{task_id}")


def test_options_the_function_refuses_stop_the_task_with_kapacitors_words(
        daemon: DaemonProcess) -> None:
    # As Kapacitor 1.5.7 (checked against it): the task is created and started, then
    # stops with the function's refusal as its error.
    response = define(daemon, "refused", "movingAvg", ".field('value')")
    assert response.status_code == 200, response.text
    wait_until(lambda: task(daemon, "refused")["error"] != "", timeout=15)
    view = task(daemon, "refused")
    assert (view["status"], view["executing"], view["error"]) == (
        "enabled", False, "movingAvg2: failed to initialize processes must supply window size")
    httpx.delete(f"{daemon.url}{API}/tasks/refused")


def test_an_unknown_option_is_refused_with_line_and_column(daemon: DaemonProcess) -> None:
    response = define(daemon, "unknownopt", "movingAvg", ".field('value').window(3)")
    assert response.status_code == 400
    assert "line 4" in response.text and "window" in response.text


@pytest.mark.parametrize(("udf", "expected"), [
    ("crash", "process exited with status 3; stderr: about to fail on crash"),
    ("garbage", "read error: "),
    ("silent", "keepalive timedout, last keepalive received was: "),
    ("wrongedge", "the UDF sent a batch, but it provides a stream"),
    ("closer", "the UDF closed its output"),
])
def test_a_failing_udf_fails_its_task_only(daemon: DaemonProcess, udf: str,
                                           expected: str) -> None:
    healthy = define(daemon, f"healthy_{udf}", "movingAvg", ".field('value').size(2)")
    assert healthy.status_code == 200, healthy.text
    response = define(daemon, udf, udf)
    assert response.status_code == 200, response.text
    write(daemon, udf, [1.0])
    wait_until(lambda: task(daemon, udf)["error"] != "", timeout=15)
    view = task(daemon, udf)
    assert view["executing"] is False
    assert view["error"].startswith(f"{udf}2: "), view["error"]
    assert expected in view["error"], view["error"]
    # the daemon and the other task keep running
    write(daemon, f"healthy_{udf}", [2.0, 4.0])
    wait_until(lambda: bool(http_out(daemon, f"healthy_{udf}").get("series")), timeout=15)
    for task_id in (udf, f"healthy_{udf}"):
        httpx.delete(f"{daemon.url}{API}/tasks/{task_id}")


def test_a_function_that_never_answers_its_info_is_left_out(daemon: DaemonProcess) -> None:
    line = next(line for line in daemon.log().splitlines()
                if 'msg="UDF left out"' in line and "udf=mute" in line)
    assert "bridge=process" in line
    assert "no answer to the info request within the timeout" in line
    response = define(daemon, "usesmute", "mute")
    assert response.status_code == 400


def test_stderr_lines_are_logged_with_the_task_and_node(daemon: DaemonProcess) -> None:
    response = define(daemon, "stderrlog", "crash")
    assert response.status_code == 200, response.text
    write(daemon, "stderrlog", [1.0])
    daemon.wait_for_log(r'msg="UDF log" .*text="about to fail on stderrlog"')
    line = next(line for line in daemon.log().splitlines()
                if "about to fail on stderrlog" in line and "UDF log" in line)
    assert "task=stderrlog" in line and "node=crash2" in line
    httpx.delete(f"{daemon.url}{API}/tasks/stderrlog")


def test_no_udf_process_outlives_its_task(daemon: DaemonProcess) -> None:
    assert daemon.proc is not None
    pid = daemon.proc.pid
    before = set(children(pid))
    response = define(daemon, "lifecycle", "movingAvg", ".field('value').size(2)")
    assert response.status_code == 200, response.text
    started = set(children(pid)) - before
    assert len(started) == 1
    httpx.delete(f"{daemon.url}{API}/tasks/lifecycle")
    wait_until(lambda: not (set(children(pid)) & started), timeout=10)
    wait_until(lambda: not (set(zombies(pid)) & started), timeout=10,
               what="the UDF process reaped")


def test_a_flooding_udf_is_followed_without_stopping_the_daemon(daemon: DaemonProcess) -> None:
    script = ('dbrp "db"."rp"\nstream\n    |from().measurement(\'flood\')\n    @flood()\n'
              "    |httpOut('out')\n")
    response = httpx.post(daemon.url + API + "/tasks", json={
        "id": "flood", "type": "stream", "script": script, "status": "enabled"})
    assert response.status_code == 200, response.text
    write(daemon, "flood", [1.0, 2.0, 3.0])

    def emitted() -> int:
        dot = httpx.get(f"{daemon.url}{API}/tasks/flood").json()["dot"]
        return int(dot.split('flood2 -> http_out3 [processed="')[1].split('"')[0])
    wait_until(lambda: emitted() == 60000, timeout=30)
    # the API answered throughout, and still does
    assert httpx.get(daemon.url + "/kapacitor/v1/ping").status_code == 204
    assert task(daemon, "flood")["executing"] is True
    httpx.delete(f"{daemon.url}{API}/tasks/flood")

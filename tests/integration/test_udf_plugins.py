"""A pip-installed UDF bridge package (examples/kapa-example-udf) seen working through the
real daemon: its function answers its info at start, ``@scale()`` runs in a task, bad
options are refused with line and column, and a function no bridge runs is left out."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from kapa_core.testing import DaemonProcess, run_cli

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kapa-example-udf"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example package really pip-installed into its own directory (built in
    isolation, as tests/integration/test_plugins.py does: the venv has no ``wheel``)."""
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / EXAMPLE.name
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--disable-pip-version-check", "--target", str(target), str(source)],
                   check=True, capture_output=True)
    return target


CONFIG = {"udf": {"functions": {
    "scale": {"bridge": "example"},
    # the program does not exist: its info request fails, it is logged and left out,
    # the daemon keeps running
    "moving_avg": {"prog": "/usr/bin/python3", "args": ["-u", "moving_avg.py"]},
    # the example bridge has no such function: its factory fails
    "missing": {"bridge": "example"},
}}}

SCRIPT = """dbrp "db"."rp"
stream
    |from().measurement('cpu')
    @scale()
        .field('value')
        .factor(2.5)
        .as('scaled')
    |httpOut('scaled')
"""


def _define(daemon: DaemonProcess, task_id: str, script: str) -> httpx.Response:
    return httpx.post(daemon.url + "/kapacitor/v1/tasks",
                      json={"id": task_id, "type": "stream", "script": script,
                            "status": "enabled"})


def test_the_installed_bridge_is_listed(site: Path) -> None:
    out = run_cli("plugins", env={"PYTHONPATH": str(site)}).stdout
    line = next(line for line in out.splitlines() if line.strip().startswith("example-udf "))
    assert "kapa-example-udf 1.0.0" in line


def test_an_in_process_udf_runs_in_a_task(site: Path) -> None:
    with DaemonProcess(CONFIG, env={"PYTHONPATH": str(site)}) as daemon:
        daemon.wait_for_log(r'msg="UDF available" .*udf=scale bridge=example')
        log = daemon.log()
        assert 'msg="UDF left out"' in log and "udf=moving_avg" in log
        assert "udf=missing" in log and "has no function named 'missing'" in log

        response = _define(daemon, "scaler", SCRIPT)
        assert response.status_code == 200, response.text
        lines = "\n".join(f"cpu,host=h{i % 2} value={i}.5 {i}000000000" for i in range(1, 5))
        write = httpx.post(daemon.url + "/kapacitor/v1/write?db=db&rp=rp", content=lines)
        assert write.status_code == 204, write.text
        deadline = time.monotonic() + 10
        while True:
            result = httpx.get(daemon.url + "/kapacitor/v1/tasks/scaler/scaled").json()
            values = (result.get("series") or [{}])[0].get("values")
            if values or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        series = result["series"][0]
        # httpOut keeps the last point: 4.5 scaled by 2.5 into 'scaled'
        assert (series["name"], series["tags"], series["columns"]) == (
            "cpu", {"host": "h0"}, ["time", "scaled", "value"])
        assert series["values"] == [["1970-01-01T00:00:04Z", 11.25, 4.5]]

        task = httpx.get(daemon.url + "/kapacitor/v1/tasks/scaler").json()
        assert task["executing"] is True and task["error"] == ""
        assert "from1 -> scale2" in task["dot"] and "scale2 -> http_out3" in task["dot"]
        stats = task["stats"]["node-stats"]["scale2"]
        assert (stats["collected"], stats["emitted"], stats["errors"]) == (4, 4, 0)

        # Disabling the task closes its session.
        response = httpx.patch(daemon.url + "/kapacitor/v1/tasks/scaler",
                               json={"status": "disabled"})
        assert response.status_code == 200, response.text
        daemon.wait_for_log(r'msg="scale session closed" .*scaled=4')


BAD = [
    ("stream|from()@scale().factor(2)",
     "line 2 char 23: unexpected arg to factor, got INT expected DOUBLE"),
    ("stream|from()\n    @scale()\n        .field('a', 'b')",
     "line 4 char 10: unexpected number of args to field, got 2 expected 1"),
    ("stream|from()@scale().size(3)",
     'line 2 char 23: no method or property "size" on *pipeline.UDFNode'),
    ("stream|from()|scale()",
     'line 2 char 15: no chaining method "scale" on *pipeline.FromNode, but dynamic method '
     "does exist. Use '@' operator instead: 'node@scale(..)'."),
    ("stream|from()@missing()",
     'line 2 char 15: no method or property "missing" on *pipeline.FromNode'),
]


def test_bad_options_are_refused_with_line_and_column(site: Path) -> None:
    with DaemonProcess(CONFIG, env={"PYTHONPATH": str(site)}) as daemon:
        daemon.wait_for_log(r'msg="UDF available" .*udf=scale')
        for script, error in BAD:
            response = _define(daemon, "bad", 'dbrp "db"."rp"\n' + script)
            assert response.status_code == 400, response.text
            assert response.json()["error"].startswith("invalid TICKscript: " + error)
            assert httpx.get(daemon.url + "/kapacitor/v1/tasks/bad").status_code == 404
        # Fed batches it does not want: saved, but refused to start (as Kapacitor does)
        response = _define(daemon, "edges", 'dbrp "db"."rp"\nstream|from()'
                           "|window().period(1s).every(1s)@scale()")
        # (the tasks API answers a task that cannot start with 400; Kapacitor with 500)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == (
            "cannot add child mismatched edges: window2:batch -> scale3:stream")
        task = httpx.get(daemon.url + "/kapacitor/v1/tasks/edges").json()
        assert task["executing"] is False


def test_without_the_package_the_function_is_left_out() -> None:
    config = {"udf": {"functions": {"scale": {"bridge": "example"}}}}
    with DaemonProcess(config) as daemon:
        daemon.wait_for_log(r"no UDF bridge named 'example' is installed")
        response = _define(daemon, "scaler", SCRIPT)
        assert response.status_code == 400
        assert 'no method or property "scale"' in response.json()["error"]

"""Task snapshots with a process UDF (examples/udf/moving_avg.py): its state is saved
every ``[task] snapshot-interval`` and when the task stops, and given back when the task
starts again — after a disable/enable, a graceful restart, and a crash of the daemon
(then from the last periodic snapshot). A changed pipeline or a deleted task starts
afresh."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from kapa_core.testing import DaemonProcess, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MOVING_AVG = ROOT / "examples" / "udf" / "moving_avg.py"
API = "/kapacitor/v1"
CONFIG = {"task": {"snapshot-interval": "1s"},
          "udf": {"functions": {"movingAvg": {
              "prog": sys.executable, "args": ["-u", str(MOVING_AVG)], "timeout": "10s"}}}}
SCRIPT = """dbrp "db"."rp"
stream
    |from().measurement('m')
    @movingAvg().field('value').size(10).as('avg')
    |httpOut('out')
"""


def define(daemon: DaemonProcess, script: str = SCRIPT, task_id: str = "avg") -> None:
    response = httpx.post(daemon.url + API + "/tasks", json={
        "id": task_id, "type": "stream", "script": script, "status": "enabled"})
    assert response.status_code == 200, response.text


def set_status(daemon: DaemonProcess, status: str) -> None:
    response = httpx.patch(daemon.url + API + "/tasks/avg", json={"status": status})
    assert response.status_code == 200, response.text


def average_after(daemon: DaemonProcess, value: float, second: int) -> float:
    """Write one point and return the average the task answers for it."""
    response = httpx.post(daemon.url + API + "/write?db=db&rp=rp",
                          content=f"m value={value} {second}000000000")
    assert response.status_code == 204, response.text
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))

    def answered() -> bool:
        out = httpx.get(daemon.url + API + "/tasks/avg/out").json()
        return bool(out.get("series")) and out["series"][0]["values"][0][0] == stamp
    wait_until(answered, timeout=15)
    return float(httpx.get(daemon.url + API + "/tasks/avg/out").json()
                 ["series"][0]["values"][0][1])


def test_the_udf_state_survives_disable_restart_and_crash(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    with DaemonProcess(CONFIG, data_dir=data) as daemon:
        define(daemon)
        assert average_after(daemon, 10, 1) == 10
        assert average_after(daemon, 20, 2) == 15
        # disabled: its state is saved at the stop and given back at the start
        set_status(daemon, "disabled")
        set_status(daemon, "enabled")
        assert average_after(daemon, 30, 3) == 20
        assert daemon.stop() == 0  # a graceful stop (SIGTERM) saves it too
    with DaemonProcess(CONFIG, data_dir=data) as daemon:
        assert average_after(daemon, 40, 4) == 25
        assert average_after(daemon, 50, 5) == 30
        daemon.wait_for_log(r'msg="saved task snapshot" .*task=avg', timeout=10,
                            count=daemon.log().count('msg="saved task snapshot"') + 1)
        daemon.stop(signal.SIGKILL)  # a crash: only the periodic snapshot is left
    with DaemonProcess(CONFIG, data_dir=data) as daemon:
        assert average_after(daemon, 60, 6) == 35


def test_a_changed_pipeline_or_a_deleted_task_starts_afresh(tmp_path: Path) -> None:
    with DaemonProcess(CONFIG) as daemon:
        define(daemon)
        assert average_after(daemon, 10, 1) == 10
        set_status(daemon, "disabled")
        # the same task with one node more: the snapshot does not name it, not used
        changed = SCRIPT.replace("    |httpOut('out')", "    |log()\n    |httpOut('out')")
        response = httpx.patch(daemon.url + API + "/tasks/avg",
                               json={"script": changed, "status": "enabled"})
        assert response.status_code == 200, response.text
        assert average_after(daemon, 30, 2) == 30
        assert 'msg="task pipeline changed not using snapshot"' in daemon.log()
        # deleted with its snapshot: a new task of that name starts empty
        assert average_after(daemon, 50, 3) == 40
        assert httpx.delete(daemon.url + API + "/tasks/avg").status_code == 204
        define(daemon)
        assert average_after(daemon, 70, 4) == 70


def test_a_config_override_of_udf_loads_the_functions_again() -> None:
    # A kapa-core addition: Kapacitor's [udf] cannot be overridden.
    with DaemonProcess() as daemon:
        refused = httpx.post(daemon.url + API + "/tasks", json={
            "id": "avg", "type": "stream", "script": SCRIPT, "status": "enabled"})
        assert refused.status_code == 400  # no such UDF yet
        response = httpx.post(daemon.url + API + "/config/udf/", json={"set": {
            "functions": CONFIG["udf"]["functions"]}})
        assert response.status_code == 204, response.text
        daemon.wait_for_log(r'msg="UDF available" .*udf=movingAvg')
        define(daemon)
        assert average_after(daemon, 10, 1) == 10
        assert average_after(daemon, 20, 2) == 15
        shown = httpx.get(daemon.url + API + "/config/udf/").json()
        assert shown["options"]["functions"]["movingAvg"]["prog"] == sys.executable, shown
        # a bad function is refused as any bad value is, and changes nothing
        bad = httpx.post(daemon.url + API + "/config/udf/", json={"set": {
            "functions": {"x": {"prog": "/bin/true", "socket": "/tmp/x.sock"}}}})
        assert bad.status_code == 400, bad.text
        assert average_after(daemon, 30, 3) == 20

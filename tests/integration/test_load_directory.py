"""The [load] directory: tasks, templates and template tasks loaded at startup and SIGHUP."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx
import pytest

from kapa_core.testing import DaemonProcess, wait_until

pytestmark = pytest.mark.integration


def test_load_directory(tmp_path: Path) -> None:
    load = tmp_path / "load"
    (load / "tasks").mkdir(parents=True)
    (load / "templates").mkdir()
    (load / "tasks" / "cpu.tick").write_text(
        'dbrp "telegraf"."autogen"\nstream|from().measurement(\'cpu\')|httpOut(\'out\')\n')
    (load / "templates" / "above.tick").write_text(
        "var measurement string\nvar limit = 5.0\n"
        "stream|from().measurement(measurement).where(lambda: \"v\" > limit)"
        "|httpOut('out')\n")
    (load / "tasks" / "mem_above.yaml").write_text(
        "template-id: above\ndbrps:\n  - db: telegraf\n    rp: autogen\nvars:\n"
        "  measurement: {type: string, value: mem}\n  limit: {type: float, value: 1.0}\n")
    (load / "tasks" / "disk_above.json").write_text(json.dumps({
        "template-id": "above", "dbrps": [{"db": "telegraf", "rp": "autogen"}],
        "vars": {"measurement": {"type": "string", "value": "disk"}}}))
    (load / "tasks" / "broken.tick").write_text("stream|from(\n")
    with DaemonProcess({"load": {"enabled": True, "dir": str(load)}}) as daemon:
        base = daemon.url + "/kapacitor/v1"
        tasks = {t["id"]: t for t in httpx.get(base + "/tasks").json()["tasks"]}
        assert set(tasks) == {"cpu", "mem_above", "disk_above"}
        assert all(t["status"] == "enabled" and t["executing"] for t in tasks.values())
        # A task list has no template-id (as Kapacitor's); a single task has it.
        assert httpx.get(base + "/tasks/mem_above").json()["template-id"] == "above"
        daemon.wait_for_log(r'msg="failed to load file" .*broken\.tick')
        httpx.post(base.replace("/kapacitor/v1", "") + "/write?db=telegraf&rp=autogen"
                   "&precision=s", content=b"mem v=2 1\ncpu v=3 2\n")
        out = wait_until(lambda: httpx.get(base + "/tasks/mem_above/out").json()["series"],
                         what="output of mem_above")
        assert out[0]["values"] == [["1970-01-01T00:00:01Z", 2.0]]
        # A file that goes away takes its task with it at the next load (SIGHUP).
        (load / "tasks" / "cpu.tick").unlink()
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: httpx.get(base + "/tasks/cpu").status_code, what="cpu deleted",
                   until=lambda status: status == 404)
        assert httpx.get(base + "/tasks/mem_above").status_code == 200

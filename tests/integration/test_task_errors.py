"""A node error that stops its task, as Kapacitor stops it: the task stays enabled, is no
longer executing, shows the node's error, its httpOut answers 404, and the daemon and
every other task go on."""

from __future__ import annotations

import tempfile

import httpx
import pytest

from kapa_core.testing import DaemonProcess, wait_until

pytestmark = pytest.mark.integration

BASE = "/kapacitor/v1/tasks"

FAILING = """
stream
    |from()
        .measurement('m')
    |combine(lambda: TRUE, lambda: TRUE)
        .as('a', 'b')
        .max(1)
    |httpOut('out')
"""

HEALTHY = """
stream
    |from()
        .measurement('m')
    |groupBy('k')
    |httpOut('out')
"""

ERROR = ("combine2: refusing to perform combination as total combinations 3 exceeds max "
         "combinations 1")


def define(daemon: DaemonProcess, task_id: str, script: str) -> None:
    body = {"id": task_id, "type": "stream", "dbrps": [{"db": "db", "rp": "rp"}],
            "script": script, "status": "enabled"}
    response = httpx.post(daemon.url + BASE, json=body)
    assert response.status_code == 200, response.text


def write(daemon: DaemonProcess, lines: str) -> None:
    response = httpx.post(f"{daemon.url}/write?db=db&rp=rp&precision=s",
                          content=lines.strip().encode())
    assert response.status_code == 204, response.text


def task(daemon: DaemonProcess, task_id: str) -> dict:
    return httpx.get(f"{daemon.url}{BASE}/{task_id}").json()


def http_out(daemon: DaemonProcess, task_id: str) -> httpx.Response:
    return httpx.get(f"{daemon.url}{BASE}/{task_id}/out")


def stopped(daemon: DaemonProcess, task_id: str) -> dict:
    return wait_until(lambda: task(daemon, task_id), what=f"{task_id} stopped",
                      until=lambda t: not t["executing"])


def healthy_rows(daemon: DaemonProcess) -> list:
    response = http_out(daemon, "healthy")
    return response.json()["series"] or [] if response.status_code == 200 else []


def test_a_stopped_task_and_the_others() -> None:
    with DaemonProcess({"http": {"log-enabled": False}}) as daemon:
        define(daemon, "failing", FAILING)
        define(daemon, "healthy", HEALTHY)
        # Three points of one time: 3 pairs, more than .max(1), once the next time comes.
        write(daemon, """
m,k=a v=1 31536000
m,k=b v=2 31536000
m,k=c v=3 31536000
m,k=a v=4 31536001
""")
        view = stopped(daemon, "failing")
        assert view["error"] == ERROR
        assert view["status"] == "enabled"  # as Kapacitor: still enabled, not running
        assert view["stats"] == {}
        assert "avg_exec_time_ns" not in view["dot"]  # drawn as a task that does not run
        response = http_out(daemon, "failing")
        assert response.status_code == 404
        assert response.json() == {"error": "no task exists"}
        listed = httpx.get(daemon.url + BASE,
                           params=[("fields", "executing"), ("fields", "error")]).json()
        by_id = {t["id"]: t for t in listed["tasks"]}
        assert by_id["failing"]["executing"] is False
        assert by_id["failing"]["error"] == ERROR
        assert by_id["healthy"]["executing"] is True
        assert by_id["healthy"]["error"] == ""

        # The other task has all the points and takes new ones.
        wait_until(lambda: healthy_rows(daemon), what="the healthy task's output",
                   until=lambda rows: {r["tags"]["k"] for r in rows} == {"a", "b", "c"})
        write(daemon, "m,k=d v=5 31536002\nm,k=d v=6 31536003")
        wait_until(lambda: healthy_rows(daemon), what="the healthy task's new output",
                   until=lambda rows: ["1971-01-01T00:00:03Z", 6] in [
                       v for r in rows for v in r["values"]])
        assert task(daemon, "healthy")["executing"] is True

        # The stopped task keeps its error while disabled; enabling it starts it afresh.
        patched = httpx.patch(f"{daemon.url}{BASE}/failing", json={"status": "disabled"})
        assert patched.status_code == 200, patched.text
        assert patched.json()["error"] == ERROR
        patched = httpx.patch(f"{daemon.url}{BASE}/failing", json={"status": "enabled"})
        assert patched.status_code == 200, patched.text
        assert patched.json()["executing"] is True
        assert patched.json()["error"] == ""
        assert http_out(daemon, "failing").status_code == 200


def test_the_error_is_kept_and_the_task_restarts_with_the_daemon() -> None:
    with tempfile.TemporaryDirectory(prefix="kapa-taskerr-") as data_dir:
        with DaemonProcess({"http": {"log-enabled": False}}, data_dir=data_dir) as daemon:
            define(daemon, "failing", FAILING)
            write(daemon, "m,k=a v=1 31536000\nm,k=b v=2 31536000\nm,k=c v=3 31536000\n"
                          "m,k=a v=4 31536001")
            assert stopped(daemon, "failing")["error"] == ERROR
        # Stored with the task; an enabled task starts again with the daemon (as
        # Kapacitor does), which clears the error.
        with DaemonProcess({"http": {"log-enabled": False}}, data_dir=data_dir) as daemon:
            view = task(daemon, "failing")
            assert view["executing"] is True
            assert view["error"] == ""


def test_an_alert_template_error_stops_only_its_task() -> None:
    script = """
stream
    |from()
        .measurement('cpu')
    |alert()
        .crit(lambda: "value" > 80)
        .message('{{ .Nope }}')
    |httpOut('out')
"""
    with DaemonProcess({"http": {"log-enabled": False}}) as daemon:
        define(daemon, "alerting", script)
        define(daemon, "healthy", HEALTHY.replace("'m'", "'cpu'").replace("'k'", "'host'"))
        write(daemon, "cpu,host=a value=10 31536000\ncpu,host=a value=90 31536001")
        view = stopped(daemon, "alerting")
        assert view["error"].startswith(
            "alert2: template: message:1:3: executing \"message\" at <.Nope>: ")
        write(daemon, "cpu,host=z value=95 31536002")
        wait_until(lambda: healthy_rows(daemon), what="the healthy task's output",
                   until=lambda rows: "z" in {r["tags"]["host"] for r in rows})
        assert task(daemon, "healthy")["executing"] is True


def test_an_error_from_a_timer_driven_node_stops_the_task() -> None:
    """The stats node emits from its own timer: an error downstream of it stops the task
    as well."""
    script = """
var data = stream
    |from()
        .measurement('cpu')
data
    |httpOut('out')
data
    |stats(100ms)
    |alert()
        .crit(lambda: TRUE)
        .message('{{ .Nope }}')
"""
    with DaemonProcess({"http": {"log-enabled": False}}) as daemon:
        define(daemon, "timed", script)
        write(daemon, "cpu,host=a value=1 31536000")
        view = stopped(daemon, "timed")
        assert view["error"].startswith("alert4: template: message:1:3: ")
        assert http_out(daemon, "timed").status_code == 404
        # A stopped task is deleted as any other.
        assert httpx.delete(f"{daemon.url}{BASE}/timed").status_code == 204
        assert httpx.get(f"{daemon.url}{BASE}/timed").status_code == 404


def test_a_task_that_fails_to_start_is_kept_with_its_error() -> None:
    # As Kapacitor (checked against 1.5.7): the definition is saved (enabled, not
    # executing, the failure as its error); kapa-core answers 400 with Kapacitor's
    # message where Kapacitor answers 500.
    script = "stream|from().measurement('m')|alert().crit(lambda: TRUE).post('')"
    with DaemonProcess({"http": {"log-enabled": False}}) as daemon:
        response = httpx.post(daemon.url + BASE, json={
            "id": "nostart", "dbrps": [{"db": "db", "rp": "rp"}], "status": "enabled",
            "script": script})
        assert response.status_code == 400
        message = "Either URL or endpoint must be non-empty"  # Kapacitor's words
        assert response.json()["error"] == message
        task = httpx.get(f"{daemon.url}{BASE}/nostart").json()
        assert (task["status"], task["executing"], task["error"]) == ("enabled", False,
                                                                      message)
        # As Kapacitor 1.5.7 answers (taken from it): a PATCH that does not change the
        # status neither stops nor starts the task, so the new script is saved, the task
        # stays not executing with its error; disabling and enabling starts it.
        fixed = "stream|from().measurement('m')|httpOut('out')"
        response = httpx.patch(f"{daemon.url}{BASE}/nostart", json={"script": fixed})
        assert response.status_code == 200, response.text
        task = httpx.get(f"{daemon.url}{BASE}/nostart").json()
        assert (task["executing"], task["error"]) == (False, message)
        assert "httpOut" in task["script"]
        assert httpx.patch(f"{daemon.url}{BASE}/nostart",
                           json={"status": "disabled"}).status_code == 200
        task = httpx.get(f"{daemon.url}{BASE}/nostart").json()
        assert (task["status"], task["executing"], task["error"]) == ("disabled", False,
                                                                      message)
        assert httpx.patch(f"{daemon.url}{BASE}/nostart",
                           json={"status": "enabled"}).status_code == 200
        task = httpx.get(f"{daemon.url}{BASE}/nostart").json()
        assert (task["status"], task["executing"], task["error"]) == ("enabled", True, "")

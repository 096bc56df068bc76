"""In-process Python UDFs through the real daemon: examples/udf/moving_avg.py's handler
class configured with ``python = "moving_avg:MovingAverage"`` runs inside the daemon and
gives what the same class gives as a process UDF; handlers that raise or send an error
stop their task with the message; paths that do not lead to a class are logged and left
out while the daemon keeps running."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kapa_core.testing import DaemonProcess, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "udf"
API = "/kapacitor/v1"

#: Handler classes of the tests, imported by the daemon from the module ``inproc_handlers``.
HANDLERS = '''
from kapa_core.udf.agent import Handler, udf_pb2


def info(wants=udf_pb2.STREAM, provides=udf_pb2.STREAM):
    response = udf_pb2.Response()
    response.info.wants = wants
    response.info.provides = provides
    return response


def ok():
    response = udf_pb2.Response()
    response.init.success = True
    return response


class Raises(Handler):
    """Raises on every point."""

    def __init__(self, agent):
        self.agent = agent

    def info(self):
        return info()

    def init(self, init_req):
        return ok()

    def point(self, point):
        raise ValueError(f"cannot average {point.name}")


class Refuses(Raises):
    """Answers every point with an error response."""

    def point(self, point):
        response = udf_pb2.Response()
        response.error.error = f"refusing {point.name}"
        self.agent.write_response(response)


class DoubleBatch(Raises):
    """Batches in, batches out: every double field doubled."""

    def info(self):
        return info(udf_pb2.BATCH, udf_pb2.BATCH)

    def begin_batch(self, begin_req):
        response = udf_pb2.Response()
        response.begin.CopyFrom(begin_req)
        self.agent.write_response(response)

    def point(self, point):
        response = udf_pb2.Response()
        response.point.CopyFrom(point)
        for key, value in point.fieldsDouble.items():
            response.point.fieldsDouble[key] = value * 2
        self.agent.write_response(response)

    def end_batch(self, end_req):
        response = udf_pb2.Response()
        response.end.CopyFrom(end_req)
        self.agent.write_response(response, flush=True)


class Later(Raises):
    """Sends every point back from a thread of its own, a little later."""

    def point(self, point):
        import threading
        import time
        response = udf_pb2.Response()
        response.point.CopyFrom(point)

        def send():
            time.sleep(0.05)
            self.agent.write_response(response)
        threading.Thread(target=send).start()


class NoInfo(Raises):
    def info(self):
        return None


NOT_A_CLASS = 3
'''

BAD_PATHS = {
    "nomodule": ("no_such_module:Handler", "cannot import no_such_module: "
                 "ModuleNotFoundError: No module named 'no_such_module'"),
    "noclass": ("moving_avg:Missing", "moving_avg has no Missing"),
    "notaclass": ("inproc_handlers:NOT_A_CLASS", "NOT_A_CLASS is a int, not a class"),
    "nocolon": ("moving_avg", 'must be written \\"package.module:Class\\"'),
    "noinfo": ("inproc_handlers:NoInfo", "error processing request of type info: the "
               "handler's info method returned no response"),
}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    directory = tmp_path_factory.mktemp("handlers")
    (directory / "inproc_handlers.py").write_text(HANDLERS)
    functions: dict[str, dict[str, object]] = {
        "movingAvg": {"prog": sys.executable, "args": ["-u", str(EXAMPLES / "moving_avg.py")],
                      "timeout": "10s"},
        "movingAvgPy": {"python": "moving_avg:MovingAverage"},
        "raises": {"python": "inproc_handlers:Raises"},
        "refuses": {"python": "inproc_handlers:Refuses"},
        "doubler": {"python": "inproc_handlers:DoubleBatch"},
        "later": {"python": "inproc_handlers:Later"},
    }
    for name, (path, _) in BAD_PATHS.items():
        functions[name] = {"python": path}
    path = os.pathsep.join([str(EXAMPLES), str(directory), str(ROOT)])
    with DaemonProcess({"udf": {"functions": functions}},
                       env={"PYTHONPATH": path}) as process:
        process.wait_for_log(r'msg="UDF available" .*udf=refuses')
        yield process


def define(daemon: DaemonProcess, task_id: str, script: str) -> httpx.Response:
    return httpx.post(daemon.url + API + "/tasks", json={
        "id": task_id, "type": "stream", "status": "enabled",
        "script": 'dbrp "db"."rp"\n' + script}, timeout=30)


def udf_task(daemon: DaemonProcess, task_id: str, udf: str, options: str = "") -> httpx.Response:
    return define(daemon, task_id, f"stream\n    |from().measurement('{task_id}')"
                  f".groupBy('host')\n    @{udf}(){options}\n    |httpOut('out')\n")


def write(daemon: DaemonProcess, measurement: str, values: list[float]) -> None:
    lines = "\n".join(f"{measurement},host=h{i % 2} value={v} {i + 1}000000000"
                      for i, v in enumerate(values))
    response = httpx.post(daemon.url + API + "/write?db=db&rp=rp", content=lines)
    assert response.status_code == 204, response.text


def http_out(daemon: DaemonProcess, task_id: str) -> dict:
    return httpx.get(f"{daemon.url}{API}/tasks/{task_id}/out").json()


def task(daemon: DaemonProcess, task_id: str) -> dict:
    return httpx.get(f"{daemon.url}{API}/tasks/{task_id}").json()


def delete(daemon: DaemonProcess, *task_ids: str) -> None:
    for task_id in task_ids:
        httpx.delete(f"{daemon.url}{API}/tasks/{task_id}")


def test_the_function_is_available_through_the_python_bridge(daemon: DaemonProcess) -> None:
    line = daemon.wait_for_log(r'msg="UDF available" .*udf=movingAvgPy\b')
    assert "bridge=python" in line and "wants=stream" in line and "provides=stream" in line
    assert "options=as,field,size" in line


def test_in_process_moving_average_gives_what_the_process_udf_gives(
        daemon: DaemonProcess) -> None:
    values = [1.0, 10.0, 3.0, 20.0, 5.0, 30.0, 7.0, 40.0, 2.5, 11.0]
    outputs = {}
    for udf in ("movingAvg", "movingAvgPy"):
        task_id = f"same_{udf}"
        response = udf_task(daemon, task_id, udf, ".field('value').size(3).as('mean')")
        assert response.status_code == 200, response.text
        write(daemon, task_id, values)

        def done(task_id: str = task_id) -> bool:
            series = http_out(daemon, task_id).get("series", [])
            return len(series) == 2 and all(s["values"][0][0].endswith("10Z") or
                                            s["values"][0][0].endswith("09Z")
                                            for s in series)
        wait_until(done, timeout=15)
        out = http_out(daemon, task_id)
        for series in out["series"]:
            assert series.pop("name") == task_id
        outputs[udf] = out
        delete(daemon, task_id)
    assert outputs["movingAvgPy"] == outputs["movingAvg"]
    # the average of the last three values of each host
    assert sorted((s["tags"]["host"], s["values"][0][1]) for s in outputs["movingAvgPy"][
        "series"]) == [("h0", pytest.approx((5 + 7 + 2.5) / 3)), ("h1", 27.0)]
    assert outputs["movingAvgPy"]["series"][0]["columns"] == ["time", "mean"]


def test_in_process_moving_average_answers_as_kapacitor_with_the_process_udf(
        daemon: DaemonProcess) -> None:
    """The case ``avg_movingAvg`` of test_udf_examples.py, whose answer was recorded
    from Kapacitor 1.5.7 running moving_avg.py as a process UDF."""
    recorded = json.loads((Path(__file__).with_name("udf_kapacitor_expected.json"))
                          .read_text())["cases"]["avg_movingAvg"]["output"]
    m = "avg_inprocess"
    points = "\n".join(
        [f"{m},host=a value={v} {t}" for t, v in enumerate([1, 2, 3, 4, 5, 6, 7, 8, 9, 0])]
        + [f"{m},host=b value={v}i {t}" for t, v in
           enumerate([2, 4, 6, 8, 10, 2, 4, 6, 8, 1])]
        + [f"{m},host=a value=0 10", f"{m},host=b value=0i 10"])
    response = define(daemon, m, f"stream\n    |from().measurement('{m}').groupBy('host')\n"
                      "    @movingAvgPy().field('value').size(3).as('mean')\n"
                      "    |window().period(10s).every(10s)\n    |httpOut('out')\n")
    assert response.status_code == 200, response.text
    response = httpx.post(daemon.url + API + "/write?db=db&rp=rp&precision=s",
                          content=points)
    assert response.status_code == 204, response.text
    wait_until(lambda: len(http_out(daemon, m).get("series", [])) == 2, timeout=15)
    out = http_out(daemon, m)
    for series in out["series"]:
        assert series.pop("name") == m
    for series in recorded["series"]:
        series.pop("name")
    assert out == recorded
    delete(daemon, m)


def test_options_are_checked_against_the_handlers_info(daemon: DaemonProcess) -> None:
    unknown = udf_task(daemon, "opt_unknown", "movingAvgPy", ".field('value').window(3)")
    assert unknown.status_code == 400
    assert "line 4" in unknown.text and "window" in unknown.text
    wrong = udf_task(daemon, "opt_wrong", "movingAvgPy", ".size('ten')")
    assert wrong.status_code == 400
    assert "unexpected arg to size, got STRING expected INT" in wrong.text


def test_options_the_handler_refuses_stop_the_task_with_kapacitors_words(
        daemon: DaemonProcess) -> None:
    response = udf_task(daemon, "refused_py", "movingAvgPy", ".field('value')")
    assert response.status_code == 200, response.text
    wait_until(lambda: task(daemon, "refused_py")["error"] != "", timeout=10)
    view = task(daemon, "refused_py")
    assert view["error"] == "movingAvgPy2: failed to initialize processes must supply " \
                            "window size"
    assert view["executing"] is False
    delete(daemon, "refused_py")


@pytest.mark.parametrize(("udf", "expected"), [
    ("raises", "raises2: error processing request of type point: cannot average raises"),
    ("refuses", "refuses2: refusing refuses"),
])
def test_a_failing_handler_stops_its_task_only(daemon: DaemonProcess, udf: str,
                                               expected: str) -> None:
    healthy = f"healthy_{udf}"
    assert udf_task(daemon, healthy, "movingAvgPy", ".field('value').size(2)") \
        .status_code == 200
    response = udf_task(daemon, udf, udf)
    assert response.status_code == 200, response.text
    write(daemon, udf, [1.0])
    wait_until(lambda: task(daemon, udf)["error"] != "", timeout=15)
    view = task(daemon, udf)
    assert view["error"] == expected
    assert view["executing"] is False
    if udf == "raises":  # the exception is logged with where it was raised
        line = daemon.wait_for_log(r'msg="UDF handler failed"')
        assert "task=raises" in line and "inproc_handlers.py:" in line
    write(daemon, healthy, [2.0, 4.0])
    wait_until(lambda: bool(http_out(daemon, healthy).get("series")), timeout=15)
    delete(daemon, udf, healthy)


def test_batches_go_through_an_in_process_handler(daemon: DaemonProcess) -> None:
    response = define(daemon, "batches", "stream\n    |from().measurement('batches')\n"
                      "    |window().period(2s).every(2s)\n    @doubler()\n"
                      "    |httpOut('out')\n")
    assert response.status_code == 200, response.text
    write(daemon, "batches", [1.0, 2.0, 3.0, 4.0, 5.0])  # at 1s .. 5s
    wait_until(lambda: bool(http_out(daemon, "batches").get("series")), timeout=15)
    series = http_out(daemon, "batches")["series"]
    assert len(series) == 1 and series[0]["columns"] == ["time", "host", "value"]
    # httpOut holds the last batch the point at 5s closed (3.0 and 4.0), doubled
    assert [(row[0], row[2]) for row in series[0]["values"]] == [
        ("1970-01-01T00:00:03Z", 6.0), ("1970-01-01T00:00:04Z", 8.0)]
    assert task(daemon, "batches")["error"] == ""
    delete(daemon, "batches")


def test_a_handler_may_write_from_a_thread_of_its_own(daemon: DaemonProcess) -> None:
    assert udf_task(daemon, "threads", "later").status_code == 200
    write(daemon, "threads", [1.0, 2.0])
    wait_until(lambda: len(http_out(daemon, "threads").get("series", [])) == 2, timeout=15)
    series = {s["tags"]["host"]: s["values"] for s in http_out(daemon, "threads")["series"]}
    assert series == {"h0": [["1970-01-01T00:00:01Z", 1.0]],
                      "h1": [["1970-01-01T00:00:02Z", 2.0]]}
    assert task(daemon, "threads")["error"] == ""
    delete(daemon, "threads")


@pytest.mark.parametrize("name", sorted(BAD_PATHS))
def test_a_bad_python_path_is_logged_and_left_out(daemon: DaemonProcess, name: str) -> None:
    line = next(line for line in daemon.log().splitlines()
                if 'msg="UDF left out"' in line and f"udf={name} " in line)
    assert "bridge=python" in line
    assert BAD_PATHS[name][1] in line, line
    assert udf_task(daemon, f"uses_{name}", name).status_code == 400


def test_python_with_prog_is_a_config_error() -> None:
    daemon = DaemonProcess({"udf": {"functions": {"both": {
        "python": "moving_avg:MovingAverage", "prog": sys.executable}}}})
    with pytest.raises(RuntimeError, match="cannot set python with prog or socket"):
        daemon.start()


def test_the_in_process_state_survives_a_disable_and_a_restart(tmp_path: Path) -> None:
    """Snapshots of the handler (its ``snapshot()``) are saved with the task and given
    back to a new handler (``restore()``) when the task starts again."""
    config = {"task": {"snapshot-interval": "1s"},
              "udf": {"functions": {"movingAvg": {"python": "moving_avg:MovingAverage"}}}}
    env = {"PYTHONPATH": os.pathsep.join([str(EXAMPLES), str(ROOT)])}
    data = str(tmp_path / "data")

    def average_after(daemon: DaemonProcess, value: float, second: int) -> float:
        response = httpx.post(daemon.url + API + "/write?db=db&rp=rp",
                              content=f"snap,host=h0 value={value} {second}000000000")
        assert response.status_code == 204, response.text

        def answered() -> bool:
            series = http_out(daemon, "snap").get("series", [])
            return bool(series) and series[0]["values"][0][0].endswith(f"{second:02d}Z")
        wait_until(answered, timeout=15)
        return float(http_out(daemon, "snap")["series"][0]["values"][0][1])

    def set_status(daemon: DaemonProcess, status: str) -> None:
        response = httpx.patch(daemon.url + API + "/tasks/snap", json={"status": status})
        assert response.status_code == 200, response.text

    with DaemonProcess(config, data_dir=data, env=env) as daemon:
        assert udf_task(daemon, "snap", "movingAvg", ".field('value').size(10)") \
            .status_code == 200
        assert average_after(daemon, 10, 11) == 10
        assert average_after(daemon, 20, 12) == 15
        set_status(daemon, "disabled")
        set_status(daemon, "enabled")
        assert average_after(daemon, 30, 13) == 20
        assert daemon.stop() == 0
    with DaemonProcess(config, data_dir=data, env=env) as daemon:
        assert average_after(daemon, 40, 14) == 25

"""The script check and the dry run through a real daemon: errors at their positions,
node outputs and alert events, and no side effect (no task, no alert delivered)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from kapa_core.testing import DaemonProcess
from kapa_core.testing.http import RecordingHTTPServer

pytestmark = pytest.mark.integration
API = "/kapacitor/v1"

#: Mean usage per host over 10s windows, critical above 80, posted to a local server.
ALERT_SCRIPT = """dbrp "telegraf"."autogen"

var period = 10s

stream
    |from()
        .measurement('cpu')
        .groupBy('host')
    |window()
        .period(period)
        .every(period)
    |mean('usage')
        .as('usage')
    |alert()
        .crit(lambda: "usage" > 80)
        .message('{{ .TaskName }} {{ index .Tags "host" }} is {{ .Level }}')
        .post('{url}')
"""


@pytest.fixture(scope="module")
def receiver():
    with RecordingHTTPServer() as server:
        yield server


@pytest.fixture(scope="module")
def daemon():
    with DaemonProcess({"http": {"log-enabled": False}}) as d:
        yield d


def post(daemon: DaemonProcess, what: str, body: Any) -> httpx.Response:
    if isinstance(body, dict | list):
        return httpx.post(f"{daemon.url}{API}/scripts/{what}", json=body, timeout=30)
    return httpx.post(f"{daemon.url}{API}/scripts/{what}", content=body, timeout=30)


def cpu_points(values: dict[str, list[float]]) -> str:
    """One point a second from t=0 for each host."""
    lines = [f"cpu,host={host} usage={v} {i}000000000"
             for host, series in values.items() for i, v in enumerate(series)]
    return "\n".join(lines)


def node(answer: dict[str, Any], node_id: str) -> dict[str, Any]:
    (found,) = [n for n in answer["nodes"] if n["id"] == node_id]
    return found


def test_check_reports_an_error_at_its_line_and_column(daemon) -> None:
    script = ("stream\n    |from()\n        .measurement('cpu')\n    |window()\n"
              "        .perod(10s)\n")
    answer = post(daemon, "check", {"script": script}).json()
    assert answer["ok"] is False
    (error,) = answer["errors"]
    assert (error["line"], error["column"]) == (5, 10)
    assert "perod" in error["message"] and "did you mean period" in error["message"]
    assert (answer["dot"], answer["nodes"], answer["edges"]) == ("", [], [])


def test_check_of_a_good_script_gives_its_graph_and_vars(daemon) -> None:
    script = ALERT_SCRIPT.replace("{url}", "http://127.0.0.1:9/x")
    answer = post(daemon, "check", {"script": script, "id": "cpu_alert"}).json()
    assert answer["ok"] is True, answer["errors"]
    assert answer["dot"].startswith("digraph cpu_alert {")
    assert [(n["id"], n["kind"], n["line"]) for n in answer["nodes"]] == [
        ("stream0", "stream", 0), ("from1", "from", 6), ("window2", "window", 9),
        ("mean3", "influxql", 12), ("alert4", "alert", 14)]
    assert answer["edges"][0] == {"from": "stream0", "to": "from1"}
    assert len(answer["edges"]) == 4
    assert answer["vars"] == {"period": {"type": "duration", "value": 10_000_000_000,
                                         "description": ""}}


def test_check_of_a_template_leaves_vars_unset(daemon) -> None:
    script = "var crit float\nstream|from().measurement('m')|alert().crit(lambda: \"v\" > crit)\n"
    as_task = post(daemon, "check", {"script": script}).json()
    assert as_task["ok"] is False
    assert as_task["errors"][0]["line"] == 1
    assert "missing value for var" in as_task["errors"][0]["message"]
    as_template = post(daemon, "check", {"script": script, "template": True}).json()
    assert as_template["ok"] is True, as_template["errors"]
    assert as_template["vars"]["crit"]["type"] == "float"
    given = post(daemon, "check", {"script": script,
                                   "vars": {"crit": {"type": "float", "value": 9}}}).json()
    assert given["ok"] is True
    # a dry run needs every value, template or not
    tried = post(daemon, "try", {"script": script, "template": True, "points": "m v=1"}).json()
    assert "missing value for var" in tried["errors"][0]["message"]
    tried = post(daemon, "try", {"script": script, "points": "m v=10 1", "vars": {
        "crit": {"type": "float", "value": 9}}}).json()
    assert [e["level"] for e in node(tried, "alert2")["alerts"]] == ["CRITICAL"]


def test_try_runs_window_and_alert_without_sending_or_storing(daemon, receiver) -> None:
    script = ALERT_SCRIPT.replace("{url}", f"{receiver.url}/alert")
    points = cpu_points({"a": [10.0] * 10 + [90.0] * 10 + [10.0] * 11,
                         "b": [5.0] * 31})
    answer = post(daemon, "try", {"script": script, "points": points, "id": "cpu"}).json()
    assert answer["ok"] is True, answer["errors"]
    window = node(answer, "window2")
    assert window["collected"] == 62
    # windows [0,10s) [10s,20s) [20s,30s) of each host close when t=30s arrives
    assert window["emitted"] == 6
    mean = node(answer, "mean3")
    means = {(row["tags"]["host"], row["values"][0][0]): row["values"][0][1]
             for row in mean["output"]}
    assert means == {("a", "1970-01-01T00:00:10Z"): 10.0, ("a", "1970-01-01T00:00:20Z"): 90.0,
                     ("a", "1970-01-01T00:00:30Z"): 10.0, ("b", "1970-01-01T00:00:10Z"): 5.0,
                     ("b", "1970-01-01T00:00:20Z"): 5.0, ("b", "1970-01-01T00:00:30Z"): 5.0}
    alert = node(answer, "alert4")
    assert [(e["level"], e["previousLevel"], e["message"]) for e in alert["alerts"]] == [
        ("CRITICAL", "OK", "cpu a is CRITICAL"), ("OK", "CRITICAL", "cpu a is OK")]
    assert alert["alerts"][0]["id"] == "cpu:host=a"  # the default id: task:group
    assert alert["alerts"][0]["data"]["series"][0]["values"] == [
        ["1970-01-01T00:00:20Z", 90.0]]
    assert 'alerts_triggered="2"' in answer["dot"]
    time.sleep(0.5)  # a delivery would have been made by now
    assert receiver.requests == []
    tasks = httpx.get(f"{daemon.url}{API}/tasks").json()["tasks"]
    assert tasks == []
    topics = httpx.get(f"{daemon.url}{API}/alerts/topics").json()["topics"]
    assert not any("cpu" in t["id"] for t in topics)


def test_the_same_script_as_a_task_does_post(daemon, receiver) -> None:
    """The control of the test above: the receiver does get the alert from a task."""
    script = ALERT_SCRIPT.replace("{url}", f"{receiver.url}/alert")
    points = cpu_points({"a": [10.0] * 10 + [90.0] * 10 + [10.0] * 11})
    body = {"id": "control", "type": "stream", "script": script, "status": "enabled"}
    response = httpx.post(f"{daemon.url}{API}/tasks", json=body)
    assert response.status_code == 200, response.text
    try:
        before = len(receiver.requests)
        write = httpx.post(f"{daemon.url}/write?db=telegraf&rp=autogen", content=points)
        assert write.status_code == 204, write.text
        arrived = receiver.wait_for(before + 2)
        assert [r.json()["level"] for r in arrived[before:]] == ["CRITICAL", "OK"]
    finally:
        httpx.delete(f"{daemon.url}{API}/tasks/control")
    receiver.requests.clear()


def test_try_does_not_write_or_post(daemon, receiver) -> None:
    script = f"""stream
    |from().measurement('m')
    |httpPost('{receiver.url}/post')
    |influxDBOut().database('out').create()
"""
    answer = post(daemon, "try", {"script": script, "points": "m v=1 1\nm v=2 2"}).json()
    # no [[influxdb]] is enabled: influxDBOut cannot start, as for a task
    assert answer["ok"] is False
    assert "InfluxDB" in answer["errors"][0]["message"]
    script = script.replace("|influxDBOut().database('out').create()", "|log()")
    answer = post(daemon, "try", {"script": script, "points": "m v=1 1\nm v=2 2"}).json()
    assert answer["ok"] is True, answer["errors"]
    http_post = node(answer, "http_post2")
    assert (http_post["emitted"], http_post["withheld"]) == (2, 2)
    time.sleep(0.5)
    assert receiver.requests == []


def test_try_of_a_batch_script_answers_its_query_with_the_points(daemon) -> None:
    script = ("batch\n    |query('SELECT max(v) AS v FROM \"db\".\"autogen\".m')\n"
              "        .period(1m).every(1m).groupBy('h')\n    |httpOut('out')\n")
    answer = post(daemon, "try", {"script": script, "points": "m,h=x v=1 1\nm,h=y v=2 2",
                                  "dbrps": [{"db": "db", "rp": "autogen"}]}).json()
    assert answer["ok"] is True, answer["errors"]
    out = node(answer, "http_out2")
    assert [(b["tags"]["h"], b["values"][0][1]) for b in out["output"]] == [("x", 1), ("y", 2)]


def test_try_reports_bad_lines_of_points_at_their_line(daemon) -> None:
    answer = post(daemon, "try", {"script": "stream|from()|log()",
                                  "points": "m v=1 1\nm v= 2\nm v=3 3"}).json()
    assert answer["ok"] is False
    (error,) = answer["errors"]
    assert error["line"] == 2 and "unable to parse" in error["message"]
    assert node(answer, "from1")["collected"] == 0


def test_try_truncates_output_beyond_the_row_limit(daemon) -> None:
    points = "\n".join(f"m v={i} {i}" for i in range(1500))
    answer = post(daemon, "try", {"script": "stream|from()|log()", "points": points}).json()
    source = node(answer, "from1")
    assert source["emitted"] == 1500
    assert source["truncated"] is True
    assert len(source["output"]) == 1000


def test_try_of_points_the_task_does_not_read(daemon) -> None:
    answer = post(daemon, "try", {"script": "stream|from()|log()", "points": "m v=1 1",
                                  "dbrps": [{"db": "a", "rp": "autogen"}],
                                  "db": "b", "rp": "autogen"}).json()
    assert answer["ok"] is False
    assert "which the task does not read" in answer["errors"][0]["message"]


def test_node_errors_are_reported_at_the_node(daemon) -> None:
    script = "stream\n  |from()\n  |eval(lambda: \"v\" / \"w\")\n    .as('r')\n"
    answer = post(daemon, "try", {"script": script, "points": "m v=1 1\nm v=1,w=2 2"}).json()
    eval_node = node(answer, "eval2")
    assert (eval_node["collected"], eval_node["emitted"], eval_node["errors"]) == (2, 1, 1)
    assert answer["ok"] is False
    (error,) = answer["errors"]
    assert (error["line"], error["column"]) == (3, 4)
    assert error["message"].startswith("eval2: ")


@pytest.mark.parametrize(("what", "body", "words"), [
    ("check", b"{not json", "invalid JSON"),
    ("check", b"[" * 100_000, "invalid JSON"),
    ("try", b'{"a":' * 100_000, "invalid JSON"),
    ("try", b"[]", "invalid JSON"),
    ("check", {"type": "stream"}, "must provide TICKscript"),
    ("check", {"script": 5}, "must be a string"),
    ("check", {"script": "stream", "type": "neither"}, "invalid type"),
    ("check", {"script": "stream", "dbrps": "db.rp"}, "invalid dbrps"),
    ("check", {"script": "stream", "vars": {"x": {"type": "nope"}}}, "invalid var"),
    ("check", {"script": "stream", "template": "yes"}, "invalid template"),
    ("check", {"script": "x" * (256 * 1024 + 1)}, "script too large"),
    ("try", {"script": "stream|from()", "points": 3}, "invalid points"),
    ("try", {"script": "stream|from()", "points": "m v=1", "precision": "d"},
     "invalid precision"),
    ("try", {"script": "stream|from()",
             "points": "\n".join(f"m v=1 {i}" for i in range(10_001))}, "too many points"),
])
def test_bad_requests_are_400(daemon, what, body, words) -> None:
    response = post(daemon, what, body)
    assert response.status_code == 400, response.text
    assert words in response.json()["error"]
    assert httpx.get(f"{daemon.url}{API}/ping").status_code == 204

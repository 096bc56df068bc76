"""Batch replays (``/kapacitor/v1/replays``) against a real influxd: the queries a replay
runs over a past range, what its pipeline sends, its answers and errors as Kapacitor
words them, and that the live task is left alone."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from kapa_core.testing import DaemonProcess, wait_until
from kapa_core.testing import RecordingHTTPServer as HTTPRecorder
from tests.integration.influxd import InfluxD

pytestmark = pytest.mark.integration
S = 1_000_000_000
START = "1971-01-01T00:00:00Z"
# host a: 1..6 at 0s, 5s, ..., 25s; host b: 10 at 3s and 20 at 23s
POINTS = [f"cpu,host=a v={i + 1} {31536000 + 5 * i}" for i in range(6)] + [
    "cpu,host=b v=10 31536003", "cpu,host=b v=20 31536023"]
QUERY = """batch
    |query('SELECT v FROM "db"."rp"."cpu"')
        .period(10s)
        .every(10s)
        .groupBy('host')
"""


@pytest.fixture(scope="module")
def influx():
    with InfluxD() as server:
        server.query('CREATE DATABASE "db" WITH NAME "rp"')
        response = httpx.post(server.url + "/write",
                              params={"db": "db", "rp": "rp", "precision": "s"},
                              content="\n".join(POINTS).encode(), timeout=30)
        assert response.status_code == 204, response.text
        yield server


@pytest.fixture(scope="module")
def daemon(influx):
    with DaemonProcess({"influxdb": [{"enabled": True, "urls": [influx.url],
                                      "disable-subscriptions": True}],
                        "http": {"log-enabled": False}}) as d:
        yield d


@pytest.fixture
def recorder():
    with HTTPRecorder() as rec:
        yield rec


def api(daemon: DaemonProcess) -> str:
    return daemon.url + "/kapacitor/v1"


_ids = iter(range(1_000_000))


def define(daemon: DaemonProcess, script: str, *, status: str = "disabled",
           kind: str = "batch", rp: str = "rp") -> str:
    task_id = f"replayed{next(_ids)}"
    response = httpx.post(api(daemon) + "/tasks", json={
        "id": task_id, "type": kind, "dbrps": [{"db": "db", "rp": rp}],
        "script": script, "status": status})
    assert response.status_code == 200, response.text
    return task_id


def replay(daemon: DaemonProcess, **body: Any) -> dict[str, Any]:
    """Start a replay and return it once it is no longer running."""
    body.setdefault("start", START)
    body.setdefault("stop", "1971-01-01T00:00:30Z")
    body.setdefault("recording-time", True)
    response = httpx.post(api(daemon) + "/replays/batch", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["status"] == "running" and created["progress"] == 0
    link = daemon.url + created["link"]["href"]
    return wait_until(lambda: httpx.get(link).json(), what="replay end",
                      until=lambda r: r["status"] != "running")


def bodies(recorder: HTTPRecorder) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in recorder.requests]


def test_replay_queries_each_window_and_posts_the_batches(daemon, recorder) -> None:
    task_id = define(daemon, QUERY + f"    |httpPost('{recorder.url}')\n")
    done = replay(daemon, task=task_id, id="windows")
    assert done["status"] == "finished" and done["error"] == "" and done["progress"] == 1
    assert (done["id"], done["task"], done["recording"], done["clock"],
            done["recording-time"]) == ("windows", task_id, "", "fast", True)
    assert done["link"] == {"rel": "self", "href": "/kapacitor/v1/replays/windows"}
    stats = done["stats"]["node-stats"]
    assert stats["query1"]["emitted"] == 5 and stats["http_post2"]["collected"] == 5
    assert stats["batch0"]["collected"] == 5 and "batches_queried" not in stats["query1"]
    assert list(stats) == sorted(stats)  # a Go map
    wait_until(lambda: len(recorder.requests) == 5, what="five posts")
    got = [(b["series"][0]["tags"]["host"], [v for _, v in b["series"][0]["values"]])
           for b in bodies(recorder)]
    # [0s, 10s), [10s, 20s), [20s, 30s): host a then host b in each window.
    assert got == [("a", [1, 2]), ("b", [10]), ("a", [3, 4]), ("a", [5, 6]), ("b", [20])]


def test_replay_runs_aggregates_with_the_window_end_as_time(daemon, recorder) -> None:
    task_id = define(daemon, QUERY + f"""
    |sum('v')
    |httpPost('{recorder.url}')
""")
    assert replay(daemon, task=task_id)["status"] == "finished"
    wait_until(lambda: len(recorder.requests) == 5, what="five sums")
    got = {(b["series"][0]["tags"]["host"], b["series"][0]["values"][0][0]):
           b["series"][0]["values"][0][1] for b in bodies(recorder)}
    assert got == {("a", "1971-01-01T00:00:10Z"): 3, ("b", "1971-01-01T00:00:10Z"): 10,
                   ("a", "1971-01-01T00:00:20Z"): 7, ("a", "1971-01-01T00:00:30Z"): 11,
                   ("b", "1971-01-01T00:00:30Z"): 20}


def test_without_recording_time_points_move_to_the_replay_start(daemon, recorder) -> None:
    task_id = define(daemon, QUERY + f"    |httpPost('{recorder.url}')\n")
    before = time.time_ns()
    assert replay(daemon, task=task_id, **{"recording-time": False})["status"] == "finished"
    wait_until(lambda: len(recorder.requests) == 5, what="five posts")
    first = bodies(recorder)[0]["series"][0]["values"][0][0]
    assert not first.startswith("1971"), first  # moved to about now
    assert first[:4] == time.strftime("%Y", time.gmtime(before / S))


def test_the_live_task_and_its_alert_topic_are_untouched(daemon, recorder) -> None:
    script = QUERY + f"""
    |alert()
        .crit(lambda: TRUE)
        .post('{recorder.url}')
    |httpOut('live')
"""
    task_id = define(daemon, script, status="enabled")
    topics = api(daemon) + "/alerts/topics"
    topic = f"main:{task_id}:alert2"
    handlers = httpx.get(f"{topics}/{topic}/handlers").json()
    done = replay(daemon, task=task_id)
    assert done["status"] == "finished"
    wait_until(lambda: len(recorder.requests) == 5, what="five alert posts")
    # The live task still runs with its handler; the replay's topic is gone.
    task = httpx.get(f"{api(daemon)}/tasks/{task_id}").json()
    assert task["executing"] is True
    assert httpx.get(f"{topics}/{topic}/handlers").json() == handlers
    listed = [t["id"] for t in httpx.get(topics).json()["topics"]]
    assert not any(t.startswith(f"{done['id']}:") for t in listed), listed
    # The replay's batches never reached the live task's own nodes.
    live = httpx.get(f"{api(daemon)}/tasks/{task_id}/live").json()
    assert "1971" not in json.dumps(live)
    stats = task["stats"]["node-stats"]
    assert stats["alert2"]["collected"] == stats["query1"]["collected"]
    assert not any("1971" in json.dumps(e) for e in
                   httpx.get(f"{topics}/{topic}/events").json()["events"])


def test_a_failing_query_fails_the_replay(daemon) -> None:
    task_id = define(daemon, """batch
    |query('SELECT nosuch(v) FROM "db"."rp"."cpu"')
        .period(10s)
        .every(10s)
    |httpPost('http://127.0.0.1:9/')
""")
    done = replay(daemon, task=task_id)
    assert done["status"] == "failed"
    assert done["error"] == "running replay: undefined function nosuch()"
    assert done["progress"] == 1 and done["stats"] == {}


def test_a_query_on_a_database_the_task_does_not_list_fails_the_replay(daemon) -> None:
    task_id = define(daemon, QUERY.replace('"db"."rp"', '"db"."autogen"') + "|httpOut('o')")
    done = replay(daemon, task=task_id)
    assert (done["status"], done["error"]) == (
        "failed", 'running replay: batch query is not allowed to request data from '
        '"db"."autogen"')


def test_a_task_that_cannot_start_fails_the_replay(daemon) -> None:
    task_id = define(daemon, """batch
    |query('SELECT v FROM "db"."rp"."cpu"')
        .period(10s)
    |httpOut('o')
""")
    done = replay(daemon, task=task_id)
    assert (done["status"], done["error"]) == (
        "failed", "task start: must define one of 'every' or 'cron'")


def error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]


def test_refusals_are_worded_as_kapacitor(daemon) -> None:
    url = api(daemon) + "/replays/batch"
    stream = define(daemon, "stream|from().measurement('cpu')|httpOut('o')", kind="stream")
    batch = define(daemon, QUERY + "    |httpOut('o')\n")
    assert error(httpx.post(url, json={"task": "nope"})) == (404, "task load: no task exists")
    assert error(httpx.post(url, json={"task": stream})) == (
        400, f"cannot replay batch against stream task: {stream}")
    assert error(httpx.post(url, json={"task": batch, "clock": "slow"})) == (
        400, "unknown Clock slow")
    assert error(httpx.post(url, json={"task": batch, "id": "a b"})) == (
        400, 'replay ID must match ^[-\\._\\p{L}0-9]+$ "a b"')
    assert error(httpx.post(url, json={"task": 5})) == (
        400, "json: cannot unmarshal number into Go struct field ReplayBatchOptions.task "
        "of type string")
    assert error(httpx.post(url, json=[])) == (
        400, "json: cannot unmarshal array into Go value of type client.ReplayBatchOptions")
    assert error(httpx.post(url, content=b"")) == (400, "EOF")
    assert error(httpx.post(url, content=b"{")) == (400, "unexpected EOF")
    assert error(httpx.post(url, json={"task": batch, "start": "x"})) == (
        400, 'parsing time "\\"x\\"" as "\\"2006-01-02T15:04:05Z07:00\\"": cannot parse '
        '"x\\"" as "2006"')
    assert error(httpx.post(url, json={"task": batch, "stop": "1971-13-01T00:00:00Z"})) == (
        400, 'parsing time "\\"1971-13-01T00:00:00Z\\"": month out of range')
    replay(daemon, task=batch, id="twice")
    assert error(httpx.post(url, json={"task": batch, "id": "twice"})) == (
        500, "replay already exists")


def test_get_list_and_delete(daemon) -> None:
    task_id = define(daemon, QUERY + "    |httpOut('o')\n")
    for name in ("listed-1", "listed-2"):
        replay(daemon, task=task_id, id=name)
    replays = api(daemon) + "/replays"
    response = httpx.get(f"{replays}/listed-1")
    assert response.status_code == 200
    listed = httpx.get(replays, params={"pattern": "listed-*"}).json()["replays"]
    assert [r["id"] for r in listed] == ["listed-2", "listed-1"]  # newest first
    assert list(listed[0]) == sorted(listed[0])  # a Go map: keys in order
    assert set(listed[0]) == {"link", "id", "recording", "task", "recording-time", "clock",
                              "date", "error", "status", "progress"}
    only = httpx.get(replays, params={"pattern": "listed-*", "fields": "task"}).json()
    assert only["replays"][0] == {"id": "listed-2", "link": {
        "rel": "self", "href": "/kapacitor/v1/replays/listed-2"}, "task": task_id}
    assert error(httpx.get(replays, params={"fields": "bogus"})) == (
        400, 'unsupported field "bogus"')
    # offset and limit parsed as Go's strconv.ParseInt (checked against Kapacitor 1.5.7)
    assert error(httpx.get(replays, params={"limit": "1_0"})) == (
        400, 'invalid limit parameter "1_0" must be an integer: strconv.ParseInt: '
             'parsing "1_0": invalid syntax')
    assert error(httpx.get(replays, params={"offset": "99999999999999999999"})) == (
        400, 'invalid offset parameter "99999999999999999999" must be an integer: '
             'strconv.ParseInt: parsing "99999999999999999999": value out of range')
    assert error(httpx.get(f"{replays}/nope")) == (
        404, "could not find replay: no replay exists")
    assert error(httpx.get(f"{replays}/")) == (400, "must specify replay id on path")
    assert httpx.delete(f"{replays}/listed-1").status_code == 204
    assert httpx.delete(f"{replays}/listed-1").status_code == 204  # gone already: fine
    assert httpx.get(f"{replays}/listed-1").status_code == 404


def test_a_running_replay_answers_202_and_deleting_it_stops_it(daemon, recorder) -> None:
    task_id = define(daemon, QUERY + f"    |httpPost('{recorder.url}')\n")
    # The real clock replays the 30 s of data at their own pace.
    response = httpx.post(api(daemon) + "/replays/batch", json={
        "task": task_id, "id": "slow", "start": START, "stop": "1971-01-01T00:00:30Z",
        "recording-time": True, "clock": "real"})
    assert response.status_code == 201 and response.json()["clock"] == "real"
    running = httpx.get(api(daemon) + "/replays/slow")
    assert running.status_code == 202 and running.json()["status"] == "running"
    assert running.json()["stats"] == {}
    assert httpx.delete(api(daemon) + "/replays/slow").status_code == 204
    time.sleep(1)
    posted = len(recorder.requests)
    time.sleep(1.5)
    assert len(recorder.requests) == posted < 5


def test_replays_are_kept_and_a_running_one_fails_at_the_next_start(influx, tmp_path) -> None:
    config = {"influxdb": [{"enabled": True, "urls": [influx.url],
                            "disable-subscriptions": True}], "http": {"log-enabled": False}}
    data_dir = str(tmp_path / "data")
    with DaemonProcess(config, data_dir=data_dir) as first:
        task_id = define(first, QUERY + "    |httpOut('o')\n")
        replay(first, task=task_id, id="done")
        response = httpx.post(api(first) + "/replays/batch", json={
            "task": task_id, "id": "cut", "start": START, "stop": "1971-01-01T00:10:00Z",
            "recording-time": True, "clock": "real"})
        assert response.status_code == 201
    with DaemonProcess(config, data_dir=data_dir) as second:
        done = httpx.get(api(second) + "/replays/done").json()
        assert done["status"] == "finished" and done["stats"]["node-stats"]
        cut = httpx.get(api(second) + "/replays/cut")
        assert cut.status_code == 200
        assert (cut.json()["status"], cut.json()["error"]) == (
            "failed", "unexpected Kapacitor shutdown")


def test_loopback_writes_of_a_replay_stay_in_the_replay(daemon) -> None:
    listener = define(daemon, "stream|from().measurement('looped')|httpOut('o')",
                      status="enabled", kind="stream", rp="other")
    looping = define(daemon, QUERY + """
    |kapacitorLoopback()
        .database('db')
        .retentionPolicy('other')
        .measurement('looped')
""")
    done = replay(daemon, task=looping)
    assert done["status"] == "finished"
    assert done["stats"]["node-stats"]["kapacitor_loopback2"]["collected"] == 5
    time.sleep(0.5)
    out = httpx.get(f"{api(daemon)}/tasks/{listener}/o").json()
    assert out == {"series": None}


@pytest.mark.parametrize(("body", "status", "message"), [
    (b'{"task": }', 400, "invalid character '}' looking for beginning of value"),
    (b'{task: 1}', 400, "invalid character 't' looking for beginning of object key string"),
    (b'{"task" 1}', 400, "invalid character '1' after object key"),
    (b'[1 2]', 400, "invalid character '2' after array element"),
    (b'nul', 400, "unexpected EOF"),
    (b'{"task":"\\q"}', 400, "invalid character 'q' in string escape code"),
    (b'{"task":"zz"} trailing', 404, "task load: no task exists"),
    (b'null', 404, "task load: no task exists"),
    (b'{"Task": "zz"}', 404, "task load: no task exists"),
    (b'{"start": "1971-01-01"}', 400, 'parsing time "\\"1971-01-01\\"" as '
     '"\\"2006-01-02T15:04:05Z07:00\\"": cannot parse "\\"" as "T"'),
    (b'{"start": "1971-02-30T00:00:00Z"}', 400,
     'parsing time "\\"1971-02-30T00:00:00Z\\"": day out of range'),
    (b'{"recording-time": "yes"}', 400, "json: cannot unmarshal string into Go struct "
     "field ReplayBatchOptions.recording-time of type bool"),
    (b'{"task": 5, "start": "x"}', 400, 'parsing time "\\"x\\"" as '
     '"\\"2006-01-02T15:04:05Z07:00\\"": cannot parse "x\\"" as "2006"'),
    (b'{"task": "t", "id": "x\\ny"}', 400, 'replay ID must match ^[-\\._\\p{L}0-9]+$ '
     '"x\\ny"'),
])
def test_bodies_are_decoded_as_go_decodes_them(daemon, body: bytes, status: int,
                                               message: str) -> None:
    response = httpx.post(api(daemon) + "/replays/batch", content=body)
    assert error(response) == (status, message)


def test_a_live_task_cannot_query_a_database_it_does_not_list(daemon) -> None:
    response = httpx.post(api(daemon) + "/tasks", json={
        "id": "elsewhere", "type": "batch", "dbrps": [{"db": "db", "rp": "rp"}],
        "script": QUERY.replace('"db"."rp"', '"other"."rp"') + "|httpOut('o')",
        "status": "enabled"})
    assert response.status_code >= 400
    assert 'batch query is not allowed to request data from "other"."rp"' in \
        response.json()["error"]


def test_a_replay_whose_pipeline_cannot_be_built_leaves_no_alert_topic(daemon) -> None:
    task_id = define(daemon, QUERY + """
    |alert()
        .crit(lambda: TRUE)
        .log('/dev/null')
    |httpPost()
        .endpoint('not-configured')
""")
    done = replay(daemon, task=task_id, id="unbuilt")
    assert done["status"] == "failed" and done["error"].startswith("task start: ")
    topics = httpx.get(api(daemon) + "/alerts/topics").json()["topics"]
    assert not [t["id"] for t in topics if t["id"].startswith("unbuilt:")]


def test_the_kapacitor_client_drives_replays(daemon) -> None:
    """Kapacitor's own client: ``KAPA_TEST_KAPACITOR_CLIENT`` or ``kapacitor`` on the PATH."""
    import os
    import shutil
    import subprocess

    cli = os.environ.get("KAPA_TEST_KAPACITOR_CLIENT") or shutil.which("kapacitor")
    if not cli:
        pytest.skip("no kapacitor client (set KAPA_TEST_KAPACITOR_CLIENT)")
    task_id = define(daemon, QUERY + "    |httpOut('o')\n")

    def run(*args: str) -> str:
        done = subprocess.run([cli, "-url", daemon.url, *args], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert run("replay-live", "batch", "-task", task_id, "-start", START, "-stop",
               "1971-01-01T00:00:30Z", "-rec-time", "-replay-id", "from-cli").strip() \
        == "from-cli"
    listed = run("list", "replays", "from-cli")
    assert "from-cli" in listed and "finished" in listed and task_id in listed
    run("delete", "replays", "from-cli")
    assert "from-cli" not in run("list", "replays", "from-cli")

"""Recordings (``/kapacitor/v1/recordings``) and replays of recordings and queries
(``POST /kapacitor/v1/replays``, ``/replays/query``), against a real influxd.

The files under ``recordings_data/`` were made by Kapacitor 1.5.7 (kapacitord) from the
same points and tasks as below, and ``expected.json`` holds what kapacitord posted when
it replayed them and what its recordings hold. To make them again::

    python -m tests.integration.test_recordings --kapacitord /path/to/kapacitord

The checks: kapa-core records the same data as Kapacitor (file contents compared once
uncompressed), replays Kapacitor's own files (imported) with the outputs Kapacitor gave,
and answers the recording API with Kapacitor's shapes and words.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from kapa_core.models.batch import Batch, BatchPoint
from kapa_core.models.recordfile import read_batches, read_stream, write_batches
from kapa_core.testing import DaemonProcess
from kapa_core.testing import RecordingHTTPServer as HTTPRecorder
from tests.integration.influxd import InfluxD

pytestmark = pytest.mark.integration
DATA = Path(__file__).parent / "recordings_data"
START = "1971-01-01T00:00:00Z"

#: Points in InfluxDB (db.rp), read by the batch and query recordings.
STORED = [
    'cpu,host=a,region=eu v=1.5,n=3i,s="ok",up=true 31536000',
    'cpu,host=b v=2,n=4i,s="say \\"hi\\"",up=false 31536002',
    'cpu,host=a,region=eu v=0.0000001,n=-5i,s="x",up=true 31536005',
    'cpu,host=b v=1e21,n=6i,s="y,z",up=true 31536008',
    'cpu,host=a,region=eu v=3.25,n=7i,s="<&>",up=false 31536012',
    'cpu,host=b v=4,n=8i,s="w",up=true 31536015',
    'cpu,host=a,region=eu v=5,n=9i,s="v",up=true 31536025',
]
#: Points written to the daemon while the stream recording runs (the last one, after
#: its stop, ends it; mem and db "other" are not the task's).
WRITTEN = [("db", "rp", line) for line in STORED[:2]] + [
    ("db", "rp", "mem,host=a used=10i 31536003"),
    ("other", "autogen", "cpu,host=z v=9 31536004"),
] + [("db", "rp", line) for line in STORED[2:]]

RECORD_BATCH = """batch
    |query('SELECT v, n, s, up FROM "db"."rp"."cpu"')
        .period(10s)
        .every(10s)
        .groupBy('host')
    |httpPost('{url}/b1')
batch
    |query('SELECT mean(v) AS m FROM "db"."rp"."cpu"')
        .period(10s)
        .every(10s)
        .groupBy(time(5s))
    |httpPost('{url}/b2')
"""
RECORD_STREAM = """stream
    |from()
        .measurement('cpu')
    |httpOut('x')
"""
PLAY_STREAM = """stream
    |from()
        .measurement('cpu')
        .groupBy('host')
    |window()
        .period(10s)
        .every(10s)
    |httpPost('{url}/s')
"""
PLAY_BATCH = """batch
    |query('SELECT v FROM "db"."rp"."cpu"')
        .period(10s)
        .every(10s)
    |count('v')
    |httpPost('{url}/c')
"""
QUERY_STREAM = 'SELECT v, n, s FROM "db"."rp"."cpu" WHERE time < \'1971-01-01T00:00:20Z\''
QUERY_BATCH = 'SELECT v, up FROM "db"."rp"."cpu" GROUP BY host'
#: Several series: the stream recording interleaves them by time.
QUERY_SERIES = 'SELECT v FROM "db"."rp"."cpu" GROUP BY host, region'


def _wait(client: httpx.Client, path: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(path)
        body = response.json()
        if body.get("status") != "running" or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def _define(client: httpx.Client, task_id: str, kind: str, script: str) -> None:
    client.delete(f"/tasks/{task_id}")
    response = client.post("/tasks", json={
        "id": task_id, "type": kind, "dbrps": [{"db": "db", "rp": "rp"}],
        "script": script, "status": "disabled"})
    assert response.status_code == 200, response.text


RECORDED = (("rb", "brpl"), ("rqs", "srpl"), ("rqb", "brpl"), ("rqm", "srpl"),
            ("rs", "srpl"))


def entries(path: Path) -> list[str]:
    """What a recording holds, uncompressed: the stream's text or each entry's."""
    if path.suffix == ".srpl":
        return [gzip.decompress(path.read_bytes()).decode()]
    with zipfile.ZipFile(path) as archive:
        return [f"{info.filename}:" + archive.read(info).decode()
                for info in archive.infolist()]


def record_all(url: str, recorder_url: str) -> dict[str, str]:
    """Make the four recordings on the daemon at ``url``; their final states."""
    client = httpx.Client(base_url=url + "/kapacitor/v1", timeout=30)
    _define(client, "rec_batch", "batch", RECORD_BATCH.format(url=recorder_url))
    _define(client, "rec_stream", "stream", RECORD_STREAM)
    states = {}
    for rid, path, body in [
            ("rb", "batch", {"task": "rec_batch", "start": START,
                             "stop": "1971-01-01T00:00:30Z"}),
            ("rqs", "query", {"query": QUERY_STREAM, "type": "stream"}),
            ("rqb", "query", {"query": QUERY_BATCH, "type": "batch"}),
            ("rqm", "query", {"query": QUERY_SERIES, "type": "stream"})]:
        response = client.post(f"/recordings/{path}", json={"id": rid, **body})
        assert response.status_code == 201, response.text
        states[rid] = _wait(client, f"/recordings/{rid}")["status"]
    response = client.post("/recordings/stream", json={
        "id": "rs", "task": "rec_stream", "stop": "1971-01-01T00:00:20Z"})
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "running"
    for db, rp, line in WRITTEN:
        response = httpx.post(url + "/write", params={"db": db, "rp": rp,
                                                      "precision": "s"},
                              content=line.encode())
        assert response.status_code == 204, response.text
    states["rs"] = _wait(client, "/recordings/rs")["status"]
    return states


def replay_all(url: str, recorder: HTTPRecorder, names: dict[str, str]
               ) -> dict[str, Any]:
    """Replay the recordings ``names`` (stream, batch: recording IDs) and two queries on
    the daemon at ``url``; what each posted, and the replays' errors."""
    client = httpx.Client(base_url=url + "/kapacitor/v1", timeout=30)
    _define(client, "play_stream", "stream", PLAY_STREAM.format(url=recorder.url))
    _define(client, "rec_batch", "batch", RECORD_BATCH.format(url=recorder.url))
    _define(client, "play_batch", "batch", PLAY_BATCH.format(url=recorder.url))
    out: dict[str, Any] = {}
    for label, path, body in [
            ("stream", "", {"task": "play_stream", "recording": names["stream"]}),
            ("batch", "", {"task": "rec_batch", "recording": names["batch"]}),
            ("query stream", "/query", {"task": "play_stream", "query": QUERY_STREAM}),
            ("query batch", "/query", {"task": "rec_batch", "query": QUERY_BATCH}),
            ("query batch one node", "/query", {"task": "play_batch",
                                                "query": QUERY_BATCH}),
            ("batch entries one node", "", {"task": "play_batch",
                                             "recording": names["batch"]}),
            ("stream into batch", "", {"task": "rec_batch", "recording": names["stream"]}),
            ("batch into stream", "", {"task": "play_stream", "recording": names["batch"]})]:
        recorder.requests.clear()
        rid = "p-" + label.replace(" ", "-")
        client.delete(f"/replays/{rid}")
        response = client.post(f"/replays{path}", json={
            "id": rid, "recording-time": True, **body})
        assert response.status_code == 201, response.text
        replay = _wait(client, f"/replays/{rid}")
        time.sleep(0.3)  # the last posts
        posts: dict[str, list[str]] = {}
        for request in recorder.requests:
            posts.setdefault(request.path, []).append(request.body.decode())
        out[label] = {"error": replay["error"], "status": replay["status"],
                      "posts": {k: sorted(v) for k, v in sorted(posts.items())}}
    return out


# -- the tests --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def influx():
    with InfluxD() as server:
        server.query('CREATE DATABASE "db" WITH NAME "rp"')
        response = httpx.post(server.url + "/write", params={
            "db": "db", "rp": "rp", "precision": "s"},
            content="\n".join(STORED).encode(), timeout=30)
        assert response.status_code == 204, response.text
        yield server


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    return json.loads((DATA / "expected.json").read_text())


def _config(influx: InfluxD, replay_dir: Path) -> dict[str, Any]:
    return {"influxdb": [{"enabled": True, "urls": [influx.url],
                          "disable-subscriptions": True}],
            "http": {"log-enabled": False}, "replay": {"dir": str(replay_dir)}}


@pytest.fixture(scope="module")
def replay_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("replay")


@pytest.fixture(scope="module")
def daemon(influx, replay_dir):
    with DaemonProcess(_config(influx, replay_dir)) as d:
        yield d


@pytest.fixture(scope="module")
def recorder():
    with HTTPRecorder() as rec:
        yield rec


@pytest.fixture(scope="module")
def recorded(daemon, recorder) -> dict[str, str]:
    return record_all(daemon.url, recorder.url)


def test_recordings_hold_what_kapacitor_records(recorded, replay_dir, expected) -> None:
    assert recorded == {"rb": "finished", "rqs": "finished", "rqb": "finished",
                        "rqm": "finished", "rs": "finished"}
    for rid, ext in RECORDED:
        assert entries(replay_dir / f"{rid}.{ext}") == expected["files"][rid], rid


def test_kapacitor_recordings_replay_as_on_kapacitor(daemon, recorder, replay_dir,
                                                     expected) -> None:
    for name in ("rs.srpl", "rb.brpl"):
        shutil.copy(DATA / name, replay_dir / ("k-" + name))
    client = httpx.Client(base_url=api(daemon), timeout=30)
    for rid in ("k-rs", "k-rb"):
        response = client.post("/recordings/import", json={"id": rid})
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "finished"
    got = replay_all(daemon.url, recorder, {"stream": "k-rs", "batch": "k-rb"})
    want = expected["replays"]
    for label in want:
        got[label]["error"] = got[label]["error"].replace(str(replay_dir), "<dir>")
    assert got == want


def test_own_recordings_replay_as_kapacitor_replays_its_own(daemon, recorder, recorded,
                                                            expected) -> None:
    got = replay_all(daemon.url, recorder, {"stream": "rs", "batch": "rb"})
    for label in ("stream", "batch"):
        assert got[label] == expected["replays"][label]


def api(daemon: DaemonProcess) -> str:
    return daemon.url + "/kapacitor/v1"


def test_recording_api_shapes_and_refusals(daemon, recorded, expected) -> None:
    client = httpx.Client(base_url=api(daemon), timeout=30)
    body = client.get("/recordings/rb").json()
    assert list(body) == ["link", "id", "type", "size", "date", "error", "status",
                          "progress"]
    assert body["link"] == {"rel": "self", "href": "/kapacitor/v1/recordings/rb"}
    assert (body["type"], body["status"], body["progress"], body["error"]) == \
        ("batch", "finished", 1, "")
    listed = client.get("/recordings", params={"fields": "type"}).json()["recordings"]
    assert {r["id"]: r["type"] for r in listed if r["id"] in recorded} == \
        {"rb": "batch", "rqs": "stream", "rqb": "batch", "rqm": "stream",
         "rs": "stream"}
    assert all(sorted(r) == ["id", "link", "type"] for r in listed)
    for key, (status, error) in expected["refusal answers"].items():
        method, path, content = json.loads(key)
        response = client.request(method, path, content=content.encode())
        assert (response.status_code, response.json().get("error")) == (status, error), key


def test_failed_query_recording(daemon) -> None:
    client = httpx.Client(base_url=api(daemon), timeout=30)
    response = client.post("/recordings/query", json={
        "id": "unqualified", "query": "SELECT v FROM cpu", "type": "batch"})
    assert response.status_code == 201
    body = _wait(client, "/recordings/unqualified")
    assert (body["status"], body["error"], body["progress"]) == (
        "failed", "could not determine database and retention policy. Is the query "
        "fully qualified?", 1)


# What kapacitord 1.5.7 answered for these query recordings (status, error).
QUERY_OUTCOMES = [
    ('SELECT v FROM "db"."rp"."nothing"', "stream", "finished", ""),
    ('SELECT v FROM "db"."rp"."nothing"', "batch", "finished", ""),
    ('SELECT count(v) FROM "db"."rp"."cpu"', "stream", "finished", ""),
    ('SELECT v FROM "nodb"."rp"."cpu"', "batch", "failed",
     "InfluxDB query failed: database not found: nodb"),
    ('SELECT v FROM "db"."norp"."cpu"', "stream", "failed",
     "InfluxDB query failed: retention policy not found: norp"),
    ("SELECT FROM", "batch", "failed",
     "found FROM, expected identifier, string, number, bool at line 1, char 8"),
    ('SELECT v FROM "db"."rp"."cpu", "db"."rp"."mem"', "batch", "failed",
     "could not determine database and retention policy. Is the query fully qualified?"),
    ('SELECT v FROM "db".."cpu"', "batch", "failed",
     "could not determine database and retention policy. Is the query fully qualified?"),
    ("SHOW DATABASES", "batch", "failed",
     "could not determine database and retention policy. Is the query fully qualified?"),
]


@pytest.mark.parametrize(("query", "kind", "status", "error"), QUERY_OUTCOMES)
def test_query_recording_outcomes(daemon, query, kind, status, error) -> None:
    client = httpx.Client(base_url=api(daemon), timeout=30)
    rid = f"outcome{QUERY_OUTCOMES.index((query, kind, status, error))}"
    response = client.post("/recordings/query", json={"id": rid, "query": query,
                                                       "type": kind})
    assert response.status_code == 201
    body = _wait(client, f"/recordings/{rid}")
    assert (body["status"], body["error"]) == (status, error)


def test_a_query_recording_without_type_fails(daemon) -> None:
    # kapacitord 1.5.7 crashes on this request; kapa-core fails the recording instead.
    client = httpx.Client(base_url=api(daemon), timeout=30)
    response = client.post("/recordings/query", json={"id": "untyped",
                                                       "query": QUERY_BATCH})
    assert response.status_code == 201
    body = _wait(client, "/recordings/untyped")
    assert (body["status"], body["error"], body["type"]) == (
        "failed", "unsupported recording type invalid", "stream")


def test_without_recording_time_the_points_start_at_the_replay(daemon, recorder,
                                                               replay_dir) -> None:
    shutil.copy(DATA / "rs.srpl", replay_dir / "moved.srpl")
    client = httpx.Client(base_url=api(daemon), timeout=30)
    assert client.post("/recordings/import", json={"id": "moved"}).status_code == 201
    _define(client, "each_point", "stream",
            f"stream\n    |from()\n        .measurement('cpu')\n"
            f"    |httpPost('{recorder.url}/p')\n")
    recorder.requests.clear()
    before = time.time()
    response = client.post("/replays", json={"id": "moved", "task": "each_point",
                                             "recording": "moved"})
    assert response.status_code == 201
    assert _wait(client, "/replays/moved")["status"] == "finished"
    time.sleep(0.3)
    times = [json.loads(r.body)["series"][0]["values"][0][0] for r in recorder.requests]
    from datetime import datetime

    stamps = [datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() for t in times]
    assert len(stamps) == 6
    assert before - 1 < stamps[0] < time.time() + 1
    assert [round(t - stamps[0], 3) for t in stamps] == [0, 2, 5, 8, 12, 15]


def test_the_real_clock_keeps_the_pace_of_the_recording(daemon, recorder,
                                                        replay_dir) -> None:
    from kapa_core.models.point import Point
    from kapa_core.models.recordfile import write_stream

    S = 1_000_000_000
    write_stream(replay_dir / "paced.srpl", [
        Point("cpu", {}, {"v": float(i)}, 31536000 * S + i * S // 2, "db", "rp")
        for i in range(4)])
    client = httpx.Client(base_url=api(daemon), timeout=30)
    assert client.post("/recordings/import", json={"id": "paced"}).status_code == 201
    _define(client, "paced_task", "stream",
            f"stream\n    |from()\n        .measurement('cpu')\n"
            f"    |httpPost('{recorder.url}/paced')\n")
    recorder.requests.clear()
    started = time.monotonic()
    response = client.post("/replays", json={"id": "paced", "task": "paced_task",
                                             "recording": "paced", "clock": "real",
                                             "recording-time": True})
    assert response.status_code == 201 and response.json()["clock"] == "real"
    assert _wait(client, "/replays/paced")["status"] == "finished"
    assert time.monotonic() - started >= 1.4  # 0, 0.5, 1, 1.5 s after the start
    time.sleep(0.3)
    assert len(recorder.requests) == 4


def test_a_stream_recording_runs_until_a_later_point(daemon) -> None:
    client = httpx.Client(base_url=api(daemon), timeout=30)
    _define(client, "rec_stream2", "stream", RECORD_STREAM)
    response = client.post("/recordings/stream", json={
        "id": "waiting", "task": "rec_stream2", "stop": "1971-01-01T00:00:10Z"})
    assert response.status_code == 201
    httpx.post(daemon.url + "/write", params={"db": "db", "rp": "rp", "precision": "s"},
               content=b"cpu v=1 31536001")
    time.sleep(0.3)
    response = client.get("/recordings/waiting")
    assert (response.status_code, response.json()["status"]) == (202, "running")
    assert client.delete("/recordings/waiting").status_code == 204
    assert client.get("/recordings/waiting").status_code == 500


def test_a_running_recording_fails_at_the_next_start(influx, tmp_path) -> None:
    replay_dir = tmp_path / "replay"
    config = {**_config(influx, replay_dir),
              "storage": {"boltdb": str(tmp_path / "kapacitor.db")}}
    with DaemonProcess(config) as d:
        client = httpx.Client(base_url=api(d), timeout=30)
        _define(client, "rec_stream", "stream", RECORD_STREAM)
        assert client.post("/recordings/stream", json={
            "id": "cut", "task": "rec_stream",
            "stop": "1971-01-01T00:00:10Z"}).status_code == 201
    with DaemonProcess(config) as d:
        body = httpx.get(api(d) + "/recordings/cut").json()
        assert (body["status"], body["error"]) == ("failed",
                                                   "unexpected Kapacitor shutdown")


def test_delete_removes_the_file(daemon, replay_dir) -> None:
    client = httpx.Client(base_url=api(daemon), timeout=30)
    client.post("/recordings/query", json={"id": "gone", "query": QUERY_BATCH,
                                           "type": "batch"})
    assert _wait(client, "/recordings/gone")["status"] == "finished"
    assert (replay_dir / "gone.brpl").exists()
    assert client.delete("/recordings/gone").status_code == 204
    assert not (replay_dir / "gone.brpl").exists()
    assert client.get("/recordings/gone").status_code == 500
    assert client.delete("/recordings/gone").status_code == 204


def test_deleting_a_recording_without_file(daemon, replay_dir) -> None:
    # As kapacitord: the recording is deleted, then removing its file fails (500).
    client = httpx.Client(base_url=api(daemon), timeout=30)
    _define(client, "elsewhere", "batch", RECORD_BATCH.replace('"db"."rp"', '"x"."y"')
            .format(url="http://127.0.0.1:9"))
    client.post("/recordings/batch", json={"id": "nofile", "task": "elsewhere",
                                           "start": START,
                                           "stop": "1971-01-01T00:00:10Z"})
    body = _wait(client, "/recordings/nofile")
    assert (body["status"], body["size"], body["error"]) == (
        "failed", -1, 'batch query is not allowed to request data from "x"."y"')
    response = client.delete("/recordings/nofile")
    assert (response.status_code, response.json()["error"]) == (
        500, f"remove {replay_dir}/nofile.brpl: no such file or directory")
    assert client.get("/recordings/nofile").status_code == 500
    assert client.delete("/recordings/nofile").status_code == 204


def test_import_refusals(daemon, replay_dir) -> None:
    client = httpx.Client(base_url=api(daemon), timeout=30)
    assert client.post("/recordings/import", json={"id": "nothing"}).status_code == 404
    assert client.post("/recordings/import", json={}).status_code == 400
    assert client.post("/recordings/import", json={"id": "a b"}).status_code == 400


def test_files_in_the_replay_dir_are_registered_at_start(influx, tmp_path) -> None:
    replay_dir = tmp_path / "replay"
    replay_dir.mkdir()
    shutil.copy(DATA / "rs.srpl", replay_dir / "shared.srpl")
    (replay_dir / "notes.txt").write_text("not a recording")
    with DaemonProcess(_config(influx, replay_dir)) as d:
        body = httpx.get(api(d) + "/recordings/shared").json()
        assert (body["type"], body["status"], body["size"], body["progress"]) == (
            "stream", "finished", (DATA / "rs.srpl").stat().st_size, 1)
        listed = httpx.get(api(d) + "/recordings").json()["recordings"]
        assert [r["id"] for r in listed] == ["shared"]


def test_file_formats_round_trip(tmp_path) -> None:
    points = list(read_stream(DATA / "rs.srpl"))
    assert [p.fields for p in points][:2] == [
        {"v": 1.5, "n": 3, "s": "ok", "up": True},
        {"v": 2.0, "n": 4, "s": 'say "hi"', "up": False}]
    from kapa_core.models.recordfile import write_stream

    write_stream(tmp_path / "again.srpl", points)
    assert entries(tmp_path / "again.srpl") == entries(DATA / "rs.srpl")
    sources = read_batches(DATA / "rb.brpl")
    write_batches(tmp_path / "again.brpl", sources)
    assert entries(tmp_path / "again.brpl") == entries(DATA / "rb.brpl")
    empty = Batch("cpu", "", {}, (), False, 10**9, [])
    full = Batch("cpu", "host=a", {"host": "a"}, ("host",), True, 2 * 10**9,
                 [BatchPoint(10**9, {"v": 1.0, "t": "<"}, {})])
    write_batches(tmp_path / "b.brpl", [[full, empty]])
    assert entries(tmp_path / "b.brpl") == [
        '0:{"name":"cpu","tmax":"1970-01-01T00:00:02Z","group":"host=a","byname":true,'
        '"tags":{"host":"a"},"points":[{"fields":{"t":"\\u003c","v":1},"tags":null,'
        '"time":"1970-01-01T00:00:01Z"}]}\n'
        '{"name":"cpu","tmax":"1970-01-01T00:00:01Z"}\n']
    (read,) = read_batches(tmp_path / "b.brpl")
    assert len(read) == 1 and read[0].points[0].tags == {"host": "a"}
    assert read[0].group == "cpu\nhost=a"


def test_the_kapacitor_client_records_and_replays(daemon, recorder, recorded,
                                                  expected) -> None:
    """Kapacitor's own client: ``KAPA_TEST_KAPACITOR_CLIENT`` or ``kapacitor`` on the PATH."""
    import os
    import subprocess

    cli = os.environ.get("KAPA_TEST_KAPACITOR_CLIENT") or shutil.which("kapacitor")
    if not cli:
        pytest.skip("no kapacitor client (set KAPA_TEST_KAPACITOR_CLIENT)")

    def run(*args: str) -> str:
        done = subprocess.run([cli, "-url", daemon.url, *args], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert run("record", "batch", "-task", "rec_batch", "-start", START, "-stop",
               "1971-01-01T00:00:30Z", "-recording-id", "cli-rb").strip() == "cli-rb"
    assert run("record", "query", "-query", QUERY_SERIES, "-type", "stream",
               "-recording-id", "cli-rqm").strip() == "cli-rqm"
    listed = run("list", "recordings", "cli-*")
    assert "cli-rb" in listed and "cli-rqm" in listed and "finished" in listed
    recorder.requests.clear()
    _define(httpx.Client(base_url=api(daemon)), "rec_batch", "batch",
            RECORD_BATCH.format(url=recorder.url))
    assert run("replay", "-task", "rec_batch", "-recording", "cli-rb", "-rec-time",
               "-replay-id", "cli-play").strip() == "cli-play"
    time.sleep(0.3)
    posts: dict[str, list[str]] = {}
    for request in recorder.requests:
        posts.setdefault(request.path, []).append(request.body.decode())
    assert {k: sorted(v) for k, v in posts.items()} == expected["replays"]["batch"]["posts"]
    run("delete", "recordings", "cli-rb", "cli-rqm")
    assert "cli-" not in run("list", "recordings", "cli-*")
    _define(httpx.Client(base_url=api(daemon)), "play_batch", "batch",
            PLAY_BATCH.format(url=recorder.url))
    recorder.requests.clear()
    assert run("replay-live", "query", "-task", "play_batch", "-query", QUERY_BATCH,
               "-rec-time", "-replay-id", "cli-live").strip() == "cli-live"
    time.sleep(0.3)
    assert sorted(r.body.decode() for r in recorder.requests) == \
        expected["replays"]["query batch one node"]["posts"]["/c"]


# -- making the test data with kapacitord ------------------------------------------------
def make_data(kapacitord: str) -> None:
    from tests.compat.oracle import Kapacitor

    with InfluxD() as influx:
        influx.query('CREATE DATABASE "db" WITH NAME "rp"')
        httpx.post(influx.url + "/write", params={"db": "db", "rp": "rp",
                                                  "precision": "s"},
                   content="\n".join(STORED).encode(), timeout=30)
        with HTTPRecorder() as recorder:
            server = Kapacitor(kapacitord, influx.url)
            try:
                states = record_all(server.url, recorder.url)
                assert set(states.values()) == {"finished"}, states
                kdir = Path(server.dir) / "replay"
                DATA.mkdir(exist_ok=True)
                files = {}
                for rid, ext in RECORDED:
                    files[rid] = entries(kdir / f"{rid}.{ext}")
                for name in ("rs.srpl", "rb.brpl"):
                    shutil.copy(kdir / name, DATA / name)
                replays = replay_all(server.url, recorder, {"stream": "rs", "batch": "rb"})
                for label in replays:
                    replays[label]["error"] = replays[label]["error"].replace(
                        str(kdir), "<dir>")
                # What kapa-core records replays on kapacitord as kapacitord's own does:
                # its files put in place of kapacitord's (which reads them as it replays).
                with tempfile.TemporaryDirectory() as own:
                    with DaemonProcess(_config(influx, Path(own))) as daemon:
                        record_all(daemon.url, recorder.url)
                    for name in ("rs.srpl", "rb.brpl"):
                        shutil.copy(Path(own) / name, kdir / name)
                again = replay_all(server.url, recorder, {"stream": "rs", "batch": "rb"})
                for label in ("stream", "batch"):
                    assert again[label] == replays[label], label
                client = httpx.Client(base_url=server.url + "/kapacitor/v1", timeout=30)
                answers = {}
                for method, path, content in REFUSALS:
                    response = client.request(method, path, content=content.encode())
                    answers[json.dumps([method, path, content])] = [
                        response.status_code, response.json().get("error")]
            finally:
                server.close()
    (DATA / "expected.json").write_text(json.dumps({
        "files": files, "replays": replays, "refusal answers": answers}, indent=1, sort_keys=True) + "\n")


REFUSALS = [
    ("POST", "/recordings/batch", '{"task":"rec_batch"}'),
    ("POST", "/recordings/batch", '{"task":"nope","start":"1971-01-01T00:00:00Z"}'),
    ("POST", "/recordings/batch", '{"id":"rb","task":"rec_batch","start":"1971-01-01T00:00:00Z"}'),
    ("POST", "/recordings/batch", '{"id":"a b","task":"rec_batch","start":"1971-01-01T00:00:00Z"}'),
    ("POST", "/recordings/batch", '{"start":1}'),
    ("POST", "/recordings/stream", '{"task":"nope"}'),
    ("POST", "/recordings/stream", '{"task":3}'),
    ("POST", "/recordings/query", '{"type":"stream"}'),
    ("POST", "/recordings/query", '{"query":"SELECT 1","type":"table"}'),
    ("POST", "/recordings/query", '[]'),
    ("GET", "/recordings/missing", ""),
    ("GET", "/recordings/", ""),
    ("GET", "/recordings?fields=bogus", ""),
    ("POST", "/replays", '{"task":"rec_batch","recording":"missing"}'),
    ("POST", "/replays", '{"task":"missing","recording":"rb"}'),
    ("POST", "/replays", '{"task":"rec_batch","recording":"rb","clock":"slow"}'),
    ("POST", "/replays", '{"id":"a/b","task":"rec_batch","recording":"rb"}'),
    ("POST", "/replays/query", '{"task":"rec_batch"}'),
    ("POST", "/replays/query", '{"id":"a b","task":"rec_batch","query":"x"}'),
    ("POST", "/replays/query", '{"task":"missing","query":"x"}'),
]


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--kapacitord":
        sys.exit("usage: python -m tests.integration.test_recordings --kapacitord BIN")
    make_data(sys.argv[2])

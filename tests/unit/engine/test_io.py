"""Sources and outputs: from, batch queries, httpOut, httpPost, log, influxDBOut,
kapacitorLoopback, and the kit's own recording server."""

from __future__ import annotations

import httpx
import pytest

from kapa_core.errors import TickError
from kapa_core.models.batch import Batch
from kapa_core.models.point import Point
from kapa_core.testing import RecordingHTTPServer, batches_of, run_script

S = 1_000_000_000


def test_from_filters_by_measurement_database_and_tags() -> None:
    run = run_script("""dbrp "db"."autogen"
stream|from().measurement('cpu').where(lambda: "host" == 'a')""",
                     "cpu,host=a v=1 0\ncpu,host=b v=2 0\nmem,host=a v=3 0")
    assert [(p.name, p.tags["host"]) for p in run.points("from")] == [("cpu", "a")]


def test_points_are_fed_in_time_order() -> None:
    run = run_script("stream|from()", ["m v=2 2000000000", "m v=1 1000000000",
                                       Point("m", {}, {"v": 0.0}, 0)])
    assert run.fields("from", "v") == [0.0, 1.0, 2.0]


def test_http_out_serves_the_last_point_of_each_group() -> None:
    run = run_script("stream|from().groupBy('host')|httpOut('last')",
                     "cpu,host=a v=1 0\ncpu,host=a v=2 1000000000\ncpu,host=b v=3 0")
    body = run.http_out("last")
    rows = {s["tags"]["host"]: s["values"] for s in body["series"]}
    assert rows == {"a": [["1970-01-01T00:00:01Z", 2]], "b": [["1970-01-01T00:00:00Z", 3]]}


def test_http_out_before_data_is_null() -> None:
    run = run_script("stream|from()|httpOut('x')", [])
    assert run.http_out("x") == {"series": None}


def test_http_out_of_a_window_serves_the_batch() -> None:
    run = run_script("stream|from()|window().period(10s).every(10s)|httpOut('w')",
                     "m v=1 0\nm v=2 5000000000\nm v=3 10000000000")
    (series,) = run.http_out("w")["series"]
    assert series["columns"] == ["time", "v"] and len(series["values"]) == 2


def test_batch_task_takes_query_answers() -> None:
    script = """batch|query('SELECT mean(v) FROM "db"."autogen".cpu').period(1m).every(1m)
        .groupBy('host')|httpOut('q')"""
    run = run_script(script, ["cpu,host=a mean=1 0\ncpu,host=b mean=2 0"],
                     task_type="batch")
    assert sorted(s["tags"]["host"] for s in run.http_out("q")["series"]) == ["a", "b"]


def test_batch_task_takes_batch_objects() -> None:
    batches = batches_of("cpu,host=a v=1 0\ncpu,host=a v=5 1000000000\ncpu,host=b v=2 0",
                         ["host"])
    assert [b.group for b in batches] == ["host=a", "host=b"]
    run = run_script("batch|query('SELECT v FROM \"db\".\"autogen\".cpu')"
                     ".period(1m).every(1m).groupBy('host')|max('v')", batches,
                     task_type="batch")
    assert sorted(run.fields("max", "max")) == [2.0, 5.0]


def test_batch_outputs_are_batches() -> None:
    run = run_script("batch|query('SELECT v FROM \"db\".\"autogen\".cpu')"
                     ".period(1m).every(1m)|log()", ["cpu v=1 0\ncpu v=2 1000000000"],
                     task_type="batch")
    (b,) = run.outputs("log")
    assert isinstance(b, Batch) and len(b.points) == 2


def test_log_passes_data_on() -> None:
    run = run_script("stream|from()|log().prefix('P')|httpOut('x')", "m v=1 0")
    assert run.stats("log")["collected"] == 1
    assert run.http_out("x")["series"][0]["values"] == [["1970-01-01T00:00:00Z", 1]]


def test_influxdb_out_lines_are_collected() -> None:
    run = run_script("stream|from()|influxDBOut().database('out').retentionPolicy('rp')"
                     ".measurement('copy').tag('kept', 'yes')",
                     "m,host=a v=1,n=2i 0\nm,host=b s=\"x\" 1000000000")
    assert run.influxdb_out() == [
        ("out", "rp", "copy,host=a,kept=yes n=2i,v=1 0"),
        ("out", "rp", 'copy,host=b,kept=yes s="x" 1000000000')]


def test_loopback_writes_are_collected() -> None:
    run = run_script("""dbrp "db"."autogen"
stream|from()|eval(lambda: "v" * 2.0).as('v')|kapacitorLoopback().database('other')
    .retentionPolicy('autogen').measurement('doubled')""", "m v=2 0")
    ((db, rp, p),) = run.loopback
    assert (db, rp, p.name, p.fields) == ("other", "autogen", "doubled", {"v": 4.0})


def test_http_post_sends_to_a_recording_server() -> None:
    with RecordingHTTPServer(status=200) as server:
        run = run_script(f"stream|from()|httpPost('{server.url}/hook?x=1')",
                         "m,host=a v=1 0\nm,host=a v=2 1000000000")
        requests = server.wait_for(2)
    assert run.error == ""
    assert [r.route for r in requests] == ["/hook", "/hook"]
    assert requests[0].query == {"x": ["1"]}
    assert requests[0].json()["series"][0]["values"] == [["1970-01-01T00:00:00Z", 1]]


def test_recording_server_answers_as_told() -> None:
    def answer(request: object) -> tuple[int, dict[str, str], bytes]:
        return 201, {"X-Seen": "yes"}, b"made"

    with RecordingHTTPServer(respond=answer) as server:
        response = httpx.put(server.url + "/a/b?c=d", content=b"body",
                             headers={"X-Mine": "1"})
        (request,) = server.wait_for(1)
    assert (response.status_code, response.text) == (201, "made")
    assert response.headers["x-seen"] == "yes"
    assert (request.method, request.route, request.body) == ("PUT", "/a/b", b"body")
    assert request.headers["x-mine"] == "1"


def test_recording_server_wait_for_fails_with_what_arrived() -> None:
    with RecordingHTTPServer() as server:
        httpx.get(server.url + "/only")
        with pytest.raises(AssertionError, match="/only"):
            server.wait_for(2, timeout=0.2)


def test_duplicate_http_out_endpoint_stops_the_task() -> None:
    run = run_script("stream|from()|httpOut('x')|httpOut('x')", "m v=1 0")
    assert "multiple registrations" in run.error


def test_a_script_that_does_not_evaluate_raises() -> None:
    with pytest.raises(TickError):
        run_script("stream|from()|nosuchnode()", [])


def test_vars_override_the_script() -> None:
    script = "var limit = 5\nstream|from()|where(lambda: \"v\" > limit)"
    assert run_script(script, "m v=3 0\nm v=7 1").fields("where", "v") == [7.0]
    assert run_script(script, "m v=3 0\nm v=7 1", vars={"limit": 1}).fields(
        "where", "v") == [3.0, 7.0]


def test_dot_draws_the_task() -> None:
    run = run_script("stream|from()|window().period(1s).every(1s)", [])
    assert run.dot() == ("digraph testing {\nstream0 -> from1;\nfrom1 -> window2;\n}")
    assert 'window2 [avg_exec_time_ns="0s" errors="0" working_cardinality="0" ];' in run.dot(
        stats=True)

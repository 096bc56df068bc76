"""``|influxDBOut()`` against real InfluxDB 1.x servers, through the real daemon.

One daemon knows several ``[[influxdb]]`` clusters: the main influxd (default), an
influxd with authentication (good and bad credentials), a recording HTTP proxy in front
of the main influxd (with and without compression) and an influxd the tests stop and
start again. Points go in through kapa-core's ``/write``; what the tests check is what
InfluxDB answers to queries, what the proxy saw, and the node's statistics.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from kapa_core.engine.nodes.influxdb_out import LineFormatter, _scaled
from kapa_core.errors import TickError
from kapa_core.pipeline.evaluate import evaluate
from kapa_core.testing import DaemonProcess
from tests.integration.influxd import InfluxD
from tests.integration.test_alerts import wait_for
from tests.integration.test_tasks import define, write

pytestmark = pytest.mark.integration


class RecordingProxy:
    """Forwards every request to ``target`` and remembers what it received."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.requests: list[dict[str, Any]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self._forward("POST")

            def do_GET(self) -> None:
                self._forward("GET")

            def _forward(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                proxy.requests.append({"method": method, "path": self.path,
                                       "headers": headers, "body": body})
                forward = {k: v for k, v in headers.items()
                           if k in ("content-type", "content-encoding", "authorization")}
                response = httpx.request(method, proxy.target + self.path, content=body,
                                         headers=forward, timeout=10)
                self.send_response(response.status_code)
                for name in ("content-type", "x-influxdb-version"):
                    if name in response.headers:
                        self.send_header(name, response.headers[name])
                self.send_header("Content-Length", str(len(response.content)))
                self.end_headers()
                self.wfile.write(response.content)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that went away (the daemon stopping) is no test failure

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def writes(self, database: str) -> list[dict[str, Any]]:
        return [r for r in self.requests
                if r["path"].startswith("/write") and f"db={database}&" in r["path"] + "&"]

    def __enter__(self) -> RecordingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Any]]:
    with InfluxD() as main, InfluxD(auth=True) as secured, InfluxD() as flaky, \
            RecordingProxy(main.url) as proxy:
        secured.create_admin("admin", "changeit")
        yield {"main": main, "secured": secured, "flaky": flaky, "proxy": proxy}


@pytest.fixture(scope="module")
def daemon(servers) -> Iterator[DaemonProcess]:
    common = {"enabled": True, "disable-subscriptions": True}
    clusters = [
        {**common, "name": "main", "default": True, "urls": [servers["main"].url]},
        {**common, "name": "secured", "urls": [servers["secured"].url],
         "username": "admin", "password": "changeit"},
        {**common, "name": "badauth", "urls": [servers["secured"].url],
         "username": "admin", "password": "wrong"},
        {**common, "name": "plain", "urls": [servers["proxy"].url], "compression": "none"},
        {**common, "name": "zipped", "urls": [servers["proxy"].url]},
        {**common, "name": "flaky", "urls": [servers["flaky"].url]},
    ]
    with DaemonProcess({"http": {"log-enabled": False}, "influxdb": clusters}) as d:
        yield d


def out_stats(daemon: DaemonProcess, task_id: str) -> dict[str, Any]:
    body = httpx.get(f"{daemon.url}/kapacitor/v1/tasks/{task_id}").json()
    nodes = body["stats"]["node-stats"]
    (name,) = [n for n in nodes if n.startswith("influxdb_out")]
    return dict(nodes[name])


def wait_for_stats(daemon: DaemonProcess, task_id: str,
                   ready: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Poll the task's influxDBOut statistics until ``ready`` accepts them; return them."""
    last: dict[str, Any] = {}

    def check() -> bool:
        nonlocal last
        last = out_stats(daemon, task_id)
        return ready(last)

    assert wait_for(check, timeout=20), f"influxDBOut statistics never got there: {last}"
    return last


def series(influx: InfluxD, database: str, q: str, *, epoch: str = "s",
           auth: tuple[str, str] | None = None) -> list[dict[str, Any]]:
    try:
        body = influx.query(q, db=database, epoch=epoch, auth=auth)
    except httpx.HTTPError:
        return []
    return body["results"][0].get("series") or []


def rows_equal(influx: InfluxD, database: str, q: str, expected: list[dict[str, Any]],
               **kw: Any) -> list[dict[str, Any]]:
    """Wait until the query answers ``expected``; return what it answered last."""
    last: list[dict[str, Any]] = []

    def check() -> bool:
        nonlocal last
        last = series(influx, database, q, **kw)
        return last == expected

    wait_for(check, timeout=20)
    return last


def delete(daemon: DaemonProcess, task_id: str) -> None:
    httpx.delete(f"{daemon.url}/kapacitor/v1/tasks/{task_id}")


def test_window_mean_written_with_measurement_tags_and_create(daemon, servers) -> None:
    task_id = define(daemon, """
stream|from().measurement('cpu')
  |window().period(10s).every(10s)
  |mean('v')
  |influxDBOut()
    .database('out')
    .retentionPolicy('autogen')
    .measurement('cpu_mean')
    .tag('source', 'kapa')
    .create()
    .flushInterval(100ms)
""")
    write(daemon, """
cpu,host=a v=1 0
cpu,host=a v=3 5
cpu,host=b v=10 8
cpu,host=a v=4 10
cpu,host=a v=6 15
cpu,host=b v=2 20
""")
    expected = [{"name": "cpu_mean", "columns": ["time", "mean", "source"],
                 "values": [[10, 14 / 3, "kapa"], [20, 5.0, "kapa"]]}]
    got = rows_equal(servers["main"], "out", 'SELECT * FROM "out"."autogen"."cpu_mean"',
                     expected)
    assert got == expected
    stats = wait_for_stats(daemon, task_id, lambda s: s["points_written"] == 2)
    assert stats["write_errors"] == 0 and stats["points_dropped"] == 0
    assert stats["collected"] == 2
    # .create() made the database with the retention policy as its default.
    rps = servers["main"].query("SHOW RETENTION POLICIES ON out")["results"][0]["series"]
    assert [r[0] for r in rps[0]["values"] if r[-1] is True] == ["autogen"]
    dot = httpx.get(f"{daemon.url}/kapacitor/v1/tasks/{task_id}").json()["dot"]
    assert 'points_written="2"' in dot and 'write_errors="0"' in dot
    delete(daemon, task_id)


def test_stream_without_database_writes_to_the_points_database_with_precision(
        daemon, servers) -> None:
    main = servers["main"]
    main.query('CREATE DATABASE "db" WITH NAME "rp"')
    task_id = define(daemon, """
stream|from().measurement('raw')
  |influxDBOut()
    .precision('s')
    .tag('team', 'ops team,eu')
    .flushInterval(100ms)
""")
    write(daemon, 'raw,host=x v=1.5,s="say \\"hi\\"" 1700\n'
                  "raw,host=x v=2.5,n=2i,b=true 2999\n", precision="ms")
    expected = [{"name": "raw", "columns": ["time", "b", "host", "n", "s", "team", "v"],
                 "values": [[1_000_000_000, None, "x", None, 'say "hi"', "ops team,eu", 1.5],
                            [2_000_000_000, True, "x", 2, None, "ops team,eu", 2.5]]}]
    # Written with precision=s: the times are truncated to whole seconds.
    got = rows_equal(main, "db", 'SELECT * FROM "db"."rp"."raw"', expected, epoch="ns")
    assert got == expected
    delete(daemon, task_id)


def test_batches_from_a_window_write_every_point_in_buffer_sized_requests(
        daemon, servers) -> None:
    task_id = define(daemon, """
stream|from().measurement('b').groupBy('host')
  |window().period(10s).every(10s)
  |influxDBOut().cluster('plain').database('batches').create().buffer(2)
    .flushInterval(100ms)
""")
    write(daemon, """
b,host=a v=1 0
b,host=b v=2 1
b,host=a v=3 4
b,host=b v=4 6
b,host=a v=5 10
b,host=b v=6 11
""")
    expected = [{"name": "b", "columns": ["time", "host", "v"],
                 "values": [[0, "a", 1.0], [1, "b", 2.0], [4, "a", 3.0], [6, "b", 4.0]]}]
    assert rows_equal(servers["main"], "batches", "SELECT * FROM b", expected) == expected
    writes = servers["proxy"].writes("batches")
    assert sorted(r["body"].count(b"\n") for r in writes) == [2, 2]
    # InfluxDB shows the points before the node has read its answers: wait for the count.
    stats = wait_for_stats(daemon, task_id, lambda s: s["points_written"] == 4)
    assert stats["write_errors"] == 0
    delete(daemon, task_id)


def test_gzip_unless_the_cluster_says_none(daemon, servers) -> None:
    tasks = [define(daemon, f"""
stream|from().measurement('c')
  |influxDBOut().cluster('{cluster}').database('{db}').retentionPolicy('autogen')
    .create().flushInterval(100ms)
""") for cluster, db in (("plain", "comp_plain"), ("zipped", "comp_zip"))]
    write(daemon, "c,host=h v=1 1\nc,host=h v=2 2")
    expected = [{"name": "c", "columns": ["time", "host", "v"],
                 "values": [[1, "h", 1.0], [2, "h", 2.0]]}]
    for db in ("comp_plain", "comp_zip"):
        assert rows_equal(servers["main"], db, "SELECT * FROM c", expected) == expected
    # Floats as Kapacitor 1.5.7 writes them: 1, not 1.0 (checked against kapacitord)
    lines = b"c,host=h v=1 1000000000\nc,host=h v=2 2000000000\n"
    (plain,) = servers["proxy"].writes("comp_plain")
    assert "content-encoding" not in plain["headers"]
    assert plain["body"] == lines
    (zipped,) = servers["proxy"].writes("comp_zip")
    assert zipped["headers"]["content-encoding"] == "gzip"
    assert zipped["body"] != lines and gzip.decompress(zipped["body"]) == lines
    creates = [r["path"] for r in servers["proxy"].requests if r["path"].startswith("/query")]
    # Names bare where InfluxQL allows it, as Kapacitor 1.5.7 writes them (checked).
    assert "/query?db=&q=CREATE+DATABASE+comp_zip+WITH+NAME+autogen" in creates, creates
    for task_id in tasks:
        delete(daemon, task_id)


def test_credentials_and_refused_writes(daemon, servers) -> None:
    secured = servers["secured"]
    good = define(daemon, """
stream|from().measurement('s')
  |influxDBOut().cluster('secured').database('secure').retentionPolicy('autogen').create()
    .flushInterval(100ms)
""")
    bad = define(daemon, """
stream|from().measurement('s')
  |influxDBOut().cluster('badauth').database('secure').retentionPolicy('autogen')
    .flushInterval(100ms)
""")
    servers["main"].query("CREATE DATABASE norp")
    missing_rp = define(daemon, """
stream|from().measurement('s')
  |influxDBOut().database('norp').retentionPolicy('missing').flushInterval(100ms)
""")
    write(daemon, "s v=1 1\ns v=2 2")
    expected = [{"name": "s", "columns": ["time", "v"], "values": [[1, 1.0], [2, 2.0]]}]
    assert rows_equal(secured, "secure", "SELECT * FROM s", expected,
                      auth=("admin", "changeit")) == expected
    # 401 cannot get better by retrying: counted, logged, the points dropped.
    stats = wait_for_stats(daemon, bad, lambda s: s["write_errors"] >= 1)
    assert stats["points_written"] == 0 and stats["points_dropped"] == 2
    assert stats["points_buffered"] == 0
    line = daemon.wait_for_log(r"InfluxDB refused the points.*cluster=badauth")
    assert "authorization failed" in line and "db=secure" in line
    wait_for_stats(daemon, good, lambda s: s["points_written"] == 2)
    # InfluxDB answers a missing retention policy with a 500, which retrying cannot fix.
    stats = wait_for_stats(daemon, missing_rp, lambda s: s["write_errors"] >= 1)
    assert (stats["write_errors"], stats["points_dropped"], stats["points_buffered"]) == (
        1, 2, 0)
    daemon.wait_for_log(r"InfluxDB refused the points.*retention policy not found")
    for task_id in (good, bad, missing_rp):
        delete(daemon, task_id)


def test_points_stay_buffered_while_influxdb_is_down(daemon, servers) -> None:
    flaky = servers["flaky"]
    task_id = define(daemon, """
stream|from().measurement('o')
  |influxDBOut().cluster('flaky').database('outage').retentionPolicy('autogen').create()
    .flushInterval(100ms)
""")
    try:
        write(daemon, "o v=0 0")
        first = [{"name": "o", "columns": ["time", "v"], "values": [[0, 0.0]]}]
        assert rows_equal(flaky, "outage", "SELECT * FROM o", first) == first
        # The node must have seen InfluxDB's answer too: a write cut off before its answer
        # arrives is kept and sent again (InfluxDB stores a repeated point once).
        wait_for_stats(daemon, task_id, lambda s: s["points_written"] == 1)
        flaky.stop()
        write(daemon, "\n".join(f"o v={i} {i}" for i in range(1, 6)))
        stats = wait_for_stats(daemon, task_id, lambda s: s["write_errors"] >= 2)
        assert stats["points_buffered"] == 5 and stats["points_dropped"] == 0
        line = daemon.wait_for_log(r"influxDBOut: cannot write.*cluster=flaky")
        assert "db=outage" in line and "cannot connect" in line
        flaky.start()
        expected = [{"name": "o", "columns": ["time", "v"],
                     "values": [[i, float(i)] for i in range(6)]}]
        assert rows_equal(flaky, "outage", "SELECT * FROM o", expected) == expected
        stats = wait_for_stats(daemon, task_id, lambda s: s["points_written"] == 6)
        assert (stats["points_dropped"], stats["points_buffered"]) == (0, 0)
        daemon.wait_for_log(r"influxDBOut: writing to InfluxDB again.*cluster=flaky")
    finally:
        if flaky.proc is None:
            flaky.start()
        delete(daemon, task_id)


def test_buffer_overflow_during_an_outage_drops_the_newest_points(daemon, servers) -> None:
    flaky = servers["flaky"]
    flaky.query("CREATE DATABASE overflow")
    task_id = define(daemon, """
stream|from().measurement('f')
  |influxDBOut().cluster('flaky').database('overflow').retentionPolicy('autogen')
    .buffer(10).flushInterval(100ms)
""")
    try:
        flaky.stop()
        write(daemon, "\n".join(f"f v={i} {i}" for i in range(25)))
        stats = wait_for_stats(daemon, task_id, lambda s: s["write_errors"] >= 1)
        assert (stats["points_buffered"], stats["points_dropped"]) == (10, 15)
        write(daemon, "f v=99 99")  # still down: no room
        stats = wait_for_stats(daemon, task_id, lambda s: s["points_dropped"] == 16)
        assert stats["points_buffered"] == 10
        daemon.wait_for_log(r"influxDBOut dropped points.*cluster=flaky")
        flaky.start()
        expected = [{"name": "f", "columns": ["time", "v"],
                     "values": [[i, float(i)] for i in range(10)]}]
        assert rows_equal(flaky, "overflow", "SELECT * FROM f", expected) == expected
        stats = wait_for_stats(daemon, task_id, lambda s: s["points_written"] == 10)
        assert stats["points_dropped"] == 16
    finally:
        if flaky.proc is None:
            flaky.start()
        delete(daemon, task_id)


def test_stopping_a_task_flushes_what_is_buffered(daemon, servers) -> None:
    task_id = define(daemon, """
stream|from().measurement('late')
  |influxDBOut().database('flushed').retentionPolicy('autogen').create()
    .flushInterval(1h)
""")
    write(daemon, "late v=1 1\nlate v=2 2")
    wait_for_stats(daemon, task_id, lambda s: s["points_buffered"] == 2)
    assert series(servers["main"], "flushed", "SELECT * FROM late") == []
    response = httpx.patch(f"{daemon.url}/kapacitor/v1/tasks/{task_id}",
                           json={"status": "disabled"})
    assert response.status_code == 200, response.text
    expected = [{"name": "late", "columns": ["time", "v"], "values": [[1, 1.0], [2, 2.0]]}]
    assert rows_equal(servers["main"], "flushed", "SELECT * FROM late", expected) == expected
    delete(daemon, task_id)


def test_unknown_cluster_and_batch_input_without_database_are_refused(daemon) -> None:
    url = daemon.url + "/kapacitor/v1/tasks"
    unknown = httpx.post(url, json={
        "id": "nocluster", "type": "stream", "dbrps": [{"db": "db", "rp": "rp"}],
        "status": "enabled",
        "script": "stream|from()|influxDBOut().cluster('nope').database('x')"})
    assert unknown.json()["error"].startswith(
        "failed to get InfluxDB client: no such InfluxDB config nope")
    batch = httpx.post(url, json={
        "id": "nodb", "type": "stream", "dbrps": [{"db": "db", "rp": "rp"}],
        "script": "stream|from()|window().period(1s).every(1s)|influxDBOut()"})
    assert batch.status_code == 400
    assert "must set .database()" in batch.json()["error"]
    delete(daemon, "nocluster")


def test_lines_leave_out_what_influxdb_cannot_store() -> None:
    line = LineFormatter().line
    tags = {"b": "", "a": "1 2,x=y", "": "x"}
    fields = {"v": float("nan"), "w": 1.0, "s": 'say "hi"', "i": 3, "t": True,
              "n": None, "x y": -float("inf"), "": 2.0}
    # Fields sorted by key and 1.0 written 1, as Kapacitor 1.5.7 writes them (checked)
    assert line("m\\ 1", tags, fields, 5) == (
        'm\\ 1,a=1\\ 2\\,x\\=y i=3i,s="say \\"hi\\"",t=true,w=1 5')
    with pytest.raises(ValueError, match="no field InfluxDB can store"):
        line("m", {}, {"v": float("inf"), "n": None}, 1)
    # Times in precision units are truncated toward zero, as Go's integer division does.
    assert (_scaled(1_999_999_999, 10**9), _scaled(-1_999_999_999, 10**9)) == (1, -1)


@pytest.mark.parametrize(("script", "message"), [
    ("stream|from()|influxDBOut().buffer(0)", "buffer must be positive, got 0"),
    ("stream|from()|influxDBOut().flushInterval(0s)", "flushInterval must be positive"),
    ("stream|from()|influxDBOut().precision('us').precision('ps')",
     "invalid precision 'ps'"),
    ("stream|from()|influxDBOut().writeConsistency('most')",
     "invalid writeConsistency 'most'"),
    ("stream|from()|influxDBOut().create()", ".create() needs .database()"),
    ("stream|from()|influxDBOut().tag('', 'x')", "tag key must not be empty"),
    ("stream|from()|window().period(1s).every(1s)|influxDBOut().measurement('m')",
     "must set .database(): batches do not carry the database"),
    ("stream|from()|influxDBOut().database('x')|log()",
     "influxdb_out2 provides no data to chain from"),
    ("stream|from()|influxDBOut().database(1)",
     'error calling func "database" on obj *pipeline.InfluxDBOutNode: reflect.Set: value of '
     "type int64 is not assignable to type string"),
])
def test_invalid_properties_are_refused(script: str, message: str) -> None:
    with pytest.raises(TickError) as info:
        evaluate(script, "stream")
    assert message in str(info.value)


def test_valid_properties_are_kept() -> None:
    spec = evaluate("stream|from()|influxDBOut().cluster('c').database('d')"
                    ".retentionPolicy('r').measurement('m').writeConsistency('ALL')"
                    ".precision('ms').buffer(5).flushInterval(2s).create()"
                    ".tag('a', '1').tag('a', '2').tag('b', '3')",
                    "stream").pipeline.nodes[-1]
    assert spec.attributes() == {
        "cluster": "c", "database": "d", "retentionPolicy": "r", "measurement": "m",
        "writeConsistency": "ALL", "precision": "ms", "buffer": 5,
        "flushInterval": 2_000_000_000, "create": True, "tags": {"a": "2", "b": "3"}}

"""The ``[opentsdb]`` listener through the real daemon: telnet ``put`` lines from a raw
socket and ``/api/put`` from an HTTP client on the same port reach tasks as a ``/write``
would, with InfluxDB's statistic names; bad lines are counted and logged, never fatal;
TLS; ``log-point-errors``; 1,000 connections and 100 MB without a newline leave the daemon, its API and the
listener answering; a port in use stops startup naming the section.

Kapacitor's answers to the HTTP requests (status, body, content type) were recorded from
Kapacitor 1.5.7 on the same requests."""

from __future__ import annotations

import gzip
import json
import socket
import ssl
import threading
import time
from pathlib import Path

import httpx
import pytest

from kapa_core.testing import DaemonProcess, wait_until
from tests.integration.pki import self_signed

pytestmark = pytest.mark.integration

API = "/kapacitor/v1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def define(daemon: DaemonProcess, task_id: str, measurement: str, db: str = "tsdb") -> None:
    script = (f'dbrp "{db}"."autogen"\nstream|from().measurement(\'{measurement}\')'
              ".groupBy(*)|httpOut('out')")
    response = httpx.post(daemon.url + API + "/tasks", json={
        "id": task_id, "type": "stream", "script": script, "status": "enabled"})
    assert response.status_code == 200, response.text


def series(daemon: DaemonProcess, task_id: str) -> list[dict]:
    out = httpx.get(f"{daemon.url}{API}/tasks/{task_id}/out").json()
    return sorted(out.get("series") or [], key=lambda s: json.dumps(s.get("tags")))


def stats(daemon: DaemonProcess) -> dict:
    found = [s for s in httpx.get(daemon.url + API + "/debug/vars").json()["kapacitor"]
             .values() if s["name"] == "opentsdb"]
    assert len(found) == 1
    return found[0]


def telnet(port: int, data: bytes, *, answer: bool = False) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(5)
        received = b""
        while chunk := conn.recv(4096):
            received += chunk
        return received


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def daemon(port: int):
    config = {"opentsdb": {"enabled": True, "bind-address": f"127.0.0.1:{port}",
                           "database": "tsdb", "retention-policy": "autogen"}}
    with DaemonProcess(config) as process:
        process.wait_for_log(rf'msg=listening .*address=127.0.0.1:{port}')
        yield process


def test_telnet_puts_reach_a_task(daemon: DaemonProcess, port: int) -> None:
    define(daemon, "cpu", "sys.cpu")
    define(daemon, "ms", "ms")
    answer = telnet(port, b"put sys.cpu 1356998400 42.5 host=web01 cpu=0\r\n"
                          b"put sys.cpu 1356998401 -1e3 host=web02 host=web03\n"
                          b"version\n"
                          b"put ms 1356998400123 7 host=a\n"
                          b"put sys.cpu 1356998402 1 host=web04")  # no last newline
    assert answer == b"InfluxDB TSDB proxy"
    wait_until(lambda: len(series(daemon, "cpu")) == 3, what="three series")
    assert series(daemon, "cpu") == [
        {"name": "sys.cpu", "tags": {"cpu": "0", "host": "web01"}, "columns": ["time", "value"],
         "values": [["2013-01-01T00:00:00Z", 42.5]]},
        {"name": "sys.cpu", "tags": {"host": "web03"}, "columns": ["time", "value"],
         "values": [["2013-01-01T00:00:01Z", -1000.0]]},
        {"name": "sys.cpu", "tags": {"host": "web04"}, "columns": ["time", "value"],
         "values": [["2013-01-01T00:00:02Z", 1.0]]}]
    # milliseconds are milliseconds (Kapacitor 1.5.7 gives ...00.000123Z)
    wait_until(lambda: series(daemon, "ms"), what="the millisecond point")
    assert series(daemon, "ms")[0]["values"] == [["2013-01-01T00:00:00.123Z", 7.0]]
    ingress = httpx.get(daemon.url + API + "/debug/vars").json()["kapacitor"]
    assert ingress["ingress:tsdb:autogen:sys.cpu"]["values"]["points_received"] == 3
    values = wait_until(lambda: stats(daemon)["values"]["pointsTx"] >= 4
                        and stats(daemon)["values"], what="statistics")
    assert values["tlPointsRx"] >= 5 and values["tlConnsHandled"] >= 1
    assert values["tlBytesRx"] > 100 and values["tlConnsActive"] == 0


def test_bad_telnet_lines_are_counted_and_logged(daemon: DaemonProcess, port: int) -> None:
    define(daemon, "bad", "bad")
    before = stats(daemon)["values"]
    telnet(port, b"\n".join([
        b"get x",                                  # not a put: bad line
        b"put bad 1356998400",                     # too short: bad line
        b"put bad 12345678ab 1 host=t",            # bad time
        b"put bad 135699840 1 host=t",             # 9 digits: bad time
        b"put bad 1356998400 oops host=t",         # bad float
        b"put bad 1356998400 NaN host=t",          # bad float
        b"put bad 1356998400 +Inf host=t",         # bad float (it stops Kapacitor)
        b"put bad 1356998400 1e400 host=t",        # bad float
        b"put bad 1356998401 5 host=ok bogus =x y=",  # three bad tags, the point kept
        b"\xff\xfe\x00 garbage",
    ]) + b"\n")
    wait_until(lambda: series(daemon, "bad"), what="the good point")
    assert series(daemon, "bad") == [{"name": "bad", "tags": {"host": "ok"},
                                      "columns": ["time", "value"],
                                      "values": [["2013-01-01T00:00:01Z", 5.0]]}]
    after = wait_until(lambda: stats(daemon)["values"]["tlBadTag"] >= before["tlBadTag"] + 3
                       and stats(daemon)["values"], what="the bad lines counted")
    delta = {k: after[k] - before[k] for k in ("tlBadLine", "tlBadTime", "tlBadFloat",
                                               "tlBadTag", "tlPointsRx")}
    assert delta == {"tlBadLine": 3, "tlBadTime": 2, "tlBadFloat": 4, "tlBadTag": 3,
                     "tlPointsRx": 10}
    log = daemon.log()
    assert 'msg="malformed line"' in log and 'msg="bad float"' in log
    assert httpx.get(daemon.url + API + "/ping").status_code == 204


def test_http_put_a_point_and_an_array(daemon: DaemonProcess, port: int) -> None:
    define(daemon, "h1", "h1")
    define(daemon, "h2", "h2")
    url = f"http://127.0.0.1:{port}/api/put"
    with httpx.Client() as client:  # one keep-alive connection for both
        one = client.post(url, json={"metric": "h1", "timestamp": 1356998400, "value": 5,
                                     "tags": {"host": "a"}})
        many = client.post(url, content=gzip.compress(json.dumps([
            {"metric": "h2", "timestamp": 1356998400500, "value": 6, "tags": {"host": "a"}},
            {"Metric": "h2", "timestamp": 1356998401, "value": 7.5}]).encode()),
            headers={"Content-Encoding": "gzip"})
    assert (one.status_code, one.content, many.status_code) == (204, b"", 204)
    wait_until(lambda: series(daemon, "h1") and len(series(daemon, "h2")) == 2,
               what="the HTTP points")
    assert series(daemon, "h1")[0]["values"] == [["2013-01-01T00:00:00Z", 5.0]]
    assert series(daemon, "h2") == [
        {"name": "h2", "columns": ["time", "value"],
         "values": [["2013-01-01T00:00:01Z", 7.5]]},
        {"name": "h2", "tags": {"host": "a"}, "columns": ["time", "value"],
         "values": [["2013-01-01T00:00:00.5Z", 6.0]]}]
    values = stats(daemon)["values"]
    assert values["httpPointsTx"] >= 3 and values["httpConnsHandled"] >= 1


#: (method, path, body, status, text) as Kapacitor 1.5.7 answered them.
KAPACITOR_ANSWERS = [
    ("POST", "/api/put", b"nope", 400, "expected JSON array or hash\n"),
    ("POST", "/api/put", b"{bad", 400, "json object decode error\n"),
    ("POST", "/api/put", b"[{bad", 400, "json array decode error\n"),
    ("POST", "/api/put", b"", 400, "peek error: EOF\n"),
    ("POST", "/api/put", b'{"metric":"x","timestamp":1356998400.5,"value":5}', 400,
     "json object decode error\n"),
    ("POST", "/api/put", b'{"metric":"x","timestamp":"1356998400","value":5}', 400,
     "json object decode error\n"),
    ("POST", "/api/put", b'[{"metric":"x","timestamp":1356998402,"value":"NaN"}]', 400,
     "json array decode error\n"),
    ("POST", "/api/put", b"[]", 204, ""),
    ("GET", "/api/put", None, 405, "Method Not Allowed\n"),
    ("POST", "/api/metadata/put", b"{}", 204, ""),
    ("GET", "/other", None, 404, "404 page not found\n"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "text"), KAPACITOR_ANSWERS)
def test_http_answers_as_kapacitor(daemon: DaemonProcess, port: int, method: str,
                                   path: str, body: bytes | None, status: int,
                                   text: str) -> None:
    response = httpx.request(method, f"http://127.0.0.1:{port}{path}", content=body)
    assert (response.status_code, response.text) == (status, text)
    if status >= 400:
        assert response.headers["content-type"] == "text/plain; charset=utf-8"


def test_http_details_and_summary_answer_as_opentsdb(daemon: DaemonProcess,
                                                     port: int) -> None:
    define(daemon, "det", "det")
    url = f"http://127.0.0.1:{port}/api/put"
    good = {"metric": "det", "timestamp": 1356998400, "value": 1, "tags": {"host": "a"}}
    bad = [{"metric": "det", "timestamp": 1356998400, "value": "NaN", "tags": {"host": "b"}},
           {"metric": "", "timestamp": 1356998400, "value": 1},
           {"metric": "det", "value": 1},
           {"metric": "det", "timestamp": 1356998400},
           {"metric": "det", "timestamp": 1356998400, "value": 1, "tags": {"host": 5}}]
    summary = httpx.post(url + "?summary", json=[good])
    assert (summary.status_code, summary.json()) == (200, {"failed": 0, "success": 1})
    assert summary.headers["content-type"] == "application/json"
    details = httpx.post(url + "?details", json=[good, *bad])
    assert details.status_code == 400
    assert details.json() == {"errors": [
        {"datapoint": bad[0], "error": "Unable to parse value to a number"},
        {"datapoint": bad[1], "error": "Metric name was empty"},
        {"datapoint": bad[2], "error": "Invalid timestamp"},
        {"datapoint": bad[3], "error": "Empty value"},
        {"datapoint": bad[4], "error": "Invalid tags"}], "failed": 5, "success": 1}
    single = httpx.post(url + "?details", json=good)
    assert single.json() == {"errors": [], "failed": 0, "success": 1}
    wait_until(lambda: series(daemon, "det"), what="the good points")
    assert [s["tags"] for s in series(daemon, "det")] == [{"host": "a"}]


def test_tls_serves_telnet_and_http(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    pem = tmp_path / "both.pem"
    pem.write_text(cert.read_text() + key.read_text())
    port = free_port()
    with DaemonProcess({"opentsdb": {
            "enabled": True, "bind-address": f"127.0.0.1:{port}", "database": "tsdb",
            "retention-policy": "autogen", "tls-enabled": True,
            "certificate": str(pem), "log-point-errors": False}}) as daemon:
        daemon.wait_for_log("msg=\"listening on TLS\"")
        define(daemon, "tls", "tls")
        context = ssl.create_default_context(cafile=str(cert))
        with socket.create_connection(("127.0.0.1", port)) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
            conn.sendall(b"put tls 1356998400 1 via=telnet\nnot a put line\n")
        answer = httpx.post(f"https://127.0.0.1:{port}/api/put", verify=context,
                            json={"metric": "tls", "timestamp": 1356998401, "value": 2,
                                  "tags": {"via": "http"}})
        assert answer.status_code == 204
        wait_until(lambda: len(series(daemon, "tls")) == 2, what="both TLS points")
        # log-point-errors = false: the bad line is counted, not logged
        assert stats(daemon)["values"]["tlBadLine"] == 1
        assert 'msg="malformed line"' not in daemon.log()
        # a client that does not speak TLS is counted, and the listener goes on
        with socket.create_connection(("127.0.0.1", port)) as plain:
            plain.sendall(b"put tls 1356998402 3 via=plain\n")
            plain.settimeout(5)
            try:
                plain.recv(100)
            except OSError:
                pass
        wait_until(lambda: stats(daemon)["values"]["tlsHandshakeErr"] == 1,
                   what="the failed handshake counted")
        assert len(series(daemon, "tls")) == 2


def test_a_missing_certificate_stops_startup_naming_the_section(tmp_path: Path) -> None:
    daemon = DaemonProcess({"opentsdb": {
        "enabled": True, "bind-address": "127.0.0.1:0", "tls-enabled": True,
        "certificate": str(tmp_path / "missing.pem")}}, ready_timeout=20)
    with pytest.raises(RuntimeError, match="did not become ready") as raised:
        daemon.start()
    daemon.close()
    assert "opentsdb" in str(raised.value)
    assert "missing.pem" in str(raised.value)


def test_a_thousand_connections_and_100mb_without_newline(daemon: DaemonProcess,
                                                         port: int) -> None:
    define(daemon, "flood", "flood")
    before = stats(daemon)["values"]
    conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(1000)]
    try:
        wait_until(lambda: stats(daemon)["values"]["connsActive"] >= 1000,
                   what="1,000 open connections")
        sent = threading.Event()
        errors: list[BaseException] = []

        def flood() -> None:
            try:
                with socket.create_connection(("127.0.0.1", port)) as big:
                    chunk = b"x" * (1 << 20)
                    for _ in range(100):
                        big.sendall(chunk)
                    big.sendall(b"\nput flood 1356998400 1 after=long\n")
            except BaseException as exc:  # reported below
                errors.append(exc)
            finally:
                sent.set()

        thread = threading.Thread(target=flood)
        thread.start()
        pings = 0
        while not sent.is_set():  # the API and the listener answer during the flood
            assert httpx.get(daemon.url + API + "/ping", timeout=5).status_code == 204
            assert telnet(port, b"version\n") == b"InfluxDB TSDB proxy"
            pings += 1
            time.sleep(0.05)
        thread.join()
        assert not errors and pings > 0
        wait_until(lambda: series(daemon, "flood"), what="the line after the long one")
        values = stats(daemon)["values"]
        assert values["linesTooLong"] == before["linesTooLong"] + 1
        assert values["tlBytesRx"] - before["tlBytesRx"] > 100 * (1 << 20)
        # the 1,000 idle connections still work
        conns[-1].sendall(b"put flood 1356998401 2 after=idle\n")
        wait_until(lambda: len(series(daemon, "flood")) == 2, what="a point from an idle one")
    finally:
        for conn in conns:
            conn.close()
    wait_until(lambda: stats(daemon)["values"]["connsActive"] == 0,
               what="the connections closed")


def test_a_port_in_use_stops_startup_and_shutdown_closes_the_socket() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        daemon = DaemonProcess({"opentsdb": {"enabled": True,
                                             "bind-address": f"127.0.0.1:{port}"}},
                               ready_timeout=20)
        with pytest.raises(RuntimeError, match="did not become ready") as raised:
            daemon.start()
        daemon.close()
    assert "opentsdb" in str(raised.value) and "address already in use" in \
        str(raised.value).lower()
    port = free_port()
    with DaemonProcess({"opentsdb": {"enabled": True,
                                     "bind-address": f"127.0.0.1:{port}"}}) as daemon:
        daemon.wait_for_log("msg=listening")
        open_conn = socket.create_connection(("127.0.0.1", port))
        assert daemon.stop() == 0
    open_conn.settimeout(5)
    assert open_conn.recv(10) == b""  # closed by the daemon
    open_conn.close()
    with pytest.raises(ConnectionRefusedError):  # nothing listens any more
        socket.create_connection(("127.0.0.1", port), timeout=5).close()

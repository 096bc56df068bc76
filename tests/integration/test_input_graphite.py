"""``[[graphite]]`` listeners through the real daemon: plaintext lines over TCP and UDP,
mapped by templates, separator and default tags, reach tasks as a ``/write`` would,
with InfluxDB's graphite statistic names; bad lines are counted and logged, never
fatal; a 100 MB line without a newline is cut off while the API keeps answering; a
port in use stops startup naming the element; bad templates stop it with InfluxDB's
words."""

from __future__ import annotations

import json
import socket
import threading

import httpx
import pytest

from kapa_core.testing import DaemonProcess, wait_until

pytestmark = pytest.mark.integration

API = "/kapacitor/v1"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def define(daemon: DaemonProcess, task_id: str, db: str, measurement: str) -> None:
    script = (f'dbrp "{db}"."autogen"\nstream|from().measurement(\'{measurement}\')'
              ".groupBy(*)|httpOut('out')")
    response = httpx.post(daemon.url + API + "/tasks", json={
        "id": task_id, "type": "stream", "script": script, "status": "enabled"})
    assert response.status_code == 200, response.text


def series(daemon: DaemonProcess, task_id: str) -> list[dict]:
    out = httpx.get(f"{daemon.url}{API}/tasks/{task_id}/out").json()
    return sorted(out.get("series") or [], key=lambda s: json.dumps(s.get("tags")))


def graphite_stats(daemon: DaemonProcess) -> dict[str, dict]:
    found = httpx.get(daemon.url + API + "/debug/vars").json()["kapacitor"].values()
    return {s["tags"]["proto"]: s["values"] for s in found if s["name"] == "graphite"}


def send_tcp(port: int, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(data)


TEMPLATES = ["servers.* .host.measurement.field*",
             "*.app env.service.resource.measurement region=eu",
             "stats.* .host.measurement* type=stat",
             "measurement.measurement.region"]


@pytest.fixture(scope="module")
def ports() -> tuple[int, int]:
    return free_port(), free_port(socket.SOCK_DGRAM)


@pytest.fixture(scope="module")
def daemon(ports: tuple[int, int]):
    tcp, udp = ports
    config = {"graphite": [
        {"enabled": True, "bind-address": f"127.0.0.1:{tcp}", "database": "gtcp",
         "retention-policy": "autogen", "separator": "_", "templates": TEMPLATES,
         "tags": ["dc=us-west", "region=default"]},
        {"enabled": True, "bind-address": f"127.0.0.1:{udp}", "database": "gudp",
         "retention-policy": "autogen", "protocol": "udp", "udp-read-buffer": 1048576,
         "templates": ["measurement.host.field"]},
    ]}
    with DaemonProcess(config) as process:
        process.wait_for_log(rf'msg="started graphite service" .*address=127.0.0.1:{udp}')
        yield process


def test_tcp_lines_mapped_by_templates_reach_tasks(daemon: DaemonProcess,
                                                   ports: tuple[int, int]) -> None:
    tcp, _ = ports
    define(daemon, "cpu", "gtcp", "cpu")
    define(daemon, "req", "gtcp", "req")
    define(daemon, "stat", "gtcp", "requests_count")
    define(daemon, "mem", "gtcp", "mem_free")
    send_tcp(tcp, b"servers.web01.cpu.user.total 1.5 1356998400\n"
                  b"servers.web02.cpu.idle 98 1356998400.25\n"
                  b"prod.app.web.req 3 1356998400\n"
                  b"stats.h3.requests.count 4 1356998400\n"
                  b"mem.free.eu 5 1356998400\n"
                  b"mem.free.eu 6 1356998401")  # no newline: dropped, as InfluxDB does
    wait_until(lambda: len(series(daemon, "cpu")) == 2 and series(daemon, "mem"),
               what="the TCP points")
    assert series(daemon, "cpu") == [
        {"name": "cpu", "tags": {"dc": "us-west", "host": "web01", "region": "default"},
         "columns": ["time", "user_total"], "values": [["2013-01-01T00:00:00Z", 1.5]]},
        {"name": "cpu", "tags": {"dc": "us-west", "host": "web02", "region": "default"},
         "columns": ["time", "idle"], "values": [["2013-01-01T00:00:00.25Z", 98.0]]}]
    wait_until(lambda: series(daemon, "req") and series(daemon, "stat"), what="all points")
    assert series(daemon, "req") == [
        {"name": "req", "tags": {"dc": "us-west", "env": "prod", "region": "eu",
                                 "resource": "web", "service": "app"},
         "columns": ["time", "value"], "values": [["2013-01-01T00:00:00Z", 3.0]]}]
    assert series(daemon, "stat") == [
        {"name": "requests_count", "tags": {"dc": "us-west", "host": "h3",
                                            "region": "default", "type": "stat"},
         "columns": ["time", "value"], "values": [["2013-01-01T00:00:00Z", 4.0]]}]
    assert series(daemon, "mem") == [
        {"name": "mem_free", "tags": {"dc": "us-west", "region": "eu"},
         "columns": ["time", "value"], "values": [["2013-01-01T00:00:00Z", 5.0]]}]
    ingress = httpx.get(daemon.url + API + "/debug/vars").json()["kapacitor"]
    assert ingress["ingress:gtcp:autogen:cpu"]["values"]["points_received"] == 2
    values = wait_until(lambda: graphite_stats(daemon)["tcp"]["pointsTx"] >= 5
                        and graphite_stats(daemon)["tcp"], what="statistics")
    assert values["pointsRx"] >= 5 and values["connsHandled"] >= 1
    assert values["bytesRx"] > 100 and values["batchesTx"] >= 1


def test_udp_datagrams_reach_a_task(daemon: DaemonProcess, ports: tuple[int, int]) -> None:
    _, udp = ports
    define(daemon, "udp", "gudp", "load")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"load.h1.shortterm 0.5 1356998400\nload.h2.shortterm 0.7 1356998400\n",
                 ("127.0.0.1", udp))
        s.sendto(b"load.h3.longterm 0.25 1356998401", ("127.0.0.1", udp))  # no newline
        s.sendto(b"load.h1 oops 1356998401\nload.h9 NaN 1\n", ("127.0.0.1", udp))
    wait_until(lambda: len(series(daemon, "udp")) == 3, what="the UDP points")
    assert series(daemon, "udp") == [
        {"name": "load", "tags": {"host": "h1"}, "columns": ["time", "shortterm"],
         "values": [["2013-01-01T00:00:00Z", 0.5]]},
        {"name": "load", "tags": {"host": "h2"}, "columns": ["time", "shortterm"],
         "values": [["2013-01-01T00:00:00Z", 0.7]]},
        {"name": "load", "tags": {"host": "h3"}, "columns": ["time", "longterm"],
         "values": [["2013-01-01T00:00:01Z", 0.25]]}]
    values = wait_until(lambda: graphite_stats(daemon)["udp"]["pointsNaNFail"] == 1
                        and graphite_stats(daemon)["udp"], what="UDP statistics")
    assert (values["pointsTx"], values["pointsParseFail"]) == (3, 1)
    assert values["bytesRx"] > 100


def test_bad_lines_are_counted_and_logged(daemon: DaemonProcess,
                                          ports: tuple[int, int]) -> None:
    tcp, _ = ports
    define(daemon, "ok", "gtcp", "after_ok")
    before = graphite_stats(daemon)["tcp"]
    send_tcp(tcp, b"only.a.path\n"
                  b"x.y oops 1356998400\n"
                  b"x.y 1 N\n"
                  b"x.y 1 3000000000\n"
                  b"x.y NaN 1356998400\n"
                  b"\xff\xfe 1 2 3 4\n"
                  b"after.ok 1 1356998400\n")
    wait_until(lambda: series(daemon, "ok"), what="the good line")
    values = wait_until(lambda: graphite_stats(daemon)["tcp"]["pointsNaNFail"]
                        > before["pointsNaNFail"] and graphite_stats(daemon)["tcp"],
                        what="counted")
    assert values["pointsParseFail"] - before["pointsParseFail"] == 5
    assert values["pointsNaNFail"] - before["pointsNaNFail"] == 1
    assert 'msg="unable to parse line"' in daemon.log()
    assert httpx.get(daemon.url + API + "/ping").status_code == 204


def test_100mb_without_newline_is_cut_off_while_the_api_answers(
        daemon: DaemonProcess, ports: tuple[int, int]) -> None:
    tcp, _ = ports
    define(daemon, "long", "gtcp", "long_path")
    before = graphite_stats(daemon)["tcp"]
    done = threading.Event()

    def flood() -> None:
        try:
            with socket.create_connection(("127.0.0.1", tcp)) as conn:
                chunk = b"y" * (1 << 20)
                for _ in range(100):
                    conn.sendall(chunk)
                conn.sendall(b"\nlong.path 1 1356998400\n")
        finally:
            done.set()

    thread = threading.Thread(target=flood)
    thread.start()
    answered = 0
    while not done.is_set():
        assert httpx.get(daemon.url + API + "/ping", timeout=5).status_code == 204
        answered += 1
    thread.join()
    assert answered > 0
    wait_until(lambda: series(daemon, "long"), what="the line after the long one")
    values = graphite_stats(daemon)["tcp"]
    assert values["linesTooLong"] - before["linesTooLong"] == 1
    assert values["bytesRx"] - before["bytesRx"] > 100 * (1 << 20)


def test_a_port_in_use_stops_startup_naming_the_element() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        daemon = DaemonProcess({"graphite": [{"enabled": True,
                                              "bind-address": f"127.0.0.1:{port}"}]},
                               ready_timeout=20)
        with pytest.raises(RuntimeError, match="did not become ready") as raised:
            daemon.start()
        daemon.close()
    assert f"graphite[0] (127.0.0.1:{port})" in str(raised.value)


def test_bad_templates_stop_startup_with_influxdbs_words() -> None:
    daemon = DaemonProcess({"graphite": [{"enabled": True, "bind-address": "127.0.0.1:0",
                                          "templates": ["host.field"]}]}, ready_timeout=20)
    with pytest.raises(RuntimeError) as raised:
        daemon.start()
    daemon.close()
    assert "no measurement in template `host.field`" in str(raised.value)


def test_shutdown_closes_the_sockets() -> None:
    tcp, udp = free_port(), free_port(socket.SOCK_DGRAM)
    with DaemonProcess({"graphite": [
            {"enabled": True, "bind-address": f"127.0.0.1:{tcp}"},
            {"enabled": True, "bind-address": f"127.0.0.1:{udp}", "protocol": "udp"}]}) \
            as daemon:
        daemon.wait_for_log(rf'msg="started graphite service" .*address=127.0.0.1:{udp}')
        client = socket.create_connection(("127.0.0.1", tcp))
        assert daemon.stop() == 0
    client.settimeout(5)
    assert client.recv(10) == b""
    client.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", tcp), timeout=5).close()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(("127.0.0.1", udp))  # free again

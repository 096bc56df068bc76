"""``[[udp]]`` listeners through the real daemon: line protocol in datagrams sent over
real sockets reaches tasks as a ``/write`` would, with Kapacitor's ``udp`` statistics;
bad lines and oversized or garbage datagrams are counted, never fatal; a port in use
stops startup naming the element; shutdown closes the sockets."""

from __future__ import annotations

import re
import socket
import time

import httpx
import pytest

from kapa_core.testing import DaemonProcess, wait_until

pytestmark = pytest.mark.integration

API = "/kapacitor/v1"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send(port: int, *datagrams: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for data in datagrams:
            s.sendto(data, ("127.0.0.1", port))


def define(daemon: DaemonProcess, task_id: str, db: str, measurement: str) -> None:
    script = (f'dbrp "{db}"."autogen"\nstream|from().measurement(\'{measurement}\')'
              ".groupBy('host')|httpOut('out')")
    response = httpx.post(daemon.url + API + "/tasks", json={
        "id": task_id, "type": "stream", "script": script, "status": "enabled"})
    assert response.status_code == 200, response.text


def series(daemon: DaemonProcess, task_id: str) -> dict[str, list]:
    out = httpx.get(f"{daemon.url}{API}/tasks/{task_id}/out").json()
    return {s["tags"]["host"]: s["values"] for s in out.get("series") or []}


def udp_stats(daemon: DaemonProcess) -> dict[str, dict]:
    stats = httpx.get(daemon.url + API + "/debug/vars").json()["kapacitor"]
    return {s["tags"]["bind"]: s["values"] for s in stats.values() if s["name"] == "udp"}


@pytest.fixture(scope="module")
def ports() -> tuple[int, int]:
    return free_udp_port(), free_udp_port()


@pytest.fixture(scope="module")
def daemon(ports: tuple[int, int]):
    first, second = ports
    config = {"udp": [
        {"enabled": True, "bind-address": f"127.0.0.1:{first}", "database": "udpdb",
         "retention-policy": "autogen"},
        {"enabled": True, "bind-address": f"127.0.0.1:{second}", "database": "secs",
         "retention-policy": "autogen", "precision": "s", "read-buffer": 1048576},
        {"enabled": False, "bind-address": "127.0.0.1:1", "database": "off"},
    ]}
    with DaemonProcess(config) as process:
        process.wait_for_log(rf'msg="started listening on UDP" .*address=127.0.0.1:{second}')
        yield process


def test_lines_in_datagrams_reach_a_task(daemon: DaemonProcess, ports: tuple[int, int]
                                         ) -> None:
    first, second = ports
    define(daemon, "udp1", "udpdb", "cpu")
    define(daemon, "udp2", "secs", "cpu")
    send(first, b"cpu,host=a value=1 1000000000\ncpu,host=b value=2 2000000000",
         b"cpu,host=a value=3 3000000000\n")
    send(second, b"cpu,host=c value=4 4\n")  # seconds
    wait_until(lambda: len(series(daemon, "udp1")) == 2 and series(daemon, "udp1")["a"][0][1] == 3,
               what="the first listener's points")
    assert series(daemon, "udp1") == {"a": [["1970-01-01T00:00:03Z", 3.0]],
                                      "b": [["1970-01-01T00:00:02Z", 2.0]]}
    wait_until(lambda: series(daemon, "udp2"), what="the second listener's point")
    assert series(daemon, "udp2") == {"c": [["1970-01-01T00:00:04Z", 4.0]]}
    stats = wait_until(lambda: udp_stats(daemon).get(f"127.0.0.1:{first}", {}).get(
        "points_tx") == 3 and udp_stats(daemon), what="udp statistics")
    values = stats[f"127.0.0.1:{first}"]
    assert (values["points_rx"], values["points_tx"]) == (3, 3)
    assert values["bytes_rx"] > 60
    ingress = httpx.get(daemon.url + API + "/debug/vars").json()["kapacitor"]
    assert ingress["ingress:udpdb:autogen:cpu"]["values"]["points_received"] == 3


def test_bad_datagrams_are_counted_and_the_good_lines_kept(
        daemon: DaemonProcess, ports: tuple[int, int]) -> None:
    first, _ = ports
    define(daemon, "udpbad", "udpdb", "mem")
    before = udp_stats(daemon)[f"127.0.0.1:{first}"].get("points_parse_fail", 0)
    send(first, b"mem,host=x value=oops 1\nmem,host=y value=7 7000000000\n",
         b"\xff\xfe garbage \x00\n", b"", b"mem,host=z value=" + b"9" * 60000)
    wait_until(lambda: "y" in series(daemon, "udpbad"), what="the good line")
    stats = wait_until(lambda: udp_stats(daemon)[f"127.0.0.1:{first}"].get(
        "points_parse_fail", 0) >= before + 2 and udp_stats(daemon), what="parse failures")
    assert stats[f"127.0.0.1:{first}"]["points_parse_fail"] >= before + 2
    assert "x" not in series(daemon, "udpbad")
    assert 'msg="failed to parse points"' in daemon.log()
    assert httpx.get(daemon.url + API + "/ping").status_code == 204


def test_a_flood_of_datagrams_is_received(daemon: DaemonProcess, ports: tuple[int, int]
                                          ) -> None:
    first, _ = ports
    define(daemon, "udpflood", "udpdb", "flood")
    body = b"\n".join(b"flood,host=h%d value=%d %d" % (i % 10, i, i + 1) for i in range(50))
    before = udp_stats(daemon)[f"127.0.0.1:{first}"].get("points_tx", 0)
    for _ in range(40):
        send(first, *(body for _ in range(10)))
        time.sleep(0.005)
    wait_until(lambda: udp_stats(daemon)[f"127.0.0.1:{first}"].get("points_tx", 0)
               >= before + 20000 * 0.9, what="most of 20,000 points")
    assert len(series(daemon, "udpflood")) == 10


def test_the_disabled_element_does_not_listen(daemon: DaemonProcess) -> None:
    assert not re.search(r"started listening on UDP .*127\.0\.0\.1:1\b", daemon.log())
    assert len(udp_stats(daemon)) == 2


def test_a_port_in_use_stops_startup_and_shutdown_closes_the_socket() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        daemon = DaemonProcess({"udp": [{"enabled": True, "bind-address":
                                         f"127.0.0.1:{port}", "database": "d"}]},
                               ready_timeout=20)
        with pytest.raises(RuntimeError, match="did not become ready") as raised:
            daemon.start()
        daemon.close()
    assert "input listener udp[0] (127.0.0.1:" in str(raised.value)
    port = free_udp_port()
    with DaemonProcess({"udp": [{"enabled": True, "bind-address": f"127.0.0.1:{port}",
                                 "database": "d"}]}) as daemon:
        daemon.wait_for_log("started listening on UDP")
        assert daemon.stop() == 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(("127.0.0.1", port))  # free again


def test_an_override_reopens_only_that_listener() -> None:
    # A kapa-core addition: Kapacitor's listener sections cannot be overridden.
    first, second = free_udp_port(), free_udp_port()
    config = {"udp": [
        {"enabled": True, "bind-address": f"127.0.0.1:{first}", "database": "one",
         "retention-policy": "autogen"},
        {"enabled": True, "bind-address": f"127.0.0.1:{second}", "database": "two",
         "retention-policy": "autogen"}]}
    with DaemonProcess(config) as daemon:
        daemon.wait_for_log(rf'msg="started listening on UDP" .*address=127.0.0.1:{second}')
        define(daemon, "moved", "moved", "cpu")
        response = httpx.post(f"{daemon.url}{API}/config/udp/127.0.0.1:{first}",
                              json={"set": {"database": "moved"}})
        assert response.status_code == 204, response.text
        daemon.wait_for_log(rf'msg="started listening on UDP" .*address=127.0.0.1:{first}',
                            count=2)
        send(first, b"cpu,host=a value=1 1000000000\n")
        wait_until(lambda: series(daemon, "moved"), what="a point into the new database")
        log = daemon.log()
        assert log.count('msg="started listening on UDP"') == 3  # the other one stayed
        view = httpx.get(f"{daemon.url}{API}/config/udp/127.0.0.1:{first}").json()
        assert view["options"]["database"] == "moved"


#: Three datagrams and what kapacitord 1.5.7 published for them in /debug/vars (taken
#: from it): Kapacitor drops the datagram with a bad line whole; kapa-core keeps its good
#: line, so it counts one point more received and sent.
ORACLE_DATAGRAMS = (b"cpu,host=a value=1 1000000000\ncpu,host=b value=2 2000000000",
                    b"cpu,host=a value=3 3000000000\n",
                    b"mem,host=x value=oops 1\nmem,host=y value=7 7000000000\n")
KAPACITOR_STATS = {"points_tx": 3, "points_rx": 3, "points_parse_fail": 1, "bytes_rx": 143}


def test_statistics_as_kapacitor_publishes_them() -> None:
    port = free_udp_port()
    with DaemonProcess({"udp": [{"enabled": True, "bind-address": f"127.0.0.1:{port}",
                                 "database": "udpdb", "retention-policy": "autogen"}]}
                       ) as daemon:
        daemon.wait_for_log("started listening on UDP")
        for datagram in ORACLE_DATAGRAMS:  # one at a time: one burst each
            send(port, datagram)
            time.sleep(0.2)
        got = wait_until(lambda: udp_stats(daemon)[f"127.0.0.1:{port}"],
                         until=lambda v: v.get("points_tx") == 4, what="udp statistics")
        stats = httpx.get(daemon.url + API + "/debug/vars").json()["kapacitor"]
        [stat] = [s for s in stats.values() if s["name"] == "udp"]
    assert set(stat["tags"]) == {"bind", "host", "cluster_id", "server_id"}
    assert stat["tags"]["bind"] == f"127.0.0.1:{port}"
    kept = 1  # the good line of the bad datagram
    assert got == {**KAPACITOR_STATS, "points_tx": 3 + kept, "points_rx": 3 + kept}

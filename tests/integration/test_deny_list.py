"""``-blacklist-cidrs`` end to end: denied API clients, refused outgoing connections.

Both senses of the flag are exercised through the real daemon on 127.0.0.1. Where a test
needs an API client that is *not* denied while 127.0.0.1 is, the client binds its source
address to 127.0.0.2 (still the loopback interface).
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import trio

from kapa_core.daemon import parse_cidrs
from kapa_core.denylist import DenyList, OutgoingDenied
from kapa_core.influxdb.client import ClusterClient, ConnectionFailed
from kapa_core.influxdb.config import InfluxDBConfig
from kapa_core.influxdb.write import WriteFailed, write
from kapa_core.testing import DaemonProcess, TCPRecorder, wait_until
from kapa_core.testing import RecordingHTTPServer as HTTPRecorder

pytestmark = pytest.mark.integration

OTHER_LOOPBACK = "127.0.0.2"
V1 = "/kapacitor/v1"
SCRIPT = """stream
    |from()
        .measurement('cpu')
    |httpPost('{node_url}')
    |alert()
        .crit(lambda: TRUE)
        .topic('deny')
        .post('{alert_url}')
        .tcp('{tcp_address}')
"""

# (method, path, body): API operations a denied client tries.
OPERATIONS = [
    ("GET", V1 + "/tasks", None),
    ("POST", V1 + "/tasks", {"id": "t", "type": "stream", "dbrps": [{"db": "d", "rp": "r"}],
                             "script": "stream|from()"}),
    ("PATCH", V1 + "/tasks/t", {"status": "enabled"}),
    ("DELETE", V1 + "/tasks/t", None),
    ("POST", V1 + "/write?db=d", b"cpu v=1"),
    ("POST", "/write?db=d", b"cpu v=1"),
    ("GET", V1 + "/config", None),
    ("POST", V1 + "/config/smtp", {"set": {"host": "mail"}}),
    ("GET", V1 + "/alerts/topics", None),
    ("GET", V1 + "/debug/vars", None),
    ("GET", V1 + "/:routes", None),
    ("GET", "/kapacitor/v1preview/templates", None),
    ("GET", V1 + "/service-tests", None),
    ("GET", "/no/such/path", None),
]


def client_from(source: str) -> httpx.Client:
    """An HTTP client whose connections come from the loopback address ``source``."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=10)


def do(client: httpx.Client, method: str, url: str, body: object) -> httpx.Response:
    if isinstance(body, bytes):
        return client.request(method, url, content=body)
    return client.request(method, url, json=body)


def denylist_stats(daemon: DaemonProcess, client: httpx.Client) -> dict[str, int]:
    stats = client.get(daemon.url + V1 + "/debug/vars").json()["kapacitor"]
    return stats["denylist"]["values"]


# -- incoming: API clients in a listed range ----------------------------------------------

def test_client_in_denied_range_gets_403_json_and_is_logged() -> None:
    with DaemonProcess(args=["-blacklist-cidrs", "127.0.0.0/8"]) as daemon, \
            client_from("127.0.0.1") as client:
        for method, path, body in OPERATIONS:
            response = do(client, method, daemon.url + path, body)
            assert response.status_code == 403, (method, path, response.text)
            assert response.json() == {"error": "access denied for client address 127.0.0.1"}
            assert response.headers["Content-Type"].startswith("application/json")
            assert response.headers["X-Kapacitor-Version"]
        # The liveness probe stays open: it reveals nothing.
        assert client.get(daemon.url + V1 + "/ping").status_code == 204
        assert client.head(daemon.url + V1 + "/ping").status_code == 204
        line = daemon.wait_for_log(r'msg="request denied.*client=127\.0\.0\.1')
        assert "127.0.0.0/8" in line and "lvl=warn" in line
        daemon.wait_for_text('msg="request denied', count=len(OPERATIONS))
        # The pings came after every denied request and were not denied.
        daemon.wait_for_log(r'msg="http request" .*method=HEAD .*uri=/kapacitor/v1/ping')
        denied = [ln for ln in daemon.log().splitlines() if "request denied" in ln]
        assert len(denied) == len(OPERATIONS)
        assert daemon.proc is not None and daemon.proc.poll() is None


def test_client_outside_the_ranges_is_served() -> None:
    with DaemonProcess(args=["-blacklist-cidrs", "10.0.0.0/8,192.0.2.0/24,fc00::/7"]) \
            as daemon, client_from("127.0.0.1") as client:
        created = client.post(daemon.url + V1 + "/tasks", json=OPERATIONS[1][2])
        assert created.status_code == 200, created.text
        assert client.get(daemon.url + V1 + "/tasks").json()["tasks"][0]["id"] == "t"
        assert client.post(daemon.url + "/write?db=d", content=b"cpu v=1").status_code == 204
        assert client.get(daemon.url + V1 + "/config").status_code == 200
        assert denylist_stats(daemon, client) == {"outgoing_refused": 0,
                                                  "incoming_refused": 0}
        # The access log line of the last request: anything logged before it has been read.
        daemon.wait_for_log(r'msg="http request" .*uri=/kapacitor/v1/debug/vars')
        assert "request denied" not in daemon.log()


def test_only_the_listed_address_is_denied() -> None:
    with DaemonProcess(args=["-blacklist-cidrs", f"{OTHER_LOOPBACK}/32"]) as daemon, \
            client_from(OTHER_LOOPBACK) as denied, client_from("127.0.0.1") as allowed:
        response = denied.post(daemon.url + V1 + "/tasks", json=OPERATIONS[1][2])
        assert response.status_code == 403
        assert response.json()["error"].endswith(OTHER_LOOPBACK)
        # The denied request never reached the handler: no task exists.
        assert allowed.get(daemon.url + V1 + "/tasks").json()["tasks"] == []
        wait_until(lambda: denylist_stats(daemon, allowed), what="incoming_refused == 1",
                   until=lambda stats: stats["incoming_refused"] == 1)
        daemon.wait_for_log(rf"request denied.*client={OTHER_LOOPBACK}")


def test_private_shorthand_is_parsed_and_applied() -> None:
    networks = {str(n) for n in parse_cidrs(("private",))}
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8",
            "169.254.0.0/16", "::1/128", "fc00::/7", "fe80::/10"} <= networks
    with DaemonProcess(args=["-blacklist-cidrs", "private"]) as daemon:
        line = daemon.wait_for_log(r'msg="deny list active')
        for cidr in ("127.0.0.0/8", "::1/128", "fc00::/7", "fe80::/10", "10.0.0.0/8"):
            assert cidr in line
        for source in ("127.0.0.1", OTHER_LOOPBACK):
            with client_from(source) as client:
                assert client.get(daemon.url + V1 + "/tasks").status_code == 403
                assert client.get(daemon.url + V1 + "/ping").status_code == 204


@pytest.mark.parametrize(("address", "listed"), [
    ("127.0.0.1", True), ("10.1.2.3", True), ("172.31.255.255", True),
    ("192.168.1.1", True), ("169.254.169.254", True), ("0.0.0.0", True),
    ("::1", True), ("::", True), ("fd12:3456::1", True), ("fe80::1%lo", True),
    ("::ffff:10.1.2.3", True), ("::ffff:127.0.0.1", True), ("[::1]", True),
    ("8.8.8.8", False), ("172.32.0.1", False), ("2001:4860:4860::8888", False),
    ("::ffff:8.8.8.8", False), ("not-an-address", False), ("", False),
])
def test_private_ranges_cover_ipv4_ipv6_and_mapped_forms(address: str, listed: bool) -> None:
    denylist = DenyList(parse_cidrs(("private",)))
    assert (denylist.match(address) is not None) is listed


# -- outgoing: nothing leaves for a listed address -------------------------------------------

@contextmanager
def outgoing_setup(cidrs: str) -> Iterator[tuple[DaemonProcess, httpx.Client, HTTPRecorder,
                                                 TCPRecorder]]:
    """A daemon denying ``cidrs``, an API client from 127.0.0.2, and recorders on 127.0.0.1."""
    with HTTPRecorder() as recorder, TCPRecorder() as tcp, \
            DaemonProcess(args=["-blacklist-cidrs", cidrs]) as daemon, \
            client_from(OTHER_LOOPBACK) as client:
        yield daemon, client, recorder, tcp


def run_alerting_task(daemon: DaemonProcess, client: httpx.Client, recorder: HTTPRecorder,
                      tcp: TCPRecorder, *, host: str) -> None:
    """A stream task with an httpPost node and post + tcp alert handlers, plus a topic
    handler of kind post, all aimed at the recorders; then one point through it."""
    base = f"http://{host}:{recorder.port}"
    handler = client.post(daemon.url + V1 + "/alerts/topics/deny/handlers",
                          json={"id": "to-recorder", "kind": "post",
                                "options": {"url": base + "/topic-handler"}})
    assert handler.status_code == 200, handler.text
    script = SCRIPT.format(node_url=base + "/node", alert_url=base + "/alert-node",
                           tcp_address=f"{host}:{tcp.port}")
    task = client.post(daemon.url + V1 + "/tasks", json={
        "id": "outgoing", "type": "stream", "dbrps": [{"db": "d", "rp": "r"}],
        "script": script, "status": "enabled"})
    assert task.status_code == 200, task.text
    assert client.post(daemon.url + "/write?db=d&rp=r", content=b"cpu v=1").status_code == 204


def http_post_errors(daemon: DaemonProcess, client: httpx.Client) -> int:
    stats = client.get(daemon.url + V1 + "/tasks/outgoing").json()["stats"]["node-stats"]
    (node,) = [v for k, v in stats.items() if k.startswith("http_post")]
    return int(node["errors"])  # a failed POST is an error of the node, as in Kapacitor


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_handlers_and_http_post_to_a_listed_address_are_refused(host: str) -> None:
    with outgoing_setup("127.0.0.1/32,::1/128") as (daemon, client, recorder, tcp):
        run_alerting_task(daemon, client, recorder, tcp, host=host)
        wait_until(lambda: http_post_errors(daemon, client), what="httpPost errors == 1",
                   until=lambda errors: errors == 1)
        line = daemon.wait_for_log(r'msg="failed to POST data"')  # Kapacitor's words
        assert "not allowed (-blacklist-cidrs 127.0.0.1/32)" in line
        for kind in ("post", "tcp"):
            daemon.wait_for_log(rf'msg="alert handler failed".*kind={kind}.*not allowed')
        daemon.wait_for_log(r'msg="alert handler failed".*handler=to-recorder.*not allowed')
        wait_until(lambda: denylist_stats(daemon, client), what="outgoing_refused >= 4",
                   until=lambda stats: stats["outgoing_refused"] >= 4)
        daemon.wait_for_text('msg="outgoing connection refused"', count=4)
        refusals = [ln for ln in daemon.log().splitlines()
                    if 'msg="outgoing connection refused"' in ln]
        assert all("addr=127.0.0.1" in ln and "range=127.0.0.1/32" in ln for ln in refusals)
        time.sleep(0.3)
        assert recorder.requests == [] and tcp.received == []


def test_the_same_task_reaches_an_address_that_is_not_listed() -> None:
    with outgoing_setup("10.0.0.0/8") as (daemon, client, recorder, tcp):
        run_alerting_task(daemon, client, recorder, tcp, host="127.0.0.1")
        wait_until(lambda: sorted(recorder.paths()), what="the three HTTP requests",
                   until=lambda paths: paths == ["/alert-node", "/node", "/topic-handler"])
        wait_until(lambda: len(tcp.received) == 1, what="one TCP alert")
        assert json.loads(tcp.received[0])["id"]
        assert http_post_errors(daemon, client) == 0
        assert "outgoing connection refused" not in daemon.log()


SPELLINGS = ["http://127.0.0.1:{port}/", "http://localhost:{port}/", "http://[::1]:{port}/",
             "http://[::ffff:127.0.0.1]:{port}/", "http://2130706433:{port}/",
             "http://0x7f000001:{port}/", "http://127.1:{port}/"]


def assert_service_tests_refused(daemon: DaemonProcess, client: httpx.Client,
                                 recorder: HTTPRecorder, urls: list[str],
                                 refusal: str = "not allowed (-blacklist-cidrs") -> None:
    """httppost service tests to each of ``urls`` (``{port}``: the recorder's) are refused,
    each counted once, and nothing reaches the recorder."""
    for count, url in enumerate(urls, 1):
        target = url.format(port=recorder.port)
        result = client.post(daemon.url + V1 + "/service-tests/httppost",
                             json={"url": target}).json()
        assert result["success"] is False, target
        assert refusal in result["message"], result
        assert denylist_stats(daemon, client)["outgoing_refused"] == count
    assert recorder.requests == []


def test_service_test_refuses_every_spelling_of_a_listed_address() -> None:
    with outgoing_setup("127.0.0.1/32,::1/128") as (daemon, client, recorder, _tcp):
        assert_service_tests_refused(daemon, client, recorder, SPELLINGS)


def test_influxdb_connection_to_a_listed_address_is_refused() -> None:
    with HTTPRecorder(headers={"X-Influxdb-Version": "1.8.10"}) as influx, \
            DaemonProcess({"influxdb": [{"enabled": True, "urls": [influx.url],
                                         "startup-timeout": "1s"}]},
                          args=["-blacklist-cidrs", "127.0.0.1/32"]) as daemon, \
            client_from(OTHER_LOOPBACK) as client:
        line = daemon.wait_for_log(r"cannot reach InfluxDB")
        assert "not allowed (-blacklist-cidrs 127.0.0.1/32)" in line
        result = client.post(daemon.url + V1 + "/service-tests/influxdb", json={}).json()
        assert result["success"] is False and "not allowed" in result["message"]
        assert influx.requests == []


# -- the guard inside one trio run (what the daemon installs) ----------------------------------

def listed(*cidrs: str) -> DenyList:
    return DenyList([ipaddress.ip_network(c) for c in cidrs])


async def test_influxdb_client_refuses_ping_and_write_but_not_other_addresses() -> None:
    with HTTPRecorder(headers={"X-Influxdb-Version": "1.8.10"}) as influx:
        for host in ("127.0.0.1", "localhost"):
            config = InfluxDBConfig(urls=[f"http://{host}:{influx.port}"])
            async with ClusterClient(config, blacklist=listed("127.0.0.0/8")) as client:
                with pytest.raises(ConnectionFailed, match="not allowed"):
                    await client.ping()
                with pytest.raises(WriteFailed, match="not allowed"):
                    await write(client, b"m v=1", database="d")
        assert influx.requests == []
        config = InfluxDBConfig(urls=[influx.url])
        async with ClusterClient(config, blacklist=listed("10.0.0.0/8")) as client:
            assert (await client.ping()).version == "1.8.10"
        assert influx.paths() == ["/ping"]


async def test_each_daemon_in_a_run_keeps_its_own_guard() -> None:
    """trio's hooks are per run; the lists are per task tree (per daemon): one task tree
    refusing 127.0.0.1 does not refuse it for a sibling with another list or none."""
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    outcomes: dict[str, str] = {}
    installs: list[str] = []
    all_installed = trio.Event()

    async def connect(name: str, denylist: DenyList | None) -> None:
        if denylist is not None:
            denylist.install()
            installs.append(name)
            if len(installs) == 2:
                all_installed.set()
        await all_installed.wait()  # every task connects after both lists are installed
        try:
            stream = await trio.open_tcp_stream("localhost", port)
        except OutgoingDenied:
            outcomes[name] = "refused"
            return
        await stream.aclose()
        outcomes[name] = "connected"

    async with trio.open_nursery() as nursery:
        nursery.start_soon(connect, "strict", listed("127.0.0.1/32"))
        nursery.start_soon(connect, "other list", listed("10.0.0.0/8"))
        nursery.start_soon(connect, "no list", None)
    await listener.aclose()
    assert outcomes == {"strict": "refused", "other list": "connected",
                        "no list": "connected"}


async def test_installed_guard_covers_names_literals_and_udp() -> None:
    denylist = listed("127.0.0.1/32")
    assert denylist.install()
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]  # listening is fine
    port = listener.socket.getsockname()[1]
    with pytest.raises(OutgoingDenied, match=r"localhost \(127\.0\.0\.1\)"):
        await trio.open_tcp_stream("localhost", port)
    with pytest.raises(OSError, match="all attempts") as caught:
        await trio.open_tcp_stream("127.0.0.1", port)  # no caller check: the socket refuses
    assert isinstance(caught.value.__cause__.exceptions[0], OutgoingDenied)
    with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        with pytest.raises(OutgoingDenied):
            await udp.sendto(b"trap", ("127.0.0.1", 162))
        with pytest.raises(OutgoingDenied):
            await udp.connect(("127.0.0.1", 162))
    assert denylist.outgoing_refused == 4
    # 127.0.0.2 is not listed: a real connection works through the same guard.
    other = (await trio.open_tcp_listeners(0, host=OTHER_LOOPBACK))[0]
    stream = await trio.open_tcp_stream(OTHER_LOOPBACK, other.socket.getsockname()[1])
    await stream.aclose()
    await listener.aclose()
    await other.aclose()

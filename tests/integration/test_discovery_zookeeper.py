"""``[[serverset]]`` and ``[[nerve]]`` discovery against a real ZooKeeper (Debian's
``zookeeper``, started with java on a free loopback port, once for the module).

Through the daemon: members registered before and after it starts, changed, removed;
``GET /kapacitor/v1/discovery``; a ``[[scraper]]`` scraping what a serverset names; the
service tests; ZooKeeper restarted under running discoverers. In the test process: the
discoverer's threads (kazoo's and its own) all end when it stops.

As in Kapacitor, the daemon runs an element only while an enabled ``[[scraper]]`` names
it: the elements the tests watch are named by scrapers that scrape once an hour, and the
daemon refuses every address outside 127.0.0.0/8 (the members' 10.x addresses are never
scraped).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import trio
from kapa_plugins.discovery import serverset
from kazoo.client import KazooClient

from kapa_core.discovery import DiscoveryContext, DiscoveryRegistry, TargetGroup
from kapa_core.logs import Logger
from kapa_core.models.duration import Duration
from kapa_core.testing import DaemonProcess, wait_until
from kapa_core.testing.http import RecordingHTTPServer

pytestmark = pytest.mark.integration

API = "/kapacitor/v1"
ZOOKEEPER_JAR = "/usr/share/java/zookeeper.jar"

#: every address range but 127.0.0.0/8, for -blacklist-cidrs
NOT_LOOPBACK = ("0.0.0.0/2,64.0.0.0/3,96.0.0.0/4,112.0.0.0/5,120.0.0.0/6,124.0.0.0/7,"
                "126.0.0.0/8,128.0.0.0/1,::/0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ZooKeeperServer:
    """A stand-alone ZooKeeper on a free loopback port with a throw-away data dir;
    :meth:`restart` keeps both."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="kapa-zk-")
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        with open(os.path.join(self.dir, "zoo.cfg"), "w") as f:
            f.write(f"tickTime=500\ndataDir={self.dir}/data\nclientPort={self.port}\n"
                    "clientPortAddress=127.0.0.1\nadmin.enableServer=false\n"
                    "4lw.commands.whitelist=*\nmaxSessionTimeout=60000\n")

    @property
    def servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _ruok(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), 0.5) as s:
                s.sendall(b"ruok")
                return s.recv(8) == b"imok"
        except OSError:
            return False

    def start(self) -> ZooKeeperServer:
        self.proc = subprocess.Popen(
            ["java", "-Xmx128m", "-XX:TieredStopAtLevel=1", "-cp", ZOOKEEPER_JAR,
             "org.apache.zookeeper.server.ZooKeeperServerMain",
             os.path.join(self.dir, "zoo.cfg")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not self._ruok():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("ZooKeeper did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> ZooKeeperServer:
        try:
            return self.start()
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def member(host: str, port: int, status: str = "ALIVE", shard: int = 0,
           **extra: tuple[str, int]) -> bytes:
    return json.dumps({"serviceEndpoint": {"host": host, "port": port},
                       "additionalEndpoints": {k: {"host": h, "port": p}
                                               for k, (h, p) in extra.items()},
                       "status": status, "shard": shard}).encode()


def nerve_member(host: str, port: int, name: str) -> bytes:
    return json.dumps({"host": host, "port": port, "name": name}).encode()


@pytest.fixture(scope="module")
def zk_server() -> Iterator[ZooKeeperServer]:
    with ZooKeeperServer() as server:
        yield server


@pytest.fixture(scope="module")
def zk(zk_server: ZooKeeperServer) -> Iterator[KazooClient]:
    client = KazooClient(zk_server.servers)
    client.start(timeout=20)
    try:
        yield client
    finally:
        client.stop()
        client.close()


def groups(daemon: DaemonProcess, service: str, id: str) -> dict[str, Any] | None:
    response = httpx.get(f"{daemon.url}{API}/discovery/{service}/{id}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return {g["source"]: [g["targets"], g["labels"]] for g in response.json()["groups"]}


def wait_groups(daemon: DaemonProcess, service: str, id: str, expected: dict[str, Any],
                timeout: float = 20.0) -> None:
    wait_until(lambda: groups(daemon, service, id) == expected, timeout,
               f"{service}/{id} groups {expected}, have {groups(daemon, service, id)}")


def serverset_labels(path: str, host: str, port: int, status: str = "ALIVE",
                     shard: int = 0, **extra: tuple[str, int]) -> dict[str, str]:
    labels = {"__meta_serverset_path": path, "__meta_serverset_endpoint_host": host,
              "__meta_serverset_endpoint_port": str(port),
              "__meta_serverset_status": status, "__meta_serverset_shard": str(shard)}
    for name, (h, p) in extra.items():
        labels[f"__meta_serverset_endpoint_host_{name}"] = h
        labels[f"__meta_serverset_endpoint_port_{name}"] = str(p)
    return labels


def nerve_labels(path: str, host: str, port: int, name: str) -> dict[str, str]:
    return {"__meta_nerve_path": path, "__meta_nerve_endpoint_host": host,
            "__meta_nerve_endpoint_port": str(port), "__meta_nerve_endpoint_name": name}


@pytest.fixture(scope="module")
def scraped() -> Iterator[RecordingHTTPServer]:
    """A metrics endpoint a scraper finds through the serverset."""

    server = RecordingHTTPServer(status=200)
    with server:
        yield server


@pytest.fixture(scope="module")
def unscraped() -> Iterator[RecordingHTTPServer]:
    """Named by a node whose data Go does not decode: never scraped."""

    server = RecordingHTTPServer(status=200)
    with server:
        yield server


def idle_scraper(service: str, id: str) -> dict[str, Any]:
    """A [[scraper]] naming the element ``id`` of ``service``, scraping once an hour."""
    return {"enabled": True, "name": f"{service}-{id}", "discoverer-service": service,
            "discoverer-id": id, "db": "zkdb", "rp": "autogen", "scrape-interval": "1h"}


@pytest.fixture(scope="module")
def daemon(zk_server: ZooKeeperServer, zk: KazooClient, scraped: RecordingHTTPServer,
           unscraped: RecordingHTTPServer) -> Iterator[DaemonProcess]:
    zk.ensure_path("/kapa/services/web")
    zk.create("/kapa/services/web/member_0000000001", member("127.0.0.1", 9101))
    zk.ensure_path("/kapa/nerve/api")
    zk.create("/kapa/nerve/api/i-1", nerve_member("10.1.0.1", 8080, "api-1"))
    scraped_port = scraped.url.rsplit(":", 1)[1].rstrip("/")
    zk.ensure_path("/kapa/scrape")
    zk.create("/kapa/scrape/m1", member("127.0.0.1", int(scraped_port)))
    zk.create("/kapa/scrape/bad", b'{"serviceEndpoint":{"host":"127.0.0.1","port":%d},'
              b'"shard":1.0}' % unscraped.port)
    config = {
        "serverset": [
            {"enabled": True, "id": "web", "servers": [zk_server.servers],
             "paths": ["/kapa/services"], "timeout": "4s"},
            {"enabled": True, "id": "scrape", "servers": [zk_server.servers],
             "paths": ["/kapa/scrape"]},
            {"enabled": False, "id": "off", "servers": [zk_server.servers],
             "paths": ["/kapa/services"]},
            # enabled, but named by no scraper until test_an_element_runs_once_named
            {"enabled": True, "id": "lone", "servers": [zk_server.servers],
             "paths": ["/kapa/lone"]},
        ],
        "nerve": [{"enabled": True, "id": "api", "servers": [zk_server.servers],
                   "paths": ["/kapa/nerve"]}],
        "scraper": [{"enabled": True, "name": "zkscrape", "discoverer-service": "serverset",
                     "discoverer-id": "scrape", "db": "zkdb", "rp": "autogen",
                     "scrape-interval": "1s", "scrape-timeout": "1s"},
                    idle_scraper("serverset", "web"), idle_scraper("serverset", "off"),
                    idle_scraper("nerve", "api")],
    }
    with DaemonProcess(config, args=["-blacklist-cidrs", NOT_LOOPBACK]) as process:
        yield process
        process.stop()


def test_members_registered_before_the_daemon_started(daemon: DaemonProcess) -> None:
    web = "/kapa/services/web/member_0000000001"
    wait_groups(daemon, "serverset", "web", {web: [["127.0.0.1:9101"],
                                                   serverset_labels(web, "127.0.0.1", 9101)]})
    api = "/kapa/nerve/api/i-1"
    wait_groups(daemon, "nerve", "api", {api: [["10.1.0.1:8080"],
                                               nerve_labels(api, "10.1.0.1", 8080, "api-1")]})
    assert groups(daemon, "serverset", "off") is None  # disabled: no discoverer runs
    listed = httpx.get(f"{daemon.url}{API}/discovery").json()["discoverers"]
    assert [(e["service"], e["id"]) for e in listed
            if e["service"] in ("nerve", "serverset")] == [
        ("nerve", "api"), ("serverset", "scrape"), ("serverset", "web")]


def test_an_element_runs_once_named(daemon: DaemonProcess, zk: KazooClient) -> None:
    """An enabled element no [[scraper]] names does not run (no ZooKeeper session, not
    shown); a scraper naming it, added by a config override, starts it alone."""
    zk.create("/kapa/lone/m", member("127.0.0.1", 9102), makepath=True)
    web = "/kapa/services/web/member_0000000001"
    wait_groups(daemon, "serverset", "web", {web: [["127.0.0.1:9101"],
                                                   serverset_labels(web, "127.0.0.1", 9101)]})
    assert groups(daemon, "serverset", "lone") is None
    assert "element=lone" not in daemon.log()
    # its service test runs a discoverer of its own, named or not (as Kapacitor's Test)
    response = httpx.post(f"{daemon.url}{API}/service-tests/serverset", json={"id": "lone"},
                          timeout=40)
    assert response.json() == {"success": True, "message": ""}
    started = daemon.log().count('msg="discoverer started"')
    connected = daemon.log().count('msg="connected to ZooKeeper"')
    response = httpx.post(f"{daemon.url}{API}/config/scraper",
                          json={"add": idle_scraper("serverset", "lone")})
    assert response.status_code == 204, response.text
    wait_groups(daemon, "serverset", "lone", {"/kapa/lone/m": [
        ["127.0.0.1:9102"], serverset_labels("/kapa/lone/m", "127.0.0.1", 9102)]})
    daemon.wait_for_log(r'msg="connected to ZooKeeper".*element=lone')
    assert daemon.log().count('msg="discoverer started"') == started + 1
    # it alone is started and connects; the running elements keep their sessions
    assert daemon.log().count('msg="connected to ZooKeeper"') == connected + 1


def test_members_come_change_and_go(daemon: DaemonProcess, zk: KazooClient) -> None:
    first = "/kapa/services/web/member_0000000001"
    expected = {first: [["127.0.0.1:9101"], serverset_labels(first, "127.0.0.1", 9101)]}
    wait_groups(daemon, "serverset", "web", expected)
    # a new service below the watched path, with a member registered as Finagle does
    zk.ensure_path("/kapa/services/db")
    second = zk.create("/kapa/services/db/member_", member(
        "10.0.0.2", 5432, "STARTING", 1, admin=("10.0.0.2", 9990), **{"http-alt": ("h", 1)}),
        ephemeral=True, sequence=True)
    expected[second] = [["10.0.0.2:5432"], serverset_labels(
        second, "10.0.0.2", 5432, "STARTING", 1, admin=("10.0.0.2", 9990),
        http_alt=("h", 1))]
    wait_groups(daemon, "serverset", "web", expected)
    # its data changes
    zk.set(second, member("10.0.0.2", 5433, "ALIVE", 1))
    expected[second] = [["10.0.0.2:5433"], serverset_labels(second, "10.0.0.2", 5433, "ALIVE", 1)]
    wait_groups(daemon, "serverset", "web", expected)
    # data Go cannot decode into a member: the node gives no target (its group goes)
    zk.set(second, b'{"serviceEndpoint":{"host":"10.0.0.2","port":"5433"}}')
    del expected[second]
    wait_groups(daemon, "serverset", "web", expected)
    daemon.wait_for_log(rf'lvl=warn msg="ignoring ZooKeeper node" .*path={second} '
                        r'error="error unmarshaling serverset member')
    zk.set(second, member("10.0.0.3", 1))
    expected[second] = [["10.0.0.3:1"], serverset_labels(second, "10.0.0.3", 1, "ALIVE")]
    wait_groups(daemon, "serverset", "web", expected)
    # the member's node is removed, then the whole service
    zk.delete(second)
    del expected[second]
    wait_groups(daemon, "serverset", "web", expected)
    zk.create("/kapa/services/db/member_0000000009", member("10.0.0.9", 9))
    deep = "/kapa/services/db/member_0000000009"
    expected[deep] = [["10.0.0.9:9"], serverset_labels(deep, "10.0.0.9", 9)]
    wait_groups(daemon, "serverset", "web", expected)
    zk.delete("/kapa/services/db", recursive=True)
    del expected[deep]
    wait_groups(daemon, "serverset", "web", expected)


def test_nerve_registrations_come_and_go(daemon: DaemonProcess, zk: KazooClient) -> None:
    api = "/kapa/nerve/api/i-1"
    expected = {api: [["10.1.0.1:8080"], nerve_labels(api, "10.1.0.1", 8080, "api-1")]}
    wait_groups(daemon, "nerve", "api", expected)
    other = zk.create("/kapa/nerve/api/i-", nerve_member("::1", 9000, "v6"),
                      ephemeral=True, sequence=True)
    expected[other] = [["[::1]:9000"], nerve_labels(other, "::1", 9000, "v6")]
    wait_groups(daemon, "nerve", "api", expected)
    zk.delete(other)
    del expected[other]
    wait_groups(daemon, "nerve", "api", expected)


def test_a_scraper_scrapes_the_members(daemon: DaemonProcess, scraped: RecordingHTTPServer,
                                       unscraped: RecordingHTTPServer) -> None:
    """As kapacitord 1.5.7 did with the same nodes: the member is scraped, the node
    whose shard is 1.0 is not."""
    requests = scraped.wait_for(2, timeout=20)
    assert {r.route for r in requests} == {"/metrics"}
    assert requests[0].headers["host"] == scraped.address
    assert unscraped.requests == []


# Taken from kapacitord 1.5.7 run on the same ZooKeeper trees, its elements given
# timeout = "10s" (see the docs: without it, 1.5.7 never connects).
EXPECTED_SERVICE_TESTS = {
    "serverset web": '{"success":true,"message":""}\n',
    "serverset off": '{"success":false,"message":"discoverer \\"off\\" is not enabled or '
                     'does not exist"}\n',
    "serverset nope": '{"success":false,"message":"discoverer \\"nope\\" is not enabled or '
                      'does not exist"}\n',
    "serverset ": '{"success":false,"message":"discoverer \\"\\" is not enabled or does '
                  'not exist"}\n',
    "nerve api": '{"success":true,"message":""}\n',
    "nerve nope": '{"success":false,"message":"discoverer \\"nope\\" is not enabled or '
                  'does not exist"}\n',
}
EXPECTED_SERVICE_LIST = [
    {"link": {"rel": "self", "href": "/kapacitor/v1/service-tests/nerve"}, "name": "nerve",
     "options": {"id": ""}},
    {"link": {"rel": "self", "href": "/kapacitor/v1/service-tests/serverset"},
     "name": "serverset", "options": {"id": ""}},
]


def test_service_tests_answer_as_kapacitor(daemon: DaemonProcess) -> None:
    listed = httpx.get(f"{daemon.url}{API}/service-tests").json()["services"]
    assert [s for s in listed if s["name"] in ("nerve", "serverset")] == EXPECTED_SERVICE_LIST
    got = {}
    for key in EXPECTED_SERVICE_TESTS:
        service, id = key.split(" ")
        response = httpx.post(f"{daemon.url}{API}/service-tests/{service}", json={"id": id},
                              timeout=40)
        assert response.status_code == 200
        got[key] = response.text
    assert got == EXPECTED_SERVICE_TESTS


def run_discoverer_until(servers: str, paths: list[str], probe: Any) -> tuple[Any, float,
                                                                           list[str]]:
    """Run a [[serverset]] discoverer in this process until ``probe(groups)`` is true;
    returns what it published, how long it took to stop and the threads it left."""
    config = serverset.ServersetConfig(enabled=True, id="t", servers=[servers], paths=paths,
                                       timeout=Duration(5 * 10**9))
    context = DiscoveryContext("serverset", config, Logger("serverset"), id="t",
                               registry=DiscoveryRegistry())
    context.open()
    before = set(threading.enumerate())
    out: dict[str, Any] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            discoverer = serverset.discoverer(config, context)
            await nursery.start(discoverer.serve)
            with trio.fail_after(15):
                while not probe(context.groups()):
                    await trio.sleep(0.05)
            out["groups"] = context.groups()
            out["threads"] = [t for t in set(threading.enumerate()) - before
                              if not t.name.startswith("Trio thread")]
            out["stopping"] = time.monotonic()
            nursery.cancel_scope.cancel()
        out["stopped"] = time.monotonic() - out["stopping"]

    trio.run(main)
    left = [t.name for t in set(threading.enumerate()) - before
            if t.is_alive() and not t.name.startswith("Trio thread")]
    assert len(out["threads"]) >= 4, out["threads"]  # walker, connection, 2 callback threads
    return out["groups"], out["stopped"], left


def test_the_discoverer_stops_with_all_its_threads(zk_server: ZooKeeperServer,
                                                   zk: KazooClient) -> None:
    zk.ensure_path("/kapa/threads")
    zk.create("/kapa/threads/m", member("10.9.9.9", 1))
    found, stopped, left = run_discoverer_until(
        zk_server.servers, ["/kapa/threads"], lambda groups: bool(groups))
    assert found == (TargetGroup(("10.9.9.9:1",), serverset_labels(
        "/kapa/threads/m", "10.9.9.9", 1), "/kapa/threads/m"),)
    assert stopped < 3 and left == []
    # also while it cannot connect at all (nothing listens there)
    _, stopped, left = run_discoverer_until(f"127.0.0.1:{free_port()}", ["/x"],
                                            lambda groups: True)
    assert stopped < 3 and left == []


def test_odd_paths(zk_server: ZooKeeperServer, zk: KazooClient) -> None:
    """A trailing '/' is dropped; a path kazoo refuses is logged and left alone, the
    element's other paths are watched."""
    zk.create("/kapa/odd/m", member("10.6.6.6", 6), makepath=True)
    found, _, left = run_discoverer_until(zk_server.servers, ["/kapa/./x", "/kapa/odd/"],
                                          bool)
    assert [(g.source, g.targets) for g in found] == [("/kapa/odd/m", ("10.6.6.6:6",))]
    assert left == []


def test_every_node_of_the_tree_is_decoded(zk_server: ZooKeeperServer,
                                           zk: KazooClient) -> None:
    """As Prometheus' tree cache: the watched node itself and nodes with children are
    decoded too, at any depth."""
    zk.create("/kapa/tree", member("10.5.0.1", 1), makepath=True)
    zk.create("/kapa/tree/a", member("10.5.0.2", 2))
    zk.create("/kapa/tree/a/b/c", member("10.5.0.3", 3), makepath=True)
    found, _, _ = run_discoverer_until(zk_server.servers, ["/kapa/tree"],
                                       lambda groups: len(groups) == 3)
    assert sorted((g.source, g.targets) for g in found) == [
        ("/kapa/tree", ("10.5.0.1:1",)), ("/kapa/tree/a", ("10.5.0.2:2",)),
        ("/kapa/tree/a/b/c", ("10.5.0.3:3",))]


def test_a_missing_path_is_watched_until_it_exists(daemon: DaemonProcess,
                                                   zk_server: ZooKeeperServer,
                                                   zk: KazooClient) -> None:
    seen: list[Any] = []

    def probe(groups: Any) -> bool:
        if not seen:
            seen.append(groups)
            zk.create("/kapa/later/m1", member("10.8.8.8", 8), makepath=True)
        return bool(groups)

    found, _, left = run_discoverer_until(zk_server.servers, ["/kapa/later"], probe)
    assert seen == [()]
    assert [g.targets for g in found] == [("10.8.8.8:8",)] and left == []


def test_a_config_override_rebinds_the_element(daemon: DaemonProcess, zk: KazooClient
                                               ) -> None:
    web = "/kapa/services/web/member_0000000001"
    zk.create("/kapa/override/m", member("10.7.7.7", 7), makepath=True)
    url = f"{daemon.url}{API}/config/serverset/scrape"
    response = httpx.post(url, json={"set": {"paths": ["/kapa/override", "/kapa/services"]}})
    assert response.status_code == 204, response.text
    wait_groups(daemon, "serverset", "scrape", {
        "/kapa/override/m": [["10.7.7.7:7"], serverset_labels("/kapa/override/m", "10.7.7.7", 7)],
        web: [["127.0.0.1:9101"], serverset_labels(web, "127.0.0.1", 9101)]})
    assert httpx.post(url, json={"delete": ["paths"]}).status_code == 204
    wait_until(lambda: set(groups(daemon, "serverset", "scrape") or ()) == {"/kapa/scrape/m1"},
               20, "the element back on its configured path")


def test_zookeeper_restarted_under_running_discoverers(daemon: DaemonProcess,
                                                       zk_server: ZooKeeperServer,
                                                       zk: KazooClient) -> None:
    first = "/kapa/services/web/member_0000000001"
    expected = {first: [["127.0.0.1:9101"], serverset_labels(first, "127.0.0.1", 9101)]}
    wait_groups(daemon, "serverset", "web", expected)
    zk_server.stop()
    daemon.wait_for_log(r'msg="lost connection to ZooKeeper, reconnecting".*element=web')
    time.sleep(0.5)
    assert groups(daemon, "serverset", "web") == expected  # kept while it is away
    zk_server.start()
    daemon.wait_for_log(r'msg="connected to ZooKeeper".*element=web', count=2)
    wait_until(lambda: zk.connected, 20, "the test's client reconnects")
    added = "/kapa/services/web/member_0000000002"
    zk.retry(zk.create, added, member("10.0.0.5", 5))
    expected[added] = [["10.0.0.5:5"], serverset_labels(added, "10.0.0.5", 5)]
    wait_groups(daemon, "serverset", "web", expected)
    zk.retry(zk.delete, first)
    del expected[first]
    wait_groups(daemon, "serverset", "web", expected)
    api = "/kapa/nerve/api/i-1"
    zk.retry(zk.set, api, nerve_member("10.1.0.1", 8081, "api-1"))
    wait_groups(daemon, "nerve", "api", {api: [["10.1.0.1:8081"],
                                               nerve_labels(api, "10.1.0.1", 8081, "api-1")]})


def test_the_daemon_stops_its_discoverers_promptly(daemon: DaemonProcess) -> None:
    """Last: a graceful stop closes every ZooKeeper session and ends."""
    started = time.monotonic()
    assert daemon.stop(timeout=10) == 0
    assert time.monotonic() - started < 5

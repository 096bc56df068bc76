"""[[kubernetes]] discovery through the real daemon, against local servers answering as
the Kubernetes API does (tests.unit.test_kubernetes_discovery.FakeKubernetes):
``GET /kapacitor/v1/discovery`` shows the groups and follows ADDED/MODIFIED/DELETED
events, a watch the server ends is resumed, an expired resourceVersion is listed again,
a ``[[scraper]]`` scrapes what the node role names, and the requests are those
kapacitord 1.5.7 made of the same fakes with the same sections (recorded below as data;
regenerate with ``python -m tests.integration.test_discovery_kubernetes --kapacitord
BIN``).

As in Kapacitor, a discoverer element runs only while an enabled ``[[scraper]]`` names
it: each element the tests expect to run has one, and one that no scraper names starts
once a scraper naming it is added. The daemon refuses 10.0.0.0/8 (``-blacklist-cidrs``:
the fakes' nodes and pods there are never connected to) and the services' scraper asks
its targets (host names such as ``web.default.svc``) through ``proxy-url``, a loopback
server: no scrape leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kapa_core.testing import DaemonProcess, wait_until
from kapa_core.testing.http import RecordingHTTPServer
from tests.unit.test_kubernetes_discovery import FakeKubernetes, node, pod, service

pytestmark = pytest.mark.integration

API = "/kapacitor/v1"
TOKEN = "k8s-token"
M = "__meta_kubernetes_"

# What kapacitord 1.5.7 did with the sections of ``sections()``: an element of resource
# "node" (HTTPS, token, ca-path) and one of resource "service" (HTTP, no token,
# namespace = "ops", which it does not pass to discovery), each followed by a scraper.
# The watch is asked on the older /api/v1/watch/<resource> path (kapa-core asks
# ?watch=true of /api/v1/<resource>, the same stream); every request carries
# User-Agent: prometheus/discovery. "up" is what its scraper reported of the targets.
# (Kapacitor 1.5.7 cannot be run with resource = "pod": it panics as soon as a pod is
# found; "endpoint" and "" discover nothing: "unknown Kubernetes discovery kind".)
KAPACITOR = {
    "nodes: first": ["/api/v1/nodes?resourceVersion=0",
                     "/api/v1/watch/nodes?resourceVersion=101&timeoutSeconds=T"],
    "services: first": ["/api/v1/services?resourceVersion=0",
                        "/api/v1/watch/services?resourceVersion=101&timeoutSeconds=T"],
    "headers": [["", "prometheus/discovery"], ["Bearer k8s-token", "prometheus/discovery"]],
    "nodes: watch ended by the server": [
        "/api/v1/watch/nodes?resourceVersion=101&timeoutSeconds=T"],
    "nodes: watch from an expired version (ERROR event)": [
        "/api/v1/watch/nodes?resourceVersion=101&timeoutSeconds=T",
        "/api/v1/nodes?resourceVersion=0",
        "/api/v1/watch/nodes?resourceVersion=102&timeoutSeconds=T"],
    "nodes: watch from an expired version (410)": [
        "/api/v1/watch/nodes?resourceVersion=102&timeoutSeconds=T",
        "/api/v1/nodes?resourceVersion=0",
        "/api/v1/watch/nodes?resourceVersion=103&timeoutSeconds=T"],
    "up": [{"__name__": "up", "instance": "n1"},
           {"__name__": "up", "instance": "web.default.svc:80"}],
}


def as_kapacitor(path: str) -> str:
    """A request of kapa-core's as Kapacitor words it (``?watch=true`` as the /watch/
    path)."""
    route, _, query = path.partition("?")
    params = query.split("&") if query else []
    if "watch=true" in params:
        params.remove("watch=true")
        route = route.replace("/api/v1/", "/api/v1/watch/", 1)
    return route + ("?" + "&".join(params) if params else "")


def sections(nodes: FakeKubernetes, services: FakeKubernetes, ca: Path) -> dict[str, Any]:
    return {
        "kubernetes": [
            {"enabled": True, "id": "nodes", "api-servers": [nodes.url], "token": TOKEN,
             "ca-path": str(ca), "resource": "node"},
            {"enabled": True, "id": "services", "api-servers": [services.url],
             "namespace": "ops", "resource": "service"},
        ],
        "scraper": [
            {"enabled": True, "name": f"s-{id}", "type": "prometheus", "db": "prom",
             "rp": "autogen", "discoverer-service": "kubernetes", "discoverer-id": id,
             "scrape-interval": "1s", "scrape-timeout": "500ms"}
            for id in ("nodes", "services")],
    }


def kubelet(port: int, name: str = "n1", ip: str = "127.0.0.1") -> dict[str, Any]:
    return node(name, [("Hostname", name), ("InternalIP", ip)], port,
                labels={"kubernetes.io/hostname": name})


def _wait(probe: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def scenario(url: str, nodes: FakeKubernetes, services: FakeKubernetes,
             on_change: Callable[[str], None] = lambda phase: None) -> dict[str, Any]:
    """Run the recorded scenario against the daemon at ``url`` (kapa-core or
    kapacitord) with ``sections()``: what was asked in each phase, and the ``up``
    samples its scrapers reported."""
    out: dict[str, Any] = {}
    response = httpx.post(url + API + "/tasks", json={
        "id": "up", "type": "stream", "dbrps": [{"db": "prom", "rp": "autogen"}],
        "script": "stream|from().measurement('up')|groupBy(*)|httpOut('o')",
        "status": "enabled"})
    assert response.status_code == 200, response.text

    def up() -> list[dict[str, str]]:
        series = httpx.get(url + API + "/tasks/up/o").json().get("series") or []
        return sorted((s.get("tags") or {} for s in series), key=lambda t: t["instance"])

    _wait(lambda: len(up()) == 2, 20)
    out["up"] = up()
    time.sleep(2.5)  # Kapacitor restarts its discoverers a few times while it starts
    out["nodes: first"] = [p for p in nodes.asked() if "nodes" in p][:2]
    out["services: first"] = services.asked()[:2]
    out["headers"] = sorted({(r["auth"], r["agent"]) for f in (nodes, services)
                             for r in f.requests})

    def phase(name: str, change: Callable[[], None], count: int) -> None:
        time.sleep(1.2)  # a watch ending within a second without events lists again
        n = len(nodes.requests)
        nodes.hold = True
        change()
        nodes.drop_watches()
        nodes.hold = False
        _wait(lambda: len([p for p in nodes.asked()[n:] if "nodes" in p]) >= count)
        time.sleep(0.3)
        out[name] = [p for p in nodes.asked()[n:] if "nodes" in p][:count]
        on_change(name)

    phase("nodes: watch ended by the server", lambda: None, 1)

    def expire(change: Callable[[], None], status: bool) -> Callable[[], None]:
        def run() -> None:
            change()
            nodes.compact()
            nodes.gone_status = status
        return run

    phase("nodes: watch from an expired version (ERROR event)",
          expire(lambda: nodes.put("nodes", kubelet(1, "n2", "10.0.0.2")), False), 3)
    phase("nodes: watch from an expired version (410)",
          expire(lambda: nodes.delete("nodes", "", "n2"), True), 3)
    nodes.gone_status = False
    return out


# -- kapa-core ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    from tests.integration.pki import ca_and_server

    return ca_and_server(tmp_path_factory.mktemp("k8s-pki"))


@pytest.fixture(scope="module")
def metrics() -> Iterator[RecordingHTTPServer]:
    with RecordingHTTPServer(status=200, headers={"Content-Type": "text/plain"},
                             body=b"# TYPE kube_metric gauge\nkube_metric 7\n") as server:
        yield server


@pytest.fixture(scope="module")
def fakes(pki: tuple[Path, Path, Path], metrics: RecordingHTTPServer
          ) -> Iterator[tuple[FakeKubernetes, FakeKubernetes]]:
    _, cert, key = pki
    with FakeKubernetes(token=TOKEN, tls=(cert, key)) as nodes, FakeKubernetes() as services:
        nodes.put("nodes", kubelet(metrics.port))
        services.put("services", service("default", "web", [("http", 80, "TCP")]))
        yield nodes, services


@pytest.fixture(scope="module")
def idle() -> Iterator[FakeKubernetes]:
    """The API server of an element no scraper names at first."""
    with FakeKubernetes() as server:
        server.put("nodes", kubelet(1, "n9"))
        yield server


@pytest.fixture(scope="module")
def proxy() -> Iterator[RecordingHTTPServer]:
    """The proxy of the services' scraper: a loopback server refusing every request."""
    with RecordingHTTPServer(status=502) as server:
        yield server


def scraper(id: str) -> dict[str, Any]:
    """An enabled scraper following the kubernetes element ``id``, once an hour."""
    return {"enabled": True, "name": f"s-{id}", "type": "prometheus", "db": "prom",
            "rp": "autogen", "discoverer-service": "kubernetes", "discoverer-id": id,
            "scrape-interval": "1h"}


@pytest.fixture(scope="module")
def daemon(fakes: tuple[FakeKubernetes, FakeKubernetes], pki: tuple[Path, Path, Path],
           idle: FakeKubernetes, proxy: RecordingHTTPServer) -> Iterator[DaemonProcess]:
    nodes, services = fakes
    config = sections(nodes, services, pki[0])
    for element in config["scraper"]:
        if element["discoverer-id"] == "services":
            element["proxy-url"] = proxy.url
    # a pod element beside them, on the nodes' API server (kapa-core only: Kapacitor
    # 1.5.7 panics on pods), and one no scraper names
    config["kubernetes"] += [
        {"enabled": True, "id": "pods", "api-servers": [nodes.url], "token": TOKEN,
         "ca-path": str(pki[0]), "resource": "pod"},
        {"enabled": True, "id": "idle", "api-servers": [idle.url], "resource": "node"}]
    config["scraper"].append(scraper("pods"))
    with DaemonProcess(config, args=["-blacklist-cidrs", "10.0.0.0/8"]) as process:
        yield process
        process.stop()


def discovered(daemon: DaemonProcess, id: str) -> dict[str, tuple[list[str], dict[str, str]]]:
    response = httpx.get(f"{daemon.url}{API}/discovery/kubernetes/{id}")
    assert response.status_code == 200, response.text
    return {g["source"]: (g["targets"], g["labels"]) for g in response.json()["groups"]}


def test_the_requests_and_scrapes_are_those_of_kapacitor(
        daemon: DaemonProcess, fakes: tuple[FakeKubernetes, FakeKubernetes],
        metrics: RecordingHTTPServer, proxy: RecordingHTTPServer) -> None:
    nodes, services = fakes
    seen: dict[str, Any] = {}

    def on_change(phase: str) -> None:
        seen[phase] = discovered(daemon, "nodes")

    got = scenario(daemon.url, nodes, services, on_change)
    got = {k: [as_kapacitor(p) for p in v] if k.startswith(("nodes", "services")) else v
           for k, v in got.items()}
    got["headers"] = [list(h) for h in got["headers"]]
    assert got == KAPACITOR
    assert metrics.requests and metrics.requests[0].path == "/metrics"
    # the services' target was asked of the loopback proxy, and only of it
    assert proxy.requests and {r.path for r in proxy.requests} == {
        "http://web.default.svc/metrics"}
    # the discovery API followed: n2 came with the list after the expired watch, and went
    assert set(seen["nodes: watch from an expired version (ERROR event)"]) == {
        "node/n1:0", "node/n2:0"}
    assert set(seen["nodes: watch from an expired version (410)"]) == {"node/n1:0"}


def test_the_discovery_api_shows_the_groups_with_their_labels(
        daemon: DaemonProcess, metrics: RecordingHTTPServer) -> None:
    wait_until(lambda: discovered(daemon, "nodes") and discovered(daemon, "services"),
               what="the first groups")
    assert discovered(daemon, "nodes") == {"node/n1:0": ([f"127.0.0.1:{metrics.port}"], {
        M + "node_name": "n1", M + "node_label_kubernetes_io_hostname": "n1",
        M + "node_address_Hostname": "n1", M + "node_address_InternalIP": "127.0.0.1",
        "instance": "n1"})}
    assert discovered(daemon, "services") == {"svc/default/web:0": (["web.default.svc:80"], {
        M + "namespace": "default", M + "service_name": "web",
        M + "service_port_name": "http", M + "service_port_protocol": "TCP"})}


def test_pod_events_reach_the_discovery_api(
        daemon: DaemonProcess, fakes: tuple[FakeKubernetes, FakeKubernetes]) -> None:
    nodes, _ = fakes
    wait_until(lambda: any("pods" in p for p in nodes.asked(watch=True)),
               what="the pods watch")
    nodes.put("pods", pod("default", "web-1", "10.1.0.1"))  # ADDED
    wait_until(lambda: discovered(daemon, "pods") == {"pod/default/web-1:0": (
        ["10.1.0.1:9100"], {
            M + "namespace": "default", M + "pod_name": "web-1", M + "pod_ip": "10.1.0.1",
            M + "pod_ready": "true", M + "pod_node_name": "node-1",
            M + "pod_host_ip": "192.168.0.1", M + "pod_container_name": "app",
            M + "pod_container_port_name": "metrics",
            M + "pod_container_port_number": "9100",
            M + "pod_container_port_protocol": "TCP"})}, what="the pod")
    nodes.put("pods", pod("default", "web-1", "10.1.0.2", containers=[  # MODIFIED
        {"name": "app", "ports": [{"containerPort": 80}, {"containerPort": 81}]}]))
    wait_until(lambda: {s: t for s, (t, _) in discovered(daemon, "pods").items()} == {
        "pod/default/web-1:0": ["10.1.0.2:80"], "pod/default/web-1:1": ["10.1.0.2:81"]},
        what="the modified pod")
    nodes.delete("pods", "default", "web-1")  # DELETED
    wait_until(lambda: discovered(daemon, "pods") == {}, what="the pod gone")


def test_the_service_test_asks_the_api_server(daemon: DaemonProcess) -> None:
    response = httpx.post(f"{daemon.url}{API}/service-tests/kubernetes", json={"id": "nodes"})
    assert response.json() == {"success": True, "message": ""}


def test_a_config_override_restarts_only_the_changed_element(
        daemon: DaemonProcess, fakes: tuple[FakeKubernetes, FakeKubernetes],
        metrics: RecordingHTTPServer) -> None:
    nodes, services = fakes
    before = len(services.requests)
    response = httpx.post(f"{daemon.url}{API}/config/kubernetes/pods",
                          json={"set": {"resource": "node"}})
    assert response.status_code == 204, response.text
    wait_until(lambda: set(discovered(daemon, "pods")) == {"node/n1:0"},
               what="the element discovering nodes")
    time.sleep(0.5)
    assert len(services.requests) == before  # the other elements kept their watches
    assert set(discovered(daemon, "services")) == {"svc/default/web:0"}


def test_an_element_runs_once_a_scraper_names_it(
        daemon: DaemonProcess, fakes: tuple[FakeKubernetes, FakeKubernetes],
        idle: FakeKubernetes) -> None:
    nodes, services = fakes
    # enabled since the start, no scraper names it: not running, nothing asked
    response = httpx.get(f"{daemon.url}{API}/discovery/kubernetes/idle")
    assert response.status_code == 404, response.text
    listed = httpx.get(f"{daemon.url}{API}/discovery").json()["discoverers"]
    assert ("kubernetes", "idle") not in [(d["service"], d["id"]) for d in listed]
    assert idle.requests == []
    before = len(services.requests)
    response = httpx.post(f"{daemon.url}{API}/config/scraper", json={"add": scraper("idle")})
    assert response.status_code == 204, response.text
    assert wait_until(lambda: discovered(daemon, "idle"), what="the idle element") == {
        "node/n9:0": (["127.0.0.1:1"], {
            M + "node_name": "n9", M + "node_label_kubernetes_io_hostname": "n9",
            M + "node_address_Hostname": "n9", M + "node_address_InternalIP": "127.0.0.1",
            "instance": "n9"})}
    assert idle.asked()[:1] == ["/api/v1/nodes?resourceVersion=0"]
    time.sleep(0.5)
    assert len(services.requests) == before  # the other elements kept their watches


def main(argv: list[str]) -> int:
    from kapa_core.testing import to_toml
    from tests.compat.oracle import Kapacitor
    from tests.integration.pki import ca_and_server

    binary = argv[argv.index("--kapacitord") + 1]
    import tempfile

    directory = Path(tempfile.mkdtemp(prefix="k8s-oracle-"))
    ca, cert, key = ca_and_server(directory)
    with RecordingHTTPServer(status=200, headers={"Content-Type": "text/plain"},
                             body=b"kube_metric 7\n") as metrics, \
            FakeKubernetes(token=TOKEN, tls=(cert, key)) as nodes, \
            FakeKubernetes() as services:
        nodes.put("nodes", kubelet(metrics.port))
        services.put("services", service("default", "web", [("http", 80, "TCP")]))
        server = Kapacitor(binary, extra_conf=to_toml(sections(nodes, services, ca)))
        try:
            out = scenario(server.url, nodes, services)
        finally:
            server.close()
    out["headers"] = [list(h) for h in out["headers"]]
    print(json.dumps(out, indent=4))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

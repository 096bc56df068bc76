"""[[consul]], [[marathon]] and [[triton]] through the real daemon, against local servers
answering as those services' HTTP APIs document (the fakes of the unit tests):
``GET /kapacitor/v1/discovery`` shows the groups and follows changes, the section
service tests answer as Kapacitor's, and the requests the daemon makes are those
kapacitord 1.5.7 made against the same fakes (recorded below as data).

As in Kapacitor, a discoverer element runs only while an enabled ``[[scraper]]`` names
it: each element the tests expect to run has one. The fakes name 10.x addresses, which
``-blacklist-cidrs 10.0.0.0/8`` refuses before any connection; triton's targets are host
names under ``dns-suffix``, which its scraper could only ask through ``proxy-url``, a
loopback server: no scrape leaves 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kapa_core.testing import DaemonProcess, wait_until
from kapa_core.testing.http import RecordingHTTPServer
from tests.unit.test_consul_discovery import FakeAPI, FakeConsul, Request, entry
from tests.unit.test_marathon_discovery import FakeMarathon, app
from tests.unit.test_triton_discovery import CONTAINERS, Certs, FakeTriton, make_certs

pytestmark = pytest.mark.integration

API = "/kapacitor/v1"

# What kapacitord 1.5.7 asked of the same fakes (a [[scraper]] following each element;
# consul with token = "s3cret" and services = ["web"], marathon with bearer-token = "tok",
# triton with a client certificate), request by request until the first change.
KAPACITOR_CONSUL = [
    ("/v1/catalog/services", "wait=30000ms"),
    ("/v1/agent/self", ""),
    ("/v1/catalog/services", "index=7&wait=30000ms"),
    ("/v1/catalog/service/web", "wait=30000ms"),
    ("/v1/catalog/service/web", "index=7&wait=30000ms"),
]
KAPACITOR_CONSUL_HEADERS = {"authorization": "Basic Og==", "x-consul-token": "s3cret"}
KAPACITOR_MARATHON = ("/v2/apps/", "embed=apps.tasks", {"authorization": "token=tok"})
KAPACITOR_TRITON = ("/v1/discover", "", {})  # no credential header: the certificate
# Kapacitor's answers to the section service tests (the same for the three sections)
KAPACITOR_TEST_OK = {"success": True, "message": ""}
KAPACITOR_TEST_UNKNOWN = {"success": False,
                          "message": 'discoverer "nope" is not enabled or does not exist'}
KAPACITOR_TEST_OPTIONS = {"id": ""}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("triton-certs"))


class Metrics(FakeAPI):
    """A scrape target: one sample in Prometheus' text format."""

    def answer(self, request: Request) -> tuple[int, dict[str, str], Any]:
        if request.path != "/metrics":
            return 404, {}, b"not found"
        return 200, {"Content-Type": "text/plain; version=0.0.4"}, \
            b'# TYPE kapa_metric gauge\nkapa_metric{kind="x"} 42\n'


@pytest.fixture(scope="module")
def metrics() -> Iterator[Metrics]:
    with Metrics() as server:
        yield server


@pytest.fixture(scope="module")
def fakes(certs: Certs, metrics: Metrics
          ) -> Iterator[tuple[FakeConsul, FakeMarathon, FakeTriton]]:
    with FakeConsul({
        "web": [entry("n1", "10.0.0.1", "web", 80, tags=["a", "b"], service_id="web-1")],
        "other": [entry("n2", "10.0.0.2", "other", 81)],
        "metrics": [entry("n5", "10.0.0.5", "metrics", metrics.port,
                          service_address="127.0.0.1", service_id="metrics-1")],
    }, max_wait=5.0) as consul, FakeMarathon([
        app("/web", [("web.1", "10.1.0.1", [31000])], labels={"team": "ops"},
            image="nginx", definitions=[{"metrics": "yes"}]),
    ]) as marathon, FakeTriton(certs, CONTAINERS[:1]) as triton:
        yield consul, marathon, triton


@pytest.fixture(scope="module")
def lone() -> Iterator[FakeConsul]:
    """The consul of an element no scraper names at first."""
    with FakeConsul({"lone": [entry("n9", "127.0.0.1", "lone", 1)]}, max_wait=5.0) as consul:
        yield consul


@pytest.fixture(scope="module")
def proxy() -> Iterator[RecordingHTTPServer]:
    """The proxy of triton's scraper: a loopback server refusing every request."""
    with RecordingHTTPServer(status=502) as server:
        yield server


def scraper(service: str, id: str, **options: Any) -> dict[str, Any]:
    """An enabled scraper following the ``service`` element ``id``; it scrapes once an
    hour unless ``options`` say otherwise."""
    return {"enabled": True, "name": f"sc-{service}-{id}", "type": "prometheus",
            "db": "prom", "rp": "autogen", "discoverer-service": service,
            "discoverer-id": id, "scrape-interval": "1h", **options}


@pytest.fixture(scope="module")
def daemon(fakes: tuple[FakeConsul, FakeMarathon, FakeTriton], certs: Certs,
           lone: FakeConsul, proxy: RecordingHTTPServer) -> Iterator[DaemonProcess]:
    consul, marathon, triton = fakes
    config: dict[str, Any] = {
        "consul": [{"enabled": True, "id": "c", "address": f"127.0.0.1:{consul.port}",
                    "token": "s3cret", "services": ["web", "db"], "tag-separator": ";"},
                   {"enabled": True, "id": "s", "address": f"127.0.0.1:{consul.port}",
                    "services": ["metrics"]},
                   {"enabled": False, "id": "off", "address": "127.0.0.1:1"},
                   {"enabled": True, "id": "lone", "address": f"127.0.0.1:{lone.port}",
                    "services": ["lone"]}],
        "marathon": [{"enabled": True, "id": "m", "servers": [marathon.url],
                      "bearer-token": "tok", "refresh-interval": "300ms", "timeout": "2s"}],
        "triton": [{"enabled": True, "id": "t", "account": "testuser",
                    "dns-suffix": "triton.example.com", "endpoint": "127.0.0.1",
                    "port": triton.port, "refresh-interval": "300ms", "ssl-ca": certs.ca,
                    "ssl-cert": certs.client_cert, "ssl-key": certs.client_key}],
        "scraper": [{"enabled": True, "name": "sc", "discoverer-service": "consul",
                     "discoverer-id": "s", "db": "prom", "rp": "autogen",
                     "type": "prometheus", "scrape-interval": "500ms",
                     "scrape-timeout": "400ms"},
                    scraper("consul", "c"), scraper("consul", "off"),
                    scraper("marathon", "m"), scraper("marathon", "m2"),
                    scraper("triton", "t", **{"proxy-url": proxy.url})],
    }
    with DaemonProcess(config, args=["-blacklist-cidrs", "10.0.0.0/8"]) as process:
        yield process
        process.stop()


def discovered(daemon: DaemonProcess, service: str, id: str) -> dict[str, Any]:
    response = httpx.get(f"{daemon.url}{API}/discovery/{service}/{id}")
    assert response.status_code == 200, response.text
    return {g["source"]: (g["targets"], g["labels"]) for g in response.json()["groups"]}


def test_the_groups_appear_in_the_discovery_api(
        daemon: DaemonProcess, fakes: tuple[FakeConsul, FakeMarathon, FakeTriton]) -> None:
    consul, marathon, triton = fakes
    assert wait_until(lambda: discovered(daemon, "consul", "c"), what="consul groups") == {
        "web:0": (["10.0.0.1:80"], {
            "__meta_consul_address": "10.0.0.1", "__meta_consul_dc": "dc1",
            "__meta_consul_node": "n1", "__meta_consul_service": "web",
            "__meta_consul_service_address": "", "__meta_consul_service_id": "web-1",
            "__meta_consul_service_port": "80", "__meta_consul_tags": ";a;b;"})}
    assert wait_until(lambda: discovered(daemon, "marathon", "m"), what="marathon") == {
        "/web:0": (["10.1.0.1:31000"], {
            "__meta_marathon_app": "/web", "__meta_marathon_app_label_team": "ops",
            "__meta_marathon_image": "nginx",
            "__meta_marathon_port_definition_label_metrics": "yes",
            "__meta_marathon_task": "web.1"})}
    uuid = CONTAINERS[0]["vm_uuid"]
    assert wait_until(lambda: discovered(daemon, "triton", "t"), what="triton") == {
        f"https://127.0.0.1:{triton.port}/v1/discover:0": (
            [f"{uuid}.triton.example.com:{triton.port}"], {
                "__meta_triton_machine_alias": "server01",
                "__meta_triton_machine_brand": "lx",
                "__meta_triton_machine_id": uuid,
                "__meta_triton_machine_image": CONTAINERS[0]["vm_image_uuid"],
                "__meta_triton_server_id": CONTAINERS[0]["server_uuid"]})}
    listed = httpx.get(f"{daemon.url}{API}/discovery").json()["discoverers"]
    assert [(d["service"], d["id"]) for d in listed
            if d["service"] in ("consul", "marathon", "triton")] == [
        ("consul", "c"), ("consul", "s"), ("marathon", "m"), ("triton", "t")]
    # "off" is not running though a scraper names it; "lone" is enabled but no scraper
    # names it


def test_the_requests_are_those_kapacitor_makes(
        daemon: DaemonProcess, fakes: tuple[FakeConsul, FakeMarathon, FakeTriton]) -> None:
    consul, marathon, triton = fakes
    wait_until(lambda: len(consul.seen("/v1/catalog/service/web")) >= 2, what="watch")
    # element "c" (the one with the token; "s" shares the fake)
    mine = [r for r in consul.seen() if "x-consul-token" in r.headers]
    first = mine[:len(KAPACITOR_CONSUL)]
    assert [(r.path, r.query) for r in first[:2]] == KAPACITOR_CONSUL[:2]
    # the watch of a service and the next catalog query run side by side: compare sets
    assert sorted((r.path, r.query) for r in first) == sorted(KAPACITOR_CONSUL)
    for request in mine:
        assert {k: request.headers.get(k) for k in KAPACITOR_CONSUL_HEADERS} == \
            KAPACITOR_CONSUL_HEADERS
    assert consul.seen("/v1/catalog/service/other") == []  # not in services
    wait_until(lambda: marathon.requests and triton.requests, what="polls")
    path, query, headers = KAPACITOR_MARATHON
    for request in marathon.seen():
        assert (request.path, request.query) == (path, query)
        assert {k: request.headers.get(k) for k in headers} == headers
    path, query, headers = KAPACITOR_TRITON
    for request in triton.seen():
        assert (request.path, request.query) == (path, query)
        assert "authorization" not in request.headers


def test_changes_appear(daemon: DaemonProcess,
                        fakes: tuple[FakeConsul, FakeMarathon, FakeTriton]) -> None:
    consul, marathon, triton = fakes
    wait_until(lambda: discovered(daemon, "consul", "c"), what="consul groups")
    consul.set({**consul.services,
                "db": [entry("n3", "10.0.0.3", "db", 5432, service_address="10.9.0.3"),
                       entry("n4", "10.0.0.4", "db", 5433)]})
    groups = wait_until(lambda: discovered(daemon, "consul", "c"),
                        until=lambda g: len(g) == 3, what="db service")
    assert groups["db:0"][0] == ["10.9.0.3:5432"] and groups["db:1"][0] == ["10.0.0.4:5433"]
    consul.set({k: v for k, v in consul.services.items() if k != "web"})  # web leaves
    wait_until(lambda: sorted(discovered(daemon, "consul", "c")),
               until=lambda g: g == ["db:0", "db:1"], what="web gone")
    marathon.apps = [app("/api", [("api.1", "10.1.0.5", [8000, 8001])])]
    wait_until(lambda: discovered(daemon, "marathon", "m"),
               until=lambda g: sorted(g) == ["/api:0", "/api:1"], what="marathon change")
    triton.containers = CONTAINERS
    wait_until(lambda: discovered(daemon, "triton", "t"),
               until=lambda g: len(g) == 2, what="triton change")
    # a failing server keeps the last targets
    triton.status, triton.body = 500, b"oops"
    seen = len(triton.requests)
    wait_until(lambda: len(triton.requests) >= seen + 2, what="failed refreshes")
    assert len(discovered(daemon, "triton", "t")) == 2
    triton.status, triton.body = 200, None


@pytest.mark.parametrize("section", ["consul", "marathon", "triton"])
def test_service_tests_answer_as_kapacitor(daemon: DaemonProcess, section: str) -> None:
    url = f"{daemon.url}{API}/service-tests/{section}"
    options = httpx.get(url).json()
    assert (options["name"], options["options"]) == (section, KAPACITOR_TEST_OPTIONS)
    id = {"consul": "c", "marathon": "m", "triton": "t"}[section]
    response = httpx.post(url, json={"id": id}, timeout=40)
    assert response.json() == KAPACITOR_TEST_OK
    response = httpx.post(url, json={"id": "nope"}, timeout=40)
    assert response.json() == KAPACITOR_TEST_UNKNOWN



def test_a_scraper_scrapes_what_consul_names(daemon: DaemonProcess, metrics: Metrics,
                                              ) -> None:
    script = ('dbrp "prom"."autogen"\n'
              "stream|from().measurement('kapa_metric')|httpOut('out')")
    response = httpx.post(f"{daemon.url}{API}/tasks", json={
        "id": "consul_scrape", "type": "stream", "script": script, "status": "enabled"})
    assert response.status_code == 200, response.text
    out = wait_until(lambda: httpx.get(f"{daemon.url}{API}/tasks/consul_scrape/out").json()
                     .get("series"), what="a scraped point")
    [series] = out
    # the __meta_consul_* labels are dropped; instance is the address consul named
    assert series["tags"] == {"__name__": "kapa_metric", "instance": f"127.0.0.1:{metrics.port}",
                              "kind": "x"}
    assert series["values"][0][1] == 42
    assert {r.path for r in metrics.seen()} == {"/metrics"}


def test_config_overrides_restart_the_changed_element(
        daemon: DaemonProcess, fakes: tuple[FakeConsul, FakeMarathon, FakeTriton]) -> None:
    consul, marathon, triton = fakes
    response = httpx.post(f"{daemon.url}{API}/config/consul/c",
                          json={"set": {"services": ["other"], "tag-separator": "/"}})
    assert response.status_code == 204, response.text
    groups = wait_until(lambda: discovered(daemon, "consul", "c"),
                        until=lambda g: sorted(g) == ["other:0"], what="overridden element")
    assert groups["other:0"][1]["__meta_consul_tags"] == "//"
    # the token stays redacted in the config API
    element = httpx.get(f"{daemon.url}{API}/config/consul/c").json()
    assert element["options"]["token"] is True and element["redacted"] == ["token", "password"]
    response = httpx.post(f"{daemon.url}{API}/config/marathon",
                          json={"add": {"id": "m2", "enabled": True,
                                        "servers": [marathon.url]}})
    assert response.status_code == 204, response.text
    wait_until(lambda: discovered(daemon, "marathon", "m2"), what="the added element")


def test_an_element_runs_once_a_scraper_names_it(daemon: DaemonProcess,
                                                  lone: FakeConsul) -> None:
    # enabled since the start, no scraper names it: not running, nothing asked
    response = httpx.get(f"{daemon.url}{API}/discovery/consul/lone")
    assert response.status_code == 404, response.text
    listed = httpx.get(f"{daemon.url}{API}/discovery").json()["discoverers"]
    assert ("consul", "lone") not in [(d["service"], d["id"]) for d in listed]
    assert lone.seen() == []
    response = httpx.post(f"{daemon.url}{API}/config/scraper",
                          json={"add": scraper("consul", "lone")})
    assert response.status_code == 204, response.text
    assert wait_until(lambda: discovered(daemon, "consul", "lone"), what="lone groups") == {
        "lone:0": (["127.0.0.1:1"], {
            "__meta_consul_address": "127.0.0.1", "__meta_consul_dc": "dc1",
            "__meta_consul_node": "n9", "__meta_consul_service": "lone",
            "__meta_consul_service_address": "", "__meta_consul_service_id": "lone",
            "__meta_consul_service_port": "1", "__meta_consul_tags": ",,"})}
    assert [r.path for r in lone.seen()][:2] == ["/v1/catalog/services", "/v1/agent/self"]
    # removing the scraper stops it again
    response = httpx.post(f"{daemon.url}{API}/config/scraper",
                          json={"remove": ["sc-consul-lone"]})
    assert response.status_code == 204, response.text
    response = httpx.get(f"{daemon.url}{API}/discovery/consul/lone")
    assert response.status_code == 404, response.text

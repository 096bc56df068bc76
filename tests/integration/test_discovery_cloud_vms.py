"""[[gce]] and [[azure]] through the real daemon, against local servers answering as
Google's (metadata server, Compute Engine API) and Azure's (token endpoint, resource
manager) APIs document, reached through the documented endpoint variables
(GCE_METADATA_HOST, CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE, AZURE_AUTHORITY_HOST,
AZURE_RESOURCE_MANAGER_URL): ``GET /kapacitor/v1/discovery`` shows the instances and
machines with Prometheus' labels, a config override moves the targets, the service tests
answer as Kapacitor's, and a ``[[scraper]]`` scrapes an instance and a machine found this
way."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kapa_core.testing import DaemonProcess, wait_until
from kapa_core.testing.http import RecordingHTTPServer
from tests.unit.test_azure_discovery import EXPECTED as AZURE_EXPECTED
from tests.unit.test_azure_discovery import MULTI, SUB, FakeAzure, nic, vm
from tests.unit.test_gce_discovery import EXPECTED as GCE_EXPECTED
from tests.unit.test_gce_discovery import PAGE_2, FakeGoogle

pytestmark = pytest.mark.integration

API = "/kapacitor/v1"
SCRAPE_ZONE = "scrape-zone"
SCRAPE_SUB = "scrape-subscription"


@pytest.fixture(scope="module")
def metrics() -> Iterator[RecordingHTTPServer]:
    """What the scrapers find: one gauge in the text format."""
    with RecordingHTTPServer(status=200, headers={"Content-Type": "text/plain; version=0.0.4"},
                             body=b"# TYPE node_load1 gauge\nnode_load1 0.42\n") as server:
        yield server


@pytest.fixture(scope="module")
def google() -> Iterator[FakeGoogle]:
    with FakeGoogle() as fake:
        instance = copy.deepcopy(PAGE_2["items"][0])  # type: ignore[index]
        instance["name"] = "exporter"
        instance["networkInterfaces"][0]["networkIP"] = "127.0.0.1"
        fake.zones[SCRAPE_ZONE] = {"": {"items": [instance]}}
        yield fake


@pytest.fixture(scope="module")
def azure() -> Iterator[FakeAzure]:
    with FakeAzure() as fake:
        fake.subscriptions[SCRAPE_SUB] = [[vm("exporter", "rg-x", ["exporter-nic"])]]
        fake.nics[("rg-x", "exporter-nic")] = nic(True, ["127.0.0.1"])
        yield fake


@pytest.fixture(scope="module")
def daemon(google: FakeGoogle, azure: FakeAzure,
           metrics: RecordingHTTPServer) -> Iterator[DaemonProcess]:
    gce = {"enabled": True, "project": "acme", "zone": google.ZONE, "port": 9100}
    az = {"enabled": True, "tenant-id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
          "client-id": azure.CLIENT_ID, "client-secret": azure.SECRET, "port": 9100}
    scrape = {"enabled": True, "rp": "autogen", "scrape-interval": "1s",
              "scrape-timeout": "1s"}
    config = {
        "gce": [{**gce, "id": "vms"},
                {**gce, "id": "scrape", "zone": SCRAPE_ZONE, "port": metrics.port},
                {**gce, "id": "off", "enabled": False}],
        "azure": [{**az, "id": "vms", "subscription-id": SUB},
                  {**az, "id": "scrape", "subscription-id": SCRAPE_SUB,
                   "port": metrics.port}],
        "scraper": [{**scrape, "name": "gcescrape", "db": "gcedb",
                     "discoverer-service": "gce", "discoverer-id": "scrape"},
                    {**scrape, "name": "azscrape", "db": "azdb",
                     "discoverer-service": "azure", "discoverer-id": "scrape"}],
    }
    with DaemonProcess(config, env={**google.env(), **azure.env()}) as process:
        for db in ("gcedb", "azdb"):
            script = (f'dbrp "{db}"."autogen"\nstream|from().measurement(\'node_load1\')'
                      "|httpOut('out')")
            response = httpx.post(process.url + API + "/tasks", json={
                "id": f"load_{db}", "type": "stream", "script": script,
                "status": "enabled"})
            assert response.status_code == 200, response.text
        yield process
        process.stop()


def shown(daemon: DaemonProcess, service: str, id: str) -> list[dict[str, Any]] | None:
    response = httpx.get(f"{daemon.url}{API}/discovery/{service}/{id}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return list(response.json()["groups"])


def expected_json(groups: list[Any]) -> list[dict[str, Any]]:
    return [group.to_json() for group in groups]


def wait_shown(daemon: DaemonProcess, service: str, id: str, expected: list[dict[str, Any]],
               timeout: float = 20.0) -> None:
    wait_until(lambda: shown(daemon, service, id) == expected, timeout,
               f"{service}/{id} groups {expected}, have {shown(daemon, service, id)}")


def test_gce_instances_are_shown_with_prometheus_labels(daemon: DaemonProcess,
                                                        google: FakeGoogle) -> None:
    wait_shown(daemon, "gce", "vms", expected_json(GCE_EXPECTED))
    assert shown(daemon, "gce", "off") is None
    metadata = [r for r in google.requests if r.route.startswith("/computeMetadata/")]
    assert metadata and all(r.headers["metadata-flavor"] == "Google" for r in metadata)
    pages = [r.query.get("pageToken", [""])[0] for r in google.api_requests()
             if f"/zones/{google.ZONE}/" in r.route]
    assert pages[:2] == ["", "page-2"]


def test_azure_machines_are_shown_with_prometheus_labels(daemon: DaemonProcess,
                                                         azure: FakeAzure) -> None:
    wait_shown(daemon, "azure", "vms", expected_json(AZURE_EXPECTED))
    listed = [r.path for r in azure.arm_requests() if f"/subscriptions/{SUB}/providers/" in r.path]
    assert listed[:2] == [
        f"/arm/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachines"
        "?api-version=2016-03-30",
        f"/arm/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachines"
        "?api-version=2016-03-30&%24skiptoken=1"]


def test_service_tests_answer_as_kapacitor(daemon: DaemonProcess) -> None:
    listed = httpx.get(daemon.url + API + "/service-tests").json()["services"]
    options = {s["name"]: s["options"] for s in listed}
    assert options["gce"] == options["azure"] == {"id": ""}
    for service in ("gce", "azure"):
        url = f"{daemon.url}{API}/service-tests/{service}"
        good = httpx.post(url, json={"id": "vms"}, timeout=40)
        assert good.json() == {"success": True, "message": ""}, good.text
        unknown = httpx.post(url, json={"id": "off"}, timeout=40)
        assert unknown.json() == {"success": False, "message":
                                  'discoverer "off" is not enabled or does not exist'}


def test_scrapers_get_what_an_instance_and_a_machine_serve(
        daemon: DaemonProcess, metrics: RecordingHTTPServer) -> None:
    def series(db: str) -> list[dict[str, Any]]:
        out = httpx.get(f"{daemon.url}{API}/tasks/load_{db}/out").json()
        return list(out.get("series") or [])

    for db in ("gcedb", "azdb"):
        wait_until(lambda db=db: series(db), 20, f"node_load1 through {db}")  # type: ignore[misc]
        got = series(db)[0]
        assert got["name"] == "node_load1"
        assert got["values"][0][got["columns"].index("value")] == 0.42
        assert got.get("tags", {}).get("instance") == f"127.0.0.1:{metrics.port}"
        assert not [tag for tag in got.get("tags", {}) if tag.startswith("__meta_")]


def test_config_override_moves_the_targets(daemon: DaemonProcess, azure: FakeAzure) -> None:
    wait_shown(daemon, "azure", "vms", expected_json(AZURE_EXPECTED))
    response = httpx.post(f"{daemon.url}{API}/config/azure/vms", json={"set": {"port": 9200}})
    assert response.status_code == 204, response.text
    moved = [group.to_json() for group in AZURE_EXPECTED]
    for group in moved:
        group["targets"] = [t.replace(":9100", ":9200") for t in group["targets"]]
    wait_shown(daemon, "azure", "vms", moved)
    assert any(r.path.startswith(f"/arm/subscriptions/{SUB}/resourceGroups/rg-db/")
               for r in azure.arm_requests())
    assert MULTI["name"] == "db-1"

"""[[gce]] and [[azure]] through the real daemon, against local servers answering as
Google's (metadata server, Compute Engine API) and Azure's (token endpoint, resource
manager) APIs document, reached through the documented endpoint variables
(GCE_METADATA_HOST, CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE, AZURE_AUTHORITY_HOST,
AZURE_RESOURCE_MANAGER_URL): ``GET /kapacitor/v1/discovery`` shows the instances and
machines with Prometheus' labels, a config override moves the targets, the service tests
answer as Kapacitor's, and a ``[[scraper]]`` scrapes an instance and a machine found this
way. An element runs only while a ``[[scraper]]`` names it: one no scraper names asks
nothing until a config override adds a scraper naming it.

The instances and machines of the ``vms`` elements have private 10.x addresses: the
daemon's outgoing deny list (``-blacklist-cidrs 10.0.0.0/8``) makes the scrapers naming
them refuse those targets before any connection."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kapa_core.testing import DaemonProcess, wait_until
from kapa_core.testing.http import RecordingHTTPServer
from tests.unit.test_azure_discovery import EXPECTED as AZURE_EXPECTED
from tests.unit.test_azure_discovery import KAPACITOR_1_5_7 as AZURE_KAPACITOR
from tests.unit.test_azure_discovery import MULTI, SUB, FakeAzure, nic, vm
from tests.unit.test_gce_discovery import EXPECTED as GCE_EXPECTED
from tests.unit.test_gce_discovery import KAPACITOR_1_5_7 as GCE_KAPACITOR
from tests.unit.test_gce_discovery import PAGE_2, FakeGoogle

pytestmark = pytest.mark.integration

API = "/kapacitor/v1"
SCRAPE_ZONE = "scrape-zone"
SCRAPE_SUB = "scrape-subscription"
SPARE_ZONE = "spare-zone"  # the zone of a [[gce]] element no scraper names at first


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
        spare = copy.deepcopy(instance)
        spare["name"] = "spare"
        fake.zones[SPARE_ZONE] = {"": {"items": [spare]}}
        yield fake


@pytest.fixture(scope="module")
def azure() -> Iterator[FakeAzure]:
    with FakeAzure() as fake:
        fake.subscriptions[SCRAPE_SUB] = [[vm("exporter", "rg-x", ["exporter-nic"])]]
        fake.nics[("rg-x", "exporter-nic")] = nic(True, ["127.0.0.1"])
        yield fake


def naming(service: str, id: str) -> dict[str, Any]:
    """A scraper that names the element ``id`` only to have it run (scrapes hourly)."""
    return {"enabled": True, "name": f"{service}_{id}", "db": f"{service}_{id}",
            "rp": "autogen", "scrape-interval": "1h", "discoverer-service": service,
            "discoverer-id": id}


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
                {**gce, "id": "off", "enabled": False},
                {**gce, "id": "spare", "zone": SPARE_ZONE, "port": metrics.port}],
        "azure": [{**az, "id": "vms", "subscription-id": SUB},
                  {**az, "id": "scrape", "subscription-id": SCRAPE_SUB,
                   "port": metrics.port}],
        "scraper": [{**scrape, "name": "gcescrape", "db": "gcedb",
                     "discoverer-service": "gce", "discoverer-id": "scrape"},
                    {**scrape, "name": "azscrape", "db": "azdb",
                     "discoverer-service": "azure", "discoverer-id": "scrape"},
                    naming("gce", "vms"), naming("azure", "vms")],
    }
    with DaemonProcess(config, env={**google.env(), **azure.env()},
                       args=["-blacklist-cidrs", "10.0.0.0/8"]) as process:
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
    for service, kapacitor in (("gce", GCE_KAPACITOR), ("azure", AZURE_KAPACITOR)):
        url = f"{daemon.url}{API}/service-tests/{service}"
        good = httpx.post(url, json={"id": "vms"}, timeout=40)
        assert good.json() == kapacitor["service_test"], good.text
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


def test_element_runs_only_while_a_scraper_names_it(daemon: DaemonProcess,
                                                    google: FakeGoogle,
                                                    metrics: RecordingHTTPServer) -> None:
    """As in Kapacitor, an enabled element no [[scraper]] names lists nothing and is not
    shown; a scraper added by a config override starts it."""
    def spare_pages() -> list[Any]:
        return [r for r in google.api_requests() if f"/zones/{SPARE_ZONE}/" in r.route]

    # the daemon has run: the named elements have listed their zones
    wait_shown(daemon, "gce", "vms", expected_json(GCE_EXPECTED))
    wait_until(lambda: [r for r in google.api_requests()
                        if f"/zones/{SCRAPE_ZONE}/" in r.route], 20, "the scrape zone listed")
    assert shown(daemon, "gce", "spare") is None
    listed = httpx.get(f"{daemon.url}{API}/discovery").json()
    assert ("gce", "spare") not in {(d["service"], d["id"]) for d in listed["discoverers"]}
    assert spare_pages() == []
    response = httpx.post(f"{daemon.url}{API}/config/scraper",
                          json={"add": naming("gce", "spare")})
    assert response.status_code == 204, response.text
    wait_until(lambda: shown(daemon, "gce", "spare"), 20, "gce/spare groups")
    groups = shown(daemon, "gce", "spare")
    assert groups is not None and [g["targets"] for g in groups] == [
        [f"127.0.0.1:{metrics.port}"]]
    assert groups[0]["labels"]["__meta_gce_instance_name"] == "spare"
    assert spare_pages()


# -- what Kapacitor 1.5.7 asks (recorded with record_kapacitor below) --------------------
class InterceptingProxy:
    """An HTTPS proxy on a free loopback port for recording what kapacitord sends to
    Google's and Azure's public endpoints: it accepts CONNECT, ends TLS with a
    certificate for those hosts signed by a throw-away CA (kapacitord trusts it through
    SSL_CERT_FILE), keeps each request (host, method, path, headers, body) and answers it
    with what ``fakes[host]`` answers for the same path under its prefix."""

    HOSTS = ("www.googleapis.com", "login.microsoftonline.com", "management.azure.com")

    def __init__(self, directory: Any, fakes: dict[str, tuple[str, str]]) -> None:
        import socketserver
        import ssl
        import subprocess
        import threading

        def openssl(*args: str) -> None:
            subprocess.run(["openssl", *args], check=True, capture_output=True,
                           cwd=directory, timeout=60)

        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                "/CN=oracle ca", "-keyout", "ca.key", "-out", "ca.pem")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=www.googleapis.com",
                "-keyout", "leaf.key", "-out", "leaf.csr")
        (directory / "san.cnf").write_text(
            "subjectAltName=" + ",".join(f"DNS:{h}" for h in self.HOSTS) + "\n")
        openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "leaf.pem")
        self.ca = str(directory / "ca.pem")
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(directory / "leaf.pem", directory / "leaf.key")
        self.requests: list[dict[str, Any]] = []
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline().decode()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                host = line.split()[1].rsplit(":", 1)[0]
                self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self.wfile.flush()
                with tls.wrap_socket(self.connection, server_side=True) as conn:
                    reader = conn.makefile("rb")
                    while proxy._one(conn, reader, host):
                        pass

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.fakes = fakes
        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _one(self, conn: Any, reader: Any, host: str) -> bool:
        request_line = reader.readline().decode()
        if not request_line.strip():
            return False
        method, path, _ = request_line.split(" ", 2)
        headers: dict[str, str] = {}
        while (line := reader.readline().decode()) not in ("\r\n", "\n", ""):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = reader.read(int(headers.get("content-length") or 0))
        self.requests.append({"host": host, "method": method, "path": path,
                              "headers": headers, "body": body.decode()})
        base, prefix = self.fakes[host]
        answer = httpx.request(method, base + prefix + path, content=body, headers={
            k: v for k, v in headers.items() if k in ("authorization", "content-type")})
        content = answer.content.replace(
            (base + "/arm").encode(), b"https://management.azure.com")
        conn.sendall(f"HTTP/1.1 {answer.status_code} {answer.reason_phrase}\r\n"
                     f"Content-Type: {answer.headers.get('content-type', 'text/plain')}\r\n"
                     f"Content-Length: {len(content)}\r\n\r\n".encode() + content)
        return True

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def record_kapacitor(binary: str) -> dict[str, Any]:
    """Run kapacitord 1.5.7's [[gce]] and [[azure]] service tests against the fakes (the
    metadata server through GCE_METADATA_HOST, the rest through the intercepting proxy)
    and return what it asked and answered."""
    import os
    import tempfile
    from pathlib import Path

    from tests.compat.oracle import Kapacitor

    directory = Path(tempfile.mkdtemp(prefix="cloud-vms-oracle-"))
    with FakeGoogle() as google, FakeAzure() as azure:
        proxy = InterceptingProxy(directory, {
            "www.googleapis.com": (google.url, ""),
            "login.microsoftonline.com": (azure.url, ""),
            "management.azure.com": (azure.url, "/arm")})
        # kapacitord 1.5.7 panics on a tag without a value (Prometheus dereferences it)
        web = next(m for m in azure.subscriptions[SUB][0] if m["name"] == "Web-1")
        web["tags"] = {k: v for k, v in web["tags"].items() if v is not None}
        sections = {"gce": f"""
[[gce]]
  enabled = true
  id = "vms"
  project = "acme"
  zone = "{google.ZONE}"
  filter = 'status = "RUNNING"'
  port = 9100
  refresh-interval = "1m"
  tag-separator = ","
""", "azure": f"""
[[azure]]
  enabled = true
  id = "vms"
  subscription-id = "{SUB}"
  tenant-id = "72f988bf-86f1-41af-91ab-2d7cd011db47"
  client-id = "{azure.CLIENT_ID}"
  client-secret = "{azure.SECRET}"
  port = 9100
  refresh-interval = "5m"
"""}
        # Kapacitor 1.5.7 gives the elements of a config file no defaults: without
        # refresh-interval its ticker panics, hence every key above.
        answers = {}
        saved = dict(os.environ)
        try:
            for service, extra in sections.items():
                os.environ.update({"HTTPS_PROXY": proxy.url, "SSL_CERT_FILE": proxy.ca,
                                   "GCE_METADATA_HOST": google.address,
                                   "HOME": str(directory)})
                try:
                    kapacitor = Kapacitor(binary, extra_conf=extra)
                finally:
                    os.environ.clear()
                    os.environ.update(saved)
                try:
                    answers[service] = httpx.post(
                        f"{kapacitor.url}/kapacitor/v1/service-tests/{service}",
                        json={"id": "vms"}, timeout=60).json()
                finally:
                    kapacitor.close()
        finally:
            proxy.close()
        metadata = [{"method": r.method, "path": r.path,
                     "metadata-flavor": r.headers.get("metadata-flavor")}
                    for r in google.requests if r.route.startswith("/computeMetadata/")]
    return {"service_tests": answers, "metadata": metadata, "requests": proxy.requests}


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(record_kapacitor(sys.argv[1] if len(sys.argv) > 1
                                      else "/opt/kbin/kapacitord"), indent=1))

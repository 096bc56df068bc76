"""[[triton]] discovery against a local HTTPS server answering ``/v<version>/discover`` as
Triton's container monitor (cmon) does, which requires a client certificate (made with
``openssl`` here): containers -> groups and labels, the request, refreshes, failures
keeping the targets, TLS refusals, the section's service test."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
from kapa_plugins.discovery import triton
from kapa_plugins.discovery.triton import TritonConfig, TritonDiscoverer, container_groups

from kapa_core.errors import KapaError
from kapa_core.logs import Logger
from kapa_core.models.duration import Duration
from kapa_core.services import ServiceContext
from tests.unit.test_consul_discovery import FakeAPI, Request, start

MS = 1_000_000


@dataclass(frozen=True)
class Certs:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate it
    signed, plus a client certificate signed by another CA."""

    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    stranger_cert: str
    stranger_key: str


def make_certs(directory: Path) -> Certs:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ca(name: str) -> None:
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.crt")

    def signed(name: str, by: str, ext: str) -> None:
        (directory / f"{name}.ext").write_text(ext)
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", f"{by}.crt", "-CAkey", f"{by}.key",
            "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", "-extfile", f"{name}.ext")

    ca("ca")
    ca("other-ca")
    signed("server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:cmon.test\n"
           "extendedKeyUsage=serverAuth\n")
    signed("client", "ca", "extendedKeyUsage=clientAuth\n")
    signed("stranger", "other-ca", "extendedKeyUsage=clientAuth\n")
    d = str(directory)
    return Certs(f"{d}/ca.crt", f"{d}/server.crt", f"{d}/server.key", f"{d}/client.crt",
                 f"{d}/client.key", f"{d}/stranger.crt", f"{d}/stranger.key")


def server_context(certs: Certs) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.server_cert, certs.server_key)
    context.load_verify_locations(certs.ca)
    context.verify_mode = ssl.CERT_REQUIRED  # cmon admits clients by their certificate
    return context


def container(uuid: str, alias: str, *, brand: str = "lx",
              image: str = "7b27a514-89d7-11e6-bee6-3f96f367bee7",
              server: str = "44454c4c-5000-104d-8037-b7c04f5a5131") -> dict[str, Any]:
    return {"server_uuid": server, "vm_alias": alias, "vm_brand": brand,
            "vm_image_uuid": image, "vm_uuid": uuid}


CONTAINERS = [container("ad466fbf-46a2-4027-9b64-8d3cdb7e9072", "server01"),
              container("d34b4a4a-d4f3-4ac6-9d3c-5e5f0b4a3e31", "server02",
                        brand="joyent")]


class FakeTriton(FakeAPI):
    """``GET /v<version>/discover`` over HTTPS with a client certificate required."""

    def __init__(self, certs: Certs, containers: list[dict[str, Any]] | None = None) -> None:
        super().__init__(server_context(certs))
        self.containers = list(containers or [])
        self.status = 200
        self.body: Any = None

    def answer(self, request: Request) -> tuple[int, dict[str, str], Any]:
        if request.path not in ("/v1/discover", "/v2/discover"):
            return 404, {}, {"code": "ResourceNotFound",
                             "message": f"{request.path} does not exist"}
        if self.body is not None:
            return self.status, {}, self.body
        return self.status, {}, {"containers": self.containers}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("triton-certs"))


@pytest.fixture
def fake(certs: Certs) -> Iterator[FakeTriton]:
    with FakeTriton(certs, CONTAINERS) as server:
        yield server


def config(fake: FakeAPI, certs: Certs, **kw: Any) -> TritonConfig:
    values: dict[str, Any] = dict(
        enabled=True, id="t", account="testuser", dns_suffix="triton.example.com",
        endpoint="127.0.0.1", port=fake.port, refresh_interval=Duration(200 * MS),
        ssl_ca=certs.ca, ssl_cert=certs.client_cert, ssl_key=certs.client_key)
    values.update(kw)
    return TritonConfig(**values)


def expected(port: int, endpoint: str = "127.0.0.1", version: int = 1) -> dict[str, Any]:
    source = f"https://{endpoint}:{port}/v{version}/discover"
    return {
        f"{source}:0": ((f"ad466fbf-46a2-4027-9b64-8d3cdb7e9072.triton.example.com:{port}",), {
            "__meta_triton_machine_id": "ad466fbf-46a2-4027-9b64-8d3cdb7e9072",
            "__meta_triton_machine_alias": "server01",
            "__meta_triton_machine_brand": "lx",
            "__meta_triton_machine_image": "7b27a514-89d7-11e6-bee6-3f96f367bee7",
            "__meta_triton_server_id": "44454c4c-5000-104d-8037-b7c04f5a5131"}),
        f"{source}:1": ((f"d34b4a4a-d4f3-4ac6-9d3c-5e5f0b4a3e31.triton.example.com:{port}",), {
            "__meta_triton_machine_id": "d34b4a4a-d4f3-4ac6-9d3c-5e5f0b4a3e31",
            "__meta_triton_machine_alias": "server02",
            "__meta_triton_machine_brand": "joyent",
            "__meta_triton_machine_image": "7b27a514-89d7-11e6-bee6-3f96f367bee7",
            "__meta_triton_server_id": "44454c4c-5000-104d-8037-b7c04f5a5131"}),
    }


# -- containers -> groups ---------------------------------------------------------------
def test_containers_become_one_group_each_with_prometheus_labels() -> None:
    cfg = TritonConfig(endpoint="cmon.example.com", dns_suffix="triton.example.com",
                       port=9163, version=1)
    groups = container_groups({"containers": CONTAINERS}, cfg)
    assert {g.source: (g.targets, dict(g.labels)) for g in groups} == expected(
        9163, "cmon.example.com")
    assert container_groups({}, cfg) == [] and container_groups({"containers": None}, cfg) == []
    [odd] = container_groups({"Containers": [{"VM_UUID": "u"}]}, cfg)  # Go ignores case
    assert odd.targets == ("u.triton.example.com:9163",)
    assert odd.labels["__meta_triton_machine_alias"] == ""


@pytest.mark.parametrize("body", [[], "x", {"containers": {}}, {"containers": [5]},
                                  {"containers": [{"vm_uuid": 5}]}])
def test_answers_of_another_shape_are_errors(body: Any) -> None:
    with pytest.raises(triton.TritonError):
        container_groups(body, TritonConfig())


# -- against the fake -------------------------------------------------------------------
async def test_containers_are_discovered_over_tls_with_a_client_certificate(
        fake: FakeTriton, certs: Certs) -> None:
    async with trio.open_nursery() as nursery:
        running = await start(nursery, "triton", config(fake, certs), TritonDiscoverer)
        await running.until(lambda: running.updates >= 1, timeout=5)
        assert running.groups() == expected(fake.port)
        await running.until(lambda: len(fake.requests) >= 3)  # every refresh-interval
        nursery.cancel_scope.cancel()
    await running.context.clients.aclose()
    for request in fake.requests:
        assert (request.path, request.query) == ("/v1/discover", "")
        assert "authorization" not in request.headers  # the certificate is the credential
        assert request.headers["host"] == f"127.0.0.1:{fake.port}"


async def test_version_server_name_and_changes(fake: FakeTriton, certs: Certs) -> None:
    async with trio.open_nursery() as nursery:
        # localhost resolves to the fake; the certificate is checked against cmon.test
        running = await start(nursery, "triton", config(fake, certs, endpoint="localhost",
                                                        version=2,
                                                        ssl_server_name="cmon.test"),
                              TritonDiscoverer)
        await running.until(lambda: running.groups() == expected(fake.port, "localhost", 2))
        fake.containers = CONTAINERS[1:]
        await running.until(lambda: len(running.groups()) == 1)
        for status, body in ((500, b"oops"), (200, b"{"), (403, {"containers": []})):
            fake.status, fake.body = status, body
            seen = len(fake.requests)
            await running.until(lambda: len(fake.requests) >= seen + 2)
            assert len(running.groups()) == 1, status  # kept
        fake.status, fake.body = 200, None
        fake.containers = []
        await running.until(lambda: running.groups() == {})
        nursery.cancel_scope.cancel()
    await running.context.clients.aclose()
    assert {r.path for r in fake.requests} == {"/v2/discover"}


@pytest.mark.parametrize("change", [
    {"ssl_cert": "", "ssl_key": ""},                   # no client certificate: refused
    "stranger",                                        # a certificate cmon does not trust
    {"ssl_ca": ""},                                    # the server's CA is not trusted
    {"endpoint": "localhost", "ssl_server_name": "other.test"},  # name mismatch
])
async def test_tls_failures_publish_nothing(fake: FakeTriton, certs: Certs,
                                            change: Any) -> None:
    if change == "stranger":
        change = {"ssl_cert": certs.stranger_cert, "ssl_key": certs.stranger_key}
    async with trio.open_nursery() as nursery:
        running = await start(nursery, "triton", config(fake, certs, **change),
                              TritonDiscoverer)
        await trio.sleep(0.6)
        nursery.cancel_scope.cancel()
    await running.context.clients.aclose()
    assert running.updates == 0


async def test_insecure_skip_verify_still_presents_the_certificate(
        fake: FakeTriton, certs: Certs) -> None:
    async with trio.open_nursery() as nursery:
        running = await start(nursery, "triton", config(fake, certs, ssl_ca="",
                                                        insecure_skip_verify=True),
                              TritonDiscoverer)
        await running.until(lambda: running.groups() == expected(fake.port))
        nursery.cancel_scope.cancel()
    await running.context.clients.aclose()


# -- the section's service test ---------------------------------------------------------
def section_service(*elements: Any) -> Any:
    [section] = triton.kapa_config_sections()
    assert section.service is not None
    return section.service(ServiceContext("triton", tuple(elements), None, Logger("t"),
                                          lambda db, rp, points: None))


async def test_service_test_answers(fake: FakeTriton, certs: Certs) -> None:
    svc = section_service(config(fake, certs), TritonConfig(id="off"))
    await svc.test({"id": "t"}, timeout=10)
    with pytest.raises(KapaError, match='discoverer "off" is not enabled or does not exist'):
        await svc.test({"id": "off"})
    gone = section_service(config(fake, certs, id="gone", port=1))
    with pytest.raises(KapaError, match='timeout waiting for discoverer "gone" to return'):
        await gone.test({"id": "gone"}, timeout=1)
    await svc.context.clients.aclose()
    await gone.context.clients.aclose()


def test_the_kind_is_registered() -> None:
    [kind] = triton.kapa_discovery_kinds()
    assert (kind.name, kind.section, kind.factory) == ("triton", "triton", TritonDiscoverer)

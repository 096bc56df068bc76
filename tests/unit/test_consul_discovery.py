"""[[consul]] discovery against a local server answering as Consul's HTTP API documents
(blocking queries held until the index changes or ``wait`` elapses): the requests it
makes (paths, query strings, token and basic-auth headers), catalog entries -> groups and
labels, services appearing and leaving, failures, the section's service test.

The fakes here (``FakeAPI``, ``FakeConsul``) also serve the marathon/triton unit tests and
tests/integration/test_discovery_http_apis.py.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import trio
from kapa_plugins.discovery import consul
from kapa_plugins.discovery.consul import ConsulConfig, ConsulDiscoverer, service_groups

from kapa_core.discovery import DiscoveryContext, DiscoveryRegistry, TargetGroup
from kapa_core.errors import KapaError
from kapa_core.logs import Logger
from kapa_core.services import ServiceContext


# -- a recording HTTP(S) server ---------------------------------------------------------
@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    time: float = field(default_factory=time.monotonic)

    @property
    def params(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.query, keep_blank_values=True))


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # clients hanging up are expected
            super().handle_error(request, client_address)


class FakeAPI:
    """A threaded HTTP server on a free loopback port that records every request and
    answers with :meth:`answer` (overridden); HTTPS when given a server SSL context."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[Request] = []
        self.lock = threading.Condition()
        self.closing = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10  # a client that never finishes its request is let go

            def do_GET(self) -> None:  # noqa: N802
                path, _, query = self.path.partition("?")
                request = Request("GET", path, query,
                                  {k.lower(): v for k, v in self.headers.items()})
                with fake.lock:
                    fake.requests.append(request)
                status, headers, body = fake.answer(request)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                headers = {"Content-Type": "application/json", **headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (a timeout, a cancelled discoverer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            # the handshake happens in the request's own thread (on its first read), so
            # a client cancelled halfway through one cannot hold up accepting the next
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True,
                                                 do_handshake_on_connect=False)
        self.port = self.server.server_address[1]
        self.scheme = "https" if tls else "http"
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, request: Request) -> tuple[int, dict[str, str], Any]:
        return 404, {}, {"error": "not found"}

    def __enter__(self) -> FakeAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self.lock:
            self.closing = True
            self.lock.notify_all()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def seen(self, path: str | None = None) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if path is None or r.path == path]


# -- Consul -----------------------------------------------------------------------------
def entry(node: str, address: str, service: str, port: int, *, service_address: str = "",
          tags: list[str] | None = None, service_id: str = "") -> dict[str, Any]:
    """A catalog entry as ``/v1/catalog/service/<name>`` answers it."""
    return {"ID": f"id-{node}", "Node": node, "Address": address, "Datacenter": "dc1",
            "TaggedAddresses": {"lan": address, "wan": address}, "NodeMeta": {},
            "ServiceID": service_id or service, "ServiceName": service,
            "ServiceAddress": service_address, "ServiceTags": tags,
            "ServicePort": port, "ServiceEnableTagOverride": False,
            "CreateIndex": 10, "ModifyIndex": 10}


class FakeConsul(FakeAPI):
    """Consul's catalog: blocking queries (``index`` + ``wait``) are held until the
    index moves or the wait elapses (at most ``max_wait`` seconds here, to keep tests
    short); ``fail`` answers every request with that status."""

    def __init__(self, services: dict[str, list[dict[str, Any]]] | None = None, *,
                 datacenter: str = "dc1", max_wait: float = 30.0,
                 tls: ssl.SSLContext | None = None) -> None:
        super().__init__(tls)
        self.services = dict(services or {})
        self.index = 7
        self.datacenter = datacenter
        self.max_wait = max_wait
        self.fail = 0

    def set(self, services: dict[str, list[dict[str, Any]]]) -> None:
        with self.lock:
            self.services = dict(services)
            self.index += 1
            self.lock.notify_all()

    def _block(self, params: dict[str, str]) -> None:
        if "index" not in params:
            return
        wait = min(self._wait(params.get("wait", "")), self.max_wait)
        deadline = time.monotonic() + wait
        with self.lock:
            while (self.index == int(params["index"]) and not self.closing
                   and time.monotonic() < deadline):
                self.lock.wait(deadline - time.monotonic())

    @staticmethod
    def _wait(text: str) -> float:
        match = re.fullmatch(r"(\d+)(ms|s|m)", text)
        if not match:
            return 300.0  # Consul's default
        return int(match[1]) * {"ms": 0.001, "s": 1, "m": 60}[match[2]]

    def answer(self, request: Request) -> tuple[int, dict[str, str], Any]:
        params = request.params
        path = request.path
        self._block(params)
        if self.fail:
            return self.fail, {}, b"rpc error: no cluster leader"
        if path == "/v1/agent/self":
            return 200, {}, {"Config": {"Datacenter": self.datacenter, "NodeName": "n1"},
                             "Member": {"Name": "n1"}}
        headers = {"X-Consul-Index": str(self.index), "X-Consul-LastContact": "0",
                   "X-Consul-KnownLeader": "true"}
        if path == "/v1/catalog/services":
            return 200, headers, {name: sorted({t for e in entries
                                                for t in (e.get("ServiceTags") or [])})
                                  for name, entries in self.services.items()}
        if path.startswith("/v1/catalog/service/"):
            name = urllib.parse.unquote(path.removeprefix("/v1/catalog/service/"))
            return 200, headers, self.services.get(name, [])
        return 404, {}, b"Invalid URL path: not a recognized HTTP API endpoint"


# -- running a discoverer ---------------------------------------------------------------
class Running:
    """A discoverer element running in a test's nursery, with its registry."""

    def __init__(self, section: str, config: Any, factory: Callable[..., Any]) -> None:
        self.registry = DiscoveryRegistry()
        self.context = DiscoveryContext(section, config, Logger("test"), id=config.id,
                                        registry=self.registry)
        self.updates = 0
        self.registry.subscribe(lambda s, i, g: self._count())
        self.context.open()
        self.discoverer = factory(config, self.context)

    def _count(self) -> None:
        self.updates += 1

    def groups(self) -> dict[str, tuple[tuple[str, ...], dict[str, str]]]:
        return {g.source: (g.targets, dict(g.labels)) for g in self.context.groups()}

    def targets(self) -> list[str]:
        return sorted(t for g in self.context.groups() for t in g.targets)

    async def until(self, probe: Callable[[], Any], timeout: float = 10.0) -> None:
        with trio.fail_after(timeout):
            while not probe():
                await trio.sleep(0.02)


async def start(nursery: trio.Nursery, section: str, config: Any,
                factory: Callable[..., Any]) -> Running:
    running = Running(section, config, factory)
    await nursery.start(running.discoverer.serve)
    return running


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.fixture
def fake() -> Iterator[FakeConsul]:
    with FakeConsul({
        "web": [entry("n1", "10.0.0.1", "web", 80, tags=["prod", "v1"], service_id="web-1"),
                entry("n2", "10.0.0.2", "web", 8080, service_address="192.168.1.2",
                      service_id="web-2")],
        "consul": [entry("n1", "10.0.0.1", "consul", 8300)],
    }, max_wait=2.0) as server:
        yield server


def config(fake: FakeAPI, **kw: Any) -> ConsulConfig:
    kw.setdefault("address", f"127.0.0.1:{fake.port}")
    return ConsulConfig(enabled=True, id="c", **kw)


# -- catalog entries -> groups ----------------------------------------------------------
def test_catalog_entries_become_one_group_each_with_prometheus_labels() -> None:
    groups = service_groups("web", "dc1", ";", [
        entry("n1", "10.0.0.1", "web", 80, tags=["a", "b"], service_id="web-1"),
        entry("n2", "10.0.0.2", "web", 81, service_address="fe80::1"),
        {"Node": "n3", "Address": "10.0.0.3", "ServicePort": 82, "ServiceTags": []},
        {"node": "n4", "address": "10.0.0.4", "serviceport": 83},  # Go matches any case
    ])
    assert [(g.source, g.targets) for g in groups] == [
        ("web:0", ("10.0.0.1:80",)), ("web:1", ("[fe80::1]:81",)),
        ("web:2", ("10.0.0.3:82",)), ("web:3", ("10.0.0.4:83",))]
    assert groups[0].labels == {
        "__meta_consul_service": "web", "__meta_consul_dc": "dc1",
        "__meta_consul_address": "10.0.0.1", "__meta_consul_node": "n1",
        "__meta_consul_tags": ";a;b;", "__meta_consul_service_address": "",
        "__meta_consul_service_port": "80", "__meta_consul_service_id": "web-1"}
    assert groups[1].labels["__meta_consul_service_address"] == "fe80::1"
    assert groups[1].labels["__meta_consul_tags"] == ";;"  # no tags: the separators only
    assert groups[2].labels["__meta_consul_tags"] == ";;"
    assert groups[3].labels["__meta_consul_node"] == "n4"
    assert service_groups("web", "dc1", ",", None) == []


@pytest.mark.parametrize("body", [{"x": 1}, [1], [{"ServicePort": "80"}],
                                  [{"ServiceTags": "a"}], [{"Node": 5}]])
def test_catalog_answers_of_another_shape_are_errors(body: Any) -> None:
    with pytest.raises(consul.ConsulError):
        service_groups("web", "dc1", ",", body)


@pytest.mark.parametrize(("address", "scheme", "url"), [
    ("127.0.0.1:8500", "http", "http://127.0.0.1:8500"),
    ("consul:8500", "https", "https://consul:8500"),
    ("http://consul:8500", "https", "https://consul:8500"),
    ("https://consul:8500", "http", "https://consul:8500"),
])
def test_address_prefixes_as_consuls_client(address: str, scheme: str, url: str) -> None:
    assert consul.base_url(ConsulConfig(address=address, scheme=scheme)) == url


def test_config_refuses_an_unknown_address_scheme() -> None:
    with pytest.raises(Exception, match="unknown protocol scheme 'unix'"):
        ConsulConfig(enabled=True, id="c", address="unix:///run/consul.sock").validate()


# -- against the fake -------------------------------------------------------------------
async def test_services_are_discovered_with_the_requests_consul_documents(
        fake: FakeConsul) -> None:
    async with trio.open_nursery() as nursery:
        running = await start(nursery, "consul", config(fake, token="s3cret",
                                                        username="u", password="p"),
                              ConsulDiscoverer)
        await running.until(lambda: len(running.targets()) == 3)
        assert running.groups() == {
            "consul:0": (("10.0.0.1:8300",), {
                "__meta_consul_service": "consul", "__meta_consul_dc": "dc1",
                "__meta_consul_address": "10.0.0.1", "__meta_consul_node": "n1",
                "__meta_consul_tags": ",,", "__meta_consul_service_address": "",
                "__meta_consul_service_port": "8300", "__meta_consul_service_id": "consul"}),
            "web:0": (("10.0.0.1:80",), {
                "__meta_consul_service": "web", "__meta_consul_dc": "dc1",
                "__meta_consul_address": "10.0.0.1", "__meta_consul_node": "n1",
                "__meta_consul_tags": ",prod,v1,", "__meta_consul_service_address": "",
                "__meta_consul_service_port": "80", "__meta_consul_service_id": "web-1"}),
            "web:1": (("192.168.1.2:8080",), {
                "__meta_consul_service": "web", "__meta_consul_dc": "dc1",
                "__meta_consul_address": "10.0.0.2", "__meta_consul_node": "n2",
                "__meta_consul_tags": ",,", "__meta_consul_service_address": "192.168.1.2",
                "__meta_consul_service_port": "8080", "__meta_consul_service_id": "web-2"}),
        }
        await trio.sleep(0.3)  # let the watches settle into their blocking queries
        nursery.cancel_scope.cancel()
    await running.context.clients.aclose()
    first, self_ = fake.requests[0], fake.seen("/v1/agent/self")[0]
    assert (first.path, first.query) == ("/v1/catalog/services", "wait=30000ms")
    assert self_.query == ""
    # the blocking query that follows names the index of the last answer
    assert [r.query for r in fake.seen("/v1/catalog/services")][:2] == [
        "wait=30000ms", "index=7&wait=30000ms"]
    assert [r.query for r in fake.seen("/v1/catalog/service/web")][:2] == [
        "wait=30000ms", "index=7&wait=30000ms"]
    for request in fake.requests:
        assert request.headers["x-consul-token"] == "s3cret"
        assert request.headers["authorization"] == basic("u", "p")
        assert request.headers["host"] == f"127.0.0.1:{fake.port}"
    # nothing changed: each watch waits in its blocking query instead of polling
    assert len(fake.seen("/v1/catalog/services")) == 2


async def test_services_appear_change_and_leave(fake: FakeConsul) -> None:
    async with trio.open_nursery() as nursery:
        running = await start(nursery, "consul", config(fake, tag_separator="|"),
                              ConsulDiscoverer)
        await running.until(lambda: len(running.targets()) == 3)
        started = time.monotonic()
        fake.set({**fake.services, "db": [entry("n3", "10.0.0.3", "db", 5432, tags=["x"])]})
        await running.until(lambda: "10.0.0.3:5432" in running.targets())
        # a blocking query answers the change at once, well before its wait
        assert time.monotonic() - started < 1.5
        assert running.groups()["db:0"][1]["__meta_consul_tags"] == "|x|"
        fake.set({"db": fake.services["db"],
                  "web": [entry("n9", "10.0.0.9", "web", 9000)]})
        await running.until(lambda: running.targets() == ["10.0.0.3:5432", "10.0.0.9:9000"])
        assert sorted(running.groups()) == ["db:0", "web:0"]
        fake.set({})
        await running.until(lambda: running.targets() == [])
        nursery.cancel_scope.cancel()
    await running.context.clients.aclose()


async def test_a_services_filter_and_a_configured_datacenter(fake: FakeConsul) -> None:
    async with trio.open_nursery() as nursery:
        running = await start(nursery, "consul", config(fake, services=["web", "absent"],
                                                        datacenter="east"),
                              ConsulDiscoverer)
        await running.until(lambda: len(running.targets()) == 2)
        await trio.sleep(0.2)
        assert sorted(running.groups()) == ["web:0", "web:1"]
        assert running.groups()["web:0"][1]["__meta_consul_dc"] == "east"
        nursery.cancel_scope.cancel()
    await running.context.clients.aclose()
    assert fake.seen("/v1/agent/self") == []
    assert fake.seen("/v1/catalog/service/consul") == []
    assert fake.requests[0].query == "dc=east&wait=30000ms"
    assert fake.seen("/v1/catalog/service/web")[0].query == "dc=east&wait=30000ms"
    # no credentials configured: the vendored client still sends empty basic auth
    assert "x-consul-token" not in fake.requests[0].headers
    assert fake.requests[0].headers["authorization"] == basic("", "")


async def test_an_empty_catalog_is_answered_with_no_groups(fake: FakeConsul) -> None:
    fake.set({})
    async with trio.open_nursery() as nursery:
        running = await start(nursery, "consul", config(fake), ConsulDiscoverer)
        await running.until(lambda: running.updates >= 1)
        assert running.groups() == {}
        nursery.cancel_scope.cancel()
    await running.context.clients.aclose()


async def test_failures_are_logged_retried_and_keep_the_targets(
        fake: FakeConsul, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consul, "RETRY_INTERVAL", 0.2)
    async with trio.open_nursery() as nursery:
        running = await start(nursery, "consul", config(fake), ConsulDiscoverer)
        await running.until(lambda: len(running.targets()) == 3)
        fake.fail = 500
        fake.set({"web": []})  # wakes the watches: their next requests fail
        before = len(fake.requests)
        await running.until(lambda: len(fake.requests) >= before + 6)
        assert len(running.targets()) == 3  # the last answer's targets stay
        fake.fail = 0
        await running.until(lambda: running.targets() == [])
        nursery.cancel_scope.cancel()
    await running.context.clients.aclose()


async def test_the_deny_list_refuses_before_any_request(
        fake: FakeConsul, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consul, "RETRY_INTERVAL", 0.1)
    refused: list[str] = []

    def check(url: str) -> None:
        refused.append(url)
        raise KapaError("refused by the deny list")

    async with trio.open_nursery() as nursery:
        running = Running("consul", config(fake), ConsulDiscoverer)
        running.context.check_outgoing = check
        await nursery.start(running.discoverer.serve)
        await running.until(lambda: len(refused) >= 2)
        nursery.cancel_scope.cancel()
    await running.context.clients.aclose()
    assert fake.requests == [] and running.updates == 0
    assert refused[0] == f"http://127.0.0.1:{fake.port}/v1/catalog/services?wait=30000ms"


# -- the section's service test ---------------------------------------------------------
def section_service(*elements: Any) -> Any:
    [section] = consul.kapa_config_sections()
    assert section.service is not None
    context = ServiceContext("consul", tuple(elements), None, Logger("t"),
                             lambda db, rp, points: None)
    return section.service(context)


async def test_service_test_answers(fake: FakeConsul) -> None:
    svc = section_service(config(fake), ConsulConfig(id="off", address="127.0.0.1:1"))
    assert svc.test_options() == {"id": ""}
    await svc.test({"id": "c"}, timeout=10)
    with pytest.raises(KapaError, match='discoverer "off" is not enabled or does not exist'):
        await svc.test({"id": "off"})
    with pytest.raises(KapaError, match='discoverer "" is not enabled or does not exist'):
        await svc.test({"id": ""})
    # nothing listens there: Kapacitor retries quietly until its 30 s are up
    gone = section_service(ConsulConfig(enabled=True, id="gone", address="127.0.0.1:1"))
    with pytest.raises(KapaError, match='timeout waiting for discoverer "gone" to return'):
        await gone.test({"id": "gone"}, timeout=1)
    await svc.context.clients.aclose()
    await gone.context.clients.aclose()


def test_the_kind_and_section_are_registered() -> None:
    [kind] = consul.kapa_discovery_kinds()
    assert (kind.name, kind.section, kind.factory) == ("consul", "consul", ConsulDiscoverer)
    assert TargetGroup  # the groups are kapa_core's own


async def test_https_with_the_sections_tls_keys(tmp_path: Any) -> None:
    # Kapacitor 1.5.7 loses these keys (its Consul client takes TLS settings from
    # CONSUL_* variables instead); kapa-core uses them
    from tests.unit.test_triton_discovery import make_certs, server_context

    certs = make_certs(tmp_path)
    services = {"web": [entry("n1", "10.0.0.1", "web", 80)]}
    with FakeConsul(services, max_wait=2.0, tls=server_context(certs)) as fake:
        async with trio.open_nursery() as nursery:
            running = await start(nursery, "consul", config(
                fake, address=f"https://localhost:{fake.port}", ssl_ca=certs.ca,
                ssl_cert=certs.client_cert, ssl_key=certs.client_key,
                ssl_server_name="cmon.test"), ConsulDiscoverer)
            await running.until(lambda: running.targets() == ["10.0.0.1:80"])
            nursery.cancel_scope.cancel()
        await running.context.clients.aclose()
        # without the client certificate the server refuses: nothing is published
        async with trio.open_nursery() as nursery:
            refused = await start(nursery, "consul", config(
                fake, scheme="https", ssl_ca=certs.ca), ConsulDiscoverer)
            await trio.sleep(0.5)
            nursery.cancel_scope.cancel()
        await refused.context.clients.aclose()
        assert refused.updates == 0

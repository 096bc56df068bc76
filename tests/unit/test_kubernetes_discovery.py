"""The ``[[kubernetes]]`` discoverer: Kubernetes objects to target groups for each role
(labels and sources as Prometheus' vendored discoverer makes them), and list-then-watch
against :class:`FakeKubernetes`, a local server answering as the Kubernetes API does
(lists with a resourceVersion, chunked watch streams of ADDED/MODIFIED/DELETED events,
410 Gone for a compacted resourceVersion, bearer tokens, TLS).
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import trio

from kapa_core.testing.http import ServedHTTP

KINDS = {"pods": "Pod", "services": "Service", "endpoints": "Endpoints", "nodes": "Node"}


class FakeKubernetes(ServedHTTP):
    """The Kubernetes API's core/v1 lists and watches of pods, services, endpoints and
    nodes, cluster-wide (``/api/v1/<resource>``) or per namespace
    (``/api/v1/namespaces/<ns>/<resource>``); a watch is asked with ``?watch=true`` or
    the older ``/api/v1/watch/...`` path (which Kapacitor 1.5.7's client uses).

    Objects change through :meth:`put` and :meth:`delete`, each one event with the
    next resourceVersion. :meth:`compact` forgets the events so far: a watch from an
    older resourceVersion is answered with an ERROR event carrying a 410 Status (or,
    with ``gone_status``, the HTTP status 410 itself). :meth:`drop_watches` ends every
    open watch stream; while :attr:`hold` is set, open watches send nothing (a network
    partition). With ``token`` set, a request without ``Authorization: Bearer
    <token>`` gets 401. Every request is kept in :attr:`requests`.
    """

    def __init__(self, *, token: str = "", tls: tuple[Path, Path] | None = None) -> None:
        self.token = token
        self.cond = threading.Condition()
        self.rv = 100
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
            r: {} for r in KINDS}
        self.events: list[tuple[int, str, str, dict[str, Any]]] = []
        self.oldest = 0
        self.generation = 0
        self.closing = False
        self.gone_status = False
        self.hold = False
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                fake._handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(Handler)
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.url = f"https://{self.address}"

    # -- changing the cluster ---------------------------------------------------------

    def put(self, resource: str, obj: dict[str, Any]) -> int:
        """Add or replace ``obj`` (an event ADDED or MODIFIED); its resourceVersion."""
        with self.cond:
            self.rv += 1
            meta = obj.setdefault("metadata", {})
            meta["resourceVersion"] = str(self.rv)
            key = (meta.get("namespace", ""), meta["name"])
            kind = "MODIFIED" if key in self.objects[resource] else "ADDED"
            self.objects[resource][key] = obj
            self.events.append((self.rv, resource, kind, obj))
            self.cond.notify_all()
            return self.rv

    def delete(self, resource: str, namespace: str, name: str) -> None:
        with self.cond:
            obj = self.objects[resource].pop((namespace, name))
            self.rv += 1
            obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.rv)}}
            self.events.append((self.rv, resource, "DELETED", obj))
            self.cond.notify_all()

    def compact(self) -> None:
        """Forget the events so far: watches from before now get 410 Gone."""
        with self.cond:
            self.oldest = self.rv
            self.events.clear()

    def drop_watches(self) -> None:
        with self.cond:
            self.generation += 1
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closing = True
            self.cond.notify_all()
        super().close()

    # -- what was asked -----------------------------------------------------------------

    def asked(self, *, watch: bool | None = None) -> list[str]:
        """The requests as ``path?query`` (query keys sorted, timeoutSeconds shown as
        ``T``), lists (``watch=False``) or watches (``watch=True``) only if given."""
        out = []
        with self.cond:
            requests = list(self.requests)
        for r in requests:
            if watch is not None and r["watch"] != watch:
                continue
            query = {k: ("T" if k == "timeoutSeconds" else v[0])
                     for k, v in sorted(r["query"].items())}
            out.append(r["path"] + ("?" + "&".join(f"{k}={v}" for k, v in query.items())
                                    if query else ""))
        return out

    # -- serving --------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        query = parse_qs(url.query)
        parts = url.path.strip("/").split("/")
        watch = query.get("watch", [""])[0] in ("true", "1")
        if parts[:3] == ["api", "v1", "watch"]:
            parts = parts[:2] + parts[3:]
            watch = True
        with self.cond:
            self.requests.append({"path": url.path, "query": query, "watch": watch,
                                  "auth": h.headers.get("Authorization", ""),
                                  "agent": h.headers.get("User-Agent", "")})
        if self.token and h.headers.get("Authorization") != f"Bearer {self.token}":
            return self._answer(h, 401, _status(401, "Unauthorized", "Unauthorized"))
        if url.path == "/api":
            return self._answer(h, 200, {"kind": "APIVersions", "versions": ["v1"]})
        namespace = ""
        if parts[:2] == ["api", "v1"] and len(parts) == 5 and parts[2] == "namespaces":
            namespace, resource = parts[3], parts[4]
        elif parts[:2] == ["api", "v1"] and len(parts) == 3:
            resource = parts[2]
        else:
            resource = ""
        if resource not in KINDS:
            return self._answer(h, 404, _status(404, "NotFound", "the server could not "
                                                "find the requested resource"))
        if watch:
            return self._watch(h, resource, namespace, query)
        with self.cond:
            items = [o for (ns, _), o in sorted(self.objects[resource].items())
                     if not namespace or ns == namespace]
            doc = {"kind": KINDS[resource] + "List", "apiVersion": "v1",
                   "metadata": {"resourceVersion": str(self.rv)}, "items": items}
        self._answer(h, 200, doc)

    def _answer(self, h: BaseHTTPRequestHandler, code: int, doc: Any) -> None:
        data = json.dumps(doc).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _watch(self, h: BaseHTTPRequestHandler, resource: str, namespace: str,
               query: dict[str, list[str]]) -> None:
        try:
            since = int(query.get("resourceVersion", ["0"])[0] or 0)
        except ValueError:
            return self._answer(h, 400, _status(400, "BadRequest", "bad resourceVersion"))
        timeout = float(query.get("timeoutSeconds", ["1800"])[0])
        with self.cond:
            gone = since < self.oldest
            generation = self.generation
        message = f"too old resource version: {since} ({self.oldest})"
        if gone and self.gone_status:
            return self._answer(h, 410, _status(410, "Expired", message))
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()

        def chunk(doc: dict[str, Any]) -> None:
            data = json.dumps(doc).encode() + b"\n"
            h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            h.wfile.flush()

        deadline = time.monotonic() + timeout
        try:
            if gone:
                chunk({"type": "ERROR", "object": _status(410, "Expired", message)})
            else:
                sent = since
                while True:
                    with self.cond:
                        pending = [(rv, kind, obj) for rv, r, kind, obj in self.events
                                   if not self.hold and rv > sent and r == resource and (
                                       not namespace or
                                       obj["metadata"].get("namespace") == namespace)]
                        if not pending:
                            left = deadline - time.monotonic()
                            if (self.closing or self.generation != generation or
                                    left <= 0):
                                break
                            self.cond.wait(min(left, 0.5))
                            continue
                    for rv, kind, obj in pending:
                        chunk({"type": kind, "object": obj})
                        sent = rv
            h.wfile.write(b"0\r\n\r\n")
            h.wfile.flush()
        except OSError:
            h.close_connection = True


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


# -- Kubernetes objects ---------------------------------------------------------------------


def pod(namespace: str, name: str, ip: str = "10.0.0.1", *,
        containers: list[dict[str, Any]] | None = None, labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None, ready: str | None = "True",
        node: str = "node-1", host_ip: str = "192.168.0.1") -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Running", "hostIP": host_ip, "podIP": ip}
    if ready is not None:
        status["conditions"] = [{"type": "Initialized", "status": "True"},
                                {"type": "Ready", "status": ready}]
    if not ip:
        del status["podIP"]
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "uid": f"uid-{name}"}
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return {"kind": "Pod", "apiVersion": "v1", "metadata": meta,
            "spec": {"nodeName": node, "containers": containers if containers is not None
                     else [{"name": "app", "image": "app:1", "ports": [
                         {"name": "metrics", "containerPort": 9100, "protocol": "TCP"}]}]},
            "status": status}


def node(name: str, addresses: list[tuple[str, str]], port: int = 10250, *,
         labels: dict[str, str] | None = None,
         annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return {"kind": "Node", "apiVersion": "v1", "metadata": meta, "status": {
        "addresses": [{"type": t, "address": a} for t, a in addresses],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}


def service(namespace: str, name: str, ports: list[tuple[str, int, str]], *,
            labels: dict[str, str] | None = None,
            annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return {"kind": "Service", "apiVersion": "v1", "metadata": meta, "spec": {
        "clusterIP": "10.96.0.10",
        "ports": [{"name": n, "port": p, "protocol": proto, "targetPort": p}
                  for n, p, proto in ports]}}


def endpoints(namespace: str, name: str, subsets: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": "Endpoints", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": namespace}, "subsets": subsets}


def address(ip: str, pod_name: str = "", namespace: str = "default") -> dict[str, Any]:
    out: dict[str, Any] = {"ip": ip}
    if pod_name:
        out["targetRef"] = {"kind": "Pod", "namespace": namespace, "name": pod_name}
    return out


# -- objects to groups ---------------------------------------------------------------------

M = "__meta_kubernetes_"


def flat(groups: list[Any]) -> list[tuple[str, str, dict[str, str]]]:
    return [(g.source, g.targets[0] if g.targets else "", dict(g.labels)) for g in groups]


def test_node_target_is_the_kubelet_at_its_first_preferred_address() -> None:
    from kapa_plugins.discovery.kubernetes_discovery import node_group, target_groups

    n = node("worker-1", [("Hostname", "worker-1"), ("ExternalIP", "203.0.113.7"),
                          ("InternalIP", "10.1.2.3"), ("InternalIP", "10.1.2.4")],
             labels={"kubernetes.io/hostname": "worker-1", "zone": "a"},
             annotations={"node.alpha/ttl": "0"})
    group = node_group(n)
    assert group is not None
    assert flat(target_groups(group)) == [("node/worker-1:0", "10.1.2.3:10250", {
        M + "node_name": "worker-1",
        M + "node_label_kubernetes_io_hostname": "worker-1",
        M + "node_label_zone": "a",
        M + "node_annotation_node_alpha_ttl": "0",
        "instance": "worker-1",
        M + "node_address_Hostname": "worker-1",
        M + "node_address_ExternalIP": "203.0.113.7",
        M + "node_address_InternalIP": "10.1.2.3"})]
    # ExternalIP before LegacyHostIP before Hostname; an IPv6 address is bracketed
    group = node_group(node("w2", [("Hostname", "w2"), ("LegacyHostIP", "fd00::1")], 0))
    assert group is not None and group.targets[0]["__address__"] == "[fd00::1]:0"
    assert node_group(node("w3", [("Hostname", "w3")]))  # the host name as a last resort
    assert node_group(node("w4", [])) is None


def test_pod_targets_one_per_container_port_or_the_pod_ip_alone() -> None:
    from kapa_plugins.discovery.kubernetes_discovery import pod_group, target_groups

    p = pod("shop", "web-7f9", "10.2.0.5", labels={"app": "web", "pod-template-hash": "7f9"},
            annotations={"prometheus.io/scrape": "true"}, node="n1", host_ip="192.168.1.4",
            containers=[
                {"name": "app", "ports": [{"name": "http", "containerPort": 8080,
                                           "protocol": "TCP"},
                                          {"containerPort": 9100, "protocol": "UDP"}]},
                {"name": "sidecar"}])
    group = pod_group(p)
    assert group is not None
    common = {M + "namespace": "shop", M + "pod_name": "web-7f9", M + "pod_ip": "10.2.0.5",
              M + "pod_ready": "true", M + "pod_node_name": "n1",
              M + "pod_host_ip": "192.168.1.4", M + "pod_label_app": "web",
              M + "pod_label_pod_template_hash": "7f9",
              M + "pod_annotation_prometheus_io_scrape": "true"}
    assert flat(target_groups(group)) == [
        ("pod/shop/web-7f9:0", "10.2.0.5:8080", {
            **common, M + "pod_container_name": "app", M + "pod_container_port_number": "8080",
            M + "pod_container_port_name": "http", M + "pod_container_port_protocol": "TCP"}),
        ("pod/shop/web-7f9:1", "10.2.0.5:9100", {
            **common, M + "pod_container_name": "app", M + "pod_container_port_number": "9100",
            M + "pod_container_port_name": "", M + "pod_container_port_protocol": "UDP"}),
        ("pod/shop/web-7f9:2", "10.2.0.5", {**common, M + "pod_container_name": "sidecar"}),
    ]
    unready = pod_group(pod("shop", "a", ready="False"))
    assert unready is not None and unready.labels[M + "pod_ready"] == "false"
    unknown = pod_group(pod("shop", "b", ready=None))
    assert unknown is not None and unknown.labels[M + "pod_ready"] == "unknown"
    assert pod_group(pod("shop", "pending", "")) is None  # no IP yet: no group


def test_service_targets_one_per_port_at_the_service_dns_name() -> None:
    from kapa_plugins.discovery.kubernetes_discovery import service_group, target_groups

    s = service("shop", "web", [("http", 80, "TCP"), ("", 9102, "UDP")],
                labels={"app": "web"}, annotations={"a.b/c": "d"})
    common = {M + "namespace": "shop", M + "service_name": "web",
              M + "service_label_app": "web", M + "service_annotation_a_b_c": "d"}
    assert flat(target_groups(service_group(s))) == [
        ("svc/shop/web:0", "web.shop.svc:80",
         {**common, M + "service_port_name": "http", M + "service_port_protocol": "TCP"}),
        ("svc/shop/web:1", "web.shop.svc:9102",
         {**common, M + "service_port_name": "", M + "service_port_protocol": "UDP"}),
    ]
    assert target_groups(service_group(service("shop", "headless", []))) == []


def test_endpoints_targets_with_the_pod_and_service_they_belong_to() -> None:
    from kapa_plugins.discovery.kubernetes_discovery import endpoints_group, target_groups

    web = pod("shop", "web-1", "10.2.0.5", labels={"app": "web"}, containers=[
        {"name": "app", "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                                  {"name": "metrics", "containerPort": 9100,
                                   "protocol": "TCP"}]}])
    svc = service("shop", "web", [("http", 80, "TCP")], labels={"tier": "front"})
    eps = endpoints("shop", "web", [{
        "addresses": [address("10.2.0.5", "web-1", "shop"), address("10.9.9.9")],
        "notReadyAddresses": [address("10.2.0.6", "gone-pod", "shop")],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}])
    group = endpoints_group(eps, {("shop", "web"): svc}, {("shop", "web-1"): web})
    common = {M + "namespace": "shop", M + "endpoints_name": "web",
              M + "service_name": "web", M + "service_label_tier": "front"}
    port = {M + "endpoint_port_name": "http", M + "endpoint_port_protocol": "TCP"}
    pod_labels = {M + "pod_name": "web-1", M + "pod_ip": "10.2.0.5", M + "pod_ready": "true",
                  M + "pod_node_name": "node-1", M + "pod_host_ip": "192.168.0.1",
                  M + "pod_label_app": "web"}
    assert flat(target_groups(group)) == [
        ("endpoints/shop/web:0", "10.2.0.5:8080", {
            **common, **port, M + "endpoint_ready": "true", **pod_labels,
            M + "pod_container_name": "app", M + "pod_container_port_name": "http",
            M + "pod_container_port_number": "8080",
            M + "pod_container_port_protocol": "TCP"}),
        ("endpoints/shop/web:1", "10.9.9.9:8080",
         {**common, **port, M + "endpoint_ready": "true"}),
        ("endpoints/shop/web:2", "10.2.0.6:8080",
         {**common, **port, M + "endpoint_ready": "false"}),
        # the pod's container port no endpoint port covers
        ("endpoints/shop/web:3", "10.2.0.5:9100", {
            **common, **pod_labels, M + "pod_container_name": "app",
            M + "pod_container_port_name": "metrics", M + "pod_container_port_number": "9100",
            M + "pod_container_port_protocol": "TCP"}),
    ]
    # without its service: only the endpoints' own labels
    bare = endpoints_group(eps, {}, {})
    assert bare.labels == {M + "namespace": "shop", M + "endpoints_name": "web"}
    assert len(bare.targets) == 3


# -- list and watch against the fake API server ------------------------------------------------

TOKEN = "s3cret-token"
WATCH = "timeoutSeconds=T&watch=true"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    from tests.integration.pki import ca_and_server

    return ca_and_server(tmp_path_factory.mktemp("k8s-pki"))


@pytest.fixture
def fake(pki: tuple[Path, Path, Path]) -> Iterator[FakeKubernetes]:
    _, cert, key = pki
    with FakeKubernetes(token=TOKEN, tls=(cert, key)) as server:
        yield server


def element(**keys: Any) -> Any:
    from kapa_plugins.discovery.kubernetes import KubernetesConfig

    return KubernetesConfig(**{"enabled": True, "id": "k8s", **keys})


def context(config: Any) -> Any:
    from kapa_core.discovery import DiscoveryContext
    from kapa_core.logs import Logger

    ctx = DiscoveryContext("kubernetes", config, Logger("kubernetes"), id=config.id)
    ctx.open()
    return ctx


def current(ctx: Any) -> dict[str, str]:
    return {g.source: g.targets[0] for g in ctx.groups()}


async def until(ctx: Any, want: dict[str, str], timeout: float = 10.0) -> None:
    with trio.move_on_after(timeout):
        while current(ctx) != want:
            await trio.sleep(0.02)
    assert current(ctx) == want


async def test_pods_are_listed_then_watched_over_https_with_the_token(
        fake: FakeKubernetes, pki: tuple[Path, Path, Path]) -> None:
    from kapa_plugins.discovery.kubernetes_discovery import discoverer

    fake.put("pods", pod("default", "a", "10.0.0.1"))
    fake.put("pods", pod("ops", "b", "10.0.0.2"))
    # namespace is for k8sAutoscale only: discovery covers every namespace (as Kapacitor)
    config = element(api_servers=[fake.url], token=TOKEN, ca_path=str(pki[0]),
                     resource="pod", namespace="ops")
    ctx = context(config)
    async with trio.open_nursery() as nursery:
        await nursery.start(discoverer(config, ctx).serve)
        await until(ctx, {"pod/default/a:0": "10.0.0.1:9100", "pod/ops/b:0": "10.0.0.2:9100"})
        fake.put("pods", pod("default", "c", "10.0.0.3"))  # ADDED
        await until(ctx, {"pod/default/a:0": "10.0.0.1:9100", "pod/ops/b:0": "10.0.0.2:9100",
                          "pod/default/c:0": "10.0.0.3:9100"})
        two_ports = [{"name": "app", "ports": [{"containerPort": 80}, {"containerPort": 81}]}]
        fake.put("pods", pod("default", "a", "10.0.0.9", containers=two_ports))  # MODIFIED
        fake.delete("pods", "ops", "b")  # DELETED
        await until(ctx, {"pod/default/a:0": "10.0.0.9:80", "pod/default/a:1": "10.0.0.9:81",
                          "pod/default/c:0": "10.0.0.3:9100"})
        fake.put("pods", pod("default", "a", "10.0.0.9"))  # one port again: a:1 goes
        await until(ctx, {"pod/default/a:0": "10.0.0.9:9100",
                          "pod/default/c:0": "10.0.0.3:9100"})
        # a pod losing its IP keeps its targets, as Prometheus 1.x
        fake.put("pods", pod("default", "c", ""))
        fake.put("pods", pod("default", "d", "10.0.0.4"))
        await until(ctx, {"pod/default/a:0": "10.0.0.9:9100", "pod/default/c:0": "10.0.0.3:9100",
                          "pod/default/d:0": "10.0.0.4:9100"})
        version = fake.rv
        lists = fake.asked(watch=False)
        # the server ends the watch: it is resumed from the last resourceVersion seen
        # (a watch ending within a second without events would be listed again instead)
        await trio.sleep(1.1)
        n = len(fake.requests)
        fake.drop_watches()
        with trio.fail_after(5):
            while len(fake.requests) == n:
                await trio.sleep(0.02)
        fake.put("pods", pod("default", "e", "10.0.0.5"))
        await until(ctx, {"pod/default/a:0": "10.0.0.9:9100", "pod/default/c:0": "10.0.0.3:9100",
                          "pod/default/d:0": "10.0.0.4:9100", "pod/default/e:0": "10.0.0.5:9100"})
        assert fake.asked(watch=False) == lists
        assert f"/api/v1/pods?resourceVersion={version}&{WATCH}" in fake.asked(watch=True)
        # a partition while changes happen and the history is compacted: the watch from
        # the old resourceVersion gets an ERROR event (410), the discoverer lists again
        await trio.sleep(1.1)
        fake.hold = True
        fake.delete("pods", "default", "e")
        fake.delete("pods", "default", "d")
        fake.compact()
        n = len(fake.requests)
        fake.drop_watches()
        fake.hold = False
        await until(ctx, {"pod/default/a:0": "10.0.0.9:9100",
                          "pod/default/c:0": "10.0.0.3:9100"})
        assert fake.asked()[n:n + 2] == [f"/api/v1/pods?resourceVersion={version + 1}&{WATCH}",
                                         "/api/v1/pods?resourceVersion=0"]
        # the same with the watch request answered 410 itself
        await trio.sleep(1.1)
        fake.hold = True
        fake.delete("pods", "default", "a")
        fake.compact()
        fake.gone_status = True
        n = len(fake.requests)
        fake.drop_watches()
        fake.hold = False
        await until(ctx, {"pod/default/c:0": "10.0.0.3:9100"})
        assert fake.asked()[n:n + 2] == [f"/api/v1/pods?resourceVersion={version + 3}&{WATCH}",
                                         "/api/v1/pods?resourceVersion=0"]
        nursery.cancel_scope.cancel()
    assert fake.asked()[:2] == ["/api/v1/pods?resourceVersion=0",
                                f"/api/v1/pods?resourceVersion=102&{WATCH}"]
    assert {(r["auth"], r["agent"]) for r in fake.requests} == {
        (f"Bearer {TOKEN}", "prometheus/discovery")}
    timeouts = {int(r["query"]["timeoutSeconds"][0]) for r in fake.requests if r["watch"]}
    assert all(300 <= t < 600 for t in timeouts)


async def test_endpoints_follow_their_service_and_pods(fake: FakeKubernetes,
                                                       pki: tuple[Path, Path, Path]) -> None:
    from kapa_plugins.discovery.kubernetes_discovery import discoverer

    fake.put("pods", pod("shop", "web-1", "10.2.0.5", labels={"v": "1"}))
    fake.put("services", service("shop", "web", [("m", 9100, "TCP")], labels={"tier": "a"}))
    fake.put("endpoints", endpoints("shop", "web", [{
        "addresses": [address("10.2.0.5", "web-1", "shop")],
        "ports": [{"name": "m", "port": 9100, "protocol": "TCP"}]}]))
    config = element(api_servers=[fake.url], token=TOKEN, ca_path=str(pki[0]),
                     resource="endpoint")
    ctx = context(config)

    def labels() -> dict[str, str]:
        groups = ctx.groups()
        return dict(groups[0].labels) if groups else {}

    async with trio.open_nursery() as nursery:
        await nursery.start(discoverer(config, ctx).serve)
        await until(ctx, {"endpoints/shop/web:0": "10.2.0.5:9100"})
        assert labels()[M + "service_label_tier"] == "a"
        assert labels()[M + "pod_label_v"] == "1"
        assert labels()[M + "pod_container_name"] == "app"
        # a service or pod change reaches the endpoints' labels at once
        fake.put("services", service("shop", "web", [("m", 9100, "TCP")], labels={"tier": "b"}))
        fake.put("pods", pod("shop", "web-1", "10.2.0.5", labels={"v": "2"}))
        with trio.fail_after(10):
            while (labels().get(M + "service_label_tier"), labels().get(M + "pod_label_v")) \
                    != ("b", "2"):
                await trio.sleep(0.02)
        # endpoints left without subsets lose their targets
        fake.put("endpoints", endpoints("shop", "web", []))
        await until(ctx, {})
        fake.put("endpoints", endpoints("shop", "web", [{
            "addresses": [address("10.2.0.7")], "ports": [{"port": 80}]}]))
        await until(ctx, {"endpoints/shop/web:0": "10.2.0.7:80"})
        fake.delete("endpoints", "shop", "web")
        await until(ctx, {})
        nursery.cancel_scope.cancel()
    lists = fake.asked(watch=False)
    assert lists == ["/api/v1/pods?resourceVersion=0", "/api/v1/services?resourceVersion=0",
                     "/api/v1/endpoints?resourceVersion=0"]
    assert sorted(fake.asked(watch=True)) == [
        f"/api/v1/endpoints?resourceVersion=103&{WATCH}",
        f"/api/v1/pods?resourceVersion=103&{WATCH}",
        f"/api/v1/services?resourceVersion=103&{WATCH}"]


async def test_in_cluster_uses_the_service_account_and_the_service_env(
        fake: FakeKubernetes, pki: tuple[Path, Path, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from kapa_plugins.discovery import kubernetes_discovery
    from kapa_plugins.discovery.kubernetes_discovery import discoverer

    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(TOKEN)
    (account / "ca.crt").write_bytes(pki[0].read_bytes())
    (account / "namespace").write_text("default")
    monkeypatch.setattr(kubernetes_discovery, "SERVICE_ACCOUNT", str(account))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(fake.port))
    fake.put("nodes", node("n1", [("InternalIP", "10.0.0.1")]))
    config = element(in_cluster=True, resource="node")
    ctx = context(config)
    async with trio.open_nursery() as nursery:
        await nursery.start(discoverer(config, ctx).serve)
        await until(ctx, {"node/n1:0": "10.0.0.1:10250"})
        nursery.cancel_scope.cancel()
    assert {r["auth"] for r in fake.requests} == {f"Bearer {TOKEN}"}


async def test_elements_that_cannot_discover_log_why_and_ask_nothing(
        fake: FakeKubernetes, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from kapa_plugins.discovery.kubernetes_discovery import discoverer

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    cases = [
        # as Kapacitor: no resource is an unknown Prometheus role
        (element(api_servers=[fake.url], resource=""),
         'unknown Kubernetes discovery kind ""'),
        (element(in_cluster=True, resource="pod"), "Cannot create Kubernetes discovery"),
        (element(api_servers=[fake.url], resource="pod", ca_path="/nonexistent/ca.pem"),
         "Cannot create Kubernetes discovery"),
    ]
    for config, message in cases:
        caplog.clear()
        ctx = context(config)
        async with trio.open_nursery() as nursery:
            await nursery.start(discoverer(config, ctx).serve)
            await trio.sleep(0.2)
            nursery.cancel_scope.cancel()
        assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [message]
        assert ctx.groups() == ()
    assert fake.requests == []


async def test_failures_are_logged_and_retried(
        fake: FakeKubernetes, pki: tuple[Path, Path, Path],
        caplog: pytest.LogCaptureFixture) -> None:
    from kapa_plugins.discovery import kubernetes_discovery
    from kapa_plugins.discovery.kubernetes_discovery import discoverer

    fake.put("pods", pod("default", "a", "10.0.0.1"))
    config = element(api_servers=[fake.url], token="wrong", ca_path=str(pki[0]),
                     resource="pod")
    ctx = context(config)
    denied: list[str] = []

    def deny(url: str) -> None:
        denied.append(url)
        raise OSError(f"refused by the deny list: {url}")

    kubernetes_discovery.RETRY, retry = 0.1, kubernetes_discovery.RETRY
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(discoverer(config, ctx).serve)
            with trio.fail_after(5):
                while len(fake.requests) < 3:
                    await trio.sleep(0.02)
            nursery.cancel_scope.cancel()
        errors = [r.kv["err"] for r in caplog.records  # type: ignore[attr-defined]
                  if r.levelname == "ERROR"]
        assert errors == ["401 Unauthorized: Unauthorized"]  # once, though retried
        config = element(api_servers=[fake.url], token=TOKEN, ca_path=str(pki[0]),
                         resource="pod")
        ctx = context(config)
        ctx.check_outgoing = deny
        n = len(fake.requests)
        async with trio.open_nursery() as nursery:
            await nursery.start(discoverer(config, ctx).serve)
            await trio.sleep(0.3)
            nursery.cancel_scope.cancel()
        assert len(fake.requests) == n and denied[0] == fake.url + "/api/v1/pods"
    finally:
        kubernetes_discovery.RETRY = retry


async def test_each_api_server_is_a_discoverer_of_its_own(
        pki: tuple[Path, Path, Path]) -> None:
    from kapa_plugins.discovery.kubernetes_discovery import discoverer

    _, cert, key = pki
    with FakeKubernetes(token=TOKEN, tls=(cert, key)) as one, \
            FakeKubernetes(token=TOKEN, tls=(cert, key)) as two:
        one.put("services", service("default", "web", [("http", 80, "TCP")]))
        two.put("services", service("default", "web", [("http", 8080, "TCP")]))
        config = element(api_servers=[one.url, two.url], token=TOKEN, ca_path=str(pki[0]),
                         resource="service")
        ctx = context(config)
        async with trio.open_nursery() as nursery:
            await nursery.start(discoverer(config, ctx).serve)
            await until(ctx, {"kubernetes/0/svc/default/web:0": "web.default.svc:80",
                              "kubernetes/1/svc/default/web:0": "web.default.svc:8080"})
            two.delete("services", "default", "web")
            await until(ctx, {"kubernetes/0/svc/default/web:0": "web.default.svc:80"})
            nursery.cancel_scope.cancel()

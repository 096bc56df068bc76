"""The ``[[kubernetes]]`` discoverer: Kubernetes nodes, pods, services or endpoints as
scrape targets, kept current by list-then-watch.

Kapacitor 1.5.7 hands each element to the Prometheus Kubernetes discoverer it vendors
(services/k8s/config.go ``Prom()``): one discoverer per ``api-servers`` entry (or one
in-cluster discoverer when ``in-cluster = true``), with the element's ``token`` as a
bearer token, ``ca-path`` as the trusted CA and ``resource`` as its role. ``namespace``
is not passed on: objects of all namespaces are discovered. What each role yields (the
``__meta_kubernetes_*`` labels, the addresses, the group sources ``node/<name>``,
``pod/<ns>/<name>``, ``svc/<ns>/<name>``, ``endpoints/<ns>/<name>``) follows the vendored
code (vendor/github.com/prometheus/prometheus/discovery/kubernetes).

The requests follow the Kubernetes client that code uses: ``GET /api/v1/<resource>?
resourceVersion=0`` lists, then ``GET /api/v1/<resource>?watch=true&resourceVersion=<v>
&timeoutSeconds=<300..600>`` streams ADDED/MODIFIED/DELETED events (Kapacitor asks the
older ``/api/v1/watch/<resource>`` path for the same stream). A watch the server ends is
resumed from the last resourceVersion seen; a watch that ended at once without events,
an expired resourceVersion (410 Gone, as an HTTP status or an ERROR event) or a failed
request starts over with a list, one second later.

Kapa-core differences (the documentation says them too):

- ``resource = "endpoint"`` discovers endpoints. Kapacitor accepts the value but passes
  it to Prometheus, whose role is called ``endpoints``: it logs ``unknown Kubernetes
  discovery kind "endpoint"`` and discovers nothing. An element without ``resource``
  logs the same error for ``""`` and discovers nothing in both.
- The endpoints role follows service and pod changes at once (Prometheus 1.x meant to
  for services, but never sent the update) and drops the targets of an Endpoints object
  left without subsets (Prometheus 1.x kept them).
- Kapacitor 1.5.7 stops with a nil-pointer panic as soon as its pod role finds a pod
  (its log adapter has no buffer); kapa-core does not.
- Prometheus groups carry per-target labels, kapa-core's do not: each target is a group
  of its own, holding the group's labels and its own (the target's win), named
  ``<source>:<index>`` (``pod/default/web:0``, ``pod/default/web:1``...), as the other
  discoverers name theirs. With several ``api-servers``, each server's sources are
  prefixed with ``kubernetes/<index>/`` (Prometheus keeps them apart the same way).
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from kapa_core.plugin_api import TLS, DiscoveryContext, TargetGroup, TLSFileError

from .prometheus_sd import join_host_port, sanitize_label_name

#: Where a pod finds its service account (``in-cluster = true``).
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
#: The resources each role lists and watches (the first one makes the groups).
ROLE_RESOURCES: dict[str, tuple[str, ...]] = {
    "node": ("nodes",),
    "pod": ("pods",),
    "service": ("services",),
    "endpoint": ("endpoints", "services", "pods"),
}
#: Seconds between a failed or expired list/watch and the next list (client-go's period).
RETRY = 1.0
#: A watch asks the server to end it after a random time in [MIN_WATCH, 2*MIN_WATCH) s.
MIN_WATCH = 300
#: Seconds a list request may take.
LIST_TIMEOUT = 30.0
USER_AGENT = "prometheus/discovery"
#: A request that finds its kept-alive connection closed by the server is sent once more
#: on a new one (as Go's HTTP transport does).
_ATTEMPTS = (0, 1)

META = "__meta_kubernetes_"
NAMESPACE = META + "namespace"

Obj = dict[str, Any]
Key = tuple[str, str]


@dataclass
class PromGroup:
    """A target group as Prometheus builds it: per-target label sets (each with
    ``__address__``) and labels common to them."""

    source: str
    labels: dict[str, str] = field(default_factory=dict)
    targets: list[dict[str, str]] = field(default_factory=list)


def _meta(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _spec(obj: Obj) -> Obj:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _status(obj: Obj) -> Obj:
    status = obj.get("status")
    return status if isinstance(status, dict) else {}


def _list(value: Any) -> list[Any]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _port(value: Any) -> str:
    """An int32 port as Go formats it (absent: 0)."""
    try:
        return str(int(value or 0))
    except (TypeError, ValueError):
        return "0"


def _mapped(prefix: str, values: Any) -> dict[str, str]:
    if not isinstance(values, dict):
        return {}
    return {sanitize_label_name(prefix + str(k)): _str(v) for k, v in values.items()}


def key_of(obj: Obj) -> Key:
    meta = _meta(obj)
    return _str(meta.get("namespace")), _str(meta.get("name"))


# -- the roles: one Kubernetes object -> one Prometheus target group ------------------------


def node_source(key: Key) -> str:
    return "node/" + key[1]


def node_group(node: Obj) -> PromGroup | None:
    """The node's kubelet: ``<first InternalIP, ExternalIP, LegacyHostIP or Hostname>:
    <kubelet port>``; None when the node has none of these addresses."""
    meta = _meta(node)
    name = _str(meta.get("name"))
    labels = {META + "node_name": name, **_mapped(META + "node_label_", meta.get("labels")),
              **_mapped(META + "node_annotation_", meta.get("annotations"))}
    addresses: dict[str, str] = {}
    for address in _list(_status(node).get("addresses")):
        addresses.setdefault(_str(address.get("type")), _str(address.get("address")))
    for kind in ("InternalIP", "ExternalIP", "LegacyHostIP", "Hostname"):
        if kind in addresses:
            host = addresses[kind]
            break
    else:
        return None
    endpoints = _status(node).get("daemonEndpoints") or {}
    kubelet = endpoints.get("kubeletEndpoint") if isinstance(endpoints, dict) else None
    port = _port(kubelet.get("Port") if isinstance(kubelet, dict) else 0)
    target = {"__address__": join_host_port(host, port), "instance": name}
    for kind, address in addresses.items():
        target[sanitize_label_name(META + "node_address_" + kind)] = address
    return PromGroup(node_source(("", name)), labels, [target])


def pod_source(key: Key) -> str:
    return f"pod/{key[0]}/{key[1]}"


def pod_labels(pod: Obj) -> dict[str, str]:
    meta, status = _meta(pod), _status(pod)
    ready = "unknown"
    for condition in _list(status.get("conditions")):
        if condition.get("type") == "Ready":
            ready = _str(condition.get("status")).lower()
            break
    return {META + "pod_name": _str(meta.get("name")),
            META + "pod_ip": _str(status.get("podIP")),
            META + "pod_ready": ready,
            META + "pod_node_name": _str(_spec(pod).get("nodeName")),
            META + "pod_host_ip": _str(status.get("hostIP")),
            **_mapped(META + "pod_label_", meta.get("labels")),
            **_mapped(META + "pod_annotation_", meta.get("annotations"))}


def pod_group(pod: Obj) -> PromGroup | None:
    """One target per container port (``<pod IP>:<port>``), or the pod IP alone for a
    container without ports; None while the pod has no IP."""
    ip = _str(_status(pod).get("podIP"))
    if not ip:
        return None
    group = PromGroup(pod_source(key_of(pod)), pod_labels(pod))
    group.labels[NAMESPACE] = key_of(pod)[0]
    for container in _list(_spec(pod).get("containers")):
        name = _str(container.get("name"))
        ports = _list(container.get("ports"))
        if not ports:
            group.targets.append({"__address__": ip, META + "pod_container_name": name})
            continue
        for port in ports:
            number = _port(port.get("containerPort"))
            group.targets.append({
                "__address__": join_host_port(ip, number),
                META + "pod_container_name": name,
                META + "pod_container_port_number": number,
                META + "pod_container_port_name": _str(port.get("name")),
                META + "pod_container_port_protocol": _str(port.get("protocol")),
            })
    return group


def service_source(key: Key) -> str:
    return f"svc/{key[0]}/{key[1]}"


def service_labels(service: Obj) -> dict[str, str]:
    meta = _meta(service)
    return {META + "service_name": _str(meta.get("name")),
            **_mapped(META + "service_label_", meta.get("labels")),
            **_mapped(META + "service_annotation_", meta.get("annotations"))}


def service_group(service: Obj) -> PromGroup:
    """One target per service port: ``<name>.<namespace>.svc:<port>``."""
    namespace, name = key_of(service)
    group = PromGroup(service_source((namespace, name)), service_labels(service))
    group.labels[NAMESPACE] = namespace
    for port in _list(_spec(service).get("ports")):
        group.targets.append({
            "__address__": join_host_port(f"{name}.{namespace}.svc", _port(port.get("port"))),
            META + "service_port_name": _str(port.get("name")),
            META + "service_port_protocol": _str(port.get("protocol")),
        })
    return group


def endpoints_source(key: Key) -> str:
    return f"endpoints/{key[0]}/{key[1]}"


def endpoints_group(endpoints: Obj, services: dict[Key, Obj],
                    pods: dict[Key, Obj]) -> PromGroup:
    """One target per address and port of each subset (``ready`` true for addresses,
    false for notReadyAddresses), with the pod's labels when the address refers to a
    known pod, then the pods' container ports no endpoint port covered; the service's
    labels when the service is known."""
    namespace, name = key = key_of(endpoints)
    group = PromGroup(endpoints_source(key), {NAMESPACE: namespace,
                                              META + "endpoints_name": name})
    service = services.get(key)
    if service is not None:
        group.labels.update(service_labels(service))
    seen: dict[Key, tuple[Obj, list[str]]] = {}

    def add(address: Obj, port: Obj, ready: str) -> None:
        number = _port(port.get("port"))
        target = {"__address__": join_host_port(_str(address.get("ip")), number),
                  META + "endpoint_port_name": _str(port.get("name")),
                  META + "endpoint_port_protocol": _str(port.get("protocol")),
                  META + "endpoint_ready": ready}
        ref = address.get("targetRef")
        pod = None
        if isinstance(ref, dict) and ref.get("kind") == "Pod":
            pod = pods.get((_str(ref.get("namespace")), _str(ref.get("name"))))
        if pod is None:
            group.targets.append(target)
            return
        entry = seen.setdefault(key_of(pod), (pod, []))
        target.update(pod_labels(pod))
        for container in _list(_spec(pod).get("containers")):
            for cport in _list(container.get("ports")):
                if _port(cport.get("containerPort")) == number:
                    target[META + "pod_container_name"] = _str(container.get("name"))
                    target[META + "pod_container_port_name"] = _str(cport.get("name"))
                    target[META + "pod_container_port_number"] = number
                    target[META + "pod_container_port_protocol"] = _str(port.get("protocol"))
                    break
        entry[1].append(number)
        group.targets.append(target)

    for subset in _list(endpoints.get("subsets")):
        for port in _list(subset.get("ports")):
            for address in _list(subset.get("addresses")):
                add(address, port, "true")
            for address in _list(subset.get("notReadyAddresses")):
                add(address, port, "false")
    for pod, numbers in seen.values():
        ip = _str(_status(pod).get("podIP"))
        for container in _list(_spec(pod).get("containers")):
            for cport in _list(container.get("ports")):
                number = _port(cport.get("containerPort"))
                if number in numbers:
                    continue
                group.targets.append({
                    "__address__": join_host_port(ip, number),
                    META + "pod_container_name": _str(container.get("name")),
                    META + "pod_container_port_name": _str(cport.get("name")),
                    META + "pod_container_port_number": number,
                    META + "pod_container_port_protocol": _str(cport.get("protocol")),
                    **pod_labels(pod)})
    return group


def target_groups(group: PromGroup, prefix: str = "") -> list[TargetGroup]:
    """kapa-core groups of a Prometheus group: one per target, holding the group's
    labels and the target's (which win), named ``<source>:<index>`` (index of the
    target in the group, from 0), as the other discoverers name theirs."""
    out = []
    source = prefix + group.source
    for index, target in enumerate(group.targets):
        labels = {**group.labels, **target}
        address = labels.pop("__address__")
        out.append(TargetGroup((address,), labels, f"{source}:{index}"))
    return out


# -- talking to one API server ----------------------------------------------------------------


class Gone(Exception):
    """The resourceVersion a watch started from has expired (410)."""


class RequestFailed(Exception):
    """A list or watch request failed; the message says why."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


@dataclass(frozen=True)
class Server:
    """One API server as a discoverer talks to it."""

    url: str
    token: str
    tls: TLS

    def resource_url(self, resource: str) -> str:
        return self.url.rstrip("/") + f"/api/v1/{resource}"


def in_cluster_server(log: Callable[[str], None]) -> Server:
    """The API server of the pod this runs in, as client-go's InClusterConfig finds it:
    ``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT``, the service account's
    token and (when it can be read) its CA; ValueError when one is missing."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise ValueError("unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST "
                         "and KUBERNETES_SERVICE_PORT must be defined")
    path = os.path.join(SERVICE_ACCOUNT, "token")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            token = f.read()
    except OSError as exc:
        raise ValueError(f"open {path}: {exc.strerror or exc}") from None
    ca = os.path.join(SERVICE_ACCOUNT, "ca.crt")
    try:
        TLS(ca=ca).context()
    except Exception as exc:
        log(f"Expected to load root CA config from {ca}, but got err: {exc}")
        ca = ""
    return Server("https://" + join_host_port(host, port), token, TLS(ca=ca))


class RoleWatcher:
    """Lists and watches the resources of one role on one API server and publishes the
    groups they make."""

    def __init__(self, role: str, server: Server, context: DiscoveryContext, *,
                 prefix: str = "") -> None:
        self.role = role
        self.server = server
        self.context = context
        self.prefix = prefix
        self.log = context.log.with_(kubernetes_sd=role, api_server=server.url)
        self.resources = ROLE_RESOURCES[role]
        self.stores: dict[str, dict[Key, Obj]] = {r: {} for r in self.resources}
        #: resource -> the resourceVersion its watch resumes from
        self.versions: dict[str, str] = {}
        #: Prometheus source -> how many kapa-core groups it has now
        self.published: dict[str, int] = {}
        self._last_error = ""

    # the groups ----------------------------------------------------------------------------

    def build(self, obj: Obj) -> PromGroup | None:
        if self.role == "node":
            return node_group(obj)
        if self.role == "pod":
            return pod_group(obj)
        if self.role == "service":
            return service_group(obj)
        return endpoints_group(obj, self.stores["services"], self.stores["pods"])

    def source(self, key: Key) -> str:
        return {"node": node_source, "pod": pod_source, "service": service_source,
                "endpoint": endpoints_source}[self.role](key)

    def _set(self, source: str, groups: list[TargetGroup], out: list[TargetGroup]) -> None:
        """Publish ``groups`` as the groups of ``source``, withdrawing those it had more."""
        before = self.published.get(source, 0)
        out.extend(groups)
        name = self.prefix + source
        out.extend(TargetGroup((), {}, f"{name}:{i}") for i in range(len(groups), before))
        if groups:
            self.published[source] = len(groups)
        else:
            self.published.pop(source, None)

    def changed(self, key: Key, out: list[TargetGroup]) -> None:
        """``key`` of the role's main resource changed or went: its groups now."""
        main = self.stores[self.resources[0]]
        source = self.source(key)
        obj = main.get(key)
        if obj is None:
            self._set(source, [], out)
            return
        group = self.build(obj)
        if group is None:
            return  # as Prometheus: a node or pod without an address leaves its group be
        self._set(source, target_groups(group, self.prefix), out)

    def publish(self, groups: list[TargetGroup]) -> None:
        self.context.update(groups)

    def resync(self) -> list[TargetGroup]:
        """All groups after a list: every object's, and removals for those gone."""
        out: list[TargetGroup] = []
        main = self.stores[self.resources[0]]
        current = {self.source(key) for key in main}
        for source in [s for s in self.published if s not in current]:
            self._set(source, [], out)
        for key in sorted(main):
            self.changed(key, out)
        return out

    def dependents(self, resource: str, key: Key) -> list[Key]:
        """Endpoints whose groups a change of ``resource`` object ``key`` affects."""
        if self.role != "endpoint" or resource == "endpoints":
            return [key]
        endpoints = self.stores["endpoints"]
        if resource == "services":
            return [key] if key in endpoints else []
        hits = []
        for ekey, obj in endpoints.items():
            if ekey[0] != key[0]:
                continue
            for subset in _list(obj.get("subsets")):
                refs = _list(subset.get("addresses")) + _list(subset.get("notReadyAddresses"))
                if any(isinstance(a.get("targetRef"), dict) and
                       a["targetRef"].get("kind") == "Pod" and
                       _str(a["targetRef"].get("name")) == key[1] for a in refs):
                    hits.append(ekey)
                    break
        return hits

    # requests --------------------------------------------------------------------------------

    def client(self) -> httpx.AsyncClient:
        return self.context.http_client(self.server.tls, LIST_TIMEOUT)

    def headers(self) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json, */*"}
        if self.server.token:
            headers["Authorization"] = f"Bearer {self.server.token}"
        return headers

    def error(self, what: str, err: str) -> None:
        """Log a failure (the same failure again only at debug level)."""
        text = f"{what}: {err}"
        if text != self._last_error:
            self.log.error(f"kubernetes discovery: {what}", err=err)
        else:
            self.log.debug(f"kubernetes discovery: {what}", err=err)
        self._last_error = text

    async def list(self, resource: str) -> None:
        url = self.server.resource_url(resource)
        for attempt in _ATTEMPTS:
            try:
                self.context.check_outgoing(url)
                response = await self.client().get(url, params={"resourceVersion": "0"},
                                                   headers=self.headers())
                break
            except httpx.RemoteProtocolError as exc:
                if attempt == _ATTEMPTS[-1]:
                    raise RequestFailed(f"Get {url}: {exc}") from None
            except httpx.HTTPError as exc:
                raise RequestFailed(f"Get {url}: {exc or type(exc).__name__}") from None
            except (OSError, TLSFileError) as exc:
                raise RequestFailed(str(exc)) from None
        doc = _json(response)
        if response.status_code != 200:
            raise RequestFailed(_failure(response, doc))
        if not isinstance(doc, dict):
            raise RequestFailed(f"unable to understand list result {response.text[:200]!r}")
        store: dict[Key, Obj] = {}
        for item in _list(doc.get("items")):
            store[key_of(item)] = item
        self.stores[resource] = store
        self.versions[resource] = _str(_meta(doc).get("resourceVersion"))

    async def watch(self, resource: str) -> None:
        """Follow ``resource`` until its watch fails (then raise) or asks for a list
        (raise Gone); a watch the server ends normally is resumed."""
        url = self.server.resource_url(resource)
        retried = False
        while True:
            seconds = int(MIN_WATCH * (random.random() + 1.0))
            params = {"watch": "true", "resourceVersion": self.versions.get(resource, ""),
                      "timeoutSeconds": str(seconds)}
            started, events, answered = time.monotonic(), 0, False
            try:
                self.context.check_outgoing(url)
                async with self.client().stream(
                        "GET", url, params=params, headers=self.headers(),
                        timeout=httpx.Timeout(LIST_TIMEOUT, read=seconds + 30.0)) as response:
                    answered = True
                    if response.status_code != 200:
                        await response.aread()
                        doc = _json(response)
                        if response.status_code == 410:
                            raise Gone(_failure(response, doc))
                        raise RequestFailed(_failure(response, doc))
                    async for line in response.aiter_lines():
                        if not line.strip():
                            continue
                        self.event(resource, line)
                        events += 1
            except httpx.RemoteProtocolError as exc:
                if not answered and not retried:
                    retried = True  # a kept-alive connection the server had closed
                    continue
                raise RequestFailed(f"Get {url}: {exc}") from None
            except httpx.HTTPError as exc:
                refused = isinstance(exc, httpx.ConnectError)
                raise RequestFailed(f"Get {url}: {exc or type(exc).__name__}",
                                    refused=refused) from None
            except (OSError, TLSFileError) as exc:
                raise RequestFailed(str(exc)) from None
            retried = False
            if events == 0 and time.monotonic() - started < 1.0:
                raise RequestFailed("very short watch: the watch ended at once without "
                                    "events")
            self._last_error = ""

    def event(self, resource: str, line: str) -> None:
        try:
            event = json.loads(line)
            kind, obj = event["type"], event["object"]
            if not isinstance(obj, dict):
                raise TypeError("object is not a JSON object")
        except (ValueError, KeyError, TypeError) as exc:
            raise RequestFailed(f"unable to decode watch event: {exc}") from None
        if kind == "ERROR":
            message = _str(obj.get("message"))
            if obj.get("code") == 410:
                raise Gone(message)
            raise RequestFailed(f"watch error: {message}")
        version = _str(_meta(obj).get("resourceVersion"))
        if version:
            self.versions[resource] = version
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            return  # BOOKMARK: only the resourceVersion counts
        key = key_of(obj)
        store = self.stores[resource]
        if kind == "DELETED":
            store.pop(key, None)
        else:
            store[key] = obj
        out: list[TargetGroup] = []
        for dependent in self.dependents(resource, key):
            self.changed(dependent, out)
        if out:
            self.publish(out)

    async def run(self) -> None:
        """List, publish, watch; start over a second after anything goes wrong."""
        while True:
            try:
                for resource in reversed(self.resources):  # the main resource last
                    await self.list(resource)
                self.publish(self.resync())
                self._last_error = ""
                async with trio.open_nursery() as nursery:
                    for resource in self.resources:
                        nursery.start_soon(self._follow, resource)
            except* Gone as group:
                self.log.info("kubernetes discovery: resourceVersion expired, listing again",
                              err=str(group.exceptions[0]))
            except* RequestFailed as group:
                self.error("list or watch failed", str(group.exceptions[0]))
            await trio.sleep(RETRY)

    async def _follow(self, resource: str) -> None:
        while True:
            try:
                await self.watch(resource)
            except RequestFailed as exc:
                if not exc.refused:
                    raise
                # As client-go: a refused watch is asked again from where it was.
                self.error("watch failed", str(exc))
                await trio.sleep(RETRY)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json() if response.content else None
    except ValueError:
        return None


def _failure(response: httpx.Response, doc: Any) -> str:
    message = _str(doc.get("message")) if isinstance(doc, dict) else ""
    return f"{response.status_code} {response.reason_phrase}" + (
        f": {message}" if message else "")


class KubernetesDiscoverer:
    """The discoverer of one enabled ``[[kubernetes]]`` element."""

    def __init__(self, config: Any, context: DiscoveryContext) -> None:
        self.config = config
        self.context = context

    def servers(self) -> list[Server]:
        config = self.config
        if config.in_cluster or not config.api_servers:
            return [in_cluster_server(self.context.log.error)]
        return [Server(url, config.token, TLS(ca=config.ca_path))
                for url in config.api_servers]

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        role = self.config.resource
        log = self.context.log
        watchers: list[RoleWatcher] = []
        if role not in ROLE_RESOURCES:
            log.error(f"unknown Kubernetes discovery kind {json.dumps(role)}")
        else:
            try:
                servers = self.servers()
            except ValueError as exc:
                log.error("Cannot create Kubernetes discovery", err=str(exc))
                servers = []
            for index, server in enumerate(servers):
                try:
                    self.context.http_client(server.tls, LIST_TIMEOUT)
                except Exception as exc:
                    log.error("Cannot create Kubernetes discovery", api_server=server.url,
                              err=str(exc))
                    continue
                prefix = f"kubernetes/{index}/" if len(servers) > 1 else ""
                watchers.append(RoleWatcher(role, server, self.context, prefix=prefix))
        async with trio.open_nursery() as nursery:
            for watcher in watchers:
                nursery.start_soon(watcher.run)
            task_status.started()
            await trio.sleep(math.inf)


def discoverer(config: Any, context: DiscoveryContext) -> KubernetesDiscoverer:
    return KubernetesDiscoverer(config, context)


__all__ = ["KubernetesDiscoverer", "PromGroup", "RoleWatcher", "Server", "discoverer",
           "endpoints_group", "in_cluster_server", "node_group", "pod_group",
           "service_group", "target_groups"]


"""Runtimes of ``|k8sAutoscale()``, ``|swarmAutoscale()`` and ``|ec2Autoscale()``, as
Kapacitor 1.5.7 runs them.

For each point (or each point of a batch) the node finds the resource it is about (a
fixed name or a tag), asks the cloud for its replica count the first time it sees the
resource, evaluates the ``replicas`` lambda (with the current count under
``currentField``), bounds the result by ``min``/``max``, and when it differs from the
count it last set (and the cooldown of that direction has passed), sets it and emits a
point with fields ``old`` and ``new``. The cloud calls are those of Kapacitor's own
clients, in the same order and shape:

* Kubernetes: ``GET /apis/extensions/v1beta1/namespaces/<ns>/<kind>/<name>/scale`` with
  the ``Bearer`` token, then a JSON patch of ``/spec/replicas`` sent to the scale's
  ``selfLink`` (setting a count reads the scale again first);
* Docker Swarm (API v1.30): ``GET /v1.30/services/<id>``, then the service's spec with
  the new count POSTed to ``/v1.30/services/<id>/update?version=<index>``.

The calls are made by the node's own trio task, in the order the points arrived, so a
slow cloud API never blocks the task's other nodes. EC2 Auto Scaling is not available in
kapa-core: a task with ``ec2Autoscale`` is refused when it starts.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import trio

from kapa_core.alert.gojson import Struct, dumps
from kapa_core.engine.node import Node
from kapa_core.models.batch import Batch
from kapa_core.models.point import Point
from kapa_core.pipeline.autoscale import (
    AutoscaleSpec,
    Ec2AutoscaleSpec,
    K8sAutoscaleSpec,
    SwarmAutoscaleSpec,
)

QUEUE = 1000
#: Kubernetes' default namespace, used when the node names none.
DEFAULT_NAMESPACE = "default"
SWARM_VERSION = "v1.30"


class CloudError(Exception):
    pass


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


class _RoundRobin:
    """Kapacitor's clients pick the next URL for each request, starting at the second."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = [httpx.URL(u) for u in urls]
        self.index = 0

    def pick(self, path: str) -> str:
        self.index = (self.index + 1) % len(self.urls)
        base = self.urls[self.index]
        return str(base.copy_with(raw_path=path.encode()))


def _cluster(elements: Any, cluster: str, service: str, what: str = "cluster") -> Any:
    """The ``[[<service>]]`` element with id ``cluster`` (Kapacitor's service lookup)."""
    for element in elements or ():
        if element.id == cluster:
            if not element.enabled:
                raise CloudError("service is not enabled")
            return element
    raise CloudError(f"unknown {service} {what} {_go_quote(cluster)}, cannot get client")


class K8sClient:
    def __init__(self, config: Any, http: httpx.AsyncClient | None = None) -> None:
        self.urls = _RoundRobin(list(config.api_servers))
        self.token = config.token
        self.http = http

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        assert self.http is not None
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        try:
            response = await self.http.request(method, self.urls.pick(path),
                                               headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise CloudError(f"k8s client request failed: {exc}") from None
        try:
            doc = response.json() if response.content else {}
        except ValueError as exc:
            raise CloudError("failed to understand k8s server response: Code: "
                             f"{response.status_code}: {exc}") from None
        if response.status_code != 200:
            raise CloudError(str(doc.get("message", "")) if isinstance(doc, dict) else "")
        return doc if isinstance(doc, dict) else {}

    async def get_scale(self, namespace: str, kind: str, name: str) -> dict[str, Any]:
        path = f"/apis/extensions/v1beta1/namespaces/{namespace}/{kind}/{name}/scale"
        try:
            return await self._request("GET", path)
        except CloudError as exc:
            raise CloudError(f"failed to get scale {namespace}/{kind}/{name}: {exc}") from None

    async def replicas(self, rid: tuple[str, str, str]) -> int:
        scale = await self.get_scale(*rid)
        return _int((scale.get("spec") or {}).get("replicas", 0))

    async def set_replicas(self, rid: tuple[str, str, str], replicas: int) -> None:
        namespace, kind, name = rid
        scale = await self.get_scale(namespace, kind, name)
        meta = scale.get("metadata") or {}
        patch = [Struct(op="replace", path="/spec/replicas", value=replicas)]
        try:
            await self._request("PATCH", str(meta.get("selfLink", "")),
                                content=(dumps(patch) + "\n").encode(),
                                headers={"Content-Type": "application/json-patch+json"})
        except CloudError as exc:
            raise CloudError(f"failed to update scale {namespace}/{kind}/"
                             f"{meta.get('name', '')}: {exc}") from None


def _int(value: Any) -> int:
    return value if type(value) is int else int(value or 0)


#: The fields of Docker's ServiceSpec and TaskSpec in the order Go writes them, and
#: whether Go leaves them out when empty (structs are always written).
_SPEC_FIELDS = (("Name", True), ("Labels", True), ("TaskTemplate", False), ("Mode", False),
                ("UpdateConfig", True), ("Networks", True), ("EndpointSpec", True))
_TASK_FIELDS = (("ContainerSpec", False), ("Resources", True), ("RestartPolicy", True),
                ("Placement", True), ("Networks", True), ("LogDriver", True),
                ("ForceUpdate", False))


def _go_struct(doc: Any, fields: tuple[tuple[str, bool], ...], zero: dict[str, Any]
               ) -> Struct:
    doc = doc if isinstance(doc, dict) else {}
    out = Struct()
    for name, omit_empty in fields:
        value = doc.get(name, zero.get(name))
        if omit_empty and value in (None, "", {}, [], 0):
            continue
        out[name] = value
    return out


def swarm_spec_body(spec: Any) -> str:
    """A service spec as Kapacitor's swarm client sends it back: Go's encoding of
    Docker's ServiceSpec (its fields, in its order, empty ones left out or zero)."""
    out = _go_struct(spec, _SPEC_FIELDS, {})
    out["TaskTemplate"] = _go_struct(out.get("TaskTemplate"), _TASK_FIELDS,
                                     {"ContainerSpec": {}, "ForceUpdate": 0})
    mode = out.get("Mode") if isinstance(out.get("Mode"), dict) else {}
    fixed = Struct()
    if isinstance(mode.get("Replicated"), dict):
        replicated = Struct()
        if mode["Replicated"].get("Replicas") is not None:
            replicated["Replicas"] = mode["Replicated"]["Replicas"]
        fixed["Replicated"] = replicated
    if mode.get("Global") is not None:
        fixed["Global"] = {}
    out["Mode"] = fixed
    return dumps(out) + "\n"


class SwarmClient:
    def __init__(self, config: Any, http: httpx.AsyncClient | None = None) -> None:
        self.urls = _RoundRobin(list(config.servers))
        self.http = http

    async def _request(self, method: str, path: str, content: bytes | None = None) -> Any:
        assert self.http is not None
        try:
            response = await self.http.request(method, self.urls.pick(path), content=content)
        except httpx.HTTPError as exc:
            raise CloudError(f"swarm client request failed: {exc}") from None
        if response.status_code != 200:
            try:
                message = response.json().get("message", "")
            except (ValueError, AttributeError):
                raise CloudError("failed to understand swarm server response: Code: "
                                 f"{response.status_code}") from None
            if not message:
                raise CloudError("failed to understand swarm server error response: "
                                 f"Code: {response.status_code}")
            raise CloudError(str(message))
        try:
            return response.json() if content is None else None
        except ValueError as exc:
            raise CloudError("failed to decode swarm server response into *swarm.Service: "
                             f"Code: {response.status_code}: {exc}") from None

    async def service(self, name: str) -> dict[str, Any]:
        try:
            doc = await self._request("GET", f"/{SWARM_VERSION}/services/{name}")
        except CloudError as exc:
            raise CloudError(f"failed to get swarm service for {_go_quote(name)}: {exc}"
                             ) from None
        return doc if isinstance(doc, dict) else {}

    @staticmethod
    def _replicated(service: dict[str, Any]) -> dict[str, Any]:
        mode = (service.get("Spec") or {}).get("Mode") or {}
        replicated = mode.get("Replicated")
        if not isinstance(replicated, dict) or replicated.get("Replicas") is None:
            # Kapacitor dereferences a nil pointer here; an error for this point
            raise CloudError("swarm service is not replicated")
        return replicated

    async def replicas(self, name: str) -> int:
        return _int(self._replicated(await self.service(name))["Replicas"])

    async def set_replicas(self, name: str, replicas: int) -> None:
        service = await self.service(name)
        self._replicated(service)["Replicas"] = replicas
        version = _int((service.get("Version") or {}).get("Index", 0))
        sid = str(service.get("ID", ""))
        await self._request("POST", f"/{SWARM_VERSION}/services/{sid}/update?version={version}",
                            content=swarm_spec_body(service.get("Spec")).encode())


class GoInt:
    """The current count as Kapacitor puts it in the lambda's scope under
    ``currentField``: a Go ``int``, which is none of TICKscript's types (those take
    ``int64``), so in Kapacitor 1.5.7 any use of it fails and the point is an error. A
    field of the same name takes its place, as in Kapacitor."""

    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"int({self.value})"


class _State:
    __slots__ = ("current", "last_decrease", "last_increase")

    def __init__(self, current: int) -> None:
        self.current = current
        self.last_increase: int | None = None
        self.last_decrease: int | None = None


class AutoscaleNode(Node):
    def __init__(self, spec: AutoscaleSpec, log: Any, ctx: Any) -> None:
        super().__init__(spec, log)
        from kapa_core.engine.tasks import StartRefused

        self.spec_ = spec
        section = getattr(ctx, "config_section", lambda name: None)
        try:
            self.client: Any = self.make_client(spec, section)
        except CloudError as exc:
            raise StartRefused(str(exc)) from None
        self.expr = spec.replicas
        self.min = spec.min_replicas
        self.max = spec.max_replicas
        self.increase_cooldown = int(spec.increase_cooldown)
        self.decrease_cooldown = int(spec.decrease_cooldown)
        self.current_field = spec.current_field
        self.states: dict[str, _State] = {}
        self.groups: set[str] = set()
        self.increase_events = 0
        self.decrease_events = 0
        self.cooldown_drops = 0
        self.send, self.receive = trio.open_memory_channel[Any](QUEUE)
        self.dropped = 0

    # -- what each cloud defines -------------------------------------------------------
    def make_client(self, spec: Any, section: Any) -> Any:
        raise NotImplementedError

    def resource_id(self, tags: dict[str, str]) -> Any:
        """The resource a point is about, from the node's name or its tag."""
        if self.spec_.resource_name:
            name = self.spec_.resource_name
        else:
            name = tags.get(self.spec_.resource_name_tag, "")
        if not name:
            raise CloudError("could not determine the name of the resource")
        return name

    def key(self, rid: Any) -> str:
        return str(rid)

    def label(self, rid: Any) -> str:
        return str(rid)

    def output_tags(self, rid: Any, tags: dict[str, str]) -> None:
        pass

    # -- stats -------------------------------------------------------------------------
    def cardinality(self) -> int:
        return len(self.groups)

    def delete_group(self, group: str) -> None:
        self.groups.discard(group)

    def extra_stats(self) -> dict[str, Any]:
        stats = {"increase_events": self.increase_events,
                 "decrease_events": self.decrease_events,
                 "cooldown_drops": self.cooldown_drops}
        if self.dropped:
            stats["dropped"] = self.dropped
        return stats

    # -- receiving ---------------------------------------------------------------------
    def _queue(self, item: Any) -> None:
        try:
            self.send.send_nowait(item)
        except trio.WouldBlock:
            self.dropped += 1

    def point(self, p: Point) -> None:
        self.groups.add(p.group)
        self._queue(p)

    def batch(self, b: Batch) -> None:
        self.groups.add(b.group)
        self._queue(b)

    async def run_io(self) -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            self.client.http = http
            async for item in self.receive:
                if isinstance(item, Point):
                    await self._handle(item.name, item.group, item.dims, item.time,
                                       item.fields, item.tags)
                else:
                    for bp in item.points:
                        await self._handle(item.name, item.group, item.dims, bp.time,
                                           bp.fields, bp.tags)

    async def _handle(self, name: str, group: str, dims: tuple[str, ...], t: int,
                      fields: dict[str, Any], tags: dict[str, str]) -> None:
        try:
            out = await self._scale(name, group, dims, t, fields, tags)
        except Exception as exc:
            self.fail(exc)
            return
        if out is not None:
            self.emit_point(out)

    async def _scale(self, name: str, group: str, dims: tuple[str, ...], t: int,
                     fields: dict[str, Any], tags: dict[str, str]) -> Point | None:
        rid = self.resource_id(tags)
        key = self.key(rid)
        state = self.states.get(key)
        if state is None:  # a resource not seen yet: ask for its count
            try:
                state = _State(await self.client.replicas(rid))
            except CloudError as exc:
                raise CloudError(f"could not determine initial scale for "
                                 f"{_go_quote(self.label(rid))}: {exc}") from None
            self.states[key] = state
        old = state.current
        scope = {self.current_field: GoInt(old), **fields} if self.current_field else fields
        value = self.expr.eval(t, scope, tags)
        if type(value) is not int:
            kind = "int" if type(value) is GoInt else type(value).__name__
            raise CloudError("failed to evaluate the replicas expression: expression "
                             f"returned {kind}, expected int64")
        new = value
        if self.max > 0 and new > self.max:
            new = self.max
        if new < self.min:
            new = self.min
        if new == old:
            return None
        if new > old:
            if state.last_increase is not None and t < state.last_increase + \
                    self.increase_cooldown:
                self.cooldown_drops += 1
                return None
        elif state.last_decrease is not None and t < state.last_decrease + \
                self.decrease_cooldown:
            self.cooldown_drops += 1
            return None
        self.log.debug("setting replicas", new=new, old=old, id=key)
        try:
            await self.client.set_replicas(rid, new)
        except CloudError as exc:
            raise CloudError(f"failed to apply scaling event: failed to set new replica "
                             f"count for {_go_quote(self.label(rid))}: {exc}") from None
        # only a successful change is remembered
        state.current = new
        if new > old:
            state.last_increase = t
            self.increase_events += 1
        else:
            state.last_decrease = t
            self.decrease_events += 1
        out_tags = {d: tags.get(d, "") for d in dims}
        self.output_tags(rid, out_tags)
        return Point(name, out_tags, {"old": old, "new": new}, t, "", "", group, dims)


class K8sAutoscaleNode(AutoscaleNode):
    spec_: K8sAutoscaleSpec

    def make_client(self, spec: Any, section: Any) -> Any:
        try:
            return K8sClient(_cluster(section("kubernetes"), spec.cluster, "kubernetes"))
        except CloudError as exc:
            raise CloudError("cannot use the k8sAutoscale node, could not create kubernetes "
                             f"client: {exc}") from None

    def resource_id(self, tags: dict[str, str]) -> Any:
        name = super().resource_id(tags)
        return (self.spec_.namespace or DEFAULT_NAMESPACE, self.spec_.resource_kind, name)

    def key(self, rid: Any) -> str:
        return str(rid[2])

    def label(self, rid: Any) -> str:
        return "/".join(rid)

    def output_tags(self, rid: Any, tags: dict[str, str]) -> None:
        spec = self.spec_
        for tag, value in ((spec.namespace_tag, rid[0]), (spec.kind_tag, rid[1]),
                           (spec.resource_tag, rid[2])):
            if tag:
                tags[tag] = value


class SwarmAutoscaleNode(AutoscaleNode):
    spec_: SwarmAutoscaleSpec

    def make_client(self, spec: Any, section: Any) -> Any:
        try:
            return SwarmClient(_cluster(section("swarm"), spec.cluster, "swarm"))
        except CloudError as exc:
            raise CloudError("cannot use the swarmAutoscale node, could not create swarm "
                             f"client: {exc}") from None

    def output_tags(self, rid: Any, tags: dict[str, str]) -> None:
        tag = self.spec_.output_service_name_tag or self.spec_.service_name_tag
        if tag:
            tags[tag] = str(rid)


class Ec2AutoscaleNode(AutoscaleNode):
    spec_: Ec2AutoscaleSpec

    def make_client(self, spec: Any, section: Any) -> Any:
        try:
            _cluster(section("ec2"), spec.cluster, "ec2", "region")
        except CloudError as exc:
            raise CloudError("cannot use the EC2Autoscale node, could not create ec2 "
                             f"client: {exc}") from None
        raise CloudError("cannot use the EC2Autoscale node: EC2 Auto Scaling is not "
                         "available in kapa-core")

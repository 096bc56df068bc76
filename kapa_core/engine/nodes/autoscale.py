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
  the new count POSTed to ``/v1.30/services/<id>/update?version=<index>``;
* EC2 Auto Scaling (kapa_core.aws, Query API 2011-01-01): ``DescribeAutoScalingGroups``
  for the group's ``DesiredCapacity`` (0 for a group AWS does not list, as Kapacitor),
  then ``SetDesiredCapacity`` with ``HonorCooldown=false``.

The calls are made by the node's own trio task, in the order the points arrived, so a
slow cloud API never blocks the task's other nodes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import trio

from kapa_core.aws import AutoScalingClient
from kapa_core.cloud import (
    DEFAULT_NAMESPACE,
    CloudError,
    K8sClient,
    SwarmClient,
    find_cluster,
)
from kapa_core.cloud import go_quote as _go_quote
from kapa_core.engine.node import Node
from kapa_core.logs import Logger
from kapa_core.models.batch import Batch
from kapa_core.models.point import Point
from kapa_core.pipeline.autoscale import (
    AutoscaleSpec,
    Ec2AutoscaleSpec,
    K8sAutoscaleSpec,
    SwarmAutoscaleSpec,
)

if TYPE_CHECKING:
    from kapa_core.engine.nodes.io import NodeContext

QUEUE = 1000


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


class _Barrier:
    __slots__ = ("group", "time")

    def __init__(self, group: str, t: int) -> None:
        self.group = group
        self.time = t


class _Delete:
    __slots__ = ("group",)

    def __init__(self, group: str) -> None:
        self.group = group


class _State:
    __slots__ = ("current", "last_decrease", "last_increase")

    def __init__(self, current: int) -> None:
        self.current = current
        self.last_increase: int | None = None
        self.last_decrease: int | None = None


class AutoscaleNode(Node):
    def __init__(self, spec: AutoscaleSpec, log: Logger, ctx: NodeContext) -> None:
        super().__init__(spec, log)
        from kapa_core.engine.tasks import StartRefused

        self.spec_ = spec
        section = getattr(ctx, "config_section", lambda name: None)
        self._section = section
        self._element: Any = None
        try:
            self.client: Any = self.make_client(spec, section)
        except CloudError as exc:
            raise StartRefused(str(exc)) from None
        if spec.replicas.static_error:  # Kapacitor compiles the lambda after the client
            raise StartRefused(f"invalid replicas expression: {spec.replicas.static_error}")
        self._http: httpx.AsyncClient | None = None
        self._http_verify: Any = None
        self.expr = spec.replicas
        #: each group's copy of the lambda (its stateful functions count per group)
        self.exprs: dict[str, Any] = {}
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
    #: the config section of the node's cluster
    SECTION = ""

    def make_client(self, spec: Any, section: Any) -> Any:
        raise NotImplementedError

    async def _ready_client(self) -> Any:
        """The client, following changes of its config element (a config override):
        running nodes use the new servers and credentials, as Kapacitor's shared
        cluster clients do; an element since disabled or removed keeps its last ones."""
        for element in self._section(self.SECTION) or ():
            if element.id == self.spec_.cluster:
                if element is not self._element:
                    if self._element is not None:
                        self.client.update(element)
                    self._element = element
                break
        if self._http is None or self.client.verify is not self._http_verify:
            if self._http is not None:
                await self._http.aclose()
            self._http = httpx.AsyncClient(timeout=30, verify=self.client.verify)
            self._http_verify = self.client.verify
            self.client.http = self._http
        return self.client

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
        self.exprs.pop(group, None)

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

    # Barriers and group deletions wait behind the points queued before them, so that
    # the children see them in the order Kapacitor's node passes them on.
    def receive_barrier(self, group: str, t: int) -> None:
        self.groups.add(group)  # a barrier opens its group, as in Kapacitor
        self._queue(_Barrier(group, t))

    def receive_delete(self, group: str) -> None:
        self._queue(_Delete(group))

    async def run_io(self) -> None:
        try:
            async for item in self.receive:
                if isinstance(item, Point):
                    await self._handle(item.name, item.group, item.dims, item.time,
                                       item.fields, item.tags)
                elif isinstance(item, Batch):
                    for bp in item.points:
                        await self._handle(item.name, item.group, item.dims, bp.time,
                                           bp.fields, bp.tags)
                elif isinstance(item, _Barrier):
                    for child in self.children:
                        child.receive_barrier(item.group, item.time)
                else:
                    self.delete_group(item.group)
                    for child in self.children:
                        child.receive_delete(item.group)
        finally:
            if self._http is not None:
                with trio.CancelScope(shield=True):
                    await self._http.aclose()

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
                client = await self._ready_client()
                state = _State(await client.replicas(rid))
            except CloudError as exc:
                raise CloudError(f"could not determine initial scale for "
                                 f"{_go_quote(self.label(rid))}: {exc}") from None
            self.states[key] = state
        old = state.current
        scope = {self.current_field: GoInt(old), **fields} if self.current_field else fields
        expr = self.exprs.get(group)
        if expr is None:
            expr = self.exprs[group] = self.expr.copy_reset()
        try:
            value = expr.eval(t, scope, tags)
        except Exception as exc:  # Kapacitor's words around the expression's error
            raise CloudError(f"failed to evaluate the replicas expression: {exc}") from None
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
            client = await self._ready_client()
            await client.set_replicas(rid, new)
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
    SECTION = "kubernetes"

    def make_client(self, spec: Any, section: Any) -> Any:
        try:
            return K8sClient(find_cluster(section("kubernetes"), spec.cluster, "kubernetes"))
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
    SECTION = "swarm"

    def make_client(self, spec: Any, section: Any) -> Any:
        try:
            return SwarmClient(find_cluster(section("swarm"), spec.cluster, "swarm"))
        except CloudError as exc:
            raise CloudError("cannot use the swarmAutoscale node, could not create swarm "
                             f"client: {exc}") from None

    def output_tags(self, rid: Any, tags: dict[str, str]) -> None:
        tag = self.spec_.output_service_name_tag or self.spec_.service_name_tag
        if tag:
            tags[tag] = str(rid)


class Ec2AutoscaleNode(AutoscaleNode):
    spec_: Ec2AutoscaleSpec
    SECTION = "ec2"

    def make_client(self, spec: Any, section: Any) -> Any:
        try:
            return AutoScalingClient(find_cluster(section("ec2"), spec.cluster, "ec2",
                                                  "region"))
        except CloudError as exc:
            raise CloudError("cannot use the EC2Autoscale node, could not create ec2 "
                             f"client: {exc}") from None

    def output_tags(self, rid: Any, tags: dict[str, str]) -> None:
        tag = self.spec_.output_group_name_tag or self.spec_.group_name_tag
        if tag:
            tags[tag] = str(rid)

"""``|k8sAutoscale()``, ``|swarmAutoscale()`` and ``|ec2Autoscale()``: set the replica
count of a cloud resource from a lambda evaluated on each point.

The properties, defaults and checks are Kapacitor 1.5.7's: the resource is named either
by a fixed name or by a tag of the point (exactly one of the two), ``min`` (default 1,
must be >= 1) and ``max`` (0: no maximum) bound the new count, ``increaseCooldown`` and
``decreaseCooldown`` keep a resource from being scaled again too soon, and
``currentField`` names the variable the lambda sees the current count under. The nodes
take points or batches and emit one point per scaling event (fields ``new`` and ``old``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from kapa_core.models.duration import Duration
from kapa_core.pipeline.base import Edge, NodeSpec, Prop, SpecError, chain, check_args

#: The resource kinds Kapacitor's Kubernetes client scales.
K8S_KINDS = ("deployments", "replicasets", "replicationcontrollers")


class AutoscaleSpec(NodeSpec):
    """What the three autoscale nodes share."""

    wants = Edge.SAME
    provides = Edge.STREAM
    #: the TICKscript properties naming the resource (fixed name, tag)
    NAME_PROPS: ClassVar[tuple[str, str]] = ("", "")
    PROPERTIES: ClassVar[dict[str, Prop]] = {
        "cluster": Prop(("string",)),
        "currentField": Prop(("string",), attr="current_field"),
        "max": Prop(("int",), attr="max_replicas"),
        "min": Prop(("int",), attr="min_replicas"),
        "replicas": Prop(("lambda",)),
        "increaseCooldown": Prop(("duration",), attr="increase_cooldown"),
        "decreaseCooldown": Prop(("duration",), attr="decrease_cooldown"),
    }

    def __init__(self, pipeline: Any, parents: list[NodeSpec]) -> None:
        super().__init__(pipeline, parents)
        self.cluster = ""
        self.current_field = ""
        self.max_replicas = 0
        self.min_replicas = 1
        self.replicas: Any = None
        self.increase_cooldown = Duration(0)
        self.decrease_cooldown = Duration(0)

    @property
    def resource_name(self) -> str:
        return str(getattr(self, self.NAME_PROPS[0]))

    @property
    def resource_name_tag(self) -> str:
        return str(getattr(self, self.NAME_PROPS[1]))

    def name_error(self) -> str:
        return ""

    def validate(self) -> None:
        # Kapacitor's checks, in its order and words.
        if bool(self.resource_name) == bool(self.resource_name_tag):
            raise SpecError(self.name_error())
        self.validate_kind()
        if self.min_replicas < 1:
            raise SpecError(f"min must be >= 1, got {self.min_replicas}")
        if self.replicas is None:
            raise SpecError("must provide a replicas lambda expression")

    def validate_kind(self) -> None:
        pass


class K8sAutoscaleSpec(AutoscaleSpec):
    kind = "k8s_autoscale"
    NAME_PROPS = ("resource_name_", "resource_name_tag_")
    PROPERTIES: ClassVar[dict[str, Prop]] = {
        "namespace": Prop(("string",)),
        "kind": Prop(("string",), attr="resource_kind"),
        "resourceName": Prop(("string",), attr="resource_name_"),
        "resourceNameTag": Prop(("string",), attr="resource_name_tag_"),
        "namespaceTag": Prop(("string",), attr="namespace_tag"),
        "kindTag": Prop(("string",), attr="kind_tag"),
        "resourceTag": Prop(("string",), attr="resource_tag"),
    }

    def __init__(self, pipeline: Any, parents: list[NodeSpec]) -> None:
        super().__init__(pipeline, parents)
        self.namespace = ""
        self.resource_kind = "deployments"
        self.resource_name_ = ""
        self.resource_name_tag_ = ""
        self.namespace_tag = "namespace"
        self.kind_tag = "kind"
        self.resource_tag = "resource"

    def name_error(self) -> str:
        return "must specify exactly one of ResourceName or ResourceNameTag"

    def validate_kind(self) -> None:
        if self.resource_kind not in K8S_KINDS:
            raise SpecError("invalid Kind, must be 'deployments', 'replicasets' or "
                            f"'replicationcontrollers', got {self.resource_kind}")


class SwarmAutoscaleSpec(AutoscaleSpec):
    kind = "swarm_autoscale"
    NAME_PROPS = ("service_name", "service_name_tag")
    PROPERTIES: ClassVar[dict[str, Prop]] = {
        "serviceName": Prop(("string",), attr="service_name"),
        "serviceNameTag": Prop(("string",), attr="service_name_tag"),
        "outputServiceNameTag": Prop(("string",), attr="output_service_name_tag"),
    }

    def __init__(self, pipeline: Any, parents: list[NodeSpec]) -> None:
        super().__init__(pipeline, parents)
        self.service_name = ""
        self.service_name_tag = ""
        self.output_service_name_tag = ""

    def name_error(self) -> str:
        return "must specify exactly one of ServiceName or ServiceNameTag"


class Ec2AutoscaleSpec(AutoscaleSpec):
    kind = "ec2_autoscale"
    NAME_PROPS = ("group_name", "group_name_tag")
    PROPERTIES: ClassVar[dict[str, Prop]] = {
        "groupName": Prop(("string",), attr="group_name"),
        "groupNameTag": Prop(("string",), attr="group_name_tag"),
        "outputGroupNameTag": Prop(("string",), attr="output_group_name_tag"),
    }

    def __init__(self, pipeline: Any, parents: list[NodeSpec]) -> None:
        super().__init__(pipeline, parents)
        self.group_name = ""
        self.group_name_tag = ""
        self.output_group_name_tag = ""

    def name_error(self) -> str:
        return "must specify exactly one of GroupName or GroupNameTag"


@chain("k8sAutoscale")
def _k8s_autoscale(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    check_args("k8sAutoscale", (), args)
    return K8sAutoscaleSpec(pipeline, [parent])


@chain("swarmAutoscale")
def _swarm_autoscale(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    check_args("swarmAutoscale", (), args)
    return SwarmAutoscaleSpec(pipeline, [parent])


@chain("ec2Autoscale")
def _ec2_autoscale(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    check_args("ec2Autoscale", (), args)
    return Ec2AutoscaleSpec(pipeline, [parent])

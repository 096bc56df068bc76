"""From a pipeline of specs to connected runtime nodes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from kapa_core.engine.node import DEFAULT_TIMING, Node
from kapa_core.engine.nodes import (
    autoscale,
    barrier,
    basic,
    enrich,
    influxql,
    io,
    join,
    output,
    transform,
    window,
)
from kapa_core.engine.nodes.alert import AlertNode
from kapa_core.engine.nodes.influxdb_out import InfluxDBOutNode
from kapa_core.engine.nodes.query import QueryNode
from kapa_core.engine.nodes.udf import UDFNode
from kapa_core.errors import TaskError
from kapa_core.logs import Logger
from kapa_core.pipeline import autoscale as autoscale_specs
from kapa_core.pipeline import nodes as specs
from kapa_core.pipeline.alert import AlertSpec
from kapa_core.pipeline.influxdb_out import InfluxDBOutSpec
from kapa_core.pipeline.influxql import InfluxQLSpec
from kapa_core.pipeline.pipeline import Pipeline
from kapa_core.pipeline.query import QuerySpec
from kapa_core.pipeline.udf import UDFSpec

RUNTIMES: dict[type, type[Node]] = {
    specs.StreamSpec: basic.SourceNode,
    specs.BatchSpec: basic.SourceNode,
    specs.FromSpec: basic.FromNode,
    specs.WhereSpec: basic.WhereNode,
    specs.EvalSpec: transform.EvalNode,
    specs.GroupBySpec: basic.GroupByNode,
    specs.WindowSpec: window.WindowNode,
    specs.ShiftSpec: basic.ShiftNode,
    specs.SampleSpec: basic.SampleNode,
    specs.DefaultSpec: basic.DefaultNode,
    specs.DeleteSpec: basic.DeleteNode,
    specs.DerivativeSpec: transform.DerivativeNode,
    specs.ChangeDetectSpec: transform.ChangeDetectNode,
    specs.StateDurationSpec: transform.StateDurationNode,
    specs.StateCountSpec: transform.StateCountNode,
    specs.LogSpec: basic.LogNode,
    specs.NoOpSpec: output.NoOpNode,
    specs.UnionSpec: basic.UnionNode,
    specs.JoinSpec: join.JoinNode,
    specs.FlattenSpec: enrich.FlattenNode,
    specs.CombineSpec: enrich.CombineNode,
    specs.BarrierSpec: barrier.BarrierNode,
    InfluxQLSpec: influxql.InfluxQLNode,
}


#: Runtimes that also take the daemon's NodeContext.
WITH_CONTEXT: dict[type, Callable[[Any, Logger, io.NodeContext], Node]] = {
    specs.KapacitorLoopbackSpec: io.LoopbackNode,
    specs.HTTPPostSpec: io.HTTPPostNode,
    specs.HTTPOutSpec: output.HTTPOutNode,
    AlertSpec: AlertNode,
    InfluxDBOutSpec: InfluxDBOutNode,
    QuerySpec: QueryNode,
    specs.SideloadSpec: lambda spec, log, ctx: enrich.SideloadNode(spec, log, ctx.sideloads),
    autoscale_specs.K8sAutoscaleSpec: autoscale.K8sAutoscaleNode,
    autoscale_specs.SwarmAutoscaleSpec: autoscale.SwarmAutoscaleNode,
    autoscale_specs.Ec2AutoscaleSpec: autoscale.Ec2AutoscaleNode,
    UDFSpec: UDFNode,
}


def build_nodes(pipeline: Pipeline, log: Logger,
                context: io.NodeContext | None = None) -> list[Node]:
    """Runtime nodes in pipeline order, wired parent -> children."""
    built: dict[int, Node] = {}
    context = context or io.NodeContext()
    for spec in pipeline.walk():
        if isinstance(spec, specs.StatsSpec):
            built[spec.id] = output.StatsNode(spec, log, built[spec.source.id])
            continue
        runtime = RUNTIMES.get(type(spec))
        with_context = WITH_CONTEXT.get(type(spec))
        if runtime is None and with_context is None:
            raise TaskError(f"{spec.name}: {spec.kind} nodes cannot run yet in kapa-core")
        try:
            node: Any = (with_context(spec, log, context) if with_context
                         else cast("type[Node]", runtime)(spec, log))
        except ValueError as exc:  # Kapacitor's words first, then which node
            raise TaskError(f"{exc} ({spec.name})") from None
        built[spec.id] = node
        # A node that tells its parents apart (join, union) gives each one its own input.
        make_input = getattr(node, "input", None)
        for index, parent in enumerate(spec.parents):
            built[parent.id].children.append(make_input(index) if make_input else node)
    for node in built.values():  # a stats node counts what its node sends, once linked
        if isinstance(node, output.StatsNode):
            node.attach()
    if context.timing != DEFAULT_TIMING:  # the daemon's [stats] timing settings
        for node in built.values():
            node.use_timing(context.timing)
    return list(built.values())

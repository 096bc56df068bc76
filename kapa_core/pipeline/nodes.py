"""Node specs for sources, transforms and outputs: what each TICKscript node accepts.

The runtime of each node lives in :mod:`kapa_core.engine.nodes`; InfluxQL functions are
in :mod:`kapa_core.pipeline.influxql`.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from kapa_core.models.duration import SECOND, Duration
from kapa_core.pipeline.base import (
    STAR,
    Edge,
    NodeSpec,
    Prop,
    SpecError,
    chain,
    check_args,
)

# -- sources ---------------------------------------------------------------------------------


class StreamSpec(NodeSpec):
    """``stream``: every point written to the task's databases."""

    kind = "stream"
    wants = Edge.NONE
    provides = Edge.STREAM
    user_creatable = False


class BatchSpec(NodeSpec):
    """``batch``: the source of batch tasks (queries arrive with the InfluxDB work)."""

    kind = "batch"
    wants = Edge.NONE
    provides = Edge.BATCH
    user_creatable = False


class FromSpec(NodeSpec):
    """``stream|from()``: selects points by database, retention policy, measurement and
    ``where`` lambdas, groups them by tags and can truncate or round their times."""

    kind = "from"
    wants = Edge.STREAM
    provides = Edge.STREAM
    PROPERTIES: ClassVar[dict[str, Prop]] = {
        "database": Prop(("string",)),
        "retentionPolicy": Prop(("string",), attr="retention_policy"),
        "measurement": Prop(("string",)),
        "where": Prop(("lambda",), attr="wheres", mode="append"),
        "groupBy": Prop((), attr="group_by", mode="extend", variadic="string|star",
                        minimum=0),
        "groupByMeasurement": Prop(attr="group_by_measurement", mode="flag"),
        "truncate": Prop(("duration",)),
        "round": Prop(("duration",)),
    }

    def __init__(self, pipeline: Any, parents: list[NodeSpec]) -> None:
        super().__init__(pipeline, parents)
        self.database = ""
        self.retention_policy = ""
        self.measurement = ""
        self.wheres: list[Any] = []
        self.group_by: list[Any] = []
        self.group_by_measurement = False
        self.truncate = Duration(0)
        self.round = Duration(0)

    def validate(self) -> None:
        _check_dimensions(self.group_by, [])

    def attributes(self) -> dict[str, Any]:
        return {"database": self.database, "retentionPolicy": self.retention_policy,
                "measurement": self.measurement}


@chain("from")
def _from(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    if not isinstance(parent, StreamSpec | FromSpec):
        raise SpecError("from() can only be chained from stream")
    check_args("from", (), args)
    return FromSpec(pipeline, [parent])


# -- simple transforms ----------------------------------------------------------------------


class WhereSpec(NodeSpec):
    """``|where(λ)``: keeps the points for which the lambda is true."""

    kind = "where"

    def __init__(self, pipeline: Any, parents: list[NodeSpec], expr: Any) -> None:
        super().__init__(pipeline, parents)
        self.expr = expr


@chain("where")
def _where(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    (expr,) = check_args("where", ("lambda",), args)
    return WhereSpec(pipeline, [parent], expr)


class EvalSpec(NodeSpec):
    """``|eval(λ…)``: computes fields (or tags) from expressions, in order."""

    kind = "eval"
    PROPERTIES: ClassVar[dict[str, Prop]] = {
        "as": Prop((), attr="as_names", mode="extend", variadic="string", minimum=0),
        "tags": Prop((), attr="tag_names", mode="extend", variadic="string", minimum=0),
        "keep": Prop((), attr="keep_list", mode="extend", variadic="string", minimum=0),
    }

    def __init__(self, pipeline: Any, parents: list[NodeSpec], exprs: list[Any]) -> None:
        super().__init__(pipeline, parents)
        self.exprs = exprs
        self.as_names: list[str] = []
        self.tag_names: list[str] = []
        self.keep_list: list[str] | None = None

    def set_property(self, name: str, args: list[Any]) -> None:
        super().set_property(name, args)
        if name == "keep" and self.keep_list is None:
            self.keep_list = []

    def validate(self) -> None:
        if len(self.as_names) != len(self.exprs):
            raise SpecError("must specify same number of expressions and .as() names: got "
                            f"{len(self.as_names)} as names, and {len(self.exprs)} "
                            "expressions.")
        for tag in self.tag_names:
            if tag not in self.as_names:
                raise SpecError(f'invalid tag name "{tag}", name is not present is .as() '
                                "names")


@chain("eval")
def _eval(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    exprs = check_args("eval", (), args, variadic="lambda", minimum=0)  # eval().keep(...)
    return EvalSpec(pipeline, [parent], exprs)


class GroupBySpec(NodeSpec):
    """``|groupBy(dims…)``: regroups by tags; ``*`` means every tag."""

    kind = "groupby"
    PROPERTIES: ClassVar[dict[str, Prop]] = {
        "byMeasurement": Prop(attr="by_measurement", mode="flag"),
        "exclude": Prop((), attr="excludes", mode="extend", variadic="string", minimum=0),
    }

    def __init__(self, pipeline: Any, parents: list[NodeSpec], dims: list[Any]) -> None:
        super().__init__(pipeline, parents)
        self.dims = dims
        self.by_measurement = False
        self.excludes: list[str] = []

    def set_property(self, name: str, args: list[Any]) -> None:
        if name == "exclude":  # each call adds to the excluded tags, as in Kapacitor
            self.excludes.extend(check_args(name, (), args, variadic="string", minimum=0))
            return
        super().set_property(name, args)

    def validate(self) -> None:
        _check_dimensions(self.dims, self.excludes)


def _check_dimensions(dims: list[Any], excludes: list[str]) -> None:
    """Kapacitor's checks of groupBy dimensions, in its order and words."""
    star = False
    for d in dims:
        if d is STAR:
            star = True
        elif d == "":
            raise SpecError("dimensions cannot not be the empty string")
    if star and len(dims) > 1:
        raise SpecError("cannot group by both '*' and named dimensions.")
    if not star and excludes:
        raise SpecError("exclude requires '*'")


@chain("groupBy")
def _group_by(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    dims = check_args("groupBy", (), args, variadic="string|star", minimum=0)
    return GroupBySpec(pipeline, [parent], dims)


class WindowSpec(NodeSpec):
    """``|window()``: buffers each group's points and emits them as batches."""

    kind = "window"
    wants = Edge.STREAM
    provides = Edge.BATCH
    PROPERTIES: ClassVar[dict[str, Prop]] = {
        "period": Prop(("duration",)),
        "every": Prop(("duration",)),
        "periodCount": Prop(("int",), attr="period_count"),
        "everyCount": Prop(("int",), attr="every_count"),
        "align": Prop(mode="flag"),
        "fillPeriod": Prop(attr="fill_period", mode="flag"),
    }

    def __init__(self, pipeline: Any, parents: list[NodeSpec]) -> None:
        super().__init__(pipeline, parents)
        self.period = Duration(0)
        self.every = Duration(0)
        self.period_count = 0
        self.every_count = 0
        self.align = False
        self.fill_period = False

    def validate(self) -> None:
        # Kapacitor's checks and words, in its order.
        if self.period_count and self.period:
            raise SpecError("cannot specify both period and periodCount")
        if self.period_count and self.align:
            raise SpecError("can only align windows based off time, not count")
        if self.period_count and self.every_count <= 0:
            raise SpecError("everyCount must be greater than zero")

    def attributes(self) -> dict[str, Any]:
        return {"period": str(self.period), "every": str(self.every)}


@chain("window")
def _window(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    check_args("window", (), args)
    if parent.edge_out() is Edge.BATCH:  # Kapacitor's Window() panics, the call fails
        from kapa_core.pipeline.evaluate import go_type

        raise SpecError(f'error calling func "window" on obj {go_type(parent)}: '
                        "cannot Window batch edge")
    return WindowSpec(pipeline, [parent])


class ShiftSpec(NodeSpec):
    """``|shift(d)``: moves point times by a duration (may be negative)."""

    kind = "shift"

    def __init__(self, pipeline: Any, parents: list[NodeSpec], shift: Duration) -> None:
        super().__init__(pipeline, parents)
        self.shift = shift


def _shadowed(name: str, parent: NodeSpec) -> SpecError:
    """Kapacitor cannot call a chaining method that a field of the node's Go struct
    shadows (ShiftNode.Shift): reflection refuses the call."""
    from kapa_core.pipeline.evaluate import go_type

    return SpecError(f'error calling func "{name}" on obj {go_type(parent)}: reflect: '
                     "reflect.Value.Call using value obtained using unexported field")


@chain("shift")
def _shift(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    if parent.kind == "shift":
        raise _shadowed("shift", parent)
    (shift,) = check_args("shift", ("duration",), args)
    return ShiftSpec(pipeline, [parent], shift)


class SampleSpec(NodeSpec):
    """``|sample(n or d)``: keeps every n-th point, or one per duration."""

    kind = "sample"

    def __init__(self, pipeline: Any, parents: list[NodeSpec], rate: Any) -> None:
        super().__init__(pipeline, parents)
        self.count = rate if type(rate) is int else 0
        self.duration = rate if isinstance(rate, Duration) else Duration(0)


@chain("sample")
def _sample(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    # A zero rate is refused when the task starts (by the node), as in Kapacitor.
    (rate,) = check_args("sample", ("int|duration",), args)
    return SampleSpec(pipeline, [parent], rate)


class DefaultSpec(NodeSpec):
    """``|default()``: sets fields and tags that are missing."""

    kind = "default"
    PROPERTIES: ClassVar[dict[str, Prop]] = {
        "field": Prop(("string", "int|float|string|bool"), attr="fields", mode="pairs"),
        "tag": Prop(("string", "string"), attr="tags", mode="pairs"),
    }

    def __init__(self, pipeline: Any, parents: list[NodeSpec]) -> None:
        super().__init__(pipeline, parents)
        self.fields: list[tuple[str, Any]] = []
        self.tags: list[tuple[str, str]] = []


@chain("default")
def _default(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    check_args("default", (), args)
    return DefaultSpec(pipeline, [parent])


class DeleteSpec(NodeSpec):
    """``|delete()``: removes fields and tags."""

    kind = "delete"
    PROPERTIES: ClassVar[dict[str, Prop]] = {
        "field": Prop(("string",), attr="fields", mode="append"),
        "tag": Prop(("string",), attr="tags", mode="append"),
    }

    def __init__(self, pipeline: Any, parents: list[NodeSpec]) -> None:
        super().__init__(pipeline, parents)
        self.fields: list[str] = []
        self.tags: list[str] = []


@chain("delete")
def _delete(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    check_args("delete", (), args)
    return DeleteSpec(pipeline, [parent])


class DerivativeSpec(NodeSpec):
    """``|derivative('field')``: rate of change per ``unit``."""

    kind = "derivative"
    PROPERTIES: ClassVar[dict[str, Prop]] = {
        "unit": Prop(("duration",)),
        "nonNegative": Prop(attr="non_negative", mode="flag"),
        "as": Prop(("string",), attr="as_name"),
    }

    def __init__(self, pipeline: Any, parents: list[NodeSpec], field: str) -> None:
        super().__init__(pipeline, parents)
        self.field = field
        self.unit = Duration(SECOND)
        self.non_negative = False
        self.as_name = field


@chain("derivative")
def _derivative(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    (field,) = check_args("derivative", ("string",), args)
    return DerivativeSpec(pipeline, [parent], field)


class ChangeDetectSpec(NodeSpec):
    """``|changeDetect('f'…)``: passes a point only when a listed field changed."""

    kind = "changeDetect"

    def __init__(self, pipeline: Any, parents: list[NodeSpec], fields: list[str]) -> None:
        super().__init__(pipeline, parents)
        self.fields = fields


@chain("changeDetect")
def _change_detect(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    fields = check_args("changeDetect", (), args, variadic="string", minimum=0)
    return ChangeDetectSpec(pipeline, [parent], fields)


class StateDurationSpec(NodeSpec):
    """``|stateDuration(λ)``: how long the lambda has been true, in ``unit``s (-1 if not)."""

    kind = "state_duration"
    PROPERTIES: ClassVar[dict[str, Prop]] = {
        "as": Prop(("string",), attr="as_name"),
        "unit": Prop(("duration",)),
    }

    def __init__(self, pipeline: Any, parents: list[NodeSpec], expr: Any) -> None:
        super().__init__(pipeline, parents)
        self.expr = expr
        self.as_name = "state_duration"
        self.unit = Duration(SECOND)


@chain("stateDuration")
def _state_duration(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    (expr,) = check_args("stateDuration", ("lambda",), args)
    return StateDurationSpec(pipeline, [parent], expr)


class StateCountSpec(NodeSpec):
    """``|stateCount(λ)``: consecutive points for which the lambda is true (-1 if not)."""

    kind = "state_count"
    PROPERTIES: ClassVar[dict[str, Prop]] = {"as": Prop(("string",), attr="as_name")}

    def __init__(self, pipeline: Any, parents: list[NodeSpec], expr: Any) -> None:
        super().__init__(pipeline, parents)
        self.expr = expr
        self.as_name = "state_count"


@chain("stateCount")
def _state_count(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    (expr,) = check_args("stateCount", ("lambda",), args)
    return StateCountSpec(pipeline, [parent], expr)


class LogSpec(NodeSpec):
    """``|log()``: logs everything passing through."""

    kind = "log"
    PROPERTIES: ClassVar[dict[str, Prop]] = {
        "level": Prop(("string",)),
        "prefix": Prop(("string",)),
    }

    def __init__(self, pipeline: Any, parents: list[NodeSpec]) -> None:
        super().__init__(pipeline, parents)
        self.level = "INFO"  # any text: DEBUG and ERROR log at their level, others at INFO
        self.prefix = ""


@chain("log")
def _log(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    check_args("log", (), args)
    return LogSpec(pipeline, [parent])


class HTTPOutSpec(NodeSpec):
    """``|httpOut('name')``: keeps the latest data, served at /kapacitor/v1/tasks/<id>/name."""

    kind = "http_out"

    def __init__(self, pipeline: Any, parents: list[NodeSpec], endpoint: str) -> None:
        super().__init__(pipeline, parents)
        self.endpoint = endpoint


@chain("httpOut")
def _http_out(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    (endpoint,) = check_args("httpOut", ("string",), args)
    return HTTPOutSpec(pipeline, [parent], endpoint)


class NoOpSpec(NodeSpec):
    """Passes data on unchanged (what ``|stats()`` hangs below a node without children)."""

    kind = "noop"
    user_creatable = False


class UnionSpec(NodeSpec):
    """``a|union(b…)``: merges several parents into one stream."""

    kind = "union"
    PROPERTIES: ClassVar[dict[str, Prop]] = {"rename": Prop(("string",))}

    def __init__(self, pipeline: Any, parents: list[NodeSpec]) -> None:
        super().__init__(pipeline, parents)
        self.rename = ""


@chain("union")
def _union(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    others = check_args("union", (), args, variadic="node", minimum=0)
    return UnionSpec(pipeline, [parent, *others])


class JoinSpec(NodeSpec):
    """``a|join(b…)``: joins parents on time (and ``on`` tags), prefixing fields."""

    kind = "join"
    PROPERTIES: ClassVar[dict[str, Prop]] = {
        "as": Prop((), attr="names", mode="extend", variadic="string", minimum=0),
        "on": Prop((), attr="on_dims", mode="extend", variadic="string", minimum=0),
        "delimiter": Prop(("string",)),
        "streamName": Prop(("string",), attr="stream_name"),
        "tolerance": Prop(("duration",)),
        # Any value: a string is checked at start, a number fills, anything else is no
        # fill (as Kapacitor's interface{} fill).
        "fill": Prop(("any",), attr="fill_value"),
    }

    def __init__(self, pipeline: Any, parents: list[NodeSpec]) -> None:
        super().__init__(pipeline, parents)
        self.names: list[str] = []
        self.on_dims: list[str] = []
        self.delimiter = "."
        self.stream_name = ""
        self.tolerance = Duration(0)
        self.fill_value: Any = None

    def validate(self) -> None:
        # Kapacitor's wording; a fill other than 'null', 'none' or a number is refused
        # when the task starts.
        if not self.names:
            raise SpecError("a call to join.as() is required to specify the output stream "
                            "prefixes.")
        if len(self.names) != len(self.parents):
            raise SpecError("number of prefixes specified by join.as() must match the "
                            "number of joined streams")
        for name in self.names:
            if not name:
                raise SpecError("must provide a prefix name for the join node, see .as() "
                                "property method")
            if self.delimiter and self.delimiter in name:
                raise SpecError(f"cannot use name {name} as field prefix, it contains the "
                                f"delimiter {_go_quote(self.delimiter)}\t")
        if len(set(self.names)) != len(self.names):
            raise SpecError("cannot use the same prefix name see .as() property method")


def _go_quote(text: str) -> str:
    """Go's %q of a string (enough for delimiters)."""
    return json.dumps(text, ensure_ascii=False)


@chain("join")
def _join(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    # Kapacitor accepts a join of one parent, and a combine of no expression (refused
    # later for its .as() names).
    others = check_args("join", (), args, variadic="node", minimum=0)
    return JoinSpec(pipeline, [parent, *others])


class StatsSpec(NodeSpec):
    """``|stats(interval)``: this node's statistics, every interval of wall-clock time."""

    kind = "stats"
    wants = Edge.NONE
    provides = Edge.STREAM
    PROPERTIES: ClassVar[dict[str, Prop]] = {"align": Prop(mode="flag")}

    def __init__(self, pipeline: Any, source: NodeSpec, interval: Duration) -> None:
        super().__init__(pipeline, [])
        self.source = source
        if interval <= 0:
            raise SpecError("stats: interval must be positive")
        self.interval = interval
        self.align = False


@chain("stats")
def _stats(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    (interval,) = check_args("stats", ("duration",), args)
    if not parent.children:
        NoOpSpec(pipeline, [parent])
    return StatsSpec(pipeline, parent, interval)


STAR_ = STAR  # re-exported for specs that accept "*"


class KapacitorLoopbackSpec(NodeSpec):
    """``|kapacitorLoopback()``: writes points back into kapa-core's own stream."""

    kind = "kapacitor_loopback"
    provides = Edge.NONE
    PROPERTIES: ClassVar[dict[str, Prop]] = {
        "database": Prop(("string",)),
        "retentionPolicy": Prop(("string",), attr="retention_policy"),
        "measurement": Prop(("string",)),
        "tag": Prop(("string", "string"), attr="tags", mode="pairs"),
    }

    def __init__(self, pipeline: Any, parents: list[NodeSpec]) -> None:
        super().__init__(pipeline, parents)
        self.database = ""
        self.retention_policy = ""
        self.measurement = ""
        self.tags: list[tuple[str, str]] = []

    def validate(self) -> None:
        # Kapacitor's checks and words; a loop into the task's own database and
        # retention policy is refused when the task starts (by the node).
        if not self.database:
            raise SpecError("must specify a database")
        if not self.retention_policy:
            raise SpecError("must specify a retention policy")


@chain("kapacitorLoopback")
def _loopback(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    check_args("kapacitorLoopback", (), args)
    return KapacitorLoopbackSpec(pipeline, [parent])


class HTTPPostSpec(NodeSpec):
    """``|httpPost(url?)``: POSTs each point or batch as JSON to a URL or an endpoint."""

    kind = "http_post"
    PROPERTIES: ClassVar[dict[str, Prop]] = {
        "endpoint": Prop(("string",)),
        "header": Prop(("string", "string"), attr="headers", mode="pairs"),
        "captureResponse": Prop(attr="capture_response", mode="flag"),
        "codeField": Prop(("string",), attr="code_field"),
        "timeout": Prop(("duration",)),
    }

    def __init__(self, pipeline: Any, parents: list[NodeSpec], urls: list[str]) -> None:
        super().__init__(pipeline, parents)
        self.urls = urls
        self.endpoint = ""
        self.headers: list[tuple[str, str]] = []
        self.capture_response = False
        self.code_field = ""
        self.timeout = Duration(0)

    def validate(self) -> None:
        # Kapacitor's checks and words; a header may override Content-Type.
        if len(self.urls) >= 2:
            raise SpecError(f"httpPost expects 0 or 1 arguments, got {len(self.urls)}")
        if not self.urls and not self.endpoint:
            raise SpecError("must provide url or endpoint")
        if self.urls and self.endpoint:
            raise SpecError("only one endpoint and url may be specified")
        for name, _ in self.headers:
            if name.upper() == "AUTHENTICATE":
                raise SpecError("cannot set 'authenticate' header")


@chain("httpPost")
def _http_post(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    urls = check_args("httpPost", (), args, variadic="string", minimum=0)
    return HTTPPostSpec(pipeline, [parent], urls)


class FlattenSpec(NodeSpec):
    """``|flatten()``: merges a group's points of one time into one point, prefixing
    field names with the values of the ``on`` tags."""

    kind = "flatten"
    PROPERTIES: ClassVar[dict[str, Prop]] = {
        "on": Prop((), attr="on_dims", mode="extend", variadic="string", minimum=0),
        "delimiter": Prop(("string",)),
        "tolerance": Prop(("duration",)),
        "dropOriginalFieldName": Prop(attr="drop_original", mode="flag"),
    }

    def __init__(self, pipeline: Any, parents: list[NodeSpec]) -> None:
        super().__init__(pipeline, parents)
        self.on_dims: list[str] = []
        self.delimiter = "."
        self.tolerance = Duration(0)
        self.drop_original = False

    def set_property(self, name: str, args: list[Any]) -> None:
        if name == "dropOriginalFieldName":  # Go: one value is taken, none or several mean true
            values = check_args(name, (), args, variadic="bool", minimum=0)
            self.drop_original = values[0] if len(values) == 1 else True
            return
        super().set_property(name, args)



@chain("flatten")
def _flatten(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    check_args("flatten", (), args)
    return FlattenSpec(pipeline, [parent])


class SideloadSpec(NodeSpec):
    """``|sideload()``: adds fields and tags read from files chosen by the point's tags."""

    kind = "sideload"
    PROPERTIES: ClassVar[dict[str, Prop]] = {
        "source": Prop(("string",)),
        "order": Prop((), attr="order_paths", mode="extend", variadic="string", minimum=0),
        "field": Prop(("string", "int|float|string|bool"), attr="fields", mode="pairs"),
        "tag": Prop(("string", "string"), attr="tags", mode="pairs"),
    }

    def __init__(self, pipeline: Any, parents: list[NodeSpec]) -> None:
        super().__init__(pipeline, parents)
        self.source = ""
        self.order_paths: list[str] = []
        self.fields: list[tuple[str, Any]] = []
        self.tags: list[tuple[str, str]] = []



@chain("sideload")
def _sideload(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    check_args("sideload", (), args)
    return SideloadSpec(pipeline, [parent])


class CombineSpec(NodeSpec):
    """``|combine(λ…)``: pairs points of one time within a group, one per expression."""

    kind = "combine"
    wants = Edge.SAME  # points or batches; the points of each time are combined
    provides = Edge.STREAM
    PROPERTIES: ClassVar[dict[str, Prop]] = {
        "as": Prop((), attr="names", mode="extend", variadic="string", minimum=0),
        "delimiter": Prop(("string",)),
        "tolerance": Prop(("duration",)),
        "max": Prop(("int",), attr="max_combinations"),
    }

    def __init__(self, pipeline: Any, parents: list[NodeSpec], exprs: list[Any]) -> None:
        super().__init__(pipeline, parents)
        self.exprs = exprs
        self.names: list[str] = []
        self.delimiter = "."
        self.tolerance = Duration(0)
        self.max_combinations = 1_000_000

    def validate(self) -> None:
        # Kapacitor's wording.
        if not self.names:
            raise SpecError("a call to combine.as() is required to specify the output "
                            "stream prefixes.")
        if len(self.names) != len(self.exprs):
            raise SpecError("number of prefixes specified by combine.as() must match the "
                            "number of combine expressions")
        for name in self.names:
            if not name:
                raise SpecError("must provide a prefix name for the combine node, see .as() "
                                "property method")
            if self.delimiter in name:
                raise SpecError(f"cannot use name {name} as field prefix, it contains the "
                                f"delimiter character {self.delimiter}")
        if len(set(self.names)) != len(self.names):
            raise SpecError("cannot use the same prefix name see .as() property method")


@chain("combine")
def _combine(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    exprs = check_args("combine", (), args, variadic="lambda", minimum=0)
    return CombineSpec(pipeline, [parent], exprs)


class BarrierSpec(NodeSpec):
    """``|barrier()``: tells downstream nodes that no older data will come for a group,
    after ``idle`` without data or every ``period``, so windows and joins can flush."""

    kind = "barrier"
    PROPERTIES: ClassVar[dict[str, Prop]] = {
        "idle": Prop(("duration",)),
        "period": Prop(("duration",)),
        "delete": Prop(("bool",), attr="delete_group"),
    }

    def __init__(self, pipeline: Any, parents: list[NodeSpec]) -> None:
        super().__init__(pipeline, parents)
        self.idle = Duration(0)
        self.period = Duration(0)
        self.delete_group = False

    def validate(self) -> None:
        # Kapacitor's checks, in its order and wording.
        if self.idle and self.period:
            raise SpecError("cannot specify both idle and period")
        if not self.period and self.idle <= 0:
            raise SpecError("idle must be greater than zero")
        if self.period <= 0 and not self.idle:
            raise SpecError("period must be greater than zero")


@chain("barrier")
def _barrier(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    check_args("barrier", (), args)
    return BarrierSpec(pipeline, [parent])

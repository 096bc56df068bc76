"""InfluxQL function nodes: aggregates, selectors and transformations.

``|mean('value')`` and friends. Each returns an :class:`InfluxQLSpec` whose ``.as()``
names the output field (default: the method name) and whose ``.usePointTimes()`` makes
selectors keep the selected point's time.
"""

from __future__ import annotations

from typing import Any, ClassVar

from kapa_core.pipeline.base import Edge, NodeSpec, Prop, chain, check_args

#: name -> (extra argument kinds after the field, provides, kind of function)
FUNCTIONS: dict[str, tuple[tuple[str, ...], Edge, str]] = {
    "count": ((), Edge.STREAM, "aggregate"),
    "distinct": ((), Edge.BATCH, "aggregate"),
    "mean": ((), Edge.STREAM, "aggregate"),
    "median": ((), Edge.STREAM, "aggregate"),
    "mode": ((), Edge.STREAM, "aggregate"),
    "spread": ((), Edge.STREAM, "aggregate"),
    "sum": ((), Edge.STREAM, "aggregate"),
    "stddev": ((), Edge.STREAM, "aggregate"),
    "first": ((), Edge.STREAM, "selector"),
    "last": ((), Edge.STREAM, "selector"),
    "min": ((), Edge.STREAM, "selector"),
    "max": ((), Edge.STREAM, "selector"),
    "percentile": (("float",), Edge.STREAM, "selector"),
    "elapsed": (("duration",), Edge.SAME, "transformation"),
    "difference": ((), Edge.SAME, "transformation"),
    "movingAverage": (("int",), Edge.SAME, "transformation"),
    "cumulativeSum": ((), Edge.SAME, "transformation"),
    "holtWinters": (("int", "int", "duration"), Edge.BATCH, "aggregate"),
    "holtWintersWithFit": (("int", "int", "duration"), Edge.BATCH, "aggregate"),
}


class InfluxQLSpec(NodeSpec):
    """One InfluxQL function applied to a field."""

    kind = "influxql"
    PROPERTIES: ClassVar[dict[str, Prop]] = {
        "as": Prop(("string",), attr="as_name"),
        "usePointTimes": Prop(attr="use_point_times", mode="flag"),
    }

    def __init__(self, pipeline: Any, parents: list[NodeSpec], method: str, field: str,
                 args: list[Any], provides: Edge, function_kind: str) -> None:
        self.method = method
        self._provides = provides
        super().__init__(pipeline, parents)
        self.field = field
        self.args = args
        self.function_kind = function_kind
        self.as_name = "holtWinters" if method == "holtWintersWithFit" else method
        self.use_point_times = False
        self.extra_fields: list[str] = []
        self.top_n = 0

    @property
    def name(self) -> str:
        # Kapacitor names both Holt-Winters nodes holtWinters
        kind = "holtWinters" if self.method == "holtWintersWithFit" else self.method
        return f"{kind}{self.id}"

    def edge_out(self) -> Edge:
        return self.edge_in() if self._provides is Edge.SAME else self._provides


def _make(method: str) -> None:
    extra, provides, function_kind = FUNCTIONS[method]

    @chain(method)
    def factory(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
        values = check_args(method, ("string", *extra), args)
        return InfluxQLSpec(pipeline, [parent], method, values[0], values[1:], provides,
                            function_kind)


for _method in FUNCTIONS:
    _make(_method)


def _top_bottom(method: str) -> None:
    @chain(method)
    def factory(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
        values = check_args(method, ("int", "string"), args, variadic="string")
        spec = InfluxQLSpec(pipeline, [parent], method, values[1], [values[0]], Edge.BATCH,
                            "selector")
        spec.top_n = values[0]
        spec.extra_fields = values[2:]
        return spec


_top_bottom("top")
_top_bottom("bottom")

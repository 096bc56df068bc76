"""``batch|query('SELECT ...')``: the node that feeds batch tasks from InfluxDB.

Properties are Kapacitor's QueryNode ones: ``.period(d)``, ``.every(d)``, ``.cron(s)``,
``.offset(d)``, ``.align()``, ``.alignGroup()``, ``.groupBy(dims…)`` (tag names, ``*``
and one ``time(d[, offset])``), ``.groupByMeasurement()``, ``.fill(v)`` and
``.cluster(name)``.

Nothing of the query is checked when the task is defined, as in Kapacitor: the
schedule (exactly one of ``every`` and ``cron``, no negative ``every``, a valid cron
expression), the fill, the dimensions and the query text are checked when the task
starts (see ``kapa_core/engine/nodes/query.py``), so a task with a broken query can be
saved disabled, and fails when it is enabled or replayed. A ``period`` is never
required: without one, each query covers an empty time range.
"""

from __future__ import annotations

from typing import Any, ClassVar

from kapa_core.influxdb.select_query import SelectQuery, TimeGroup
from kapa_core.models.duration import Duration
from kapa_core.pipeline.base import STAR, Edge, NodeSpec, Prop, SpecError, chain, check_args
from kapa_core.pipeline.nodes import BatchSpec

FILLS = ("null", "none", "previous", "linear")


def time_group(value: Any) -> TimeGroup | None:
    """A ``time(d[, offset])`` value of the TICKscript evaluator (or a bare duration) as
    a :class:`TimeGroup`; None for anything else."""
    if isinstance(value, Duration):
        return TimeGroup(int(value))
    interval = getattr(value, "interval", None)
    if isinstance(interval, Duration):
        return TimeGroup(int(interval), int(getattr(value, "offset", 0) or 0))
    return None


class QuerySpec(NodeSpec):
    """One scheduled InfluxQL query of a batch task."""

    kind = "query"
    wants = Edge.BATCH
    provides = Edge.BATCH
    PROPERTIES: ClassVar[dict[str, Prop]] = {
        "period": Prop(("duration",)),
        "every": Prop(("duration",)),
        "cron": Prop(("string",)),
        "offset": Prop(("duration",)),
        "align": Prop(mode="flag"),
        "alignGroup": Prop(attr="align_group", mode="flag"),
        "groupBy": Prop((), attr="dimensions", mode="extend", variadic="any", minimum=0),
        "groupByMeasurement": Prop(attr="group_by_measurement", mode="flag"),
        "fill": Prop(("string|int|float",), attr="fill"),
        "cluster": Prop(("string",)),
    }

    def __init__(self, pipeline: Any, parents: list[NodeSpec], query: str) -> None:
        super().__init__(pipeline, parents)
        self.query = query
        self.period = Duration(0)
        self.every = Duration(0)
        self.cron = ""
        self.offset = Duration(0)
        self.align = False
        self.align_group = False
        self.dimensions: list[Any] = []
        self.group_by_measurement = False
        self.fill: Any = None
        self.cluster = ""

    def group_dimensions(self) -> list[str | TimeGroup]:
        out: list[str | TimeGroup] = []
        for value in self.dimensions:
            group = time_group(value)
            out.append(group if group else "*" if value is STAR else value)
        return out

    def select(self) -> SelectQuery:
        """The query text with this node's dimensions and fill (QueryTextError)."""
        return SelectQuery(self.query, self.group_dimensions(), self.fill,
                           align_group=self.align_group)

    def attributes(self) -> dict[str, Any]:
        return {"query": self.query, "period": str(self.period), "every": str(self.every),
                "cron": self.cron, "offset": str(self.offset)}


@chain("query")
def _query(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    if not isinstance(parent, BatchSpec):
        raise SpecError("query() can only be chained from batch")
    (text,) = check_args("query", ("string",), args)
    return QuerySpec(pipeline, [parent], text)

"""``batch|query('SELECT ...')``: the node that feeds batch tasks from InfluxDB.

Properties are Kapacitor's QueryNode ones: ``.period(d)``, ``.every(d)``, ``.cron(s)``,
``.offset(d)``, ``.align()``, ``.alignGroup()``, ``.groupBy(dims…)`` (tag names, ``*``
and one ``time(d[, offset])``), ``.groupByMeasurement()``, ``.fill(v)`` and
``.cluster(name)``.

Checked when the task is defined (Kapacitor checks most of these only when the task
starts): exactly one of ``every`` and ``cron``; with ``every``, a positive ``period``;
no negative ``every`` or ``period``; a cron expression cronexpr accepts; a fill of
``'null'``, ``'none'``, ``'previous'``, ``'linear'`` or a number; at most one time
dimension; and a query that is a single ``SELECT ... FROM ...`` statement. With
``cron`` a ``period`` is not required (as in Kapacitor, a zero period queries an empty
time range).
"""

from __future__ import annotations

from typing import Any, ClassVar

from kapa_core.engine.cron import CronError
from kapa_core.engine.cron import parse as parse_cron
from kapa_core.influxdb.select_query import QueryTextError, SelectQuery, TimeGroup
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

    def set_property(self, name: str, args: list[Any]) -> None:
        super().set_property(name, args)
        if name == "groupBy":
            for value in self.dimensions:
                if not (isinstance(value, str) or value is STAR or time_group(value)):
                    raise SpecError(f"groupBy: invalid dimension {value!r} (expected tag "
                                    "names, * or time(d))")
            if sum(1 for d in self.dimensions if time_group(d)) > 1:
                raise SpecError("groupBy cannot have more than one time dimension")

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

    def validate(self) -> None:
        if self.every and self.cron:
            raise SpecError("must not set both 'every' and 'cron' properties")
        if self.every < 0:
            raise SpecError("'every' duration must be non-negative")
        if self.period < 0:
            raise SpecError("'period' duration must be non-negative")
        if not self.every and not self.cron:
            raise SpecError("must define one of 'every' or 'cron'")
        if self.every and not self.period:
            raise SpecError("must define a 'period' (the time range each query covers)")
        if self.cron:
            try:
                parse_cron(self.cron)
            except CronError as exc:
                raise SpecError(f"invalid cron expression {self.cron!r}: {exc}") from None
        if isinstance(self.fill, str) and self.fill not in FILLS:
            raise SpecError(f"unexpected fill option {self.fill!r} (expected 'null', "
                            "'none', 'previous', 'linear' or a number)")
        try:
            self.select()
        except QueryTextError as exc:
            raise SpecError(f"invalid query: {exc}") from None

    def attributes(self) -> dict[str, Any]:
        return {"query": self.query, "period": str(self.period), "every": str(self.every),
                "cron": self.cron, "offset": str(self.offset)}


@chain("query")
def _query(pipeline: Any, parent: NodeSpec, args: list[Any]) -> NodeSpec:
    if not isinstance(parent, BatchSpec):
        raise SpecError("query() can only be chained from batch")
    (text,) = check_args("query", ("string",), args)
    return QuerySpec(pipeline, [parent], text)

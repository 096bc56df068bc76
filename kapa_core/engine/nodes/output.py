"""Runtimes of outputs kept in memory: ``|httpOut()`` and the no-op node."""

from __future__ import annotations

from typing import Any

from kapa_core.engine.node import Node
from kapa_core.models.batch import Batch, BatchPoint
from kapa_core.models.point import Point
from kapa_core.pipeline.nodes import HTTPOutSpec


class HTTPOutNode(Node):
    """Keeps the latest data of each group as an InfluxQL result series."""

    def __init__(self, spec: HTTPOutSpec, log: Any) -> None:
        super().__init__(spec, log)
        self.endpoint = spec.endpoint
        self.series: dict[str, dict[str, Any]] = {}  # group -> series, first-seen order

    def point(self, p: Point) -> None:
        # A point's row carries all its tags (Kapacitor's PointToRow), a batch's row only
        # the group's tags.
        batch = Batch(p.name, p.group, dict(p.tags), p.dims, False, p.time,
                      [BatchPoint(p.time, p.fields, p.tags)])
        self.series[p.group] = batch.row()
        self.emit_point(p)

    def batch(self, b: Batch) -> None:
        self.series[b.group] = b.row()
        self.emit_batch(b)

    def result(self) -> dict[str, Any]:
        return {"series": list(self.series.values()) or None}

    def cardinality(self) -> int:
        return len(self.series)


class NoOpNode(Node):
    pass


class StatsNode(Node):
    """``|stats(interval)``: every interval of wall-clock time, a ``stats`` point with the
    watched node's ``emitted`` count (time rounded to the interval with ``.align()``).

    Kapacitor breaks the count down per group for grouping nodes; kapa-core emits the
    node's total as one point with no tags.
    """

    def __init__(self, spec: Any, log: Any, watched: Node) -> None:
        super().__init__(spec, log)
        self.watched = watched
        self.interval = int(spec.interval)
        self.align = spec.align

    async def run_io(self) -> None:
        import time as _time

        import trio

        seconds = self.interval / 1e9
        if self.align:
            now = _time.time_ns()
            await trio.sleep(((now // self.interval + 1) * self.interval - now) / 1e9)
            self._emit_stats()
        while True:
            await trio.sleep(seconds)
            self._emit_stats()

    def _emit_stats(self) -> None:
        import time as _time

        t = _time.time_ns()
        if self.align:
            t = (t + self.interval // 2) // self.interval * self.interval
        self.collected += 1
        try:
            self.emit_point(Point("stats", {}, {"emitted": self.watched.emitted}, t))
        except Exception as exc:
            self.fail(exc)

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

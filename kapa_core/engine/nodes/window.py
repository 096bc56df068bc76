"""Runtime of ``|window()``: Kapacitor's time and count windows, per group."""

from __future__ import annotations

from typing import Any

from kapa_core.engine.node import Node
from kapa_core.models.batch import Batch, BatchPoint
from kapa_core.models.point import Point
from kapa_core.pipeline.nodes import WindowSpec


class _TimeWindow:
    """Points of one group; emits [next - period, next) when data reaches ``next``."""

    __slots__ = ("align", "buffer", "every", "next_emit", "period")

    def __init__(self, first: int, period: int, every: int, align: bool,
                 fill_period: bool) -> None:
        self.period = period
        self.every = every
        self.align = align
        self.buffer: list[Point] = []
        if fill_period:
            nxt = first + period
            if align:
                limit = nxt
                nxt -= nxt % every
                if nxt <= limit:
                    nxt += every
        else:
            nxt = first + every
            if align:
                nxt -= nxt % every
        self.next_emit = nxt

    def insert(self, p: Point) -> int | None:
        """Add ``p``; returns the tmax of a window to emit first, or None."""
        if self.every == 0:
            self.buffer.append(p)
            if p.time >= self.next_emit:
                oldest = p.time - self.period
                self.buffer = [q for q in self.buffer if q.time > oldest]
                self.next_emit = p.time
                return p.time
            return None
        emit = None
        if p.time >= self.next_emit:
            oldest = self.next_emit - self.period
            self.buffer = [q for q in self.buffer if q.time >= oldest]
            emit = self.next_emit
            nxt = p.time + self.every
            if self.align:
                nxt -= nxt % self.every
            self.next_emit = nxt
        return emit

    def points(self, tmax: int, every_zero: bool) -> list[BatchPoint]:
        if every_zero:
            return [BatchPoint(q.time, q.fields, q.tags) for q in self.buffer]
        return [BatchPoint(q.time, q.fields, q.tags) for q in self.buffer if q.time < tmax]


class _CountWindow:
    __slots__ = ("buffer", "count", "every", "next_emit", "period")

    def __init__(self, period: int, every: int, fill_period: bool) -> None:
        self.period = period
        self.every = every
        self.buffer: list[Point] = []
        self.count = 0
        self.next_emit = period if fill_period else every


class WindowNode(Node):
    def __init__(self, spec: WindowSpec, log: Any) -> None:
        super().__init__(spec, log)
        self.period = int(spec.period)
        self.every = int(spec.every)
        self.period_count = spec.period_count
        self.every_count = spec.every_count
        self.align = spec.align
        self.fill_period = spec.fill_period
        self.windows: dict[str, Any] = {}

    def cardinality(self) -> int:
        return len(self.windows)

    def _batch(self, p: Point, tmax: int, points: list[BatchPoint]) -> Batch:
        return Batch(p.name, p.group, {d: p.tags.get(d, "") for d in p.dims}, p.dims,
                     "\n" in p.group, tmax, points)

    def barrier(self, group: str, t: int) -> None:
        window = self.windows.get(group)
        if not isinstance(window, _TimeWindow) or not window.every or t < window.next_emit:
            return
        sample = window.buffer[0] if window.buffer else None
        tmax = window.next_emit
        window.buffer = [q for q in window.buffer if q.time >= tmax - window.period]
        nxt = t + window.every
        if window.align:
            nxt -= nxt % window.every
        window.next_emit = nxt
        if sample is not None:
            self.emit_batch(self._batch(sample, tmax, window.points(tmax, False)))

    def point(self, p: Point) -> None:
        window = self.windows.get(p.group)
        if self.period_count:
            if window is None:
                window = self.windows[p.group] = _CountWindow(
                    self.period_count, self.every_count, self.fill_period)
            window.buffer.append(p)
            if len(window.buffer) > window.period:
                window.buffer.pop(0)
            window.count += 1
            if window.count == window.next_emit:
                window.next_emit += window.every
                points = [BatchPoint(q.time, q.fields, q.tags) for q in window.buffer]
                self.emit_batch(self._batch(p, points[-1].time, points))
            return
        if window is None:
            window = self.windows[p.group] = _TimeWindow(p.time, self.period, self.every,
                                                         self.align, self.fill_period)
        tmax = window.insert(p)
        if tmax is not None:
            self.emit_batch(self._batch(p, tmax, window.points(tmax, self.every == 0)))
        if self.every:
            window.buffer.append(p)

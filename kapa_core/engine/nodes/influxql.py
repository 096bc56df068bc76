"""Runtimes of the InfluxQL functions: aggregates, selectors and transformations.

On batches a function sees the batch's points; on a stream, points of one group that
share a timestamp are gathered and aggregated when a later time arrives (Kapacitor's
behaviour). Aggregates and selectors emit one point at the batch time, or at the
selected point's time with ``.usePointTimes()``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from typing import Any

from kapa_core.engine.node import Node
from kapa_core.engine.nodes.holtwinters import HoltWinters
from kapa_core.models.batch import Batch, BatchPoint
from kapa_core.models.point import Point
from kapa_core.pipeline.base import Edge
from kapa_core.pipeline.influxql import InfluxQLSpec

Values = list[tuple[int, Any, dict[str, str]]]  # (time, value, tags)


def _numeric(values: Values, name: str) -> None:
    for _, v, _ in values:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise TypeError(f"{name}: unsupported field type {type(v).__name__}")


def _count(values: Values, spec: InfluxQLSpec) -> tuple[int | None, Any]:
    return None, len(values)


def _sum(values: Values, spec: InfluxQLSpec) -> tuple[int | None, Any]:
    _numeric(values, "sum")
    if all(type(v) is int for _, v, _ in values):
        return None, sum(v for _, v, _ in values)
    return None, float(math.fsum(float(v) for _, v, _ in values))


def _mean(values: Values, spec: InfluxQLSpec) -> tuple[int | None, Any]:
    _numeric(values, "mean")
    return None, math.fsum(float(v) for _, v, _ in values) / len(values)


def _median(values: Values, spec: InfluxQLSpec) -> tuple[int | None, Any]:
    _numeric(values, "median")
    ordered = sorted(v for _, v, _ in values)
    n = len(ordered)
    if n % 2:
        return None, float(ordered[n // 2]) if type(ordered[n // 2]) is float else \
            ordered[n // 2]
    return None, (float(ordered[n // 2 - 1]) + float(ordered[n // 2])) / 2


def _mode(values: Values, spec: InfluxQLSpec) -> tuple[int | None, Any]:
    counts: dict[Any, int] = {}
    for _, v, _ in values:
        counts[v] = counts.get(v, 0) + 1
    best = max(counts.values())
    return None, min(v for v, c in counts.items() if c == best)


def _spread(values: Values, spec: InfluxQLSpec) -> tuple[int | None, Any]:
    _numeric(values, "spread")
    nums = [v for _, v, _ in values]
    return None, max(nums) - min(nums)


def _stddev(values: Values, spec: InfluxQLSpec) -> tuple[int | None, Any]:
    _numeric(values, "stddev")
    if len(values) < 2:
        return None, None
    return None, statistics.stdev(float(v) for _, v, _ in values)


def _first(values: Values, spec: InfluxQLSpec) -> tuple[int | None, Any]:
    t, v, _ = min(values, key=lambda x: x[0])
    return t, v


def _last(values: Values, spec: InfluxQLSpec) -> tuple[int | None, Any]:
    best = values[0]
    for item in values:
        if item[0] >= best[0]:
            best = item
    return best[0], best[1]


def _min(values: Values, spec: InfluxQLSpec) -> tuple[int | None, Any]:
    _numeric(values, "min")
    t, v, _ = min(values, key=lambda x: (x[1], x[0]))
    return t, v


def _max(values: Values, spec: InfluxQLSpec) -> tuple[int | None, Any]:
    _numeric(values, "max")
    best = values[0]
    for item in values[1:]:
        if item[1] > best[1] or (item[1] == best[1] and item[0] < best[0]):
            best = item
    return best[0], best[1]


def _percentile(values: Values, spec: InfluxQLSpec) -> tuple[int | None, Any]:
    _numeric(values, "percentile")
    ordered = sorted(values, key=lambda x: x[1])
    i = math.floor(len(ordered) * spec.args[0] / 100.0 + 0.5) - 1
    if i < 0 or i >= len(ordered):
        return None, None
    return ordered[i][0], ordered[i][1]


AGGREGATES: dict[str, Callable[[Values, InfluxQLSpec], tuple[int | None, Any]]] = {
    "count": _count, "sum": _sum, "mean": _mean, "median": _median, "mode": _mode,
    "spread": _spread, "stddev": _stddev, "first": _first, "last": _last, "min": _min,
    "max": _max, "percentile": _percentile,
}
EMPTY_RESULT = {"count": 0, "sum": 0}


class InfluxQLNode(Node):
    spec: InfluxQLSpec

    def __init__(self, spec: InfluxQLSpec, log: Any) -> None:
        super().__init__(spec, log)
        self.method = spec.method
        self.field = spec.field
        self.as_name = spec.as_name
        self.use_point_times = spec.use_point_times
        self.aggregate = AGGREGATES.get(self.method)
        self.stream_in = spec.edge_in() is Edge.STREAM
        # stream input: per group (time, points) gathered until the time moves on
        self.pending: dict[str, tuple[int, list[Point]]] = {}
        self.state: dict[str, Any] = {}

    def cardinality(self) -> int:
        return len(self.pending) + len(self.state)

    # -- stream input ---------------------------------------------------------------------
    def point(self, p: Point) -> None:
        if self.spec.function_kind == "transformation":
            self._transform_point(p)
            return
        pending = self.pending.get(p.group)
        if pending is not None and pending[0] != p.time:
            del self.pending[p.group]
            self._flush(pending[1], pending[0])
            pending = None
        if pending is None:
            self.pending[p.group] = (p.time, [p])
        else:
            pending[1].append(p)

    def barrier(self, group: str, t: int) -> None:
        pending = self.pending.get(group)
        if pending is not None and pending[0] < t:
            del self.pending[group]
            self._flush(pending[1], pending[0])

    def _flush(self, points: list[Point], t: int) -> None:
        first = points[0]
        batch = Batch(first.name, first.group, {d: first.tags.get(d, "") for d in first.dims},
                      first.dims, False, t,
                      [BatchPoint(p.time, p.fields, p.tags) for p in points])
        self.batch(batch, group_point=first)

    # -- batch input ----------------------------------------------------------------------
    def batch(self, b: Batch, group_point: Point | None = None) -> None:
        values: Values = [(bp.time, bp.fields[self.field], bp.tags) for bp in b.points
                          if self.field in bp.fields]
        if self.aggregate is not None:
            if values:
                t, value = self.aggregate(values, self.spec)
            else:
                t, value = None, EMPTY_RESULT.get(self.method)
            if value is None:
                return
            out_time = t if (self.use_point_times and t is not None) else b.tmax
            self._emit_one(b, out_time, value, group_point)
            return
        if self.method in ("top", "bottom"):
            self._top_bottom(b, values)
            return
        if self.method == "distinct":
            seen: dict[Any, None] = {}
            for _, v, _ in values:
                seen.setdefault(v, None)
            self.emit_batch(Batch(b.name, b.group, b.tags, b.dims, b.by_name, b.tmax,
                                  [BatchPoint(b.tmax, {self.as_name: v}, dict(b.tags))
                                   for v in seen]))
            return
        if self.spec.function_kind == "transformation":
            self._transform_batch(b, values)
            return
        if self.method.startswith("holtWinters"):
            self._holt_winters(b, values)
            return
        raise NotImplementedError(f"{self.method} is not implemented yet")

    def _holt_winters(self, b: Batch, values: Values) -> None:
        _numeric(values, self.method)
        h, m, interval = self.spec.args
        model = HoltWinters(int(h), int(m), self.method == "holtWintersWithFit", int(interval))
        ordered = sorted(((t, v) for t, v, _ in values), key=lambda x: x[0])
        points = [BatchPoint(t, {self.as_name: v}, dict(b.tags))
                  for t, v in model.forecast_points(ordered)]
        self.emit_batch(Batch(b.name, b.group, b.tags, b.dims, b.by_name, b.tmax, points))

    def _emit_one(self, b: Batch, t: int, value: Any, group_point: Point | None) -> None:
        tags = dict(b.tags)
        if self.spec.edge_out() is Edge.STREAM:
            self.emit_point(Point(b.name, tags, {self.as_name: value}, t,
                                  group=b.group, dims=b.dims))
        else:
            self.emit_batch(Batch(b.name, b.group, b.tags, b.dims, b.by_name, b.tmax,
                                  [BatchPoint(t, {self.as_name: value}, tags)]))

    def _top_bottom(self, b: Batch, values: Values) -> None:
        _numeric(values, self.method)
        reverse = self.method == "top"
        ordered = sorted(values, key=lambda x: (-x[1] if reverse else x[1], x[0]))
        chosen = sorted(ordered[:self.spec.top_n], key=lambda x: x[0])
        points = []
        extra = self.spec.extra_fields
        for t, v, tags in chosen:
            fields: dict[str, Any] = {self.as_name: v}
            for name in extra:
                if name in tags:
                    fields[name] = tags[name]
            points.append(BatchPoint(t if self.use_point_times else b.tmax, fields,
                                     dict(b.tags)))
        self.emit_batch(Batch(b.name, b.group, b.tags, b.dims, b.by_name, b.tmax, points))

    # -- transformations ------------------------------------------------------------------
    def _step(self, key: str, t: int, value: Any) -> Any:
        method = self.method
        state = self.state.get(key)
        if method == "cumulativeSum":
            total = value if state is None else state + value
            self.state[key] = total
            return total
        if method == "difference":
            self.state[key] = value
            return None if state is None else value - state
        if method == "elapsed":
            self.state[key] = t
            return None if state is None else (t - state) // int(self.spec.args[0])
        if method == "movingAverage":
            window: list[Any] = state if state is not None else []
            window.append(value)
            if len(window) > self.spec.args[0]:
                window.pop(0)
            self.state[key] = window
            if len(window) < self.spec.args[0]:
                return None
            return math.fsum(float(v) for v in window) / len(window)
        raise NotImplementedError(f"{method} is not implemented yet")

    def _transform_point(self, p: Point) -> None:
        if self.field not in p.fields:
            raise KeyError(f"{self.method}: field {self.field!r} missing")
        value = p.fields[self.field]
        if self.method != "elapsed":
            _numeric([(p.time, value, p.tags)], self.method)
        result = self._step(p.group, p.time, value)
        if result is not None:
            self.emit_point(Point(p.name, dict(p.tags), {self.as_name: result}, p.time,
                                  group=p.group, dims=p.dims))

    def _transform_batch(self, b: Batch, values: Values) -> None:
        if self.method != "elapsed":
            _numeric(values, self.method)
        key = f"batch:{b.group}"
        self.state.pop(key, None)
        points = []
        for t, v, tags in values:
            result = self._step(key, t, v)
            if result is not None:
                points.append(BatchPoint(t, {self.as_name: result}, dict(tags)))
        self.state.pop(key, None)
        self.emit_batch(Batch(b.name, b.group, b.tags, b.dims, b.by_name, b.tmax, points))

"""Runtimes of the nodes that compute from each point: eval, derivative, changeDetect,
stateDuration and stateCount."""

from __future__ import annotations

from typing import Any

from kapa_core.engine.node import Node
from kapa_core.models.batch import Batch, BatchPoint
from kapa_core.models.point import Point
from kapa_core.pipeline import nodes as specs


class EvalNode(Node):
    def __init__(self, spec: specs.EvalSpec, log: Any) -> None:
        super().__init__(spec, log)
        self.pairs = list(zip(spec.as_names, spec.exprs, strict=True))
        self.tag_names = set(spec.tag_names)
        self.keep = spec.keep_list

    def _apply(self, t: int, fields: dict[str, Any], tags: dict[str, str]) -> tuple[
            dict[str, Any], dict[str, str]]:
        new_fields = dict(fields)
        new_tags = tags
        results: dict[str, Any] = {}
        for name, expr in self.pairs:
            value = expr.eval(t, new_fields, new_tags)
            if name in self.tag_names:
                if not isinstance(value, str):
                    raise TypeError(f"eval: result {name!r} must be a string to be a tag")
                if new_tags is tags:
                    new_tags = dict(tags)
                new_tags[name] = value
            else:
                new_fields[name] = value
                results[name] = value
        if self.keep is None:
            out = results
        elif self.keep:
            out = {k: fields[k] for k in self.keep if k in fields}
            out.update(results)
        else:
            out = new_fields
        return out, new_tags

    def point(self, p: Point) -> None:
        fields, tags = self._apply(p.time, p.fields, p.tags)
        self.emit_point(Point(p.name, tags, fields, p.time, p.database,
                              p.retention_policy, p.group, p.dims))

    def batch(self, b: Batch) -> None:
        points = []
        for bp in b.points:
            try:
                fields, tags = self._apply(bp.time, bp.fields, bp.tags)
            except Exception as exc:
                self.fail(exc)
                continue
            points.append(BatchPoint(bp.time, fields, tags))
        self.emit_batch(Batch(b.name, b.group, b.tags, b.dims, b.by_name, b.tmax, points))


class DerivativeNode(Node):
    def __init__(self, spec: specs.DerivativeSpec, log: Any) -> None:
        super().__init__(spec, log)
        self.field = spec.field
        self.unit = int(spec.unit)
        self.non_negative = spec.non_negative
        self.as_name = spec.as_name
        self.previous: dict[str, tuple[int, float]] = {}

    def _rate(self, key: str, t: int, value: Any) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"derivative: field {self.field!r} is not a number")
        prev = self.previous.get(key)
        self.previous[key] = (t, float(value))
        if prev is None or t == prev[0]:
            return None
        rate = (float(value) - prev[1]) / ((t - prev[0]) / self.unit)
        if self.non_negative and rate < 0:
            return None
        return rate

    def point(self, p: Point) -> None:
        if self.field not in p.fields:
            raise KeyError(f"derivative: field {self.field!r} missing")
        rate = self._rate(p.group, p.time, p.fields[self.field])
        if rate is not None:
            self.emit_point(Point(p.name, p.tags, {**p.fields, self.as_name: rate}, p.time,
                                  p.database, p.retention_policy, p.group, p.dims))

    def batch(self, b: Batch) -> None:
        points = []
        prev: tuple[int, float] | None = None
        for bp in b.points:
            value = bp.fields.get(self.field)
            if value is None:
                continue
            if prev is not None and bp.time != prev[0]:
                rate = (float(value) - prev[1]) / ((bp.time - prev[0]) / self.unit)
                if not (self.non_negative and rate < 0):
                    points.append(BatchPoint(bp.time, {**bp.fields, self.as_name: rate},
                                             bp.tags))
            prev = (bp.time, float(value))
        self.emit_batch(Batch(b.name, b.group, b.tags, b.dims, b.by_name, b.tmax, points))

    def cardinality(self) -> int:
        return len(self.previous)


class ChangeDetectNode(Node):
    def __init__(self, spec: specs.ChangeDetectSpec, log: Any) -> None:
        super().__init__(spec, log)
        self.fields = spec.fields
        self.last: dict[str, tuple[Any, ...]] = {}

    def point(self, p: Point) -> None:
        values = tuple(p.fields.get(f) for f in self.fields)
        if self.last.get(p.group) != values:
            self.last[p.group] = values
            self.emit_point(p)

    def cardinality(self) -> int:
        return len(self.last)


class StateDurationNode(Node):
    def __init__(self, spec: specs.StateDurationSpec, log: Any) -> None:
        super().__init__(spec, log)
        self.expr = spec.expr
        self.as_name = spec.as_name
        self.unit = int(spec.unit)
        self.since: dict[str, int | None] = {}

    def point(self, p: Point) -> None:
        if self.expr.eval_bool(p.time, p.fields, p.tags):
            start = self.since.get(p.group)
            if start is None:
                start = self.since[p.group] = p.time
            value = (p.time - start) / self.unit
        else:
            self.since[p.group] = None
            value = -1.0
        self.emit_point(Point(p.name, p.tags, {**p.fields, self.as_name: value}, p.time,
                              p.database, p.retention_policy, p.group, p.dims))

    def cardinality(self) -> int:
        return len(self.since)


class StateCountNode(Node):
    def __init__(self, spec: specs.StateCountSpec, log: Any) -> None:
        super().__init__(spec, log)
        self.expr = spec.expr
        self.as_name = spec.as_name
        self.counts: dict[str, int] = {}

    def point(self, p: Point) -> None:
        if self.expr.eval_bool(p.time, p.fields, p.tags):
            value = self.counts.get(p.group, 0) + 1
            self.counts[p.group] = value
        else:
            self.counts[p.group] = 0
            value = -1
        self.emit_point(Point(p.name, p.tags, {**p.fields, self.as_name: value}, p.time,
                              p.database, p.retention_policy, p.group, p.dims))

    def cardinality(self) -> int:
        return len(self.counts)

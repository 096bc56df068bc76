"""Runtimes of the point-by-point nodes that route and reshape: from, where, groupBy,
shift, sample, default, delete, log, union (the computing ones are in transform.py)."""

from __future__ import annotations

from typing import Any

from kapa_core.engine.node import Node
from kapa_core.models.batch import Batch, BatchPoint, group_id
from kapa_core.models.point import Point, to_line
from kapa_core.pipeline import nodes as specs
from kapa_core.pipeline.base import STAR


class SourceNode(Node):
    """``stream``: what the task master feeds."""


def _dims(group_by: list[Any], tags: dict[str, str], excludes: list[str] = ()) -> tuple[
        str, ...]:
    if any(d is STAR for d in group_by):
        return tuple(sorted(t for t in tags if t not in excludes))
    return tuple(sorted(set(group_by)))


class FromNode(Node):
    spec: specs.FromSpec

    def __init__(self, spec: specs.FromSpec, log: Any) -> None:
        super().__init__(spec, log)
        self.db = spec.database
        self.rp = spec.retention_policy
        self.measurement = spec.measurement
        self.wheres = spec.wheres
        self.star = any(d is STAR for d in spec.group_by)
        self.static_dims = tuple(sorted(set(spec.group_by))) if not self.star else ()
        self.by_name = spec.group_by_measurement
        self.truncate = int(spec.truncate)
        self.round = int(spec.round)

    def point(self, p: Point) -> None:
        if self.measurement and p.name != self.measurement:
            return
        if self.db and p.database != self.db:
            return
        if self.rp and p.retention_policy != self.rp:
            return
        for where in self.wheres:
            if not where.eval_bool(p.time, p.fields, p.tags):
                return
        dims = tuple(sorted(p.tags)) if self.star else self.static_dims
        t = p.time
        if self.truncate:
            t -= t % self.truncate
        if self.round:
            t = (t + self.round // 2) // self.round * self.round
        if dims or self.by_name or t != p.time or p.group:
            p = Point(p.name, p.tags, p.fields, t, p.database, p.retention_policy,
                      group_id(p.name, p.tags, dims, self.by_name), dims)
        self.emit_point(p)


class WhereNode(Node):
    def __init__(self, spec: specs.WhereSpec, log: Any) -> None:
        super().__init__(spec, log)
        self.expr = spec.expr

    def point(self, p: Point) -> None:
        if self.expr.eval_bool(p.time, p.fields, p.tags):
            self.emit_point(p)

    def batch(self, b: Batch) -> None:
        kept = []
        for bp in b.points:
            try:
                if self.expr.eval_bool(bp.time, bp.fields, bp.tags):
                    kept.append(bp)
            except Exception as exc:
                self.fail(exc)
        self.emit_batch(Batch(b.name, b.group, b.tags, b.dims, b.by_name, b.tmax, kept))


class GroupByNode(Node):
    def __init__(self, spec: specs.GroupBySpec, log: Any) -> None:
        super().__init__(spec, log)
        self.group_by = spec.dims
        self.excludes = spec.excludes
        self.by_name = spec.by_measurement

    def point(self, p: Point) -> None:
        dims = _dims(self.group_by, p.tags, self.excludes)
        self.emit_point(Point(p.name, p.tags, p.fields, p.time, p.database,
                              p.retention_policy, group_id(p.name, p.tags, dims,
                                                           self.by_name), dims))

    def batch(self, b: Batch) -> None:
        groups: dict[str, Batch] = {}
        for bp in b.points:
            dims = _dims(self.group_by, bp.tags, self.excludes)
            gid = group_id(b.name, bp.tags, dims, self.by_name)
            out = groups.get(gid)
            if out is None:
                out = groups[gid] = Batch(b.name, gid, {d: bp.tags.get(d, "") for d in dims},
                                          dims, self.by_name, b.tmax, [])
            out.points.append(bp)
        for out in groups.values():
            self.emit_batch(out)


class ShiftNode(Node):
    def __init__(self, spec: specs.ShiftSpec, log: Any) -> None:
        super().__init__(spec, log)
        self.shift = int(spec.shift)

    def point(self, p: Point) -> None:
        self.emit_point(Point(p.name, p.tags, p.fields, p.time + self.shift, p.database,
                              p.retention_policy, p.group, p.dims))

    def batch(self, b: Batch) -> None:
        self.emit_batch(Batch(b.name, b.group, b.tags, b.dims, b.by_name, b.tmax + self.shift,
                              [BatchPoint(bp.time + self.shift, bp.fields, bp.tags)
                               for bp in b.points]))


class SampleNode(Node):
    def __init__(self, spec: specs.SampleSpec, log: Any) -> None:
        super().__init__(spec, log)
        self.count = spec.count
        self.duration = int(spec.duration)
        self.seen: dict[str, int] = {}

    def _keep(self, group: str, t: int) -> bool:
        if self.count:
            n = self.seen.get(group, 0)
            self.seen[group] = n + 1
            return n % self.count == 0
        return t % self.duration == 0

    def point(self, p: Point) -> None:
        if self._keep(p.group, p.time):
            self.emit_point(p)

    def batch(self, b: Batch) -> None:
        if self._keep(b.group, b.tmax):
            self.emit_batch(b)


class DefaultNode(Node):
    def __init__(self, spec: specs.DefaultSpec, log: Any) -> None:
        super().__init__(spec, log)
        self.fields = spec.fields
        self.tags = spec.tags
        self.fields_defaulted = 0
        self.tags_defaulted = 0

    def _fill(self, fields: dict[str, Any], tags: dict[str, str]) -> tuple[dict[str, Any],
                                                                         dict[str, str]]:
        missing_fields = [(k, v) for k, v in self.fields if k not in fields]
        missing_tags = [(k, v) for k, v in self.tags if k not in tags]
        if missing_fields:
            fields = {**fields, **dict(missing_fields)}
            self.fields_defaulted += len(missing_fields)
        if missing_tags:
            tags = {**tags, **dict(missing_tags)}
            self.tags_defaulted += len(missing_tags)
        return fields, tags

    def point(self, p: Point) -> None:
        fields, tags = self._fill(p.fields, p.tags)
        self.emit_point(Point(p.name, tags, fields, p.time, p.database, p.retention_policy,
                              p.group, p.dims))

    def batch(self, b: Batch) -> None:
        points = [BatchPoint(bp.time, *self._fill(bp.fields, bp.tags)) for bp in b.points]
        self.emit_batch(Batch(b.name, b.group, b.tags, b.dims, b.by_name, b.tmax, points))

    def extra_stats(self) -> dict[str, Any]:
        return {"fields_defaulted": self.fields_defaulted,
                "tags_defaulted": self.tags_defaulted}


class TrickleNode(Node):
    def batch(self, b: Batch) -> None:
        for bp in b.points:
            self.emit_point(Point(b.name, dict(bp.tags), dict(bp.fields), bp.time,
                                  group=b.group, dims=b.dims))


class DeleteNode(Node):
    def __init__(self, spec: specs.DeleteSpec, log: Any) -> None:
        super().__init__(spec, log)
        self.fields = set(spec.fields)
        self.tags = set(spec.tags)

    def _strip(self, fields: dict[str, Any], tags: dict[str, str]) -> tuple[dict[str, Any],
                                                                          dict[str, str]]:
        return ({k: v for k, v in fields.items() if k not in self.fields},
                {k: v for k, v in tags.items() if k not in self.tags})

    def point(self, p: Point) -> None:
        fields, tags = self._strip(p.fields, p.tags)
        dims = tuple(d for d in p.dims if d not in self.tags)
        self.emit_point(Point(p.name, tags, fields, p.time, p.database, p.retention_policy,
                              group_id(p.name, tags, dims, False) if dims != p.dims
                              else p.group, dims))

    def batch(self, b: Batch) -> None:
        points = [BatchPoint(bp.time, *self._strip(bp.fields, bp.tags)) for bp in b.points]
        self.emit_batch(Batch(b.name, b.group, b.tags, b.dims, b.by_name, b.tmax, points))


class LogNode(Node):
    def __init__(self, spec: specs.LogSpec, log: Any) -> None:
        super().__init__(spec, log)
        self.level = spec.level.lower()
        self.prefix = spec.prefix

    def _log(self, text: str) -> None:
        getattr(self.log, "warn" if self.level == "warn" else self.level)(
            "data", prefix=self.prefix or None, line=text)

    def point(self, p: Point) -> None:
        self._log(to_line(p))
        self.emit_point(p)

    def batch(self, b: Batch) -> None:
        for bp in b.points:
            self._log(to_line(Point(b.name, bp.tags, bp.fields, bp.time)))
        self.emit_batch(b)


class UnionNode(Node):
    def __init__(self, spec: specs.UnionSpec, log: Any) -> None:
        super().__init__(spec, log)
        self.rename = spec.rename

    def point(self, p: Point) -> None:
        if self.rename:
            p = Point(self.rename, p.tags, p.fields, p.time, p.database, p.retention_policy,
                      p.group, p.dims)
        self.emit_point(p)

    def batch(self, b: Batch) -> None:
        if self.rename:
            b = Batch(self.rename, b.group, b.tags, b.dims, b.by_name, b.tmax, b.points)
        self.emit_batch(b)

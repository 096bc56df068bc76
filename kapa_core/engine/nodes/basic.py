"""Runtimes of the point-by-point nodes that route and reshape: from, where, groupBy,
shift, sample, default, delete, log, union (the computing ones are in transform.py)."""

from __future__ import annotations

import time
from collections import deque
from typing import Any, cast

from kapa_core.engine.node import ERROR_LOG_BURST, Node
from kapa_core.logs import Logger
from kapa_core.models.batch import (
    Batch,
    BatchPoint,
    GroupIds,
    format_time,
    go_round,
    go_truncate,
    group_id,
)
from kapa_core.models.gojson import plain_float
from kapa_core.models.point import Point
from kapa_core.pipeline import nodes as specs
from kapa_core.pipeline.base import STAR


def _eval_error(node: Node, message: str, exc: Exception) -> None:
    """A point whose lambda fails is dropped: Kapacitor counts it in the node's errors
    (quiet or not) and logs it unless the node is quiet."""
    node.errors += 1
    if not node.spec.quiet and (node.errors <= ERROR_LOG_BURST
                                or node.errors % 1000 == 0):
        node.log.error(message, err=str(exc))


class SourceNode(Node):
    """``stream``: what the task master feeds."""


def _by_name(group: str, dims: tuple[str, ...]) -> bool:
    """Whether a group ID was made with the measurement name (``groupByMeasurement``)."""
    return bool(group) and (not dims or "\n" in group)


class FromNode(Node):
    spec: specs.FromSpec

    def __init__(self, spec: specs.FromSpec, log: Logger) -> None:
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
        #: Nothing to do per point but the measurement/database/retention policy checks:
        #: a run is filtered and handed on whole (points from the stream router carry no
        #: group, so none needs a new one).
        self.plain = not (self.wheres or self.star or self.static_dims or self.by_name
                          or self.truncate or self.round)
        self.ids = GroupIds(self.static_dims)
        #: Set by the running task when its ingest already keeps only this from()'s
        #: measurement (see ``RunningTask.deliver``).
        self.name_checked = False

    def receive_points(self, points: list[Point]) -> None:
        if self.wheres or self.star:
            super().receive_points(points)
            return
        started = time.perf_counter_ns()
        count = len(points)
        self.collected += count
        name = "" if self.name_checked else self.measurement
        db, rp = self.db, self.rp
        if name and not db and not rp:
            points = [p for p in points if p.name == name]
        elif name or db or rp:
            points = [p for p in points if (not name or p.name == name)
                      and (not db or p.database == db)
                      and (not rp or p.retention_policy == rp)]
        if not self.plain and points:
            dims, of, by_name = self.static_dims, self.ids.of, self.by_name
            if self.truncate or self.round:
                points = [Point(p.name, p.tags, p.fields, self._time(p.time), p.database,
                                p.retention_policy, of(p.name, p.tags, by_name), dims)
                          for p in points]
            else:
                points = [Point(p.name, p.tags, p.fields, p.time, p.database,
                                p.retention_policy, of(p.name, p.tags, by_name), dims)
                          for p in points]
        if points:
            self.emit_points(points)
        self._time_run(started, count)

    def _time(self, t: int) -> int:
        if self.truncate:
            t = go_truncate(t, self.truncate)
        if self.round:
            t = go_round(t, self.round)
        return t

    def point(self, p: Point) -> None:
        if self.measurement and p.name != self.measurement:
            return
        if self.db and p.database != self.db:
            return
        if self.rp and p.retention_policy != self.rp:
            return
        for where in self.wheres:
            try:
                if not where.eval_bool(p.time, p.fields, p.tags):
                    return
            except Exception as exc:  # dropped, counted as an error of the node
                _eval_error(self, "failed to evaluate WHERE expression", exc)
                return
        t = self._time(p.time)
        if self.star:
            dims = tuple(sorted(p.tags))
            p = Point(p.name, p.tags, p.fields, t, p.database, p.retention_policy,
                      group_id(p.name, p.tags, dims, self.by_name), dims)
        elif not self.plain or p.group:
            p = Point(p.name, p.tags, p.fields, t, p.database, p.retention_policy,
                      self.ids.of(p.name, p.tags, self.by_name), self.static_dims)
        self.emit_point(p)


class WhereNode(Node):
    """Keeps the points its lambda passes. As in Kapacitor, each group has its own copy
    of the lambda (count(), sigma()... count per group), and a point the lambda cannot
    be evaluated on is dropped, counted as an error of the node and logged."""

    def __init__(self, spec: specs.WhereSpec, log: Logger) -> None:
        super().__init__(spec, log)
        self.expr = spec.expr
        self.group_exprs: dict[str, Any] = {}

    def _expr(self, group: str) -> Any:
        expr = self.group_exprs.get(group)
        if expr is None:
            expr = self.group_exprs[group] = self.expr.copy_reset()
        return expr

    def _passes(self, expr: Any, t: int, fields: dict[str, Any], tags: dict[str, str]
                ) -> bool:
        try:
            return bool(expr.eval_bool(t, fields, tags))
        except Exception as exc:
            _eval_error(self, "error while evaluating expression", exc)
            return False

    def point(self, p: Point) -> None:
        if self._passes(self._expr(p.group), p.time, p.fields, p.tags):
            self.emit_point(p)

    def batch(self, b: Batch) -> None:
        expr = self._expr(b.group)
        kept = [bp for bp in b.points if self._passes(expr, bp.time, bp.fields, bp.tags)]
        self.emit_batch(Batch(b.name, b.group, b.tags, b.dims, b.by_name, b.tmax, kept))

    def delete_group(self, group: str) -> None:
        self.group_exprs.pop(group, None)

    def barrier(self, group: str, t: int) -> None:
        self._expr(group)  # a barrier opens its group, as in Kapacitor

    def cardinality(self) -> int:
        return len(self.group_exprs)


class GroupByNode(Node):
    """Regroups points one by one. Batches are regrouped point by point into one batch
    per new group; as in Kapacitor, those are held until a batch of another time (or a
    barrier of another time) arrives, then sent, their points sorted by time."""

    def __init__(self, spec: specs.GroupBySpec, log: Logger) -> None:
        super().__init__(spec, log)
        self.group_by = spec.dims
        self.excludes = spec.excludes
        self.by_name = spec.by_measurement
        self.star = any(d is STAR for d in spec.dims)
        self.static_dims = tuple(d for d in sorted(set(spec.dims) - {STAR})
                                 if d not in spec.excludes) if not self.star else ()
        self.groups: dict[str, Batch] = {}
        self.last_time: int | None = None
        self.ids = GroupIds(self.static_dims)

    def _dims_of(self, tags: dict[str, str]) -> tuple[str, ...]:
        if self.star:
            return tuple(sorted(t for t in tags if t not in self.excludes))
        return self.static_dims

    def cardinality(self) -> int:
        return len(self.groups)

    def _group_id(self, name: str, tags: dict[str, str], dims: tuple[str, ...],
                  by_name: bool) -> str:
        if self.star:
            return group_id(name, tags, dims, by_name)
        return self.ids.of(name, tags, by_name)

    def point(self, p: Point) -> None:
        dims = self._dims_of(p.tags)
        by_name = self.by_name or _by_name(p.group, p.dims)
        self.emit_point(Point(p.name, p.tags, p.fields, p.time, p.database,
                              p.retention_policy, self._group_id(p.name, p.tags, dims,
                                                                 by_name), dims))

    def receive_points(self, points: list[Point]) -> None:
        if self.star:
            super().receive_points(points)
            return
        started = time.perf_counter_ns()
        self.collected += len(points)
        dims, of, own = self.static_dims, self.ids.of, self.by_name
        self.emit_points([Point(p.name, p.tags, p.fields, p.time, p.database,
                                p.retention_policy,
                                of(p.name, p.tags, own or _by_name(p.group, p.dims)), dims)
                          for p in points])
        self._time_run(started, len(points))

    def _flush(self, t: int) -> None:
        if t == self.last_time:
            return
        self.last_time = t
        groups, self.groups = self.groups, {}
        for out in groups.values():
            out.points.sort(key=_time_of)
            self.emit_batch(out)

    def barrier(self, group: str, t: int) -> None:
        self._flush(t)

    def batch(self, b: Batch) -> None:
        self._flush(b.tmax)
        by_name = b.by_name or self.by_name
        groups = self.groups
        for bp in b.points:
            dims = self._dims_of(bp.tags)
            gid = self._group_id(b.name, bp.tags, dims, by_name)
            out = groups.get(gid)
            if out is None:
                out = groups[gid] = Batch(b.name, gid, {d: bp.tags.get(d, "") for d in dims},
                                          dims, by_name, b.tmax, [])
            out.points.append(bp)

    def delete_group(self, group: str) -> None:
        """Kapacitor's groupBy forwards a group deletion and keeps what it holds."""


def _time_of(bp: BatchPoint) -> int:
    return bp.time


class ShiftNode(Node):
    def __init__(self, spec: specs.ShiftSpec, log: Logger) -> None:
        super().__init__(spec, log)
        self.shift = int(spec.shift)
        if not self.shift:
            from kapa_core.engine.tasks import StartRefused

            raise StartRefused("invalid shift value: must be non zero duration")

    def point(self, p: Point) -> None:
        self.emit_point(Point(p.name, p.tags, p.fields, p.time + self.shift, p.database,
                              p.retention_policy, p.group, p.dims))

    def batch(self, b: Batch) -> None:
        self.emit_batch(Batch(b.name, b.group, b.tags, b.dims, b.by_name, b.tmax + self.shift,
                              [BatchPoint(bp.time + self.shift, bp.fields, bp.tags)
                               for bp in b.points]))


class SampleNode(Node):
    """Keeps every n-th point of each group, or the points whose time is a multiple of
    the duration (counted from Go's zero time). A batch is sampled point by point, its
    count starting over at each batch; the batch goes on, empty or not."""

    def __init__(self, spec: specs.SampleSpec, log: Logger) -> None:
        super().__init__(spec, log)
        self.count = spec.count
        self.duration = int(spec.duration)
        if not self.count and not self.duration:
            from kapa_core.engine.tasks import StartRefused

            raise StartRefused("invalid sample rate: must be positive integer or duration")
        self.seen: dict[str, int] = {}

    def _keep(self, n: int, t: int) -> bool:
        if self.duration:
            return t == go_truncate(t, self.duration)
        return n % self.count == 0

    def point(self, p: Point) -> None:
        n = self.seen.get(p.group, 0)
        self.seen[p.group] = n + 1
        if self._keep(n, p.time):
            self.emit_point(p)

    def batch(self, b: Batch) -> None:
        kept = [bp for n, bp in enumerate(b.points) if self._keep(n, bp.time)]
        self.seen[b.group] = len(b.points)
        self.emit_batch(Batch(b.name, b.group, b.tags, b.dims, b.by_name, b.tmax, kept))

    def barrier(self, group: str, t: int) -> None:
        self.seen.setdefault(group, 0)  # a barrier opens its group, as in Kapacitor

    def cardinality(self) -> int:
        return len(self.seen)


def _regroup_batch(b: Batch, tags: dict[str, str], points: list[BatchPoint]) -> Batch:
    """``b`` with ``points`` and ``tags``. When its tags changed, as Kapacitor's SetTags,
    its dimensions become the tags it has, and its group ID follows."""
    if tags is b.tags:
        return Batch(b.name, b.group, b.tags, b.dims, b.by_name, b.tmax, points)
    dims = tuple(sorted(tags))
    return Batch(b.name, group_id(b.name, tags, dims, b.by_name), tags, dims, b.by_name,
                 b.tmax, points)


class DefaultNode(Node):
    """Sets fields that are missing or null, and tags that are missing or empty. On a
    batch, the tags are set on the batch too, so the batch's group gains them (as in
    Kapacitor)."""

    def __init__(self, spec: specs.DefaultSpec, log: Logger) -> None:
        super().__init__(spec, log)
        self.fields = dict(spec.fields)
        self.tags = dict(spec.tags)
        self.fields_defaulted = 0
        self.tags_defaulted = 0

    def _fill_tags(self, tags: dict[str, str]) -> dict[str, str]:
        missing = [(k, v) for k, v in self.tags.items() if not tags.get(k)]
        if missing:
            tags = {**tags, **dict(missing)}
            self.tags_defaulted += len(missing)
        return tags

    def _fill_fields(self, fields: dict[str, Any]) -> dict[str, Any]:
        # Absent or null (a join's fill('null')), as Kapacitor's nil check
        missing = [(k, v) for k, v in self.fields.items() if fields.get(k) is None]
        if missing:
            fields = {**fields, **dict(missing)}
            self.fields_defaulted += len(missing)
        return fields

    def point(self, p: Point) -> None:
        fields = self._fill_fields(p.fields) if self.fields else p.fields
        tags = self._fill_tags(p.tags) if self.tags else p.tags
        group = p.group
        if tags is not p.tags and any(d in self.tags for d in p.dims):
            group = group_id(p.name, tags, p.dims, _by_name(p.group, p.dims))
        self.emit_point(Point(p.name, tags, fields, p.time, p.database, p.retention_policy,
                              group, p.dims))

    def batch(self, b: Batch) -> None:
        # Kapacitor also applies the defaults to the batch's own (empty) field set.
        self.fields_defaulted += len(self.fields)
        tags = self._fill_tags(b.tags)
        points = [BatchPoint(bp.time, self._fill_fields(bp.fields), self._fill_tags(bp.tags))
                  for bp in b.points]
        self.emit_batch(_regroup_batch(b, tags, points))

    def extra_stats(self) -> dict[str, Any]:
        return {"fields_defaulted": self.fields_defaulted,
                "tags_defaulted": self.tags_defaulted}


class DeleteNode(Node):
    """Deletes fields and tags. A point grouped by a deleted tag is regrouped without it;
    a batch loses the tag from its own tags, and so from its group."""

    def __init__(self, spec: specs.DeleteSpec, log: Logger) -> None:
        super().__init__(spec, log)
        self.fields = set(spec.fields)
        self.tags = set(spec.tags)
        self.fields_deleted = 0
        self.tags_deleted = 0

    def _strip_fields(self, fields: dict[str, Any]) -> dict[str, Any]:
        if self.fields.isdisjoint(fields):
            return fields
        out = {k: v for k, v in fields.items() if k not in self.fields}
        self.fields_deleted += len(fields) - len(out)
        return out

    def _strip_tags(self, tags: dict[str, str]) -> dict[str, str]:
        if self.tags.isdisjoint(tags):
            return tags
        out = {k: v for k, v in tags.items() if k not in self.tags}
        self.tags_deleted += len(tags) - len(out)
        return out

    def point(self, p: Point) -> None:
        fields = self._strip_fields(p.fields)
        tags = self._strip_tags(p.tags)
        dims, group = p.dims, p.group
        if tags is not p.tags:
            if not self.tags.isdisjoint(dims):
                dims = tuple(d for d in dims if d not in self.tags)
            group = group_id(p.name, tags, dims, _by_name(p.group, p.dims))
        self.emit_point(Point(p.name, tags, fields, p.time, p.database, p.retention_policy,
                              group, dims))

    def batch(self, b: Batch) -> None:
        tags = self._strip_tags(b.tags)
        points = [BatchPoint(bp.time, self._strip_fields(bp.fields), self._strip_tags(bp.tags))
                  for bp in b.points]
        self.emit_batch(_regroup_batch(b, tags, points))

    def extra_stats(self) -> dict[str, Any]:
        return {"fields_deleted": self.fields_deleted, "tags_deleted": self.tags_deleted}


def _log_value(value: Any) -> Any:
    """A field value as Kapacitor's log writes it (floats in plain notation)."""
    if type(value) is float:
        return plain_float(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    return value


class LogNode(Node):
    """Logs what passes, with Kapacitor's messages and keys: ``point`` (prefix, name,
    db, rp, group, dimension_<i>, tag_<k>, field_<k>, time) for a point; ``begin
    batch``, one ``batch point`` each and ``end batch`` for a batch. ``DEBUG`` and
    ``ERROR`` log at those levels, any other level at info, as in Kapacitor."""

    def __init__(self, spec: specs.LogSpec, log: Logger) -> None:
        super().__init__(spec, log)
        level = spec.level.upper()
        self.write = (self.log.debug if level == "DEBUG" else
                      self.log.error if level == "ERROR" else self.log.info)
        self.prefix = spec.prefix

    @staticmethod
    def _pairs(kv: dict[str, Any], key: str, values: dict[str, Any]) -> None:
        for k in sorted(values):
            kv[f"{key}_{k}"] = _log_value(values[k])

    def point(self, p: Point) -> None:
        kv: dict[str, Any] = {"prefix": self.prefix, "name": p.name, "db": p.database,
                              "rp": p.retention_policy, "group": p.group}
        for i, d in enumerate(p.dims):
            kv[f"dimension_{i}"] = d
        self._pairs(kv, "tag", p.tags)
        self._pairs(kv, "field", p.fields)
        kv["time"] = format_time(p.time)
        self.write("point", **kv)
        self.emit_point(p)

    def batch(self, b: Batch) -> None:
        head: dict[str, Any] = {"prefix": self.prefix, "name": b.name, "group": b.group}
        edge = dict(head)
        self._pairs(edge, "tag", b.tags)
        edge["time"] = format_time(b.tmax)
        self.write("begin batch", **edge)
        for bp in b.points:
            kv = dict(head)
            self._pairs(kv, "tag", bp.tags)
            self._pairs(kv, "field", bp.fields)
            kv["time"] = format_time(bp.time)
            self.write("batch point", **kv)
        self.write("end batch", **edge)
        self.emit_batch(b)


class _UnionInput(Node):
    """What one parent of a union sees as its child: queues what it sends by parent."""

    def __init__(self, union: UnionNode, index: int) -> None:
        self.union = union
        self.index = index
        self.children = []

    def receive_point(self, p: Point) -> None:
        union = self.union
        union.collected += 1
        if union.rename:  # a group made with the name follows the new name
            group = p.group
            if _by_name(group, p.dims):
                group = group_id(union.rename, p.tags, p.dims, True)
            p = Point(union.rename, p.tags, p.fields, p.time, p.database, p.retention_policy,
                      group, p.dims)
        union.queue(self.index, p.time, p)

    def receive_batch(self, b: Batch) -> None:
        union = self.union
        union.collected += 1
        if union.rename:
            group = group_id(union.rename, b.tags, b.dims, True) if b.by_name else b.group
            b = Batch(union.rename, group, b.tags, b.dims, b.by_name, b.tmax, b.points)
        union.queue(self.index, b.tmax, b)

    def receive_barrier(self, group: str, t: int) -> None:
        self.union.queue(self.index, t, (group, t))

    def receive_delete(self, group: str) -> None:
        """Kapacitor's union, like its join, neither acts on nor forwards delete-group
        messages: the nodes below it keep their groups."""


class UnionNode(Node):
    """Merges its parents in time order, as Kapacitor does: each parent's messages are
    queued, and a message goes on once no parent can still send an older one (every
    parent has sent something, and it is not later than the oldest each one is at)."""

    def __init__(self, spec: specs.UnionSpec, log: Logger) -> None:
        super().__init__(spec, log)
        self.rename = spec.rename
        wants = spec.parents[0].edge_out()  # the node union() is called on, as Kapacitor
        for parent in spec.parents[1:]:
            if parent.edge_out() is not wants:
                from kapa_core.engine.tasks import StartRefused

                raise StartRefused(f"cannot add child mismatched edges: {parent.name}:"
                                   f"{parent.edge_out().value} -> {spec.name}:{wants.value}")
        self.sources: list[deque[tuple[int, Any]]] = [deque() for _ in spec.parents]
        self.marks: list[int | None] = [None] * len(spec.parents)

    def input(self, index: int) -> _UnionInput:
        """The child the build gives parent ``index``. Kapacitor links the union's
        arguments first and the node it is called on last: ``a|union(b, c)`` reads b,
        c, a in that order, which decides what goes first among messages of one time."""
        return _UnionInput(self, (index - 1) % len(self.sources))

    def queue(self, index: int, t: int, message: Any) -> None:
        self.sources[index].append((t, message))
        try:
            self._emit_ready()
        except Exception as exc:
            self.fail(exc)

    def _emit_ready(self) -> None:
        sources, marks = self.sources, self.marks
        emitted = True
        while emitted:
            emitted = False
            mark = None
            for i, queued in enumerate(sources):
                if queued:
                    marks[i] = queued[0][0]
                source_mark = marks[i]
                if source_mark is None:
                    return  # a parent has sent nothing yet
                if mark is None or source_mark < mark:
                    mark = source_mark
            bound = cast(int, mark)  # every parent has a mark here
            for queued in sources:
                while queued and queued[0][0] <= bound:
                    _, message = queued.popleft()
                    emitted = True
                    if isinstance(message, Point):
                        self.emit_point(message)
                    elif isinstance(message, Batch):
                        self.emit_batch(message)
                    else:
                        for child in self.children:
                            child.receive_barrier(*message)

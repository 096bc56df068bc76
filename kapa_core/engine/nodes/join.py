"""Runtime of ``|join()``: points of all parents matched by time and group.

Batches (from windows) are matched by group and window time, then point by point.

Times are rounded to ``tolerance``; the join group is the point's group, or the group
of the ``on`` tags. A set is emitted as soon as every parent has a point for it. Sets
left incomplete once every parent has moved past their time are dropped, or emitted
with ``fill`` values (``'null'`` or a number) for the fields of the missing parents.
"""

from __future__ import annotations

import heapq
from typing import Any

from kapa_core.engine.node import Node
from kapa_core.models.batch import Batch, BatchPoint, group_id
from kapa_core.models.point import Point
from kapa_core.pipeline.nodes import JoinSpec


class JoinInput(Node):
    """What a parent of a join sees as its child: tags the point with its parent index."""

    def __init__(self, join: JoinNode, index: int) -> None:
        self.join = join
        self.index = index

    def receive_point(self, p: Point) -> None:
        self.join.collected += 1
        try:
            self.join.point_from(self.index, p)
        except Exception as exc:
            self.join.fail(exc)

    def receive_batch(self, b: Any) -> None:
        self.join.collected += 1
        try:
            self.join.batch_from(self.index, b)
        except Exception as exc:
            self.join.fail(exc)

    def receive_barrier(self, group: str, t: int) -> None:
        self.join.barrier_from(self.index, group, t)

    def receive_delete(self, group: str) -> None:
        self.join.receive_delete(group)


class _Group:
    __slots__ = ("latest", "pending", "sets")

    def __init__(self, parents: int) -> None:
        self.sets: dict[int, list[Point | None]] = {}
        self.pending: list[int] = []  # heap of the times in ``sets`` (some already gone)
        self.latest: list[int | None] = [None] * parents


class JoinNode(Node):
    def __init__(self, spec: JoinSpec, log: Any) -> None:
        super().__init__(spec, log)
        self.names = spec.names
        self.parents = len(spec.parents)
        self.on = tuple(sorted(spec.on_dims))
        self.delimiter = spec.delimiter
        self.stream_name = spec.stream_name
        self.tolerance = int(spec.tolerance)
        self.fill = spec.fill_value
        self.groups: dict[str, _Group] = {}
        self.field_names: list[set[str]] = [set() for _ in range(self.parents)]
        self._prefixes = [name + self.delimiter for name in self.names]

    def cardinality(self) -> int:
        return len(self.groups)

    def point_from(self, index: int, p: Point) -> None:
        t = p.time
        if self.tolerance:
            t = (t + self.tolerance // 2) // self.tolerance * self.tolerance
        key = group_id(p.name, p.tags, self.on, False) if self.on else p.group
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = _Group(self.parents)
        self.field_names[index].update(p.fields)
        latest = group.latest[index]
        if latest is None or t > latest:
            group.latest[index] = t
            self._expire(group)  # older sets first, so output stays in time order
        slot = group.sets.get(t)
        if slot is None:
            slot = group.sets[t] = [None] * self.parents
            heapq.heappush(group.pending, t)
        slot[index] = p
        if all(s is not None for s in slot):
            del group.sets[t]
            self._emit(slot, t)

    # -- batches: matched by group and (rounded) window time, then point by point ---------
    def batch_from(self, index: int, b: Batch) -> None:
        t = b.tmax
        if self.tolerance:
            t = (t + self.tolerance // 2) // self.tolerance * self.tolerance
        key = "batch:" + b.group
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = _Group(self.parents)
        for bp in b.points:
            self.field_names[index].update(bp.fields)
        latest = group.latest[index]
        if latest is None or t > latest:
            group.latest[index] = t
            self._expire(group, batches=True)
        slot = group.sets.get(t)
        if slot is None:
            slot = group.sets[t] = [None] * self.parents
            heapq.heappush(group.pending, t)
        slot[index] = b
        if all(s is not None for s in slot):
            del group.sets[t]
            self._emit_batch(slot, t)

    def _emit_batch(self, slot: list[Any], tmax: int) -> None:
        first = next(b for b in slot if b is not None)
        by_time: dict[int, list[BatchPoint | None]] = {}
        for i, b in enumerate(slot):
            if b is None:
                continue
            for bp in b.points:
                t = bp.time
                if self.tolerance:
                    t = (t + self.tolerance // 2) // self.tolerance * self.tolerance
                by_time.setdefault(t, [None] * self.parents)[i] = bp
        points = []
        for t in sorted(by_time):
            row = by_time[t]
            if any(p is None for p in row) and self.fill is None:
                continue
            fields: dict[str, Any] = {}
            tags: dict[str, str] = {}
            for i, bp in enumerate(row):
                prefix = self._prefixes[i]
                if bp is None:
                    value = None if self.fill == "null" else self.fill
                    for name in self.field_names[i]:
                        fields[prefix + name] = value
                    continue
                tags.update(bp.tags)
                for name, value in bp.fields.items():
                    fields[prefix + name] = value
            points.append(BatchPoint(t, fields, tags))
        self.emit_batch(Batch(self.stream_name or first.name, first.group, first.tags,
                              first.dims, first.by_name, tmax, points))

    def barrier_from(self, index: int, group_key: str, t: int) -> None:
        """A parent promises no data older than ``t``: sets older than that can go."""
        group = self.groups.get(group_key) if not self.on else None
        if group is not None:
            latest = group.latest[index]
            if latest is None or t > latest:
                group.latest[index] = t
                self._expire(group)
        for child in self.children:
            child.receive_barrier(group_key, t)

    def delete_group(self, group: str) -> None:
        self.groups.pop(group, None)

    def _expire(self, group: _Group, batches: bool = False) -> None:
        if any(v is None for v in group.latest):
            return
        low = min(v for v in group.latest if v is not None)
        pending = group.pending
        while pending and pending[0] < low:
            t = heapq.heappop(pending)
            slot = group.sets.pop(t, None)
            if slot is not None and self.fill is not None:
                if batches:
                    self._emit_batch(slot, t)
                else:
                    self._emit(slot, t)

    def _emit(self, slot: list[Point | None], t: int) -> None:
        first = next(p for p in slot if p is not None)
        fields: dict[str, Any] = {}
        for i, p in enumerate(slot):
            prefix = self._prefixes[i]
            if p is None:
                value = None if self.fill == "null" else self.fill
                for name in self.field_names[i]:
                    fields[prefix + name] = value
                continue
            for name, value in p.fields.items():
                fields[prefix + name] = value
        if self.on:
            tags = {d: first.tags.get(d, "") for d in self.on}
            dims = self.on
        else:
            tags = {d: first.tags.get(d, "") for d in first.dims}
            dims = first.dims
        name = self.stream_name or first.name
        self.emit_point(Point(name, tags, fields, t, first.database, first.retention_policy,
                              group_id(name, tags, dims, False), dims))

"""Runtimes of outputs kept in memory: ``|httpOut()`` and the no-op node."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from kapa_core.engine.node import Node
from kapa_core.logs import Logger
from kapa_core.models.batch import Batch, BatchPoint, group_id
from kapa_core.models.point import Point
from kapa_core.pipeline.nodes import HTTPOutSpec, StatsSpec

if TYPE_CHECKING:
    from kapa_core.engine.nodes.io import NodeContext


class HTTPOutNode(Node):
    """Keeps the latest data of each group, served as an InfluxQL result series.

    The row is written when the endpoint is read, not for every point or batch (data
    flowing on is not changed by later nodes: they make new points and batches)."""

    def __init__(self, spec: HTTPOutSpec, log: Logger, ctx: NodeContext | None = None) -> None:
        super().__init__(spec, log)
        self.endpoint = spec.endpoint
        # Kapacitor registers each endpoint when the task starts: one name used again by
        # a later httpOut of the task fails this node, which stops the task.
        last = getattr(spec.pipeline, "last_http_out", None)
        if last is not None and last(spec.endpoint) > spec.id:
            path = f"/kapacitor/v1/tasks/{getattr(ctx, 'task_id', '')}/{spec.endpoint}"
            self.registration_error = f"http: multiple registrations for {path}"
            self.run_io = self._refuse_registration
        # group -> latest point or batch, in first-seen order; rows written on demand
        self.latest: dict[str, Point | Batch | None] = {}
        self.rows: dict[str, dict[str, Any]] = {}
        self.deleted = False  # a group was deleted (by a barrier's .delete(TRUE))

    def point(self, p: Point) -> None:
        self.latest[p.group] = p
        if self.rows:
            self.rows.pop(p.group, None)
        self.emit_point(p)

    def batch(self, b: Batch) -> None:
        self.latest[b.group] = b
        if self.rows:
            self.rows.pop(b.group, None)
        self.emit_batch(b)

    async def _refuse_registration(self) -> None:
        raise self.stop_task(self.registration_error)

    def barrier(self, group: str, t: int) -> None:
        # As in Kapacitor, a barrier opens its group: a series that is null until data.
        if group not in self.latest:
            self.latest[group] = None

    def _row(self, data: Point | Batch | None) -> dict[str, Any] | None:
        if data is None:
            return None
        if isinstance(data, Batch):
            return data.row()
        # A point's row carries all its tags (Kapacitor's PointToRow).
        return Batch(data.name, data.group, data.tags, data.dims, False, data.time,
                     [BatchPoint(data.time, data.fields, data.tags)]).row()

    def result(self) -> dict[str, Any]:
        rows = self.rows
        series = []
        for group, data in list(self.latest.items()):
            row = rows.get(group)
            if row is None and data is not None:
                row = rows[group] = cast(dict[str, Any], self._row(data))
            series.append(row)
        # Kapacitor's list of series is null until a first group, then a list, even
        # once every group has been deleted.
        return {"series": series if series or self.deleted else None}

    def delete_group(self, group: str) -> None:
        if group in self.latest:
            del self.latest[group]
            self.deleted = True
        self.rows.pop(group, None)

    def cardinality(self) -> int:
        return len(self.latest)


class NoOpNode(Node):
    pass


class GroupCounts:
    """Stands in the watched node's first child (Kapacitor's ``outs[0]`` edge) and counts,
    per group, what the node sends it, as that edge's group statistics do: one per point
    of a stream, the points of each batch. A deleted group is forgotten."""

    __slots__ = ("child", "counts")

    def __init__(self, child: Any) -> None:
        self.child = child
        # group -> [count, group tags, dims]
        self.counts: dict[str, list[Any]] = {}

    def receive_point(self, p: Point) -> None:
        entry = self.counts.get(p.group)
        if entry is None:
            tags = {d: p.tags.get(d, "") for d in p.dims}
            self.counts[p.group] = [1, tags, p.dims]
        else:
            entry[0] += 1
        self.child.receive_point(p)

    def receive_points(self, points: list[Point]) -> None:
        counts = self.counts
        for p in points:
            entry = counts.get(p.group)
            if entry is None:
                counts[p.group] = [1, {d: p.tags.get(d, "") for d in p.dims}, p.dims]
            else:
                entry[0] += 1
        self.child.receive_points(points)

    def receive_batch(self, b: Batch) -> None:
        entry = self.counts.get(b.group)
        if entry is None:
            self.counts[b.group] = [len(b.points), dict(b.tags), b.dims]
        else:
            entry[0] += len(b.points)
        self.child.receive_batch(b)

    def receive_barrier(self, group: str, t: int) -> None:
        self.child.receive_barrier(group, t)

    def receive_delete(self, group: str) -> None:
        self.counts.pop(group, None)
        self.child.receive_delete(group)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.child, name)


class StatsNode(Node):
    """``|stats(interval)``: every interval of wall-clock time, one ``stats`` point per
    group the watched node has sent to its first child, with the group's tags and its
    count so far as ``emitted`` (time rounded to the interval with ``.align()``), as
    Kapacitor reads that edge's group statistics; a single point with ``emitted`` 0 and
    no tags while there is none. Counts are of points, those inside batches too."""

    def __init__(self, spec: StatsSpec, log: Logger, watched: Node) -> None:
        super().__init__(spec, log)
        self.watched = watched
        self.interval = int(spec.interval)
        self.align = spec.align
        self.counter: GroupCounts | None = None

    def attach(self) -> None:
        """Count what the watched node sends to its first child (once the task's nodes
        are linked)."""
        children = self.watched.children
        if children and self.counter is None:
            counter = GroupCounts(children[0])
            children[0] = cast(Node, counter)  # stands in the child: the same methods
            self.counter = counter

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
        counts = self.counter.counts if self.counter is not None else {}
        try:
            if not counts:
                self.emit_point(Point("stats", {}, {"emitted": 0}, t))
                return
            for group, (count, tags, dims) in list(counts.items()):
                by_name = bool(group) and (not dims or "\n" in group)
                self.emit_point(Point("stats", dict(tags), {"emitted": count}, t, "", "",
                                      group_id("stats", tags, dims, by_name), dims))
        except Exception as exc:
            self.fail(exc)

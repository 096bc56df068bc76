"""Runtime of ``|window()``: Kapacitor's time and count windows, per group.

Each group gets its own window when its first point arrives, anchored on that point:

- by time, the first window ends ``every`` after the first point (``period`` after it
  with ``.fillPeriod()``), rounded down to a multiple of ``every`` with ``.align()``
  (multiples counted from Go's zero time, as ``time.Truncate`` counts them). A point at
  or after the end emits the buffered points (those not older than ``end - period``) as
  a batch ending there, *before* it joins the buffer, and the next end is ``every``
  after that point. Without ``every``, each point joins the buffer and emits the points
  of the last ``period`` (start excluded) once the first end is reached.
- by count, the last ``periodCount`` points are emitted every ``everyCount`` points
  (the first time after ``periodCount`` points with ``.fillPeriod()``).

The buffer drops its oldest points in arrival order: a late point stays where it came.
It is Kapacitor's ring buffer, quirks included.
"""

from __future__ import annotations

import time
from array import array
from collections import deque
from typing import Any

from kapa_core.engine.node import Node
from kapa_core.logs import Logger
from kapa_core.models.batch import Batch, BatchPoint, go_truncate
from kapa_core.models.point import Point
from kapa_core.pipeline.nodes import WindowSpec

#: Whether time windows may keep their points in arrays (see :class:`_TimeWindow`); off,
#: every window keeps objects, the reference the compact storage is tested against.
COMPACT = True


class _TimeWindow:
    """One group's points and the time its current window ends.

    The points are kept as Kapacitor's ring buffer keeps them, step for step (how it
    grows, wraps and drops from the front): its quirks decide what some windows hold,
    e.g. a buffer emptied right at its end keeps what comes next from being dropped.

    The ring is two parallel columns with the same slots: the times (``times``, an int64
    array, which purging reads) and the points' data. While every point of the group
    has the same tags and one float field of the same name (the usual series), the data
    column is a float64 array (``values``): 16 bytes a point instead of a point object,
    its fields dict, an int and a float (~340 bytes). The first point that does not fit
    turns it into a list of :class:`BatchPoint` (``window``), slot for slot, and the
    group stays that way.
    """

    __slots__ = ("by_name", "cap", "dims", "key", "name", "next_emit", "ptags", "size",
                 "start", "stop", "tags", "times", "values", "window")

    def __init__(self, p: Point, node: WindowNode) -> None:
        self.name = p.name
        self.dims = p.dims
        self.tags = {d: p.tags.get(d, "") for d in p.dims}
        self.by_name = bool(p.group) and (not p.dims or "\n" in p.group)
        self.cap = 0  # the capacity of Go's slice; the length of the columns is its length
        self.start = self.stop = self.size = 0
        self.times: array[int] = array("q")
        fields = p.fields
        self.key = ""
        self.ptags = p.tags
        self.values: array[float] | None = None
        self.window: list[Any] = []
        if len(fields) == 1 and COMPACT:
            ((key, value),) = fields.items()
            if type(value) is float:
                self.key = key
                self.values = array("d")
        period, every = node.period, node.every
        if node.fill_period:
            nxt = p.time + period
            if node.align:
                first = nxt
                nxt = go_truncate(nxt, every)
                if nxt <= first:
                    nxt += every
        else:
            nxt = p.time + every
            if node.align:
                nxt = go_truncate(nxt, every)
        self.next_emit = nxt

    def insert(self, p: Point) -> None:
        values = self.values
        if values is not None:
            fields = p.fields
            value = fields.get(self.key)
            tags = p.tags
            if (type(value) is float and len(fields) == 1
                    and (tags is self.ptags or tags == self.ptags)):
                self._put(p.time, values, value)
                return
            self._to_objects()
        self._put(p.time, self.window, BatchPoint(p.time, p.fields, p.tags))

    def _put(self, t: int, data: Any, item: Any) -> None:
        """Add one point: ``t`` to the times, ``item`` to ``data`` (the data column)."""
        if self.size == self.cap:  # full: a new slice of twice the size, in order
            size, start, stop = self.size, self.start, self.stop
            times = self.times
            if size == 0:
                times, data = array("q"), data[:0]
            elif stop > start:
                times, data = times[start:stop], data[start:stop]
            else:
                times, data = times[start:] + times[:stop], data[start:] + data[:stop]
            times.append(0)
            data.append(item)  # a placeholder, overwritten below
            self.times = times
            if self.values is not None:
                self.values = data
            else:
                self.window = data
            self.cap = 2 * (size + 1)
            self.start = 0
            self.stop = size
        times = self.times
        stop = self.stop
        if stop == len(times):
            if stop == self.cap:
                stop = 0
                times[0] = t
                data[0] = item
            else:
                times.append(t)
                data.append(item)
        else:
            times[stop] = t
            data[stop] = item
        self.size += 1
        self.stop = stop + 1

    def _to_objects(self) -> None:
        """Leave compact storage: each slot of the values becomes a BatchPoint."""
        values = self.values
        assert values is not None
        key, tags = self.key, self.ptags
        self.window = [BatchPoint(t, {key: v}, tags) for t, v in zip(self.times, values)]
        self.values = None

    def purge(self, oldest: int, inclusive: bool) -> None:
        """Drop points from the front while they are older than ``oldest`` (not newer
        than it unless ``inclusive``), as Kapacitor's buffer does."""
        w = self.times
        n = len(w)
        if n == 0:
            return
        start, stop = self.start, self.stop
        if inclusive:
            if start < stop:
                while start < stop and w[start] < oldest:
                    start += 1
                self.size = stop - start
            elif w[n - 1] >= oldest:
                while start < n and w[start] < oldest:
                    start += 1
                self.size = n - start + stop
            else:
                start = 0
                while start < stop and w[start] < oldest:
                    start += 1
                self.size = stop - start
        elif start < stop:
            while start < stop and w[start] <= oldest:
                start += 1
            self.size = stop - start
        elif w[n - 1] > oldest:
            while start < n and w[start] <= oldest:
                start += 1
            self.size = n - start + stop
        else:
            start = 0
            while start < stop and w[start] <= oldest:
                start += 1
            self.size = stop - start
        self.start = start

    def batch(self, group: str, tmax: int) -> Batch:
        start, stop = self.start, self.stop
        values = self.values
        points: list[BatchPoint]
        if self.size == 0:
            points = []
        elif values is not None:
            times = self.times
            if stop > start:
                ts, vs = times[start:stop], values[start:stop]
            else:
                ts = times[start:] + times[:stop]
                vs = values[start:] + values[:stop]
            key, tags = self.key, self.ptags
            points = [BatchPoint(t, {key: v}, tags) for t, v in zip(ts, vs)]
        else:
            w = self.window
            kept = w[start:stop] if stop > start else w[start:] + w[:stop]
            # Fresh objects: a batch's points may be changed downstream, and a point
            # can be in several (overlapping) windows.
            points = [BatchPoint(q.time, q.fields, q.tags) for q in kept]
        return Batch(self.name, group, self.tags, self.dims, self.by_name, tmax, points)


def _barrier_point(group: str, t: int) -> Point:
    """What Kapacitor's window sees of a barrier as a group's first message: the name
    ``barrier``, the group's tags (read back from its ID) and the barrier's time."""
    body = group.rpartition("\n")[2]
    tags: dict[str, str] = {}
    parts = body.split(",") if body else []
    if parts and all("=" in part for part in parts):  # else grouped by measurement only
        for part in parts:
            k, _, v = part.partition("=")
            tags[k] = v
    return Point("barrier", tags, {}, t, group=group, dims=tuple(tags))


class _CountWindow:
    __slots__ = ("buf", "by_name", "count", "dims", "name", "next_emit", "tags")

    def __init__(self, p: Point, node: WindowNode) -> None:
        self.name = p.name
        self.dims = p.dims
        self.tags = {d: p.tags.get(d, "") for d in p.dims}
        self.by_name = bool(p.group) and (not p.dims or "\n" in p.group)
        self.buf: deque[BatchPoint] = deque(maxlen=node.period_count)
        self.count = 0
        self.next_emit = node.period_count if node.fill_period else node.every_count


class WindowNode(Node):
    def __init__(self, spec: WindowSpec, log: Logger) -> None:
        super().__init__(spec, log)
        self.period = int(spec.period)
        self.every = int(spec.every)
        self.period_count = spec.period_count
        self.every_count = spec.every_count
        self.align = spec.align
        self.fill_period = spec.fill_period
        if not self.period and not self.period_count:
            from kapa_core.engine.tasks import StartRefused

            raise StartRefused("window node must have either a non zero period or non zero "
                               "period count")
        self.windows: dict[str, Any] = {}

    def cardinality(self) -> int:
        return len(self.windows)

    def _advance(self, window: _TimeWindow, group: str, t: int) -> None:
        """Data (a point or a barrier) has reached ``t``: emit the window if it ended."""
        if self.every == 0:
            window.purge(t - self.period, False)
            tmax = t
            window.next_emit = t
        else:
            tmax = window.next_emit
            window.purge(tmax - self.period, True)
            nxt = t + self.every
            window.next_emit = go_truncate(nxt, self.every) if self.align else nxt
        self.emit_batch(window.batch(group, tmax))

    def receive_barrier(self, group: str, t: int) -> None:
        """A barrier can end a time window; as in Kapacitor, a time window does not pass
        the barrier on (the batch it emits, if any, takes its place); a count window
        does."""
        if self.period_count:
            super().receive_barrier(group, t)
            return
        window = self.windows.get(group)
        if window is None:
            # As in Kapacitor, a barrier opens a window for a group it has no data of:
            # anchored at the barrier's time and named after it ("barrier").
            window = self.windows[group] = _TimeWindow(_barrier_point(group, t), self)
        if t >= window.next_emit:
            try:
                self._advance(window, group, t)
            except Exception as exc:
                self.fail(exc)

    def receive_points(self, points: list[Point]) -> None:
        """A run of points into time windows (``every`` set): the loop of :meth:`point`
        without a call per point; an error on one point is counted and the run goes on
        with the next."""
        if self.period_count or self.every == 0:
            super().receive_points(points)
            return
        started = time.perf_counter_ns()
        self.collected += len(points)
        windows = self.windows
        remaining = iter(points)
        while True:
            try:
                for p in remaining:
                    group = p.group
                    window = windows.get(group)
                    if window is None:
                        window = windows[group] = _TimeWindow(p, self)
                    t = p.time
                    if t >= window.next_emit:
                        self._advance(window, group, t)
                    values = window.values
                    if values is not None and window.size != window.cap:
                        # _TimeWindow.insert's commonest case, inline: compact, room
                        # left, the series' one float field
                        fields = p.fields
                        value = fields.get(window.key)
                        tags = p.tags
                        if (type(value) is float and len(fields) == 1
                                and (tags is window.ptags or tags == window.ptags)):
                            stop = window.stop
                            if stop != len(values):
                                window.times[stop] = t
                                values[stop] = value
                            elif stop != window.cap:
                                window.times.append(t)
                                values.append(value)
                            else:
                                window.insert(p)
                                continue
                            window.size += 1
                            window.stop = stop + 1
                            continue
                    window.insert(p)
                break
            except Exception as exc:  # that point is lost, the others go on
                self.fail(exc)
        self._time_run(started, len(points))

    def point(self, p: Point) -> None:
        window = self.windows.get(p.group)
        if self.period_count:
            if window is None:
                window = self.windows[p.group] = _CountWindow(p, self)
            buf = window.buf
            buf.append(BatchPoint(p.time, p.fields, p.tags))
            window.count += 1
            if window.count == window.next_emit:
                window.next_emit += self.every_count
                self.emit_batch(Batch(window.name, p.group, window.tags, window.dims,
                                      window.by_name, buf[-1].time, list(buf)))
            return
        if window is None:
            window = self.windows[p.group] = _TimeWindow(p, self)
        if self.every == 0:
            window.insert(p)
            if p.time >= window.next_emit:
                self._advance(window, p.group, p.time)
            return
        if p.time >= window.next_emit:
            self._advance(window, p.group, p.time)
        window.insert(p)

"""Runtime of ``|join()``: points (or batches) of all parents matched by time and group.

As Kapacitor 1.5.7 does it:

- Each message's time is rounded to ``tolerance``; the message goes to its group's join
  sets at that time, into the first set still missing its parent (several sets may
  share a time).
- After each message or barrier, the sets at the group's oldest time are emitted: only
  the complete ones while some parent has not moved past that time, all of them (and
  those of the following times, as long as every parent is past them) once all have.
  An incomplete set is emitted with ``fill`` values, or dropped without a fill. The
  field names filled for a missing parent are those of the set's first present member.
- A joined point has the first member's name (or ``streamName``), dimensions and group
  tags; no database or retention policy.
- Batches are joined member by member: at each step the earliest (rounded) time among
  the members' next points makes a row.
- With ``.on(tags)``, a message grouped by more tags than the ``on`` tags (a *specific*
  one) is matched with the messages grouped by exactly the ``on`` tags at its time; the
  match takes the specific message's tags and both go to the specific one's group. A
  specific message that can no longer get a match (every parent has passed its time) is
  sent alone.
- Delete-group messages are not passed on (Kapacitor's join drops them).
- The order rows come out in (and so the order of an httpOut's series) is the order the
  sets complete. Messages of several parents meet here in the order the engine feeds
  them: a write goes through the script's first branch, then the next, the order
  Kapacitor's branch goroutines usually take. With ``.on()`` and the specific branch
  first, its messages wait and come out match by match when each match arrives.
- The join wants the first parent's edge: a parent providing the other one refuses the
  start. ``fill('null')`` fills nulls, a number fills that number, ``'none'`` or any
  other value is no fill; another string refuses the start.
"""

from __future__ import annotations

import heapq
from typing import Any

from kapa_core.engine.node import Node
from kapa_core.logs import Logger
from kapa_core.models.batch import Batch, BatchPoint, group_id
from kapa_core.models.point import Point
from kapa_core.pipeline.base import Edge
from kapa_core.pipeline.nodes import JoinSpec

#: Go's zero time: before any time a message can have.
ZERO = -(2**63)


def _by_name(msg: Any) -> bool:
    """Whether the message's group includes its measurement name."""
    if isinstance(msg, Batch):
        return msg.by_name
    return bool(msg.group) and (msg.group == msg.name or msg.group.startswith(msg.name + "\n"))


def _group_tags(msg: Any) -> dict[str, str]:
    if isinstance(msg, Batch):
        return msg.tags
    tags = msg.tags
    return {d: tags.get(d, "") for d in msg.dims}


class JoinInput(Node):
    """What a parent of a join sees as its child: tags the message with its parent index."""

    def __init__(self, join: JoinNode, index: int) -> None:
        self.join = join
        self.index = index

    def receive_point(self, p: Point) -> None:
        self.join.collected += 1
        try:
            self.join.message(self.index, p, p.time)
        except Exception as exc:
            self.join.fail(exc)

    def receive_batch(self, b: Any) -> None:
        self.join.collected += 1
        try:
            self.join.message(self.index, b, b.tmax)
        except Exception as exc:
            self.join.fail(exc)

    def receive_barrier(self, group: str, t: int) -> None:
        try:
            self.join.barrier_from(self.index, group, t)
        except Exception as exc:
            self.join.fail(exc)

    def receive_delete(self, group: str) -> None:
        """Kapacitor's join neither acts on nor forwards delete-group messages."""


class _Set:
    """The members of one joined row (or batch): at most one message per parent."""

    __slots__ = ("first", "size", "values")

    def __init__(self, parents: int) -> None:
        self.values: list[Any] = [None] * parents
        self.size = 0
        self.first = parents


class _Group:
    __slots__ = ("head", "node", "oldest", "sets", "times")

    def __init__(self, node: JoinNode) -> None:
        self.node = node
        self.sets: dict[int, list[_Set]] = {}
        self.times: list[int] = []  # heap of the times in ``sets`` (stale ones skipped)
        self.head = [ZERO] * node.parents
        self.oldest = ZERO

    def collect(self, src: int, msg: Any, t: int) -> None:
        if self.oldest == ZERO or t < self.oldest:
            self.oldest = t
        sets = self.sets.get(t)
        if sets is None:
            sets = self.sets[t] = [_Set(self.node.parents)]
            heapq.heappush(self.times, t)
        target = next((s for s in sets if s.values[src] is None), None)
        if target is None:
            target = _Set(self.node.parents)
            sets.append(target)
        if src < target.first:
            target.first = src
        target.values[src] = msg
        target.size += 1
        self.head[src] = t
        self.emit(self.only_ready())

    def barrier(self, src: int, t: int) -> None:
        if self.oldest == ZERO or t < self.oldest:
            self.oldest = t
        self.head[src] = t
        self.emit(self.only_ready())

    def _first_time(self) -> int:
        times = self.times
        sets = self.sets
        while times and times[0] not in sets:
            heapq.heappop(times)
        return times[0] if times else ZERO

    def only_ready(self) -> bool:
        """True while some parent has not moved past the oldest time."""
        oldest = self.oldest
        return any(h <= oldest for h in self.head)

    def emit(self, only_ready: bool) -> None:
        parents = self.node.parents
        while self.sets:
            oldest = self.oldest
            sets = self.sets.get(oldest, [])
            i = 0
            for s in sets:
                if s.size != parents and only_ready:
                    break
                self.node.emit_set(s, oldest)
                i += 1
            if i == len(sets):
                self.sets.pop(oldest, None)
            else:
                self.sets[oldest] = sets[i:]
            self.oldest = self._first_time()
            if only_ready:
                return
            only_ready = self.only_ready()


class JoinNode(Node):
    def __init__(self, spec: JoinSpec, log: Logger) -> None:
        super().__init__(spec, log)
        self.parents = len(spec.parents)
        self.on = tuple(spec.on_dims)
        self.stream_name = spec.stream_name
        self.tolerance = int(spec.tolerance)
        fill = spec.fill_value
        if isinstance(fill, str):
            if fill == "none":
                fill = None
            elif fill != "null":
                from kapa_core.engine.tasks import StartRefused

                raise StartRefused(f"unexpected fill option {fill}")
        elif type(fill) not in (int, float):
            fill = None  # Kapacitor takes any other value as no fill
        self.fill = fill
        wants = spec.edge_in()  # the first parent's edge, as in Kapacitor
        for parent in spec.parents:
            if parent.edge_out() is not wants:
                from kapa_core.engine.tasks import StartRefused

                raise StartRefused(f"cannot add child mismatched edges: {parent.name}:"
                                   f"{parent.edge_out().value} -> {spec.name}:{wants.value}")
        self.batches = wants is Edge.BATCH
        self.groups: dict[str, _Group] = {}
        self.prefixes = [name + spec.delimiter for name in spec.names]
        # .on() matching state
        self.low_marks: dict[tuple[int, str], int] = {}
        self.match_buffer: dict[str, list[tuple[int, Any]]] = {}
        self.specific_buffer: dict[str, list[tuple[int, Any]]] = {}
        self.reported: set[int] = set()
        self.all_reported = False
        self._on_keys: dict[str, str] = {}  # group ID -> group ID over the on tags

    def cardinality(self) -> int:
        return len(self.groups)

    def input(self, index: int) -> JoinInput:
        """The child the build gives parent ``index``."""
        return JoinInput(self, index)

    def _round(self, t: int) -> int:
        tol = self.tolerance
        if tol <= 0:
            return t
        return (t + tol // 2) // tol * tol

    def _group(self, key: str) -> _Group:
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = _Group(self)
        return group

    # -- receiving ------------------------------------------------------------------------
    def message(self, src: int, msg: Any, t: int) -> None:
        if self.on:
            self._match(src, msg)
        else:
            self._group(msg.group).collect(src, msg, self._round(t))

    def barrier_from(self, src: int, group: str, t: int) -> None:
        self._group(group).barrier(src, self._round(t))
        for child in self.children:
            child.receive_barrier(group, t)

    @staticmethod
    def _time(msg: Any) -> int:
        return msg.tmax if isinstance(msg, Batch) else msg.time

    def _match(self, src: int, msg: Any) -> None:
        if not self.all_reported:
            self.reported.add(src)
            self.all_reported = len(self.reported) == self.parents
        rnd = self._round
        t = rnd(self._time(msg))
        key = self._on_keys.get(msg.group)
        if key is None:  # the same for every message of a group
            key = self._on_keys[msg.group] = group_id(msg.name, _group_tags(msg), self.on,
                                                      _by_name(msg))
        self.low_marks[(src, key)] = t
        low = ZERO
        if self.all_reported:
            for s in range(self.parents):
                lm = self.low_marks.get((s, key), ZERO)
                if low == ZERO or lm < low:
                    low = lm
            buffered = self.specific_buffer.get(key, [])
            i = 0
            for item in buffered:
                if rnd(self._time(item[1])) < low:
                    self._send_alone(item)
                    i += 1
                else:
                    break
            if i:
                self.specific_buffer[key] = buffered[i:]
        item = (src, msg)
        if len(msg.dims) > len(self.on):
            matches = self.match_buffer.get(key, [])
            matched = False
            i = 0
            for m in matches:
                pt = rnd(self._time(m[1]))
                if pt == t:
                    self._send_matched(item, m)
                    matched = True
                if pt >= low:
                    break
                i += 1
            if self.all_reported and i:
                self.match_buffer[key] = matches[i:]
            if not matched:
                if self.all_reported and t < low:
                    self._send_alone(item)
                else:
                    self.specific_buffer.setdefault(key, []).append(item)
        else:
            self.match_buffer.setdefault(key, []).append(item)
            buffered = self.specific_buffer.get(key, [])
            i = 0
            for specific in buffered:
                if rnd(self._time(specific[1])) == t:
                    self._send_matched(specific, item)
                    i += 1
                else:
                    break
            if i:
                self.specific_buffer[key] = buffered[i:]

    def _send_matched(self, specific: tuple[int, Any], matched: tuple[int, Any]) -> None:
        smsg = specific[1]
        mmsg = matched[1]
        tags = _group_tags(smsg)
        if isinstance(mmsg, Batch):
            copy: Any = Batch(mmsg.name, mmsg.group, tags, mmsg.dims, mmsg.by_name,
                              mmsg.tmax, mmsg.points)
        else:
            by_name = _by_name(smsg)
            group = group_id(mmsg.name, tags, smsg.dims, True) if by_name else smsg.group
            copy = Point(mmsg.name, dict(tags), mmsg.fields, mmsg.time, mmsg.database,
                         mmsg.retention_policy, group, smsg.dims)
        group = self._group(smsg.group)
        group.collect(specific[0], smsg, self._round(self._time(smsg)))
        group.collect(matched[0], copy, self._round(self._time(copy)))

    def _send_alone(self, specific: tuple[int, Any]) -> None:
        msg = specific[1]
        self._group(msg.group).collect(specific[0], msg, self._round(self._time(msg)))

    # -- emitting -------------------------------------------------------------------------
    def emit_set(self, s: _Set, t: int) -> None:
        first = s.values[s.first]
        name = self.stream_name or first.name
        if self.batches:
            if not isinstance(first, Batch):
                raise ValueError(f"unexpected type of first value {type(first).__name__}")
            self._emit_batch(s, t, name, first)
            return
        if not isinstance(first, Point):
            raise ValueError(f"unexpected type of first value {type(first).__name__}")
        fields: dict[str, Any] = {}
        prefixes = self.prefixes
        for i, v in enumerate(s.values):
            prefix = prefixes[i]
            if v is None:
                if self.fill is None:
                    return  # an inner join: no row without every parent
                value = None if self.fill == "null" else self.fill
                for k in first.fields:
                    fields[prefix + k] = value
            else:
                if not isinstance(v, Point):
                    raise ValueError("failed to join into point: unexpected type "
                                     f"{type(v).__name__}")
                for k, value in v.fields.items():
                    fields[prefix + k] = value
        tags = _group_tags(first)
        dims = first.dims
        self.emit_point(Point(name, tags, fields, t, "", "",
                              group_id(name, tags, dims, _by_name(first)), dims))

    def _emit_batch(self, s: _Set, t: int, name: str, first: Batch) -> None:
        values = s.values
        n = len(values)
        rnd = self._round
        prefixes = self.prefixes
        tags = first.tags
        empty = [False] * n
        empty_count = 0
        indexes = [0] * n
        field_names: list[str] | None = None
        points: list[BatchPoint] = []
        while empty_count < n:
            row: list[BatchPoint | None] = [None] * n
            row_time = ZERO
            count = 0
            for i, b in enumerate(values):
                if empty[i]:
                    continue
                if b is None or indexes[i] == len(b.points):
                    empty_count += 1
                    empty[i] = True
                    continue
                if not isinstance(b, Batch):
                    raise ValueError("failed to join into batch: unexpected type of batch "
                                     f"value {type(b).__name__}")
                bp = b.points[indexes[i]]
                bt = rnd(bp.time)
                if row_time == ZERO:
                    row_time = bt
                if bt < row_time:
                    row_time = bt  # back up: the members taken so far wait
                    for j in range(n):
                        if row[j] is not None:
                            indexes[j] -= 1
                        row[j] = None
                    row[i] = bp
                    indexes[i] += 1
                    count = 1
                elif bt == row_time:
                    if field_names is None:
                        field_names = list(bp.fields)
                    row[i] = bp
                    indexes[i] += 1
                    count += 1
            if count == 0:
                continue
            fields: dict[str, Any] = {}
            for i, member in enumerate(row):
                prefix = prefixes[i]
                if member is None:
                    if self.fill is None:
                        break
                    value = None if self.fill == "null" else self.fill
                    for k in field_names or ():
                        fields[prefix + k] = value
                else:
                    for k, value in member.fields.items():
                        fields[prefix + k] = value
            else:
                points.append(BatchPoint(row_time, fields, dict(tags)))
        self.emit_batch(Batch(name, first.group, dict(tags), first.dims, first.by_name, t,
                              points))

"""Runtimes of the InfluxQL functions: aggregates, selectors and transformations.

As Kapacitor runs them (its ``influxql.go`` on InfluxDB 1.x's reducers):

- the type of the field in the first point a group's reducer sees (per batch, or per
  timestamp on a stream) picks the reducer; points whose field has another type, or
  lacks the field, are errors and are skipped; a type the function does not take (the
  sum of strings) is an error for every point;
- on a stream, points of one group that share a timestamp are reduced together and
  emitted when a point with another timestamp arrives for that group;
- aggregates emit ``{as: value}`` with the group's tags; the simple selectors (first,
  last, min, max, percentile) emit the selected point itself, all its tags and fields,
  with the field renamed to ``as``; top and bottom emit a batch whose points carry
  their own tags; count and sum of an empty batch are 0, other functions emit nothing;
- transformations (difference, elapsed, movingAverage, cumulativeSum) emit one point
  per input point with the group's tags only, at the point's time; on batches their
  state starts afresh with each batch;
- floating-point operations happen in the reducers' order (a running sum, a moving
  sum updated by subtraction...), so the last digits are the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import islice
from typing import Any, Protocol

from kapa_core.engine.node import Node
from kapa_core.engine.nodes.gosort import go_sort, heap_pop_n
from kapa_core.engine.nodes.holtwinters import HoltWinters
from kapa_core.logs import Logger
from kapa_core.models.batch import Batch, BatchPoint
from kapa_core.models.point import Point
from kapa_core.pipeline.base import Edge
from kapa_core.pipeline.influxql import InfluxQLSpec

# One aggregated point: (time, value, tags, fields).
Entry = tuple[int, Any, dict[str, str], dict[str, Any]]
# One result of a reducer: (time or None for "the batch's time", value, tags or None,
# fields or None). Simple selectors return the selected point's tags and fields.
Result = tuple[int | None, Any, dict[str, str] | None, dict[str, Any] | None]

_GO_TYPE = {"float": "float64", "int": "int64", "string": "string", "bool": "bool"}


def _kind(value: Any) -> str | None:
    t = type(value)
    if t is float:
        return "float"
    if t is int:
        return "int"
    if t is str:
        return "string"
    if t is bool:
        return "bool"
    return None


#: The Python type of each kind's values (``type(v) is`` keeps bool apart from int).
_PY_TYPE: dict[str, type] = {"float": float, "int": int, "string": str, "bool": bool}


def _wrap(n: int) -> int:
    """An int64 result as Go computes it: overflow wraps around."""
    if -(1 << 63) <= n < (1 << 63):
        return n
    return ((n + (1 << 63)) % (1 << 64)) - (1 << 63)


NUMERIC = frozenset(("float", "int"))
ALL = frozenset(("float", "int", "string", "bool"))
#: The field types each function takes (Kapacitor's reducers).
KINDS: dict[str, frozenset[str]] = {
    "count": ALL, "distinct": ALL, "mean": NUMERIC, "median": NUMERIC, "mode": NUMERIC,
    "spread": NUMERIC, "sum": NUMERIC, "stddev": NUMERIC, "first": ALL, "last": ALL,
    "min": NUMERIC, "max": NUMERIC, "percentile": NUMERIC, "top": NUMERIC,
    "bottom": NUMERIC, "elapsed": ALL, "difference": NUMERIC, "movingAverage": NUMERIC,
    "cumulativeSum": NUMERIC, "holtWinters": NUMERIC, "holtWintersWithFit": NUMERIC,
}
#: Functions that emit for an empty batch (0 of the function's type).
EMPTY_OK = frozenset(("count", "sum"))
SIMPLE_SELECTORS = frozenset(("first", "last", "min", "max", "percentile"))
TRANSFORMATIONS = frozenset(("elapsed", "difference", "movingAverage", "cumulativeSum"))


# -- aggregates and selectors -------------------------------------------------------------
def _count(entries: list[Entry], kind: str, spec: InfluxQLSpec) -> list[Result]:
    return [(None, len(entries), None, None)]


def _sum(entries: list[Entry], kind: str, spec: InfluxQLSpec) -> list[Result]:
    if kind == "float":
        total = 0.0
        for e in entries:
            total = total + e[1]
        return [(None, total, None, None)]
    n = 0
    for e in entries:
        n = _wrap(n + e[1])
    return [(None, n, None, None)]


def _mean(entries: list[Entry], kind: str, spec: InfluxQLSpec) -> list[Result]:
    total: Any = 0.0 if kind == "float" else 0
    for e in entries:
        total += e[1]
    if kind == "int":
        total = _wrap(total)
    return [(None, float(total) / float(len(entries)), None, None)]


def _median(entries: list[Entry], kind: str, spec: InfluxQLSpec) -> list[Result]:
    values = sorted(e[1] for e in entries)
    n = len(values)
    if n % 2 == 0:
        lo, hi = values[n // 2 - 1], values[n // 2]
        if kind == "int":
            return [(None, float(lo) + float(hi - lo) / 2, None, None)]
        return [(None, lo + (hi - lo) / 2, None, None)]
    return [(None, float(values[n // 2]), None, None)]


def _mode(entries: list[Entry], kind: str, spec: InfluxQLSpec) -> list[Result]:
    if len(entries) == 1:
        return [(None, entries[0][1], None, None)]
    ordered = list(entries)
    go_sort(ordered, _by_value)  # not stable: which tied point comes first matters
    most_freq = curr_freq = 0
    curr_mode = most_mode = ordered[0][1]
    most_time = curr_time = ordered[0][0]
    for t, v, _, _ in ordered:
        if v != curr_mode:
            curr_freq = 1
            curr_mode = v
            curr_time = t
            continue
        curr_freq += 1
        if most_freq > curr_freq or (most_freq == curr_freq and curr_time > most_time):
            continue
        most_freq = curr_freq
        most_mode = v
        most_time = t
    return [(None, most_mode, None, None)]


def _spread(entries: list[Entry], kind: str, spec: InfluxQLSpec) -> list[Result]:
    low = high = entries[0][1]
    for e in entries[1:]:
        v = e[1]
        if kind == "float":
            low = _go_min(low, v)
            high = _go_max(high, v)
        else:
            low = min(low, v)
            high = max(high, v)
    return [(None, high - low if kind == "float" else _wrap(high - low), None, None)]


def _go_min(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return min(a, b)


def _go_max(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return max(a, b)


def _stddev(entries: list[Entry], kind: str, spec: InfluxQLSpec) -> list[Result]:
    if len(entries) < 2:
        return [(None, 0.0, None, None)]  # a nil point: its value reads as 0
    mean = 0.0
    count = 0
    for e in entries:
        v = float(e[1])
        if math.isnan(v):
            continue
        count += 1
        mean += (v - mean) / count
    variance = 0.0
    for e in entries:
        v = float(e[1])
        if math.isnan(v):
            continue
        variance += (v - mean) * (v - mean)
    return [(None, math.sqrt(variance / (count - 1)) if count > 1 else math.nan,
             None, None)]


def _selector(better: Callable[[Entry, Entry], bool]) -> Callable[..., list[Result]]:
    def select(entries: list[Entry], kind: str, spec: InfluxQLSpec) -> list[Result]:
        best = entries[0]
        for e in entries[1:]:
            if better(e, best):
                best = e
        return [(best[0], best[1], best[2], best[3])]
    return select


def _first_better(c: Entry, p: Entry) -> bool:
    if c[0] != p[0]:
        return c[0] < p[0]
    if type(c[1]) is bool:
        better: bool = not c[1] and p[1]
        return better
    greater: bool = c[1] > p[1]
    return greater


def _last_better(c: Entry, p: Entry) -> bool:
    if c[0] != p[0]:
        return c[0] > p[0]
    if type(c[1]) is bool:
        better: bool = c[1] and not p[1]
        return better
    greater: bool = c[1] > p[1]
    return greater


def _min_better(c: Entry, p: Entry) -> bool:
    return c[1] < p[1] or (c[1] == p[1] and c[0] < p[0])


def _max_better(c: Entry, p: Entry) -> bool:
    return c[1] > p[1] or (c[1] == p[1] and c[0] < p[0])


def _percentile(entries: list[Entry], kind: str, spec: InfluxQLSpec) -> list[Result]:
    n = len(entries)
    i = int(math.floor(n * float(spec.args[0]) / 100.0 + 0.5)) - 1
    if i < 0 or i >= n:
        return []
    ordered = list(entries)
    go_sort(ordered, _by_value)  # not stable: which tied point is selected matters
    e = ordered[i]
    # InfluxQL's integer percentile drops the point's time (the batch's time is used)
    return [(e[0] if kind == "float" else None, e[1], e[2], e[3])]


def _by_value(a: Entry, b: Entry) -> bool:
    less: bool = a[1] < b[1]
    return less


def _top_less(a: Entry, b: Entry) -> bool:
    return a[1] > b[1] if a[1] != b[1] else a[0] < b[0]


def _bottom_less(a: Entry, b: Entry) -> bool:
    return a[1] < b[1] if a[1] != b[1] else a[0] < b[0]


def _top_bottom(entries: list[Entry], kind: str, spec: InfluxQLSpec) -> list[Result]:
    top = spec.method == "top"
    names = spec.extra_fields
    if names:
        # keep the best point of each combination of the named fields/tags
        best: dict[str, Entry] = {}
        for e in entries:
            key = ",".join(_aux_key(e, name) for name in names)
            cur = best.get(key)
            if cur is None or (e[1] > cur[1] if top else e[1] < cur[1]) or (
                    e[1] == cur[1] and e[0] < cur[0]):
                best[key] = e
        entries = list(best.values())
    heap = list(entries)
    chosen = heap_pop_n(heap, _top_less if top else _bottom_less, min(spec.top_n, len(heap)))
    chosen.sort(key=lambda e: e[0])  # stable, as Go's sort.Stable by time
    return [(e[0], e[1], e[2], None) for e in chosen]


def _aux_key(e: Entry, name: str) -> str:
    """The value a tag/field argument is told apart by: Go's fmt %s of the field, or the
    tag ("" when absent)."""
    if name not in e[3]:
        return e[2].get(name, "")
    value = e[3][name]
    if type(value) is str:
        return value
    return f"%!s({_GO_TYPE.get(_kind(value) or '', 'unknown')}={value!r})"


def _distinct(entries: list[Entry], kind: str, spec: InfluxQLSpec) -> list[Result]:
    first_seen: dict[Any, int] = {}  # one kind per reducer: 1 and True never meet
    for e in entries:
        first_seen.setdefault(e[1], e[0])
    ordered = sorted(first_seen.items(), key=lambda kv: (kv[1], kv[0]))
    return [(t, v, None, None) for v, t in ordered]  # at first-seen times (usePointTimes)


def _holt_winters(entries: list[Entry], kind: str, spec: InfluxQLSpec) -> list[Result]:
    h, m, interval = spec.args[:3]
    model = HoltWinters(int(h), int(m), spec.method == "holtWintersWithFit", int(interval))
    ordered = sorted(((e[0], float(e[1])) for e in entries), key=lambda x: x[0])
    return [(t, v, None, None) for t, v in model.forecast_points(ordered)]


REDUCERS: dict[str, Callable[[list[Entry], str, InfluxQLSpec], list[Result]]] = {
    "count": _count, "sum": _sum, "mean": _mean, "median": _median, "mode": _mode,
    "spread": _spread, "stddev": _stddev, "first": _selector(_first_better),
    "last": _selector(_last_better), "min": _selector(_min_better),
    "max": _selector(_max_better), "percentile": _percentile, "top": _top_bottom,
    "bottom": _top_bottom, "distinct": _distinct, "holtWinters": _holt_winters,
    "holtWintersWithFit": _holt_winters,
}


# -- transformations ----------------------------------------------------------------------
# Each has aggregate() and emit() as InfluxQL's reducers: Kapacitor calls emit() after
# every point, even one that failed to aggregate (a field of another type), so such a
# point can repeat the previous output.
class Stepper(Protocol):
    """A transformation's state: aggregate() takes a point, emit() gives the output."""

    def aggregate(self, t: int, v: Any) -> None: ...

    def emit(self) -> tuple[int, Any] | None: ...


class _Difference:
    __slots__ = ("curr", "out")

    def __init__(self, spec: InfluxQLSpec) -> None:
        self.curr: tuple[int, Any] | None = None
        self.out: tuple[int, Any] | None = None  # the difference not yet emitted

    def aggregate(self, t: int, v: Any) -> None:
        curr = self.curr
        if curr is not None:
            if curr[0] == t:
                return  # a point that does not advance the series is skipped
            diff = v - curr[1]
            self.out = (t, diff if type(diff) is float else _wrap(diff))
        self.curr = (t, v)

    def emit(self) -> tuple[int, Any] | None:
        out = self.out
        if out is not None:
            self.out = None  # read once
        return out


class _Elapsed:
    __slots__ = ("curr", "out", "unit")

    def __init__(self, spec: InfluxQLSpec) -> None:
        self.curr: int | None = None
        self.out: tuple[int, int] | None = None  # emitted again until the next point
        self.unit = int(spec.args[0])

    def aggregate(self, t: int, v: Any) -> None:
        prev = self.curr
        self.curr = t
        if prev is not None:
            delta = t - prev
            q = abs(delta) // self.unit
            self.out = (t, q if delta >= 0 else -q)

    def emit(self) -> tuple[int, Any] | None:
        return self.out


class _MovingAverage:
    __slots__ = ("buf", "n", "pos", "time", "total")

    def __init__(self, spec: InfluxQLSpec) -> None:
        self.n = int(spec.args[0])
        self.buf: list[Any] = []
        self.pos = 0
        self.time = 0
        self.total: Any = None

    def aggregate(self, t: int, v: Any) -> None:
        buf = self.buf
        if self.total is None:
            self.total = 0.0 if type(v) is float else 0
        if len(buf) != self.n:
            buf.append(v)
        else:
            self.total -= buf[self.pos]
            buf[self.pos] = v
        self.total += v
        self.time = t
        self.pos += 1
        if self.pos >= self.n:
            self.pos = 0

    def emit(self) -> tuple[int, Any] | None:
        if len(self.buf) != self.n:
            return None
        return self.time, float(self.total) / float(len(self.buf))


class _CumulativeSum:
    __slots__ = ("time", "total")

    def __init__(self, spec: InfluxQLSpec) -> None:
        self.total: Any = None
        self.time = 0

    def aggregate(self, t: int, v: Any) -> None:
        if self.total is None:
            self.total = 0.0 if type(v) is float else 0
        total = self.total + v
        self.total = total if type(total) is float else _wrap(total)
        self.time = t

    def emit(self) -> tuple[int, Any] | None:
        if self.total is None:
            return None
        return self.time, self.total


def _no_reducer(entries: list[Entry], kind: str, spec: InfluxQLSpec) -> list[Result]:
    raise TypeError(f"{spec.method} is a transformation: it has no reducer")


STEPPERS: dict[str, Callable[[InfluxQLSpec], Stepper]] = {"difference": _Difference, "elapsed": _Elapsed,
                             "movingAverage": _MovingAverage,
                             "cumulativeSum": _CumulativeSum}


class _Transform:
    """One group's transformation state: the reducer of the first point's type."""

    __slots__ = ("kind", "stepper")

    def __init__(self, kind: str, stepper: Stepper) -> None:
        self.kind = kind
        self.stepper = stepper


class _Pending:
    """A stream group's points of one timestamp, waiting for a later one."""

    __slots__ = ("entries", "kind", "name", "time")

    def __init__(self, name: str, t: int) -> None:
        self.name = name
        self.time = t
        self.kind: str | None = None
        self.entries: list[Entry] = []


class InfluxQLNode(Node):
    spec: InfluxQLSpec

    def __init__(self, spec: InfluxQLSpec, log: Logger) -> None:
        super().__init__(spec, log)
        self.method = spec.method
        self.field = spec.field
        self.as_name = spec.as_name
        self.transformation = spec.method in TRANSFORMATIONS
        self.use_point_times = (spec.use_point_times or self.transformation
                                or spec.method.startswith("holtWinters"))
        self.kinds = KINDS[spec.method]
        # transformations have steppers, never reach _emit and so no reducer
        self.reducer = REDUCERS.get(spec.method, _no_reducer)
        self.stream_out = spec.edge_out() is Edge.STREAM
        self.simple_selector = spec.method in SIMPLE_SELECTORS
        self.pending: dict[str, _Pending] = {}
        self.state: dict[str, _Transform | None] = {}
        self.groups: set[str] = set()  # every group seen: Kapacitor's cardinality

    def cardinality(self) -> int:
        return len(self.groups)

    def barrier(self, group: str, t: int) -> None:
        self.groups.add(group)  # a barrier opens its group, as in Kapacitor

    def delete_group(self, group: str) -> None:
        self.pending.pop(group, None)
        self.state.pop(group, None)
        self.groups.discard(group)

    # -- checks shared by every mode ------------------------------------------------------
    def _realize(self, fields: dict[str, Any]) -> str | None:
        """The kind of reducer a first point asks for, or None (an error, logged)."""
        if self.field not in fields:
            self.fail(KeyError(f'failed to realize reduce context from fields: field '
                               f'"{self.field}" missing from point'))
            return None
        kind = _kind(fields[self.field])
        if kind not in self.kinds:
            self.fail(TypeError(f"invalid influxql func {self.method} with field "
                                f"{self.field}: cannot apply {self.method} to "
                                f"{_GO_TYPE.get(kind or '', 'unknown')} field"))
            return None
        return kind

    def _entry_value(self, kind: str, fields: dict[str, Any]) -> Any:
        """The point's value if it has the reducer's type, else None (logged)."""
        value = fields.get(self.field, _MISSING)
        if value is _MISSING:
            self.fail(KeyError(f"field {self.field} missing from point cannot aggregate"))
            return None
        if _kind(value) != kind:
            self.fail(TypeError(f"field {self.field} has wrong type: got "
                                f"{_GO_TYPE.get(_kind(value) or '', 'unknown')} exp "
                                f"{_GO_TYPE[kind]}"))
            return None
        return value

    # -- stream input ---------------------------------------------------------------------
    def point(self, p: Point) -> None:
        self.groups.add(p.group)
        if self.transformation:
            self._transform_point(p)
            return
        pending = self.pending.get(p.group)
        if pending is None or pending.time != p.time:
            if pending is not None and pending.kind is not None:
                name = pending.name
                by_name = bool(p.group) and (p.group == name or
                                             p.group.startswith(name + "\n"))
                self._emit(pending.entries, pending.kind, name, p.group, p.dims,
                           {d: p.tags.get(d, "") for d in p.dims}, by_name, pending.time)
            pending = self.pending[p.group] = _Pending(p.name, p.time)
        if pending.kind is None:
            pending.kind = self._realize(p.fields)
            if pending.kind is None:
                return
        value = self._entry_value(pending.kind, p.fields)
        if value is not None:
            pending.entries.append((p.time, value, p.tags, p.fields))

    def _transform_point(self, p: Point) -> None:
        state = self.state.get(p.group)
        if state is None:
            kind = self._realize(p.fields)
            if kind is None:
                return
            state = self.state[p.group] = _Transform(kind, STEPPERS[self.method](self.spec))
        value = self._entry_value(state.kind, p.fields)
        if value is not None:
            state.stepper.aggregate(p.time, value)
        out = state.stepper.emit()
        if out is not None:
            self.emit_point(Point(p.name, {d: p.tags.get(d, "") for d in p.dims},
                                  {self.as_name: out[1]}, out[0], group=p.group,
                                  dims=p.dims))

    # -- batch input ----------------------------------------------------------------------
    def batch(self, b: Batch) -> None:
        self.groups.add(b.group)
        kind: str | None = None
        if self.transformation:
            points = []
            first = 0  # the first point whose field realizes the reducer
            for bp in b.points:
                kind = self._realize(bp.fields)
                if kind is not None:
                    break
                first += 1
            if kind is not None:
                stepper = STEPPERS[self.method](self.spec)
                for bp in islice(b.points, first, None):
                    value = self._entry_value(kind, bp.fields)
                    if value is not None:
                        stepper.aggregate(bp.time, value)
                    out = stepper.emit()
                    if out is not None:
                        points.append(BatchPoint(out[0], {self.as_name: out[1]}, b.tags))
            self.emit_batch(Batch(b.name, b.group, b.tags, b.dims, b.by_name, b.tmax,
                                  points))
            return
        entries: list[Entry] = []
        first = 0  # the first point whose field realizes the reducer
        for bp in b.points:
            kind = self._realize(bp.fields)
            if kind is not None:
                break
            first += 1
        if kind is not None:
            field, want = self.field, _PY_TYPE[kind]
            append = entries.append
            for bp in islice(b.points, first, None) if first else b.points:
                fields = bp.fields
                value = fields.get(field, _MISSING)
                if type(value) is not want:  # missing or of another type: logged
                    value = self._entry_value(kind, fields)
                    if value is None:
                        continue
                append((bp.time, value, bp.tags, fields))
        if kind is None:
            if self.method not in EMPTY_OK:
                return
            kind = "float"
        self._emit(entries, kind, b.name, b.group, b.dims, b.tags, b.by_name, b.tmax)

    # -- emitting -------------------------------------------------------------------------
    def _emit(self, entries: list[Entry], kind: str, name: str, group: str,
              dims: tuple[str, ...], tags: dict[str, str], by_name: bool, t: int) -> None:
        if entries:
            results = self.reducer(entries, kind, self.spec)
        elif self.method in EMPTY_OK:
            results = [(None, 0.0 if self.method == "sum" and kind == "float" else 0,
                        None, None)]
        else:
            return
        if self.stream_out:
            if len(results) != 1:
                return
            rt, value, rtags, rfields = results[0]
            out_time = rt if (self.use_point_times and rt is not None) else t
            if self.simple_selector and rfields is not None:
                fields = dict(rfields)
                if self.as_name != self.field:
                    fields[self.as_name] = fields.pop(self.field)
                self.emit_point(Point(name, rtags or {}, fields, out_time, group=group,
                                      dims=dims))
            else:
                self.emit_point(Point(name, tags, {self.as_name: value}, out_time,
                                      group=group, dims=dims))
            return
        tmax = t
        points = []
        for rt, value, rtags, _ in results:
            out_time = rt if (self.use_point_times and rt is not None) else t
            if out_time > tmax:
                tmax = out_time
            ptags = {**tags, **rtags} if rtags else tags
            points.append(BatchPoint(out_time, {self.as_name: value}, ptags))
        self.emit_batch(Batch(name, group, tags, dims, by_name, tmax, points))


_MISSING = object()

"""Runtimes of the nodes that compute from each point: eval, derivative, changeDetect,
stateDuration and stateCount."""

from __future__ import annotations

import math
from typing import Any

from kapa_core.engine.node import Node
from kapa_core.logs import Logger
from kapa_core.models.batch import Batch, BatchPoint
from kapa_core.models.point import Point
from kapa_core.pipeline import nodes as specs
from kapa_core.tick.values import Time


class EvalNode(Node):
    """``|eval()`` as Kapacitor runs it: each group has its own copy of the expressions
    (stateful functions count per group); an expression sees the point's fields and
    tags first, then the results of the expressions before it; ``.tags()`` results must
    be strings; ``.keep()`` keeps every field and every result (tag results too), and
    ``.keep('a', ...)`` the listed results or fields; any error drops the point."""

    def __init__(self, spec: specs.EvalSpec, log: Logger) -> None:
        super().__init__(spec, log)
        self.names = list(spec.as_names)
        self.exprs = list(spec.exprs)
        self.tag_names = list(dict.fromkeys(spec.tag_names))
        self.tag_set = frozenset(self.tag_names)
        self.keep = spec.keep_list
        self.refs = [tuple(r for r in sorted(e.references) if r != "time")
                     for e in self.exprs]
        self.group_exprs: dict[str, list[Any]] = {}

    def _exprs(self, group: str) -> list[Any]:
        exprs = self.group_exprs.get(group)
        if exprs is None:
            exprs = self.group_exprs[group] = [e.copy_reset() for e in self.exprs]
        return exprs

    def _apply(self, exprs: list[Any], t: int, fields: dict[str, Any],
               tags: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
        # One scope for all the expressions, filled as Kapacitor fills it: before each
        # expression, the fields and tags it references are (re)read from the point, so
        # they win over an earlier result of the same name, even in the output.
        scope: dict[str, Any] = {}
        for name, expr, refs in zip(self.names, exprs, self.refs, strict=True):
            for ref in refs:
                if ref in fields:
                    if ref in tags:
                        raise KeyError(f'cannot have field and tags with same name "{ref}"')
                    scope[ref] = fields[ref]
                elif ref in tags:
                    scope[ref] = tags[ref]
            value = expr.eval(t, scope, _NO_TAGS)
            if type(value) is Time:
                raise TypeError("expression returned unexpected type time")
            scope[name] = value
        results = {name: scope[name] for name in self.names}
        new_tags = tags
        if self.tag_names:
            new_tags = dict(tags)
            for name in self.tag_names:
                value = results[name]
                if type(value) is not str:
                    raise TypeError("result of a tag expression must be of type string, "
                                    f"got {_go_type(value)}")
                new_tags[name] = value
        keep = self.keep
        if keep is None:
            if self.tag_set:
                out = {k: v for k, v in results.items() if k not in self.tag_set}
            else:
                out = results
        elif keep:
            out = {}
            for name in keep:
                if name in scope:
                    out[name] = scope[name]
                elif name in fields:
                    out[name] = fields[name]
                else:
                    raise KeyError(f'cannot keep field "{name}", field does not exist')
        else:
            out = dict(fields)
            out.update(results)
        return out, new_tags

    def point(self, p: Point) -> None:
        fields, tags = self._apply(self._exprs(p.group), p.time, p.fields, p.tags)
        self.emit_point(Point(p.name, tags, fields, p.time, p.database,
                              p.retention_policy, p.group, p.dims))

    def batch(self, b: Batch) -> None:
        points = []
        exprs = self._exprs(b.group)
        for bp in b.points:
            try:
                fields, tags = self._apply(exprs, bp.time, bp.fields, bp.tags)
            except Exception as exc:
                self.fail(exc)
                continue
            points.append(BatchPoint(bp.time, fields, tags))
        self.emit_batch(Batch(b.name, b.group, b.tags, b.dims, b.by_name, b.tmax, points))

    def fail(self, exc: BaseException) -> None:
        # A quiet eval drops a bad point without reporting it, not even in its error
        # count (Kapacitor's eval skips its error report when quiet; other nodes count).
        if not self.spec.quiet:
            super().fail(exc)

    def barrier(self, group: str, t: int) -> None:
        self._exprs(group)  # a barrier opens its group, as in Kapacitor

    def delete_group(self, group: str) -> None:
        self.group_exprs.pop(group, None)

    def cardinality(self) -> int:
        return len(self.group_exprs)


_NO_TAGS: dict[str, str] = {}


def _go_type(value: Any) -> str:
    t = type(value)
    if t is float:
        return "float64"
    if t is bool:
        return "bool"
    if t is int:
        return "int64"
    if t is str:
        return "string"
    return "time.Duration" if t.__name__ == "Duration" else "time.Time"


class DerivativeNode(Node):
    """The rate of change of a field per ``unit`` between a group's successive points
    (on batches, within each batch). A field that is not a number is an error and the
    point is not kept; an elapsed time of 0 is an error; ``.nonNegative()`` drops a
    negative difference."""

    def __init__(self, spec: specs.DerivativeSpec, log: Logger) -> None:
        super().__init__(spec, log)
        self.field = spec.field
        self.unit = float(int(spec.unit))
        self.non_negative = spec.non_negative
        self.as_name = spec.as_name
        self.previous: dict[str, tuple[int, dict[str, Any]] | None] = {}

    def _derivative(self, prev: tuple[int, dict[str, Any]] | None, t: int,
                    fields: dict[str, Any]) -> tuple[float | None, bool]:
        """(rate or None, whether the point becomes the previous one)."""
        value = fields.get(self.field)
        if type(value) is not float and type(value) is not int:
            self.fail(TypeError(f"cannot perform derivative: field is the wrong type "
                                f"(field={self.field})"))
            return None, False
        if prev is None:
            return None, True
        old = prev[1].get(self.field)
        if type(old) is not float and type(old) is not int:
            return None, True
        elapsed = float(t - prev[0])
        if elapsed == 0:
            self.fail(ValueError("cannot perform derivative: elaspsed time was 0"))
            return None, True
        diff = float(value) - float(old)
        if self.non_negative and diff < 0:
            return None, True
        if self.unit == 0:  # Go: elapsed / 0 is an infinity and the rate a (signed) zero
            per_unit = math.copysign(math.inf, elapsed)
            return diff / per_unit, True
        return diff / (elapsed / self.unit), True

    def point(self, p: Point) -> None:
        rate, store = self._derivative(self.previous.get(p.group), p.time, p.fields)
        if store:
            self.previous[p.group] = (p.time, p.fields)
        elif p.group not in self.previous:
            self.previous[p.group] = None
        if rate is not None:
            self.emit_point(Point(p.name, p.tags, {**p.fields, self.as_name: rate}, p.time,
                                  p.database, p.retention_policy, p.group, p.dims))

    def batch(self, b: Batch) -> None:
        self.previous.setdefault(b.group, None)
        points = []
        prev: tuple[int, dict[str, Any]] | None = None
        for bp in b.points:
            rate, store = self._derivative(prev, bp.time, bp.fields)
            if store:
                prev = (bp.time, bp.fields)
            if rate is not None:
                points.append(BatchPoint(bp.time, {**bp.fields, self.as_name: rate},
                                         bp.tags))
        self.emit_batch(Batch(b.name, b.group, b.tags, b.dims, b.by_name, b.tmax, points))

    def barrier(self, group: str, t: int) -> None:
        self.previous.setdefault(group, None)  # a barrier opens its group

    def cardinality(self) -> int:
        return len(self.previous)


class ChangeDetectNode(Node):
    """Passes a point when one of the fields differs from the last passed point of its
    group (values of different types differ: 1 and 1.0); a missing field is logged and
    ignored. On batches the comparison starts afresh with each batch."""

    def __init__(self, spec: specs.ChangeDetectSpec, log: Logger) -> None:
        super().__init__(spec, log)
        self.fields = spec.fields
        self.last: dict[str, dict[str, Any] | None] = {}  # a key per group seen

    def _changed(self, previous: dict[str, Any] | None, fields: dict[str, Any]) -> bool:
        for name in self.fields:
            if name not in fields:
                self.fail(KeyError(f"Invalid field in change detect: expected field {name} "
                                   "not found"))
                continue
            value = fields[name]
            if previous is None or name not in previous:
                return True
            old = previous[name]
            if type(old) is not type(value) or old != value:
                return True
        return False

    def point(self, p: Point) -> None:
        last = self.last
        previous = last.get(p.group)
        if previous is None and p.group not in last:
            last[p.group] = None
        if self._changed(previous, p.fields):
            last[p.group] = p.fields
            self.emit_point(p)

    def batch(self, b: Batch) -> None:
        self.last.setdefault(b.group, None)
        previous: dict[str, Any] | None = None
        points = []
        for bp in b.points:
            if self._changed(previous, bp.fields):
                previous = bp.fields
                points.append(bp)
        self.emit_batch(Batch(b.name, b.group, b.tags, b.dims, b.by_name, b.tmax, points))

    def barrier(self, group: str, t: int) -> None:
        self.last.setdefault(group, None)  # a barrier opens its group

    def cardinality(self) -> int:
        return len(self.last)


class _StateNode(Node):
    """stateDuration and stateCount: each group has its own copy of the lambda and its
    own tracker; on batches the tracker starts afresh with each batch. A point whose
    lambda fails is dropped."""

    def __init__(self, spec: specs.StateDurationSpec | specs.StateCountSpec,
                 log: Logger) -> None:
        super().__init__(spec, log)
        self.expr = spec.expr
        self.as_name = spec.as_name
        self.group_exprs: dict[str, Any] = {}
        self.trackers: dict[str, Any] = {}

    def _expr(self, group: str) -> Any:
        expr = self.group_exprs.get(group)
        if expr is None:
            expr = self.group_exprs[group] = self.expr.copy_reset()
        return expr

    def track(self, group: str, t: int, in_state: bool) -> Any:
        raise NotImplementedError

    def reset(self, group: str) -> None:
        self.trackers.pop(group, None)

    def point(self, p: Point) -> None:
        in_state = self._expr(p.group).eval_bool(p.time, p.fields, p.tags)
        value = self.track(p.group, p.time, in_state)
        self.emit_point(Point(p.name, p.tags, {**p.fields, self.as_name: value}, p.time,
                              p.database, p.retention_policy, p.group, p.dims))

    def batch(self, b: Batch) -> None:
        self.reset(b.group)
        expr = self._expr(b.group)
        points = []
        for bp in b.points:
            try:
                in_state = expr.eval_bool(bp.time, bp.fields, bp.tags)
            except Exception as exc:
                self.fail(exc)
                continue
            value = self.track(b.group, bp.time, in_state)
            points.append(BatchPoint(bp.time, {**bp.fields, self.as_name: value}, bp.tags))
        self.emit_batch(Batch(b.name, b.group, b.tags, b.dims, b.by_name, b.tmax, points))

    def barrier(self, group: str, t: int) -> None:
        self._expr(group)  # a barrier opens its group, as in Kapacitor

    def delete_group(self, group: str) -> None:
        self.group_exprs.pop(group, None)
        self.trackers.pop(group, None)

    def cardinality(self) -> int:
        return len(self.group_exprs)


class StateDurationNode(_StateNode):
    def __init__(self, spec: specs.StateDurationSpec, log: Logger) -> None:
        super().__init__(spec, log)
        self.unit = float(int(spec.unit))

    def track(self, group: str, t: int, in_state: bool) -> Any:
        if not in_state:
            self.trackers.pop(group, None)
            return -1.0
        start = self.trackers.get(group)
        if start is None:
            start = self.trackers[group] = t
        return float(t - start) / self.unit


class StateCountNode(_StateNode):
    def track(self, group: str, t: int, in_state: bool) -> Any:
        if not in_state:
            self.trackers.pop(group, None)
            return -1
        count = self.trackers.get(group, 0) + 1
        self.trackers[group] = count
        return count

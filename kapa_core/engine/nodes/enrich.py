"""Runtimes of ``|flatten()``, ``|sideload()`` and ``|combine()``."""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path
from typing import Any, ClassVar

import yaml

from kapa_core.engine.node import Node
from kapa_core.models.batch import group_id
from kapa_core.models.point import Point
from kapa_core.pipeline.nodes import FlattenSpec, SideloadSpec


class FlattenNode(Node):
    def __init__(self, spec: FlattenSpec, log: Any) -> None:
        super().__init__(spec, log)
        self.on = spec.on_dims
        self.delimiter = spec.delimiter
        self.tolerance = int(spec.tolerance)
        self.drop = spec.drop_original
        self.pending: dict[str, tuple[int, list[Point]]] = {}

    def cardinality(self) -> int:
        return len(self.pending)

    def point(self, p: Point) -> None:
        t = p.time
        if self.tolerance:
            t = (t + self.tolerance // 2) // self.tolerance * self.tolerance
        dims = tuple(d for d in p.dims if d not in self.on)
        key = group_id(p.name, p.tags, dims, False)
        pending = self.pending.get(key)
        if pending is not None and pending[0] != t:
            del self.pending[key]
            self._flush(pending[0], pending[1], dims)
            pending = None
        if pending is None:
            self.pending[key] = (t, [p])
        else:
            pending[1].append(p)

    def _flush(self, t: int, points: list[Point], dims: tuple[str, ...]) -> None:
        fields: dict[str, Any] = {}
        for p in points:
            prefix = self.delimiter.join(p.tags.get(d, "") for d in self.on)
            for name, value in p.fields.items():
                key = prefix if self.drop else f"{prefix}{self.delimiter}{name}"
                fields[key] = value
        first = points[0]
        tags = {d: first.tags.get(d, "") for d in dims}
        self.emit_point(Point(first.name, tags, fields, t, first.database,
                              first.retention_policy, group_id(first.name, tags, dims, False),
                              dims))


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class SideloadNode(Node):
    """Values come from the first file in ``order`` (tags substituted) that has the key."""

    registry: ClassVar[list[SideloadNode]] = []  # for POST /kapacitor/v1/sideload/reload

    def __init__(self, spec: SideloadSpec, log: Any) -> None:
        super().__init__(spec, log)
        self.root = Path(spec.source.removeprefix("file://"))
        self.order = spec.order_paths
        self.fields = spec.fields
        self.tags = spec.tags
        self.cache: dict[str, dict[str, Any] | None] = {}
        SideloadNode.registry.append(self)

    def reload(self) -> None:
        self.cache.clear()

    def stop(self) -> None:
        if self in SideloadNode.registry:
            SideloadNode.registry.remove(self)

    def _file(self, relative: str) -> dict[str, Any] | None:
        if relative in self.cache:
            return self.cache[relative]
        path = (self.root / relative).resolve()
        data: dict[str, Any] | None = None
        if path.is_file() and self.root.resolve() in path.parents:
            text = path.read_text(encoding="utf-8")
            loaded = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
            data = loaded if isinstance(loaded, dict) else None
        self.cache[relative] = data
        return data

    def _lookup(self, tags: dict[str, str], key: str) -> Any:
        for template in self.order:
            relative = _PLACEHOLDER.sub(lambda m: tags.get(m.group(1), ""), template)
            data = self._file(relative)
            if data is not None and key in data:
                return data[key]
        return None

    def point(self, p: Point) -> None:
        fields = dict(p.fields)
        tags = dict(p.tags)
        for name, default in self.fields:
            value = self._lookup(p.tags, name)
            if value is None or type(value) is not type(default):
                value = float(value) if type(default) is float and type(value) is int \
                    else default
            fields[name] = value
        for name, default in self.tags:
            value = self._lookup(p.tags, name)
            tags[name] = str(value) if value is not None else default
        self.emit_point(Point(p.name, tags, fields, p.time, p.database, p.retention_policy,
                              p.group, p.dims))


class CombineNode(Node):
    """Kapacitor's combine: each k-combination of a time's points (in index order) is
    matched greedily against the expressions; a full match emits a merged point."""

    def __init__(self, spec: Any, log: Any) -> None:
        super().__init__(spec, log)
        self.exprs = spec.exprs
        self.names = spec.names
        self.delimiter = spec.delimiter
        self.tolerance = int(spec.tolerance)
        self.max = spec.max_combinations
        self.buffers: dict[str, tuple[int, list[Point]]] = {}

    def cardinality(self) -> int:
        return len(self.buffers)

    def point(self, p: Point) -> None:
        t = p.time
        if self.tolerance:
            t = (t + self.tolerance // 2) // self.tolerance * self.tolerance
        buffer = self.buffers.get(p.group)
        if buffer is not None and buffer[0] == t:
            buffer[1].append(p)
            return
        self.buffers[p.group] = (t, [p])
        if buffer is not None:
            self._combine(buffer[0], buffer[1])

    def _combine(self, t: int, points: list[Point]) -> None:
        k = len(self.exprs)
        n = len(points)
        if n < k:
            return
        count = math.comb(n, k)
        if count > self.max:
            raise ValueError(f"refusing to perform combination as total combinations "
                             f"{count} exceeds max combinations {self.max}")
        matches = []
        for expr in self.exprs:
            row = []
            for p in points:
                try:
                    row.append(bool(expr.eval_bool(p.time, p.fields, p.tags)))
                except Exception as exc:
                    self.fail(exc)
                    row.append(False)
            matches.append(row)
        first = points[0]
        dims = set(first.dims)
        for indices in itertools.combinations(range(n), k):
            remaining = list(indices)
            chosen = []
            for s in range(k):
                hit = next((i for i in remaining if matches[s][i]), None)
                if hit is None:
                    break
                remaining.remove(hit)
                chosen.append(points[hit])
            else:
                self.emit_point(self._merge(chosen, dims, t, first))

    def _merge(self, chosen: list[Point], dims: set[str], t: int, first: Point) -> Point:
        fields: dict[str, Any] = {}
        tags: dict[str, str] = {}
        for name, p in zip(self.names, chosen, strict=True):
            prefix = name + self.delimiter
            for field, value in p.fields.items():
                fields[prefix + field] = value
            for tag, value in p.tags.items():
                tags[tag if tag in dims else prefix + tag] = value
        return Point(first.name, tags, fields, t, first.database, first.retention_policy,
                     first.group, first.dims)

"""Runtimes of ``|flatten()``, ``|sideload()`` and ``|combine()``, as Kapacitor 1.5.7 runs
them."""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from kapa_core import gotemplate
from kapa_core.engine.node import Node
from kapa_core.logs import Logger
from kapa_core.models import govalues
from kapa_core.models.batch import Batch, BatchPoint, group_id
from kapa_core.models.gojson import plain_float
from kapa_core.models.point import Point
from kapa_core.pipeline.nodes import CombineSpec, FlattenSpec, SideloadSpec

#: Go's zero time: before any time a point can have.
ZERO = -(2**63)


def _round(t: int, tolerance: int) -> int:
    """Go's ``Time.Round``: to the nearest multiple, halves up; unchanged for d <= 0."""
    if tolerance <= 0:
        return t
    return (t + tolerance // 2) // tolerance * tolerance


def _by_name(p: Point) -> bool:
    return bool(p.group) and (p.group == p.name or p.group.startswith(p.name + "\n"))


# -- flatten ---------------------------------------------------------------------------------


class _FlattenBuffer:
    __slots__ = ("by_name", "dims", "name", "points", "tags", "time")

    def __init__(self, time: int, name: str, tags: dict[str, str], dims: tuple[str, ...],
                 by_name: bool) -> None:
        self.time = time
        self.name = name
        self.tags = tags  # the group's tags
        self.dims = dims
        self.by_name = by_name
        self.points: list[Any] = []


class FlattenNode(Node):
    """Merges a group's points of one (rounded) time into one point; a field is named by
    the values of the ``on`` tags, the delimiter and its own name. The merged point is
    emitted when the group's next time arrives (for batches: also at the batch's end),
    with the group's first name and the group's tags.

    As Kapacitor, a point missing an ``on`` tag is left out, and the tag values written
    before the missing one stay at the start of the next point's names.
    """

    def __init__(self, spec: FlattenSpec, log: Logger) -> None:
        super().__init__(spec, log)
        self.on = tuple(spec.on_dims)
        self.delimiter = spec.delimiter
        self.tolerance = int(spec.tolerance)
        self.drop = spec.drop_original
        self.buffers: dict[str, _FlattenBuffer] = {}
        self._leftover = ""  # Kapacitor's reused prefix buffer, not reset after a skip

    def cardinality(self) -> int:
        return len(self.buffers)

    def point(self, p: Point) -> None:
        t = _round(p.time, self.tolerance)
        buf = self.buffers.get(p.group)
        if buf is None:
            tags = p.tags
            buf = self.buffers[p.group] = _FlattenBuffer(
                t, p.name, {d: tags.get(d, "") for d in p.dims}, p.dims, _by_name(p))
        ended = buf.time
        fields = self._add(buf, t, p)
        if fields:
            self.emit_point(Point(buf.name, dict(buf.tags), fields, ended, "", "", p.group,
                                  buf.dims))

    def batch(self, b: Batch) -> None:
        buf = self.buffers.get(b.group)
        if buf is None:
            buf = self.buffers[b.group] = _FlattenBuffer(ZERO, b.name, b.tags, b.dims,
                                                         b.by_name)
        buf.name = b.name
        buf.time = ZERO
        points: list[BatchPoint] = []
        for bp in b.points:
            t = _round(bp.time, self.tolerance)
            ended = buf.time
            fields = self._add(buf, t, bp)
            if fields:
                points.append(BatchPoint(ended, fields, dict(buf.tags)))
        if buf.points:
            fields = self._flatten(buf.points)
            points.append(BatchPoint(buf.time, fields, dict(buf.tags)))
            buf.points = []
        self.emit_batch(Batch(b.name, b.group, b.tags, b.dims, b.by_name, b.tmax, points))

    def _add(self, buf: _FlattenBuffer, t: int, p: Any) -> dict[str, Any] | None:
        """Buffer ``p``; the fields flattened from the buffer's previous time if ``t``
        ends it."""
        fields = None
        if t != buf.time:
            if buf.points:
                fields = self._flatten(buf.points)
                buf.points = []
            buf.time = t
        buf.points.append(p)
        return fields

    def _flatten(self, points: list[Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        on = self.on
        delimiter = self.delimiter
        prefix = self._leftover
        for p in points:
            tags = p.tags
            skipped = False
            for i, tag in enumerate(on):
                value = tags.get(tag)
                if value is None:  # an error of the node, as in Kapacitor
                    self.errors += 1
                    self.log.error("point missing tag for flatten operation",
                                   err=f"tag {tag} is missing from point")
                    skipped = True
                    break
                if i > 0:
                    prefix += delimiter
                prefix += value
            if skipped:
                continue  # what was written of the prefix stays
            if self.drop:
                for value in p.fields.values():
                    fields[prefix] = value
            else:
                sep = prefix + delimiter if prefix else ""
                for name, value in p.fields.items():
                    fields[sep + name] = value
            prefix = ""
        self._leftover = prefix
        return fields


# -- sideload --------------------------------------------------------------------------------


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _from_file(value: Any) -> Any:
    """A value as Go reads it from JSON (or YAML through JSON): numbers are floats."""
    if type(value) is int:
        return float(value)
    return value


_GO_INT = re.compile(r"[+-]?[0-9]+")
_GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
             "0": False, "f": False, "F": False, "FALSE": False, "false": False,
             "False": False}
_NO_CONVERSION = object()


def _convert(src: Any, default: Any) -> Any:
    """Kapacitor's conversion of a loaded value to the type of the default, or
    ``_NO_CONVERSION``."""
    kind = type(default)
    st = type(src)
    if kind is int:
        if st is int:
            return src
        if st is float:
            if math.isfinite(src) and float(int(src)) == src:
                return int(src)
        elif st is str and _GO_INT.fullmatch(src):
            value = int(src)
            if -(2**63) <= value < 2**63:
                return value
    elif kind is float:
        if st is int:
            return float(src)
        if st is float:
            return src
        if st is str and "_" not in src and src.strip() == src:
            try:
                return float(src)
            except ValueError:
                pass
    elif kind is bool:
        if st is bool:
            return src
        if st is str and src in _GO_BOOLS:
            return _GO_BOOLS[src]
    elif kind is str:
        if st is bool:
            return "true" if src else "false"
        if st is int:
            return str(src)
        if st is float:
            return plain_float(src)
        if st is str:
            return src
    return _NO_CONVERSION


class SideloadSources:
    """The open sideload sources of one daemon, by directory (Kapacitor's sideload
    service). As in Kapacitor, one source is shared by every task of the daemon reading
    the directory: it is read when the first of them starts and again on ``POST
    /kapacitor/v1/sideload/reload`` (not when another task starts), and forgotten when
    the last one stops. Each task master holds one; nodes get it from their context."""

    def __init__(self) -> None:
        self.open: dict[str, SideloadSource] = {}

    def acquire(self, url: str) -> SideloadSource:
        """The shared source of ``url``'s directory, read now if none is open."""
        directory = SideloadSource.directory(url)
        source = self.open.get(directory)
        if source is None:
            source = SideloadSource(directory, self)
            source.update()  # a failure leaves nothing open
            self.open[directory] = source
        source.references += 1
        return source

    def release(self, source: SideloadSource) -> None:
        source.references -= 1
        if source.references <= 0 and self.open.get(source.dir) is source:
            del self.open[source.dir]

    def reload_all(self) -> None:
        """Read every open source again; the first failure stops and is raised (as
        Kapacitor's reload: ``failed to update source "<dir>": ...``)."""
        for directory, source in list(self.open.items()):
            try:
                source.update()
            except ValueError as exc:
                raise ValueError(f"failed to update source {_go_quote(directory)}: "
                                 f"{exc}") from None


class SideloadSource:
    """The files of one directory, keyed by their path relative to it (see
    :class:`SideloadSources`, which opens and shares them)."""

    def __init__(self, directory: str, owner: SideloadSources) -> None:
        self.dir = directory
        self.cache: dict[str, dict[str, Any]] = {}
        self.references = 0
        self.owner = owner

    @staticmethod
    def directory(url: str) -> str:
        """The directory of a ``file://`` source URL; ValueError in Kapacitor's words."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme != "file":
            raise ValueError(f"unsupported source scheme {_go_quote(scheme)}, must be "
                             "'file'")
        # As Go's url.Parse: after "file:", text not starting with "/" is opaque (no path).
        path = unquote(parts.path) if url[len(scheme) + 1:].startswith("/") else ""
        if not path.startswith("/"):
            raise ValueError(f"sideload source path must be absolute {_go_quote(path)}")
        return os.path.normpath(path)

    def release(self) -> None:
        """One task reading this source stopped."""
        self.owner.release(self)

    def update(self) -> None:
        # As Kapacitor: the cache is emptied, then filled file by file; a failure keeps
        # what was read before it.
        self.cache = {}
        try:
            self._walk(self.dir, root=True)
        except ValueError as exc:
            raise ValueError(f"failed to update sideload cache for source "
                             f"{_go_quote(self.dir)}: {exc}") from None

    def _walk(self, path: str, root: bool = False) -> None:
        """Go's filepath.Walk: entries in lexical order, directories entered where they
        sort, links not followed; every file read, hidden ones refused."""
        try:
            info = os.lstat(path)
        except OSError as exc:
            raise ValueError(f"lstat {path}: {_os_error(exc)}") from None
        if not stat.S_ISDIR(info.st_mode):
            values = _read_values(path)
            rel = os.path.relpath(path, self.dir)
            if root or not rel or rel.startswith("."):
                raise ValueError("invalid relative path")
            self.cache[rel] = values
            return
        try:
            names = sorted(os.listdir(path))
        except OSError as exc:
            raise ValueError(f"open {path}: {_os_error(exc)}") from None
        for name in names:
            self._walk(os.path.join(path, name))

    def lookup(self, order: list[str], key: str) -> Any:
        key = os.path.normpath(key) if key else "."
        for path in order:
            values = self.cache.get(path)
            if values is not None and key in values:
                return values[key]
        return None


def _os_error(exc: OSError) -> str:
    return {2: "no such file or directory", 13: "permission denied",
            20: "not a directory"}.get(exc.errno or 0, exc.strerror or str(exc))


def _read_values(path: str) -> dict[str, Any]:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"failed to open values file {_go_quote(path)}: "
                         f"{_os_error(exc)}") from None
    ext = os.path.splitext(path)[1]
    if ext in (".yaml", ".yml"):
        try:
            loaded = govalues.yaml_object(data)
        except ValueError as exc:
            raise ValueError(f"failed to unmarshal yaml values {_go_quote(path)}: "
                             f"{exc}") from None
    elif ext == ".json":
        try:
            loaded = govalues.json_object(data)
        except ValueError as exc:
            raise ValueError(f"failed to unmarshal json values {_go_quote(path)}: "
                             f"{exc}") from None
    else:
        return {}
    return {str(k): _from_file(v) for k, v in loaded.items()}


class SideloadNode(Node):
    """Adds fields and tags looked up in the files the ``order`` templates name (Go
    templates over the point's tags), the first file having the key winning; a missing
    key, or a value that does not convert to the default's type, gives the default."""

    def __init__(self, spec: SideloadSpec, log: Logger, sources: SideloadSources) -> None:
        super().__init__(spec, log)
        from kapa_core.engine.tasks import StartRefused

        # As Kapacitor: the source first (a template error after it leaves it open).
        try:
            self.source: SideloadSource | None = sources.acquire(spec.source)
            self.order = [gotemplate.parse(o, "order") for o in spec.order_paths]
        except (ValueError, gotemplate.TemplateError) as exc:
            raise StartRefused(str(exc)) from None  # Kapacitor's words alone
        self.order_raw = list(spec.order_paths)
        # Later .field()/.tag() calls for the same name replace earlier ones (a Go map).
        self.fields = dict(spec.fields)
        self.tags = dict(spec.tags)

    def stop(self) -> None:
        if self.source is not None:
            self.source.release()
            self.source = None

    def _paths(self, tags: dict[str, str]) -> list[str] | None:
        paths = []
        data = gotemplate.StringMap(tags)  # one copy of the tags for all the templates
        for template, raw in zip(self.order, self.order_raw, strict=True):
            try:
                paths.append(template.execute(data))
            except gotemplate.TemplateError as exc:  # an error of the node, as in Kapacitor
                self.errors += 1
                self.log.error("failed to evaluate order template", err=str(exc), order=raw)
                return None
        return paths

    def _values(self, tags: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]] | None:
        """The fields and tags to set for a point with ``tags``, or None to leave it."""
        order = self._paths(tags)
        if order is None:
            return None
        return self._lookup(order, self.fields), self._lookup(order, self.tags)

    def _lookup(self, order: list[str], defaults: dict[str, Any]) -> dict[str, Any]:
        """Each key of ``defaults`` looked up along ``order``, converted to its default's
        type; the default when it is missing or does not convert."""
        out: dict[str, Any] = {}
        for key, default in defaults.items():
            value = self.source.lookup(order, key) if self.source is not None else None
            if value is None:
                out[key] = default
                continue
            converted = _convert(value, default)
            if converted is _NO_CONVERSION:  # an error of the node, as in Kapacitor
                self.errors += 1
                self.log.error("failed to load key", key=key)
                converted = default
            out[key] = converted
        return out

    def point(self, p: Point) -> None:
        values = self._values(p.tags)
        if values is None:
            self.emit_point(p)
            return
        fields, tags = values
        new_fields = {**p.fields, **fields} if fields else p.fields
        group = p.group
        if tags:
            new_tags = {**p.tags, **tags}
            if any(d in tags for d in p.dims):
                group = group_id(p.name, new_tags, p.dims, _by_name(p))
        else:
            new_tags = p.tags
        self.emit_point(Point(p.name, new_tags, new_fields, p.time, p.database,
                              p.retention_policy, group, p.dims))

    def batch(self, b: Batch) -> None:
        points = []
        for bp in b.points:
            values = self._values(bp.tags)
            if values is None:
                points.append(bp)
                continue
            fields, tags = values
            points.append(BatchPoint(bp.time, {**bp.fields, **fields} if fields
                                     else bp.fields,
                                     {**bp.tags, **tags} if tags else bp.tags))
        self.emit_batch(Batch(b.name, b.group, b.tags, b.dims, b.by_name, b.tmax, points))


# -- combine ---------------------------------------------------------------------------------


class _CombineBuffer:
    __slots__ = ("by_name", "dims", "name", "points", "time")

    def __init__(self, time: int, name: str, dims: tuple[str, ...], by_name: bool) -> None:
        self.time = time
        self.name = name
        self.dims = dims
        self.by_name = by_name
        self.points: list[Any] = []


class CombineNode(Node):
    """Kapacitor's combine: each k-combination (in index order) of a group's points of
    one (rounded) time is matched greedily against the expressions; a full match emits a
    merged point. A time is combined when the group's next time arrives, or at the end
    of a batch. Tags that are not group dimensions are prefixed like fields.

    Kapacitor 1.5.7 crashes when a stream group's first point has a time the tolerance
    moves; kapa-core buffers that point as any other.
    """

    def __init__(self, spec: CombineSpec, log: Logger) -> None:
        super().__init__(spec, log)
        self.exprs = spec.exprs
        self.names = spec.names
        self.delimiter = spec.delimiter
        self.tolerance = int(spec.tolerance)
        self.max = spec.max_combinations
        self.buffers: dict[str, _CombineBuffer] = {}
        self._prefixes = [name + spec.delimiter for name in spec.names]

    def cardinality(self) -> int:
        return len(self.buffers)

    def point(self, p: Point) -> None:
        buf = self.buffers.get(p.group)
        if buf is None:
            buf = self.buffers[p.group] = _CombineBuffer(p.time, p.name, p.dims, _by_name(p))
        t = _round(p.time, self.tolerance)
        if t != p.time:
            p = Point(p.name, p.tags, p.fields, t, p.database, p.retention_policy, p.group,
                      p.dims)
        if t == buf.time or not buf.points:
            buf.time = t
            buf.points.append(p)
            return
        points = buf.points
        buf.points = [p]
        combine_time = buf.time
        buf.time = t
        self._combine(buf, points, combine_time)

    def batch(self, b: Batch) -> None:
        buf = self.buffers.get(b.group)
        if buf is None:
            buf = self.buffers[b.group] = _CombineBuffer(ZERO, b.name, b.dims, b.by_name)
        buf.name = b.name
        buf.time = ZERO
        points: list[BatchPoint] = []
        for bp in b.points:
            t = _round(bp.time, self.tolerance)
            if t != bp.time:
                bp = BatchPoint(t, bp.fields, bp.tags)
            if t != buf.time:
                if points:
                    self._combine(buf, points, buf.time)
                points = []
                buf.time = t
            points.append(bp)
        if points:
            self._combine(buf, points, buf.time)

    def _combine(self, buf: _CombineBuffer, points: list[Any], t: int) -> None:
        k = len(self.exprs)
        n = len(points)
        # Kapacitor evaluates every expression on every point first (counting the
        # errors), even when there are too few points to combine.
        matches = []
        for expr in self.exprs:
            row = []
            for p in points:
                try:
                    row.append(bool(expr.eval_bool(p.time, p.fields, p.tags)))
                except Exception as exc:  # an error of the node, as in Kapacitor
                    self.errors += 1
                    if not self.spec.quiet:
                        self.log.error("error evaluating lambda expression", err=str(exc))
                    row.append(False)
            matches.append(row)
        if n < k:
            return
        count = math.comb(n, k)
        if count > self.max:
            raise self.stop_task(f"refusing to perform combination as total "
                                 f"combinations {count} exceeds max combinations "
                                 f"{self.max}")  # as in Kapacitor, the task stops
        dims = set(buf.dims)
        for indices in itertools.combinations(range(n), k):  # Kapacitor's order
            remaining = list(indices)
            chosen = []
            for s in range(k):
                row = matches[s]
                hit = next((i for i in remaining if row[i]), None)
                if hit is None:
                    break
                remaining.remove(hit)
                chosen.append(points[hit])
            else:
                self.emit_point(self._merge(buf, chosen, dims))

    def _merge(self, buf: _CombineBuffer, chosen: list[Any], dims: set[str]) -> Point:
        fields: dict[str, Any] = {}
        tags: dict[str, str] = {}
        for prefix, p in zip(self._prefixes, chosen, strict=True):
            for field, value in p.fields.items():
                fields[prefix + field] = value
            for tag, value in p.tags.items():
                tags[tag if tag in dims else prefix + tag] = value
        t = _round(chosen[0].time, self.tolerance)
        return Point(buf.name, tags, fields, t, "", "",
                     group_id(buf.name, tags, buf.dims, buf.by_name), buf.dims)

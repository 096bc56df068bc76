"""Graphite plaintext lines into points, with InfluxDB's graphite templates.

A line is ``<path> <value> [<timestamp>]``. The path (``servers.web01.cpu.idle``) is
split on ``.`` and mapped by a template: each part of the template names what the
path's part at the same position becomes.

* ``measurement``: part of the measurement name (several are joined with ``separator``);
* ``measurement*``: this part and all the following ones are the measurement;
* ``field``: the field name (default ``value``); ``field*``: this part and the rest;
* any other word: a tag of that name (several parts of the same tag are joined with
  ``separator``); an empty word skips the part.

A template line in the config is ``[filter] <template> [tag1=v1,tag2=v2]``. The filter
(``servers.*``, ``*.app``) picks which paths the template maps: the filters form a tree
searched part by part, an exact part before ``*``, so the most specific filter wins. A
template without a filter is the default (``measurement*`` when none is given). The
template's tags and then the listener's ``tags`` are added when the line did not set
them. Values and timestamps are read as InfluxDB does: a timestamp is seconds (a
fraction allowed), ``-1`` or no timestamp means now, and it must lie between 1901-12-13
and 2038-01-19.

The rules, messages and quirks are those of the graphite service InfluxDB 1.x ships in
Kapacitor 1.5.7 (``services/graphite/parser.go`` and ``config.go``).
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .netinput import go_float

DEFAULT_SEPARATOR = "."
#: Timestamps outside [MIN_TIME, MAX_TIME] (ns) are refused: 1901-12-13 and 2038-01-19.
MIN_TIME = -2_147_558_400 * 1_000_000_000
MAX_TIME = 2_147_472_000 * 1_000_000_000
Fields = dict[str, float | int | str | bool]


class GraphiteError(ValueError):
    """A line that cannot be made into a point."""


class UnsupportedValue(GraphiteError):
    """A NaN or infinite value (InfluxDB drops NaN silently and counts it)."""

    def __init__(self, field: str, value: float) -> None:
        shown = "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
        super().__init__(f'field "{field}" value: "{shown}" is unsupported')
        self.value = value


# -- configuration checks (InfluxDB's Config.Validate) -------------------------------

def split_template(line: str) -> tuple[str, str, str]:
    """(filter, template, tags) of a template line, as the parser reads it."""
    parts = line.split()
    template, filter_, tags = line, "", ""
    if len(parts) >= 2:
        if "=" in parts[1]:
            template = parts[0]
        else:
            filter_, template = parts[0], parts[1]
    if parts and "=" in parts[-1]:
        tags = parts[-1]
    return filter_, template, tags


def validate(templates: Sequence[str], tags: Sequence[str]) -> None:
    """Raise ValueError with InfluxDB's words for a template or tag it refuses."""
    filters: set[str] = set()
    for i, line in enumerate(templates):
        parts = line.split()
        if not parts:
            raise ValueError(f"missing template at position: {i}")
        if len(parts) > 3:
            raise ValueError(f"invalid template format: '{line}'")
        template, filter_, tag_text = line, "", ""
        if len(parts) >= 2:
            if "=" in parts[1]:
                template, tag_text = parts[0], parts[1]
            else:
                filter_, template = parts[0], parts[1]
        if len(parts) == 3:
            tag_text = parts[2]
        if not any(p in ("measurement", "measurement*") for p in template.split(".")):
            raise ValueError(f"no measurement in template `{template}`")
        if filter_ in filters:
            raise ValueError(f"duplicate filter '{filter_}' found at position: {i}")
        filters.add(filter_)
        if filter_:
            for p in filter_.split("."):
                if not p:
                    raise ValueError(f"filter contains blank section: {filter_}")
                if "*" in p and p != "*":
                    raise ValueError(f"invalid filter wildcard section: {filter_}")
        if tag_text:
            for tag in tag_text.split(","):
                _validate_tag(tag)
    for tag in tags:
        _validate_tag(tag)


def _validate_tag(key_value: str) -> None:
    parts = key_value.split("=")
    if len(parts) != 2:
        raise ValueError(f"invalid template tags: '{key_value}'")
    if not parts[0] or not parts[1]:
        raise ValueError(f"invalid template tags: {key_value}'")  # sic, as InfluxDB


def tag_pairs(items: Iterable[str]) -> dict[str, str]:
    """``["k=v", ...]`` as a dict (validated beforehand); later keys win."""
    out: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = value.split("=")[0]
    return out


# -- templates -----------------------------------------------------------------------

class Template:
    """One template: what each part of a path becomes."""

    __slots__ = ("default_tags", "parts", "separator")

    def __init__(self, pattern: str, default_tags: Mapping[str, str] | None = None,
                 separator: str = DEFAULT_SEPARATOR) -> None:
        self.parts = pattern.split(".")
        if not any(p.startswith("measurement") for p in self.parts):
            raise ValueError(f'no measurement specified for template. "{pattern}"')
        self.default_tags = dict(sorted((default_tags or {}).items()))
        self.separator = separator

    def apply(self, path: str) -> tuple[str, dict[str, str], str]:
        """(measurement, tags, field) of ``path``; the measurement is empty when the
        template gives none (the caller then uses the whole path)."""
        parts = path.split(".")
        if "measurement*" in self.parts and "field*" in self.parts:
            raise GraphiteError("either 'field*' or 'measurement*' can be used in each "
                                "template (but not both together): "
                                f'"{self.separator.join(self.parts)}"')
        measurement: list[str] = []
        tags: dict[str, list[str]] = {k: [v] for k, v in self.default_tags.items()}
        field = ""
        for i, name in enumerate(self.parts):
            if i >= len(parts):
                break
            if name == "measurement":
                measurement.append(parts[i])
            elif name == "field":
                if field:
                    raise GraphiteError(f"'field' can only be used once in each template: "
                                        f'"{path}"')
                field = parts[i]
            elif name == "field*":
                field = self.separator.join(parts[i:])
                break
            elif name == "measurement*":
                measurement.extend(parts[i:])
                break
            elif name:
                tags.setdefault(name, []).append(parts[i])
        sep = self.separator
        return sep.join(measurement), {k: sep.join(v) for k, v in tags.items()}, field


@dataclass
class _Node:
    value: str = ""
    template: Template | None = None
    children: list[_Node] | None = None

    def insert(self, values: list[str], template: Template) -> None:
        if not values:
            self.template = template
            return
        children = self.children if self.children is not None else []
        self.children = children
        for child in children:
            if child.value == values[0]:
                child.insert(values[1:], template)
                return
        node = _Node(values[0])
        children.append(node)
        # exact parts in order, "*" always last
        children.sort(key=lambda n: (n.value == "*", n.value))
        if values[0] == "*":
            node.template = self.template  # a wildcard inherits its parent's template
        node.insert(values[1:], template)

    def search(self, parts: list[str], start: int = 0) -> Template | None:
        children = self.children
        if start >= len(parts) or not children:
            return self.template
        wildcard = children[-1] if children[-1].value == "*" else None
        length = len(children) - (1 if wildcard else 0)
        i = bisect.bisect_left(children, parts[start], 0, length, key=lambda n: n.value)
        if i < len(children) and children[i].value == parts[start]:
            return children[i].search(parts, start + 1)
        if wildcard is not None:
            return wildcard.search(parts, start + 1)
        return self.template


class Matcher:
    """Picks the template for a path: the filter tree, else the default template."""

    def __init__(self, default: Template) -> None:
        self.root = _Node()
        self.default = default

    def add(self, filter_: str, template: Template) -> None:
        if not filter_:
            self.default = template
        else:
            self.root.insert(filter_.split("."), template)

    def match(self, path: str) -> Template:
        return self.root.search(path.split(".")) or self.default


class GraphiteParser:
    """Lines into (measurement, tags, fields, time) with the configured templates."""

    def __init__(self, templates: Sequence[str] = (), *,
                 separator: str = DEFAULT_SEPARATOR,
                 tags: Mapping[str, str] | None = None) -> None:
        self.matcher = Matcher(Template("measurement*", None, DEFAULT_SEPARATOR))
        for line in templates:
            if not line.split():
                continue
            filter_, pattern, tag_text = split_template(line)
            template_tags = tag_pairs(tag_text.split(",")) if tag_text else None
            self.matcher.add(filter_, Template(pattern, template_tags, separator))
        self.tags = dict(tags or {})

    def apply_template(self, path: str) -> tuple[str, dict[str, str], str]:
        """(measurement, tags, field) the templates and default tags give ``path``."""
        measurement, tags, field = self.matcher.match(path).apply(path)
        for key, value in self.tags.items():
            tags.setdefault(key, value)
        return measurement, tags, field

    def parse(self, line: str, now_ns: int | None = None
              ) -> tuple[str, dict[str, str], Fields, int]:
        """(measurement, tags, fields, time in ns) of one line; GraphiteError when the
        line is refused (UnsupportedValue for NaN and infinities)."""
        fields = line.split()
        if len(fields) not in (2, 3):
            raise GraphiteError(f'received "{line}" which doesn\'t have required fields')
        path = fields[0]
        measurement, tags, field = self.matcher.match(path).apply(path)
        if not measurement:
            measurement = path
        try:
            value = go_float(fields[1])
        except ValueError as exc:
            raise GraphiteError(f'field "{path}" value: {exc}') from None
        if math.isnan(value) or math.isinf(value):
            raise UnsupportedValue(path, value)
        stamp = time.time_ns() if now_ns is None else now_ns
        if len(fields) == 3:
            try:
                seconds = go_float(fields[2])
            except ValueError as exc:
                raise GraphiteError(f'field "{path}" time: {exc}') from None
            if seconds != -1:
                if not math.isfinite(seconds) or abs(seconds) > 1e15:
                    raise GraphiteError("timestamp out of range")
                # Go: time.Unix(int64(t), int64((t - floor(t)) * 1e9))
                stamp = int(seconds) * 1_000_000_000 + \
                    int((seconds - math.floor(seconds)) * 1e9)
                if not MIN_TIME <= stamp <= MAX_TIME:
                    raise GraphiteError("timestamp out of range")
        for key, tag in self.tags.items():
            if key not in tags:
                tags[key] = tag
        return measurement, tags, {field or "value": value}, stamp

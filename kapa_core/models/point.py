"""A point: one measurement, tags, fields and a timestamp, as it flows through tasks.

Built millions of times a second on the write path, so it is a plain ``__slots__`` class
with a positional constructor. ``time`` is nanoseconds since the Unix epoch (UTC).
Unsigned integers from line protocol (``12u``) are kept as Python ints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

FieldValue = float | int | str | bool


class Point:
    __slots__ = ("database", "dims", "fields", "group", "name", "retention_policy", "tags",
                 "time")

    def __init__(self, name: str, tags: dict[str, str], fields: dict[str, FieldValue],
                 time: int, database: str = "", retention_policy: str = "",
                 group: str = "", dims: tuple[str, ...] = ()) -> None:
        self.name = name
        self.tags = tags
        self.fields = fields
        self.time = time
        self.database = database
        self.retention_policy = retention_policy
        self.group = group  # the group ID inside a task ("" = no grouping)
        self.dims = dims  # the tag names the group is made of

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Point):
            return NotImplemented
        return (self.name == other.name and self.tags == other.tags
                and self.time == other.time and self.database == other.database
                and self.retention_policy == other.retention_policy
                and _same_fields(self.fields, other.fields))

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value: unhashable

    def __repr__(self) -> str:
        return (f"Point({self.name!r}, {self.tags!r}, {self.fields!r}, {self.time}, "
                f"{self.database!r}, {self.retention_policy!r})")


def _same_fields(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Field equality that keeps bool, int and float apart (True != 1 here)."""
    if a.keys() != b.keys():
        return False
    return all(type(a[k]) is type(b[k]) and a[k] == b[k] for k in a)


def escape(text: str, specials: str) -> str:
    """``text`` with each of ``specials`` backslash-escaped, as line protocol writes a
    measurement (``", "``), a tag or a field key (``",= "``)."""
    if not any(c in text for c in specials):
        return text
    out = text
    for c in specials:
        out = out.replace(c, "\\" + c)
    return out


def format_field(value: FieldValue, float_text: Callable[[float], str] = repr) -> str:
    """A field value as line protocol writes it; ``float_text`` writes a float."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return float_text(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def to_line(point: Point) -> str:
    """The point as one line of line protocol (tags sorted, nanosecond timestamp)."""
    key = escape(point.name, ", ")
    for k in sorted(point.tags):
        key += f",{escape(k, ',= ')}={escape(point.tags[k], ',= ')}"
    fields = ",".join(f"{escape(k, ',= ')}={format_field(v)}"
                      for k, v in point.fields.items())
    return f"{key} {fields} {point.time}"

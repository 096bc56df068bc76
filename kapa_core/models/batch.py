"""Batches, group IDs and times as Kapacitor writes them.

A batch is what a window or a query emits: one group's points between two times.
``group_id`` builds Kapacitor's group ID (``host=a,region=eu``, with the measurement
name first when grouping by measurement); ``format_time`` writes RFC3339 with
nanoseconds and trailing zeros trimmed, as Go's ``RFC3339Nano`` does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


def group_id(name: str, tags: dict[str, str], dims: tuple[str, ...], by_name: bool) -> str:
    if not dims:
        return name if by_name else ""
    body = ",".join(f"{d}={tags.get(d, '')}" for d in dims)
    return f"{name}\n{body}" if by_name else body


class GroupIds:
    """The group IDs of one set of dimensions, made once per distinct tag values and
    shared by every point of the group (a string per point would be ~60 bytes of each
    buffered point, and building it costs more than looking it up)."""

    __slots__ = ("dims", "ids", "one")

    #: Distinct IDs kept before the cache starts again (a bound on its memory).
    LIMIT = 100_000

    def __init__(self, dims: tuple[str, ...]) -> None:
        self.dims = dims
        self.one = dims[0] if len(dims) == 1 else None
        self.ids: dict[Any, str] = {}

    def of(self, name: str, tags: dict[str, str], by_name: bool) -> str:
        one = self.one
        key: Any
        if one is not None and not by_name:
            key = tags.get(one, "")
        else:
            key = (name if by_name else "", by_name, *[tags.get(d, "") for d in self.dims])
        gid = self.ids.get(key)
        if gid is None:
            if len(self.ids) >= self.LIMIT:
                self.ids.clear()
            gid = self.ids[key] = group_id(name, tags, self.dims, by_name)
        return gid


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ABSENT = object()

#: Nanoseconds from Go's zero time (0001-01-01T00:00:00Z) to the Unix epoch: Go's
#: ``Time.Truncate`` and ``Time.Round`` count multiples from the zero time.
GO_ZERO_OFFSET = 62135596800 * 1_000_000_000


def go_truncate(ns: int, d: int) -> int:
    """Go's ``time.Time.Truncate(d)`` of a Unix time in nanoseconds."""
    if d <= 0:
        return ns
    return ns - (ns + GO_ZERO_OFFSET) % d


def go_round(ns: int, d: int) -> int:
    """Go's ``time.Time.Round(d)``: the nearest multiple, halfway rounded up."""
    if d <= 0:
        return ns
    r = (ns + GO_ZERO_OFFSET) % d
    return ns - r if r + r < d else ns + d - r


_STAMPS: dict[int, str] = {}  # whole seconds -> their RFC3339 text, recent ones


def format_time(ns: int) -> str:
    """RFC3339Nano in UTC: ``1970-01-01T00:00:10Z``, ``...T00:00:10.5Z``."""
    seconds, frac = divmod(ns, 1_000_000_000)
    stamp = _STAMPS.get(seconds)
    if stamp is None:
        if len(_STAMPS) >= 4096:
            _STAMPS.clear()
        stamp = _STAMPS[seconds] = (_EPOCH + dt.timedelta(seconds=seconds)).strftime(
            "%Y-%m-%dT%H:%M:%S")
    if frac:
        return f"{stamp}.{frac:09d}".rstrip("0") + "Z"
    return stamp + "Z"


@dataclass(slots=True)
class BatchPoint:
    time: int
    fields: dict[str, Any]
    tags: dict[str, str]


@dataclass(slots=True)
class Batch:
    name: str
    group: str
    tags: dict[str, str]  # the group's tags
    dims: tuple[str, ...]
    by_name: bool
    tmax: int
    points: list[BatchPoint] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        """The batch as one InfluxQL result series (what httpOut and httpPost write).

        As Kapacitor: the columns are ``time`` then, sorted, the fields of the *first*
        point and those of its tags that are not the batch's tags (later points fill the
        same columns, a field first, then a tag, else null); a batch without points is
        written with its name and tags only.
        """
        series: dict[str, Any] = {"name": self.name} if self.name else {}
        tags = self.tags
        if tags:
            series["tags"] = dict(sorted(tags.items())) if len(tags) > 1 else dict(tags)
        if not self.points:
            return series
        first = self.points[0]
        names = list(first.fields)
        names += [t for t in first.tags if t not in tags]
        names.sort()
        values = []
        for p in self.points:
            fields, ptags = p.fields, p.tags
            row: list[Any] = [format_time(p.time)]
            for c in names:
                v = fields.get(c, _ABSENT)
                if v is _ABSENT:
                    v = ptags.get(c)
                row.append(v)
            values.append(row)
        series["columns"] = ["time", *names]
        series["values"] = values
        return series

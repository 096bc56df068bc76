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


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def format_time(ns: int) -> str:
    """RFC3339Nano in UTC: ``1970-01-01T00:00:10Z``, ``...T00:00:10.5Z``."""
    seconds, frac = divmod(ns, 1_000_000_000)
    stamp = (_EPOCH + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        stamp += "." + f"{frac:09d}".rstrip("0")
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
        """The batch as one InfluxQL result series (what httpOut serves)."""
        columns = ["time"]
        seen: set[str] = set()
        for p in self.points:
            for k in p.fields:
                if k not in seen:
                    seen.add(k)
        columns += sorted(seen)
        values = [[format_time(p.time), *[p.fields.get(c) for c in columns[1:]]]
                  for p in self.points]
        series: dict[str, Any] = {"name": self.name}
        if self.tags:
            series["tags"] = dict(self.tags)
        series["columns"] = columns
        series["values"] = values
        return series

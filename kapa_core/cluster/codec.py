"""Points on the cluster's stream: subjects and message bodies.

A message holds the points of one write piece for one database, retention policy and
measurement, on the subject ``<cluster>.points.<db>.<rp>.<measurement>`` (docs/cluster.md,
"JetStream objects"), so a task's consumer filters on ``<cluster>.points.<db>.<rp>.>``
and JetStream, not the member, drops what a task does not read.

Subject tokens cannot hold ``.``, ``*``, ``>`` nor white space, and cannot be empty; a
name is escaped as ``%XX`` per byte of those characters (and of ``%``), and an empty name
is ``%``. Decoding gives the exact name back.

The body is msgpack: ``[1, db, rp, measurement, [[time, tags, fields], ...]]``, the 1 a
format version. msgpack keeps what line protocol can say: float (64-bit), integer, string
and boolean fields, each as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import msgpack  # type: ignore[import-untyped]  # msgpack ships no types

from kapa_core.errors import KapaError
from kapa_core.models.point import Point

FORMAT = 1
_UNSAFE = re.compile(r"[.*>%\s]")
_ESCAPE = re.compile(r"%([0-9A-F]{2})")


class CodecError(KapaError):
    """A message on the stream that is not points in the cluster's format."""


def token(name: str) -> str:
    """``name`` as one subject token."""
    if not name:
        return "%"
    return _UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), name)


def untoken(text: str) -> str:
    """The name a subject token stands for."""
    if text == "%":
        return ""
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "%" and _ESCAPE.match(text, i):
            out.append(int(text[i + 1:i + 3], 16))
            i += 3
        else:
            out += text[i].encode()
            i += 1
    return out.decode()


def subject(cluster: str, database: str, retention_policy: str, measurement: str) -> str:
    return f"{cluster}.points.{token(database)}.{token(retention_policy)}.{token(measurement)}"


def dbrp_filter(cluster: str, database: str, retention_policy: str) -> str:
    """The subjects of every measurement of one database and retention policy."""
    return f"{cluster}.points.{token(database)}.{token(retention_policy)}.>"


def split(points: Iterable[Point]) -> Iterator[list[Point]]:
    """The points of each database, retention policy and measurement, in the order they
    first appear, each group in its own order: one message per measurement of a write,
    however its lines alternate (a task reads one measurement in the order written; the
    order between measurements of one write is not kept)."""
    groups: dict[tuple[str, str, str], list[Point]] = {}
    for p in points:
        key = (p.database, p.retention_policy, p.name)
        group = groups.get(key)
        if group is None:
            groups[key] = [p]
        else:
            group.append(p)
    yield from groups.values()


def encode(points: list[Point]) -> bytes:
    """One message body: ``points`` all share their database, retention policy and
    measurement (see :func:`split`)."""
    first = points[0]
    rows = [[p.time, p.tags, p.fields] for p in points]
    packed: bytes = msgpack.packb([FORMAT, first.database, first.retention_policy,
                                   first.name, rows], use_bin_type=True)
    return packed


def decode(body: bytes) -> list[Point]:
    try:
        doc: Any = msgpack.unpackb(body, raw=False, strict_map_key=True)
        version, database, rp, name, rows = doc
        if version != FORMAT:
            raise CodecError(f"points message of format {version!r}; this daemon reads "
                             f"format {FORMAT}")
        return [Point(name, dict(tags), dict(fields), int(time), database, rp)
                for time, tags, fields in rows]
    except CodecError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise CodecError(f"not a points message: {exc}") from None

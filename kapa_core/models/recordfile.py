"""Recording files in Kapacitor 1.5.7's formats, read and written byte for byte alike.

``<id>.srpl`` (a stream recording) is a gzip stream of three-line groups: the database,
the retention policy, then the point in line protocol with a nanosecond timestamp, as
Kapacitor writes a point (tags and fields sorted by key, floats in plain notation with
as few digits as read back the same, integers with ``i``)::

    mydb
    autogen
    cpu,host=a value=1.5 31536000000000000

``<id>.brpl`` (a batch recording) is a zip archive with one entry per query node of
the task, named ``0``, ``1``, ... in the order of the task's batch collectors; each
entry holds the node's batches as JSON values, one a line, as Go's ``json.Encoder``
writes a buffered batch::

    {"name":"cpu","tmax":"1971-01-01T00:00:10Z","group":"host=a","tags":{"host":"a"},
     "points":[{"fields":{"value":1},"tags":{"host":"a"},"time":"1971-01-01T00:00:10Z"}]}

(``group``, ``byname``, ``tags`` and ``points`` are left out when empty; a point's
``tags`` is ``null`` when its series had none.) Reading one back as Kapacitor does: the
values may be spread over lines, every number becomes a float, a point without tags
takes the batch's, the group is computed again from the name, the tags and ``byname``,
and a batch without points is skipped.
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from kapa_core.models import gojson
from kapa_core.models.batch import Batch, BatchPoint, format_time, group_id
from kapa_core.models.gojson import plain_float
from kapa_core.models.gotime import parse_go_time
from kapa_core.models.lineprotocol import parse
from kapa_core.models.point import Point, escape, format_field

STREAM_EXT = ".srpl"
BATCH_EXT = ".brpl"
#: Go's zero time.Time as written in JSON, and in Unix nanoseconds.
GO_ZERO_TEXT = "0001-01-01T00:00:00Z"
GO_ZERO_NS = -62135596800 * 1_000_000_000


class RecordingFileError(ValueError):
    """A recording file that cannot be read; the message is Kapacitor's where it has one."""


class RecordingOpenError(RecordingFileError):
    """A recording file that cannot even be opened as its kind (Kapacitor reports it as
    ``data source open: ...``)."""


# -- stream recordings --------------------------------------------------------------------
def point_line(point: Point) -> str:
    """The point as Kapacitor's ``PointMessage.Bytes("n")`` writes it (a tag with an
    empty value is left out, as InfluxDB's key builder leaves it out)."""
    key = escape(point.name, ", ")
    for k in sorted(point.tags):
        if point.tags[k]:
            key += f",{escape(k, ',= ')}={escape(point.tags[k], ',= ')}"
    fields = ",".join(f"{escape(k, ',= ')}={format_field(point.fields[k], plain_float)}"
                      for k in sorted(point.fields))
    return f"{key} {fields} {point.time}"


class StreamWriter:
    """Appends points to an ``.srpl`` file."""

    def __init__(self, path: str | Path) -> None:
        self._file = open(path, "wb")  # noqa: SIM115 (closed by close())
        self._gz = gzip.GzipFile(fileobj=self._file, mode="wb", mtime=0)

    def write(self, database: str, retention_policy: str, point: Point) -> None:
        self._gz.write(f"{database}\n{retention_policy}\n{point_line(point)}\n"
                       .encode())

    def close(self) -> None:
        try:
            self._gz.close()
        finally:
            self._file.close()


def write_stream(path: str | Path, points: Iterable[Point]) -> None:
    writer = StreamWriter(path)
    try:
        for p in points:
            writer.write(p.database, p.retention_policy, p)
    finally:
        writer.close()


def read_stream(path: str | Path) -> Iterator[Point]:
    """The points of an ``.srpl`` file, in order; RecordingFileError with Kapacitor's
    words for a broken one."""
    with open(path, "rb") as raw:
        if raw.read(3) != b"\x1f\x8b\x08":
            raise RecordingOpenError("gzip: invalid header")
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError):
        raise RecordingFileError("unexpected EOF") from None
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for i in range(0, len(lines), 3):
        if i + 2 >= len(lines):
            raise RecordingFileError("invalid replay file format, expected another line")
        database = lines[i].decode("utf-8", "replace").rstrip("\r")
        rp = lines[i + 1].decode("utf-8", "replace").rstrip("\r")
        result = parse(lines[i + 2], precision="n", database=database,
                       retention_policy=rp, max_errors=1)
        if result.errors:
            raise RecordingFileError(str(result.errors[0]))
        if not result.points:
            raise RecordingFileError("unable to parse point: empty line")
        yield result.points[0]


# -- batch recordings ---------------------------------------------------------------------
def batch_json(batch: Batch) -> str:
    """One batch as Go's ``json.Encoder`` writes Kapacitor's buffered batch (with the
    encoder's newline)."""
    out: dict[str, Any] = {}
    if batch.name:
        out["name"] = batch.name
    out["tmax"] = format_time(batch.tmax) if batch.tmax != GO_ZERO_NS else GO_ZERO_TEXT
    if batch.group:
        out["group"] = batch.group
    if batch.by_name:
        out["byname"] = True
    if batch.tags:
        out["tags"] = dict(sorted(batch.tags.items()))
    if batch.points:
        out["points"] = [{"fields": dict(sorted(p.fields.items())),
                          "tags": dict(sorted(p.tags.items())) if p.tags else None,
                          "time": format_time(p.time)} for p in batch.points]
    return gojson.dumps(out) + "\n"


def write_batches(path: str | Path, sources: Iterable[Iterable[Batch]]) -> None:
    """A ``.brpl`` archive: entry ``i`` holds the batches of ``sources[i]``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for index, batches in enumerate(sources):
            archive.writestr(str(index), "".join(batch_json(b) for b in batches))


def parse_go_time_text(text: str) -> int:
    """An RFC3339 time as JSON holds it, in Unix nanoseconds."""
    return parse_go_time(text)  # Go's own parser and words


def _batch(value: Any) -> Batch | None:
    if not isinstance(value, dict):
        raise RecordingFileError("json: cannot unmarshal into a batch")
    name = value.get("name") or ""
    tags = {str(k): str(v) for k, v in (value.get("tags") or {}).items()}
    by_name = bool(value.get("byname"))
    raw_tmax = value.get("tmax")
    tmax = parse_go_time_text(raw_tmax) if isinstance(raw_tmax, str) else GO_ZERO_NS
    points = []
    for p in value.get("points") or []:
        fields = {}
        for k, v in (p.get("fields") or {}).items():
            if v is None:
                continue
            fields[k] = float(v) if isinstance(v, int) and not isinstance(v, bool) else v
        ptags = p.get("tags") or tags
        t = p.get("time")
        points.append(BatchPoint(parse_go_time_text(t) if isinstance(t, str) else GO_ZERO_NS,
                                 fields, {str(k): str(v) for k, v in ptags.items()}))
    if not points:
        return None
    dims = tuple(sorted(tags))
    return Batch(name, group_id(name, tags, dims, by_name), tags, dims, by_name, tmax,
                 points)


def decode_batches(text: str) -> list[Batch]:
    """The batches of one archive entry: JSON values one after another, each a batch;
    batches without points are left out, as Kapacitor's replay leaves them out."""
    out: list[Batch] = []
    decoder, i = json.JSONDecoder(), 0
    while True:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        if i >= len(text):
            return out
        try:
            value, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            raise RecordingFileError(f"invalid character in recording: {exc.msg}") from None
        batch = _batch(value)
        if batch is not None:
            out.append(batch)


def read_batches(path: str | Path | BinaryIO) -> list[list[Batch]]:
    """The batches of each entry of a ``.brpl`` archive, in the archive's order."""
    try:
        with zipfile.ZipFile(path) as archive:
            return [decode_batches(archive.read(info).decode("utf-8", "replace"))
                    for info in archive.infolist()]
    except zipfile.BadZipFile:
        raise RecordingOpenError("zip: not a valid zip file") from None


def batches_archive(entries: Iterable[str | bytes]) -> bytes:
    """A ``.brpl`` archive made of the given entry texts (test data, tools)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index, text in enumerate(entries):
            archive.writestr(str(index), text)
    return buffer.getvalue()

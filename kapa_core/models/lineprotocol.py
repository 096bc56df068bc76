"""InfluxDB line protocol, parsed the way InfluxDB 1.x parses it.

    measurement[,tag=value...] field=value[,field=value...] [timestamp]

Escapes: ``\\,`` and ``\\ `` in measurements; ``\\,``, ``\\=`` and ``\\ `` in tag keys,
tag values and field keys; ``\\"`` and ``\\\\`` inside double-quoted string values. Field
values are floats (``1``, ``-1.5``, ``1e3``), integers (``1i``), unsigned integers
(``1u``, kept as int), booleans (``t``, ``true``, ``F``, ``FALSE``...) or strings.
A missing timestamp means "now"; ``precision`` scales timestamps (n, u/µ, ms, s, m, h).

Partial writes
--------------
Kapacitor's write handler (``serveWriteLine`` in ``services/httpd/handler.go``) refuses
the whole body when any line fails to parse: 400 with the parse error, no point written
(unlike InfluxDB 1.x, which writes the lines that parsed). kapa-core's write endpoint
does the same. :func:`parse` still reads every line and returns the points and one
:class:`LineError` per bad line with its 1-based line number, so the answer can list
every bad line at once.

Speed: lines without backslashes or double quotes (nearly all real traffic) take a fast
path built on ``str.split``; the rest go through a careful character scanner.
"""

from __future__ import annotations

import gc
import sys
import time as _time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kapa_core.models.point import FieldValue, Point

_SCALE = {"": 1, "n": 1, "ns": 1, "u": 1_000, "µ": 1_000, "us": 1_000, "µs": 1_000,
          "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_BOOLS = {"t": True, "T": True, "true": True, "True": True, "TRUE": True,
          "f": False, "F": False, "false": False, "False": False, "FALSE": False}
MIN_TIME = -9223372036854775806
MAX_TIME = 9223372036854775806
_MAX_INT = 2**63 - 1
_MAX_UINT = 2**64 - 1
_MAX_FLOAT = sys.float_info.max
#: Characters InfluxDB's scanner takes as the start of a number (anything else is read
#: as a boolean).
_NUMBER_START = frozenset("0123456789.-nN")


@dataclass(frozen=True)
class LineError:
    """One line that could not be parsed."""

    line: int
    text: str
    reason: str

    def __str__(self) -> str:
        return f"unable to parse '{self.text}': {self.reason} (line {self.line})"


@dataclass
class ParseResult:
    points: list[Point] = field(default_factory=list)
    #: The first ``max_errors`` bad lines (all of them without a cap).
    errors: list[LineError] = field(default_factory=list)
    #: How many lines were bad, listed or not.
    bad_lines: int = 0


class _Bad(Exception):
    """A reason why one line is malformed."""


def precision_scale(precision: str) -> int:
    scale = _SCALE.get(precision)
    if scale is None:
        raise ValueError(f"invalid precision {precision!r} (expected n, u, ms, s, m or h)")
    return scale


def parse(body: bytes | bytearray | memoryview | str, *, precision: str = "n",
          now_ns: int | None = None, database: str = "", retention_policy: str = "",
          first_line: int = 1, max_errors: int | None = None) -> ParseResult:
    """Parse a body of line protocol; bad lines are reported, never raised.

    ``first_line`` is the number of the body's first line (a piece of a larger body,
    see :func:`pieces`); at most ``max_errors`` bad lines are kept as :class:`LineError`
    (``bad_lines`` counts them all), so a body of a million bad lines costs no memory.
    """
    scale = precision_scale(precision)
    if now_ns is None:
        now_ns = _time.time_ns()
    result = ParseResult()
    points = result.points
    bad_utf8 = False
    if isinstance(body, bytes | bytearray | memoryview):
        try:
            text = str(body, "utf-8")  # a memoryview too, without copying it first
        except UnicodeDecodeError:  # only then is every line checked for stray bytes
            text = str(body, "utf-8", "surrogateescape")
            bad_utf8 = True
    else:
        text = body
        bad_utf8 = not text.isascii()
    append = points.append
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of small dicts: the cyclic collector would only slow us down
    try:
        result.bad_lines = _parse_lines(text, scale, now_ns, database, retention_policy,
                                        append, result.errors, bad_utf8, first_line,
                                        max_errors)
    finally:
        if gc_was_enabled:
            gc.enable()
    return result


def pieces(body: bytes, size: int) -> Iterator[tuple[int, int, int]]:
    """Cut ``body`` into pieces of about ``size`` bytes, each ending after a newline:
    ``(start, end, number of its first line)``. A piece is parsed on its own (a newline
    byte never occurs inside a UTF-8 sequence), so a large body can be parsed a piece at
    a time while line numbers stay those of the whole body."""
    n = len(body)
    start = 0
    line = 1
    while start < n:
        end = body.find(b"\n", min(start + size, n) - 1)
        end = n if end < 0 else end + 1
        yield start, end, line
        line += body.count(b"\n", start, end)
        start = end


def _parse_lines(text: str, scale: int, now_ns: int, database: str, retention_policy: str,
                 append: Any, errors: list[LineError], bad_utf8: bool, first_line: int,
                 max_errors: int | None) -> int:
    """Parse every line of ``text``; returns how many were bad."""
    bad = 0
    for number, line in enumerate(text.split("\n"), first_line):
        if line.endswith("\r"):
            line = line[:-1]
        if not line or line[0] == "#" or line.isspace():
            continue
        try:
            if bad_utf8 and any("\udc80" <= c <= "\udcff" for c in line):
                raise _Bad("invalid UTF-8")
            if '"' in line and "\\" not in line and line[0] not in " \t":
                point = _parse_quoted(line, scale, now_ns)
                if point is not None:
                    point.database = database
                    point.retention_policy = retention_policy
            elif "\\" in line or '"' in line or line[0] in " \t":
                point = _parse_slow(line, scale, now_ns)
                if point is not None:
                    point.database = database
                    point.retention_policy = retention_policy
            else:
                point = _parse_fast(line, scale, now_ns, database, retention_policy)
        except _Bad as exc:
            bad += 1
            if max_errors is None or len(errors) < max_errors:
                errors.append(LineError(number, _shown(line), str(exc)))
            continue
        if point is not None:  # None: a line of blanks and a comment
            append(point)
    return bad


def _shown(line: str) -> str:
    text = line.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text if len(text) <= 200 else text[:197] + "..."


# -- values ---------------------------------------------------------------------------------

def _number(v: str) -> FieldValue:
    """A field value that is not a quoted string.

    The reasons are InfluxDB's: a value whose first character cannot start a number is
    read as a boolean ("invalid boolean"); ``nan``, ``-inf``, ``1x``... are "invalid
    number"; a float that overflows to ±Inf (``1e309``) is "invalid float", so no
    infinity or NaN ever enters the stream from a write (JSON has no word for them).
    """
    last = v[-1]
    if ("0" <= last <= "9" or last == ".") and v[0] in _NUMBER_START:
        try:  # the common case: a float
            number = float(v)
        except ValueError:
            raise _Bad("invalid number") from None
        if "_" in v or not v.isascii():
            raise _Bad("invalid number")
        if not -_MAX_FLOAT <= number <= _MAX_FLOAT:
            raise _Bad("invalid float")
        return number
    if last == "i":
        digits = v[:-1]
        if not _is_int(digits):
            raise _Bad("invalid integer")
        if _too_long(digits):
            raise _Bad("value out of range")
        value = int(digits)
        if not -_MAX_INT - 1 <= value <= _MAX_INT:
            raise _Bad("value out of range")
        return value
    if last == "u":
        digits = v[:-1]
        if not digits.isdigit() or not digits.isascii():
            raise _Bad("invalid unsigned integer")
        if _too_long(digits):
            raise _Bad("value out of range")
        value = int(digits)
        if value > _MAX_UINT:
            raise _Bad("value out of range")
        return value
    boolean = _BOOLS.get(v)
    if boolean is not None:
        return boolean
    if v[0] not in _NUMBER_START:  # inf, Infinity, +1, abc
        raise _Bad("invalid boolean")
    raise _Bad("invalid number")  # nan, NaN, -inf, 1x, 1e, -


def _is_int(text: str) -> bool:
    body = text[1:] if text[:1] == "-" else text
    return body.isdigit() and body.isascii()


def _too_long(digits: str) -> bool:
    """More significant digits than any 64-bit integer has (and int() would refuse a
    few thousand with ValueError)."""
    return len(digits.lstrip("-").lstrip("0")) > 20


def _timestamp(text: str, scale: int) -> int:
    if not _is_int(text):
        raise _Bad("bad timestamp")
    if _too_long(text):
        raise _Bad("timestamp out of range")
    ts = int(text) * scale
    if not MIN_TIME <= ts <= MAX_TIME:
        raise _Bad("timestamp out of range")
    return ts


# -- fast path: no escapes, no quoted strings ---------------------------------------------

def _parse_fast(line: str, scale: int, now_ns: int, database: str = "",
                retention_policy: str = "") -> Point | None:
    parts = line.split(" ")
    n = len(parts)
    if n == 3 and (parts[2].isdigit() or _is_int(parts[2])):
        key, fields_text, ts_text = parts
        ts = _timestamp(ts_text, scale)
    elif n == 2:
        key, fields_text = parts
        ts = now_ns
    else:  # odd spacing (`m v=1 `, `m v=1 \t1`) or a bad timestamp: the scanner decides
        point = _parse_slow(line, scale, now_ns)
        if point is not None:
            point.database = database
            point.retention_policy = retention_policy
        return point
    if "," in key:
        name, *tag_parts = key.split(",")
        tags: dict[str, str] = {}
        for tag in tag_parts:
            k, eq, v = tag.partition("=")
            if not k:
                raise _Bad("missing tag key")
            if not eq or not v or "=" in v:
                raise _Bad("missing tag value")
            tags[k] = v
        if len(tags) > 1:
            tags = dict(sorted(tags.items()))
    else:
        name = key
        tags = {}
    if not name:
        raise _Bad("missing measurement")
    if not fields_text:
        raise _Bad("missing fields")
    fields: dict[str, FieldValue] = {}
    for item in fields_text.split(","):
        k, eq, v = item.partition("=")
        if not k:
            raise _Bad("missing field key")
        if not eq:
            raise _Bad("invalid field format")
        if not v:
            raise _Bad("missing field value")
        fields[k] = _number(v)
    return Point(name, tags, fields, ts, database, retention_policy)


# -- quoted strings without escapes (Telegraf's string fields) ------------------------------

def _parse_quoted(line: str, scale: int, now_ns: int) -> Point | None:
    """Lines with quoted string fields but no backslash; anything odd goes to the scanner."""
    key, sep, rest = line.partition(" ")
    if not sep or '"' in key:
        return _parse_slow(line, scale, now_ns)
    fields: dict[str, FieldValue] = {}
    pos = 0
    n = len(rest)
    while True:
        eq = rest.find("=", pos)
        if eq <= pos:
            return _parse_slow(line, scale, now_ns)
        name = rest[pos:eq]
        if "," in name or " " in name or '"' in name:
            return _parse_slow(line, scale, now_ns)
        if eq + 1 < n and rest[eq + 1] == '"':
            close = rest.find('"', eq + 2)
            if close < 0:
                return _parse_slow(line, scale, now_ns)
            fields[name] = rest[eq + 2:close]
            pos = close + 1
        else:
            comma = rest.find(",", eq)
            space = rest.find(" ", eq)
            if comma < 0:
                end = space if space >= 0 else n
            else:
                end = comma if space < 0 or comma < space else space
            raw = rest[eq + 1:end]
            if not raw or '"' in raw:
                return _parse_slow(line, scale, now_ns)
            fields[name] = _number(raw)
            pos = end
        if pos < n and rest[pos] == ",":
            pos += 1
            continue
        break
    if pos < n and rest[pos] != " ":
        return _parse_slow(line, scale, now_ns)
    ts_text = rest[pos:].strip(" ")
    if ts_text and not _is_int(ts_text):
        return _parse_slow(line, scale, now_ns)
    head = _parse_fast(f"{key} _=0", scale, now_ns)
    if head is None:
        return _parse_slow(line, scale, now_ns)
    head.fields = fields
    head.time = _timestamp(ts_text, scale) if ts_text else now_ns
    return head


# -- slow path: the character scanner -------------------------------------------------------

def _unescape(text: str, specials: str) -> str:
    if "\\" not in text:
        return text
    out = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in specials:
            out.append(text[i + 1])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _scan(line: str, start: int, stops: str) -> int:
    """Index of the first unescaped character of ``stops`` at or after ``start``."""
    i = start
    n = len(line)
    while i < n:
        c = line[i]
        if c == "\\":
            i += 2
            continue
        if c in stops:
            return i
        i += 1
    return n


def _parse_slow(line: str, scale: int, now_ns: int) -> Point | None:
    stripped = line.lstrip(" \t")
    if not stripped or stripped[0] == "#":
        return None
    line = stripped
    n = len(line)
    # measurement
    end = _scan(line, 0, ", ")
    name = _unescape(line[:end], ", ")
    if not name:
        raise _Bad("missing measurement")
    pos = end
    tags: dict[str, str] = {}
    while pos < n and line[pos] == ",":
        key_end = _scan(line, pos + 1, "=, ")
        key = _unescape(line[pos + 1:key_end], ",= ")
        if not key:
            raise _Bad("missing tag key")
        if key_end >= n or line[key_end] != "=":
            raise _Bad("missing tag value")
        value_end = _scan(line, key_end + 1, ", =")
        if value_end < n and line[value_end] == "=":
            raise _Bad("missing tag value")
        value = _unescape(line[key_end + 1:value_end], ",= ")
        if not value:
            raise _Bad("missing tag value")
        tags[key] = value
        pos = value_end
    if len(tags) > 1:
        tags = dict(sorted(tags.items()))
    if pos >= n:
        raise _Bad("missing fields")
    while pos < n and line[pos] == " ":
        pos += 1
    if pos >= n:
        raise _Bad("missing fields")
    fields: dict[str, FieldValue] = {}
    while True:
        key_end = _scan(line, pos, "=, ")
        key = _unescape(line[pos:key_end], ",= ")
        if not key:
            raise _Bad("missing field key")
        if key_end >= n or line[key_end] != "=":
            raise _Bad("invalid field format")
        pos = key_end + 1
        if pos < n and line[pos] == '"':
            value, pos = _string(line, pos + 1)
            fields[key] = value
        else:
            value_end = _scan(line, pos, ", ")
            raw = line[pos:value_end]
            if not raw:
                raise _Bad("missing field value")
            if '"' in raw or "\\" in raw:
                raise _Bad("invalid field format")
            fields[key] = _number(raw)
            pos = value_end
        if pos < n and line[pos] == ",":
            pos += 1
            continue
        break
    if pos < n and line[pos] != " ":
        raise _Bad("invalid field format")
    return Point(name, tags, fields, _trailing_timestamp(line, pos, scale, now_ns))


def _trailing_timestamp(line: str, pos: int, scale: int, now_ns: int) -> int:
    """The optional timestamp after the fields, read as InfluxDB's ``scanTime`` reads it.

    Blanks (spaces, tabs, NULs) before it are skipped, so ``m v=1 `` and ``m v=1 \t``
    have no timestamp (``now_ns``); after it only spaces may follow ("point is invalid").
    """
    n = len(line)
    while pos < n and line[pos] in " \t\0":
        pos += 1
    end = line.find(" ", pos)
    if end < 0:
        end = n
    if end == pos:
        return now_ns
    ts = _timestamp(line[pos:end], scale)
    if line[end:].strip(" "):
        raise _Bad("point is invalid")
    return ts


def _string(line: str, start: int) -> tuple[str, int]:
    """A quoted string value starting after its opening quote: (value, index after)."""
    out = []
    i = start
    n = len(line)
    while i < n:
        c = line[i]
        if c == "\\" and i + 1 < n and line[i + 1] in '"\\':
            out.append(line[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    raise _Bad("unbalanced quotes")

"""InfluxDB line protocol, parsed the way InfluxDB 1.x parses it.

    measurement[,tag=value...] field=value[,field=value...] [timestamp]

Escapes are read as InfluxDB 1.x reads them (see "slow path" below): ``\\,``, ``\\ ``
and ``\\=`` (and ``\\"`` in measurements and field keys) lose their backslash;
``\\"`` and ``\\\\`` inside double-quoted string values. Field
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

Compiled fast path
------------------
When the C extension ``_lineparse`` is built (``pip install -e .`` builds it where a C
compiler exists) and ``KAPA_CORE_PURE_PYTHON`` is unset, empty or ``0``, :func:`parse`
hands the body's UTF-8 bytes to it: it turns every plain line into a :class:`Point`
and stops at the first line it is not sure about; that line is parsed here by the same
code as :func:`parse_pure` (which stays the reference: both give equal results, errors
included), then C goes on from the next line. :func:`implementation` says which path
runs and why. :func:`check` answers "is every line good?" with the GIL released while
C scans, and :func:`parse_range` parses part of a body without copying it.

Points of one series parsed by C share one name string and one tags dict (and field
keys share their strings), which keeps buffered points small. This relies on nothing
changing a point's tags dict in place: code that changes tags makes a new dict.
"""

from __future__ import annotations

import gc
import importlib
import os
import re
import sys
import time as _time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

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
#: A bad line is shown whole in the error, as Kapacitor shows it, up to this many
#: characters (a 400 lists at most ten lines, so its size stays bounded).
MAX_LINE_SHOWN = 65536
_STRAY_BYTE = re.compile("[\udc80-\udcff]")


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
    Compiled or not (:data:`COMPILED`), the result is that of :func:`parse_pure`.
    """
    if COMPILED:
        if isinstance(body, str):
            try:
                body = body.encode()
            except UnicodeEncodeError:  # lone surrogates: each is an error for its line
                return parse_pure(body, precision=precision, now_ns=now_ns,
                                  database=database, retention_policy=retention_policy,
                                  first_line=first_line, max_errors=max_errors)
        return parse_range(body, 0, None, precision=precision, now_ns=now_ns,
                           database=database, retention_policy=retention_policy,
                           first_line=first_line, max_errors=max_errors)
    return parse_pure(body, precision=precision, now_ns=now_ns, database=database,
                      retention_policy=retention_policy, first_line=first_line,
                      max_errors=max_errors)


def parse_pure(body: bytes | bytearray | memoryview | str, *, precision: str = "n",
               now_ns: int | None = None, database: str = "", retention_policy: str = "",
               first_line: int = 1, max_errors: int | None = None) -> ParseResult:
    """:func:`parse` in pure Python: the reference the compiled path is tested against."""
    scale = precision_scale(precision)
    if now_ns is None:
        now_ns = _time.time_ns()
    now_ns -= now_ns % scale  # a point without a time: now, truncated to the precision
    result = ParseResult()
    points = result.points
    bad_utf8 = False
    if isinstance(body, bytes | bytearray | memoryview):
        try:
            text = str(body, "utf-8")  # a memoryview too, without copying it first
        except UnicodeDecodeError:
            # Kapacitor takes the bytes as they are (its JSON shows each as \ufffd): a
            # byte that is not UTF-8 becomes U+FFFD, so no string of the stream holds a
            # lone surrogate.
            text = _STRAY_BYTE.sub("\ufffd", str(body, "utf-8", "surrogateescape"))
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


# -- the compiled fast path ------------------------------------------------------------------

#: What the compiled path shares between points: series key bytes -> (name, tags) and
#: key bytes -> str. C empties each past 100,000 entries.
_SERIES: dict[bytes, tuple[str, dict[str, str]]] = {}
_STRINGS: dict[bytes, str] = {}
#: Physical lines read at once (then twice as many...) for a line a quote or a backslash
#: may carry on onto the next ones.
_WINDOW = 8


class _Extension(Protocol):
    """What ``_lineparse.c`` offers (its functions' docstrings say more)."""

    def setup(self, point_type: type[Point],
              series_cache: dict[bytes, tuple[str, dict[str, str]]],
              strings_cache: dict[bytes, str], /) -> None: ...

    def scan(self, body: bytes | bytearray | memoryview, start: int, end: int, scale: int,
             now: int, database: str, retention_policy: str, points: list[Point] | None, /
             ) -> tuple[int, int]: ...

    def line_end(self, body: bytes | bytearray | memoryview, pos: int, end: int, /) -> int: ...


# The switch is read first, so that it also keeps a broken extension from being loaded.
_FLAG = os.environ.get("KAPA_CORE_PURE_PYTHON", "")
if _FLAG not in ("", "0"):
    _WHY = f"KAPA_CORE_PURE_PYTHON={_FLAG}"
else:
    try:
        _lineparse = cast(_Extension, importlib.import_module("kapa_core.models._lineparse"))
    except ImportError as exc:  # no C compiler where it was installed
        _WHY = f"the extension is not built: {exc}"
    else:
        _WHY = ""


def _load() -> bool:
    """Hand C the Point class and the caches; False (why in ``_WHY``) when the compiled
    path cannot be used, so that :func:`parse` stays on pure Python."""
    global _WHY
    if _WHY:
        return False
    try:
        _lineparse.setup(Point, _SERIES, _STRINGS)
    except TypeError as exc:  # Point changed shape: making points in C would be unsafe
        _WHY = f"the extension cannot fill Point: {exc}"
        return False
    return True


#: True when :func:`parse` takes the compiled fast path.
COMPILED: bool = _load()


def implementation() -> str:
    """``"compiled"`` or ``"pure Python (<why>)"``, for the daemon's start-up log."""
    return "compiled" if COMPILED else f"pure Python ({_WHY or 'switched off'})"


def parse_range(body: bytes | bytearray | memoryview, start: int = 0, end: int | None = None,
                *, precision: str = "n", now_ns: int | None = None, database: str = "",
                retention_policy: str = "", first_line: int = 1,
                max_errors: int | None = None) -> ParseResult:
    """:func:`parse` of ``body[start:end]`` without copying that piece first (``start``
    should be 0 or just after a newline, see :func:`pieces`). Holds the GIL: it makes
    the points."""
    body = _bytes_view(body)
    end = _size(body) if end is None else end
    if not COMPILED:
        return parse_pure(body[start:end], precision=precision, now_ns=now_ns,
                          database=database, retention_policy=retention_policy,
                          first_line=first_line, max_errors=max_errors)
    scale = precision_scale(precision)
    if now_ns is None:
        now_ns = _time.time_ns()
    now_ns -= now_ns % scale
    # The collector stays on: the points C makes are untracked, so it has nothing of
    # theirs to walk (the pure-Python path pauses it instead).
    result = ParseResult()
    result.bad_lines = _parse_compiled(body, start, end, scale, now_ns, database,
                                       retention_policy, result, first_line, max_errors)
    return result


def check(body: bytes | bytearray | memoryview, start: int = 0, end: int | None = None,
          *, precision: str = "n") -> int:
    """The offset of the first line of ``body[start:end]`` that :func:`parse` reports as
    bad, or -1 when there is none; makes no points.

    Compiled, the GIL is released while C scans, so a worker thread can check a large
    body while the trio thread runs (the few lines C leaves to Python hold it). The
    verdict is :func:`parse`'s: -1 exactly when ``parse(body[start:end]).bad_lines`` is 0.
    """
    scale = precision_scale(precision)
    body = _bytes_view(body)
    end = _size(body) if end is None else end
    if not COMPILED:
        piece = bytes(body[start:end])
        result = parse_pure(piece, precision=precision, now_ns=0, max_errors=1)
        if not result.bad_lines:
            return -1
        offset = 0
        for _ in range(result.errors[0].line - 1):
            offset = piece.index(b"\n", offset) + 1
        return start + offset
    pos = start
    while True:
        pos, _ = _lineparse.scan(body, pos, end, scale, 0, "", "", None)
        if pos >= end:
            return -1
        _, reason, _, after, _ = _python_line(body, pos, end, scale, 0)
        if reason is not None:
            return pos
        pos = after


def _size(body: bytes | bytearray | memoryview) -> int:
    return body.nbytes if isinstance(body, memoryview) else len(body)


def _bytes_view(body: bytes | bytearray | memoryview) -> bytes | bytearray | memoryview:
    """``body`` indexed by byte (a memoryview of wider items or more dimensions is cast:
    offsets and slices are bytes here, as C reads the buffer)."""
    if isinstance(body, memoryview) and (body.itemsize != 1 or body.ndim != 1):
        return body.cast("B")
    return body


def _parse_compiled(body: bytes | bytearray | memoryview, pos: int, end: int, scale: int,
                    now_ns: int, database: str, retention_policy: str, result: ParseResult,
                    number: int, max_errors: int | None) -> int:
    """C parses what it can; each line it stops at is parsed here. Returns the count of
    bad lines; ``number`` is the line number at ``pos``."""
    bad = 0
    points = result.points
    errors = result.errors
    scan = _lineparse.scan
    while True:
        pos, newlines = scan(body, pos, end, scale, now_ns, database, retention_policy,
                             points)
        if pos >= end:
            return bad
        number += newlines
        point, reason, line, pos, used = _python_line(body, pos, end, scale, now_ns)
        if point is not None:
            point.database = database
            point.retention_policy = retention_policy
            points.append(point)
        elif reason is not None:
            bad += 1
            if max_errors is None or len(errors) < max_errors:
                errors.append(LineError(number, _shown(line), reason))
        number += used


def _python_line(body: bytes | bytearray | memoryview, pos: int, end: int, scale: int,
                 now_ns: int) -> tuple[Point | None, str | None, str, int, int]:
    """The line at ``pos`` read by Python, with the lines after it that belong to it:
    (point, why it is bad, its text, the offset after it, how many physical lines it
    took)."""
    ends = [_lineparse.line_end(body, pos, end)]
    lines = [_decode(body[pos:ends[0]])]
    window = 1 if _alone(lines[0]) else _WINDOW
    while True:
        while len(ends) < window and ends[-1] < end:
            ends.append(_lineparse.line_end(body, ends[-1] + 1, end))
        if len(ends) > len(lines):
            lines = _decode(body[pos:ends[-1]]).split("\n")
        point, reason, line, used = _read_line(lines, 0, scale, now_ns, False)
        # A line that took every line read may go on further: read twice as many.
        if used < len(lines) or ends[-1] >= end or window == 1:
            break
        window *= 2
    last = ends[used - 1]
    return point, reason, line, last + 1 if last < end else end, used


def _alone(line: str) -> bool:
    """Whether :func:`_join` leaves ``line`` as it is, stripped of leading blanks or not
    (the two ways :func:`_parse_lines` may hand it over)."""
    if '"' not in line and "\\" not in line:
        return True
    stripped = line.lstrip(" \t\0")
    return (not line or _continues(line, None) is None) and \
        (not stripped or _continues(stripped, None) is None)


def _decode(raw: bytes | bytearray | memoryview) -> str:
    """As :func:`parse_pure` decodes a body (a newline is never part of a UTF-8 sequence,
    so a line decodes as it does inside the whole body)."""
    try:
        return str(raw, "utf-8")
    except UnicodeDecodeError:
        return _STRAY_BYTE.sub("\ufffd", str(raw, "utf-8", "surrogateescape"))


def _read_line(lines: list[str], index: int, scale: int, now_ns: int, bad_utf8: bool
               ) -> tuple[Point | None, str | None, str, int]:
    """One line of a body, ``lines[index]``, with the lines after it that InfluxDB reads
    as part of it: (its point, or why it is bad, or neither for a blank line or a
    comment; the line as shown in an error; the index of the next line). The one reading
    of a line, for :func:`_parse_lines` and for the lines C hands back.

    Lines are cut as InfluxDB's ``scanLine`` cuts them: a newline inside a quoted string
    value or right after a backslash belongs to the line (see :func:`_continues`). A
    ``\\r`` before a newline is part of the line, as in Kapacitor (``m v=1 1\\r`` is a
    bad timestamp). Leading spaces, tabs and NULs are skipped; a line starting with
    ``#`` is a comment. ``bad_utf8``: the text may hold lone surrogates (undecodable
    bytes of a str body), each an error for its line. The reason is returned as text:
    the exception would hold this frame through its traceback, a cycle per bad line
    that only the (paused) cyclic collector would free.
    """
    line = lines[index]
    index += 1
    if not line:
        return None, None, line, index
    quotes = '"' in line
    escapes = "\\" in line
    if escapes or quotes and (line[0] == "#" or line[0] in " \t\0" and
                              line.lstrip(" \t\0")[:1] == "#"):
        line, index = _join(line, lines, index)  # a newline may be escaped or quoted
        escapes = quotes = True
    if line[0] in " \t\0":
        line = line.lstrip(" \t\0")
        if not line:
            return None, None, line, index
    if line[0] == "#":
        return None, None, line, index
    try:
        if bad_utf8 and any("\udc80" <= c <= "\udcff" for c in line):
            raise _Bad("invalid UTF-8")
        try:
            if escapes:
                point = _parse_slow(line, scale, now_ns)
            elif quotes:
                point = _parse_quoted(line, scale, now_ns)
            else:
                point = _parse_fast(line, scale, now_ns)
        except _Bad:  # the scanner gives InfluxDB's reason
            if quotes and not escapes:  # a quoted value may go on on the next line
                line, index = _join(line, lines, index)
                if line[0] in " \t\0":
                    line = line.lstrip(" \t\0")
            point = _parse_slow(line, scale, now_ns)
    except _Bad as exc:
        return None, str(exc), line, index
    return point, None, line, index


def _parse_lines(text: str, scale: int, now_ns: int, database: str, retention_policy: str,
                 append: Any, errors: list[LineError], bad_utf8: bool, first_line: int,
                 max_errors: int | None) -> int:
    """Parse every line of ``text`` (see :func:`_read_line`); returns how many were
    bad."""
    bad = 0
    lines = text.split("\n")
    count = len(lines)
    index = 0
    while index < count:
        number = first_line + index
        point, reason, line, index = _read_line(lines, index, scale, now_ns, bad_utf8)
        if point is not None:
            point.database = database
            point.retention_policy = retention_policy
            append(point)
        elif reason is not None:
            bad += 1
            if max_errors is None or len(errors) < max_errors:
                errors.append(LineError(number, _shown(line), reason))
    return bad


def _join(line: str, lines: list[str], index: int) -> tuple[str, int]:
    """``line`` with the lines after it that InfluxDB reads as part of it (from
    ``lines[index]`` on), and the index of the line after them."""
    state = _continues(line, None)
    count = len(lines)
    while state is not None and index < count:
        line = line + "\n" + lines[index]
        state = _continues(lines[index], state)
        index += 1
    if state is not None and state[4]:
        # A backslash ends the body: InfluxDB's scanner steps over the byte after it
        # and the line it reads ends with the zero byte past the body's end.
        line += "\0"
    elif line[-1:] == "\n":  # the newline a final backslash escaped
        line = line[:-1]
    return line, index


#: What InfluxDB's ``scanLine`` looks at: an escape pair (or a backslash ending the
#: line) and the characters that move its state.
_SCAN_LINE = re.compile(r'\\[\s\S]|\\\Z|[ =,"]')


def _continues(line: str, state: tuple[bool, bool, int, int, bool] | None
               ) -> tuple[bool, bool, int, int, bool] | None:
    """InfluxDB's ``scanLine`` over one line of text: None when the line ends at its
    newline, else the scanner's state to go on with on the next line (inside a quoted
    field value, or a backslash just before the newline escapes it).

    The state is (quoted, in the fields, equals seen, commas seen, ended by a
    backslash); a backslash before the newline skips the newline itself, so the next
    line is read from its start.
    """
    if state is None and '"' not in line and line[-1] != "\\":
        return None  # neither a quote nor a final backslash can carry it on
    quoted, fields, equals, commas, _ = state or (False, False, 0, 0, False)
    for token in _SCAN_LINE.findall(line):
        if token[0] == "\\":
            if len(token) == 1:
                return quoted, fields, equals, commas, True
            continue
        if token == " ":
            fields = True
        elif not fields:
            continue
        elif not quoted and token == "=":
            equals += 1
        elif not quoted and token == ",":
            commas += 1
        elif token == '"' and equals > commas:
            quoted = not quoted
    if quoted:
        return quoted, fields, equals, commas, False
    return None


def _shown(line: str) -> str:
    text = line.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text if len(text) <= MAX_LINE_SHOWN else text[:MAX_LINE_SHOWN - 3] + "..."


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

def _parse_fast(line: str, scale: int, now_ns: int) -> Point:
    """A line without backslashes or quotes. Anything unusual raises :class:`_Bad` (or
    goes to the scanner) and the caller asks :func:`_parse_slow` for InfluxDB's answer."""
    parts = line.split(" ")
    n = len(parts)
    if n == 3 and (parts[2].isdigit() or _is_int(parts[2])):
        key, fields_text, ts_text = parts
        ts = _timestamp(ts_text, scale)
    elif n == 2:
        key, fields_text = parts
        ts = now_ns
    else:  # odd spacing (`m v=1 `, `m v=1 \t1`) or a bad timestamp: the scanner decides
        return _parse_slow(line, scale, now_ns)
    if len(key) > _LONG_KEY:
        raise _Bad("long key")  # the scanner measures it
    if fields_text[:1] in "\t\0":  # no fields, or blanks the scanner skips before them
        return _parse_slow(line, scale, now_ns)
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
        if len(tags) != len(tag_parts):
            raise _Bad("duplicate tags")
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
    return Point(name, tags, fields, ts)


# -- quoted strings without escapes (Telegraf's string fields) ------------------------------

def _parse_quoted(line: str, scale: int, now_ns: int) -> Point:
    """Lines with quoted string fields but no backslash; anything odd goes to the scanner."""
    key, sep, rest = line.partition(" ")
    if not sep or '"' in key or rest[:1] in "\t\0 ":
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
    head.fields = fields
    head.time = _timestamp(ts_text, scale) if ts_text else now_ns
    return head


# -- slow path: InfluxDB's scanner ------------------------------------------------------------
#
# A transcription of how InfluxDB 1.x's ``models.ParsePoints`` (vendored by Kapacitor
# 1.5.7) reads one line, reasons included. Its escape rules differ by section:
#
# - measurement and tags: a character is escaped when the one before it is a backslash
#   (so in ``h=a\\ b`` the space is escaped and the value is ``a\ b``); the measurement
#   then loses the backslash before ``,``, ``"``, space and ``=``, tag keys and values the
#   one before ``,``, space and ``=``;
# - fields: a backslash escapes the character after it, pairwise; field keys lose the
#   backslash before ``,``, ``"``, space and ``=``; in string values ``\\`` and ``\"`` are
#   unescaped, any other backslash is kept.

#: Where the measurement, a tag key and a tag value end: a character not escaped (not
#: after a backslash, whatever came before that backslash).
_MEASUREMENT_END = re.compile(r"(?<!\\)[, ]")
_TAG_KEY_END = re.compile(r"(?<!\\)[ ,=]")
_TAG_VALUE_END = re.compile(r"(?<!\\)[=, ]")
_FIELDS_STOP = re.compile(r'[\\"=, ]')
_TIME = re.compile(r"[ \t\0]*(-?[0-9]*)")
_LONG_KEY = 65535 // 4  # longer keys may exceed MaxKeyLength bytes: the scanner measures
_MAX_KEY_BYTES = 65535
_TIME_OUT_OF_RANGE = f"time outside range {MIN_TIME} - {MAX_TIME}"


def _unescape(text: str, specials: str) -> str:
    """Drop the backslash before each character of ``specials``: ``\\\\,`` is ``\\,``
    (a backslash never escapes another one; InfluxDB replaces each pair in turn)."""
    if "\\" not in text:
        return text
    for c in specials:
        pair = "\\" + c
        if pair in text:
            text = text.replace(pair, c)
    return text


def _unescape_string(text: str) -> str:
    """A string value: ``\\\\`` and ``\\"`` lose their backslash, left to right."""
    if "\\" not in text:
        return text
    out = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in '\\"':
            out.append(text[i + 1])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _parse_slow(line: str, scale: int, now_ns: int) -> Point:
    """One line (leading blanks removed) read as InfluxDB's ``parsePoint`` reads it."""
    n = len(line)
    if not n or line[0] == ",":
        raise _Bad("missing measurement")
    # the measurement (its first character is never an end)
    found = _MEASUREMENT_END.search(line, 1)
    if found is None:
        raise _Bad("missing fields")
    i = name_end = found.start()
    regions: list[tuple[int, int, int]] = []
    if line[i] == ",":
        i += 1
        while True:  # a tag: key
            start = i
            if i >= n or line[i] in " ,=":
                raise _Bad("missing tag key")
            found = _TAG_KEY_END.search(line, i + 1)
            if found is None or line[found.start()] != "=":
                raise _Bad("missing tag value")
            eq = found.start()
            i = eq + 1  # value
            if i >= n or line[i] in ", ":
                raise _Bad("missing tag value")
            found = _TAG_VALUE_END.search(line, i + 1)
            if found is None:
                raise _Bad("missing fields")
            i = found.start()
            if line[i] == "=":
                raise _Bad("invalid tag format")
            regions.append((start, eq, i))
            if line[i] == " ":
                break
            i += 1
        if len(regions) > 1 and len({line[a:b] for a, b, _ in regions}) != len(regions):
            raise _Bad("duplicate tags")
    key_end = i
    if key_end > _LONG_KEY:
        size = len(line[:key_end].encode("utf-8", "surrogateescape"))
        if size > _MAX_KEY_BYTES:
            raise _Bad(f"max key length exceeded: {size} > {_MAX_KEY_BYTES}")
    fields_start, fields_end = _scan_fields(line, key_end)
    ts = _scan_time(line, fields_end, scale, now_ns)
    name = _unescape(line[:name_end], ',=" ')
    tags: dict[str, str] = {}
    for start, eq, end in regions:
        tags[_unescape(line[start:eq], ",= ")] = _unescape(line[eq + 1:end], ",= ")
    if len(tags) > 1:  # in key order, as the fast path gives them
        tags = dict(sorted(tags.items()))
    return Point(name, tags, _fields(line[fields_start:fields_end]), ts)


def _scan_fields(line: str, i: int) -> tuple[int, int]:
    """Check the fields section as InfluxDB's ``scanFields`` does: (start, end)."""
    n = len(line)
    while i < n and line[i] in " \t\0":
        i += 1
    start = i
    quoted = False
    equals = commas = 0
    search = _FIELDS_STOP.search
    while i < n:
        found = search(line, i)  # the characters between do not change the state
        if found is None:
            i = n
            break
        i = found.start()
        c = line[i]
        if c == "\\":
            i = min(i + 2, n)  # a backslash ending the line is one character
            continue
        if c == '"' and equals > commas:
            quoted = not quoted
            i += 1
            continue
        if c == "=" and not quoted:
            equals += 1
            before = line[i - 1]
            if (before == " " or before == ",") and line[i - 2] != "\\":
                raise _Bad("missing field key")
            if i + 1 >= n or line[i + 1] in ", ":
                raise _Bad("missing field value")
            first = line[i + 1]
            if first in "0123456789.-Nn":
                i = _scan_number(line, i + 1)
                continue
            if first != '"':
                i = _scan_boolean(line, i + 1)
                continue
        if not quoted:
            if c == ",":
                commas += 1
            elif c == " ":
                break
        i += 1
    if quoted:
        raise _Bad("unbalanced quotes")
    if equals == 0 or commas != equals - 1:
        raise _Bad("invalid field format")
    return start, i


def _scan_number(line: str, i: int) -> int:
    """InfluxDB's ``scanNumber`` from ``i``: the index after the number. kapa-core also
    takes unsigned integers (``12u``), which InfluxDB 1.x refuses."""
    n = len(line)
    start = i
    end = i
    while end < n and line[end] not in ", ":
        end += 1
    if line[end - 1] == "u" and end - start > 1 and line[start:end - 1].isdigit() and \
            line[start:end - 1].isascii():
        if _too_long(line[start:end - 1]) or int(line[start:end - 1]) > _MAX_UINT:
            raise _Bad("value out of range")
        return end
    is_int = decimal = scientific = False
    if line[i] == "-":
        i += 1
        if i == n:
            raise _Bad("invalid number")
    while i < n:
        c = line[i]
        if c == "," or c == " ":
            break
        if c == "i" and i > start and not is_int:
            is_int = True
            i += 1
            continue
        if c == ".":
            if decimal:
                raise _Bad("invalid number")
            decimal = True
        if i > start and (c == "e" or c == "E"):
            scientific = True
            i += 1
            continue
        if (c == "+" or c == "-") and line[i - 1] in "eE":
            i += 1
            continue
        if i + 2 < n and (c == "N" or c == "n"):
            raise _Bad("invalid number")
        if not ("0" <= c <= "9" or c == "."):
            raise _Bad("invalid number")
        i += 1
    if is_int and (decimal or scientific):
        raise _Bad("invalid number")
    digits = i - start - is_int - decimal - (line[start] == "-")
    if digits == 0:
        raise _Bad("invalid number")
    text = line[start:i]
    if is_int:
        if text[-1] != "i":
            raise _Bad("invalid number")
        text = text[:-1]
        if len(text) >= 19 and not -_MAX_INT - 1 <= int(text) <= _MAX_INT:
            raise _Bad(f'unable to parse integer {text}: strconv.ParseInt: parsing "{text}": '
                       "value out of range")
    elif scientific or len(text) >= 25:
        try:
            value = float(text)
        except ValueError:
            raise _Bad("invalid float") from None
        if not -_MAX_FLOAT <= value <= _MAX_FLOAT:
            raise _Bad("invalid float")
    return i


def _scan_boolean(line: str, i: int) -> int:
    n = len(line)
    start = i
    if line[i] not in "tfTF":
        raise _Bad("invalid boolean")
    while i < n and line[i] not in ", ":
        i += 1
    if line[start:i] not in _BOOLS:
        raise _Bad("invalid boolean")
    return i


def _fields(text: str) -> dict[str, FieldValue]:
    """The fields of a checked section, read as InfluxDB's field iterator reads them
    (a later field of the same key wins)."""
    fields: dict[str, FieldValue] = {}
    n = len(text)
    pos = 0
    while pos < n:
        eq = pos
        while eq < n and not (text[eq] == "=" and (eq == 0 or text[eq - 1] != "\\")):
            eq += 1
        end = eq + 1
        quoted = False
        while end < n:
            c = text[end]
            if c == "\\" and end + 1 < n and text[end + 1] in '"\\':
                end += 2
                continue
            if c == '"':
                quoted = not quoted
            elif c == "," and not quoted:
                break
            end += 1
        key = _unescape(text[pos:eq], ',=" ')
        value = text[eq + 1:end]
        pos = end + 1
        if not key or not value:  # InfluxDB skips a field it cannot delimit
            continue
        first = value[0]
        try:
            if first == '"':
                if value[-1] == '"' or value[-1] < "\x80":
                    fields[key] = _unescape_string(value[1:-1])
                else:  # text after the closing quote: InfluxDB drops its last byte
                    raw = value.encode("utf-8", "surrogateescape")[1:-1]
                    fields[key] = _unescape_string(_STRAY_BYTE.sub(
                        "\ufffd", str(raw, "utf-8", "surrogateescape")))
            elif first in "0123456789-.nNiI":
                last = value[-1]
                if last == "i" or last == "u":
                    fields[key] = int(value[:-1])
                else:
                    fields[key] = float(value)
            else:
                fields[key] = _BOOLS[value]
        except (ValueError, KeyError):
            # The scanner and the iterator disagree on where this value is (a key
            # ending in an escaped backslash before "="): InfluxDB panics here.
            raise _Bad("invalid field format") from None
    return fields


def _scan_time(line: str, i: int, scale: int, now_ns: int) -> int:
    """The optional timestamp after the fields (InfluxDB's ``scanTime`` and checks):
    blanks before it are skipped, only spaces may follow it."""
    # Every part of the pattern is optional: it always matches.
    found = cast("re.Match[str]", _TIME.match(line, i))
    i = found.end()
    if i < len(line) and line[i] not in " \n":
        raise _Bad("bad timestamp")
    text = found.group(1)
    if not text:
        return now_ns
    if text == "-":
        raise _Bad('strconv.ParseInt: parsing "-": invalid syntax')
    if _too_long(text) or not -_MAX_INT - 1 <= int(text) <= _MAX_INT:
        raise _Bad(f'strconv.ParseInt: parsing "{text}": value out of range')
    value = int(text)
    if scale != 1 and value not in (0, 1) and (
            value == MIN_TIME or not -_MAX_INT - 1 <= value * scale <= _MAX_INT):
        raise _Bad(_TIME_OUT_OF_RANGE)
    ts = value * scale
    if not MIN_TIME <= ts <= MAX_TIME:
        raise _Bad(_TIME_OUT_OF_RANGE)
    if line[i:].strip(" "):
        raise _Bad("point is invalid")
    return ts

"""Times as Go's ``time.Time`` reads them from JSON (RFC3339 in quotes), with Go's own
error words: request bodies (replays) and recording files hold such times."""

from __future__ import annotations

import json
import re
from typing import Any

from kapa_core.errors import APIError
from kapa_core.gotemplate.lexer import go_quote as _go_quote

S = 1_000_000_000


def _go_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_RFC3339 = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{1,2}):([0-9]{2}):([0-9]{2})"
                      r"([.,][0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})")
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a date of the proleptic Gregorian calendar (year 0 too)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def parse_go_time(raw: Any) -> int:
    """A JSON value as Go's time.Time.UnmarshalJSON reads it (RFC3339, in quotes);
    APIError with Go's message otherwise."""
    text = raw if isinstance(raw, str) else None
    layout = '"2006-01-02T15:04:05Z07:00"'
    source = _go_json(raw)
    if text is None:
        raise APIError(400, f"parsing time {_go_quote(source)} as {_go_quote(layout)}: "
                       f"cannot parse {_go_quote(source)} as {_go_quote(chr(34))}")
    m = _RFC3339.fullmatch(text)
    if m is None:
        rest, elem = _go_time_mismatch(text)
        raise APIError(400, f"parsing time {_go_quote(source)} as {_go_quote(layout)}: "
                       f"cannot parse {_go_quote(rest)} as {_go_quote(elem)}")
    year, month, day, hour, minute, second = (int(m[i]) for i in range(1, 7))
    for name, value, low, high in (("month", month, 1, 12), ("hour", hour, 0, 23),
                                   ("minute", minute, 0, 59), ("second", second, 0, 59)):
        if not low <= value <= high:
            raise APIError(400, f"parsing time {_go_quote(source)}: {name} out of range")
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= day <= (29 if month == 2 and leap else _MONTH_DAYS[month - 1]):
        raise APIError(400, f"parsing time {_go_quote(source)}: day out of range")
    offset = 0
    if m[8] != "Z":
        sign = -1 if m[8][0] == "-" else 1
        offset = sign * (int(m[8][1:3]) * 3600 + int(m[8][4:6]) * 60)
    seconds = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    frac = int((m[7] or ".0")[1:10].ljust(9, "0"))
    return (seconds - offset) * S + frac


def _go_time_mismatch(text: str) -> tuple[str, str]:
    """Where Go's RFC3339 parser gives up on ``text``: (rest of the value, layout part)."""
    value = text + '"'
    steps = (("2006", r"[0-9]{4}"), ("-", "-"), ("01", r"[0-9]{2}"), ("-", "-"),
             ("02", r"[0-9]{2}"), ("T", "T"), ("15", r"[0-9]{1,2}"), (":", ":"),
             ("04", r"[0-9]{2}"), (":", ":"), ("05", r"[0-9]{2}(?:[.,][0-9]+)?"),
             ("Z07:00", r"Z|[+-][0-9]{2}:[0-9]{2}"), ('"', '"'))
    for elem, pattern in steps:
        m = re.match(pattern, value)
        if m is None:
            return value, elem
        value = value[m.end():]
    return value, '"'

"""Run-time value types of TICKscript lambdas beyond Python's own.

``int``/``float``/``str``/``bool`` are themselves; durations are
:class:`~kapa_core.models.duration.Duration`; point times are :class:`Time`;
a field or tag a point lacks is :data:`MISSING`.
"""

from __future__ import annotations

import datetime as dt
import re

from kapa_core.models.duration import Duration
from kapa_core.tick.regex import PATTERN_TYPES


class Time(int):
    """A point time in nanoseconds since the epoch (UTC)."""

    __slots__ = ()

    def to_datetime(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(int(self) // 1_000_000_000, dt.UTC).replace(
            microsecond=(int(self) % 1_000_000_000) // 1000)


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING = _Missing()
RegexType = re.Pattern


def type_name(value: object) -> str:
    """Kapacitor's name of a value's type, for error messages."""
    if value is MISSING:
        return "missing"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, Duration):
        return "duration"
    if isinstance(value, Time):
        return "time"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, PATTERN_TYPES):
        return "regex"
    return type(value).__name__

"""Go-style durations: ``1m0s``, ``500ms``, ``1h30m``.

Kapacitor's configuration and API speak Go's ``time.Duration`` text form. ``Duration`` is an
``int`` of nanoseconds, so arithmetic is free; ``str()`` prints Go's form and
``Duration.parse`` reads it (TICKscript additionally allows ``d`` and ``w``).
"""

from __future__ import annotations

import re

NANOSECOND = 1
MICROSECOND = 1_000
MILLISECOND = 1_000_000
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
WEEK = 7 * DAY

_UNITS = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "µs": MICROSECOND,  # U+00B5 micro sign
    "μs": MICROSECOND,  # U+03BC greek mu
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}
_TICK_UNITS = {**_UNITS, "u": MICROSECOND, "µ": MICROSECOND, "d": DAY, "w": WEEK}

#: Go's time.Duration is an int64 of nanoseconds: about 292 years either way.
MIN_NS = -(2**63)
MAX_NS = 2**63 - 1

_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d|w|u|µ)")


class Duration(int):
    """Nanoseconds, printed the way Go prints a ``time.Duration``."""

    __slots__ = ()
    go_type = "time.Duration"  # its Go type name, as templates report it

    @classmethod
    def parse(cls, text: str, *, tick: bool = False) -> Duration:
        """Parse Go duration text (``tick=True`` also accepts ``d``, ``w`` and ``u``).

        Raises ValueError with a message saying what was expected, also for a value
        outside Go's int64 nanoseconds (``1e308ns`` is not even syntax; ``3000000h`` is out
        of range), which Go's ``time.ParseDuration`` refuses as "invalid duration".
        """
        units = _TICK_UNITS if tick else _UNITS
        s = text.strip()
        if s in ("0", "+0", "-0"):
            return cls(0)
        sign = 1
        if s[:1] in "+-" and s:
            sign = -1 if s[0] == "-" else 1
            s = s[1:]
        if not s:
            raise ValueError(f"invalid duration {text!r}")
        total = 0
        pos = 0
        for match in _PART.finditer(s):
            if match.start() != pos or match.group(2) not in units:
                raise ValueError(f"invalid duration {text!r} (expected e.g. 10s, 1m0s, 500ms)")
            number, unit = match.groups()
            if len(number.partition(".")[0]) > 20:  # past int64 in any unit (and int()
                raise _out_of_range(text)              # refuses 4300 digits)
            scale = units[unit]
            if "." in number:
                whole, _, frac = number.partition(".")
                total += int(whole or "0") * scale
                frac = frac[:30]  # digits past a nanosecond's precision, as Go drops them
                if frac:
                    total += int(frac) * scale // 10 ** len(frac)
            else:
                total += int(number) * scale
            pos = match.end()
            if total > MAX_NS + 1:
                raise _out_of_range(text)
        if pos != len(s):
            raise ValueError(f"invalid duration {text!r} (expected e.g. 10s, 1m0s, 500ms)")
        if not MIN_NS <= sign * total <= MAX_NS:
            raise _out_of_range(text)
        return cls(sign * total)

    def __str__(self) -> str:
        return format_go(int(self))

    def go_string(self) -> str:
        """How Go's fmt prints a time.Duration (templates use it)."""
        return format_go(int(self))

    def __repr__(self) -> str:
        return f"Duration({format_go(int(self))!r})"


def _out_of_range(text: str) -> ValueError:
    shown = text if len(text) <= 60 else text[:57] + "..."
    return ValueError(f"invalid duration {shown!r}: out of range (at most "
                      f"{format_go(MAX_NS)} either way)")


def _fraction(value: int, digits: int) -> str:
    """``value`` as a decimal with ``digits`` fractional digits, trailing zeros dropped."""
    whole, frac = divmod(value, 10**digits)
    text = str(whole)
    if frac:
        text += "." + str(frac).rjust(digits, "0").rstrip("0")
    return text


def format_go(ns: int) -> str:
    """Format nanoseconds exactly as Go's ``time.Duration.String``."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < SECOND:
        if u < MICROSECOND:
            return f"{sign}{u}ns"
        if u < MILLISECOND:
            return f"{sign}{_fraction(u, 3)}µs"
        return f"{sign}{_fraction(u, 6)}ms"
    out = []
    hours, rest = divmod(u, HOUR)
    minutes, rest = divmod(rest, MINUTE)
    if hours:
        out.append(f"{hours}h")
    if hours or minutes:
        out.append(f"{minutes}m")
    out.append(_fraction(rest, 9) + "s")
    return sign + "".join(out)

"""Go values templates see: ``time.Time`` (:class:`GoTime`) and ``map[string]string``."""

from __future__ import annotations

import datetime as dt

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


class StringMap(dict):
    """A Go ``map[string]string``: ``index`` of a missing key gives ``""``."""

    zero = ""


class Month(int):
    def go_string(self) -> str:
        return _MONTHS[int(self) - 1]


class Weekday(int):
    def go_string(self) -> str:
        return _DAYS[(int(self) - 1) % 7] if int(self) else "Sunday"


class GoTime:
    """A UTC instant in Unix nanoseconds with the methods templates call on time.Time."""

    __slots__ = ("ns",)

    def __init__(self, ns: int) -> None:
        self.ns = ns

    def _dt(self) -> dt.datetime:
        return _EPOCH + dt.timedelta(microseconds=self.ns // 1000)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GoTime) and other.ns == self.ns

    def __hash__(self) -> int:
        return hash(self.ns)

    def unix_nano(self) -> int:
        return self.ns

    def go_string(self) -> str:
        d = self._dt()
        frac = self.ns % 1_000_000_000
        text = d.strftime("%Y-%m-%d %H:%M:%S")
        if frac:
            text += "." + f"{frac:09d}".rstrip("0")
        return text + " +0000 UTC"

    # -- methods a template may call -----------------------------------------------------
    def String(self) -> str:
        return self.go_string()

    def Unix(self) -> int:
        return self.ns // 1_000_000_000

    def UnixNano(self) -> int:
        return self.ns

    def UnixMilli(self) -> int:
        return self.ns // 1_000_000

    def UTC(self) -> GoTime:
        return self

    def Year(self) -> int:
        return self._dt().year

    def Month(self) -> Month:
        return Month(self._dt().month)

    def Day(self) -> int:
        return self._dt().day

    def Hour(self) -> int:
        return self._dt().hour

    def Minute(self) -> int:
        return self._dt().minute

    def Second(self) -> int:
        return self._dt().second

    def Nanosecond(self) -> int:
        return self.ns % 1_000_000_000

    def Weekday(self) -> Weekday:
        return Weekday((self._dt().weekday() + 1) % 7)

    def Format(self, layout: str) -> str:
        return format_layout(self, layout)


_TOKENS = [
    ("January", lambda t, d: _MONTHS[d.month - 1]), ("Monday", lambda t, d: _DAYS[d.weekday()]),
    ("2006", lambda t, d: f"{d.year:04d}"), ("Z07:00", lambda t, d: "Z"),
    ("-07:00", lambda t, d: "+00:00"), ("Z0700", lambda t, d: "Z"),
    ("-0700", lambda t, d: "+0000"), ("Jan", lambda t, d: _MONTHS[d.month - 1][:3]),
    ("Mon", lambda t, d: _DAYS[d.weekday()][:3]), ("MST", lambda t, d: "UTC"),
    ("01", lambda t, d: f"{d.month:02d}"), ("02", lambda t, d: f"{d.day:02d}"),
    ("_2", lambda t, d: f"{d.day:2d}"), ("15", lambda t, d: f"{d.hour:02d}"),
    ("03", lambda t, d: f"{(d.hour % 12) or 12:02d}"), ("04", lambda t, d: f"{d.minute:02d}"),
    ("05", lambda t, d: f"{d.second:02d}"), ("06", lambda t, d: f"{d.year % 100:02d}"),
    ("PM", lambda t, d: "PM" if d.hour >= 12 else "AM"),
    ("pm", lambda t, d: "pm" if d.hour >= 12 else "am"),
    ("1", lambda t, d: str(d.month)), ("2", lambda t, d: str(d.day)),
    ("3", lambda t, d: str((d.hour % 12) or 12)), ("4", lambda t, d: str(d.minute)),
    ("5", lambda t, d: str(d.second)),
]


def format_layout(t: GoTime, layout: str) -> str:
    """Go's reference-time layouts (``2006-01-02T15:04:05.000Z07:00``)."""
    d = t._dt()
    out = []
    i = 0
    while i < len(layout):
        if layout[i] in ".," and i + 1 < len(layout) and layout[i + 1] in "09":
            j = i + 1
            while j < len(layout) and layout[j] == layout[i + 1]:
                j += 1
            if j >= len(layout) or not layout[j].isdigit():
                digits = j - i - 1
                frac = f"{t.ns % 1_000_000_000:09d}"[:digits]
                if layout[i + 1] == "9":
                    frac = frac.rstrip("0")
                    out.append(("." + frac) if frac else "")
                else:
                    out.append(layout[i] + frac)
                i = j
                continue
        for token, fn in _TOKENS:
            if layout.startswith(token, i):
                out.append(fn(t, d))
                i += len(token)
                break
        else:
            out.append(layout[i])
            i += 1
    return "".join(out)

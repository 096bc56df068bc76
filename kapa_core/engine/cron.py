"""Cron expressions as Kapacitor's batch queries read them (the gorhill/cronexpr dialect).

Fields, separated by blanks::

    [second] minute hour day-of-month month day-of-week [year]

* 5 fields: ``minute hour dom month dow`` (second 0, any year);
* 6 fields: ``minute hour dom month dow year`` (second 0) — the sixth field is the
  *year*, not a leading second, exactly as in cronexpr;
* 7 fields: ``second minute hour dom month dow year``; fields past the 7th are ignored.

Each field is a comma list of ``*`` or ``?``, ``n``, ``a-b``, ``*/step``, ``n/step``
(from n to the field's maximum) and ``a-b/step``. Months and weekdays also take names
(``jan``, ``january``, ``mon``, ``monday``; case-insensitive); weekday 7 is Sunday.
Day of month also takes ``L`` (last day), ``LW`` (last weekday) and ``15W`` (the weekday
nearest the 15th, never crossing the month); day of week takes ``5L`` (the last Friday)
and ``5#3`` (the third Friday). When both day fields are restricted a day matching
either one fires, as in crontab. ``@yearly``/``@annually``, ``@monthly``, ``@weekly``,
``@daily`` and ``@hourly`` are shorthands.

Times are wall-clock times in the local time zone, like Kapacitor's cron ticker.
:meth:`CronExpression.next` returns the first matching whole second strictly after
the given time (a time on a matching second itself is not returned again).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass

UTC = dt.UTC

_ALIASES = {
    "@yearly": "0 0 0 1 1 * *",
    "@annually": "0 0 0 1 1 * *",
    "@monthly": "0 0 0 1 * * *",
    "@weekly": "0 0 0 * * 0 *",
    "@daily": "0 0 0 * * * *",
    "@hourly": "0 0 * * * * *",
}

_MONTHS = {name: i + 1 for i, names in enumerate(
    [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"),
     ("may",), ("jun", "june"), ("jul", "july"), ("aug", "august"), ("sep", "september"),
     ("oct", "october"), ("nov", "november"), ("dec", "december")]) for name in names}
_WEEKDAYS = {name: i for i, names in enumerate(
    [("sun", "sunday"), ("mon", "monday"), ("tue", "tuesday"), ("wed", "wednesday"),
     ("thu", "thursday"), ("fri", "friday"), ("sat", "saturday")]) for name in names}

MAX_YEAR = 2099


class CronError(ValueError):
    """A malformed cron expression; the message names the field."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    value: str  # regex of one value
    names: dict[str, int]


_SECOND = _Field("second", 0, 59, r"0?[0-9]|[1-5][0-9]", {})
_MINUTE = _Field("minute", 0, 59, r"0?[0-9]|[1-5][0-9]", {})
_HOUR = _Field("hour", 0, 23, r"0?[0-9]|1[0-9]|2[0-3]", {})
_DOM = _Field("day-of-month", 1, 31, r"0?[1-9]|[12][0-9]|3[01]", {})
_MONTH = _Field("month", 1, 12, r"0?[1-9]|1[012]|" + "|".join(sorted(_MONTHS, key=len,
                                                                          reverse=True)),
                _MONTHS)
_DOW = _Field("day-of-week", 0, 6, r"0?[0-7]|" + "|".join(sorted(_WEEKDAYS, key=len,
                                                                  reverse=True)),
              {**_WEEKDAYS, "7": 0, "07": 0})
_YEAR = _Field("year", 1970, MAX_YEAR, r"19[789][0-9]|20[0-9]{2}", {})


def _number(field: _Field, text: str) -> int:
    return field.names[text] if text in field.names else int(text)


def _entries(field: _Field, text: str) -> tuple[set[int], bool, list[str]]:
    """The values of a comma list, whether it was a wildcard, and the entries left for
    the day fields' special forms (``L``, ``W``, ``#``)."""
    values: set[int] = set()
    wildcard = False
    special: list[str] = []
    v = f"(?:{field.value})"
    for raw in text.split(","):
        if not raw:
            continue
        entry = raw.lower()
        if entry in ("*", "?"):
            wildcard = True
            values.update(range(field.low, field.high + 1))
            continue
        if re.fullmatch(v, entry):
            values.add(_number(field, entry))
            continue
        match = re.fullmatch(f"({v})-({v})", entry)
        if match:
            first, last = _number(field, match[1]), _number(field, match[2])
            values.update(range(first, last + 1))
            continue
        match = (re.fullmatch(r"\*/(\d+)", entry) or re.fullmatch(f"({v})/(\\d+)", entry)
                 or re.fullmatch(f"({v})-({v})/(\\d+)", entry))
        if match:
            groups = match.groups()
            step = int(groups[-1])
            if not 1 <= step <= min(field.high, 59):
                raise CronError(f"invalid interval {entry}")
            first = field.low if entry.startswith("*") else _number(field, groups[0])
            last = _number(field, groups[1]) if len(groups) == 3 else field.high
            values.update(range(first, last + 1, step))
            continue
        special.append(raw)
    return values, wildcard, special


def _generic(field: _Field, text: str) -> list[int]:
    values, _, special = _entries(field, text)
    if special:
        raise CronError(f"syntax error in {field.name} field: '{special[0]}'")
    if not values:
        raise CronError(f"{field.name} field: no value in {text!r}")
    return sorted(values)


@dataclass
class CronExpression:
    """A parsed cron expression; :func:`parse` builds it."""

    text: str
    seconds: list[int]
    minutes: list[int]
    hours: list[int]
    months: list[int]
    years: list[int]
    days_of_month: set[int]
    workdays_of_month: set[int]
    last_day_of_month: bool
    last_workday_of_month: bool
    dom_restricted: bool
    days_of_week: set[int]
    nth_days_of_week: set[tuple[int, int]]  # (weekday, n-th in the month)
    last_days_of_week: set[int]
    dow_restricted: bool

    def days_in(self, year: int, month: int) -> set[int]:
        """Days of ``month`` that the day-of-month and day-of-week fields select."""
        last = calendar.monthrange(year, month)[1]
        if not self.dom_restricted and not self.dow_restricted:
            return set(range(1, last + 1))
        days: set[int] = set()
        if self.dom_restricted:
            days.update(d for d in self.days_of_month if d <= last)
            if self.last_day_of_month:
                days.add(last)
            if self.last_workday_of_month:
                days.add(_workday(year, month, last, last))
            days.update(_workday(year, month, d, last) for d in self.workdays_of_month
                        if d <= last)
        if self.dow_restricted:
            first_weekday = (calendar.weekday(year, month, 1) + 1) % 7  # 0 = Sunday
            for day in range(1, last + 1):
                weekday = (first_weekday + day - 1) % 7
                if weekday in self.days_of_week:
                    days.add(day)
                if (weekday, (day - 1) // 7 + 1) in self.nth_days_of_week:
                    days.add(day)
                if weekday in self.last_days_of_week and day + 7 > last:
                    days.add(day)
        return days

    def next_wall(self, after: dt.datetime) -> dt.datetime | None:
        """The first matching wall-clock second strictly after ``after``.

        Only the fields of ``after`` are read (its time zone is ignored); the result has
        the matching fields, carried with ``tzinfo=UTC`` so that arithmetic on it is
        plain wall-clock arithmetic without DST jumps.
        """
        t = after.replace(microsecond=0, tzinfo=UTC) + dt.timedelta(seconds=1)
        cached: tuple[int, int, set[int]] | None = None
        while t.year <= MAX_YEAR:
            if t.year not in self.years:
                later = [y for y in self.years if y > t.year]
                if not later:
                    return None
                t = dt.datetime(later[0], 1, 1, tzinfo=UTC)
                continue
            if t.month not in self.months:
                t = (dt.datetime(t.year + 1, 1, 1, tzinfo=UTC) if t.month == 12
                     else dt.datetime(t.year, t.month + 1, 1, tzinfo=UTC))
                continue
            if cached is None or cached[:2] != (t.year, t.month):
                cached = (t.year, t.month, self.days_in(t.year, t.month))
            if t.day not in cached[2]:
                t = dt.datetime(t.year, t.month, t.day, tzinfo=UTC) + dt.timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + dt.timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t = t.replace(second=0) + dt.timedelta(minutes=1)
                continue
            if t.second not in self.seconds:
                t += dt.timedelta(seconds=1)
                continue
            return t
        return None

    def next_ns(self, after_ns: int) -> int | None:
        """The next firing time in Unix nanoseconds (local wall-clock matching)."""
        local = dt.datetime.fromtimestamp(after_ns // 1_000_000_000, UTC).astimezone()
        found = self.next_wall(local)
        if found is None:
            return None
        # A naive datetime's timestamp() reads it as local wall-clock time.
        return int(found.replace(tzinfo=None).timestamp()) * 1_000_000_000


def _workday(year: int, month: int, day: int, last: int) -> int:
    """The weekday nearest ``day`` without leaving the month (the ``W`` rule)."""
    weekday = calendar.weekday(year, month, day)  # 0 = Monday
    if weekday == 5:  # Saturday
        return day - 1 if day > 1 else day + 2
    if weekday == 6:  # Sunday
        return day + 1 if day < last else day - 2
    return day


def parse(text: str) -> CronExpression:
    """Parse ``text``; :class:`CronError` says what is wrong."""
    normalized = text
    for alias, expansion in _ALIASES.items():
        normalized = normalized.replace(alias, expansion)
    fields = normalized.split()
    if len(fields) < 5:
        raise CronError(f"missing field(s) in cron expression {text!r} (expected 5, 6 "
                        "or 7 fields)")
    fields = fields[:7]
    second = "0"
    if len(fields) == 7:
        second, fields = fields[0], fields[1:]
    minute, hour, dom, month, dow = fields[:5]
    year = fields[5] if len(fields) == 6 else "*"

    dom_values, dom_any, dom_special = _entries(_DOM, dom)
    last_day = last_workday = False
    workdays: set[int] = set()
    for raw in dom_special:
        entry = raw.lower()
        match = re.fullmatch(f"({_DOM.value})w", entry)
        if entry == "l":
            last_day = True
        elif entry == "lw":
            last_workday = True
        elif match:
            workdays.add(int(match[1]))
        else:
            raise CronError(f"syntax error in day-of-month field: '{raw}'")

    dow_values, dow_any, dow_special = _entries(_DOW, dow)
    nth: set[tuple[int, int]] = set()
    last_weekdays: set[int] = set()
    for raw in dow_special:
        entry = raw.lower()
        last_match = re.fullmatch(f"({_DOW.value})l", entry)
        nth_match = re.fullmatch(f"({_DOW.value})#([1-5])", entry)
        if last_match:
            last_weekdays.add(_number(_DOW, last_match[1]))
        elif nth_match:
            nth.add((_number(_DOW, nth_match[1]), int(nth_match[2])))
        else:
            raise CronError(f"syntax error in day-of-week field: '{raw}'")
    expr = CronExpression(
        text=text, seconds=_generic(_SECOND, second), minutes=_generic(_MINUTE, minute),
        hours=_generic(_HOUR, hour), months=_generic(_MONTH, month),
        years=_generic(_YEAR, year), days_of_month=dom_values, workdays_of_month=workdays,
        last_day_of_month=last_day, last_workday_of_month=last_workday,
        dom_restricted=not dom_any, days_of_week={d % 7 for d in dow_values},
        nth_days_of_week=nth, last_days_of_week=last_weekdays, dow_restricted=not dow_any)
    if not (dom_values or last_day or last_workday or workdays):
        raise CronError(f"day-of-month field: no day in {dom!r}")
    if not (dow_values or nth or last_weekdays):
        raise CronError(f"day-of-week field: no day in {dow!r}")
    return expr

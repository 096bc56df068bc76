"""Alert events: what an alert node publishes to a topic and what handlers receive.

``Event.alert_data()`` is the JSON body Kapacitor's post, tcp, log and exec handlers send,
with the same keys in the same order: ``id, message, details, time, duration, level,
data, previousLevel, recoverable``. ``Event.template_data()`` is what handler-side
templates (``[[httppost]] alert-template``, Kafka, MQTT topics, post URLs) see.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from typing import Any

from kapa_core.alert.gojson import Struct, dumps
from kapa_core.alert.levels import Level
from kapa_core.models.batch import format_time
from kapa_core.models.duration import Duration, format_go
from kapa_core.models.gojson import string as _string


class GoStruct(Struct):
    """A Go struct in templates: a field it does not have is an execution error (a map
    would give no value)."""

    go_type = "struct"

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            from kapa_core.gotemplate import ExecError

            raise ExecError(f"can't evaluate field {key} in type {self.go_type}") from None


class AlertDataStruct(GoStruct):
    go_type = "alert.Data"


class ResultStruct(GoStruct):
    go_type = "models.Result"
    #: the event whose data this is: Kapacitor's models.Result is a fmt.Stringer
    #: printing its JSON (``{{ .Data }}``), written when a template asks for it
    event: Event | None = None

    def go_string(self) -> str:
        return dumps(self.event.result()) if self.event is not None else ""


_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z")


def _row_values(row: dict[str, Any], go_time: Any) -> list[Any]:
    """A row's values as Kapacitor's models.Row holds them: the ``time`` column is a
    ``time.Time`` (templates print it as Go does), not its JSON text."""
    values = list(row.get("values", ()))
    columns = row.get("columns") or ()
    if not columns or columns[0] != "time":
        return values
    out = []
    for value in values:
        match = _RFC3339.fullmatch(value[0]) if value and isinstance(value[0], str) else None
        if match is None:
            out.append(value)
            continue
        year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
        seconds = calendar.timegm((year, month, day, hour, minute, second))
        ns = seconds * 10**9 + int((match.group(7) or "").ljust(9, "0"))
        out.append([go_time(ns), *value[1:]])
    return out


class RowStruct(GoStruct):
    go_type = "*models.Row"


class ServerInfo(GoStruct):
    go_type = "kapacitor.serverInfo"


class MessageInfo(GoStruct):
    """What an alert node's message (and, with ``Message``, details) template sees."""

    go_type = "kapacitor.messageInfo"


class Int64(int):
    """An integer field value in templates: Go sees it as an ``int64`` (``printf "%T"``)."""

    __slots__ = ()
    go_type = "int64"


def template_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Point fields as alert templates see them (integers are int64)."""
    for value in fields.values():
        if type(value) is int:
            return {k: Int64(v) if type(v) is int else v for k, v in fields.items()}
    return fields


class GoDuration(Duration):
    """A ``time.Duration`` in alert templates, with the methods Go templates may call."""

    __slots__ = ()

    def _split(self, unit: int) -> float:
        # Go truncates towards zero: whole units plus the rest as a fraction.
        whole = abs(int(self)) // unit
        rest = abs(int(self)) - whole * unit
        value = float(whole) + rest / unit
        return -value if self < 0 else value

    def Hours(self) -> float:  # noqa: N802
        return self._split(3_600_000_000_000)

    def Minutes(self) -> float:  # noqa: N802
        return self._split(60_000_000_000)

    def Seconds(self) -> float:  # noqa: N802
        return self._split(1_000_000_000)

    def _whole(self, unit: int) -> int:
        whole = abs(int(self)) // unit
        return -whole if self < 0 else whole

    def Milliseconds(self) -> int:  # noqa: N802
        return self._whole(1_000_000)

    def Microseconds(self) -> int:  # noqa: N802
        return self._whole(1_000)

    def Nanoseconds(self) -> int:  # noqa: N802
        return int(self)

    def String(self) -> str:  # noqa: N802
        return str(self)


def _row_json(row: dict[str, Any]) -> str:
    """``dumps(Struct(row))``: a series row in its own key order, its ``values`` (lists
    of scalars) written without the generic encoder's dispatch."""
    parts = []
    for key, value in row.items():
        if key == "values" and type(value) is list and all(type(v) is list for v in value):
            text = "[" + ",".join("[" + ",".join(map(dumps, v)) + "]"
                                  for v in value) + "]"
        elif key == "columns" and type(value) is list:
            text = "[" + ",".join(map(dumps, value)) + "]"
        else:
            text = dumps(value)
        parts.append(_string(str(key)) + ":" + text)
    return "{" + ",".join(parts) + "}"


class EventState:
    """The last known state of one alert ID in a topic.

    ``message`` and ``details`` may be given as functions: each is rendered the first time
    something reads it (a handler, the events API, persistence), so an alert without
    handlers or topics — or whose handlers never look at them — does not pay for the
    templates.
    """

    __slots__ = ("_details", "_message", "duration", "id", "level", "time")

    def __init__(self, id: str, message: str | Callable[[], str],
                 details: str | Callable[[], str], time: int, duration: int,
                 level: Level) -> None:
        self.id = id
        self._message = message
        self._details = details
        self.time = time  # ns
        self.duration = duration  # ns
        self.level = level

    @property
    def message(self) -> str:
        message = self._message
        if not isinstance(message, str):
            message = self._message = message()
        return message

    @property
    def details(self) -> str:
        details = self._details
        if not isinstance(details, str):
            details = self._details = details()
        return details

    def _key(self) -> tuple[Any, ...]:
        return (self.id, self.message, self.details, self.time, self.duration, self.level)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EventState) and self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value: unhashable

    def __repr__(self) -> str:
        return (f"EventState(id={self.id!r}, message={self.message!r}, level={self.level!s}, "
                f"time={self.time}, duration={self.duration})")

    def to_json(self) -> dict[str, Any]:
        """The ``state`` object of ``/alerts/topics/<t>/events`` (duration as Go text)."""
        return {"message": self.message, "details": self.details,
                "time": format_time(self.time), "duration": format_go(self.duration),
                "level": str(self.level)}

    def to_store(self) -> dict[str, Any]:
        return {"id": self.id, "message": self.message, "details": self.details,
                "time": self.time, "duration": self.duration, "level": int(self.level)}

    @classmethod
    def from_store(cls, raw: dict[str, Any]) -> EventState:
        return cls(raw["id"], raw["message"], raw["details"], int(raw["time"]),
                   int(raw["duration"]), Level(int(raw["level"])))


class Event:
    """One alert event on its way to a topic and its handlers.

    ``series`` (the alert data's rows) may be given as a function, rendered when first
    read: formatting rows is wasted work for an event that no handler looks at.
    """

    __slots__ = ("_series", "category", "changed", "fields", "group", "name",
                 "previous_level", "recoverable", "state", "tags", "task_name", "topic")

    def __init__(self, topic: str, state: EventState, previous_level: Level = Level.OK,
                 name: str = "", task_name: str = "", category: str = "", group: str = "nil",
                 tags: dict[str, str] | None = None, fields: dict[str, Any] | None = None,
                 series: list[dict[str, Any]] | Callable[[], list[dict[str, Any]]]
                 | None = None, recoverable: bool = True, changed: bool = True) -> None:
        self.topic = topic
        self.state = state
        self.previous_level = previous_level
        self.name = name
        self.task_name = task_name
        self.category = category
        self.group = group
        self.tags = {} if tags is None else tags
        self.fields = {} if fields is None else fields
        self._series = [] if series is None else series
        self.recoverable = recoverable
        #: set by topics: True when the level differs from this ID's previous level there
        self.changed = changed

    @property
    def series(self) -> list[dict[str, Any]]:
        series = self._series
        if callable(series):
            series = self._series = series()
        return series

    def copy(self, **changes: Any) -> Event:
        """A shallow copy with some attributes changed (``topic=``, ``previous_level=``)."""
        other = Event.__new__(Event)
        for name in Event.__slots__:
            setattr(other, name, getattr(self, name))
        for name, value in changes.items():
            setattr(other, "_series" if name == "series" else name, value)
        return other

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and all(
            getattr(self, n) == getattr(other, n) for n in (
                "topic", "state", "previous_level", "name", "task_name", "category", "group",
                "tags", "fields", "series", "recoverable"))

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value: unhashable

    def __repr__(self) -> str:
        return f"Event(topic={self.topic!r}, state={self.state!r})"

    @property
    def id(self) -> str:
        return self.state.id

    @property
    def level(self) -> Level:
        return self.state.level

    def for_topic(self, topic: str) -> Event:
        return self.copy(topic=topic)

    def alert_data(self) -> Struct:
        """Kapacitor's ``AlertData``: keys in its order (a :class:`Struct` keeps it)."""
        s = self.state
        return Struct(id=s.id, message=s.message, details=s.details,
                      time=format_time(s.time), duration=s.duration, level=str(s.level),
                      data=Struct(series=[Struct(row) for row in self.series])
                      if self.series else Struct(),
                      previousLevel=str(self.previous_level), recoverable=self.recoverable)

    def result(self) -> Struct:
        """The alert's data as Kapacitor's ``models.Result`` (``{"series": null}`` when
        empty), for handlers that embed it."""
        return Struct(series=[Struct(row) for row in self.series] or None)

    def json(self) -> str:
        """The alert JSON exactly as Kapacitor's post/tcp/log/exec handlers send it:
        ``dumps(self.alert_data())``, written straight from the event (a post handler
        writes one per alert, and the generic encoder's type tests per value were a
        third of a delivery's cost)."""
        s = self.state
        series = self.series
        return "".join((
            '{"id":', _string(s.id), ',"message":', _string(s.message),
            ',"details":', _string(s.details), ',"time":', _string(format_time(s.time)),
            ',"duration":', dumps(s.duration), ',"level":', _string(str(s.level)),
            ',"data":', '{"series":[' + ",".join(map(_row_json, series)) + "]}"
            if series else "{}",
            ',"previousLevel":', _string(str(self.previous_level)),
            ',"recoverable":', "true" if self.recoverable is True else dumps(self.recoverable),
            "}"))

    def alert_template_data(self) -> Struct:
        """Kapacitor's ``alert.Data`` as templates see it: what a post handler's URL and
        an ``[[httppost]]`` alert-template are executed with."""
        from kapa_core.gotemplate import GoTime, StringMap

        s = self.state
        rows = [RowStruct(Name=r.get("name", ""), Tags=StringMap(r.get("tags", {})),
                          Columns=list(r.get("columns", ())),
                          Values=_row_values(r, GoTime)) for r in self.series]
        result = ResultStruct(Series=rows or None, Err=None)
        result.event = self
        return AlertDataStruct(
            ID=s.id, Message=s.message, Details=s.details, Time=GoTime(s.time),
            Duration=GoDuration(s.duration), Level=str(s.level),
            Data=result,
            PreviousLevel=str(self.previous_level), Recoverable=self.recoverable)

    def template_data(self) -> dict[str, Any]:
        """Fields of Kapacitor's ``alert.TemplateData`` for handler-side templates."""
        from kapa_core.gotemplate import GoTime, StringMap

        s = self.state
        return {"ID": s.id, "Message": s.message, "Details": s.details,
                "Level": str(s.level), "Time": GoTime(s.time),
                "Duration": GoDuration(s.duration),
                "Name": self.name, "TaskName": self.task_name, "Group": self.group,
                "Tags": StringMap(self.tags), "Fields": template_fields(dict(self.fields)),
                "PreviousLevel": str(self.previous_level), "Recoverable": self.recoverable,
                "Category": self.category}

"""Alert events: what an alert node publishes to a topic and what handlers receive.

``Event.alert_data()`` is the JSON body Kapacitor's post, tcp, log and exec handlers send,
with the same keys in the same order: ``id, message, details, time, duration, level,
data, previousLevel, recoverable``. ``Event.template_data()`` is what handler-side
templates (``[[httppost]] alert-template``, Kafka, MQTT topics, post URLs) see.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from kapa_core.alert.gojson import Struct, dumps
from kapa_core.alert.levels import Level
from kapa_core.models.batch import format_time
from kapa_core.models.duration import Duration, format_go


@dataclass(slots=True)
class EventState:
    """The last known state of one alert ID in a topic."""

    id: str
    message: str
    details: str
    time: int  # ns
    duration: int  # ns
    level: Level

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


@dataclass(slots=True)
class Event:
    topic: str
    state: EventState
    previous_level: Level = Level.OK
    name: str = ""
    task_name: str = ""
    category: str = ""
    group: str = "nil"
    tags: dict[str, str] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    series: list[dict[str, Any]] = field(default_factory=list)
    recoverable: bool = True
    #: set by topics: True when the level differs from this ID's previous level there
    changed: bool = True

    @property
    def id(self) -> str:
        return self.state.id

    @property
    def level(self) -> Level:
        return self.state.level

    def for_topic(self, topic: str) -> Event:
        return replace(self, topic=topic)

    def alert_data(self) -> Struct:
        """Kapacitor's ``AlertData``: keys in its order (a :class:`Struct` keeps it)."""
        s = self.state
        return Struct(id=s.id, message=s.message, details=s.details,
                      time=format_time(s.time), duration=s.duration, level=str(s.level),
                      data=Struct(series=[Struct(row) for row in self.series])
                      if self.series else Struct(),
                      previousLevel=str(self.previous_level), recoverable=self.recoverable)

    def json(self) -> str:
        """The alert JSON exactly as Kapacitor's post/tcp/log/exec handlers send it."""
        return dumps(self.alert_data())

    def template_data(self) -> dict[str, Any]:
        """Fields of Kapacitor's ``alert.TemplateData`` for handler-side templates."""
        from kapa_core.gotemplate import GoTime, StringMap

        s = self.state
        return {"ID": s.id, "Message": s.message, "Details": s.details,
                "Level": str(s.level), "Time": GoTime(s.time), "Duration": Duration(s.duration),
                "Name": self.name, "TaskName": self.task_name, "Group": self.group,
                "Tags": StringMap(self.tags), "Fields": dict(self.fields),
                "PreviousLevel": str(self.previous_level), "Recoverable": self.recoverable,
                "Category": self.category}

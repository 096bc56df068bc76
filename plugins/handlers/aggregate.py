"""The ``aggregate`` topic action: many events in, one summary event out per interval.

A topic handler (there is no TICKscript property) with options ``id``, ``interval``,
``topic`` and ``message``::

    {"id": "agg", "kind": "aggregate",
     "options": {"id": "cpu-summary", "interval": 60000000000, "topic": "summaries",
                 "message": "{{ .Count }} cpu alerts in the last {{ .Interval }}"}}

Over the API ``interval`` is a number of nanoseconds (Kapacitor 1.5.7 refuses text
there). Every ``interval`` the events received since the last tick become one event published
to ``topic``, as Kapacitor builds it: id ``id``; message from the ``message`` template
(data ``.Count``, ``.Interval``); the highest level, latest time and longest duration of
the events; details the events' messages, one per line; data the events' series joined.
Nothing is published for an interval without events.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from kapa_core.plugin_api import (
    ConfigError,
    Duration,
    Event,
    EventState,
    HandlerContext,
    HandlerKind,
    Level,
    TemplateError,
    hookimpl,
    parse_template,
)

DEFAULT_MESSAGE = "Received {{ .Count }} events in the last {{.Interval}}."


@dataclass(frozen=True, kw_only=True)
class AggregateOptions:
    id: str = ""
    interval: Duration = Duration(0)
    topic: str = ""
    message: str = DEFAULT_MESSAGE

    def validate(self) -> None:
        if self.interval <= 0:
            raise ConfigError("interval", "aggregate: interval must be a positive duration")
        if not self.topic:
            raise ConfigError("topic", "aggregate: topic must be set")
        try:
            parse_template(self.message, "message")
        except TemplateError as exc:
            raise ConfigError("message", f"aggregate: {exc}") from None


class AggregateHandler:
    def __init__(self, options: AggregateOptions, context: HandlerContext[None, None]
                 ) -> None:
        self.options = options
        self.context = context
        self.message = parse_template(options.message, "message")
        self.events: list[Event] = []
        self.closed = False
        self.started = False

    async def handle(self, event: Event) -> None:
        if not self.started:
            self.started = True
            self.context.start_soon(self._ticker)
        self.events.append(event)

    async def _ticker(self) -> None:
        seconds = self.options.interval / 1e9
        while not self.closed:
            await trio.sleep(seconds)
            if self.events and not self.closed:
                self.context.publish(self.summary())

    def summary(self) -> Event:
        events, self.events = self.events, []
        text = self.message.execute({"Count": len(events), "Interval": self.options.interval})
        state = EventState(id=self.options.id, message=text,
                           details="\n".join(e.state.message for e in events),
                           time=max(e.state.time for e in events),
                           duration=max(e.state.duration for e in events),
                           level=max((e.level for e in events), default=Level.OK))
        return Event(topic=self.options.topic, state=state,
                     series=[row for e in events for row in e.series])

    def close(self) -> None:
        self.closed = True


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="aggregate", options=AggregateOptions, factory=AggregateHandler,
                        topic_only=True,
                        doc="Summarise a topic's events into one event per interval.")]

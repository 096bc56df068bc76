"""The ``publish`` topic action: re-publish each event to other topics.

A topic handler (there is no TICKscript property) with one option, ``topics``::

    {"id": "fan-out", "kind": "publish", "options": {"topics": ["ops", "audit"]}}

Each target topic records the event's state and runs its own handlers, so one alert can
feed differently configured handler sets. Publishing a topic into itself is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import (
    ConfigError,
    Event,
    HandlerContext,
    HandlerError,
    HandlerKind,
    hookimpl,
)


@dataclass(frozen=True, kw_only=True)
class PublishOptions:
    topics: tuple[str, ...] = ()

    def validate(self) -> None:
        if not self.topics:
            raise ConfigError("topics", "publish: at least one topic is required")
        for topic in self.topics:
            if not topic:
                raise ConfigError("topics", "publish: topic names must not be empty")


class PublishHandler:
    def __init__(self, options: PublishOptions, context: HandlerContext[None, None]
                 ) -> None:
        self.topics = options.topics
        self.context = context

    async def handle(self, event: Event) -> None:
        for topic in self.topics:
            if topic == event.topic:
                raise HandlerError(f"publish: refusing to publish topic {topic!r} into "
                                   "itself")
            self.context.publish(event.for_topic(topic))


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="publish", options=PublishOptions, factory=PublishHandler,
                        topic_only=True, doc="Re-publish events to other topics.")]

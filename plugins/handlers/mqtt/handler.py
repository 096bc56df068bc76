"""The ``mqtt`` handler: publishes each alert's message to a topic rendered per event."""

from __future__ import annotations

from dataclasses import dataclass

import trio

from kapa_core.plugin_api import (
    ConfigError,
    Event,
    HandlerContext,
    HandlerError,
    TemplateError,
    parse_template,
)

from .broker import MQTTError, check_topic_name
from .config import MQTTConfig
from .service import MQTTService

#: What an mqtt handler is made with: the [[mqtt]] elements and the running service.
MQTTContext = HandlerContext[tuple[MQTTConfig, ...], MQTTService]


@dataclass(frozen=True, kw_only=True)
class MQTTOptions:
    """``.mqtt('topic').brokerName('name').qos(1).retained(TRUE)``."""

    broker_name: str = ""
    topic: str = ""
    qos: int = 0
    retained: bool = False

    def validate(self) -> None:
        if not 0 <= self.qos <= 2:
            raise ConfigError("qos", f"mqtt: invalid QoS {self.qos} (expected 0, 1 or 2)")
        if not self.topic:
            raise ConfigError("topic", "mqtt: a topic is required")
        try:
            parse_template(self.topic, "topic")
        except TemplateError as exc:
            raise ConfigError("topic", f"mqtt: invalid topic template: {exc}") from None


class MQTTHandler:
    """Publishes each event's message to the rendered topic of the chosen broker, on the
    session the running ``mqtt`` service keeps with it."""

    def __init__(self, options: MQTTOptions, context: MQTTContext) -> None:
        self.options = options
        self.context = context
        self.topic = parse_template(options.topic, "topic")

    async def handle(self, event: Event) -> None:
        try:
            topic = self.topic.execute(event.template_data())
        except TemplateError as exc:
            raise HandlerError(f"mqtt: topic template: {exc}") from None
        try:
            check_topic_name(topic)
        except MQTTError as exc:
            raise HandlerError(f"mqtt: cannot publish: {exc}") from None
        payload = event.state.message.encode()
        options = self.options
        service = self.context.service
        if service is not None:
            await service.publish(options.broker_name, topic, payload, options.qos,
                                  options.retained)
            return
        # No running service (it is being re-opened): a session for this event only.
        context = self.context
        service = MQTTService(context.config or (), context.log, context.check_outgoing)
        try:
            await service.publish(options.broker_name, topic, payload, options.qos,
                                  options.retained)
        finally:
            with trio.CancelScope(shield=True):
                await service.close()

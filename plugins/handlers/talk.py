"""Talk: the [talk] section and the ``talk`` handler.

TICKscript: ``.talk()`` (no options). Topic handler: kind ``talk``, no options.

Each event is one POST of JSON to the section's ``url``, as Kapacitor sends it::

    {"title": "<alert id>", "text": "<message>", "authorName": "<[talk] author_name>"}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kapa_core.plugin_api import (
    Event,
    HandlerContext,
    HandlerError,
    HandlerKind,
    Section,
    go_json,
    hookimpl,
    require_url,
    send,
    setting,
)

from .service_test_kit import SectionService, decode


@dataclass(frozen=True, kw_only=True)
class TalkConfig:
    enabled: bool = False
    url: str = setting("", redact=True)
    author_name: str = setting("", key="author_name")

    def validate(self) -> None:
        if self.enabled:
            require_url(self.url, "url")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="talk", schema=TalkConfig, service=TalkService,
                    doc="Send alerts to Talk.")]


class TalkService(SectionService[TalkConfig]):
    """``/service-tests/talk`` as Kapacitor 1.5.7 answers it."""

    def test_options(self) -> dict[str, Any]:
        return {"title": "testTitle", "text": "test talk text"}

    async def test(self, options: dict[str, Any]) -> None:
        values = decode(options, self.test_options(), {})
        config = self.config
        if not config.enabled:
            raise HandlerError("service is not enabled")
        body = {"title": values["title"], "text": values["text"],
                "authorName": config.author_name}
        await send(self, "talk", config.url, content=go_json(body) + "\n",
                   headers={"Content-Type": "application/json"})


@dataclass(frozen=True, kw_only=True)
class TalkOptions:
    """Talk takes no options: everything comes from the [talk] section."""


class TalkHandler:
    def __init__(self, options: TalkOptions,
                 context: HandlerContext[TalkConfig | None, object]) -> None:
        self.context = context

    async def handle(self, event: Event) -> None:
        config = self.context.config
        if config is None or not config.enabled:
            raise HandlerError("talk: the [talk] section is not enabled")
        body = {"title": event.id, "text": event.state.message,
                "authorName": config.author_name}
        await send(self.context, "talk", config.url, content=go_json(body) + "\n",
                   headers={"Content-Type": "application/json"})  # json.Encoder's newline


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="talk", options=TalkOptions, factory=TalkHandler,
                        section="talk", doc="Post alerts to a Talk webhook.")]

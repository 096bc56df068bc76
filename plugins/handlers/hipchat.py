"""HipChat: the [hipchat] section and the ``hipchat`` handler (TICKscript ``.hipChat()``).

TICKscript: ``.hipChat().room('ops').token('t')``. Topic handler: kind ``hipchat`` with
options ``room`` and ``token``.

Each event is one POST of JSON to ``<url>/<room>/notification?auth_token=<token>`` (the
room appended to the path of the section's ``url``, any query replaced by the token), as
Kapacitor sends it::

    {"from": "kapacitor", "color": "red", "message": "<message>", "notify": true}

``color`` is ``red`` for CRITICAL, ``yellow`` for WARNING and ``green`` otherwise. Room
and token are the handler's, else the section's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from kapa_core.plugin_api import (
    Event,
    HandlerContext,
    HandlerError,
    HandlerKind,
    Level,
    Section,
    go_join_url,
    go_json,
    hookimpl,
    option,
    require_url,
    send,
    setting,
)

from .service_test_kit import SectionService, decode


@dataclass(frozen=True, kw_only=True)
class HipChatConfig:
    enabled: bool = False
    url: str = ""
    token: str = setting("", redact=True)
    room: str = ""
    global_: bool = False
    state_changes_only: bool = False

    def validate(self) -> None:
        if self.enabled:
            require_url(self.url, "url")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="hipchat", schema=HipChatConfig, service=HipChatService,
                    doc="Send alerts to HipChat.")]


class HipChatService(SectionService[HipChatConfig]):
    """``/service-tests/hipchat`` as Kapacitor 1.5.7 answers it."""

    def test_options(self) -> dict[str, Any]:
        return {"room": self.config.room, "message": "test hipchat message",
                "level": "CRITICAL"}

    async def test(self, options: dict[str, Any]) -> None:
        values = decode(options, self.test_options(), {"level": Level})
        config = self.config
        if not config.enabled:
            raise HandlerError("service is not enabled")
        url = notification_url(config.url, values["room"] or config.room, config.token)
        body = {"from": "kapacitor", "color": COLORS.get(values["level"], "green"),
                "message": values["message"], "notify": True}
        await send(self, "hipchat", url, content=go_json(body) + "\n",
                   headers={"Content-Type": "application/json"})


@dataclass(frozen=True, kw_only=True)
class HipChatOptions:
    room: str = option("", doc="Room id or name; empty for [hipchat] room.")
    token: str = option("", doc="Room token; empty for [hipchat] token.")


COLORS = {Level.WARNING: "yellow", Level.CRITICAL: "red"}


def notification_url(base: str, room: str, token: str) -> str:
    """``<base>/<room>/notification?auth_token=<token>``, built as Kapacitor builds it."""
    return go_join_url(base, room, "notification", query=urlencode({"auth_token": token}))


class HipChatHandler:
    def __init__(self, options: HipChatOptions,
                 context: HandlerContext[HipChatConfig | None, object]) -> None:
        self.options = options
        self.context = context

    async def handle(self, event: Event) -> None:
        config = self.context.config
        if config is None or not config.enabled:
            raise HandlerError("hipchat: the [hipchat] section is not enabled")
        url = notification_url(config.url, self.options.room or config.room,
                               self.options.token or config.token)
        body = {"from": "kapacitor", "color": COLORS.get(event.level, "green"),
                "message": event.state.message, "notify": True}
        await send(self.context, "hipchat", url, content=go_json(body) + "\n",
                   headers={"Content-Type": "application/json"})  # json.Encoder's newline


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="hipchat", property="hipChat", options=HipChatOptions,
                        factory=HipChatHandler, section="hipchat",
                        doc="Post alerts to a HipChat room.")]

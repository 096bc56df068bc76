"""Microsoft Teams: the [teams] section and the ``teams`` handler.

TICKscript: ``.teams()`` or ``.teams().channelURL('https://outlook.office.com/webhook/…')``.
Topic handler: kind ``teams`` with option ``channel-url``.

Each event is one POST of a MessageCard (JSON) to the handler's channel URL, else the
section's ``channel-url``, as Kapacitor 1.5.7 sends it (no ``themeColor``: later
versions added it)::

    {"@type": "MessageCard", "@context": "http://schema.org/extensions",
     "title": "CRITICAL: [<alert id>]", "text": "<message>",
     "summary": "<first 70 bytes of 'CRITICAL: [<alert id>] - <message>'>..."}

Without an alert id the title names the topic (``LEVEL: [topic]``), and with
neither it is the level alone (summary ``LEVEL: message``). The summary is cut at 70
bytes, as Kapacitor cuts it, and always ends in ``...``; the bytes left of a character
cut in two are written ``\\ufffd``, as Go's ``json.Marshal`` writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kapa_core.plugin_api import (
    Event,
    GoStruct,
    HandlerContext,
    HandlerError,
    HandlerKind,
    Level,
    Section,
    hookimpl,
    option,
    require_url,
    send,
)

from .service_test_kit import SectionService, cut_bytes, decode, go_marshal

#: Bytes of the summary kept before ``...`` is appended.
SUMMARY_CUTOFF = 70


@dataclass(frozen=True, kw_only=True)
class TeamsConfig:
    enabled: bool = False
    channel_url: str = ""
    global_: bool = False
    state_changes_only: bool = False

    def validate(self) -> None:
        if self.enabled:
            require_url(self.channel_url, "channel-url")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="teams", schema=TeamsConfig, service=TeamsService,
                    doc="Send alerts to Microsoft Teams.")]


class TeamsService(SectionService[TeamsConfig]):
    """``/service-tests/teams`` as Kapacitor 1.5.7 answers it (it posts to the section's
    channel URL whatever ``channel_url`` says)."""

    def test_options(self) -> dict[str, Any]:
        return {"channel_url": self.config.channel_url,
                "alert_topic": "test kapacitor alert topic", "alert_id": "foo/bar/bat",
                "message": "test teams message", "level": "CRITICAL"}

    async def test(self, options: dict[str, Any]) -> None:
        values = decode(options, self.test_options(), {"level": Level})
        config = self.config
        if not config.enabled:
            raise HandlerError("service is not enabled")
        body = message_card(values["level"], values["alert_id"], values["alert_topic"],
                            values["message"])
        await send(self, "teams", config.channel_url, content=go_marshal(body),
                   headers={"Content-Type": "application/json"})


@dataclass(frozen=True, kw_only=True)
class TeamsOptions:
    channel_url: str = option("", tick="channelURL",
                              doc="Incoming-webhook URL; empty for [teams] channel-url.")


def card(event: Event) -> dict[str, Any]:
    """The MessageCard Kapacitor posts for ``event``."""
    return message_card(event.level, event.id, event.topic, event.state.message)


def message_card(level_value: Level, alert_id: str, topic: str, message: str
                 ) -> dict[str, Any]:
    level = str(level_value)
    if not alert_id and not topic:
        title = level
        summary = f"{title}: {message}"
    else:
        title = f"{level}: [{alert_id or topic}]"
        summary = f"{title} - {message}"
    return GoStruct({"@type": "MessageCard", "@context": "http://schema.org/extensions",
                     "title": title, "text": message,
                     "summary": cut_bytes(summary, SUMMARY_CUTOFF) + "..."})


class TeamsHandler:
    def __init__(self, options: TeamsOptions,
                 context: HandlerContext[TeamsConfig | None, object]) -> None:
        self.options = options
        self.context = context

    async def handle(self, event: Event) -> None:
        config = self.context.config
        if config is None or not config.enabled:
            raise HandlerError("teams: the [teams] section is not enabled")
        url = self.options.channel_url or config.channel_url
        if not url:
            raise HandlerError("teams: no channel URL (set .channelURL() or [teams] "
                               "channel-url)")
        # json.Marshal's text: a summary cut inside a character ends in \ufffd escapes
        await send(self.context, "teams", url, content=go_marshal(card(event)),
                   headers={"Content-Type": "application/json"})


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="teams", options=TeamsOptions, factory=TeamsHandler,
                        section="teams", doc="Post a MessageCard to a Teams channel.")]

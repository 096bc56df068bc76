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
bytes, as Kapacitor cuts it, and always ends in ``...``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kapa_core.plugin_api import (
    Event,
    GoStruct,
    HandlerError,
    HandlerKind,
    Section,
    hookimpl,
    option,
    require_url,
    send,
)

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
    return [Section(name="teams", schema=TeamsConfig, doc="Send alerts to Microsoft Teams.")]


@dataclass(frozen=True, kw_only=True)
class TeamsOptions:
    channel_url: str = option("", tick="channelURL",
                              doc="Incoming-webhook URL; empty for [teams] channel-url.")


def cut(text: str, limit: int) -> str:
    """The first ``limit`` UTF-8 bytes of ``text``; a character cut in two becomes one
    U+FFFD per remaining byte, as Go's JSON encoder writes a byte-sliced string."""
    head = text.encode("utf-8", "surrogatepass")[:limit]
    decoded = head.decode("utf-8", "surrogateescape")
    return "".join("\ufffd" if "\udc80" <= ch <= "\udcff" else ch for ch in decoded)


def card(event: Event) -> dict[str, Any]:
    """The MessageCard Kapacitor posts for ``event``."""
    level, message = str(event.level), event.state.message
    if not event.id and not event.topic:
        title = level
        summary = f"{title}: {message}"
    else:
        title = f"{level}: [{event.id or event.topic}]"
        summary = f"{title} - {message}"
    return GoStruct({"@type": "MessageCard", "@context": "http://schema.org/extensions",
                     "title": title, "text": message,
                     "summary": cut(summary, SUMMARY_CUTOFF) + "..."})


class TeamsHandler:
    def __init__(self, options: TeamsOptions, context: Any) -> None:
        self.options = options
        self.context = context

    async def handle(self, event: Event) -> None:
        config: TeamsConfig | None = self.context.config
        if config is None or not config.enabled:
            raise HandlerError("teams: the [teams] section is not enabled")
        url = self.options.channel_url or config.channel_url
        if not url:
            raise HandlerError("teams: no channel URL (set .channelURL() or [teams] "
                               "channel-url)")
        await send(self.context, "teams", url, json_body=card(event))


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="teams", options=TeamsOptions, factory=TeamsHandler,
                        section="teams", doc="Post a MessageCard to a Teams channel.")]

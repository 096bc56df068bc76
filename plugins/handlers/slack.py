"""Slack: the [[slack]] section (one element per workspace) and the ``slack`` handler.

The request is Kapacitor's: a POST of ``{"as_user": false, "channel", "text": "",
"attachments": [{"fallback", "color", "text", "mrkdwn_in": ["text"]}], "username",
"icon_emoji"}`` to the incoming-webhook URL, the attachment coloured good/warning/danger
by level; with a ``token`` it is sent as ``Authorization: Bearer`` (chat.postMessage).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kapa_core.plugin_api import (
    TLS,
    Event,
    HandlerError,
    HandlerKind,
    Level,
    Section,
    hookimpl,
    one_default,
    pick_element,
    require_url,
    send,
    setting,
    unique_elements,
)


@dataclass(frozen=True, kw_only=True)
class SlackConfig:
    enabled: bool = False
    default: bool = True
    workspace: str = ""
    url: str = setting("", redact=True, doc="Incoming-webhook URL, or chat.postMessage.")
    token: str = setting("", redact=True)
    channel: str = ""
    username: str = "kapacitor"
    icon_emoji: str = ""
    global_: bool = False
    state_changes_only: bool = False
    ssl_ca: str = ""
    ssl_cert: str = ""
    ssl_key: str = ""
    insecure_skip_verify: bool = False

    def validate(self) -> None:
        if self.enabled:
            require_url(self.url, "url")


def _check(elements: tuple[SlackConfig, ...]) -> None:
    unique_elements("workspace")(elements)
    one_default(elements)


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="slack", schema=SlackConfig, multiple=True, element_key="workspace",
                    default_elements=1, check=_check, doc="Send alerts to Slack.")]


@dataclass(frozen=True, kw_only=True)
class SlackOptions:
    workspace: str = ""
    channel: str = ""
    username: str = ""
    icon_emoji: str = ""


COLORS = {Level.WARNING: "warning", Level.CRITICAL: "danger"}


class SlackHandler:
    def __init__(self, options: SlackOptions, context: Any) -> None:
        self.options = options
        self.context = context

    def _workspace(self) -> Any:
        return pick_element(self.context, self.options.workspace, section="slack")

    async def handle(self, event: Event) -> None:
        config = self._workspace()
        if not config.enabled:
            raise HandlerError("slack: the [[slack]] section is not enabled")
        message = event.state.message
        body = {"as_user": False, "channel": self.options.channel or config.channel,
                "text": "", "attachments": [{
                    "fallback": message, "color": COLORS.get(event.level, "good"),
                    "text": message, "mrkdwn_in": ["text"]}],
                "username": self.options.username or config.username or "kapacitor"}
        icon = self.options.icon_emoji or config.icon_emoji
        if icon:
            body["icon_emoji"] = icon
        headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
        await send(self.context, "slack", config.url, json_body=body, headers=headers,
                   tls=TLS.of(config))


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="slack", options=SlackOptions, factory=SlackHandler,
                        section="slack", doc="Post alerts to a Slack channel.")]

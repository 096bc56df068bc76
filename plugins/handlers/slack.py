"""Slack: the [[slack]] section (one element per workspace) and the ``slack`` handler.

The request is Kapacitor's: a POST of ``{"as_user": false, "channel", "text": "",
"attachments": [{"fallback", "color", "text", "mrkdwn_in": ["text"]}], "username",
"icon_emoji"}`` to the incoming-webhook URL, the attachment coloured good/warning/danger
by level; with a ``token`` it is sent as ``Authorization: Bearer`` (chat.postMessage).

As in Kapacitor, only the built-in element (no ``[[slack]]`` in the file) has
``default = true`` and ``username = "kapacitor"``; an element written in the file (or
made through the config API) starts from empty values, so its posts carry
``"username": ""`` unless it sets one. ``icon_emoji`` is always sent, empty or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kapa_core.plugin_api import (
    TLS,
    ConfigError,
    Event,
    GoStruct,
    HandlerContext,
    HandlerError,
    HandlerKind,
    Level,
    Section,
    go_json,
    hookimpl,
    one_default,
    pick_element,
    require_url,
    send,
    setting,
    unique_elements,
)

from .service_test_kit import SectionService, decode, workspace_element


@dataclass(frozen=True, kw_only=True)
class SlackConfig:
    enabled: bool = False
    default: bool = False  # a lone element is the default anyway
    workspace: str = ""
    url: str = setting("", redact=True, doc="Incoming-webhook URL, or chat.postMessage.")
    token: str = setting("", redact=True)
    channel: str = ""
    username: str = ""
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
    if len(elements) > 1:  # Kapacitor's rules for several workspaces
        for i, element in enumerate(elements):
            if not element.workspace:
                raise ConfigError(f"[{i}].workspace", "id must not be empty")
        if not any(element.default for element in elements):
            raise ConfigError("default", "at least one Slack config must be set as "
                              "default")
    for i, element in enumerate(elements):
        if element.global_ and not element.default:
            raise ConfigError(f"[{i}].global", "only the default config may be "
                              "assigned as global")
        if element.state_changes_only and not (element.default and element.global_):
            raise ConfigError(f"[{i}].state-changes-only", "stateChangesOnly may only "
                              "be assigned when the config is both default and global")
    one_default(elements)


@dataclass(frozen=True, kw_only=True)
class SlackSection(Section):
    def default_raw(self) -> Any:
        """Kapacitor's built-in element: the default one, posting as "kapacitor"."""
        return [{**self.default_raw_element(), "default": True, "username": "kapacitor"}]


class SlackService(SectionService[tuple[SlackConfig, ...]]):
    """``/service-tests/slack`` as Kapacitor 1.5.7 answers it."""

    def test_options(self) -> dict[str, Any]:
        try:
            config = workspace_element(self.config, "", "slack")
        except HandlerError:
            config = SlackConfig()
        return {"workspace": config.workspace, "channel": config.channel,
                "message": "test slack message", "level": "CRITICAL", "username": "",
                "icon-emoji": ""}

    async def test(self, options: dict[str, Any]) -> None:
        values = decode(options, self.test_options(), {"level": Level})
        config = workspace_element(self.config, values["workspace"], "slack")
        if not config.enabled:
            raise HandlerError("service is not enabled")
        await send(self, "slack", config.url,
                   content=go_json(_body(config, values["channel"], values["message"],
                                         values["username"], values["icon-emoji"],
                                         values["level"])) + "\n",
                   headers={"Content-Type": "application/json"}, tls=TLS.of(config))


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [SlackSection(name="slack", schema=SlackConfig, multiple=True,
                         element_key="workspace", default_elements=1, check=_check,
                         service=SlackService, doc="Send alerts to Slack.")]


@dataclass(frozen=True, kw_only=True)
class SlackOptions:
    workspace: str = ""
    channel: str = ""
    username: str = ""
    icon_emoji: str = ""


COLORS = {Level.WARNING: "warning", Level.CRITICAL: "danger"}


def _body(config: SlackConfig, channel: str, message: str, username: str, icon_emoji: str,
          level: Level) -> dict[str, Any]:
    """Kapacitor's post: a map (keys sorted when written) holding the attachment struct."""
    return {"as_user": False, "channel": channel or config.channel, "text": "",
            "attachments": [GoStruct(fallback=message, color=COLORS.get(level, "good"),
                                     text=message, mrkdwn_in=["text"])],
            "username": username or config.username,
            "icon_emoji": icon_emoji or config.icon_emoji}


class SlackHandler:
    def __init__(self, options: SlackOptions,
                 context: HandlerContext[tuple[SlackConfig, ...] | None, object]) -> None:
        self.options = options
        self.context = context

    def _workspace(self) -> SlackConfig:
        return pick_element(self.context, self.options.workspace, section="slack")

    async def handle(self, event: Event) -> None:
        config = self._workspace()
        if not config.enabled:
            raise HandlerError("slack: the [[slack]] section is not enabled")
        options = self.options
        body = _body(config, options.channel, event.state.message, options.username,
                     options.icon_emoji, event.level)
        headers = {"Content-Type": "application/json"}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        # written as Go's json.Encoder writes it: the map's keys sorted, the attachment
        # in its struct's order, a final newline
        await send(self.context, "slack", config.url, content=go_json(body) + "\n",
                   headers=headers, tls=TLS.of(config))


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="slack", options=SlackOptions, factory=SlackHandler,
                        section="slack", doc="Post alerts to a Slack channel.")]

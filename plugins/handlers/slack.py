"""Slack: the [[slack]] section, one element per workspace.

Configuration only for now: the handler itself arrives with the alerting work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import (
    Section,
    hookimpl,
    one_default,
    require_url,
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

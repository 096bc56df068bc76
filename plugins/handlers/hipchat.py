"""HipChat: the [hipchat] section.

Configuration only for now: the handler itself arrives with the alerting work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import Section, hookimpl, require_url, setting


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
    return [Section(name="hipchat", schema=HipChatConfig, doc="Send alerts to HipChat.")]

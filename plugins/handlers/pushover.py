"""Pushover: the [pushover] section.

Configuration only for now: the handler itself arrives with the alerting work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import Section, hookimpl, require_url, setting


@dataclass(frozen=True, kw_only=True)
class PushoverConfig:
    enabled: bool = False
    token: str = setting("", redact=True)
    user_key: str = setting("", redact=True)
    url: str = "https://api.pushover.net/1/messages.json"

    def validate(self) -> None:
        if self.enabled:
            require_url(self.url, "url")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="pushover", schema=PushoverConfig, doc="Send alerts to Pushover.")]

"""Microsoft Teams: the [teams] section.

Configuration only for now: the handler itself arrives with the alerting work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import Section, hookimpl, require_url


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

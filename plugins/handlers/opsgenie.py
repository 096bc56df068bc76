"""OpsGenie: the [opsgenie] (API v1) and [opsgenie2] (API v2) sections.

Configuration only for now: the handler itself arrives with the alerting work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import Section, hookimpl, require_choice, require_url, setting


@dataclass(frozen=True, kw_only=True)
class OpsGenieConfig:
    enabled: bool = False
    api_key: str = setting("", redact=True)
    teams: list[str] = setting([])
    recipients: list[str] = setting([])
    url: str = "https://api.opsgenie.com/v1/json/alert"
    recovery_url: str = setting("https://api.opsgenie.com/v1/json/alert/note",
                                key="recovery_url")
    global_: bool = False

    def validate(self) -> None:
        if self.enabled:
            require_url(self.url, "url")
            require_url(self.recovery_url, "recovery_url")


@dataclass(frozen=True, kw_only=True)
class OpsGenie2Config:
    enabled: bool = False
    api_key: str = setting("", redact=True)
    teams: list[str] = setting([])
    recipients: list[str] = setting([])
    url: str = "https://api.opsgenie.com/v2/alerts"
    recovery_action: str = setting("notes", key="recovery_action", doc="notes or close.")
    global_: bool = False
    details: bool = False

    def validate(self) -> None:
        require_choice(self.recovery_action, "recovery_action", ("notes", "close"))
        if self.enabled:
            require_url(self.url, "url")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="opsgenie", schema=OpsGenieConfig, doc="OpsGenie API v1."),
            Section(name="opsgenie2", schema=OpsGenie2Config, doc="OpsGenie API v2.")]

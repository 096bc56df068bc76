"""ServiceNow: the [servicenow] section.

Configuration only for now: the handler itself arrives with the alerting work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import Section, hookimpl, require_url, setting


@dataclass(frozen=True, kw_only=True)
class ServiceNowConfig:
    enabled: bool = False
    url: str = "https://instance.service-now.com/api/global/em/jsonv2"
    source: str = ""
    username: str = ""
    password: str = setting("", redact=True)
    global_: bool = False
    state_changes_only: bool = False

    def validate(self) -> None:
        if self.enabled:
            require_url(self.url, "url")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="servicenow", schema=ServiceNowConfig,
                    doc="Send alerts to ServiceNow event management.")]

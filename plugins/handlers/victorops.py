"""VictorOps: the [victorops] section.

Configuration only for now: the handler itself arrives with the alerting work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import Section, hookimpl, require_url, setting


@dataclass(frozen=True, kw_only=True)
class VictorOpsConfig:
    enabled: bool = False
    api_key: str = setting("", redact=True)
    routing_key: str = ""
    url: str = "https://alert.victorops.com/integrations/generic/20131114/alert"
    global_: bool = False
    json_data: bool = False

    def validate(self) -> None:
        if self.enabled:
            require_url(self.url, "url")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="victorops", schema=VictorOpsConfig, doc="Send alerts to VictorOps.")]

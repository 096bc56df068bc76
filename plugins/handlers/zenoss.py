"""Zenoss: the [zenoss] section.

Configuration only for now: the handler itself arrives with the alerting work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import ConfigError, Section, hookimpl, require_url, setting

LEVELS = ("OK", "Info", "Warning", "Critical")


@dataclass(frozen=True, kw_only=True)
class ZenossConfig:
    enabled: bool = False
    url: str = "https://tenant.zenoss.io:8080/zport/dmd/evconsole_router"
    username: str = ""
    password: str = setting("", redact=True)
    action: str = "EventsRouter"
    method: str = "add_event"
    type: str = "rpc"
    tid: int = 1
    collector: str = "Kapacitor"
    severity_map: dict[str, str] = setting({"OK": "Clear", "Info": "Info",
                                            "Warning": "Warning", "Critical": "Critical"})
    global_: bool = False
    state_changes_only: bool = False

    def validate(self) -> None:
        for level in self.severity_map:
            if level not in LEVELS:
                raise ConfigError(f"severity-map.{level}", "unknown level (expected OK, "
                                  "Info, Warning or Critical)")
        if self.enabled:
            require_url(self.url, "url")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="zenoss", schema=ZenossConfig, doc="Send alerts to Zenoss.")]

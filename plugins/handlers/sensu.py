"""Sensu: the [sensu] section.

Configuration only for now: the handler itself arrives with the alerting work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import ConfigError, Section, hookimpl, setting


@dataclass(frozen=True, kw_only=True)
class SensuConfig:
    enabled: bool = False
    addr: str = setting("", doc="host:port of the Sensu client socket.")
    source: str = "Kapacitor"
    handlers: list[str] = setting([])

    def validate(self) -> None:
        if self.enabled and ":" not in self.addr:
            raise ConfigError("addr", f"invalid address {self.addr!r} (expected host:port)")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="sensu", schema=SensuConfig, doc="Send alerts to Sensu.")]

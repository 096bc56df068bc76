"""SNMP traps: the [snmptrap] section.

Configuration only for now: the handler itself arrives with the alerting work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import ConfigError, Section, hookimpl, setting


@dataclass(frozen=True, kw_only=True)
class SNMPTrapConfig:
    enabled: bool = False
    addr: str = "localhost:162"
    community: str = setting("kapacitor", redact=True)
    retries: int = 1

    def validate(self) -> None:
        if self.enabled and ":" not in self.addr:
            raise ConfigError("addr", f"invalid address {self.addr!r} (expected host:port)")
        if self.retries < 0:
            raise ConfigError("retries", "must not be negative")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="snmptrap", schema=SNMPTrapConfig, doc="Send alerts as SNMP traps.")]

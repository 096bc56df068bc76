"""UDP: the [[udp]] input section (line protocol in datagrams).

Configuration only for now: the listener itself arrives with the input-listener work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import ConfigError, Section, hookimpl


@dataclass(frozen=True, kw_only=True)
class UDPConfig:
    enabled: bool = False
    bind_address: str = ""
    database: str = ""
    retention_policy: str = ""
    buffer: int = 1000
    read_buffer: int = 0

    def validate(self) -> None:
        if not self.enabled:
            return
        if ":" not in self.bind_address:
            raise ConfigError("bind-address", f"invalid address {self.bind_address!r} "
                              "(expected host:port)")
        if not self.database:
            raise ConfigError("database", "must be set when enabled = true")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="udp", schema=UDPConfig, multiple=True, element_key="bind-address",
                    overridable=False, doc="Receive line protocol over UDP.")]

"""Graphite: the [[graphite]] input section.

Configuration only for now: the listener itself arrives with the input-listener work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import ConfigError, Duration, Section, hookimpl, require_choice, setting


@dataclass(frozen=True, kw_only=True)
class GraphiteConfig:
    enabled: bool = False
    bind_address: str = ":2003"
    database: str = "graphite"
    retention_policy: str = ""
    protocol: str = "tcp"
    batch_size: int = 5000
    batch_pending: int = 10
    batch_timeout: Duration = Duration(1_000_000_000)
    consistency_level: str = "one"
    templates: list[str] = setting([])
    tags: list[str] = setting([])
    separator: str = "."
    udp_read_buffer: int = 0

    def validate(self) -> None:
        require_choice(self.protocol, "protocol", ("tcp", "udp"))
        if self.enabled and ":" not in self.bind_address:
            raise ConfigError("bind-address", f"invalid address {self.bind_address!r} "
                              "(expected host:port)")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="graphite", schema=GraphiteConfig, multiple=True,
                    element_key="bind-address", overridable=False,
                    doc="Receive Graphite plaintext metrics.")]

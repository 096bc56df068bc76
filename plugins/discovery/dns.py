"""dns: the [[dns]] section, discovering DNS SRV, A and AAAA records.

Each element is named by its ``id``, which a ``[[scraper]]`` names in ``discoverer-id``.
Configuration only for now: the discovery service arrives with the scraping work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import (
    ConfigError,
    Duration,
    Section,
    hookimpl,
    require_choice,
    setting,
    unique_elements,
)


@dataclass(frozen=True, kw_only=True)
class DNSConfig:
    enabled: bool = False
    id: str = ""
    record_names: list[str] = setting([])
    refresh_interval: Duration = Duration(30 * 1_000_000_000)
    type: str = setting("SRV", doc="SRV, A or AAAA.")
    port: int = setting(0, doc="Needed for A and AAAA records.")

    def validate(self) -> None:
        if not self.enabled:
            return
        if not self.id:
            raise ConfigError("id", "must be set when enabled = true")
        require_choice(self.type, "type", ("SRV", "A", "AAAA"))
        if not self.record_names:
            raise ConfigError("record-names", "must list at least one name")
        if self.type != "SRV" and self.port <= 0:
            raise ConfigError("port", f"must be set for {self.type} records")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [
        Section(
            name="dns",
            schema=DNSConfig,
            multiple=True,
            element_key="id",
            check=unique_elements("id"),
            doc="Discover DNS SRV, A and AAAA records.",
        )
    ]

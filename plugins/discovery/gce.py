"""gce: the [[gce]] section, discovering Google Compute Engine instances.

Each element is named by its ``id``, which a ``[[scraper]]`` names in ``discoverer-id``.
Configuration only for now: the discovery service arrives with the scraping work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import ConfigError, Duration, Section, hookimpl, unique_elements


@dataclass(frozen=True, kw_only=True)
class GCEConfig:
    enabled: bool = False
    id: str = ""
    project: str = ""
    zone: str = ""
    filter: str = ""
    refresh_interval: Duration = Duration(60 * 1_000_000_000)
    port: int = 80
    tag_separator: str = ","

    def validate(self) -> None:
        if not self.enabled:
            return
        if not self.id:
            raise ConfigError("id", "must be set when enabled = true")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [
        Section(
            name="gce",
            schema=GCEConfig,
            multiple=True,
            element_key="id",
            check=unique_elements("id"),
            doc="Discover Google Compute Engine instances.",
        )
    ]

"""static-discovery: the [[static-discovery]] section, discovering a fixed list of targets.

Each element is named by its ``id``, which a ``[[scraper]]`` names in ``discoverer-id``.
Configuration only for now: the discovery service arrives with the scraping work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import ConfigError, Section, hookimpl, setting, unique_elements


@dataclass(frozen=True, kw_only=True)
class StaticDiscoveryConfig:
    enabled: bool = False
    id: str = ""
    targets: list[str] = setting([], doc="host:port targets.")
    labels: dict[str, str] = setting({})

    def validate(self) -> None:
        if not self.enabled:
            return
        if not self.id:
            raise ConfigError("id", "must be set when enabled = true")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [
        Section(
            name="static-discovery",
            schema=StaticDiscoveryConfig,
            multiple=True,
            element_key="id",
            check=unique_elements("id"),
            doc="Discover a fixed list of targets.",
        )
    ]

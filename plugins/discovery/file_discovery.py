"""file-discovery: the [[file-discovery]] section, discovering target groups read from
JSON/YAML files.

Each element is named by its ``id``, which a ``[[scraper]]`` names in ``discoverer-id``.
Configuration only for now: the discovery service arrives with the scraping work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import ConfigError, Duration, Section, hookimpl, setting, unique_elements


@dataclass(frozen=True, kw_only=True)
class FileDiscoveryConfig:
    enabled: bool = False
    id: str = ""
    files: list[str] = setting([], doc="Globs of JSON or YAML target files.")
    refresh_interval: Duration = Duration(300 * 1_000_000_000)

    def validate(self) -> None:
        if not self.enabled:
            return
        if not self.id:
            raise ConfigError("id", "must be set when enabled = true")
        if not self.files:
            raise ConfigError("files", "must list at least one file pattern")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [
        Section(
            name="file-discovery",
            schema=FileDiscoveryConfig,
            multiple=True,
            element_key="id",
            check=unique_elements("id"),
            doc="Discover target groups read from JSON/YAML files.",
        )
    ]

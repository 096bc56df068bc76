"""serverset: the [[serverset]] section, discovering Twitter Serversets in ZooKeeper.

Each element is named by its ``id``, which a ``[[scraper]]`` names in ``discoverer-id``.
Configuration only for now: the discovery service arrives with the scraping work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import ConfigError, Duration, Section, hookimpl, setting, unique_elements


@dataclass(frozen=True, kw_only=True)
class ServersetConfig:
    enabled: bool = False
    id: str = ""
    servers: list[str] = setting([], doc="ZooKeeper servers.")
    paths: list[str] = setting([])
    timeout: Duration = Duration(10 * 1_000_000_000)

    def validate(self) -> None:
        if not self.enabled:
            return
        if not self.id:
            raise ConfigError("id", "must be set when enabled = true")
        if not self.servers:
            raise ConfigError("servers", "must list at least one ZooKeeper server")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [
        Section(
            name="serverset",
            schema=ServersetConfig,
            multiple=True,
            element_key="id",
            check=unique_elements("id"),
            doc="Discover Twitter Serversets in ZooKeeper.",
        )
    ]

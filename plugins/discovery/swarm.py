"""swarm: the [[swarm]] section, discovering Docker Swarm managers (swarmAutoscale).

Each element is named by its ``id``, which a ``[[scraper]]`` names in ``discoverer-id``.
Configuration only for now: the discovery service arrives with the scraping work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import ConfigError, Section, hookimpl, setting, unique_elements


@dataclass(frozen=True, kw_only=True)
class SwarmConfig:
    enabled: bool = False
    id: str = ""
    servers: list[str] = setting([])
    ssl_ca: str = ""
    ssl_cert: str = ""
    ssl_key: str = ""
    insecure_skip_verify: bool = False

    def validate(self) -> None:
        if not self.enabled:
            return
        if not self.servers:
            raise ConfigError("servers", "must list at least one Swarm server")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [
        Section(
            name="swarm",
            schema=SwarmConfig,
            multiple=True,
            element_key="id",
            check=unique_elements("id"),
            doc="Discover Docker Swarm managers (swarmAutoscale).",
        )
    ]

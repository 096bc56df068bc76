"""azure: the [[azure]] section, discovering Azure virtual machines.

Each element is named by its ``id``, which a ``[[scraper]]`` names in ``discoverer-id``.
Configuration only for now: the discovery service arrives with the scraping work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import ConfigError, Duration, Section, hookimpl, setting, unique_elements


@dataclass(frozen=True, kw_only=True)
class AzureConfig:
    enabled: bool = False
    id: str = ""
    port: int = 80
    subscription_id: str = ""
    tenant_id: str = ""
    client_id: str = ""
    client_secret: str = setting("", redact=True)
    refresh_interval: Duration = Duration(300 * 1_000_000_000)

    def validate(self) -> None:
        if not self.enabled:
            return
        if not self.id:
            raise ConfigError("id", "must be set when enabled = true")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [
        Section(
            name="azure",
            schema=AzureConfig,
            multiple=True,
            element_key="id",
            check=unique_elements("id"),
            doc="Discover Azure virtual machines.",
        )
    ]

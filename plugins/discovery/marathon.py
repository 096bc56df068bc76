"""marathon: the [[marathon]] section, discovering Marathon applications.

Each element is named by its ``id``, which a ``[[scraper]]`` names in ``discoverer-id``.
Configuration only for now: the discovery service arrives with the scraping work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import ConfigError, Duration, Section, hookimpl, setting, unique_elements


@dataclass(frozen=True, kw_only=True)
class MarathonConfig:
    enabled: bool = False
    id: str = ""
    servers: list[str] = setting([])
    timeout: Duration = Duration(30 * 1_000_000_000)
    refresh_interval: Duration = Duration(30 * 1_000_000_000)
    bearer_token: str = setting("", redact=True)
    ssl_ca: str = ""
    ssl_cert: str = ""
    ssl_key: str = ""
    ssl_server_name: str = ""
    insecure_skip_verify: bool = False

    def validate(self) -> None:
        if not self.enabled:
            return
        if not self.id:
            raise ConfigError("id", "must be set when enabled = true")
        if not self.servers:
            raise ConfigError("servers", "must list at least one Marathon server")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [
        Section(
            name="marathon",
            schema=MarathonConfig,
            multiple=True,
            element_key="id",
            check=unique_elements("id"),
            doc="Discover Marathon applications.",
        )
    ]

"""consul: the [[consul]] section, discovering Consul catalog services.

Each element is named by its ``id``, which a ``[[scraper]]`` names in ``discoverer-id``.
Configuration only for now: the discovery service arrives with the scraping work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import (
    ConfigError,
    Section,
    hookimpl,
    require_choice,
    setting,
    unique_elements,
)


@dataclass(frozen=True, kw_only=True)
class ConsulConfig:
    enabled: bool = False
    id: str = ""
    address: str = "127.0.0.1:8500"
    token: str = setting("", redact=True)
    datacenter: str = ""
    tag_separator: str = ","
    scheme: str = "http"
    username: str = ""
    password: str = setting("", redact=True)
    services: list[str] = setting([])
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
        if not self.address:
            raise ConfigError("address", "must be set")
        require_choice(self.scheme, "scheme", ("http", "https"))


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [
        Section(
            name="consul",
            schema=ConsulConfig,
            multiple=True,
            element_key="id",
            check=unique_elements("id"),
            doc="Discover Consul catalog services.",
        )
    ]

"""Scraper: the [[scraper]] section (Prometheus-style scraping of discovered targets).

Configuration only for now: the scraper arrives with the scraping work.
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

DISCOVERERS = (
    "azure",
    "consul",
    "dns",
    "ec2",
    "file-discovery",
    "gce",
    "kubernetes",
    "marathon",
    "nerve",
    "serverset",
    "static-discovery",
    "triton",
)


@dataclass(frozen=True, kw_only=True)
class ScraperConfig:
    enabled: bool = False
    name: str = ""
    type: str = "prometheus"
    db: str = ""
    rp: str = ""
    scheme: str = "http"
    metrics_path: str = "/metrics"
    params: dict[str, list[str]] = setting({})
    scrape_interval: Duration = Duration(60_000_000_000)
    scrape_timeout: Duration = Duration(10_000_000_000)
    username: str = ""
    password: str = setting("", redact=True)
    ssl_ca: str = ""
    ssl_cert: str = ""
    ssl_key: str = ""
    ssl_server_name: str = ""
    insecure_skip_verify: bool = False
    bearer_token: str = setting("", redact=True)
    proxy_url: str = ""
    discoverer_id: str = ""
    discoverer_service: str = ""
    blacklist: list[str] = setting([])

    def validate(self) -> None:
        if not self.name:
            raise ConfigError("name", "must be set")
        if not self.db:
            raise ConfigError("db", "must be set")
        if not self.rp:
            raise ConfigError("rp", "must be set")
        require_choice(self.type, "type", ("prometheus",))
        require_choice(self.scheme, "scheme", ("http", "https"))
        if self.scrape_interval <= 0:
            raise ConfigError("scrape-interval", "must be greater than 0")
        if self.scrape_timeout > self.scrape_interval:
            raise ConfigError("scrape-timeout", "must not be longer than scrape-interval")
        if self.discoverer_service:
            require_choice(self.discoverer_service, "discoverer-service", DISCOVERERS)


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [
        Section(
            name="scraper",
            schema=ScraperConfig,
            multiple=True,
            element_key="name",
            check=unique_elements("name"),
            doc="Scrape Prometheus metrics.",
        )
    ]

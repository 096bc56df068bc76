"""ec2: the [[ec2]] section, discovering AWS EC2 instances (also used by ec2Autoscale).

Each element is named by its ``id``, which a ``[[scraper]]`` names in ``discoverer-id``.
Configuration only for now: the discovery service arrives with the scraping work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import ConfigError, Duration, Section, hookimpl, setting, unique_elements


@dataclass(frozen=True, kw_only=True)
class EC2Config:
    enabled: bool = False
    id: str = ""
    region: str = ""
    access_key: str = ""
    secret_key: str = setting("", redact=True)
    profile: str = ""
    refresh_interval: Duration = Duration(60 * 1_000_000_000)
    port: int = 80

    def validate(self) -> None:
        if not self.enabled:
            return
        if not self.id:
            raise ConfigError("id", "must be set when enabled = true")
        if not self.region:
            raise ConfigError("region", "must be set")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [
        Section(
            name="ec2",
            schema=EC2Config,
            multiple=True,
            element_key="id",
            check=unique_elements("id"),
            doc="Discover AWS EC2 instances (also used by ec2Autoscale).",
        )
    ]

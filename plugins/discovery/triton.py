"""triton: the [[triton]] section, discovering Joyent Triton containers.

Each element is named by its ``id``, which a ``[[scraper]]`` names in ``discoverer-id``.
Configuration only for now: the discovery service arrives with the scraping work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import ConfigError, Duration, Section, hookimpl, unique_elements


@dataclass(frozen=True, kw_only=True)
class TritonConfig:
    enabled: bool = False
    id: str = ""
    account: str = ""
    dns_suffix: str = ""
    endpoint: str = ""
    port: int = 9163
    refresh_interval: Duration = Duration(60 * 1_000_000_000)
    version: int = 1
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
        for key in ("account", "dns_suffix", "endpoint"):
            if not getattr(self, key):
                raise ConfigError(key.replace("_", "-"), "must be set")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [
        Section(
            name="triton",
            schema=TritonConfig,
            multiple=True,
            element_key="id",
            check=unique_elements("id"),
            doc="Discover Joyent Triton containers.",
        )
    ]

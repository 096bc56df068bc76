"""Alerta: the [alerta] section.

Configuration only for now: the handler itself arrives with the alerting work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import ConfigError, Duration, Section, hookimpl, require_url, setting


@dataclass(frozen=True, kw_only=True)
class AlertaConfig:
    enabled: bool = False
    url: str = ""
    insecure_skip_verify: bool = False
    token: str = setting("", redact=True)
    token_prefix: str = setting("", doc="Empty means Bearer.")
    environment: str = ""
    origin: str = ""
    timeout: Duration = Duration(0)

    def validate(self) -> None:
        if self.enabled:
            require_url(self.url, "url")
        if self.timeout < 0:
            raise ConfigError("timeout", "must not be negative")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="alerta", schema=AlertaConfig, doc="Send alerts to Alerta.")]

"""Email: the [smtp] section.

Configuration only for now: the handler itself arrives with the alerting work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import ConfigError, Duration, Section, hookimpl, setting


@dataclass(frozen=True, kw_only=True)
class SMTPConfig:
    enabled: bool = False
    host: str = "localhost"
    port: int = 25
    username: str = ""
    password: str = setting("", redact=True)
    no_verify: bool = setting(False, doc="Skip TLS certificate verification.")
    global_: bool = False
    state_changes_only: bool = False
    from_: str = setting("", doc="From address of outgoing mail.")
    to: list[str] = setting([])
    idle_timeout: Duration = Duration(30_000_000_000)
    to_templates: list[str] = setting([], key="toTemplates")

    def validate(self) -> None:
        if not self.enabled:
            return
        if not self.host:
            raise ConfigError("host", "must be set when enabled = true")
        if not 0 < self.port <= 65535:
            raise ConfigError("port", f"invalid port {self.port} (expected 1-65535)")
        if self.idle_timeout < 0:
            raise ConfigError("idle-timeout", "must not be negative")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="smtp", schema=SMTPConfig, doc="Send alerts by email.")]

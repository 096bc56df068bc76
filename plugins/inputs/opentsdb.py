"""OpenTSDB: the [opentsdb] input section (telnet put lines and HTTP /api/put).

Configuration only for now: the listener itself arrives with the input-listener work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import ConfigError, Duration, Section, hookimpl


@dataclass(frozen=True, kw_only=True)
class OpenTSDBConfig:
    enabled: bool = False
    bind_address: str = ":4242"
    database: str = "opentsdb"
    retention_policy: str = ""
    consistency_level: str = "one"
    tls_enabled: bool = False
    certificate: str = "/etc/ssl/influxdb.pem"
    batch_size: int = 1000
    batch_pending: int = 5
    batch_timeout: Duration = Duration(1_000_000_000)
    log_point_errors: bool = True

    def validate(self) -> None:
        if self.enabled and ":" not in self.bind_address:
            raise ConfigError("bind-address", f"invalid address {self.bind_address!r} "
                              "(expected host:port)")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="opentsdb", schema=OpenTSDBConfig, overridable=False,
                    doc="Receive OpenTSDB data.")]

"""collectd: the [collectd] input section (collectd's binary network protocol over UDP).

Configuration only for now: the listener itself arrives with the input-listener work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import ConfigError, Duration, Section, hookimpl, setting


@dataclass(frozen=True, kw_only=True)
class CollectdConfig:
    enabled: bool = False
    bind_address: str = ":25826"
    database: str = "collectd"
    retention_policy: str = ""
    batch_size: int = 5000
    batch_pending: int = 10
    batch_timeout: Duration = Duration(10_000_000_000)
    read_buffer: int = 0
    typesdb: str = setting("/usr/share/collectd/types.db", doc="A types.db file or a "
                           "directory of them.")

    def validate(self) -> None:
        if self.enabled and ":" not in self.bind_address:
            raise ConfigError("bind-address", f"invalid address {self.bind_address!r} "
                              "(expected host:port)")
        if self.batch_size < 0 or self.batch_pending < 0:
            raise ConfigError("batch-size", "must not be negative")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="collectd", schema=CollectdConfig, overridable=False,
                    doc="Receive collectd metrics.")]

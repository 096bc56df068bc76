"""MQTT: the [[mqtt]] section, one element per broker.

Configuration only for now: the handler itself arrives with the alerting work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import (
    ConfigError,
    Section,
    hookimpl,
    one_default,
    require_url,
    setting,
    unique_elements,
)


@dataclass(frozen=True, kw_only=True)
class MQTTConfig:
    enabled: bool = False
    name: str = "default"
    default: bool = False
    url: str = setting("", doc="tcp://host:1883, ssl://host:8883 or ws://host:80.")
    ssl_ca: str = ""
    ssl_cert: str = ""
    ssl_key: str = ""
    insecure_skip_verify: bool = False
    client_id: str = ""
    username: str = ""
    password: str = setting("", redact=True)

    def validate(self) -> None:
        if not self.enabled:
            return
        if not self.name:
            raise ConfigError("name", "must be set")
        require_url(self.url, "url", ("tcp", "ssl", "ws", "wss", "tls", "mqtt", "mqtts"))


def _check(elements: tuple[MQTTConfig, ...]) -> None:
    unique_elements("name")(elements)
    one_default(elements)


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="mqtt", schema=MQTTConfig, multiple=True, element_key="name",
                    default_elements=1, check=_check, doc="Publish alerts to MQTT brokers.")]

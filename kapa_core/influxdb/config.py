"""``[[influxdb]]``: one element per InfluxDB cluster kapa-core subscribes to, queries and
writes to. Keys and defaults are Kapacitor's."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from kapa_core.config.schema import setting
from kapa_core.errors import ConfigError
from kapa_core.models.duration import MINUTE, Duration

_NAME = re.compile(r"^[-._\w]+$")


@dataclass(frozen=True, kw_only=True)
class InfluxDBConfig:
    """One [[influxdb]] element."""

    enabled: bool = True
    default: bool = False
    name: str = "default"
    urls: list[str] = setting(["http://localhost:8086"])
    username: str = ""
    password: str = setting("", redact=True, doc="For InfluxDB 2.x, an API token may go here.")
    token: str = setting("", redact=True, doc="InfluxDB 2.x API token.")
    http_shared_secret: bool = setting(False, doc="Authenticate with a JWT naming username, "
                                       "signed with [http] shared-secret.")
    ssl_ca: str = setting("", doc="PEM CA file to verify InfluxDB's certificate.")
    ssl_cert: str = ""
    ssl_key: str = ""
    insecure_skip_verify: bool = setting(False, doc="Do not verify the TLS certificate "
                                         "(insecure).")
    timeout: Duration = Duration(0)
    disable_subscriptions: bool = False
    subscription_protocol: str = setting("http", doc="http, https or udp.")
    subscription_mode: str = setting("cluster", doc="cluster or server.")
    subscription_path: str = ""
    subscriptions: dict[str, list[str]] = setting({}, doc="Databases and retention policies "
                                                  "to subscribe to; empty means all.")
    excluded_subscriptions: dict[str, list[str]] = setting({"_kapacitor": ["autogen"]})
    kapacitor_hostname: str = ""
    http_port: int = 0
    udp_bind: str = ""
    udp_buffer: int = 1000
    udp_read_buffer: int = 0
    startup_timeout: Duration = Duration(5 * MINUTE)
    subscriptions_sync_interval: Duration = Duration(MINUTE)
    compression: str = setting("gzip", doc="gzip or none.")

    def validate(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError("name", f"invalid name {self.name!r} (expected letters, "
                              "digits, '-', '.' or '_')")
        if self.http_shared_secret and not self.username:
            raise ConfigError("username", "http-shared-secret = true needs the username the "
                              "signed token names")
        if self.enabled and not self.urls:
            raise ConfigError("urls", "must specify at least one InfluxDB URL")
        for i, url in enumerate(self.urls):
            parts = urlsplit(url)
            if not parts.scheme or "://" not in url:
                raise ConfigError(f"urls[{i}]", f"{url!r} has no scheme (expected http:// "
                                  "or https://)")
            if parts.scheme not in ("http", "https"):
                raise ConfigError(f"urls[{i}]", f"{url!r} has scheme {parts.scheme!r} "
                                  "(expected http:// or https://)")
            if not parts.hostname:
                raise ConfigError(f"urls[{i}]", f"{url!r} has no host")
        choices = (("subscription_protocol", ("http", "https", "udp")),
                   ("subscription_mode", ("cluster", "server")),
                   ("compression", ("gzip", "none")))
        for attr, allowed in choices:
            value = getattr(self, attr)
            if value not in allowed:
                raise ConfigError(attr.replace("_", "-"), f"invalid value {value!r} "
                                  f"(expected {' or '.join(allowed)})")
        for attr in ("timeout", "startup_timeout", "subscriptions_sync_interval"):
            if getattr(self, attr) < 0:
                raise ConfigError(attr.replace("_", "-"), "must not be negative")
        if bool(self.ssl_cert) != bool(self.ssl_key):
            raise ConfigError("ssl-cert", "ssl-cert and ssl-key must be set together")
        if not 0 <= self.http_port <= 65535:
            raise ConfigError("http-port", f"invalid port {self.http_port}")


def check_clusters(elements: tuple[InfluxDBConfig, ...]) -> None:
    """Names are unique; with several enabled clusters exactly one is the default."""
    seen: dict[str, int] = {}
    for i, element in enumerate(elements):
        if element.name in seen:
            raise ConfigError(f"[{i}].name", f"duplicate name {element.name!r} (also "
                              f"influxdb[{seen[element.name]}])")
        seen[element.name] = i
    enabled = [(i, e) for i, e in enumerate(elements) if e.enabled]
    defaults = [i for i, e in enabled if e.default]
    if len(defaults) > 1:
        raise ConfigError(f"[{defaults[1]}].default", "more than one InfluxDB cluster is "
                          "marked default = true")
    if len(enabled) > 1 and not defaults:
        raise ConfigError("", "several InfluxDB clusters are enabled but none has "
                          "default = true")


def default_cluster(elements: tuple[InfluxDBConfig, ...]) -> InfluxDBConfig | None:
    enabled = [e for e in elements if e.enabled]
    for element in enabled:
        if element.default:
            return element
    return enabled[0] if enabled else None

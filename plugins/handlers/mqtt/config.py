"""The ``[[mqtt]]`` section (one element per broker) and where its URLs point."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from kapa_core.plugin_api import (
    TLS,
    ConfigError,
    HandlerError,
    TLSFileError,
    one_default,
    require_url,
    setting,
    unique_elements,
)

PLAIN_SCHEMES = {"tcp": 1883, "mqtt": 1883}
TLS_SCHEMES = {"ssl": 8883, "tls": 8883, "mqtts": 8883}
#: MQTT over WebSocket (wss with TLS), upgraded at the URL's path or else at /mqtt.
WEBSOCKET_SCHEMES = {"ws": 80, "wss": 443}
DEFAULT_WEBSOCKET_PATH = "/mqtt"
#: Characters left as they are in a request target (RFC 3986 pchar, "/" and "%").
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"


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


def check_elements(elements: tuple[MQTTConfig, ...]) -> None:
    unique_elements("name")(elements)
    one_default(elements)


@dataclass(frozen=True)
class BrokerAddress:
    """Where a broker URL points: host, port, whether TLS is used, and for ws:// and
    wss:// the HTTP path (with the query) of the WebSocket upgrade."""

    host: str
    port: int
    tls: bool
    websocket_path: str | None = None


def broker_address(config: MQTTConfig) -> BrokerAddress:
    """The address of a broker URL; HandlerError for what cannot be used."""
    parts = urlsplit(config.url)
    scheme = parts.scheme.lower()
    default_port = (PLAIN_SCHEMES.get(scheme) or TLS_SCHEMES.get(scheme)
                    or WEBSOCKET_SCHEMES.get(scheme))
    if default_port is None:
        raise HandlerError(f"mqtt: broker {config.name!r}: unsupported URL {config.url!r}")
    try:
        port = parts.port
    except ValueError:
        raise HandlerError(f"mqtt: broker {config.name!r}: invalid port in "
                           f"{config.url!r}") from None
    if not parts.hostname:
        raise HandlerError(f"mqtt: broker {config.name!r}: no host in {config.url!r}")
    path = None
    if scheme in WEBSOCKET_SCHEMES:
        # paho's default path; the request target must be ASCII, so escape the rest.
        path = quote(parts.path or DEFAULT_WEBSOCKET_PATH, safe=_PATH_SAFE)
        if parts.query:
            path += "?" + quote(parts.query, safe=_PATH_SAFE + "?")
    return BrokerAddress(parts.hostname, port or default_port,
                         scheme in TLS_SCHEMES or scheme == "wss", path)


def ssl_context(config: MQTTConfig) -> ssl.SSLContext:
    """The TLS settings of a broker: CA file, client certificate, verification."""
    try:
        return TLS.of(config).context()
    except TLSFileError as exc:
        raise HandlerError(f"mqtt: broker {config.name!r}: TLS settings: ssl-{exc.which}: "
                           f"{exc}") from None


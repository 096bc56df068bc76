"""The ``[[kafka]]`` section: one element per cluster, checked as Kapacitor checks it."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from kapa_core.plugin_api import ConfigError, Duration, require_choice, setting

from .oauth2_token import SERVICES as OAUTH_SERVICES

SASL_MECHANISMS = ("", "PLAIN", "OAUTHBEARER", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI")
DEFAULT_TIMEOUT = 10.0
DEFAULT_BATCH_SIZE = 100
DEFAULT_BATCH_TIMEOUT = 1.0
#: Seconds a stopping writer may take to send the batches still waiting.
FINAL_FLUSH_TIMEOUT = 5.0
#: The client ID of every request, the one Kapacitor 1.5.7's kafka-go gives (its
#: program name and the machine's host name), so that brokers (their logs, client-id
#: quotas) see kapa-core as they saw Kapacitor.
CLIENT_ID = f"kapacitord@{socket.gethostname()} (github.com/segmentio/kafka-go)"


@dataclass(frozen=True, kw_only=True)
class KafkaConfig:
    enabled: bool = False
    id: str = "default"
    brokers: list[str] = setting([])
    timeout: Duration = setting(Duration(0), doc="0 means 10s.")
    batch_size: int = setting(0, doc="0 means 100.")
    batch_timeout: Duration = setting(Duration(0), doc="0 means 1s.")
    use_ssl: bool = False
    ssl_ca: str = ""
    ssl_cert: str = ""
    ssl_key: str = ""
    insecure_skip_verify: bool = False
    sasl_username: str = ""
    sasl_password: str = setting("", redact=True)
    sasl_mechanism: str = ""
    sasl_version: str = ""
    sasl_gssapi_service_name: str = ""
    sasl_gssapi_auth_type: str = ""
    sasl_gssapi_disable_pafxfast: bool = False
    sasl_gssapi_kerberos_config_path: str = ""
    sasl_gssapi_key_tab_path: str = ""
    sasl_gssapi_realm: str = ""
    sasl_extensions: dict[str, str] = setting({}, key="sasl_extensions")
    sasl_oauth_service: str = ""
    sasl_oauth_client_id: str = ""
    sasl_oauth_client_secret: str = setting("", redact=True)
    sasl_oauth_token_url: str = ""
    sasl_oauth_scopes: list[str] = setting([])
    sasl_oauth_parameters: dict[str, str] = setting({})
    sasl_oauth_token_expiry_margin: Duration = Duration(10_000_000_000)
    sasl_access_token: str = setting("", redact=True)
    sasl_oauth_tenant_id: str = ""

    def validate(self) -> None:
        if not self.enabled:
            return
        if not self.id:
            raise ConfigError("id", "must be set")
        if not self.brokers:
            raise ConfigError("brokers", "must specify at least one broker (host:port)")
        require_choice(self.sasl_mechanism, "sasl-mechanism", SASL_MECHANISMS)
        if self.batch_size < 0:
            raise ConfigError("batch-size", "must not be negative")
        require_choice(self.sasl_version, "sasl-version", ("", "0", "1"))
        if self.sasl_mechanism == "OAUTHBEARER":
            self._validate_oauth()

    def _validate_oauth(self) -> None:
        """Kapacitor's checks of the sasl-oauth-* keys."""
        service = self.sasl_oauth_service.lower()
        if self.sasl_access_token:
            if service or self.sasl_oauth_token_url:
                raise ConfigError("sasl-access-token", "cannot be set with "
                                  "sasl-oauth-service and sasl-oauth-token-url")
            return
        if not self.sasl_oauth_client_id or not self.sasl_oauth_client_secret:
            raise ConfigError("sasl-oauth-client-id", "sasl-oauth-client-id and "
                              "sasl-oauth-client-secret are required for OAUTHBEARER "
                              "(or a static sasl-access-token)")
        if service not in OAUTH_SERVICES:
            raise ConfigError("sasl-oauth-service", f"service {self.sasl_oauth_service!r} not "
                              "supported (expected custom, auth0 or azuread)")
        if service in ("", "custom", "auth0") and not self.sasl_oauth_token_url:
            raise ConfigError("sasl-oauth-token-url", "required for the "
                              f"{service or 'custom'} service")
        if service == "auth0" and not self.sasl_oauth_parameters.get("audience"):
            raise ConfigError("sasl-oauth-parameters", "the audience parameter is required "
                              "for Auth0")
        if service == "azuread":
            if not self.sasl_oauth_tenant_id:
                raise ConfigError("sasl-oauth-tenant-id", "required for AzureAD")
            if self.sasl_oauth_token_url:
                raise ConfigError("sasl-oauth-token-url", "cannot be set for AzureAD")
        if self.sasl_oauth_token_expiry_margin < 0:
            raise ConfigError("sasl-oauth-token-expiry-margin", "must not be negative")


def seconds(value: Duration, default: float) -> float:
    """A duration setting in seconds; ``default`` when it is 0 (or negative)."""
    return value / 1e9 if value > 0 else default

"""Kafka: the [[kafka]] section, one element per cluster.

Configuration only for now: the handler itself arrives with the alerting work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import (
    ConfigError,
    Duration,
    Section,
    hookimpl,
    require_choice,
    setting,
    unique_elements,
)

SASL_MECHANISMS = ("", "PLAIN", "OAUTHBEARER", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI")


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


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="kafka", schema=KafkaConfig, multiple=True, element_key="id",
                    default_elements=1, check=unique_elements("id"),
                    doc="Send alerts to Apache Kafka.")]

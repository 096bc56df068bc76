"""HTTP POST: the [[httppost]] section, one element per named endpoint.

Configuration only for now: the handler itself arrives with the alerting work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import ConfigError, Section, hookimpl, setting, unique_elements


@dataclass(frozen=True, kw_only=True)
class BasicAuth:
    username: str = ""
    password: str = ""


@dataclass(frozen=True, kw_only=True)
class HTTPPostConfig:
    endpoint: str = "example"
    url: str = setting("http://example.com", doc="A Go template since Kapacitor 1.5.7.")
    headers: dict[str, str] = setting({})
    basic_auth: BasicAuth = setting(default_factory=BasicAuth, redact=True)
    alert_template: str = ""
    alert_template_file: str = ""
    row_template: str = ""
    row_template_file: str = ""

    def validate(self) -> None:
        if not self.endpoint:
            raise ConfigError("endpoint", "must be set")
        if not self.url:
            raise ConfigError("url", "must be set")
        if self.alert_template and self.alert_template_file:
            raise ConfigError("alert-template", "cannot set both alert-template and "
                              "alert-template-file")
        if self.row_template and self.row_template_file:
            raise ConfigError("row-template", "cannot set both row-template and "
                              "row-template-file")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="httppost", schema=HTTPPostConfig, multiple=True,
                    element_key="endpoint", default_elements=1,
                    check=unique_elements("endpoint"),
                    doc="Named HTTP endpoints for the post handler and httpPost node.")]

"""BigPanda: the [bigpanda] section.

Configuration only for now: the handler itself arrives with the alerting work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import Section, hookimpl, require_url, setting


@dataclass(frozen=True, kw_only=True)
class BigPandaConfig:
    enabled: bool = False
    global_: bool = False
    state_changes_only: bool = False
    app_key: str = ""
    token: str = setting("", redact=True)
    url: str = "https://api.bigpanda.io/data/v2/alerts"
    insecure_skip_verify: bool = False
    auto_attributes: str = "tags,fields"

    def validate(self) -> None:
        if self.enabled:
            require_url(self.url, "url")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="bigpanda", schema=BigPandaConfig, doc="Send alerts to BigPanda.")]

"""PagerDuty: the [pagerduty] (API v1) and [pagerduty2] (Events API v2) sections.

Configuration only for now: the handler itself arrives with the alerting work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import Section, hookimpl, require_url, setting


@dataclass(frozen=True, kw_only=True)
class PagerDutyConfig:
    enabled: bool = False
    url: str = "https://events.pagerduty.com/generic/2010-04-15/create_event.json"
    service_key: str = setting("", redact=True)
    global_: bool = False

    def validate(self) -> None:
        if self.enabled:
            require_url(self.url, "url")


@dataclass(frozen=True, kw_only=True)
class PagerDuty2Config:
    enabled: bool = False
    url: str = "https://events.pagerduty.com/v2/enqueue"
    routing_key: str = setting("", redact=True)
    global_: bool = False

    def validate(self) -> None:
        if self.enabled:
            require_url(self.url, "url")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="pagerduty", schema=PagerDutyConfig, doc="PagerDuty API v1."),
            Section(name="pagerduty2", schema=PagerDuty2Config,
                    doc="PagerDuty Events API v2.")]

"""Talk: the [talk] section.

Configuration only for now: the handler itself arrives with the alerting work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import Section, hookimpl, require_url, setting


@dataclass(frozen=True, kw_only=True)
class TalkConfig:
    enabled: bool = False
    url: str = setting("", redact=True)
    author_name: str = setting("", key="author_name")

    def validate(self) -> None:
        if self.enabled:
            require_url(self.url, "url")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="talk", schema=TalkConfig, doc="Send alerts to Talk.")]

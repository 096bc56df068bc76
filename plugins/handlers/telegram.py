"""Telegram: the [telegram] section.

Configuration only for now: the handler itself arrives with the alerting work.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import Section, hookimpl, require_choice, require_url, setting


@dataclass(frozen=True, kw_only=True)
class TelegramConfig:
    enabled: bool = False
    url: str = "https://api.telegram.org/bot"
    token: str = setting("", redact=True)
    chat_id: str = ""
    parse_mode: str = setting("", doc="Markdown or HTML.")
    disable_web_page_preview: bool = False
    disable_notification: bool = False
    global_: bool = False
    state_changes_only: bool = False

    def validate(self) -> None:
        require_choice(self.parse_mode, "parse-mode", ("", "Markdown", "HTML"))
        if self.enabled:
            require_url(self.url, "url")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="telegram", schema=TelegramConfig, doc="Send alerts to Telegram.")]

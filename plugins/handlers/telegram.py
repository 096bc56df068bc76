"""Telegram: the [telegram] section and the ``telegram`` handler.

TICKscript: ``.telegram().chatId('-1001').parseMode('Markdown').disableWebPagePreview()
.disableNotification()``. Topic handler: kind ``telegram`` with options ``chat-id``,
``parse-mode``, ``disable-web-page-preview``, ``disable-notification``.

Each event is one POST of JSON to ``<url><token>/sendMessage`` (the section's ``url``
with the bot token appended to its path), as Kapacitor sends it::

    {"chat_id": "<chat id>", "text": "<message>", "parse_mode": "Markdown",
     "disable_web_page_preview": true, "disable_notification": true}

``chat_id`` and ``parse_mode`` are the handler's, else the section's; ``parse_mode`` is
left out when neither sets it. The two ``disable_*`` keys are present (and true) only
when the handler or the section turns them on. A parse mode other than Markdown or HTML
(any case) is refused when the task or topic handler is defined; one in the section is
refused per event, as Kapacitor refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kapa_core.plugin_api import (
    ConfigError,
    Event,
    HandlerContext,
    HandlerError,
    HandlerKind,
    Section,
    go_join_url,
    go_json,
    hookimpl,
    option,
    require_choice,
    require_url,
    send,
    setting,
)

from .service_test_kit import SectionService, decode


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
            if not self.token:  # Kapacitor 1.5.7 refuses it too
                raise ConfigError("token", "must specify token")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="telegram", schema=TelegramConfig, service=TelegramService,
                    doc="Send alerts to Telegram.")]


class TelegramService(SectionService[TelegramConfig]):
    """``/service-tests/telegram`` as Kapacitor 1.5.7 answers it."""

    def test_options(self) -> dict[str, Any]:
        c = self.config
        return {"chat-id": c.chat_id, "parse-mode": c.parse_mode,
                "message": "test telegram message",
                "disable-web-page-preview": c.disable_web_page_preview,
                "disable-notification": c.disable_notification}

    async def test(self, options: dict[str, Any]) -> None:
        values = decode(options, self.test_options(), {
            "disable-web-page-preview": bool, "disable-notification": bool})
        config = self.config
        if not config.enabled:
            raise HandlerError("service is not enabled")
        mode = values["parse-mode"] or config.parse_mode
        problem = check_parse_mode(mode)
        if problem:
            raise HandlerError(problem)
        body: dict[str, Any] = {"chat_id": values["chat-id"] or config.chat_id,
                                "text": values["message"]}
        if mode:
            body["parse_mode"] = mode
        if values["disable-web-page-preview"] or config.disable_web_page_preview:
            body["disable_web_page_preview"] = True
        if values["disable-notification"] or config.disable_notification:
            body["disable_notification"] = True
        await send(self, "telegram", send_message_url(config.url, config.token),
                   content=go_json(body) + "\n", headers={"Content-Type": "application/json"})


def check_parse_mode(mode: str) -> str:
    """An error message for a parse mode Telegram does not take, else ``""``."""
    if mode and mode.lower() not in ("markdown", "html"):
        return f"parseMode {mode} is not valid, please use 'Markdown' or 'HTML'"
    return ""


@dataclass(frozen=True, kw_only=True)
class TelegramOptions:
    chat_id: str = option("", doc="User or group id; empty for [telegram] chat-id.")
    parse_mode: str = option("", doc="Markdown or HTML; empty for [telegram] parse-mode.")
    disable_web_page_preview: bool = False
    disable_notification: bool = False

    def validate(self) -> None:
        problem = check_parse_mode(self.parse_mode)
        if problem:
            raise ConfigError("parse-mode", f"telegram: {problem}")


def send_message_url(base: str, token: str) -> str:
    """``base`` with ``token`` appended to its path and ``/sendMessage`` after it."""
    return go_join_url(base, "sendMessage", append=token)


class TelegramHandler:
    def __init__(self, options: TelegramOptions,
                 context: HandlerContext[TelegramConfig | None, object]) -> None:
        self.options = options
        self.context = context

    def body(self, config: TelegramConfig, event: Event) -> dict[str, Any]:
        """The sendMessage JSON for ``event``."""
        mode = self.options.parse_mode or config.parse_mode
        problem = check_parse_mode(mode)
        if problem:
            raise HandlerError(f"telegram: {problem}")
        body: dict[str, Any] = {"chat_id": self.options.chat_id or config.chat_id,
                                "text": event.state.message}
        if mode:
            body["parse_mode"] = mode
        if self.options.disable_web_page_preview or config.disable_web_page_preview:
            body["disable_web_page_preview"] = True
        if self.options.disable_notification or config.disable_notification:
            body["disable_notification"] = True
        return body

    async def handle(self, event: Event) -> None:
        config = self.context.config
        if config is None or not config.enabled:
            raise HandlerError("telegram: the [telegram] section is not enabled")
        # as Go's json.Encoder writes it, with a final newline
        await send(self.context, "telegram", send_message_url(config.url, config.token),
                   content=go_json(self.body(config, event)) + "\n",
                   headers={"Content-Type": "application/json"})


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="telegram", options=TelegramOptions, factory=TelegramHandler,
                        section="telegram", doc="Send alerts through a Telegram bot.")]

"""Pushover: the [pushover] section and the ``pushover`` handler.

TICKscript: ``.pushover().userKey('u').device('phone').title('t').uRL('https://…')
.uRLTitle('dashboard').sound('siren')`` (the URL methods are spelt as Kapacitor spells
them). Topic handler: kind ``pushover`` with options ``user-key``, ``device``, ``title``,
``url``, ``url-title``, ``sound``.

Each event is one form POST (``application/x-www-form-urlencoded``) to the section's
``url``, as Kapacitor sends it: ``token`` (the section's), ``user`` (the handler's user
key, else the section's ``user-key``), ``message`` (the alert message) and ``priority``
by level — CRITICAL ``1``, WARNING ``0``, INFO ``-1``, OK ``-2`` — plus ``device``,
``title``, ``url``, ``url_title`` and ``sound`` when the handler sets them. Fields are
sent in name order, as Go encodes a form.
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
    Level,
    Section,
    hookimpl,
    option,
    require_url,
    send,
    setting,
)

from .service_test_kit import SectionService, decode


@dataclass(frozen=True, kw_only=True)
class PushoverConfig:
    enabled: bool = False
    token: str = setting("", redact=True)
    user_key: str = setting("", redact=True)
    url: str = "https://api.pushover.net/1/messages.json"

    def validate(self) -> None:
        if self.enabled:  # what Kapacitor 1.5.7 requires, in its order
            if not self.token:
                raise ConfigError("token", "must specify token")
            if not self.user_key:
                raise ConfigError("user-key", "must specify user key")
            require_url(self.url, "url")


class PushoverService(SectionService[PushoverConfig]):
    """``/service-tests/pushover`` as Kapacitor 1.5.7 answers it."""

    def test_options(self) -> dict[str, Any]:
        # Kapacitor offers the section's user key here; kapa-core never shows a secret,
        # and an empty user-key means the section's anyway
        return {"user-key": "", "message": "test pushover message",
                "device": "", "title": "", "url": "", "url-title": "", "sound": "",
                "level": "CRITICAL"}

    async def test(self, options: dict[str, Any]) -> None:
        values = decode(options, self.test_options(), {"level": Level})
        config = self.config
        if not config.enabled:
            raise HandlerError("service is not enabled")
        test = PushoverOptions(
            user_key=values["user-key"], device=values["device"], title=values["title"],
            url=values["url"], url_title=values["url-title"], sound=values["sound"])
        await send(self, "pushover", config.url,
                   form=fields(test, config, values["message"], values["level"]))


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="pushover", schema=PushoverConfig, service=PushoverService,
                    doc="Send alerts to Pushover.")]


@dataclass(frozen=True, kw_only=True)
class PushoverOptions:
    user_key: str = option("", doc="User or group key; empty for [pushover] user-key.")
    device: str = option("", doc="Device name(s), comma-separated; empty for all.")
    title: str = ""
    url: str = option("", tick="uRL", doc="A supplementary URL shown with the message.")
    url_title: str = option("", tick="uRLTitle")
    sound: str = ""


#: Pushover priorities by level (https://pushover.net/api): OK is sent silently (-2).
PRIORITY = {Level.OK: -2, Level.INFO: -1, Level.WARNING: 0, Level.CRITICAL: 1}


def fields(o: PushoverOptions, config: PushoverConfig, message: str, level: Level
           ) -> dict[str, str]:
    """The form fields Kapacitor posts for a message at ``level``, sorted by name."""
    out = {"token": config.token, "user": o.user_key or config.user_key,
           "message": message, "priority": str(PRIORITY.get(level, 0))}
    for name, value in (("device", o.device), ("title", o.title), ("url", o.url),
                        ("url_title", o.url_title), ("sound", o.sound)):
        if value:
            out[name] = value
    return dict(sorted(out.items()))


class PushoverHandler:
    def __init__(self, options: PushoverOptions,
                 context: HandlerContext[PushoverConfig | None, object]) -> None:
        self.options = options
        self.context = context

    def form(self, config: PushoverConfig, event: Event) -> dict[str, str]:
        """The form fields for ``event``, sorted by name."""
        return fields(self.options, config, event.state.message, event.level)

    async def handle(self, event: Event) -> None:
        config = self.context.config
        if config is None or not config.enabled:
            raise HandlerError("pushover: the [pushover] section is not enabled")
        await send(self.context, "pushover", config.url, form=self.form(config, event))


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="pushover", options=PushoverOptions, factory=PushoverHandler,
                        section="pushover", doc="Push alerts through Pushover.")]

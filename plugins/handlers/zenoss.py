"""Zenoss: the [zenoss] section and the ``zenoss`` handler.

TICKscript ``.zenoss().action('EventsRouter').method('add_event').type('rpc').tid(1)
.summary('{{ .Message }}').device('{{ index .Tags "host" }}').component('cpu')
.eventClassKey('key').eventClass('/App').collector('kapacitor').message('{{ .Details }}')
.customField('team', 'db')``; topic handler ``{"kind": "zenoss", "options": {"action",
"method", "type", "tid", "summary", "device", "component", "eventClassKey", "eventClass",
"collector", "message", "customField": {...}}}`` (keys matched case-insensitively, as
Kapacitor decodes them).

Each event is a POST (basic auth with the section's username and password) to
``[zenoss] url`` of a Zenoss JSON-RPC router call: ``{"action", "method", "data": [{"summary",
"device", "component", "severity", "evclasskey", "evclass", "collector", "message",
<custom fields>}], "type", "tid"}``. Action, method, type, tid and collector default to
the section's; the summary defaults to the alert message (cut to 256 bytes; the message
to 4096, and left out when empty); severity comes from ``[zenoss] severity-map``. The
summary, device, component, event class key, event class, collector, message and string
custom fields are templates rendered with ``Name``, ``TaskName``, ``ID``, ``Message``,
``Details``, ``Time``, ``Duration``, ``Level``, ``Recoverable`` and ``Tags``; a custom field
whose text is JSON (starts with ``{`` or ``[``) is sent as that JSON value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kapa_core.plugin_api import (
    ConfigError,
    Duration,
    Event,
    GoTime,
    HandlerContext,
    HandlerError,
    HandlerKind,
    Section,
    StringMap,
    Template,
    TemplateError,
    hookimpl,
    option,
    option_template,
    require_url,
    send,
    setting,
)

LEVELS = ("OK", "Info", "Warning", "Critical")
DEFAULT_SEVERITY = {"OK": "Clear", "Info": "Info", "Warning": "Warning",
                    "Critical": "Critical"}
TEMPLATED = ("summary", "device", "component", "event_class_key", "event_class",
             "message", "collector")


@dataclass(frozen=True, kw_only=True)
class ZenossConfig:
    enabled: bool = False
    url: str = "https://tenant.zenoss.io:8080/zport/dmd/evconsole_router"
    username: str = ""
    password: str = setting("", redact=True)
    action: str = "EventsRouter"
    method: str = "add_event"
    type: str = "rpc"
    tid: int = 1
    collector: str = "Kapacitor"
    severity_map: dict[str, str] = setting(dict(DEFAULT_SEVERITY))
    global_: bool = False
    state_changes_only: bool = False

    def validate(self) -> None:
        for level in self.severity_map:
            if level not in LEVELS:
                raise ConfigError(f"severity-map.{level}", "unknown level (expected OK, "
                                  "Info, Warning or Critical)")
        if self.enabled:
            require_url(self.url, "url")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="zenoss", schema=ZenossConfig, doc="Send alerts to Zenoss.")]


@dataclass(frozen=True, kw_only=True)
class ZenossOptions:
    action: str = option("", doc="Router name; defaults to [zenoss] action.")
    method: str = option("", doc="Router method; defaults to [zenoss] method.")
    type: str = option("", doc="Defaults to [zenoss] type.")
    tid: int = option(0, doc="Transaction ID; defaults to [zenoss] tid.")
    summary: str = option("", doc="Defaults to the alert message.")
    device: str = ""
    component: str = ""
    event_class_key: str = option("", key="eventClassKey")
    event_class: str = option("", key="eventClass")
    collector: str = option("", doc="Defaults to [zenoss] collector.")
    message: str = ""
    custom_fields: dict[str, Any] = option(default_factory=dict, tick="customField",
                                           key="customField")

    def validate(self) -> None:
        _Templates(self)


class _Templates:
    """The handler's templates, parsed once."""

    def __init__(self, options: ZenossOptions) -> None:
        self.fields: dict[str, Template] = {}
        for name in TEMPLATED:
            text = getattr(options, name)
            if text:
                self.fields[name] = _template(name, text)
        self.custom: dict[str, Any] = {
            key: _template(f"customField.{key}", value) if isinstance(value, str) else value
            for key, value in options.custom_fields.items()}



@dataclass(frozen=True)
class _Info:
    """What the templates see (Kapacitor gives them these fields only)."""

    Name: str
    TaskName: str
    ID: str
    Message: str
    Details: str
    Time: GoTime
    Duration: Duration
    Level: str
    Recoverable: bool
    Tags: StringMap


def cutoff(text: str, limit: int) -> str:
    """At most ``limit`` bytes of ``text`` (never half a character)."""
    raw = text.encode()
    return text if len(raw) <= limit else raw[:limit].decode(errors="ignore")


def _custom_value(text: str) -> Any:
    """A rendered custom field: JSON when it parses as an object or array, else text."""
    if text.startswith(("{", "[")):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


class ZenossHandler:
    def __init__(self, options: ZenossOptions,
                 context: HandlerContext[ZenossConfig | None, object]) -> None:
        self.options = options
        self.context = context
        self.templates = _Templates(options)

    @staticmethod
    def _severity(config: ZenossConfig, event: Event) -> str:
        """The level's name in ``[zenoss] severity-map`` (unset levels keep defaults)."""
        level = LEVELS[int(event.level)]
        return config.severity_map.get(level, DEFAULT_SEVERITY[level])

    def _data(self, config: ZenossConfig, event: Event) -> dict[str, Any]:
        s = event.state
        info = _Info(event.name, event.task_name, s.id, s.message, s.details, GoTime(s.time),
                     Duration(s.duration), str(s.level), event.recoverable,
                     StringMap(event.tags))
        try:
            values = {name: t.execute(info) for name, t in self.templates.fields.items()}
            custom = {key: _custom_value(v.execute(info)) if isinstance(v, Template) else v
                      for key, v in self.templates.custom.items()}
        except TemplateError as exc:
            raise HandlerError(f"zenoss: {exc}") from None
        data: dict[str, Any] = {
            "summary": cutoff(values.get("summary") or s.message, 256),
            "device": values.get("device", ""), "component": values.get("component", ""),
            "severity": self._severity(config, event),
            "evclasskey": values.get("event_class_key", ""),
            "evclass": values.get("event_class", ""),
            "collector": values.get("collector") or config.collector}
        if not data["collector"]:
            del data["collector"]
        message = cutoff(values.get("message", ""), 4096)
        if message:
            data["message"] = message
        data.update(custom)
        return data

    async def handle(self, event: Event) -> None:
        config = self.context.config
        if config is None or not config.enabled:
            raise HandlerError("zenoss: the [zenoss] section is not enabled")
        o = self.options
        body = {"action": o.action or config.action, "method": o.method or config.method,
                "data": [self._data(config, event)], "type": o.type or config.type,
                "tid": o.tid or config.tid}
        auth = (config.username, config.password) if config.username and config.password \
            else None
        await send(self.context, "zenoss", config.url, json_body=body, auth=auth)


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="zenoss", options=ZenossOptions, factory=ZenossHandler,
                        section="zenoss", doc="Send alert events to Zenoss.")]


def _template(option: str, text: str) -> Template:
    return option_template(text, option, "zenoss")

"""BigPanda: the [bigpanda] section and the ``bigpanda`` handler.

TICKscript ``.bigPanda().appKey('app').primaryProperty('host').secondaryProperty('check')
.host('{{ index .Tags "host" }}').attribute('team', 'db')``; topic handler
``{"kind": "bigpanda", "options": {"app-key", "url", "host", "primary-property",
"secondary-property", "attributes": {...}}}``.

Each event is a POST to ``[bigpanda] url`` (or the handler's ``url``) with
``Authorization: Bearer <[bigpanda] token>`` of one flat alert object: ``app_key``
(default ``[bigpanda] app-key``), ``status`` (``ok`` for OK and INFO, ``warning``,
``critical``), ``check`` = the alert ID, ``description`` = the message, ``details`` = the
alert details when they are not the default JSON dump, ``task`` = ``<task>:<measurement>``,
``timestamp`` = Unix seconds; then, as ``[bigpanda] auto-attributes`` says (``tags``,
``fields``), every tag and every field (non-strings as JSON text); then ``host``,
``primary_property`` and ``secondary_property`` when set (templates rendered with the
event's template data) and the handler's attributes (non-strings as JSON text).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from kapa_core.plugin_api import (
    TLS,
    ConfigError,
    Event,
    GoTime,
    HandlerContext,
    HandlerError,
    HandlerKind,
    Level,
    Section,
    Template,
    TemplateError,
    go_json,
    hookimpl,
    option,
    parse_template,
    require_url,
    send,
    setting,
)

STATUS = {Level.OK: "ok", Level.INFO: "ok", Level.WARNING: "warning",
          Level.CRITICAL: "critical"}


@dataclass(frozen=True, kw_only=True)
class BigPandaConfig:
    enabled: bool = False
    global_: bool = False
    state_changes_only: bool = False
    app_key: str = ""
    token: str = setting("", redact=True)
    url: str = "https://api.bigpanda.io/data/v2/alerts"
    insecure_skip_verify: bool = False
    auto_attributes: str = setting("tags,fields", doc="Comma-separated: tags, fields.")

    def validate(self) -> None:
        if self.enabled:
            require_url(self.url, "url")


def _auto(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="bigpanda", schema=BigPandaConfig, doc="Send alerts to BigPanda.")]






def _text(value: Any) -> str:
    """An attribute value: strings as they are, anything else as JSON text."""
    return value if isinstance(value, str) else go_json(value)


@dataclass(frozen=True, kw_only=True)
class BigPandaOptions:
    app_key: str = option("", doc="Defaults to [bigpanda] app-key.")
    url: str = option("", tick="uRL", doc="Defaults to [bigpanda] url.")
    host: str = option("", doc="The object that caused the alert (template).")
    primary_property: str = option("", doc="Attribute BigPanda titles incidents by.")
    secondary_property: str = option("", doc="Attribute BigPanda sub-titles by.")
    attributes: dict[str, Any] = option(default_factory=dict, tick="attribute",
                                        key="attributes")

    def validate(self) -> None:
        _templates(self)
        if self.url:
            require_url(self.url, "url")


def _templates(options: BigPandaOptions) -> dict[str, Template]:
    out = {}
    for name in ("host", "primary_property", "secondary_property"):
        text = getattr(options, name)
        if not text:
            continue
        try:
            out[name] = parse_template(text, name)
        except TemplateError as exc:
            raise ConfigError(name.replace("_", "-"), f"bigpanda: invalid template: "
                              f"{exc}") from None
    return out


class BigPandaHandler:
    def __init__(self, options: BigPandaOptions,
                 context: HandlerContext[BigPandaConfig | None, object]) -> None:
        self.options = options
        self.context = context
        self.templates = _templates(options)

    def _body(self, config: BigPandaConfig, event: Event) -> dict[str, Any]:
        state = event.state
        body: dict[str, Any] = {}
        if state.message:
            body["description"] = state.message
        details = html.unescape(state.details) if state.details else ""
        if details and not details.startswith("{"):  # not the default JSON dump
            body["details"] = details
        if event.id:
            body["check"] = event.id
        body.update(task=f"{event.task_name}:{event.name}",
                    timestamp=GoTime(state.time).Unix(), status=STATUS[event.level],
                    app_key=self.options.app_key or config.app_key)
        auto = _auto(config.auto_attributes)
        if "tags" in auto:
            body.update(event.tags)
        if "fields" in auto:
            body.update({k: _text(v) for k, v in event.fields.items()})
        data = event.template_data()
        try:
            for name, template in self.templates.items():
                body[name] = template.execute(data)
        except TemplateError as exc:
            raise HandlerError(f"bigpanda: {exc}") from None
        body.update({k: _text(v) for k, v in self.options.attributes.items()})
        return body

    async def handle(self, event: Event) -> None:
        config = self.context.config
        if config is None or not config.enabled:
            raise HandlerError("bigpanda: the [bigpanda] section is not enabled")
        await send(self.context, "bigpanda", self.options.url or config.url,
                   json_body=self._body(config, event),
                   headers={"Authorization": f"Bearer {config.token}"}, tls=TLS.of(config))


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="bigpanda", property="bigPanda", options=BigPandaOptions,
                        factory=BigPandaHandler, section="bigpanda",
                        doc="Send alerts to BigPanda.")]

"""ServiceNow: the [servicenow] section and the ``servicenow`` handler.

TICKscript ``.serviceNow().source('kapacitor').node('{{ index .Tags "host" }}')
.type('cpu').resource('{{ .Name }}').metricName('usage').messageKey('{{ .ID }}')
.additionalInfo('team', 'db')`` (also ``.uRL()``, ``.username()``, ``.password()``); topic
handler ``{"kind": "servicenow", "options": {"url", "username", "password", "source",
"node", "type", "resource", "metricName", "messageKey", "additional_info": {...}}}`` (keys
are matched case-insensitively, as Kapacitor decodes them).

Each event is a POST to the handler's URL (default ``[servicenow] url``) of one alert as
Kapacitor 1.5.7 sends it, ``{"source", "node", "type", "resource", "metric_name",
"message_key", "severity", "description"}`` in that order, every field present even when
empty (``"additional_info"`` is added after them only when the handler sets some, an
option of later Kapacitor versions), with basic auth when the section's username and
password are set (1.5.7 ignores the handler's). ``severity`` is ``"1"`` for CRITICAL,
``"4"`` for WARNING and ``"5"`` for INFO and OK; ``description`` is the message;
``message_key`` defaults to the alert ID. Node, type,
resource, metric name, message key and the string values of additional info are templates
rendered with ``ID``, ``Name``, ``TaskName``, ``Fields`` and ``Tags``; additional info is
sent as JSON text. Values are cut as ServiceNow allows: 100 bytes (source, node, type,
resource, metric name), 1024 (message key), 4000 (description), bytes cut as Go slices
them (a character cut in two is written as U+FFFD per byte left, as Go's encoder does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kapa_core.plugin_api import (
    Event,
    GoStruct,
    HandlerContext,
    HandlerError,
    HandlerKind,
    Level,
    Section,
    StringMap,
    Template,
    TemplateError,
    go_json,
    hookimpl,
    option,
    option_template,
    parse_template,
    require_url,
    send,
    setting,
)

from .service_test_kit import SectionService, cut_bytes, decode, go_marshal

SEVERITY = {Level.OK: "5", Level.INFO: "5", Level.WARNING: "4", Level.CRITICAL: "1"}
USUAL_CUTOFF = 100
TEMPLATED = ("node", "type", "resource", "metric_name", "message_key")


@dataclass(frozen=True, kw_only=True)
class ServiceNowConfig:
    enabled: bool = False
    url: str = "https://instance.service-now.com/api/global/em/jsonv2"
    source: str = ""
    username: str = ""
    password: str = setting("", redact=True)
    global_: bool = False
    state_changes_only: bool = False

    def validate(self) -> None:
        if self.enabled:
            require_url(self.url, "url")


class ServiceNowService(SectionService[ServiceNowConfig]):
    """``/service-tests/servicenow`` as Kapacitor 1.5.7 answers it."""

    def test_options(self) -> dict[str, Any]:
        return {"alert_id": "id", "source": "Kapacitor", "level": "CRITICAL",
                "message": "test servicenow alert"}

    async def test(self, options: dict[str, Any]) -> None:
        values = decode(options, self.test_options(), {"level": Level})
        config = self.config
        if not config.enabled:
            raise HandlerError("service is not enabled")
        record = GoStruct(source=cutoff(values["source"] or config.source, USUAL_CUTOFF),
                          node="", type="", resource="", metric_name="",
                          message_key=cutoff(values["alert_id"], 1024),
                          severity=SEVERITY[values["level"]],
                          description=cutoff(values["message"], 4000))
        auth = (config.username, config.password) \
            if config.username and config.password else None
        await send(self, "servicenow", config.url, content=go_marshal(record),
                   headers={"Content-Type": "application/json"}, auth=auth)


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="servicenow", schema=ServiceNowConfig, service=ServiceNowService,
                    doc="Send alerts to ServiceNow event management.")]


#: Go's ``%v`` of a value, for additional info that is not a string.
GO_VALUE = parse_template("{{ . }}", "value")




#: Go's ``text[:limit]`` (the bytes of a cut character are written ``\\ufffd``).
cutoff = cut_bytes


@dataclass(frozen=True, kw_only=True)
class ServiceNowOptions:
    url: str = option("", tick="uRL", doc="Defaults to [servicenow] url.")
    username: str = option("", doc="Ignored, as in Kapacitor 1.5.7: [servicenow] username.")
    password: str = option("", doc="Ignored, as in Kapacitor 1.5.7: [servicenow] password.")
    source: str = option("", doc="Defaults to [servicenow] source.")
    node: str = ""
    type: str = ""
    resource: str = ""
    metric_name: str = option("", key="metricName")
    message_key: str = option("", key="messageKey", doc="Defaults to the alert ID.")
    additional_info: dict[str, Any] = option(default_factory=dict, tick="additionalInfo",
                                             key="additional_info")

    def validate(self) -> None:
        _Templates(self)
        if self.url:
            require_url(self.url, "url")


class _Templates:
    """The handler's templates, parsed once."""

    def __init__(self, options: ServiceNowOptions) -> None:
        self.fields: dict[str, Template] = {}
        for name in TEMPLATED:
            text = getattr(options, name)
            if text:
                self.fields[name] = _template(name, text)
        self.info: dict[str, Template | str] = {}
        for key, value in options.additional_info.items():
            self.info[key] = (_template(f"additional_info.{key}", value)
                              if isinstance(value, str) else GO_VALUE.execute(value))



@dataclass(frozen=True)
class _DataInfo:
    """What the templates see (Kapacitor gives them these fields only)."""

    ID: str
    Name: str
    TaskName: str
    Fields: dict[str, Any]
    Tags: StringMap


class ServiceNowHandler:
    def __init__(self, options: ServiceNowOptions,
                 context: HandlerContext[ServiceNowConfig | None, object]) -> None:
        self.options = options
        self.context = context
        self.templates = _Templates(options)

    def _record(self, config: ServiceNowConfig, event: Event) -> dict[str, str]:
        data = _DataInfo(event.id, event.name, event.task_name, dict(event.fields),
                         StringMap(event.tags))
        try:
            values = {name: t.execute(data) for name, t in self.templates.fields.items()}
            info = {key: v if isinstance(v, str) else v.execute(data)
                    for key, v in self.templates.info.items()}
        except TemplateError as exc:
            raise HandlerError(f"servicenow: {exc}") from None
        # Kapacitor's Alert struct: its fields in their order
        record = GoStruct(source=cutoff(self.options.source or config.source, USUAL_CUTOFF))
        for name in ("node", "type", "resource", "metric_name"):
            record[name] = cutoff(values.get(name, ""), USUAL_CUTOFF)
        record["message_key"] = cutoff(values.get("message_key") or event.id, 1024)
        record["severity"] = SEVERITY[event.level]
        record["description"] = cutoff(event.state.message, 4000)
        if info:
            record["additional_info"] = go_json(info)
        return record

    async def handle(self, event: Event) -> None:
        config = self.context.config
        if config is None or not config.enabled:
            raise HandlerError("servicenow: the [servicenow] section is not enabled")
        # Kapacitor 1.5.7 authenticates with the section's credentials only
        auth = (config.username, config.password) \
            if config.username and config.password else None
        await send(self.context, "servicenow", self.options.url or config.url,
                   content=go_marshal(self._record(config, event)),
                   headers={"Content-Type": "application/json"}, auth=auth)


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="servicenow", property="serviceNow", options=ServiceNowOptions,
                        factory=ServiceNowHandler, section="servicenow",
                        doc="Send alert events to ServiceNow event management.")]


def _template(option: str, text: str) -> Template:
    return option_template(text, option, "servicenow")

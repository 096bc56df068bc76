"""PagerDuty: the [pagerduty] (API v1) and [pagerduty2] (Events API v2) sections and the
``pagerduty`` and ``pagerduty2`` handlers.

``pagerduty`` — TICKscript ``.pagerDuty().serviceKey('k')``; topic handler
``{"kind": "pagerduty", "options": {"service-key": "k"}}``. One POST of
``{"service_key", "event_type", "description", "incident_key", "client": "kapacitor",
"client_url", "details"}`` (all strings) to ``[pagerduty] url``: ``event_type`` is
``trigger`` for WARNING and CRITICAL and ``resolve`` for OK, ``incident_key`` is the alert
ID, ``description`` the message, ``details`` the alert details; INFO events are refused,
as Kapacitor refuses them. The service key defaults to ``[pagerduty] service-key``.

``pagerduty2`` — TICKscript ``.pagerDuty2().routingKey('k').link('http://x/{{ .ID }}',
'text')``; topic handler ``{"kind": "pagerduty2", "options": {"routing-key": "k", "links":
[{"href": "...", "text": "..."}]}}``. A POST to ``[pagerduty2] url`` with
``Accept: application/vnd.pagerduty+json;version=2``: INFO, WARNING and CRITICAL send
``{"routing_key", "event_action": "trigger", "dedup_key": <alert ID>, "payload": {"summary":
<message>, "source": <host tag or "unknown">, "severity": "info"|"warning"|"critical",
"timestamp": "2006-01-02T15:04:05.000000000Z07:00", "class": <task>, "component": "",
"group": "", "custom_details": {"result": <alert data>}}, "images": null, "links",
"client": "kapacitor", "client_url"}``; OK sends ``{"routing_key", "dedup_key",
"event_action": "resolve"}``. Link hrefs and texts are templates rendered with the event's
template data; a link without text shows its href.

``client_url`` is the daemon's HTTP API base URL (``http://<listen address>/kapacitor/v1``),
which is why both sections have a small service: it gives the handlers the running daemon.

Bodies are written as Kapacitor's ``json.Encoder`` writes them: maps with sorted keys,
v2's structs in their field order, and a final newline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kapa_core.plugin_api import (
    APIError,
    ConfigError,
    Event,
    GoStruct,
    GoTime,
    HandlerContext,
    HandlerError,
    HandlerKind,
    Level,
    Section,
    Template,
    TemplateError,
    enabled_config,
    go_json,
    hookimpl,
    option,
    parse_template,
    require_url,
    send,
    setting,
)

from .service_test_kit import SectionService, go_level, json_kind

V2_ACCEPT = "application/vnd.pagerduty+json;version=2"
V2_SEVERITY = {Level.INFO: "info", Level.WARNING: "warning", Level.CRITICAL: "critical"}
TIMESTAMP_LAYOUT = "2006-01-02T15:04:05.000000000Z07:00"
JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True, kw_only=True)
class PagerDutyConfig:
    enabled: bool = False
    url: str = "https://events.pagerduty.com/generic/2010-04-15/create_event.json"
    service_key: str = setting("", redact=True)
    global_: bool = False

    def validate(self) -> None:
        if not self.url:  # as Kapacitor 1.5.7, even when disabled
            raise ConfigError("url", "url cannot be empty")
        if self.enabled:
            require_url(self.url, "url")


@dataclass(frozen=True, kw_only=True)
class PagerDuty2Config:
    enabled: bool = False
    url: str = "https://events.pagerduty.com/v2/enqueue"
    routing_key: str = setting("", redact=True)
    global_: bool = False

    def validate(self) -> None:
        if not self.url:  # as Kapacitor 1.5.7, even when disabled
            raise ConfigError("url", "url cannot be empty")
        if self.enabled:
            require_url(self.url, "url")


class PagerDutyService(SectionService[PagerDuty2Config]):
    """[pagerduty2]'s service (it has no service test)."""


class PagerDuty1Service(SectionService[PagerDutyConfig]):
    """[pagerduty]'s service, with Kapacitor's service test (``/service-tests/pagerduty``):
    its options and the event it sends (checked against Kapacitor 1.5.7)."""

    def test_options(self) -> dict[str, Any]:
        return {"incident-key": "testIncidentKey", "description": "test pagerduty message",
                "details": "", "level": "CRITICAL"}

    async def test(self, options: dict[str, Any]) -> None:
        defaults = self.test_options()
        # a JSON null leaves a Go field as it was
        values = {k: defaults[k] if options.get(k) is None else options[k] for k in defaults}
        for key, value in values.items():
            if not isinstance(value, str):
                go_type = "alert.Level" if key == "level" else "string"
                raise APIError(400, f"failed to decode JSON body:json: cannot unmarshal "
                                    f"{json_kind(value)} into Go struct field "
                                    f"testOptions.{key} of type {go_type}")
        level = go_level(values["level"])
        if level is None:
            raise APIError(400, f"failed to decode JSON body:unknown alert level "
                                f"'{values['level']}'")
        config = self.config
        if not config.enabled:
            raise HandlerError("service is not enabled")
        if level is Level.INFO:
            raise HandlerError("AlertLevel 'info' is currently ignored by the PagerDuty "
                               "service")
        body = {"service_key": config.service_key,
                "event_type": "trigger" if level in (Level.WARNING, Level.CRITICAL)
                else "resolve",
                "description": values["description"], "incident_key": values["incident-key"],
                "client": "kapacitor", "client_url": self.daemon.api_url(),
                "details": values["details"]}
        await send(self, "pagerduty", config.url, content=go_json(body) + "\n",
                   headers=JSON_HEADERS)


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="pagerduty", schema=PagerDutyConfig, service=PagerDuty1Service,
                    doc="PagerDuty API v1."),
            Section(name="pagerduty2", schema=PagerDuty2Config, service=PagerDutyService,
                    doc="PagerDuty Events API v2.")]


# -- pagerduty (v1) ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PagerDutyOptions:
    service_key: str = option("", doc="Defaults to [pagerduty] service-key.")


class PagerDutyHandler:
    def __init__(self, options: PagerDutyOptions,
                 context: HandlerContext[PagerDutyConfig | None, object]) -> None:
        self.options = options
        self.context = context

    async def handle(self, event: Event) -> None:
        config = enabled_config(self.context, "pagerduty")
        if event.level is Level.INFO:
            raise HandlerError("pagerduty: level INFO is ignored by the PagerDuty service "
                               "(only WARNING, CRITICAL and OK are sent)")
        state = event.state
        body = {"service_key": self.options.service_key or config.service_key,
                "event_type": "resolve" if event.level is Level.OK else "trigger",
                "description": state.message, "incident_key": event.id,
                "client": "kapacitor",
                "client_url": self.context.daemon.api_url(),
                "details": state.details}
        await send(self.context, "pagerduty", config.url, content=go_json(body) + "\n",
                   headers=JSON_HEADERS)  # json.Encoder: a final newline


# -- pagerduty2 --------------------------------------------------------------------------


@dataclass(frozen=True)
class PagerDutyLink:
    """A link of a PagerDuty v2 event: ``href`` and ``text`` are templates."""

    href: str
    text: str = ""


@dataclass(frozen=True, kw_only=True)
class PagerDuty2Options:
    routing_key: str = option("", doc="Defaults to [pagerduty2] routing-key.")
    service_key: str = option("", tick="serviceKey", key="service-key",
                              doc="Older name of routingKey (routingKey wins).")
    links: tuple[PagerDutyLink, ...] = option((), tick="link", key="links",
                                               doc="Links (href, text) shown on the incident.")

    def validate(self) -> None:
        _link_templates(self.links)


def _link_templates(links: tuple[PagerDutyLink, ...]
                    ) -> list[tuple[Template, Template | None]]:
    out = []
    for index, link in enumerate(links):
        try:
            href = parse_template(link.href, "href")
            text = parse_template(link.text, "text") if link.text else None
        except TemplateError as exc:
            raise ConfigError(f"links[{index}]", f"pagerduty2: invalid link template: "
                              f"{exc}") from None
        out.append((href, text))
    return out


class PagerDuty2Handler:
    def __init__(self, options: PagerDuty2Options,
                 context: HandlerContext[PagerDuty2Config | None, object]) -> None:
        self.options = options
        self.context = context
        self.links = _link_templates(options.links)

    def _links(self, event: Event) -> list[GoStruct] | None:
        if not self.links:
            return None
        data = event.template_data()
        out = []
        try:
            for href_t, text_t in self.links:
                href = href_t.execute(data)
                out.append(GoStruct(href=href,
                                    text=text_t.execute(data) if text_t else href))
        except TemplateError as exc:
            raise HandlerError(f"pagerduty2: link template: {exc}") from None
        return out

    async def handle(self, event: Event) -> None:
        config = enabled_config(self.context, "pagerduty2")
        routing_key = (self.options.routing_key or self.options.service_key
                       or config.routing_key)
        severity = V2_SEVERITY.get(event.level)
        if severity is None:  # OK resolves the incident
            body: dict[str, Any] = GoStruct(routing_key=routing_key, dedup_key=event.id,
                                            event_action="resolve")
        else:  # Kapacitor's AlertPayload and PDCEF structs, fields in their order
            body = GoStruct(
                routing_key=routing_key, event_action="trigger", dedup_key=event.id,
                payload=GoStruct(
                    summary=event.state.message,
                    source=event.tags.get("host", "unknown"),
                    severity=severity,
                    timestamp=GoTime(event.state.time).Format(TIMESTAMP_LAYOUT),
                    **{"class": event.task_name}, component="", group="",
                    custom_details={"result": event.result()}),
                images=None, links=self._links(event), client="kapacitor",
                client_url=self.context.daemon.api_url())
        await send(self.context, "pagerduty2", config.url, content=go_json(body) + "\n",
                   headers={**JSON_HEADERS, "Accept": V2_ACCEPT})


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="pagerduty", property="pagerDuty", options=PagerDutyOptions,
                        factory=PagerDutyHandler, section="pagerduty",
                        doc="Trigger and resolve PagerDuty incidents (API v1)."),
            HandlerKind(name="pagerduty2", property="pagerDuty2", options=PagerDuty2Options,
                        factory=PagerDuty2Handler, section="pagerduty2",
                        doc="Trigger and resolve PagerDuty incidents (Events API v2).")]

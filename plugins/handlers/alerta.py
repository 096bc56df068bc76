"""Alerta: the [alerta] section and the ``alerta`` handler.

TICKscript ``.alerta().resource('{{ index .Tags "host" }}').event('{{ .ID }}')
.environment('prod').group('{{ .Group }}').value('{{ index .Fields "value" }}')
.origin('kapacitor').services('web', 'db').correlated('cpu-low').timeout(10m)
.token('t').tokenPrefix('Key').attribute('k', 'v').renameSeverity('crit', 'major')``; topic
handler ``{"kind": "alerta", "options": {"resource", "event", "environment", "group",
"value", "origin", "service": [...], "correlate": [...], "timeout": "10m", "token",
"token-prefix", "attributes": {...}, "rename-severities": {...}}}``.

Each event is a POST to ``<[alerta] url>/alert`` with ``Authorization: <token prefix>
<token>`` (prefix default ``Bearer``, token default ``[alerta] token``) of ``{"resource",
"event", "environment", "severity", "group", "value", "text": <message>, "origin",
"rawData": <alert data>, "service", "correlate", "timeout": <seconds>, "tags":
["k=v"...], "attributes"}``. Severity is ``ok``, ``informational``, ``warning`` or
``critical`` unless renamed (keys ``ok``, ``info``, ``warn``, ``crit``). Resource (default
``{{ .Name }}``), environment, group (default ``{{ .Group }}``), value, services and
correlations are templates rendered with the event's template data (services default to
the measurement name; ``correlate`` is left out unless ``.correlated()`` names some, as
Kapacitor 1.5.7 never sends it); event (default ``{{ .ID }}``) is rendered with only
``ID``, ``Name``, ``TaskName``, ``Group`` and ``Tags``. An empty environment or origin
falls back to the section's; the timeout defaults to 24h. The body is written as Go's
``json.Encoder`` writes it (keys sorted, a final newline).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from kapa_core.plugin_api import (
    TLS,
    ConfigError,
    Duration,
    Event,
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
    parse_template,
    require_url,
    send,
    setting,
)

from .service_test_kit import SectionService, decode

DEFAULT_TIMEOUT = Duration(24 * 3600 * 1_000_000_000)
DEFAULT_TOKEN_PREFIX = "Bearer"
SEVERITY = {Level.OK: ("ok", "ok"), Level.INFO: ("info", "informational"),
            Level.WARNING: ("warn", "warning"), Level.CRITICAL: ("crit", "critical")}
SEVERITY_KEYS = tuple(key for key, _ in SEVERITY.values())


@dataclass(frozen=True, kw_only=True)
class AlertaConfig:
    enabled: bool = False
    url: str = ""
    insecure_skip_verify: bool = False
    token: str = setting("", redact=True)
    token_prefix: str = setting("", doc="Empty means Bearer.")
    environment: str = ""
    origin: str = ""
    timeout: Duration = Duration(0)

    def validate(self) -> None:
        if self.enabled:
            require_url(self.url, "url")
        if self.timeout < 0:
            raise ConfigError("timeout", "must not be negative")


class AlertaService(SectionService[AlertaConfig]):
    """``/service-tests/alerta`` as Kapacitor 1.5.7 answers it."""

    def test_options(self) -> dict[str, Any]:
        c = self.config
        return {"resource": "testResource", "event": "testEvent",
                "environment": c.environment, "severity": "critical", "group": "testGroup",
                "value": "testValue", "message": "test alerta message", "origin": c.origin,
                "service": ["testServiceA", "testServiceB"], "timeout": "24h0m0s"}

    async def test(self, options: dict[str, Any]) -> None:
        values = decode(options, self.test_options(), {"service": list})
        if not values["resource"] or not values["event"]:
            raise HandlerError("Resource and Event are required to send an alert")
        config = self.config
        if not config.enabled:
            raise HandlerError("service is not enabled")
        try:  # Kapacitor ignores a timeout it cannot parse (0)
            timeout = int(Duration.parse(values["timeout"])) // 1_000_000_000
        except ValueError:
            timeout = 0
        body: dict[str, Any] = {
            "resource": values["resource"], "event": values["event"],
            "environment": values["environment"] or config.environment,
            "severity": values["severity"], "group": values["group"],
            "value": values["value"], "text": values["message"],
            "origin": values["origin"] or config.origin, "rawData": {"series": None},
            "timeout": timeout, "tags": []}
        if values["service"]:
            body["service"] = values["service"]
        prefix = config.token_prefix or DEFAULT_TOKEN_PREFIX
        await send(self, "alerta", alert_url(config.url), content=go_json(body) + "\n",
                   headers={"Authorization": f"{prefix} {config.token}",
                            "Content-Type": "application/json"}, tls=TLS.of(config))


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="alerta", schema=AlertaConfig, service=AlertaService,
                    doc="Send alerts to Alerta.")]


@dataclass(frozen=True, kw_only=True)
class AlertaOptions:
    token: str = option("", doc="Defaults to [alerta] token.")
    token_prefix: str = option("", doc="Defaults to [alerta] token-prefix, then Bearer.")
    resource: str = "{{ .Name }}"
    event: str = "{{ .ID }}"
    environment: str = option("", doc="Defaults to [alerta] environment.")
    group: str = "{{ .Group }}"
    value: str = ""
    origin: str = option("", doc="Defaults to [alerta] origin.")
    services: tuple[str, ...] = option((), tick="services", key="service")
    correlated: tuple[str, ...] = option((), tick="correlated", key="correlate")
    timeout: Duration = DEFAULT_TIMEOUT
    attributes: dict[str, Any] = option(default_factory=dict, tick="attribute",
                                        key="attributes")
    rename_severities: dict[str, Any] = option(default_factory=dict, tick="renameSeverity",
                                               key="rename-severities",
                                               doc="ok/info/warn/crit -> Alerta severity.")

    def validate(self) -> None:
        _Templates(self)
        if self.timeout < 0:
            raise ConfigError("timeout", "alerta: timeout must not be negative")
        for key, value in self.rename_severities.items():
            if key not in SEVERITY_KEYS:
                raise ConfigError(f"rename-severities.{key}", "alerta: unknown severity "
                                  f"{key!r} (expected one of {', '.join(SEVERITY_KEYS)})")
            if not isinstance(value, str):
                raise ConfigError(f"rename-severities.{key}", "alerta: the new severity "
                                  "must be a string")


class _Templates:
    """The option templates of one handler, parsed once."""

    def __init__(self, options: AlertaOptions) -> None:
        def parse(name: str, text: str) -> Template:
            try:
                return parse_template(text, name)
            except TemplateError as exc:
                raise ConfigError(name, f"alerta: invalid {name} template: {exc}") from None

        self.resource = parse("resource", options.resource)
        self.event = parse("event", options.event)
        self.environment = parse("environment", options.environment)
        self.group = parse("group", options.group)
        self.value = parse("value", options.value)
        self.services = [parse("service", s) for s in options.services]
        self.correlated = [parse("correlate", c) for c in options.correlated]


@dataclass(frozen=True)
class _EventData:
    """What the event template sees (Kapacitor gives it these fields only)."""

    ID: str
    Name: str
    TaskName: str
    Group: str
    Tags: StringMap


def alert_url(base: str) -> str:
    parts = urlsplit(base)
    path = posixpath.normpath(posixpath.join(parts.path or "/", "alert"))
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


class AlertaHandler:
    def __init__(self, options: AlertaOptions,
                 context: HandlerContext[AlertaConfig | None, object]) -> None:
        self.options = options
        self.context = context
        self.templates = _Templates(options)

    def _render(self, event: Event) -> dict[str, Any]:
        t = self.templates
        data = event.template_data()
        try:
            return {
                "resource": t.resource.execute(data),
                "event": t.event.execute(_EventData(event.id, event.name, event.task_name,
                                                    event.group, StringMap(event.tags))),
                "environment": t.environment.execute(data),
                "group": t.group.execute(data),
                "value": t.value.execute(data),
                "service": [s.execute(data) for s in t.services] or [event.name],
                # Kapacitor 1.5.7 has no correlations: sent only when .correlated() names
                # some (a later Kapacitor's option)
                **({"correlate": [c.execute(data) for c in t.correlated]}
                   if t.correlated else {})}
        except TemplateError as exc:
            raise HandlerError(f"alerta: {exc}") from None

    async def handle(self, event: Event) -> None:
        config = self.context.config
        if config is None or not config.enabled:
            raise HandlerError("alerta: the [alerta] section is not enabled")
        options = self.options
        fields = self._render(event)
        if not fields["resource"] or not fields["event"]:
            raise HandlerError("alerta: resource and event are required to send an alert")
        key, severity = SEVERITY[event.level]
        body = {**fields,
                "environment": fields["environment"] or config.environment,
                "severity": options.rename_severities.get(key, severity),
                "text": event.state.message,
                "origin": options.origin or config.origin,
                "rawData": event.result(),
                "timeout": int(options.timeout) // 1_000_000_000,
                "tags": [f"{k}={v}" for k, v in sorted(event.tags.items())]}
        if options.attributes:
            body["attributes"] = dict(options.attributes)
        token = options.token or config.token
        prefix = options.token_prefix or config.token_prefix or DEFAULT_TOKEN_PREFIX
        await send(self.context, "alerta", alert_url(config.url),
                   content=go_json(body) + "\n",  # as json.Encoder writes it
                   headers={"Authorization": f"{prefix} {token}",
                            "Content-Type": "application/json"},
                   tls=TLS.of(config))


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="alerta", options=AlertaOptions, factory=AlertaHandler,
                        section="alerta", doc="Send alerts to Alerta.")]

"""OpsGenie: the [opsgenie] (API v1) and [opsgenie2] (API v2) sections and the ``opsgenie``
and ``opsgenie2`` handlers.

``opsgenie`` — TICKscript ``.opsGenie().teams('a', 'b').recipients('c')``; topic handler
``{"kind": "opsgenie", "options": {"teams-list": [...], "recipients-list": [...]}}``. A POST
of ``{"apiKey", "entity": <alert ID>, "alias": <alert ID>, "message", "note": "",
"monitoring_tool": "kapacitor", "details": {"Level": <level>, "Monitoring Tool":
"Kapacitor"}, "description": <alert data as JSON text>, "teams", "recipients"}`` to
``<[opsgenie] url>/``; an OK event is a recovery: level ``RECOVERY``, ``note`` = the
message, sent to ``<[opsgenie] recovery_url>/`` instead (``.../alert/note`` adds a note,
``.../alert/close`` closes). Teams and recipients default to the section's.

``opsgenie2`` — TICKscript ``.opsGenie2().teams('a', 'b').recipients('c')
.recoveryAction('close')``; topic handler ``{"kind": "opsgenie2", "options":
{"teams-list": [...], "recipients-list": [...], "recovery_action": "notes"|"close"}}``.
Sent with ``Authorization: GenieKey <api-key>``. Non-OK events POST ``{"entity": <alert ID>,
"alias": <URL-safe base64 of the alert ID>, "message", "note": "", "priority":
"P5"|"P3"|"P1" (INFO, WARNING, CRITICAL), "description", "details": {"Monitoring Tool":
"Kapacitor", "Level", <first series' tags>, "Kapacitor Task Name": <series name>},
"responders": [{"name", "type": "team"}..., {"username", "type": "user"}...]}`` to
``[opsgenie2] url``; the description is the alert data as JSON text, or the alert details
when ``[opsgenie2] details = true``. OK events POST ``{"note": <message>}`` to
``<url>/<alias>/<recovery action>?identifierType=alias``: ``notes`` adds a note, ``close``
closes the alert; the action defaults to ``[opsgenie2] recovery_action``.
"""

from __future__ import annotations

import base64
import posixpath
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from kapa_core.plugin_api import (
    ConfigError,
    Event,
    HandlerContext,
    HandlerError,
    HandlerKind,
    Level,
    Section,
    enabled_config,
    go_json,
    hookimpl,
    option,
    require_choice,
    require_url,
    send,
    setting,
)

from .service_test_kit import SectionService, decode, go_level

RECOVERY_ACTIONS = ("notes", "close")
PRIORITY = {Level.INFO: "P5", Level.WARNING: "P3", Level.CRITICAL: "P1"}


@dataclass(frozen=True, kw_only=True)
class OpsGenieConfig:
    enabled: bool = False
    api_key: str = setting("", redact=True)
    teams: list[str] = setting([])
    recipients: list[str] = setting([])
    url: str = "https://api.opsgenie.com/v1/json/alert"
    recovery_url: str = setting("https://api.opsgenie.com/v1/json/alert/note",
                                key="recovery_url")
    global_: bool = False

    def validate(self) -> None:
        # as Kapacitor 1.5.7: the URLs even when disabled, the key when enabled
        if not self.url:
            raise ConfigError("url", "url cannot be empty")
        if not self.recovery_url:
            raise ConfigError("recovery_url", "recovery_url cannot be empty")
        if self.enabled:
            require_url(self.url, "url")
            require_url(self.recovery_url, "recovery_url")
            if not self.api_key:
                raise ConfigError("api-key", "api-key cannot be empty")


@dataclass(frozen=True, kw_only=True)
class OpsGenie2Config:
    enabled: bool = False
    api_key: str = setting("", redact=True)
    teams: list[str] = setting([])
    recipients: list[str] = setting([])
    url: str = "https://api.opsgenie.com/v2/alerts"
    recovery_action: str = setting("notes", key="recovery_action", doc="notes or close.")
    global_: bool = False
    details: bool = setting(False, doc="Send the alert details as the description.")

    def validate(self) -> None:
        if not self.url:  # as Kapacitor 1.5.7, even when disabled
            raise ConfigError("url", "url cannot be empty")
        require_choice(self.recovery_action, "recovery_action", RECOVERY_ACTIONS)
        if self.enabled:
            require_url(self.url, "url")
            if not self.api_key:
                raise ConfigError("api-key", "api-key cannot be empty")


class OpsGenieService(SectionService[OpsGenieConfig]):
    """``/service-tests/opsgenie`` as Kapacitor 1.5.7 answers it."""

    def test_options(self) -> dict[str, Any]:
        c = self.config
        return {"teams": list(c.teams) or None, "recipients": list(c.recipients) or None,
                "message-type": "CRITICAL", "message": "test opsgenie message",
                "entity-id": "testEntityID"}

    async def test(self, options: dict[str, Any]) -> None:
        values = decode(options, self.test_options(), {"teams": list, "recipients": list})
        config = self.config
        if not config.enabled:
            raise HandlerError("service is not enabled")
        message_type, message = values["message-type"], values["message"]
        body: dict[str, Any] = {
            "apiKey": config.api_key, "entity": values["entity-id"],
            "alias": values["entity-id"], "message": message,
            "note": message if message_type == "RECOVERY" else "",
            "monitoring_tool": "kapacitor",
            "details": {"Level": message_type, "Monitoring Tool": "Kapacitor"},
            "description": go_json({"series": None})}
        teams = values["teams"] or list(config.teams)
        if teams:
            body["teams"] = teams
        recipients = values["recipients"] or list(config.recipients)
        if recipients:
            body["recipients"] = recipients
        url = (config.recovery_url if message_type == "RECOVERY" else config.url) + "/"
        await send(self, "opsgenie", url, content=go_json(body) + "\n",
                   headers={"Content-Type": "application/json"})


class OpsGenie2Service(SectionService[OpsGenie2Config]):
    """``/service-tests/opsgenie2`` as Kapacitor 1.5.7 answers it."""

    def test_options(self) -> dict[str, Any]:
        c = self.config
        return {"teams": list(c.teams) or None, "recipients": list(c.recipients) or None,
                "recovery_action": c.recovery_action, "message-type": "CRITICAL",
                "message": "test opsgenie message", "entity-id": "testEntityID"}

    async def test(self, options: dict[str, Any]) -> None:
        values = decode(options, self.test_options(), {"teams": list, "recipients": list})
        message_type = values["message-type"]
        level: Level | None
        if message_type == "RECOVERY":
            level = Level.OK
        else:  # alert.ParseLevel: upper-cased, then read as a level
            level = go_level(message_type.upper())
            if level is None:
                raise HandlerError(f"unknown alert level '{message_type.upper()}'")
        config = self.config
        if not config.enabled:
            raise HandlerError("service is not enabled")
        entity, message = values["entity-id"], values["message"]
        event_alias = alias(entity)
        headers = {"Content-Type": "application/json",
                   "Authorization": f"GenieKey {config.api_key}"}
        if level is Level.OK:
            action = values["recovery_action"]
            if action not in RECOVERY_ACTIONS:
                action = config.recovery_action if config.recovery_action in \
                    RECOVERY_ACTIONS else "notes"
            url = recovery_url(config.url, event_alias, action)
            body: dict[str, Any] = {"note": message}
        else:
            url = config.url
            body = {"entity": entity, "alias": event_alias, "message": message, "note": "",
                    "priority": PRIORITY.get(level, ""),
                    "description": go_json({"series": None}),
                    "details": {"Monitoring Tool": "Kapacitor", "Level": str(level)}}
            responders = [{"name": t, "type": "team"}
                          for t in (values["teams"] or config.teams)]
            responders += [{"username": u, "type": "user"}
                           for u in (values["recipients"] or config.recipients)]
            if responders:
                body["responders"] = responders
        await send(self, "opsgenie2", url, content=go_json(body) + "\n", headers=headers)


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="opsgenie", schema=OpsGenieConfig, service=OpsGenieService,
                    doc="OpsGenie API v1."),
            Section(name="opsgenie2", schema=OpsGenie2Config, service=OpsGenie2Service,
                    doc="OpsGenie API v2.")]






def result_json(event: Event) -> str:
    """The alert's data (an InfluxQL result) as the JSON text Kapacitor puts in
    ``description``."""
    return go_json(event.result())




# -- opsgenie (v1) -----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class OpsGenieOptions:
    teams: tuple[str, ...] = option((), key="teams-list", doc="Defaults to [opsgenie] teams.")
    recipients: tuple[str, ...] = option((), key="recipients-list",
                                         doc="Defaults to [opsgenie] recipients.")


class OpsGenieHandler:
    def __init__(self, options: OpsGenieOptions,
                 context: HandlerContext[OpsGenieConfig | None, object]) -> None:
        self.options = options
        self.context = context

    async def handle(self, event: Event) -> None:
        config = enabled_config(self.context, "opsgenie")
        recovery = event.level is Level.OK
        message_type = "RECOVERY" if recovery else str(event.level)
        message = event.state.message
        body: dict[str, Any] = {
            "apiKey": config.api_key, "entity": event.id, "alias": event.id,
            "message": message, "note": message if recovery else "",
            "monitoring_tool": "kapacitor",
            "details": {"Level": message_type, "Monitoring Tool": "Kapacitor"},
            "description": result_json(event)}
        teams = list(self.options.teams or config.teams)
        if teams:
            body["teams"] = teams
        recipients = list(self.options.recipients or config.recipients)
        if recipients:
            body["recipients"] = recipients
        url = (config.recovery_url if recovery else config.url) + "/"
        await send(self.context, "opsgenie", url, content=go_json(body) + "\n",
                   headers={"Content-Type": "application/json"})  # json.Encoder's newline


# -- opsgenie2 ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class OpsGenie2Options:
    teams: tuple[str, ...] = option((), key="teams-list", doc="Defaults to [opsgenie2] teams.")
    recipients: tuple[str, ...] = option((), key="recipients-list",
                                         doc="Defaults to [opsgenie2] recipients.")
    recovery_action: str = option("", key="recovery_action",
                                  doc="notes or close; defaults to [opsgenie2] "
                                      "recovery_action.")

    def validate(self) -> None:
        if self.recovery_action:
            try:
                require_choice(self.recovery_action, "recovery_action", RECOVERY_ACTIONS)
            except ConfigError as exc:
                raise ConfigError(exc.path, f"opsgenie2: {exc.message}") from None


def alias(event_id: str) -> str:
    """OpsGenie v2 alias of an alert ID: its URL-safe base64 (with padding)."""
    return base64.urlsafe_b64encode(event_id.encode()).decode()


def recovery_url(url: str, event_alias: str, action: str) -> str:
    """``<url>/<alias>/<action>?identifierType=alias`` (path joined and cleaned)."""
    parts = urlsplit(url)
    path = posixpath.normpath(posixpath.join(parts.path or "/", event_alias, action))
    return urlunsplit((parts.scheme, parts.netloc, path, "identifierType=alias", ""))


class OpsGenie2Handler:
    def __init__(self, options: OpsGenie2Options,
                 context: HandlerContext[OpsGenie2Config | None, object]) -> None:
        self.options = options
        self.context = context

    def _alert(self, config: OpsGenie2Config, event: Event) -> dict[str, Any]:
        details: dict[str, str] = {"Monitoring Tool": "Kapacitor", "Level": str(event.level)}
        if event.series:
            row = event.series[0]
            details.update(row.get("tags") or {})
            details["Kapacitor Task Name"] = row.get("name", "")
        body: dict[str, Any] = {
            "entity": event.id, "alias": alias(event.id), "message": event.state.message,
            "note": "", "priority": PRIORITY.get(event.level, ""),
            "description": event.state.details if config.details else result_json(event),
            "details": details}
        responders = [{"name": t, "type": "team"}
                      for t in (self.options.teams or config.teams)]
        responders += [{"username": u, "type": "user"}
                       for u in (self.options.recipients or config.recipients)]
        if responders:
            body["responders"] = responders
        return body

    async def handle(self, event: Event) -> None:
        config = enabled_config(self.context, "opsgenie2")
        headers = {"Authorization": f"GenieKey {config.api_key}"}
        if event.level is Level.OK:
            action = self.options.recovery_action or config.recovery_action
            url = recovery_url(config.url, alias(event.id), action)
            body: dict[str, Any] = {"note": event.state.message}
        else:
            url, body = config.url, self._alert(config, event)
        await send(self.context, "opsgenie2", url, content=go_json(body) + "\n",
                   headers={"Content-Type": "application/json", **headers})


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="opsgenie", property="opsGenie", options=OpsGenieOptions,
                        factory=OpsGenieHandler, section="opsgenie",
                        doc="Create OpsGenie alerts (API v1)."),
            HandlerKind(name="opsgenie2", property="opsGenie2", options=OpsGenie2Options,
                        factory=OpsGenie2Handler, section="opsgenie2",
                        doc="Create, annotate and close OpsGenie alerts (API v2).")]

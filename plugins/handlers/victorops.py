"""VictorOps: the [victorops] section and the ``victorops`` handler.

TICKscript ``.victorOps().routingKey('team-ops')``; topic handler ``{"kind": "victorops",
"options": {"routing-key": "team-ops"}}``. Each event is a POST to
``<[victorops] url>/<api-key>/<routing key>`` of ``{"message_type": "CRITICAL"|"WARNING"|
"INFO"|"RECOVERY" (OK), "entity_id": <alert ID>, "state_message": <message>, "timestamp":
<Unix seconds>, "monitoring_tool": "kapacitor", "data": <alert data>}``; the alert data is
JSON text, or a JSON object when ``[victorops] json-data = true``. The routing key defaults
to ``[victorops] routing-key``.
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from kapa_core.plugin_api import (
    ConfigError,
    Event,
    GoTime,
    HandlerContext,
    HandlerError,
    HandlerKind,
    Level,
    Section,
    go_json,
    hookimpl,
    option,
    require_url,
    send,
    setting,
)

from .service_test_kit import SectionService, decode


@dataclass(frozen=True, kw_only=True)
class VictorOpsConfig:
    enabled: bool = False
    api_key: str = setting("", redact=True)
    routing_key: str = ""
    url: str = "https://alert.victorops.com/integrations/generic/20131114/alert"
    global_: bool = False
    json_data: bool = setting(False, doc="Send the alert data as a JSON object, not text.")

    def validate(self) -> None:
        if not self.url:  # as Kapacitor 1.5.7, even when disabled
            raise ConfigError("url", "url cannot be empty")
        if self.enabled:
            require_url(self.url, "url")


class VictorOpsService(SectionService[VictorOpsConfig]):
    """``/service-tests/victorops`` as Kapacitor 1.5.7 answers it."""

    def test_options(self) -> dict[str, Any]:
        return {"routingKey": self.config.routing_key, "messageType": "CRITICAL",
                "message": "test victorops message", "entityID": "testEntityID"}

    async def test(self, options: dict[str, Any]) -> None:
        values = decode(options, self.test_options(), {})
        config = self.config
        if not config.enabled:
            raise HandlerError("service is not enabled")
        empty = {"series": None}  # an empty models.Result
        body = {"message_type": values["messageType"], "entity_id": values["entityID"],
                "state_message": values["message"], "timestamp": int(time.time()),
                "monitoring_tool": "kapacitor",
                "data": empty if config.json_data else go_json(empty)}
        url = alert_url(config.url, config.api_key, values["routingKey"] or config.routing_key)
        await send(self, "victorops", url, content=go_json(body) + "\n",
                   headers={"Content-Type": "application/json"})


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="victorops", schema=VictorOpsConfig, service=VictorOpsService,
                    doc="Send alerts to VictorOps.")]






@dataclass(frozen=True, kw_only=True)
class VictorOpsOptions:
    routing_key: str = option("", doc="Defaults to [victorops] routing-key.")


def alert_url(base: str, api_key: str, routing_key: str) -> str:
    """``base`` with ``/<api key>/<routing key>`` joined to its path (cleaned, escaped)."""
    parts = urlsplit(base)
    path = posixpath.normpath(posixpath.join(parts.path or "/", api_key, routing_key))
    return urlunsplit((parts.scheme, parts.netloc, quote(path), parts.query, ""))


class VictorOpsHandler:
    def __init__(self, options: VictorOpsOptions,
                 context: HandlerContext[VictorOpsConfig | None, object]) -> None:
        self.options = options
        self.context = context

    async def handle(self, event: Event) -> None:
        config = self.context.config
        if config is None or not config.enabled:
            raise HandlerError("victorops: the [victorops] section is not enabled")
        result = event.result()
        body = {"message_type": "RECOVERY" if event.level is Level.OK else str(event.level),
                "entity_id": event.id, "state_message": event.state.message,
                "timestamp": GoTime(event.state.time).Unix(), "monitoring_tool": "kapacitor",
                "data": result if config.json_data else go_json(result)}
        url = alert_url(config.url, config.api_key,
                        self.options.routing_key or config.routing_key)
        await send(self.context, "victorops", url, content=go_json(body) + "\n",
                   headers={"Content-Type": "application/json"})  # json.Encoder's newline


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="victorops", property="victorOps", options=VictorOpsOptions,
                        factory=VictorOpsHandler, section="victorops",
                        doc="Send alerts to VictorOps.")]

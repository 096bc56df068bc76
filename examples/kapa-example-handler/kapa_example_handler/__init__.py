"""An example kapa-core handler plugin: the [example] section, its service, the `example` kind.

Everything it needs from kapa-core comes from ``kapa_core.plugin_api``; the package is
found through its ``kapa_core.plugins`` entry point once it is pip-installed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from kapa_core.plugin_api import (
    ConfigError,
    Duration,
    Event,
    HandlerContext,
    HandlerError,
    HandlerKind,
    Section,
    ServiceContext,
    hookimpl,
    setting,
)

__version__ = "1.0.0"


@dataclass(frozen=True, kw_only=True)
class ExampleConfig:
    """The [example] section."""

    enabled: bool = False
    url: str = setting("", doc="Where alert events are POSTed as JSON.")
    token: str = setting("", redact=True, doc="Sent as 'Authorization: Bearer <token>'.")
    timeout: Duration = Duration(10_000_000_000)

    def validate(self) -> None:
        if self.enabled and not self.url.startswith(("http://", "https://")):
            raise ConfigError("url", f"invalid URL {self.url!r} (expected http:// or "
                              "https://) when enabled = true")


@dataclass(frozen=True, kw_only=True)
class ExampleOptions:
    """`.example().severity('page')` in TICKscript, `options: {severity: page}` in a topic
    handler."""

    severity: str = ""


class ExampleService:
    """Owns the HTTP client; re-opened when [example] is overridden over the API."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.config: ExampleConfig = ctx.config
        self.log = ctx.logger
        self.client: httpx.AsyncClient | None = None

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        headers = {"Authorization": f"Bearer {self.config.token}"} if self.config.token else {}
        timeout = self.config.timeout / 1e9 or None
        async with httpx.AsyncClient(headers=headers, timeout=timeout) as client:
            self.client = client
            self.log.info("example service opened", enabled=self.config.enabled,
                          url=self.config.url or None)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self.client = None
                self.log.info("example service closed")

    async def post(self, body: dict[str, Any]) -> None:
        if self.client is None:
            raise HandlerError("example: the example service is not running")
        response = await self.client.post(self.config.url, json=body)
        if response.is_error:
            raise HandlerError(f"example: HTTP {response.status_code} from {self.config.url}")


#: What an ``example`` handler is made with: the [example] section and its service.
ExampleContext = HandlerContext[ExampleConfig, ExampleService]


class ExampleHandler:
    """Made by kapa-core as ``ExampleHandler(options, context)``, and made again when
    [example] is overridden (new config, new service)."""

    def __init__(self, options: ExampleOptions, context: ExampleContext) -> None:
        self.options = options
        self.context = context

    async def handle(self, event: Event) -> None:
        """POST Kapacitor's alert JSON with the handler's severity added."""
        config, service = self.context.config, self.context.service
        if not config.enabled:
            raise HandlerError("example: the [example] section is not enabled")
        if service is None:  # being re-opened after an override
            raise HandlerError("example: the example service is not running")
        self.context.check_outgoing(config.url)  # the daemon's -blacklist-cidrs
        body = json.loads(event.json())
        body["severity"] = self.options.severity or event.state.level.name.lower()
        await service.post(body)


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="example", schema=ExampleConfig, service=ExampleService,
                    doc="The example handler (package kapa-example-handler).")]


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="example", options=ExampleOptions, factory=ExampleHandler,
                        section="example")]

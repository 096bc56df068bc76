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
        if not self.config.enabled or self.client is None:
            raise HandlerError("example: the [example] section is not enabled")
        response = await self.client.post(self.config.url, json=body)
        if response.is_error:
            raise HandlerError(f"example: HTTP {response.status_code} from {self.config.url}")


@dataclass(frozen=True)
class ExampleHandler:
    options: ExampleOptions
    service: ExampleService

    async def handle(self, event: Event) -> None:
        """POST Kapacitor's alert JSON with the handler's severity added."""
        body = json.loads(event.json())
        body["severity"] = self.options.severity or event.state.level.name.lower()
        await self.service.post(body)


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="example", schema=ExampleConfig, service=ExampleService,
                    doc="The example handler (package kapa-example-handler).")]


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="example", options=ExampleOptions, factory=ExampleHandler,
                        section="example")]

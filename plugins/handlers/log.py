"""The ``log`` handler: appends each alert event's JSON, one per line, to a file.

``.log('/var/log/alerts.log').mode(0644)`` in TICKscript, ``kind: log`` with ``path`` and
``mode`` in a topic handler, as in Kapacitor.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import trio

from kapa_core.plugin_api import ConfigError, Event, HandlerContext, HandlerKind, hookimpl


@dataclass(frozen=True, kw_only=True)
class LogOptions:
    path: str = ""
    mode: int = 0o600

    def validate(self) -> None:
        if not os.path.isabs(self.path):  # Kapacitor's words (an empty path included)
            raise ConfigError("path", f"log path must be absolute: {self.path} is not "
                              "absolute")


class LogHandler:
    def __init__(self, options: LogOptions, context: HandlerContext[None, None]) -> None:
        self.options = options

    def _append(self, line: str) -> None:
        fd = os.open(self.options.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                     self.options.mode)
        with os.fdopen(fd, "a", encoding="utf-8") as out:
            out.write(line + "\n")

    async def handle(self, event: Event) -> None:
        await trio.to_thread.run_sync(self._append, event.json())


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="log", options=LogOptions, factory=LogHandler, args=("path",),
                        doc="Append alert JSON lines to a file.")]

"""An example kapa-core input plugin: ``[[example-input]]`` listeners of line protocol over TCP.

Each enabled element listens on its ``bind-address``; every line a client sends is one
point of InfluxDB line protocol, written into ``database``.``retention-policy`` as if it
had been POSTed to ``/write``. Everything it needs from kapa-core comes from
``kapa_core.plugin_api``; the package is found through its ``kapa_core.plugins`` entry
point once it is pip-installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import trio

from kapa_core.plugin_api import (
    ConfigError,
    InputContext,
    InputListener,
    Section,
    hookimpl,
    parse_line_protocol,
    require_choice,
    setting,
    unique_elements,
)

__version__ = "1.0.0"

PRECISIONS = ("n", "ns", "u", "ms", "s", "m", "h")


@dataclass(frozen=True, kw_only=True)
class ExampleInputConfig:
    """One ``[[example-input]]`` element."""

    enabled: bool = False
    name: str = setting("", doc="Names the element in the config API.")
    bind_address: str = setting(":8099", doc="host:port to listen on (TCP).")
    database: str = "example"
    retention_policy: str = setting("", doc="Empty: the default retention policy.")
    precision: str = setting("n", doc="Unit of the timestamps: n, u, ms, s, m or h.")
    max_line_size: int = setting(65536, doc="Longer lines are dropped and counted.")

    def validate(self) -> None:
        require_choice(self.precision, "precision", PRECISIONS)
        if self.max_line_size <= 0:
            raise ConfigError("max-line-size", "must be greater than 0")
        if not self.enabled:
            return
        if not self.name:
            raise ConfigError("name", "must be set when enabled = true")
        host, sep, port = self.bind_address.rpartition(":")
        if not sep or not port.isdigit() or int(port) > 65535:
            raise ConfigError("bind-address", f"invalid address {self.bind_address!r} "
                              "(expected host:port)")
        if not self.database:
            raise ConfigError("database", "must be set when enabled = true")


class ExampleListener:
    """Listens on one element's address until cancelled; one trio task per client."""

    def __init__(self, config: ExampleInputConfig, context: InputContext) -> None:
        self.config = config
        self.context = context
        self.log = context.log

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        host, _, port = self.config.bind_address.rpartition(":")
        # OSError here (the port is taken) reaches the daemon before started(): at
        # startup it stops the daemon naming this element, on an override it fails the
        # API request.
        listeners = await trio.open_tcp_listeners(int(port), host=host.strip("[]") or None)
        bound = listeners[0].socket.getsockname()
        address = f"{bound[0]}:{bound[1]}"
        self.stats = self.context.statistic("example_input",
                                            {"name": self.config.name, "bind": address})
        self.log.info("example input listening", addr=address, db=self.config.database)
        task_status.started(address)
        try:
            await trio.serve_listeners(self._client, listeners)
        finally:
            self.log.info("example input closed", addr=address)

    async def _client(self, stream: trio.SocketStream) -> None:
        stats = self.stats
        stats.add("connections")
        pending = b""
        skipping = False  # inside a line longer than max-line-size
        limit = self.config.max_line_size
        try:
            async with stream:
                while True:
                    try:
                        data = await stream.receive_some(65536)
                    except trio.BrokenResourceError:
                        break
                    if not data:
                        break
                    stats.add("bytes_received", len(data))
                    pending += data
                    end = pending.rfind(b"\n")
                    if end < 0:
                        if len(pending) > limit:
                            if not skipping:
                                stats.add("bad_lines")
                            skipping, pending = True, b""
                        continue
                    body, pending = pending[:end + 1], pending[end + 1:]
                    if skipping:  # the rest of an oversized line
                        body = body[body.find(b"\n") + 1:]
                        skipping = False
                    self._write(body)
                if pending and not skipping:
                    self._write(pending)  # a last line without a newline
        finally:
            stats.add("connections", -1)

    def _write(self, body: bytes) -> None:
        if not body.strip():
            return
        config = self.config
        result = parse_line_protocol(body, precision=config.precision,
                                     database=config.database,
                                     retention_policy=config.retention_policy,
                                     max_errors=1)
        if result.bad_lines:
            self.stats.add("bad_lines", result.bad_lines)
            self.log.warn("bad lines dropped", count=result.bad_lines,
                          first=str(result.errors[0]) if result.errors else None)
        if result.points:
            self.context.write_points(config.database, config.retention_policy,
                                      result.points)
            self.stats.add("points_received", len(result.points))


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="example-input", schema=ExampleInputConfig, multiple=True,
                    element_key="name", check=unique_elements("name"),
                    doc="Line protocol over TCP (package kapa-example-input).")]


@hookimpl
def kapa_input_listeners() -> list[InputListener]:
    return [InputListener(name="example-input", section="example-input",
                          factory=ExampleListener,
                          doc="Line protocol over TCP, one point per line.")]

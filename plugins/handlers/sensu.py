"""Sensu: the [sensu] section and the ``sensu`` handler.

TICKscript: ``.sensu().source('{{ index .Tags "host" }}').handlers('pagerduty', 'mail')
.metadata('team', 'ops').metadata('priority', 2)``. Topic handler: kind ``sensu`` with
options ``source``, ``handlers`` (a list) and ``metadata`` (an object).

Each event is one JSON check result written, with a newline, over a new TCP connection
to the Sensu client socket at the section's ``addr`` (``host:port``), as Kapacitor
writes it::

    {"name": "<alert id>", "source": "<source>", "output": "<message>",
     "status": 2, "handlers": ["…"], "<metadata key>": <value>, …}

``status`` is 0 for OK and INFO, 1 for WARNING, 2 for CRITICAL. ``source`` is the
handler's Go template rendered with the event's template data, else the section's
``source``; ``handlers`` are the handler's, else the section's (``null`` when neither
names any). Metadata keys are merged into the object but never replace the keys above.
The client answers ``ok`` and closes the connection; any other answer fails the event.

The alert id is used as the check name unchanged, so it must match Kapacitor's
``^[\\w\\.-]+$`` (ASCII letters, digits, ``_``, ``.``, ``-``); an event whose id does
not is refused with ``invalid name "…" for sensu alert`` instead of being sent.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import trio

from kapa_core.plugin_api import (
    ConfigError,
    Event,
    HandlerContext,
    HandlerError,
    HandlerKind,
    Level,
    Section,
    TemplateError,
    go_json,
    hookimpl,
    option,
    parse_template,
    setting,
)

#: Seconds to connect, send the check and read the client's answer.
TIMEOUT = 10.0
#: Most bytes of an answer read from the client socket.
MAX_ANSWER = 64 * 1024

NAME_PATTERN = r"^[\w\.-]+$"
_VALID_NAME = re.compile(r"[\w.-]+", re.ASCII)

STATUS = {Level.OK: 0, Level.INFO: 0, Level.WARNING: 1, Level.CRITICAL: 2}


@dataclass(frozen=True, kw_only=True)
class SensuConfig:
    enabled: bool = False
    addr: str = setting("", doc="host:port of the Sensu client socket.")
    source: str = "Kapacitor"
    handlers: list[str] = setting([])

    def validate(self) -> None:
        if self.enabled and ":" not in self.addr:
            raise ConfigError("addr", f"invalid address {self.addr!r} (expected host:port)")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="sensu", schema=SensuConfig, doc="Send alerts to Sensu.")]


@dataclass(frozen=True, kw_only=True)
class SensuOptions:
    source: str = option("", doc="A Go template; empty for [sensu] source.")
    handlers: tuple[str, ...] = option((), doc="Sensu handlers; none for [sensu] handlers.")
    metadata: dict[str, Any] = option(default_factory=dict,
                                      doc="Extra keys merged into the check result.")

    def validate(self) -> None:
        try:
            parse_template(self.source, "source")
        except TemplateError as exc:
            raise ConfigError("source", f"sensu: {exc}") from None


def check_name(name: str) -> None:
    """Refuse a check name Kapacitor refuses (Go's ASCII ``\\w``, no trailing newline)."""
    if not _VALID_NAME.fullmatch(name):
        raise HandlerError(f"sensu: invalid name {json.dumps(name, ensure_ascii=False)} "
                           f"for sensu alert. Must match {NAME_PATTERN}")


class SensuHandler:
    def __init__(self, options: SensuOptions,
                 context: HandlerContext[SensuConfig | None, object]) -> None:
        self.options = options
        self.context = context
        self.source = parse_template(options.source, "source")

    def check(self, config: SensuConfig, event: Event) -> dict[str, Any]:
        """The check result for ``event``."""
        try:
            source = self.source.execute(event.template_data())
        except TemplateError as exc:
            raise HandlerError(f"sensu: source: {exc}") from None
        check_name(event.id)
        handlers = list(self.options.handlers or config.handlers)
        result: dict[str, Any] = {"name": event.id, "source": source or config.source,
                                  "output": event.state.message,
                                  "status": STATUS.get(event.level, 3),
                                  "handlers": handlers or None}
        for key, value in self.options.metadata.items():
            result.setdefault(key, value)
        return result

    async def handle(self, event: Event) -> None:
        config = self.context.config
        if config is None or not config.enabled:
            raise HandlerError("sensu: the [sensu] section is not enabled")
        # Go's json.Encoder over a map: sorted keys, compact, a closing newline.
        line = (go_json(self.check(config, event)) + "\n").encode()
        host, _, port = config.addr.rpartition(":")
        if not port.isdigit():
            raise HandlerError(f"sensu: invalid addr {config.addr!r} (expected host:port)")
        answer = b""
        target = host.strip("[]") or "localhost"  # -blacklist-cidrs
        self.context.check_outgoing(f"tcp://[{target}]:{port}" if ":" in target
                                    else f"tcp://{target}:{port}")
        with trio.move_on_after(TIMEOUT) as scope:
            try:
                stream = await trio.open_tcp_stream(host.strip("[]") or "localhost",
                                                    int(port))
            except OSError as exc:
                raise HandlerError(f"sensu: cannot connect to {config.addr}: {exc}") from None
            async with stream:
                try:
                    await stream.send_all(line)
                    while len(answer) < MAX_ANSWER:
                        chunk = await stream.receive_some(4096)
                        if not chunk:
                            break
                        answer += chunk
                except (OSError, trio.BrokenResourceError) as exc:
                    raise HandlerError(f"sensu: {config.addr}: {exc}") from None
        if scope.cancelled_caught:
            raise HandlerError(f"sensu: {config.addr} timed out")
        if answer != b"ok":
            raise HandlerError("sensu: sensu socket error: "
                               + answer.decode("utf-8", "replace"))


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="sensu", options=SensuOptions, factory=SensuHandler,
                        section="sensu", doc="Send alerts to a Sensu client socket.")]

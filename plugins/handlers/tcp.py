"""The ``tcp`` handler: writes each alert event's JSON (and a newline) to host:port."""

from __future__ import annotations

from dataclasses import dataclass

import trio

from kapa_core.plugin_api import Event, HandlerContext, HandlerError, HandlerKind, hookimpl

TIMEOUT = 10


@dataclass(frozen=True, kw_only=True)
class TCPOptions:
    address: str = ""

    def validate(self) -> None:
        """Nothing to check: as Kapacitor does, the address is only dialled (and an
        unusable one fails the event) when an alert is sent."""


class TCPHandler:
    def __init__(self, options: TCPOptions, context: HandlerContext[None, None]) -> None:
        self.address = options.address
        host, colon, port = options.address.rpartition(":")
        self.host = host.strip("[]") or "localhost"  # Go dials ":port" locally
        self.port = int(port) if colon and port.isdigit() and int(port) < 65536 else -1
        self.context = context

    async def handle(self, event: Event) -> None:
        if self.port < 0:
            raise HandlerError(f"tcp: dial tcp {self.address}: not a host:port address")
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.context.check_outgoing(f"tcp://{shown}:{self.port}")  # -blacklist-cidrs
        with trio.move_on_after(TIMEOUT) as scope:
            try:
                stream = await trio.open_tcp_stream(self.host, self.port)
            except OSError as exc:
                raise HandlerError(f"tcp: cannot connect to {self.host}:{self.port}: "
                                   f"{exc}") from None
            async with stream:
                # Kapacitor encodes the JSON with its newline, then adds one more.
                await stream.send_all((event.json() + "\n\n").encode())
        if scope.cancelled_caught:
            raise HandlerError(f"tcp: {self.host}:{self.port} timed out")


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="tcp", options=TCPOptions, factory=TCPHandler,
                        args=("address",), doc="Send alert JSON over TCP.")]

"""Socket UDFs: ``[udf.functions.<name>]`` with ``socket`` (a unix socket path).

The program serving the socket is run by the user, not by the daemon. The daemon
connects once at start to ask for the function's info, then once per ``@name()`` node of
every task that starts, and speaks the UDF wire protocol on each connection
(``kapa_core.plugin_api.WireFunction``). When the task stops, the connection is shut for
writing, then closed.
"""

from __future__ import annotations

from typing import Any

import trio

from kapa_core.plugin_api import (
    Logger,
    UDFBridge,
    UDFConnection,
    UDFContext,
    WireFunction,
    hookimpl,
)


class SocketConnection:
    """One connection to a socket UDF."""

    def __init__(self, stream: trio.SocketStream, path: str) -> None:
        self.stream = stream
        self.path = path

    async def send_all(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def receive_some(self, max_bytes: int) -> bytes:
        return bytes(await self.stream.receive_some(max_bytes))

    async def send_eof(self) -> None:
        await self.stream.send_eof()

    async def aclose(self, grace: float) -> None:
        if grace > 0:  # let the function answer what it was sent
            with trio.move_on_after(grace):
                while await self.stream.receive_some(65536):
                    pass
        await self.stream.aclose()

    def account(self) -> str:
        return f"socket {self.path}"


def connector(config: Any) -> Any:
    path = config.socket

    async def connect(nursery: trio.Nursery, log: Logger) -> UDFConnection:
        return SocketConnection(await trio.open_unix_socket(path), path)

    return connect


def make_function(name: str, config: Any, context: UDFContext) -> WireFunction:
    return WireFunction(name, connector(config), config.timeout, context.logger)


def _selects(config: Any) -> bool:
    return bool(getattr(config, "socket", ""))


@hookimpl
def kapa_udf_bridges() -> list[UDFBridge]:
    return [UDFBridge(name="socket", factory=make_function, selects=_selects,
                      doc="Servers speaking the UDF protocol on a unix socket (socket).")]

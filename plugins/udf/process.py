"""Process UDFs: ``[udf.functions.<name>]`` with ``prog`` (and ``args``, ``env``).

Each use of the function starts the program anew, as Kapacitor does: once at the
daemon's start to ask for its info, then once per ``@name()`` node of every task that
starts. Requests go to its stdin and responses come from its stdout in the UDF wire
protocol (``kapa_core.plugin_api.WireFunction`` speaks it); every line it writes to
stderr is logged as ``UDF log`` with the task and node. The program gets the daemon's
environment plus ``env``. When the task stops, its stdin is closed and it has two
seconds to exit before it is killed; no process outlives its task.
"""

from __future__ import annotations

import os
import subprocess
from collections import deque
from typing import Any

import trio
import trio.lowlevel

from kapa_core.plugin_api import (
    Logger,
    UDFBridge,
    UDFConnection,
    UDFContext,
    WireFunction,
    hookimpl,
)

#: stderr lines kept for the error message of a process that fails.
STDERR_TAIL = 10


class ProcessConnection:
    """A running UDF program, reached through its stdin and stdout."""

    def __init__(self, process: trio.Process, log: Logger) -> None:
        self.process = process
        self.log = log
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL)

    async def send_all(self, data: bytes) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(data)

    async def receive_some(self, max_bytes: int) -> bytes:
        assert self.process.stdout is not None
        return bytes(await self.process.stdout.receive_some(max_bytes))

    async def send_eof(self) -> None:
        if self.process.stdin is not None:
            await self.process.stdin.aclose()

    async def aclose(self, grace: float) -> None:
        if self.process.stdin is not None:
            await self.process.stdin.aclose()
        with trio.move_on_after(grace):
            await self.process.wait()
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                await stream.aclose()

    def account(self) -> str:
        parts = []
        code = self.process.returncode
        if code is not None:
            parts.append(f"process exited with status {code}" if code >= 0
                         else f"process killed by signal {-code}")
        if self.stderr_tail:
            parts.append("stderr: " + " | ".join(self.stderr_tail))
        return "; ".join(parts)

    async def pump_stderr(self) -> None:
        """Log each stderr line as Kapacitor does (``UDF log``, ``text=...``)."""
        stream = self.process.stderr
        if stream is None:
            return
        pending = b""
        try:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    break
                pending += data
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    self._line(raw)
                if len(pending) > 65536:  # a line without end: logged in pieces
                    self._line(pending)
                    pending = b""
        except (trio.ClosedResourceError, trio.BrokenResourceError, OSError):
            pass
        if pending:
            self._line(pending)

    def _line(self, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").rstrip("\r")
        self.stderr_tail.append(text)
        self.log.info("UDF log", text=text)


def connector(config: Any) -> Any:
    """How to start the program of one function's config."""
    command = [config.prog, *config.args]
    env = {**os.environ, **config.env}

    async def connect(nursery: trio.Nursery, log: Logger) -> UDFConnection:
        process = await trio.lowlevel.open_process(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env)
        connection = ProcessConnection(process, log)
        nursery.start_soon(connection.pump_stderr)
        return connection

    return connect


def make_function(name: str, config: Any, context: UDFContext) -> WireFunction:
    return WireFunction(name, connector(config), config.timeout, context.logger)


def _selects(config: Any) -> bool:
    return bool(getattr(config, "prog", ""))


@hookimpl
def kapa_udf_bridges() -> list[UDFBridge]:
    return [UDFBridge(name="process", factory=make_function, selects=_selects,
                      doc="Programs speaking the UDF protocol on stdin/stdout (prog).")]

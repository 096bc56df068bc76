"""The ``exec`` handler: runs a program with the alert event's JSON on its stdin."""

from __future__ import annotations

from dataclasses import dataclass

import trio

from kapa_core.plugin_api import Event, HandlerContext, HandlerError, HandlerKind, hookimpl

TIMEOUT = 60


@dataclass(frozen=True, kw_only=True)
class ExecOptions:
    prog: str = ""
    args: tuple[str, ...] = ()

    def validate(self) -> None:
        """Nothing to check: Kapacitor takes an empty ``prog`` and fails each event."""


class ExecHandler:
    def __init__(self, options: ExecOptions, context: HandlerContext[None, None]) -> None:
        self.command = [options.prog, *options.args]

    @staticmethod
    def stdin(event: Event) -> bytes:
        """The event's JSON and a newline, as Go's json.Encoder writes it to the pipe."""
        return (event.json() + "\n").encode()

    async def handle(self, event: Event) -> None:
        if not self.command[0]:
            raise HandlerError("exec: no command")  # Go's exec of an empty name
        with trio.move_on_after(TIMEOUT):
            try:
                result = await trio.run_process(self.command, stdin=self.stdin(event),
                                                capture_stdout=True, capture_stderr=True,
                                                check=False)
            except OSError as exc:
                raise HandlerError(f"exec: cannot run {self.command[0]}: {exc}") from None
            if result.returncode != 0:
                raise HandlerError(f"exec: {self.command[0]} exited with status "
                                   f"{result.returncode}: "
                                   f"{result.stderr.decode(errors='replace').strip()}")
            return
        raise HandlerError(f"exec: {self.command[0]} did not finish within {TIMEOUT}s")


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="exec", options=ExecOptions, factory=ExecHandler,
                        args=("prog", "args"), doc="Run a program with alert JSON on stdin.")]

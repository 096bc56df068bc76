"""``watch <task> [key=value ...]`` and ``logs [key=value ...]``: follow the daemon's log
lines live (``GET /kapacitor/v1preview/logs``), as the ``kapacitor`` 1.5.7 client does.

The body is copied to stdout as it arrives, byte for byte, until the server ends it
(exit 0), the connection breaks (``failed to retrieve logs: ...``, exit 3) or the user
stops it with Ctrl-C or SIGTERM (exit 0). ``lvl=info+`` asks for that level and above.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from kapa_core.cli.kapa.api import PREVIEW, APIError
from kapa_core.cli.kapa.registry import Command, CommandError, Context, Registry

__all__ = ["register", "tail_logs"]

LOGS = PREVIEW + "/logs"

WATCH_USAGE = """Usage: kapacitor watch <task id> [<tags> ...]

	Watch logs associated with a task.

	Examples:

		$ kapacitor watch mytask
		$ kapacitor watch mytask node=log5
"""
LOGS_USAGE = """Usage: kapacitor logs [<tags> ...]

	Watch arbitrary kapacitor logs.

		$ kapacitor logs service=http lvl=error
		$ kapacitor logs service=http lvl=info+
"""


class _Stopped(Exception):
    """SIGTERM while following: end quietly, as Ctrl-C does."""


@contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stopped
    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _pairs(args: list[str], into: dict[str, str]) -> None:
    for arg in args:
        pair = arg.split("=")
        if len(pair) != 2:
            raise CommandError(f"bad keyvalue pair: '{arg}'")
        into[pair[0]] = pair[1]


def tail_logs(ctx: Context, tags: dict[str, str]) -> None:
    out = getattr(ctx.stdout, "buffer", None)
    try:
        with _stop_on_sigterm(), ctx.client.stream("GET", LOGS, params=tags) as answer:
            for chunk in answer.iter_bytes():
                if out is not None:
                    out.write(chunk)
                    out.flush()
                else:
                    ctx.write(chunk.decode("utf-8", "replace"))
                    ctx.stdout.flush()
    except (KeyboardInterrupt, _Stopped):
        return
    except APIError as exc:
        raise CommandError(f"failed to retrieve logs: {_reason(exc)}") from None


def _reason(exc: APIError) -> str:
    text = str(exc)
    # A body cut short reads as Go's io.Copy error; a refused request keeps its words.
    if text.endswith(": EOF") and exc.status is None and text.startswith("Get "):
        return "unexpected EOF"
    return text


def do_watch(ctx: Context, args: list[str]) -> None:
    if len(args) < 1:
        raise CommandError("must provide task ID.")
    tags = {"task": args[0]}
    _pairs(args[1:], tags)
    tail_logs(ctx, tags)


def do_logs(ctx: Context, args: list[str]) -> None:
    tags: dict[str, str] = {}
    _pairs(args, tags)
    tail_logs(ctx, tags)


def _printer(text: str) -> Callable[[], None]:
    def show() -> None:
        sys.stderr.write(text + "\n")  # Go's Fprintln after a text ending in a newline
    return show


def register(registry: Registry) -> None:
    registry.add(Command("watch", do_watch, _printer(WATCH_USAGE)))
    registry.add(Command("logs", do_logs, _printer(LOGS_USAGE)))

"""How large a TICKscript may be: bytes of text and nodes of pipeline.

Kapacitor sets no limit: an 18 MB script of three million chained ``|log()`` nodes kept
kapa-core busy for 150 s and 4 GB before it answered 400. These limits refuse such a
script for the cost of the limit, not of the script: its size is checked before the
lexer runs, and the nodes are counted as the lexer meets each ``|`` or ``@`` (every one
of them makes a node), again as the pipeline is built (``.deadman()`` adds nodes too).

The keys are kapa-core's own, in ``[task]`` because they bound what a task is made of
(templates and the ``[load]`` directory included): ``max-script-size`` (bytes, default
1 MiB: ten times the largest real scripts we know, three times the 300 kB stress scripts
of our tests) and ``max-nodes`` (default 10,000: a real task has tens). 0 lifts a limit.
A script at the size limit costs at most a few seconds of a worker thread and ~200 MB
while it is parsed (the worst case is a lambda of 500,000 tokens).

The daemon sets the limits for everything it runs through a context variable, which its
trio tasks and worker threads inherit, so two daemons in one process keep their own;
elsewhere (tests, tools) the defaults apply.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from kapa_core.config.core_sections import TaskConfig
from kapa_core.errors import TickError

DEFAULT_MAX_SCRIPT_SIZE: int = TaskConfig.max_script_size
DEFAULT_MAX_NODES: int = TaskConfig.max_nodes


@dataclass(frozen=True)
class ScriptLimits:
    max_script_size: int = DEFAULT_MAX_SCRIPT_SIZE  # bytes of UTF-8; 0 = no limit
    max_nodes: int = DEFAULT_MAX_NODES  # pipeline nodes of one task; 0 = no limit


DEFAULTS = ScriptLimits()  # frozen: safe to share as the context variable's default
_LIMITS: ContextVar[ScriptLimits] = ContextVar("kapa_core_script_limits", default=DEFAULTS)


def current() -> ScriptLimits:
    return _LIMITS.get()


def install(limits: ScriptLimits) -> None:
    """Set the limits for the calling task and everything it starts from now on."""
    _LIMITS.set(limits)


@contextmanager
def using(limits: ScriptLimits) -> Iterator[None]:
    token = _LIMITS.set(limits)
    try:
        yield
    finally:
        _LIMITS.reset(token)


def too_large(size: int, limit: int) -> TickError:
    return TickError(f"script too large: {size} bytes, more than [task] max-script-size "
                     f"= {limit}")


def check_size(text: str) -> None:
    """Refuse ``text`` if its UTF-8 form is larger than ``[task] max-script-size``."""
    limit = current().max_script_size
    if not limit or len(text) * 4 <= limit:  # no character takes more than four bytes
        return
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise too_large(size, limit)


def too_many_nodes(limit: int, line: int = 0, column: int = 0) -> TickError:
    return TickError(f"too many nodes: more than [task] max-nodes = {limit}", line, column)

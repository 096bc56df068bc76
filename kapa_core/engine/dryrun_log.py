"""Where the nodes of a dry run log: into the run's answer, not the daemon's log.

A node reports some of its problems only by logging them (a lambda that fails on a
point, a sideload key that cannot be read...). In a dry run those lines are what the
user asked about, and they are no news for whoever reads the daemon's log: a warning or
error of a node becomes one of the run's errors, tagged with the node's name; lines
below warning are dropped. A ``log()`` node's lines are not errors at all (what it
logs is its output, which the run keeps anyway), whatever level it logs at.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from kapa_core.logs import LEVELS, Logger

#: Called with the node's name, the message and its key-value pairs.
Sink = Callable[[str, str, dict[str, object]], None]


class RunLog(Logger):
    """A logger whose warnings and errors go to ``sink`` (those of a node, i.e. of a
    logger made ``with_(node=...)``); everything else is dropped."""

    __slots__ = ("_quiet", "_sink")

    def __init__(self, sink: Sink, quiet: frozenset[str] = frozenset(), **fields: object
                 ) -> None:
        super().__init__("dryrun", **fields)
        self._sink = sink
        #: nodes whose lines are not errors (the log() nodes)
        self._quiet = quiet

    def with_(self, **fields: object) -> Logger:
        child = RunLog(self._sink, self._quiet)
        child._fields = {**self._fields, **fields}
        return child

    def _log(self, level: int, msg: str, kv: dict[str, object], exc: bool = False) -> None:
        node = self._fields.get("node")
        if level >= logging.WARNING and isinstance(node, str) and node not in self._quiet:
            self._sink(node, msg, kv)

    def enabled(self, level: str) -> bool:
        return LEVELS[level] >= logging.WARNING


def describe(msg: str, kv: dict[str, object]) -> str:
    """A logged line as one message: ``msg: err`` and the other pairs as ``k=v``."""
    err = kv.get("err")
    rest = " ".join(f"{k}={v}" for k, v in kv.items() if k != "err" and v is not None)
    text = f"{msg}: {err}" if err else msg
    return f"{text} ({rest})" if rest else text

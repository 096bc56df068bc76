"""The commands of ``kapa``: what a command module registers and what it is given.

Each command module has a ``register(registry)`` function that adds its
:class:`Command` objects (and, for ``list``/``delete``, the kinds it handles, e.g.
``registry.add_kind("list", "recordings", run)``). A command's ``run(ctx, args)`` gets
the arguments after the command name and either returns (exit 0), raises
:class:`CommandError` or :class:`~kapa_core.cli.kapa.api.APIError` (printed on stderr,
exit 3, as ``kapacitor`` does), or raises ``SystemExit`` with the code ``kapacitor``
uses for that case (usage errors).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from kapa_core.cli.kapa.api import Client

__all__ = ["Command", "CommandError", "Context", "KindRun", "Registry", "Run"]


class CommandError(Exception):
    """A command failed; ``str()`` is printed on stderr and ``kapa`` exits 3."""


@dataclass
class Context:
    """What a running command is given.

    ``json_output`` is true when ``--json`` was given to a command that registered
    ``json=True``: it then prints the API's objects (see :meth:`print_json`) instead
    of its table.
    """

    client: Client
    json_output: bool = False
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)

    def write(self, text: str) -> None:
        self.stdout.write(text)

    def print_json(self, value: Any) -> None:
        self.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")

    @property
    def is_terminal(self) -> bool:
        """Whether stdout is a terminal (progress bars are drawn only then)."""
        try:
            return self.stdout.isatty()
        except (AttributeError, ValueError):
            return False


Run = Callable[[Context, list[str]], None]
#: A ``list``/``delete`` kind: given the context and the patterns/ids after the kind.
KindRun = Callable[[Context, list[str]], None]


@dataclass(frozen=True)
class Command:
    """One command: its name, what runs it, and its usage printer.

    ``help`` is what ``kapa help <name>`` prints (defaults to ``usage``); ``help=None``
    with ``has_help=False`` makes ``help <name>`` answer "Unknown command", as
    ``kapacitor help`` does for the commands it has no help for. ``json`` lets the
    command take ``--json``. ``hidden`` commands are not in the main usage (all of
    ``kapacitor``'s commands are listed by the fixed usage text anyway).
    """

    name: str
    run: Run
    usage: Callable[[], None]
    help: Callable[[], None] | None = None
    has_help: bool = True
    json: bool = False
    hidden: bool = False


class Registry:
    def __init__(self) -> None:
        self.commands: dict[str, Command] = {}
        self.kinds: dict[str, dict[str, KindRun]] = {"list": {}, "delete": {}}

    def add(self, command: Command) -> None:
        if command.name in self.commands:
            raise ValueError(f"command {command.name!r} registered twice")
        self.commands[command.name] = command

    def add_kind(self, verb: str, kind: str, run: KindRun) -> None:
        """Make ``kapa <verb> <kind> ...`` (verb ``list`` or ``delete``) call ``run``.

        ``list`` kinds get the patterns after the kind (``[""]`` when none was given, as
        ``kapacitor`` lists everything then) and should print JSON when
        ``ctx.json_output``; ``delete`` kinds get the arguments after the kind (at least
        one)."""
        kinds = self.kinds.setdefault(verb, {})
        if kind in kinds:
            raise ValueError(f"{verb} {kind!r} registered twice")
        kinds[kind] = run

    def get(self, name: str) -> Command | None:
        return self.commands.get(name)

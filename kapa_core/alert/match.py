"""Topic-handler ``match`` expressions: lambda syntax, evaluated per event.

``changed()``, ``level()``, ``name()``, ``taskName()``, ``duration()`` and
``alertDuration()`` describe the event; ``OK``, ``INFO``, ``WARNING`` and ``CRITICAL`` are
the levels; ``"host"`` reads the event's tag; every lambda function works too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kapa_core.alert.event import Event
from kapa_core.errors import TickError
from kapa_core.models.duration import Duration
from kapa_core.tick import ast
from kapa_core.tick.lambdas import compile_lambda
from kapa_core.tick.parser import parse

LEVELS = {"OK": 0, "INFO": 1, "WARNING": 2, "CRITICAL": 3}


class _Current:
    event: Event | None = None


def compile_match(text: str) -> Callable[[Event], bool]:
    """Compile ``text`` or raise ValueError with the position of the mistake."""
    try:
        program = parse(f"var match_expression = lambda: {text}")
    except TickError as exc:
        raise ValueError(f"invalid match expression {text!r}: {exc.message}") from None
    statement = program.statements[0] if program.statements else None
    value = getattr(statement, "value", None)
    if not isinstance(value, ast.Lambda):
        raise ValueError(f"invalid match expression {text!r}")
    current = _Current()

    def event() -> Event:
        assert current.event is not None
        return current.event

    functions: dict[str, Callable[[], Any]] = {
        "changed": lambda: event().changed,
        "level": lambda: int(event().level),
        "name": lambda: event().name,
        "taskName": lambda: event().task_name,
        "duration": lambda: Duration(event().state.duration),
        "alertDuration": lambda: Duration(event().state.duration),
    }
    try:
        compiled = compile_lambda(value, LEVELS, functions=functions)
    except TickError as exc:
        raise ValueError(f"invalid match expression {text!r}: {exc.message}") from None

    def match(e: Event) -> bool:
        current.event = e
        try:
            return compiled.eval_bool(e.state.time, e.fields, e.tags)
        finally:
            current.event = None
    return match

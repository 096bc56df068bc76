"""A value each daemon sets for everything it runs (its handler kinds, UDF functions,
deny list), kept in a context variable: the trio tasks and worker threads a daemon starts
see its value, and two daemons in one process (or one trio run) each see their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Generic, TypeVar

T = TypeVar("T")


class PerDaemon(Generic[T]):
    """``current()`` is the value ``install()`` set in this context (or an ancestor
    task's), else the default; ``using(value)`` sets it for a ``with`` block."""

    def __init__(self, name: str, default: T) -> None:
        self._var: ContextVar[T] = ContextVar(name, default=default)

    def current(self) -> T:
        return self._var.get()

    def install(self, value: T) -> Token[T]:
        """Make ``value`` current in this context and the tasks and threads it starts."""
        return self._var.set(value)

    @contextmanager
    def using(self, value: T) -> Iterator[T]:
        """``value`` current for the ``with`` block only."""
        token = self._var.set(value)
        try:
            yield value
        finally:
            self._var.reset(token)

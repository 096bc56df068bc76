"""The stream router: where every accepted point enters the engine.

``/write``, input listeners and (later) subscriptions call :meth:`StreamRouter.write`
with points that already carry their database and retention policy. The router counts
ingress per (database, retention policy, measurement), as Kapacitor's ``ingress``
statistics do, and hands the points to every consumer (an enabled task's ingest
channel) that wants that database/retention policy. Consumers must not block: a task
whose channel is full drops and counts, it never stalls the writer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import trio
import trio.lowlevel


class Consumer(Protocol):
    def wants(self, database: str, retention_policy: str) -> bool: ...

    def deliver(self, points: list[Any], names: frozenset[str] | None = None) -> None:
        """Take ``points``; ``names``, when given, are the measurements among them."""


class StreamRouter:
    """Fans points out to consumers by database/retention policy, counting ingress."""

    def __init__(self) -> None:
        self._consumers: list[Consumer] = []
        self._ingress: dict[tuple[str, str, str], int] = {}
        self.points_received = 0
        self.writes = 0

    def may_run(self, task_id: str) -> bool:
        """Every task runs here (a cluster member's router says which)."""
        return True

    def subscribe(self, consumer: Consumer) -> None:
        self._consumers.append(consumer)

    def unsubscribe(self, consumer: Consumer) -> None:
        if consumer in self._consumers:
            self._consumers.remove(consumer)

    def write(self, database: str, retention_policy: str, points: list[Any]) -> None:
        """Route ``points`` (all of ``database``.``retention_policy``) to consumers."""
        if not points:
            return
        self.writes += 1
        self.points_received += len(points)
        ingress = self._ingress
        name = points[0].name
        names = {name}
        run = 0
        for p in points:
            if p.name == name:
                run += 1
                continue
            key = (database, retention_policy, name)
            ingress[key] = ingress.get(key, 0) + run
            name = p.name
            names.add(name)
            run = 1
        key = (database, retention_policy, name)
        ingress[key] = ingress.get(key, 0) + run
        present = frozenset(names)
        for consumer in self._consumers:
            if consumer.wants(database, retention_policy):
                consumer.deliver(points, present)

    def backlog(self) -> int:
        """The most points any consumer has been handed and not yet processed: a writer
        that produces faster than the tasks consume (a large body parsed piece by piece)
        waits for this to come down, so what it has parsed never piles up in memory."""
        return max((getattr(c, "backlog", 0) for c in self._consumers), default=0)

    async def settle(self, limit: int) -> None:
        """Yield to the tasks until :meth:`backlog` is at most ``limit`` points, or it
        stops going down (a task that no longer consumes never holds a writer up)."""
        stalled = 0
        backlog = self.backlog()
        while backlog > limit and stalled < 100:
            await trio.lowlevel.checkpoint()
            now = self.backlog()
            stalled = stalled + 1 if now >= backlog else 0
            backlog = now

    def ingress(self) -> Iterable[tuple[tuple[str, str, str], int]]:
        """((database, retention policy, measurement), points received) pairs."""
        return list(self._ingress.items())

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

    def ingress(self) -> Iterable[tuple[tuple[str, str, str], int]]:
        """((database, retention policy, measurement), points received) pairs."""
        return list(self._ingress.items())

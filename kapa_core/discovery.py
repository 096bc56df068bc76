"""Discovery: plugins that find scrape targets and keep them current.

A discovery plugin returns :class:`DiscoveryKind` objects from ``kapa_discovery_kinds``.
The daemon calls ``factory(element, context)`` once for every enabled element of the
kind's section (each ``[[static-discovery]]`` table, say) and runs what it returns like
any service: an object with ``async serve(*, task_status=trio.TASK_STATUS_IGNORED)``
that calls ``task_status.started()`` once it runs and keeps discovering until it is
cancelled (shutdown, or a config override of its section, after which the factory is
called again with the new element).

Whenever its targets change the discoverer calls ``context.update(groups)`` with
:class:`TargetGroup` objects, Prometheus's model: ``targets`` (``host:port`` strings),
``labels`` common to them, and ``source``, which names the group. An update replaces the
groups whose sources it names and keeps the others; a group without targets removes its
source; ``update(groups, replace=True)`` replaces them all. A group given without a
source is named by its position in the update (``"0"``, ``"1"``...).

The daemon keeps the current groups of every running element in its
:class:`DiscoveryRegistry`, keyed by (section, element id): ``[[scraper]]`` elements
name one with ``discoverer-service`` and ``discoverer-id`` and follow it through
:meth:`DiscoveryRegistry.subscribe`; ``GET /kapacitor/v1/discovery`` shows them (a
kapa-core addition). An element's entry exists while its discoverer runs: it appears,
without groups, when the discoverer starts and goes when it stops.

``update`` must be called from the daemon's trio thread; a discoverer that works in a
worker thread hands its groups over with ``trio.from_thread.run_sync(context.update,
groups)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kapa_core.httpclients import HTTPClients, UsesHTTPClients
from kapa_core.logs import Logger
from kapa_core.services import DaemonFacts, Service

#: ``callback(service, id, groups)``: an element's groups changed (``groups`` is None
#: when its discoverer stopped).
Subscriber = Callable[[str, str, "tuple[TargetGroup, ...] | None"], None]


def _allow_all(url: str) -> None:
    """The outgoing-address check of a context made outside a daemon: allows all."""


@dataclass(frozen=True)
class TargetGroup:
    """Targets sharing labels, named by ``source`` (unique within one element)."""

    targets: tuple[str, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.targets, str) or not isinstance(self.targets, Iterable):
            raise TypeError(f"TargetGroup targets must be a sequence of 'host:port' "
                            f"strings, not {type(self.targets).__name__}")
        targets = tuple(self.targets)
        for target in targets:
            if not isinstance(target, str) or not target:
                raise TypeError(f"TargetGroup target {target!r} is not a non-empty string")
        if not isinstance(self.labels, Mapping):
            raise TypeError(f"TargetGroup labels must be a mapping of strings, not "
                            f"{type(self.labels).__name__}")
        labels = dict(self.labels)
        for key, value in labels.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(f"TargetGroup label {key!r}={value!r} is not a string pair")
        if not isinstance(self.source, str):
            raise TypeError(f"TargetGroup source must be a string, not "
                            f"{type(self.source).__name__}")
        object.__setattr__(self, "targets", targets)
        object.__setattr__(self, "labels", labels)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "targets": list(self.targets),
                "labels": dict(sorted(self.labels.items()))}


@dataclass
class Discovered:
    """The current groups of one running discoverer element."""

    service: str
    id: str
    groups: dict[str, TargetGroup] = field(default_factory=dict)
    #: wall-clock time (ns) of the last update; 0 before the first one
    updated_ns: int = 0

    def current(self) -> tuple[TargetGroup, ...]:
        return tuple(self.groups.values())

    def targets(self) -> list[tuple[str, Mapping[str, str]]]:
        """Every (target, labels) pair of every group, in order."""
        return [(t, g.labels) for g in self.groups.values() for t in g.targets]


class DiscoveryRegistry:
    """The current target groups of every running discoverer element of one daemon."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], Discovered] = {}
        self._subscribers: list[Subscriber] = []

    def open(self, service: str, id: str) -> Discovered:
        entry = Discovered(service, id)
        self._entries[(service, id)] = entry
        return entry

    def close(self, entry: Discovered) -> None:
        key = (entry.service, entry.id)
        if self._entries.get(key) is entry:
            del self._entries[key]
            self._notify(entry.service, entry.id, None)

    def update(self, entry: Discovered, groups: Iterable[TargetGroup], *,
               replace: bool = False) -> None:
        if self._entries.get((entry.service, entry.id)) is not entry:
            return  # a stopped discoverer's late update
        new = dict[str, TargetGroup]() if replace else dict(entry.groups)
        for index, group in enumerate(list(groups)):
            if not isinstance(group, TargetGroup):
                raise TypeError(f"discovery update: expected TargetGroup objects, got "
                                f"{type(group).__name__}")
            source = group.source or str(index)
            if group.targets:
                new[source] = group if group.source else TargetGroup(
                    group.targets, group.labels, source)
            else:
                new.pop(source, None)
        entry.groups = new
        entry.updated_ns = time.time_ns()
        self._notify(entry.service, entry.id, entry.current())

    def get(self, service: str, id: str) -> Discovered | None:
        return self._entries.get((service, id))

    def entries(self) -> list[Discovered]:
        return sorted(self._entries.values(), key=lambda e: (e.service, e.id))

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(service, id, groups)`` after every change; returns the
        function that unsubscribes it."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def _notify(self, service: str, id: str, groups: tuple[TargetGroup, ...] | None) -> None:
        for callback in list(self._subscribers):
            callback(service, id, groups)


@dataclass
class DiscoveryContext(UsesHTTPClients):
    """What a discoverer's factory receives, and all it may use.

    ``config`` is the element's typed config; ``id`` its name (the ``id`` key of the
    discovery sections, ``""`` for a single section); ``update(groups)`` publishes its
    targets (see the module docs); ``check_outgoing(url)`` raises when the deny list
    refuses the URL's host; ``daemon`` holds the daemon's facts.
    """

    section: str
    config: Any
    log: Logger
    id: str = ""
    check_outgoing: Callable[[str], None] = _allow_all
    daemon: DaemonFacts = field(default_factory=DaemonFacts)
    clients: HTTPClients = field(default_factory=HTTPClients, repr=False)
    registry: DiscoveryRegistry = field(default_factory=DiscoveryRegistry, repr=False)
    _entry: Discovered | None = field(default=None, repr=False)

    def open(self) -> None:
        """Enter this element in the registry (the daemon calls it before starting the
        discoverer)."""
        self._entry = self.registry.open(self.section, self.id)

    def update(self, groups: Iterable[TargetGroup], *, replace: bool = False) -> None:
        """Publish changed target groups (merged by source unless ``replace``)."""
        if self._entry is None:
            self.open()
        assert self._entry is not None
        self.registry.update(self._entry, groups, replace=replace)

    def groups(self) -> tuple[TargetGroup, ...]:
        """The groups this element publishes now."""
        return self._entry.current() if self._entry else ()

    def close(self) -> None:
        """Withdraw this element's groups (the daemon calls it when it stops)."""
        if self._entry is not None:
            self.registry.close(self._entry)


@dataclass(frozen=True, kw_only=True)
class DiscoveryKind:
    """A discovery service fed by config section ``section``, whose elements are named by
    their ``id``; ``[[scraper]]`` ``discoverer-service`` names the section.

    ``factory(element_config, context)`` returns the discoverer for one enabled element
    (see the module docs).
    """

    name: str
    section: str
    factory: Callable[[Any, DiscoveryContext], Service]
    doc: str = ""


__all__ = ["Discovered", "DiscoveryContext", "DiscoveryKind", "DiscoveryRegistry",
           "Subscriber", "TargetGroup"]

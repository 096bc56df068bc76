"""Discovery: plugins that find scrape targets and keep them current.

A discovery plugin returns :class:`DiscoveryKind` objects from ``kapa_discovery_kinds``.
The daemon calls ``factory(element, context)`` once for every enabled element of the
kind's section (each ``[[static-discovery]]`` table, say) that an enabled element of an
input listener follows (a ``[[scraper]]`` naming it, see ``InputListener.follows``; as
Kapacitor, a discoverer nobody scrapes does not run) and runs what it returns like any
service: an object with ``async serve(*, task_status=trio.TASK_STATUS_IGNORED)``
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
groups)``. A discoverer calls ``update`` after each of its lookups, even when it found
nothing (``update((), replace=True)``): the section's service test waits for that first
answer.

Service tests. Kapacitor offers ``POST /kapacitor/v1/service-tests/<section>`` with the
options ``{"id": ""}`` for each discovery section: it runs a fresh discoverer for the
enabled element of that id and succeeds once it publishes its first targets. A section
gets the same test by naming ``discovery_test_service(factory)`` as its ``service``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from kapa_core.errors import KapaError
from kapa_core.httpclients import HTTPClients, UsesHTTPClients
from kapa_core.logs import Logger
from kapa_core.services import DaemonFacts, Service, ServiceContext

#: how long a service test waits for a discoverer's first answer (as Kapacitor)
TEST_TIMEOUT = 30.0

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


DiscovererFactory = Callable[[Any, DiscoveryContext], Service]


class DiscoverySetupError(KapaError):
    """A discoverer cannot be set up (no credentials, say). Kapacitor's service test
    answers such an error with its message alone; raised by a factory or ``serve``, the
    section's service test does the same."""


class DiscoveryTestService:
    """The service of a discovery section: nothing runs in it (the daemon runs each
    element's discoverer); it answers the section's service test as Kapacitor does.

    The test finds the enabled element named by ``id`` (the last one, as Kapacitor),
    runs a new discoverer for it beside the daemon's, and succeeds when that discoverer
    first calls ``update``. Kapacitor then gives up after 30 s; kapa-core also reports at
    once a discoverer that fails or returns before answering, with its reason.
    """

    def __init__(self, context: ServiceContext, factory: DiscovererFactory) -> None:
        self.context = context
        self.factory = factory
        config = context.config
        self.elements: tuple[Any, ...] = tuple(config) if isinstance(
            config, (tuple, list)) else (config,)

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()

    def test_options(self) -> dict[str, Any]:
        return {"id": ""}

    def _element(self, id: str) -> Any:
        found = None
        for element in self.elements:
            if getattr(element, "id", "") == id and getattr(element, "enabled", True):
                found = element
        return found

    async def test(self, options: dict[str, Any], timeout: float = TEST_TIMEOUT) -> None:
        id = str(options.get("id") or "")
        quoted = json.dumps(id, ensure_ascii=False)
        element = self._element(id)
        if element is None:
            raise KapaError(f"discoverer {quoted} is not enabled or does not exist")
        answered = trio.Event()
        registry = DiscoveryRegistry()
        registry.subscribe(lambda service, id, groups: answered.set())
        context = DiscoveryContext(
            self.context.section, element, self.context.logger.with_(test=id), id=id,
            check_outgoing=self.context.check_outgoing, daemon=self.context.daemon,
            clients=self.context.clients, registry=registry)
        context.open()
        failure: list[str] = []

        async def run() -> None:
            try:
                discoverer = self.factory(element, context)
                await discoverer.serve()
            except DiscoverySetupError as exc:
                failure.append(str(exc))
            except Exception as exc:  # reported as the test's answer
                failure.append(f"discoverer {quoted} failed: {exc}")
            else:
                failure.append(f"discoverer {quoted} exited ")
            answered.set()

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run)
                with trio.move_on_after(timeout):
                    await answered.wait()
                in_time = answered.is_set()
                nursery.cancel_scope.cancel()
        finally:
            context.close()
        if failure:
            raise KapaError(failure[0])
        if not in_time:
            raise KapaError(f"timeout waiting for discoverer {quoted} to return")


def discovery_test_service(factory: DiscovererFactory) -> Callable[[ServiceContext],
                                                                   DiscoveryTestService]:
    """A ``Section.service`` that offers the discovery service test of Kapacitor for
    elements whose discoverer ``factory`` builds (see :class:`DiscoveryTestService`)."""

    def make(context: ServiceContext) -> DiscoveryTestService:
        return DiscoveryTestService(context, factory)

    return make


__all__ = ["Discovered", "DiscoverySetupError", "DiscoveryTestService", "discovery_test_service", "DiscoveryContext", "DiscoveryKind", "DiscoveryRegistry",
           "Subscriber", "TargetGroup"]

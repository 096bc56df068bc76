"""Input listeners: plugins that receive data from the network and write it as points.

An input plugin returns :class:`InputListener` objects from ``kapa_input_listeners``. The
daemon calls ``factory(element, context)`` once for every enabled element of the
listener's section (each ``[[udp]]`` table, or the one ``[collectd]`` table when it is
enabled) and runs what the factory returns like any service: an object with
``async serve(*, task_status=trio.TASK_STATUS_IGNORED)`` that binds its socket, calls
``task_status.started()`` once it listens, and serves until it is cancelled (shutdown,
or a config override of its section, after which the factory is called again).

What a listener may use is its :class:`InputContext`: the element's config, a logger,
``write_points(db, rp, points)`` (the same path as ``/write``: tasks, ``ingress``
statistics), the outgoing-address check, the daemon's facts, and
:meth:`InputContext.statistic` for the counters it keeps (published in
``/kapacitor/v1/debug/vars`` and the ``_kapacitor`` stats stream while it runs). A
listener that pulls from discovered targets (the ``[[scraper]]``) reads them with
:meth:`InputContext.target_groups` and follows them with :meth:`InputContext.watch_targets`.

Statistics. Kapacitor publishes one statistic per UDP listener, named ``udp`` with the
tag ``bind`` (the bound address) and the fields ``points_rx``, ``bytes_rx``,
``points_parse_fail``, ``read_fail``, ``points_tx`` and ``tx_fail``, each present once it
has been counted; its collectd, OpenTSDB and Graphite listeners publish none (their
counters stay inside InfluxDB's library). A listener that matches a Kapacitor listener
uses its names; any other statistic is a kapa-core addition and its docs say so.
Every statistic also carries the ``host``, ``cluster_id`` and ``server_id`` tags, and it
disappears when its listener stops, as Kapacitor deletes it on close.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from kapa_core.discovery import DiscoveryRegistry, Subscriber, TargetGroup
from kapa_core.httpclients import HTTPClients, UsesHTTPClients
from kapa_core.logs import Logger
from kapa_core.models.point import Point
from kapa_core.services import DaemonFacts, Service

Number = int | float


def _allow_all(url: str) -> None:
    """The outgoing-address check of a context made outside a daemon: allows all."""


class Counters:
    """One published statistic: a measurement ``name``, its ``tags`` and the counters a
    listener adds to. Fields appear once they are first counted (as Go's expvar maps)."""

    __slots__ = ("key", "name", "tags", "values")

    def __init__(self, key: str, name: str, tags: dict[str, str]) -> None:
        self.key = key
        self.name = name
        self.tags = tags
        self.values: dict[str, Number] = {}

    def add(self, name: str, n: Number = 1) -> None:
        """Add ``n`` to the field ``name``."""
        values = self.values
        values[name] = values.get(name, 0) + n

    def set(self, name: str, value: Number) -> None:
        """Set the field ``name`` (a gauge, such as open connections)."""
        self.values[name] = value

    def __repr__(self) -> str:
        return f"Counters({self.name!r}, {self.tags!r}, {self.values!r})"


class Statistics:
    """The statistics the plugins of one daemon publish, in publication order."""

    def __init__(self) -> None:
        self._items: dict[str, Counters] = {}

    def publish(self, name: str, tags: Mapping[str, str] | None = None) -> Counters:
        tags = {str(k): str(v) for k, v in (tags or {}).items()}
        base = ":".join([name, *(f"{k}={v}" for k, v in sorted(tags.items()))])
        key, n = base, 1
        while key in self._items:  # two listeners with the same name and tags
            n += 1
            key = f"{base}:{n}"
        counters = Counters(key, name, tags)
        self._items[key] = counters
        return counters

    def remove(self, counters: Counters) -> None:
        if self._items.get(counters.key) is counters:
            del self._items[counters.key]

    def __iter__(self) -> Iterator[Counters]:
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class InputContext(UsesHTTPClients):
    """What an input listener's factory receives, and all it may use.

    ``config`` is the element's typed config (one table of an array section);
    ``element`` its name in the config API (``""`` for a single section);
    ``write_points(db, rp, points)`` feeds points into the stream as ``/write`` does (an
    empty ``rp`` means the daemon's ``default-retention-policy``; each point is stamped
    with the db/rp it is written to); ``check_outgoing(url)`` raises when the deny list
    refuses the URL's host; ``daemon`` holds the daemon's facts.
    """

    section: str
    config: Any
    log: Logger
    write_points: Callable[[str, str, list[Point]], None]
    element: str = ""
    check_outgoing: Callable[[str], None] = _allow_all
    daemon: DaemonFacts = field(default_factory=DaemonFacts)
    clients: HTTPClients = field(default_factory=HTTPClients, repr=False)
    statistics: Statistics = field(default_factory=Statistics, repr=False)
    discovery: DiscoveryRegistry = field(default_factory=DiscoveryRegistry, repr=False)
    _published: list[Counters] = field(default_factory=list, repr=False)
    _watches: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def statistic(self, name: str, tags: Mapping[str, str] | None = None) -> Counters:
        """Publish a statistic for as long as this listener runs and return its
        counters (``counters.add("points_rx", n)``)."""
        counters = self.statistics.publish(name, tags)
        self._published.append(counters)
        return counters

    def target_groups(self, service: str, id: str) -> tuple[TargetGroup, ...] | None:
        """The target groups discoverer element ``id`` of section ``service`` publishes
        now (what a ``[[scraper]]`` naming it scrapes); None while it does not run."""
        entry = self.discovery.get(service, id)
        return entry.current() if entry is not None else None

    def watch_targets(self, callback: Subscriber) -> None:
        """Call ``callback(service, id, groups)`` (from the trio thread) after every
        change of any discoverer's groups (``groups`` None: it stopped), until this
        listener stops."""
        self._watches.append(self.discovery.subscribe(callback))

    def close(self) -> None:
        """Withdraw this listener's statistics and target watches (the daemon calls it
        when it stops)."""
        for counters in self._published:
            self.statistics.remove(counters)
        self._published.clear()
        for unsubscribe in self._watches:
            unsubscribe()
        self._watches.clear()


@dataclass(frozen=True, kw_only=True)
class InputListener:
    """An input listener fed by config section ``section``.

    ``factory(element_config, context)`` returns the listener service for one enabled
    element (see the module docs). ``name`` identifies the listener among plugins.

    ``follows(element_config)`` names the discoverer element, ``(section, id)``, whose
    targets an element reads (a ``[[scraper]]``'s ``discoverer-service`` and
    ``discoverer-id``), or None: the daemon runs a discoverer element only while an
    enabled element of some listener follows it, as Kapacitor runs a discoverer only for
    the scrapers that name it.
    """

    name: str
    section: str
    factory: Callable[[Any, InputContext], Service]
    doc: str = ""
    follows: Callable[[Any], tuple[str, str] | None] | None = None


def point_writer(write: Callable[[str, str, list[Any]], None],
                 default_rp: Callable[[], str]) -> Callable[[str, str, list[Point]], None]:
    """``write_points`` for input contexts: ``write`` (the stream router's) with the
    default retention policy applied and every point stamped with its db/rp, so that a
    listener that builds its own points cannot send them past ``from().database()``."""

    def write_points(database: str, retention_policy: str, points: list[Point]) -> None:
        if not points:
            return
        rp = retention_policy or default_rp()
        for p in points:
            if p.database != database or p.retention_policy != rp:
                p.database = database
                p.retention_policy = rp
        write(database, rp, points)

    return write_points


__all__ = ["Counters", "InputContext", "InputListener", "Statistics", "point_writer"]

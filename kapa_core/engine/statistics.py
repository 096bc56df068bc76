"""Kapacitor's internal statistics, computed from the running daemon.

One module builds them for both consumers, so the two always agree: the ``[stats]``
service writes them into the stream every ``stats-interval``
(:func:`stream_statistics`), and ``GET /kapacitor/v1/debug/vars`` serves them as
Kapacitor's expvar JSON (:func:`debug_vars`). Names, tags and fields are Kapacitor's:

=========  =============================================  ==================================
name       tags                                           fields
=========  =============================================  ==================================
kapacitor  (none)                                         num_tasks, num_enabled_tasks,
                                                          num_subscriptions, uptime (float s)
ingress    task_master (main), database, retention_policy points_received
           measurement
nodes      task, node (from1...), type (stream|batch),    avg_exec_time_ns, errors,
           kind (from, window, http_out...)               working_cardinality and the node's
                                                          own counters (alerts_triggered,
                                                          fields_defaulted, ...)
edges      task, parent, child, type (stream|batch)       collected, emitted
topics     id                                             collected
runtime    (none)                                         NumGoroutine, NumGC, PauseTotalNs,
                                                          HeapObjects, Sys
=========  =============================================  ==================================

Every statistic but ``kapacitor`` and ``runtime`` also carries the ``host``,
``cluster_id`` and ``server_id`` tags, as Kapacitor adds them to each one it publishes.
``nodes`` has no ``collected``/``emitted`` fields: those live on the ``edges``.

Edges. Nodes call their children directly, so an edge delivers everything it collects:
both counts of edge parent -> child are what the parent sent (the parent's
``emitted`` is their sum over its edges, as in Kapacitor). Like Kapacitor, each
stream task also has the edge ``stream -> stream0`` (points its ingest channel handed to
the task; points dropped because the channel was full are in the task's
``points_dropped`` instead), and the task master ``task_master:main`` has the edges
``write_points -> stream`` (every point written into the stream but the statistics
themselves) and ``stats -> stream`` (the statistics points, while the service is enabled).

Runtime. Kapacitor reports Go's ``runtime.MemStats``; the fields kapa-core can compute
honestly keep their Go names with these Python meanings:

* ``NumGoroutine`` — trio tasks alive in the daemon (services, running tasks, their I/O
  workers, HTTP connections);
* ``NumGC`` — garbage collections so far, all generations (``gc.get_stats``);
* ``PauseTotalNs`` — wall time spent inside those collections, measured by a ``gc``
  callback from the moment statistics are first computed (the stats service does it
  at startup);
* ``HeapObjects`` — memory blocks the interpreter has allocated
  (``sys.getallocatedblocks``);
* ``Sys`` — resident memory of the process in bytes (``/proc/self/statm``; the peak
  resident size where /proc does not exist).

``Alloc``, ``TotalAlloc``, ``Lookups``, ``Mallocs``, ``Frees`` and the ``Heap*`` sizes have
no cheap Python counterpart and are left out rather than invented; so is Kapacitor's
``events`` statistic. ``/debug/vars`` gives the same memory fields under
``memstats``.

Plugins. The statistics input listeners publish while they run (Kapacitor's ``udp``
with tag ``bind``, or a listener's own; see :mod:`kapa_core.inputs`) come from the
daemon's ``plugin_statistics``, with the common tags added.
"""

from __future__ import annotations

import gc
import os
import platform
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import trio

from kapa_core.models.duration import format_go

if TYPE_CHECKING:
    from kapa_core.engine.task_master import RunningTask

#: The ``task_master`` tag of ``ingress`` and the task of the task master's own edges.
TASK_MASTER = "main"
#: ``uptime`` counts from here (Kapacitor counts from when its vars package loads).
_STARTED = time.monotonic()

Number = int | float


@dataclass(frozen=True)
class Statistic:
    """One published statistic: ``key`` names it in ``/debug/vars``."""

    key: str
    name: str
    tags: dict[str, str]
    values: dict[str, Number]


# -- the daemon's parts ---------------------------------------------------------------
class _RootSection(Protocol):
    @property
    def hostname(self) -> str: ...


class _Config(Protocol):
    @property
    def root(self) -> _RootSection: ...


class _Stream(Protocol):
    @property
    def points_received(self) -> int: ...

    def ingress(self) -> Iterable[tuple[tuple[str, str, str], int]]: ...


class _TaskMaster(Protocol):
    @property
    def tasks(self) -> Mapping[str, RunningTask]: ...


class _Topic(Protocol):
    @property
    def collected(self) -> int: ...


class _Topics(Protocol):
    @property
    def topics(self) -> Mapping[str, _Topic]: ...


class _Alerts(Protocol):
    @property
    def topics(self) -> _Topics: ...


class _DenyList(Protocol):
    def __bool__(self) -> bool: ...

    def statistics(self) -> dict[str, int]: ...


class _Counters(Protocol):
    """A statistic a plugin publishes (``kapa_core.inputs.Counters``)."""

    @property
    def key(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def tags(self) -> Mapping[str, str]: ...
    @property
    def values(self) -> Mapping[str, Number]: ...


class Daemon(Protocol):
    """What the statistics read of the running daemon: its identity and config, the
    stream, the task master, the task counts, ``service(name)`` (the running ``influxdb``
    and ``stats`` services, or None), ``alerts`` (the topics; None before the alert
    service exists), ``blacklist`` (the ``-blacklist-cidrs`` deny list) and
    ``plugin_statistics`` (what input listeners publish)."""

    @property
    def config(self) -> _Config: ...
    @property
    def cluster_id(self) -> str: ...
    @property
    def server_id(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def stream(self) -> _Stream: ...
    @property
    def task_master(self) -> _TaskMaster: ...
    @property
    def alerts(self) -> _Alerts | None: ...
    @property
    def blacklist(self) -> _DenyList: ...
    @property
    def plugin_statistics(self) -> Iterable[_Counters]: ...

    def num_tasks(self) -> int: ...

    def num_enabled_tasks(self) -> int: ...

    def service(self, name: str) -> Any: ...


def num_subscriptions(app: Daemon) -> int:
    """Subscriptions the InfluxDB service holds: its ``num_subscriptions`` (method or
    number), else the sum of ``num_subscriptions`` over its per-cluster
    ``subscriptions`` managers; 0 without an InfluxDB service."""
    service = app.service("influxdb")
    count = getattr(service, "num_subscriptions", None)
    if callable(count):
        count = count()
    if isinstance(count, int) and not isinstance(count, bool):
        return count
    managers = getattr(service, "subscriptions", None)
    if isinstance(managers, dict):
        return sum(int(getattr(m, "num_subscriptions", 0) or 0) for m in managers.values())
    return 0


def stats_points_written(app: Daemon) -> int | None:
    """Points the stats service wrote into the stream; None when it is not writing."""
    service = app.service("stats")
    if service is None or not getattr(service, "enabled", False):
        return None
    return int(service.points_written)


def global_values(app: Daemon) -> dict[str, Number]:
    """The ``kapacitor`` statistic: what Kapacitor publishes as top-level numbers."""
    return {"num_enabled_tasks": app.num_enabled_tasks(),
            "num_subscriptions": num_subscriptions(app),
            "num_tasks": app.num_tasks(),
            "uptime": time.monotonic() - _STARTED}


# -- per-entity statistics ------------------------------------------------------------
def _numbers(values: dict[str, Any]) -> dict[str, Number]:
    return {k: v for k, v in values.items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


def collect(app: Daemon) -> list[Statistic]:
    """Every per-entity statistic (the ``kapacitor`` map of ``/debug/vars``)."""
    common = {"host": app.config.root.hostname, "cluster_id": app.cluster_id,
              "server_id": app.server_id}
    out: list[Statistic] = []
    for (db, rp, measurement), count in sorted(app.stream.ingress()):
        out.append(Statistic(
            f"ingress:{db}:{rp}:{measurement}", "ingress",
            {"task_master": TASK_MASTER, "database": db, "retention_policy": rp,
             "measurement": measurement, **common},
            {"points_received": count}))
    out += _task_master_edges(app, common)
    for task_id, running in sorted(app.task_master.tasks.items()):
        out += task_statistics(task_id, running, common)
    topics = app.alerts.topics.topics if app.alerts is not None else {}
    for topic_id, topic in sorted(topics.items()):
        out.append(Statistic(f"topics:{topic_id}", "topics", {"id": topic_id, **common},
                             {"collected": topic.collected}))
    # what plugins publish (input listeners), while they run
    for counters in app.plugin_statistics:
        out.append(Statistic(counters.key, counters.name,
                             {**counters.tags, **common}, dict(counters.values)))
    denylist = app.blacklist  # kapa-core's addition, with -blacklist-cidrs
    if denylist:
        out.append(Statistic("denylist", "denylist", dict(common),
                             dict(denylist.statistics())))
    return out


def _edge(task: str, parent: str, child: str, edge_type: str, count: int,
          common: dict[str, str]) -> Statistic:
    return Statistic(f"edges:{task}:{parent}:{child}", "edges",
                     {"task": task, "parent": parent, "child": child, "type": edge_type,
                      **common},
                     {"collected": count, "emitted": count})


def _task_master_edges(app: Daemon, common: dict[str, str]) -> list[Statistic]:
    task = f"task_master:{TASK_MASTER}"
    stats_written = stats_points_written(app)
    total = app.stream.points_received
    out = [_edge(task, "write_points", "stream", "stream", total - (stats_written or 0),
                 common)]
    if stats_written is not None:
        out.append(_edge(task, "stats", "stream", "stream", stats_written, common))
    return out


def task_statistics(task_id: str, running: RunningTask, common: dict[str, str]) -> list[Statistic]:
    """``nodes`` and ``edges`` of one running task."""
    task_type = running.pipeline.task_type
    out: list[Statistic] = []
    if task_type == "stream" and running.nodes:
        out.append(_edge(task_id, "stream", running.nodes[0].name, "stream",
                         running.points_received, common))
    for node in running.nodes:
        values = node.stats()
        out.append(Statistic(
            f"nodes:{task_id}:{node.name}", "nodes",
            {"task": task_id, "node": node.name, "type": task_type,
             # Kapacitor's node description: its name without the ID ("max", not
             # "influxql", for an InfluxQL node)
             "kind": node.name.removesuffix(str(node.spec.id)),
             **common},
            _numbers({k: v for k, v in values.items() if k not in ("collected", "emitted")})))
        edge_type = node.spec.edge_out().value
        for child in node.spec.children:  # each edge carried what the node sent
            out.append(_edge(task_id, node.name, child.name, edge_type,
                             node.emitted, common))
    return out


# -- runtime ----------------------------------------------------------------------------
class GCPauses:
    """Total wall time spent in garbage collections, timed by a ``gc`` callback."""

    def __init__(self) -> None:
        self.total_ns = 0
        self._started = 0
        self.installed = False

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter_ns()
        elif self._started:
            self.total_ns += time.perf_counter_ns() - self._started
            self._started = 0

    def install(self) -> None:
        if not self.installed:
            gc.callbacks.append(self)
            self.installed = True


GC_PAUSES = GCPauses()


def trio_tasks() -> int:
    """Trio tasks alive in the current run (0 outside trio)."""
    try:
        root = trio.lowlevel.current_root_task()
    except RuntimeError:
        return 0
    if root is None:
        return 0
    count = 0
    pending = [root]
    while pending:
        task = pending.pop()
        count += 1
        for nursery in task.child_nurseries:
            pending.extend(nursery.child_tasks)
    return count


def resident_bytes() -> int:
    """Resident memory of this process (peak resident size where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def memstats() -> dict[str, int]:
    """The memory fields of ``runtime``/``memstats`` kapa-core can compute."""
    GC_PAUSES.install()
    return {"HeapObjects": sys.getallocatedblocks(),
            "NumGC": sum(s.get("collections", 0) for s in gc.get_stats()),
            "PauseTotalNs": GC_PAUSES.total_ns,
            "Sys": resident_bytes()}


def runtime_values() -> dict[str, Number]:
    return {**memstats(), "NumGoroutine": trio_tasks()}


# -- the two views ----------------------------------------------------------------------
def stream_statistics(app: Daemon) -> list[Statistic]:
    """What the stats service writes: ``kapacitor``, every per-entity statistic with at
    least one value, then ``runtime`` (Kapacitor's order)."""
    data = [Statistic("kapacitor", "kapacitor", {}, global_values(app))]
    data += [s for s in collect(app) if s.values]
    data.append(Statistic("runtime", "runtime", {}, runtime_values()))
    return data


def _expvar_values(stat: Statistic) -> dict[str, Any]:
    """Values as ``/debug/vars`` prints them: Kapacitor's ``avg_exec_time_ns`` is a
    duration variable, printed as Go duration text (``"1.234µs"``), which Telegraf's
    kapacitor input parses back."""
    if stat.name != "nodes" or "avg_exec_time_ns" not in stat.values:
        return dict(stat.values)
    return {**stat.values, "avg_exec_time_ns": format_go(int(stat.values["avg_exec_time_ns"]))}


def debug_vars(app: Daemon) -> dict[str, Any]:
    """``/kapacitor/v1/debug/vars``: Kapacitor's published expvars, keys in Go's sorted
    order; ``pid`` is kapa-core's addition."""
    return {
        "cluster_id": app.cluster_id,
        "cmdline": sys.argv,
        "host": app.config.root.hostname,
        "kapacitor": {s.key: {"name": s.name, "tags": s.tags, "values": _expvar_values(s)}
                      for s in collect(app)},
        "memstats": memstats(),
        "num_enabled_tasks": app.num_enabled_tasks(),
        "num_subscriptions": num_subscriptions(app),
        "num_tasks": app.num_tasks(),
        "pid": os.getpid(),
        "platform": f"{platform.system()} {platform.machine()}",
        "product": "kapacitor",
        "server_id": app.server_id,
        "version": app.version,
    }

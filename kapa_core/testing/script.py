"""Run a TICKscript, or a chain of nodes, over given data without the daemon.

::

    run = run_script('''
        stream|from().measurement('cpu')
            |window().period(10s).every(10s)
            |mean('usage')
            |httpOut('avg')
    ''', "cpu,host=a usage=1 0\\ncpu,host=a usage=3 5000000000\\ncpu,host=a usage=9 10000000000")
    run.outputs("mean")       # the points (or batches) the mean node emitted
    run.http_out("avg")       # what GET /kapacitor/v1/tasks/<task>/avg would answer
    run.stats("window")       # the node's statistics, as the task's "stats" show them
    run.alerts                # every event the alert nodes fired

The script is evaluated as the task service evaluates it (:mod:`kapa_core.pipeline.
evaluate`) and its nodes are built as a running task builds them
(:func:`kapa_core.engine.build.build_nodes`), with a node context that needs no daemon:

* alert events are collected (``run.alerts``; per handler written in the script,
  ``run.handled(kind)``) and go through real alert topics (state, ``changed``,
  previous levels, inhibitors), but no handler runs;
* ``httpOut`` keeps its groups as the task does (``run.http_out(endpoint)``);
* ``influxDBOut`` lines are collected instead of written (``run.influxdb_out(name)``);
* ``kapacitorLoopback`` writes are collected (``run.loopback``);
* ``httpPost`` really posts (point it at a :class:`~kapa_core.testing.http.
  RecordingHTTPServer`);
* batch tasks' ``query`` nodes run no query: the given batches stand for their answers.

Data is pushed synchronously through the task's source node as the task's ingest pushes
a write: through the script's first branch, then the next (which decides the order in
which messages of several branches meet in a join). By default all the points are one
write, in time order (a stable sort: points of the same time keep their order); with
``sort=False`` each text and each run of Points given is a write, in the order given.
At the end of the input the run stops as a task stops: queued ``httpPost`` requests are
sent and what ``influxDBOut`` buffered counts as its output; windows, aggregates and
joins still open are *not* flushed (Kapacitor does not emit them on stop either), and
nothing driven by the wall clock (barrier ``idle``/``period`` timers, ``stats`` nodes,
query schedules) runs. A node error that stops a task in Kapacitor ends the input;
``run.error`` keeps it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import trio

from kapa_core.alert import kinds as registry
from kapa_core.alert.event import Event, EventState
from kapa_core.alert.topics import Topics
from kapa_core.engine.build import build_nodes
from kapa_core.engine.dryrun_batch import batches
from kapa_core.engine.node import Node, TaskStopped
from kapa_core.engine.nodes.influxdb_out import InfluxDBOutNode
from kapa_core.engine.nodes.io import HTTPPostNode, NodeContext
from kapa_core.engine.nodes.output import HTTPOutNode
from kapa_core.engine.nodes.query import QueryNode
from kapa_core.engine.task_master import CHUNK, DRAIN_TIMEOUT, close_senders
from kapa_core.errors import TickError
from kapa_core.influxdb.config import InfluxDBConfig
from kapa_core.logs import Logger
from kapa_core.models import gojson
from kapa_core.models.batch import Batch
from kapa_core.models.duration import Duration
from kapa_core.models.lineprotocol import parse as parse_lines
from kapa_core.models.point import Point
from kapa_core.pipeline.evaluate import Var, evaluate
from kapa_core.pipeline.pipeline import Pipeline

#: The database and retention policy of a script that names none.
DEFAULT_DBRP = ("db", "autogen")

Data = str | Point | Batch | tuple[str, "str | Batch"]
HandlerKindsArg = Literal["installed"] | registry.HandlerKinds | Mapping[str, Any] | None


# -- handler kinds: the one place that knows how evaluation finds them ------------------------
@contextmanager
def handler_kinds_for_evaluation(handler_kinds: HandlerKindsArg) -> Iterator[None]:
    """Make ``handler_kinds`` the kinds TICKscript evaluation knows, for the block.

    ``None`` leaves whatever is current (what a test session or a daemon installed);
    ``"installed"`` takes the kinds of the installed plugins (their entry points); a
    :class:`~kapa_core.alert.kinds.HandlerKinds` or a mapping of kind name to
    ``HandlerKind`` takes those.
    """
    if handler_kinds is None:
        yield
        return
    if isinstance(handler_kinds, registry.HandlerKinds):
        kinds = handler_kinds
    elif handler_kinds == "installed":
        from kapa_core.plugins import load_plugins

        kinds = load_plugins().kinds()
    else:
        kinds = registry.HandlerKinds(dict(handler_kinds))
    with registry.using(kinds):
        yield


# -- what the nodes get instead of the daemon ---------------------------------------------------
@dataclass
class HandledEvent:
    """An event as it reached a handler written in the script."""

    kind: str
    options: dict[str, Any]
    event: Event


class _Recorder:
    """Stands for a handler: keeps what reaches it."""

    def __init__(self, kind: str, options: dict[str, Any], into: list[HandledEvent]) -> None:
        self.kind = kind
        self.options = options
        self.into = into

    async def handle(self, event: Event) -> None:  # never called: events are taken at once
        self.into.append(HandledEvent(self.kind, self.options, event))


class _Topics(Topics):
    """Real topics (event state, inhibitors) whose handlers are recorders, given each
    event as it is published instead of through a handler task."""

    def __init__(self, events: list[Event], log: Logger) -> None:
        super().__init__(None, persist=False, buffer=1, log=log)
        self.events = events
        self.recorders: dict[str, dict[str, _Recorder]] = {}

    def attach(self, topic_id: str, handler_id: str, kind: str, handler: Any,
               match: Callable[[Event], bool] | None = None) -> Any:
        self.topic(topic_id)
        self.recorders.setdefault(topic_id, {})[handler_id] = handler
        return handler

    def detach(self, topic_id: str, handler_id: str) -> None:
        self.recorders.get(topic_id, {}).pop(handler_id, None)

    def publish(self, event: Event) -> None:
        super().publish(event)
        recorders = self.recorders.get(event.topic)
        if not recorders:
            return
        self.events.append(event)
        for recorder in recorders.values():
            if recorder.kind:
                recorder.into.append(HandledEvent(recorder.kind, recorder.options, event))


class _Alerts:
    """The alert service as the kit's alert nodes see it."""

    def __init__(self, log: Logger) -> None:
        self.events: list[Event] = []
        self.handled: list[HandledEvent] = []
        self.topics = _Topics(self.events, log)

    def task_handlers(self, spec: Any, task_id: str) -> tuple[list[tuple[str, Any]], bool]:
        handlers: list[tuple[str, Any]] = [
            (use.kind, _Recorder(use.kind, dict(use.values), self.handled))
            for use in spec.handlers]
        if not handlers:  # an anonymous topic all the same: every event is collected
            handlers.append(("", _Recorder("", {}, self.handled)))
        return handlers, False

    def restored_state(self, anon_topic: str, topic: str, event_id: str
                       ) -> EventState | None:
        for name in (anon_topic, topic):
            state = self.topics.state(name, event_id) if name else None
            if state is not None:
                return state
        return None

    def publish(self, event: Event) -> None:
        self.topics.publish(event)


class _InfluxDB:
    """An ``[[influxdb]]`` service with one enabled cluster, ``default``, and no client:
    ``influxDBOut`` nodes are built, and their lines are read from their buffers."""

    elements = (InfluxDBConfig(name="default", default=True),)

    def client(self, name: str | None = None) -> None:
        return None


@dataclass
class _KitContext(NodeContext):
    #: like a replay's: query nodes are fed, never scheduled
    replay: bool = True


# -- the run ----------------------------------------------------------------------------------
@dataclass
class ScriptRun:
    """What a script did with its input. Nodes are named as in Kapacitor's DOT
    (``window2``, ``state_count3``); a kind of node that occurs once in the script names
    it too (``window``, ``stateCount``)."""

    pipeline: Pipeline
    nodes: list[Node]
    task_id: str
    #: the message of the error that stopped the task (``<node>: <error>``), or ""
    error: str = ""
    #: (database, retention policy, point) of each point ``kapacitorLoopback`` wrote
    loopback: list[tuple[str, str, Point]] = field(default_factory=list)
    _outputs: dict[str, list[Point | Batch]] = field(default_factory=dict)
    _alerts: _Alerts | None = None

    def node(self, name: str) -> Node:
        """The runtime node named ``name`` (``window2``) or of the one kind ``name``."""
        for node in self.nodes:
            if node.name == name:
                return node
        wanted = name.replace("_", "").lower()  # stateCount or state_count
        kind = [n for n in self.nodes
                if wanted == n.name.rstrip("0123456789").replace("_", "").lower()]
        if len(kind) == 1:
            return kind[0]
        names = ", ".join(n.name for n in self.nodes)
        why = "several nodes are" if kind else "no node is"
        raise KeyError(f"{why} named {name!r}; the nodes: {names}")

    def outputs(self, name: str) -> list[Point | Batch]:
        """Every point or batch the node emitted, in order."""
        return self._outputs[self.node(name).name]

    def points(self, name: str) -> list[Point]:
        """What the node emitted, batches flattened to points (name, batch tags and time
        of each batch point)."""
        out: list[Point] = []
        for item in self.outputs(name):
            if isinstance(item, Batch):
                out.extend(Point(item.name, {**item.tags, **bp.tags}, bp.fields, bp.time,
                                 group=item.group, dims=item.dims) for bp in item.points)
            else:
                out.append(item)
        return out

    def fields(self, name: str, field_name: str) -> list[Any]:
        """The values of one field in what the node emitted (batches flattened)."""
        return [p.fields.get(field_name) for p in self.points(name)]

    def stats(self, name: str) -> dict[str, Any]:
        """The node's statistics, as the task's ``stats`` show them."""
        return self.node(name).stats()

    def http_out(self, endpoint: str) -> Any:
        """The JSON ``GET /kapacitor/v1/tasks/<task>/<endpoint>`` would serve, decoded."""
        for node in self.nodes:
            if isinstance(node, HTTPOutNode) and node.endpoint == endpoint:
                return json.loads(gojson.dumps(node.result()))
        raise KeyError(f"no httpOut({endpoint!r}) in the script")

    def influxdb_out(self, name: str = "influxDBOut") -> list[tuple[str, str, str]]:
        """(database, retention policy, line) of each line the node would have written."""
        node = self.node(name)
        if not isinstance(node, InfluxDBOutNode):
            raise KeyError(f"{node.name} is no influxDBOut node")
        batches = [*node._ready, *node._open.items()]  # written order: full ones first
        return [(db, rp, line) for (db, rp), lines in batches for line in lines]

    @property
    def alerts(self) -> list[Event]:
        """Every event the script's alert nodes fired (inhibited ones are not)."""
        return self._alerts.events if self._alerts is not None else []

    def handled(self, kind: str | None = None) -> list[HandledEvent]:
        """The events that reached the handlers written in the script (of ``kind``)."""
        handled = self._alerts.handled if self._alerts is not None else []
        return [h for h in handled if kind is None or h.kind == kind]

    def levels(self) -> list[str]:
        """The level of each event fired, in order (``OK``, ``CRITICAL``...)."""
        return [str(e.level) for e in self.alerts]

    def dot(self, *, stats: bool = False) -> str:
        """The task's DOT graph; with ``stats``, with its nodes' statistics."""
        if not stats:
            return self.pipeline.dot(self.task_id)
        return self.pipeline.dot(self.task_id, {n.name: n.stats() for n in self.nodes}, 0.0)


# -- input -------------------------------------------------------------------------------------
def _vars(given: Mapping[str, Any] | None) -> dict[str, Var]:
    out: dict[str, Var] = {}
    for name, value in (given or {}).items():
        if isinstance(value, Var):
            out[name] = value
        elif isinstance(value, bool):
            out[name] = Var("bool", value)
        elif isinstance(value, int):
            out[name] = Var("int", value)
        elif isinstance(value, float):
            out[name] = Var("float", value)
        elif isinstance(value, Duration):
            out[name] = Var("duration", value)
        elif isinstance(value, str):
            out[name] = Var("string", value)
        elif isinstance(value, list | tuple):
            out[name] = Var("list", list(value))
        else:
            raise TypeError(f"var {name!r}: give a Var for a value of type "
                            f"{type(value).__name__}")
    return out


def parse_points(text: str, *, database: str = DEFAULT_DBRP[0],
                 retention_policy: str = DEFAULT_DBRP[1], now: int | None = None,
                 precision: str = "n") -> list[Point]:
    """Points of line protocol text (lines may be indented with spaces or tabs);
    ValueError naming the bad lines."""
    body = "\n".join(line.lstrip(" \t") for line in text.split("\n"))  # indented ok
    result = parse_lines(body, precision=precision, now_ns=now, database=database,
                         retention_policy=retention_policy)
    if result.errors:
        raise ValueError("; ".join(str(e) for e in result.errors))
    return result.points


def batches_of(text: str | Iterable[Point], dims: Sequence[str] = (), *,
               by_name: bool = False, tmax: int | None = None) -> list[Batch]:
    """The batches a query grouped by the tags ``dims`` (``"*"``: every tag) would answer
    with these points: one per measurement and group, in the order of their group ids;
    each point keeps its group's tags. ``tmax`` defaults to the last point's time."""
    points = parse_points(text) if isinstance(text, str) else list(text)
    out = batches(points, list(dims), by_name, 0)
    for batch in out:
        batch.tmax = tmax if tmax is not None else batch.points[-1].time
    return out


class _Feeder:
    def __init__(self, run: ScriptRun, dbrp: tuple[str, str], now: int | None,
                 precision: str = "n", sort: bool = True) -> None:
        self.run = run
        self.dbrp = dbrp
        self.now = now
        self.precision = precision
        self.sort = sort
        names = [getattr(n, "measurement", "") for n in run.pipeline.nodes
                 if n.kind == "from"]
        self.measurements = None if not names or "" in names else frozenset(names)

    def stream(self, data: Iterable[Data]) -> list[list[Point]]:
        """The writes to deliver: all the points sorted by time in one write, or (not
        sorting) each text and each run of Points given as a write of its own."""
        writes: list[list[Point]] = []
        last_was_point = False
        for item in data:
            if isinstance(item, str):
                writes.append(parse_points(item, database=self.dbrp[0],
                                           retention_policy=self.dbrp[1], now=self.now,
                                           precision=self.precision))
                last_was_point = False
            elif isinstance(item, Point):
                if not item.database:
                    item = Point(item.name, item.tags, item.fields, item.time, *self.dbrp)
                if not last_was_point:
                    writes.append([])
                writes[-1].append(item)
                last_was_point = True
            else:
                raise TypeError(f"a stream task takes line protocol text or Points, not "
                                f"{type(item).__name__}")
        if self.sort:
            writes = [sorted((p for w in writes for p in w), key=lambda p: p.time)]
        names = self.measurements
        if names is not None:  # a task is handed only the measurements its from()s name
            writes = [[p for p in w if p.name in names] for w in writes]
        return [w for w in writes if w]

    def batches(self, data: Iterable[Data]) -> Iterator[tuple[QueryNode, Batch]]:
        queries = {n.name: n for n in self.run.nodes if isinstance(n, QueryNode)}
        if not queries:
            raise ValueError("the script has no query node to feed")
        first = next(iter(queries.values()))
        for item in data:
            node = first
            if isinstance(item, tuple):
                name, item = item
                if name not in queries:
                    raise KeyError(f"no query node {name!r}; the query nodes: "
                                   f"{', '.join(queries)}")
                node = queries[name]
            if isinstance(item, Batch):
                yield node, item
            elif isinstance(item, str):
                dims = [d for d in node.spec.group_dimensions() if isinstance(d, str)]
                for batch in batches_of(parse_points(item, now=self.now,
                                                     precision=self.precision), dims,
                                        by_name=node.by_name):
                    yield node, batch
            else:
                raise TypeError(f"a batch task takes Batches or line protocol text (one "
                                f"query answer), not {type(item).__name__}")


def _record_outputs(nodes: list[Node], into: dict[str, list[Point | Batch]]) -> None:
    """Keep what each node emits (without a child of its own, so its stats are exact)."""
    for node in nodes:
        kept: list[Point | Batch] = into.setdefault(node.name, [])
        point, run, batch = node.emit_point, node.emit_points, node.emit_batch

        def emit_point(p: Point, kept: list[Point | Batch] = kept,
                       send: Callable[[Point], None] = point) -> None:
            kept.append(p)
            send(p)

        def emit_points(points: list[Point], kept: list[Point | Batch] = kept,
                        send: Callable[[list[Point]], None] = run) -> None:
            kept.extend(points)
            send(points)

        def emit_batch(b: Batch, kept: list[Point | Batch] = kept,
                       send: Callable[[Batch], None] = batch) -> None:
            kept.append(b)
            send(b)

        # Wrapped on the instance, not by a recording child: a child would count in
        # the node's emitted statistics and cost every other node a check per point.
        node.emit_point = emit_point  # type: ignore[method-assign]  # see above
        node.emit_points = emit_points  # type: ignore[method-assign]  # see above
        node.emit_batch = emit_batch  # type: ignore[method-assign]  # see above


def run_script(script: str, points: Iterable[Data] | str = (), *,
               task_type: str = "stream", vars: Mapping[str, Any] | None = None,
               handler_kinds: HandlerKindsArg = None, now: int | None = None,
               task_id: str = "testing", dbrps: Sequence[tuple[str, str]] = (),
               precision: str = "n", sort: bool = True,
               log: Logger | None = None) -> ScriptRun:
    """Evaluate ``script`` as a ``task_type`` task and push ``points`` through it.

    ``points``: for a stream task, line protocol text (one string or several, times in
    ``precision``) and :class:`Point` objects, sorted by time (a stable sort; with
    ``sort=False`` in the order given, each text a write, as a ``/write`` body); for a
    batch task, :class:`Batch` objects and line protocol texts (each one query answer,
    split into batches by the query node's ``groupBy``), in the order given;
    ``("query3", data)`` feeds a given query node.
    ``vars`` overrides the script's vars (plain values or :class:`Var`); ``now`` is the
    time of a line without a timestamp; ``dbrps`` the task's (by default the script's
    ``dbrp`` statements, else ``"db"."autogen"``: the database of the given lines).
    ``handler_kinds``: see :func:`handler_kinds_for_evaluation`.

    Raises :class:`~kapa_core.errors.TickError` for a script that does not evaluate and
    :class:`~kapa_core.errors.KapaError` for one whose task could not start.
    """
    with handler_kinds_for_evaluation(handler_kinds):
        evaluated = evaluate(script, task_type, _vars(vars), dbrps=list(dbrps) or None)
    if evaluated.start_error:
        raise TickError(evaluated.start_error)
    pipeline = evaluated.pipeline
    task_dbrps = list(dbrps) or list(getattr(pipeline, "dbrps", None) or []) or [DEFAULT_DBRP]
    if not getattr(pipeline, "dbrps", None):
        pipeline.dbrps = list(task_dbrps)
    return _run(pipeline, points, task_id=task_id, dbrp=task_dbrps[0], now=now, log=log,
                precision=precision, sort=sort)


def run_nodes(pipeline: Pipeline, points: Iterable[Data] | str = (), *,
              task_id: str = "testing", now: int | None = None,
              dbrp: tuple[str, str] = DEFAULT_DBRP, precision: str = "n", sort: bool = True,
              log: Logger | None = None) -> ScriptRun:
    """Like :func:`run_script` for a pipeline of specs built in Python (specs' own
    constructors, as :mod:`kapa_core.pipeline.evaluate` builds them). TICKscript is the
    simpler way to describe a chain; this is for specs a script cannot make."""
    return _run(pipeline, points, task_id=task_id, dbrp=dbrp, now=now, log=log,
                precision=precision, sort=sort)


def _run(pipeline: Pipeline, data: Iterable[Data] | str, *, task_id: str,
         dbrp: tuple[str, str], now: int | None, log: Logger | None,
         precision: str = "n", sort: bool = True) -> ScriptRun:
    log = (log or Logger("testing")).with_(task=task_id)
    alerts = _Alerts(log)
    loopback: list[tuple[str, str, Point]] = []

    def write_points(db: str, rp: str, points: list[Any]) -> None:
        loopback.extend((db, rp, p) for p in points)

    influxdb = _InfluxDB()
    context = _KitContext(write_points=write_points, alerts=alerts, task_id=task_id,
                          influxdb=lambda: influxdb)
    nodes = build_nodes(pipeline, log, context)
    run = ScriptRun(pipeline, nodes, task_id, loopback=loopback, _alerts=alerts)
    _record_outputs(nodes, run._outputs)
    feeder = _Feeder(run, dbrp, now, precision, sort)
    items: list[Data] = [data] if isinstance(data, str) else list(data)
    try:  # the input is read before it runs: a bad one raises here, plainly
        if pipeline.task_type == "batch":
            batches = list(feeder.batches(items))
            trio.run(_drive, run, None, batches)
        else:
            trio.run(_drive, run, list(feeder.stream(items)), None)
    finally:
        for node in nodes:
            node.stop()
    return run


async def _drive(run: ScriptRun, writes: list[list[Point]] | None,
                 batches: list[tuple[QueryNode, Batch]] | None) -> None:
    """Push the data, then stop as a task stops: queued httpPost requests go out."""
    senders: list[Node] = [n for n in run.nodes if isinstance(n, HTTPPostNode)]
    for out in run.nodes:  # a duplicate httpOut endpoint stops the task at its start
        refused: str = getattr(out, "registration_error", "")
        if isinstance(out, HTTPOutNode) and refused:
            run.error = f"{out.name}: {refused}"
            return
    async with trio.open_nursery() as nursery:
        drained: list[tuple[Node, trio.Event]] = []
        for node in senders:
            done = trio.Event()
            drained.append((node, done))
            nursery.start_soon(_run_io, run, node, done)
        try:
            for query, batch in batches or ():
                query.receive_batch(batch)
                await trio.lowlevel.checkpoint()
            source = run.nodes[0]
            emitted = run._outputs[source.name]
            for write in writes or ():
                # As the task's ingest: a write goes through the first branch, then the
                # next (the order in which messages of several branches meet in a join),
                # CHUNK points at a time.
                for start in range(0, len(write), CHUNK):
                    chunk = write[start:start + CHUNK]
                    source.collected += len(chunk)
                    source.emitted += len(chunk)
                    emitted.extend(chunk)
                    for child in source.children:
                        child.receive_points(chunk)
                    await trio.lowlevel.checkpoint()
        except TaskStopped as exc:
            run.error = str(exc)
        with trio.move_on_after(DRAIN_TIMEOUT):
            await close_senders(drained)
        nursery.cancel_scope.cancel()


async def _run_io(run: ScriptRun, node: Any, done: trio.Event) -> None:
    try:
        await node.run_io()
    except TaskStopped as exc:  # what the node's own task emitted stopped the task
        run.error = run.error or str(exc)
    finally:
        done.set()


__all__ = ["DEFAULT_DBRP", "HandledEvent", "ScriptRun", "batches_of",
           "handler_kinds_for_evaluation", "parse_points", "run_nodes", "run_script"]

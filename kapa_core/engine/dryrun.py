"""A dry run: a script run on a few points inside the daemon, with no task, no storage
and no side effect (what ``POST /kapacitor/v1/scripts/try`` answers).

The script's nodes are built as a running task builds them
(:func:`kapa_core.engine.build.build_nodes`), with the daemon's node context but:

- alert nodes publish to topics of the run's own (real :class:`~kapa_core.alert.topics.
  Topics`, so levels, ``previousLevel`` and inhibitors behave as in a task, but no
  store and no handler runner): each event is kept, as its handlers would have received
  it, and no handler is called. The handlers are still made from the script's options,
  so an unknown or disabled handler kind is the error it is for a task;
- the nodes' own trio tasks (``run_io``) are never started: ``httpPost`` posts nothing,
  autoscale nodes call no API, ``influxDBOut`` writes nothing (what they would have sent
  is counted as ``withheld``), ``stats`` nodes never tick. ``httpPost`` still passes its
  data on (with ``.codeField()`` it passes nothing: there is no response);
- ``kapacitorLoopback`` writes go nowhere; query nodes run no query (see below);
- UDF nodes are not run (that would start the function's process or open its socket):
  a script with one is answered with an error at its position.

As in a task, time is the points' time: a window emits when a later point crosses its
edge, and what is still open when the points end is not emitted. For a stream script
the points are one write, in the order given, pushed through the task's source node as
the task's ingest pushes a write; for a batch script they are its queries' answer
(:mod:`kapa_core.engine.dryrun_batch`). The work is bounded (:class:`Bounds`): at most
so many points, output rows and alert events kept per node (``truncated`` on the node
beyond), and a time limit after which the run stops where it is (``truncated`` on the
answer).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio
import trio.lowlevel

from kapa_core.alert.event import Event, EventState
from kapa_core.alert.topics import Topics
from kapa_core.engine.build import build_nodes
from kapa_core.engine.dryrun_batch import query_answers
from kapa_core.engine.dryrun_log import RunLog, describe
from kapa_core.engine.node import Node, TaskStopped
from kapa_core.engine.nodes.alert import AlertNode
from kapa_core.engine.nodes.influxdb_out import InfluxDBOutNode
from kapa_core.engine.nodes.io import Alerts, NodeContext
from kapa_core.engine.nodes.output import HTTPOutNode
from kapa_core.engine.script_check import Checked, ScriptError, drawn_nodes
from kapa_core.errors import APIError, KapaError
from kapa_core.logs import Logger
from kapa_core.models import lineprotocol
from kapa_core.models.batch import Batch, BatchPoint
from kapa_core.models.point import Point
from kapa_core.pipeline.base import NodeSpec

#: Precisions of the points' timestamps, as ``/write`` names them, and ``ns`` (the
#: default). Any other is refused: ``/write`` reads an unknown one (``us`` too) as
#: nanoseconds, as Kapacitor does, which a user trying a script would not expect.
PRECISIONS = {"n": "n", "ns": "n", "u": "u", "ms": "ms", "s": "s", "m": "m", "h": "h"}
#: Points pushed between two looks at the clock (and two checkpoints of the event loop,
#: so the daemon goes on serving while a run goes on).
CHUNK = 500
#: Bad lines of line protocol listed (more are counted in one last error).
MAX_LINE_ERRORS = 10


#: The node a build error names, at its end: ``... (window2)``.
_NAMED = re.compile(r"\((\w+)\)$")


@dataclass(frozen=True)
class Bounds:
    """How much one dry run may do."""

    points: int = 10_000
    #: rows (points, or points of batches) kept of what each node emitted
    rows: int = 1_000
    #: alert events kept per alert node
    alerts: int = 500
    #: error messages kept per node (all are counted)
    errors: int = 5
    #: seconds of pushing points before the run stops where it is
    seconds: float = 5.0


@dataclass
class _Kept:
    """What one node did in the run, as far as it is kept."""

    node: Node
    rows: list[dict[str, Any]] = field(default_factory=list)
    row_count: int = 0
    alerts: list[Any] = field(default_factory=list)
    truncated: bool = False
    rows_full: bool = False
    #: distinct error messages of the node seen so far (the first few are kept)
    messages: int = 0
    #: what an outbound node (httpPost, autoscale) queued for its I/O task, never sent
    withheld: int = 0

    def add(self, item: Point | Batch, bounds: Bounds) -> None:
        """Keep ``item`` unless that would pass the bound on rows; once one is left
        out, so are all that follow (the output is a beginning, without holes)."""
        size = len(item.points) if isinstance(item, Batch) else 1
        if self.rows_full or self.row_count + size > bounds.rows:
            self.rows_full = self.truncated = True
            return
        self.row_count += size
        self.rows.append(_row(item))


def _row(item: Point | Batch) -> dict[str, Any]:
    """A point or batch as httpOut writes it: one series, RFC 3339 times."""
    if isinstance(item, Batch):
        return item.row()
    return Batch(item.name, item.group, item.tags, item.dims, False, item.time,
                 [BatchPoint(item.time, item.fields, item.tags)]).row()


class _Topics(Topics):
    """Topics of the run's own: events are recorded (levels, previous levels), handlers
    are never attached, so nothing is delivered."""

    def __init__(self, log: Logger) -> None:
        super().__init__(None, persist=False, buffer=1, log=log)

    def attach(self, topic_id: str, handler_id: str, kind: str, handler: Any,
               match: Callable[[Event], bool] | None = None) -> Any:
        self.topic(topic_id)
        return None

    def detach(self, topic_id: str, handler_id: str) -> None:
        pass


class _Alerts:
    """The alert service as the run's alert nodes see it. The script's handlers are
    made by the daemon's alert service (so their options are checked) but never run."""

    def __init__(self, real: Alerts | None, task_id: str, log: Logger,
                 kept: Callable[[str], _Kept | None], bounds: Bounds) -> None:
        self._real = real
        self._prefix = f"main:{task_id}:"
        self._kept = kept
        self._bounds = bounds
        self.topics = _Topics(log)

    def task_handlers(self, spec: Any, task_id: str) -> tuple[list[tuple[str, Any]], bool]:
        handlers, forced = (self._real.task_handlers(spec, task_id)
                            if self._real is not None else ([], False))
        # Each alert node gets its own topic even without handlers, so that every event
        # it fires is published there once, and kept.
        return handlers or [("", None)], forced

    def restored_state(self, anon_topic: str, topic: str, event_id: str
                       ) -> EventState | None:
        return None  # a dry run starts from nothing: no stored alert state

    def publish(self, event: Event) -> None:
        self.topics.publish(event)
        if not event.topic.startswith(self._prefix):
            return  # the copy for .topic(): the node's own topic has it too
        kept = self._kept(event.topic[len(self._prefix):])
        if kept is None:
            return
        if len(kept.alerts) >= self._bounds.alerts:
            kept.truncated = True
            return
        kept.alerts.append(json.loads(event.json()))


@dataclass
class _DryContext(NodeContext):
    """What the run's nodes get: the daemon's context, marked as a replay's (query
    nodes are answered, never scheduled, and do not check their dbrps against the
    task's: the points stand for the answer)."""

    replay: bool = True


def _discard(database: str, retention_policy: str, points: list[Any]) -> None:
    """Where the run's kapacitorLoopback writes go."""


@dataclass
class DryRun:
    """The outcome of a run: the check's errors and the run's, the nodes' records."""

    checked: Checked
    errors: list[ScriptError] = field(default_factory=list)
    kept: dict[str, _Kept] = field(default_factory=dict)
    truncated: bool = False

    def node_error(self, name: str, message: str, bounds: Bounds) -> None:
        """An error of node ``name`` as points pass: the first few are kept, at the
        node's position."""
        kept = self.kept.get(name)
        if kept is None:
            return
        error = ScriptError(f"{name}: {message}", *kept.node.spec.position)
        if error in self.errors:  # the same on every point: once is enough
            return
        kept.messages += 1
        if kept.messages <= bounds.errors:
            self.errors.append(error)

    def to_json(self) -> dict[str, Any]:
        errors = [*self.checked.errors, *self.errors]
        out: dict[str, Any] = {"ok": not errors, "errors": [e.to_json() for e in errors],
                               "dot": "", "nodes": [], "edges": []}
        pipeline = self.checked.pipeline
        if pipeline is None:
            return out
        stats = {name: k.node.stats() for name, k in self.kept.items()}
        out["dot"] = pipeline.dot(self.checked.name, stats, 0.0) if stats else \
            pipeline.dot(self.checked.name)
        for spec in drawn_nodes(pipeline):
            out["nodes"].append(self._node(spec))
            out["edges"].extend({"from": spec.name, "to": child.name}
                                for child in spec.children)
        if self.truncated:
            out["truncated"] = True
        return out

    def _node(self, spec: NodeSpec) -> dict[str, Any]:
        view: dict[str, Any] = {"id": spec.name, "kind": spec.kind, "line": spec.position[0],
                                "column": spec.position[1]}
        kept = self.kept.get(spec.name)
        if kept is None:  # not run
            view.update(collected=0, emitted=0, errors=0, output=[])
            return view
        node = kept.node
        view.update(collected=node.collected, emitted=node.emitted, errors=node.errors,
                    output=kept.rows)
        if isinstance(node, AlertNode):
            view["alerts"] = kept.alerts
        withheld = _withheld(kept)
        if withheld is not None:
            view["withheld"] = withheld
        if kept.truncated:
            view["truncated"] = True
        return view


def _withheld(kept: _Kept) -> int | None:
    """What an outbound node would have sent (points written, requests, scaling
    events), or None for a node that sends nothing out."""
    node = kept.node
    if isinstance(node, InfluxDBOutNode):
        return node.held
    return kept.withheld if _outbound(node) else None


def _outbound(node: Node) -> bool:
    """Whether ``node`` hands work to an I/O task of its own through a queue."""
    return isinstance(getattr(node, "receive", None), trio.MemoryReceiveChannel)


def parse_points(text: str, precision: str, database: str, retention_policy: str,
                 bounds: Bounds) -> tuple[list[Point], list[ScriptError]]:
    """The points of ``text`` (line protocol) and an error per bad line, at its line."""
    if precision not in PRECISIONS:
        raise APIError(400, f"invalid precision {precision!r}: expected one of "
                       f"{', '.join(PRECISIONS)}")
    result = lineprotocol.parse(text, precision=PRECISIONS[precision], database=database,
                                retention_policy=retention_policy,
                                max_errors=MAX_LINE_ERRORS)
    errors = [ScriptError(f"points: unable to parse {e.text!r}: {e.reason}", e.line, 0)
              for e in result.errors]
    if result.bad_lines > len(result.errors):
        errors.append(ScriptError(f"points: {result.bad_lines - len(result.errors)} more "
                                  "bad lines"))
    if len(result.points) > bounds.points:
        raise APIError(400, f"too many points: {len(result.points)} (a dry run takes at "
                       f"most {bounds.points})")
    return result.points, errors


async def dry_run(checked: Checked, points: list[Point], context: NodeContext, *,
                  bounds: Bounds = Bounds(), log: Logger | None = None) -> DryRun:
    """Run the checked script on ``points`` (already given their database and retention
    policy); the nodes are stopped whatever happens."""
    out = DryRun(checked)
    pipeline = checked.pipeline
    if pipeline is None or not checked.ok:
        return out  # the check's errors say why it cannot run
    for spec in pipeline.walk():
        if spec.kind == "udf":
            out.errors.append(ScriptError(f"{spec.name}: UDFs do not run in a dry run (it "
                                          "would start the function)", *spec.position))
    if out.errors:
        return out
    log = (log or Logger("dryrun")).with_(task=checked.name)
    quiet = frozenset(spec.name for spec in pipeline.walk() if spec.kind == "log")
    run_log = RunLog(lambda node, msg, kv: out.node_error(node, describe(msg, kv), bounds),
                     quiet, task=checked.name)
    alerts = _Alerts(context.alerts, checked.name, run_log, out.kept.get, bounds)
    context = _DryContext(**{f.name: getattr(context, f.name)
                             for f in dataclasses.fields(NodeContext)})
    context = dataclasses.replace(context, task_id=checked.name, alerts=alerts,
                                  write_points=_discard)
    try:
        nodes = build_nodes(pipeline, run_log, context)
    except (KapaError, ValueError) as exc:  # the task would not start
        out.errors.append(_build_error(str(exc), pipeline.nodes))
        return out
    try:
        for node in nodes:
            out.kept[node.name] = _Kept(node)
            _record(node, out.kept[node.name], out, bounds)
        for node in nodes:  # a duplicate httpOut endpoint stops the task at its start
            refused = getattr(node, "registration_error", "")
            if isinstance(node, HTTPOutNode) and refused:
                out.errors.append(ScriptError(f"{node.name}: {refused}", *node.spec.position))
                return out
        steps = (_batch_steps(nodes, points) if pipeline.task_type == "batch"
                 else _stream_steps(nodes, points, out, bounds))
        await _push(nodes, steps, out, bounds)
    finally:
        for node in nodes:
            try:
                node.stop()
            except Exception as exc:
                log.error("failed to stop a node of a dry run", node=node.name, err=str(exc))
    return out


def _build_error(message: str, specs: list[NodeSpec]) -> ScriptError:
    """Why the nodes could not be built, at the node the message names: last, as
    ``... (window2)``, or first by its kind (``window node must have...``) when the
    script has one node of that kind; else without a position."""
    match = _NAMED.search(message)
    named = [s for s in specs if match and s.name == match.group(1)]
    if not named:
        kind = message.split(" ", 1)[0]
        named = [s for s in specs if s.kind == kind]
    return ScriptError(message, *(named[0].position if len(named) == 1 else (0, 0)))


def _record(node: Node, kept: _Kept, run: DryRun, bounds: Bounds) -> None:
    """Keep what ``node`` emits and the messages of its errors (which are not logged: a
    dry run's mistakes are the answer, not the daemon's news)."""
    send_point, send_points, send_batch = node.emit_point, node.emit_points, node.emit_batch

    def emit_point(p: Point) -> None:
        kept.add(p, bounds)
        send_point(p)

    def emit_points(points: list[Point]) -> None:
        for p in points:
            kept.add(p, bounds)
        send_points(points)

    def emit_batch(b: Batch) -> None:
        kept.add(b, bounds)
        send_batch(b)

    def fail(exc: BaseException) -> None:
        node.errors += 1
        run.node_error(node.name, str(exc) or type(exc).__name__, bounds)

    # On the instance, not by a recording child: a child would change the node's
    # emitted count and how it hands runs of points on.
    node.emit_point = emit_point  # type: ignore[method-assign]  # recording, see above
    node.emit_points = emit_points  # type: ignore[method-assign]  # recording, see above
    node.emit_batch = emit_batch  # type: ignore[method-assign]  # recording, see above
    node.fail = fail  # type: ignore[method-assign]  # errors kept, not logged


Step = tuple[int, Callable[[], None]]


def _stream_steps(nodes: list[Node], points: list[Point], run: DryRun, bounds: Bounds
                  ) -> list[Step]:
    """The points through the source, as a task's ingest pushes one write: a chunk at
    a time, each through the script's first branch, then the next."""
    source = nodes[0]
    kept = run.kept[source.name]

    def push(chunk: list[Point]) -> None:
        source.collected += len(chunk)
        source.emitted += len(chunk)
        for p in chunk:
            kept.add(p, bounds)
        for child in source.children:
            child.receive_points(chunk)

    return [(len(chunk), functools.partial(push, chunk))
            for chunk in (points[i:i + CHUNK] for i in range(0, len(points), CHUNK))]


def _batch_steps(nodes: list[Node], points: list[Point]) -> list[Step]:
    """The points as the answer of each query node, a batch at a time."""
    return [(len(batch.points), functools.partial(query.receive_batch, batch))
            for query, batch in query_answers(nodes, points)]


async def _push(nodes: list[Node], steps: list[Step], run: DryRun, bounds: Bounds
                ) -> None:
    """Take the steps until the end, a node's error that stops the task, or the time
    limit; the event loop runs between two steps."""
    outbound = [run.kept[n.name] for n in nodes if _outbound(n)]
    deadline = time.monotonic() + bounds.seconds
    done, total = 0, sum(size for size, _ in steps)
    try:
        for size, step in steps:
            if time.monotonic() > deadline:
                run.truncated = True
                run.errors.append(ScriptError(
                    f"the dry run stopped after {bounds.seconds:g}s, at point {done + 1} "
                    f"of {total}"))
                return
            step()
            done += size
            _withhold(outbound)
            await trio.lowlevel.checkpoint()
    except TaskStopped as exc:
        node = next((n for n in nodes if n.name == exc.node), None)
        position = node.spec.position if node is not None else (0, 0)
        run.errors.append(ScriptError(str(exc), *position))


def _withhold(outbound: list[_Kept]) -> None:
    """Take what the outbound nodes queued for their (never started) I/O tasks: counted
    as ``withheld``, so their queues never fill and drop."""
    for kept in outbound:
        receive = getattr(kept.node, "receive", None)
        while receive is not None:
            try:
                receive.receive_nowait()
            except trio.WouldBlock:
                break
            kept.withheld += 1

"""Replays: a batch task run over a past time range (``POST /kapacitor/v1/replays/batch``).

What a batch replay does, as Kapacitor 1.5.7 does it:

* The task's pipeline is built again, as a separate instance: its nodes, their state
  and their outputs belong to the replay only, so the live task (enabled or not) is
  untouched. Alert nodes publish their events to the anonymous topic
  ``<replay id>:<task>:<node>`` instead of ``main:<task>:<node>`` (Kapacitor names
  that topic after the task master, one per replay), which is deleted when the replay
  ends; a ``.topic()`` named in the script is shared with the live task. What
  ``kapacitorLoopback`` writes goes to the replay's own stream, which no task reads.
* For each ``query`` node, the times its schedule would have fired between ``start``
  and ``stop`` are computed: from ``start``, the next tick each time, which is
  ``tick + every`` (rounded to a multiple of ``every``, half up, with ``.align()``) or
  the next match of ``.cron()`` (local wall-clock time); a tick after ``stop`` ends the
  list (a tick equal to ``stop`` is still run), and so does a query window that would
  end in the future. Each tick ``t`` queries ``[t - offset - period, t - offset)``.
  As in Kapacitor, ``.alignGroup()`` does not change the queries of a replay.
* The queries run one after the other against the ``[[influxdb]]`` cluster of the node;
  the ticks of several query nodes are run in time order. Each series of an answer is a
  batch (see :func:`~kapa_core.engine.nodes.query.series_to_batch`) pushed through the
  replay's pipeline at once (the ``fast`` clock) or at the pace of the original data
  (the ``real`` clock). With ``recording-time`` the points keep their times; without
  it, they are moved so that the first point of each query node lands on the time the
  replay started. A batch's time is raised to its last point's time when that is
  later; an empty batch keeps the time of its query window.
* A query on a ``"db"."rp".measurement`` that is not one of the task's dbrps fails
  the replay before any query runs (a measurement named without its database is
  looked up in the task's first dbrp, as kapa-core's live batch tasks do).
* When every query has run, the replay waits for its outputs (httpPost bodies, alert
  handlers, influxDBOut writes) to be sent, stops the pipeline, and records the
  execution statistics of its nodes. A failing query, an unknown cluster or an
  InfluxDB error fails the replay with ``running replay: <error>``.

Replays are kept in the store (``replays``) and survive a restart; one still running
when the daemon stopped is marked failed at the next start, with Kapacitor's words.
Deleting a running replay stops it (Kapacitor leaves it running).
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import trio

from kapa_core.engine.build import build_nodes
from kapa_core.engine.node import Node, TaskStopped
from kapa_core.engine.nodes.alert import AlertNode
from kapa_core.engine.nodes.io import NodeContext
from kapa_core.engine.nodes.query import QueryNode, check_dbrps, series_to_batch
from kapa_core.engine.nodes.query import check as check_query
from kapa_core.engine.task_master import close_senders
from kapa_core.errors import APIError, KapaError
from kapa_core.glob import filter_names
from kapa_core.gotemplate.lexer import go_quote as _go_quote
from kapa_core.influxdb.client import ConnectionFailed
from kapa_core.influxdb.config import default_cluster
from kapa_core.influxdb.query import QueryFailed, run_query
from kapa_core.influxdb.select_query import SelectQuery
from kapa_core.logs import Logger
from kapa_core.models.batch import GO_ZERO_OFFSET, Batch, BatchPoint, format_time, go_round
from kapa_core.models.gotime import parse_go_time
from kapa_core.models.jsonbody import JSONBodyError, decode_json
from kapa_core.pipeline.nodes import BatchSpec
from kapa_core.pipeline.query import QuerySpec
from kapa_core.storage import REPLAYS, Store
from kapa_core.tick.regex import compile_regex

S = 1_000_000_000
#: Go's zero ``time.Time`` (0001-01-01T00:00:00Z) in Unix nanoseconds: an absent start.
GO_ZERO_TIME = -GO_ZERO_OFFSET
#: Kapacitor's replay ID expression, and how its error message spells it.
REPLAY_ID = compile_regex(r"^[-\._\p{L}0-9]+$")
REPLAY_ID_TEXT = r"^[-\._\p{L}0-9]+$"
#: Fields of a replay, in the order Kapacitor writes them.
FIELDS = ("link", "id", "recording", "task", "recording-time", "clock", "date", "error",
          "status", "progress")
#: Seconds a finished replay waits for its outputs to be sent.
DRAIN_TIMEOUT = 30.0
#: Queries run between two checkpoints of the event loop (an empty range answers fast).
QUERIES_PER_CHECKPOINT = 50


def go_time_text(ns: int) -> str:
    """A time as Go's time.Time is written in JSON (RFC3339 with trimmed nanoseconds)."""
    if ns == GO_ZERO_TIME:
        return "0001-01-01T00:00:00Z"
    return format_time(ns)


def now_text() -> str:
    return go_time_text(time.time_ns())


# -- the request body, decoded as Go's encoding/json decodes ReplayBatchOptions ---------
_JSON_KINDS = {str: "string", bool: "bool", int: "number", float: "number", list: "array",
               dict: "object"}
def _go_char(c: str) -> str:
    if c == "'":
        return "'\\''"
    if c == '"':
        return "'\"'"
    if c.isprintable():
        return f"'{c}'"
    return "'" + repr(c)[1:-1] + "'"


def _go_syntax_error(exc: Any) -> str:
    """The words of Go's encoding/json for the syntax error Python's decoder found."""
    doc, pos = exc.doc, exc.pos
    if pos >= len(doc.rstrip()):
        return "unexpected EOF"
    message = exc.msg
    if message == "Expecting value":
        for literal in ("null", "true", "false"):
            if doc[pos] == literal[0]:
                for i, want in enumerate(literal):
                    if pos + i >= len(doc):
                        return "unexpected EOF"
                    if doc[pos + i] != want:
                        return (f"invalid character {_go_char(doc[pos + i])} in literal "
                                f"{literal} (expecting '{want}')")
    if message.startswith("Invalid \\escape") and pos + 1 < len(doc):
        pos += 1  # Go names the character after the backslash
    c = _go_char(doc[pos])
    if message.startswith("Expecting property name"):
        return f"invalid character {c} looking for beginning of object key string"
    if message == "Expecting ':' delimiter":
        return f"invalid character {c} after object key"
    if message == "Expecting ',' delimiter":
        inside = "object key:value pair" if _innermost(doc, pos) == "{" else "array element"
        return f"invalid character {c} after {inside}"
    if message.startswith("Invalid control character"):
        return f"invalid character {c} in string literal"
    if message.startswith("Invalid \\escape"):
        return f"invalid character {c} in string escape code"
    return f"invalid character {c} looking for beginning of value"


def _innermost(doc: str, pos: int) -> str:
    """The bracket (``{`` or ``[``) open at ``pos`` of a JSON text."""
    stack: list[str] = []
    in_string = escaped = False
    for c in doc[:pos]:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "{[":
            stack.append(c)
        elif c in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else ""


#: The fields of the option structs Kapacitor decodes, with their Go types.
BATCH_OPTIONS = {"id": "string", "task": "string", "start": "time.Time",
                 "stop": "time.Time", "recording-time": "bool", "clock": "client.Clock"}
REPLAY_OPTIONS = {"id": "string", "recording": "string", "task": "string",
                  "recording-time": "bool", "clock": "client.Clock"}
QUERY_REPLAY_OPTIONS = {"id": "string", "task": "string", "query": "string",
                        "cluster": "string", "recording-time": "bool",
                        "clock": "client.Clock"}
RECORD_STREAM_OPTIONS = {"id": "string", "task": "string", "stop": "time.Time"}
RECORD_BATCH_OPTIONS = {"id": "string", "task": "string", "start": "time.Time",
                        "stop": "time.Time"}
RECORD_QUERY_OPTIONS = {"id": "string", "query": "string", "type": "client.TaskType",
                        "cluster": "string"}
_ZERO = {"string": "", "bool": False, "time.Time": GO_ZERO_TIME, "client.Clock": "fast",
         "client.TaskType": ""}
_TEXT_VALUES = {"client.Clock": ("Clock", ("fast", "real")),
                "client.TaskType": ("TaskType", ("stream", "batch", "invalid"))}


def decode_options(body: bytes, fields: dict[str, str] = BATCH_OPTIONS,
                   type_name: str = "ReplayBatchOptions") -> dict[str, Any]:
    """A request body as Kapacitor decodes it into the Go struct ``type_name`` (whose
    JSON fields and Go types are ``fields``), with its error words."""
    text = body.strip()
    if not text:
        raise APIError(400, "EOF")
    # Go's json.Decoder reads one value and leaves whatever follows it.
    try:
        _, end = json.JSONDecoder().raw_decode(text.decode("utf-8", "replace"))
        text = text.decode("utf-8", "replace")[:end].encode("utf-8")
    except json.JSONDecodeError as exc:
        raise APIError(400, _go_syntax_error(exc)) from None
    except RecursionError:
        pass
    try:
        raw = decode_json(text)
    except JSONBodyError as exc:
        raise APIError(400, str(exc)) from None
    if not isinstance(raw, dict):
        kind = "null" if raw is None else _JSON_KINDS.get(type(raw), "value")
        if raw is None:
            raw = {}
        else:
            raise APIError(400, f"json: cannot unmarshal {kind} into Go value of type "
                           f"client.{type_name}")
    options: dict[str, Any] = {name: _ZERO[kind] for name, kind in fields.items()}
    # Go matches JSON keys to struct fields case-insensitively.
    # A value of the wrong type is remembered and the first one reported at the end; a
    # time or a text value its own decoder refuses stops the decoding at once (Go's).
    type_error = ""
    for key, value in raw.items():
        name = next((f for f in fields if f.lower() == key.lower()), None)
        if name is None or value is None:
            continue
        go_type = fields[name]
        if go_type == "time.Time":
            options[name] = parse_go_time(value)
            continue
        kind = _JSON_KINDS.get(type(value), "value")
        expected = "bool" if go_type == "bool" else "string"
        if kind != expected:
            type_error = type_error or (
                f"json: cannot unmarshal {kind} into Go struct field "
                f"{type_name}.{name} of type {go_type}")
            continue
        if go_type in _TEXT_VALUES:
            what, allowed = _TEXT_VALUES[go_type]
            if value not in allowed:
                raise APIError(400, f"unknown {what} {value}")
        options[name] = value
    if type_error:
        raise APIError(400, type_error)
    return options


# -- replays ---------------------------------------------------------------------------
@dataclass
class Replay:
    id: str
    task: str
    recording: str = ""
    recording_time: bool = False
    clock: str = "fast"
    date: str = ""
    error: str = ""
    status: str = "running"
    progress: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Replay:
        return cls(**data)

    def values(self) -> dict[str, Any]:
        return {"link": {"rel": "self", "href": f"/kapacitor/v1/replays/{self.id}"},
                "id": self.id, "recording": self.recording, "task": self.task,
                "recording-time": self.recording_time, "clock": self.clock,
                "date": self.date, "error": self.error, "status": self.status,
                # Go writes a float64 1 as 1
                "progress": int(self.progress) if float(self.progress).is_integer()
                else self.progress}

    def view(self) -> dict[str, Any]:
        """``GET /replays/<id>``: every field, then the statistics of a finished run."""
        values = self.values()
        out = {name: values[name] for name in ("link", "id", "task", "recording",
                                               "recording-time", "clock", "date",
                                               "error", "status", "progress")}
        out["stats"] = self.stats if self.status == "finished" else {}
        return out


def _date_key(replay: Replay) -> str:
    """Kapacitor's index of replays: the date to the second (RFC3339), then the ID."""
    return replay.date[:19]


class _ReplayTopics:
    """The alert topics as a replay's alert nodes see them: the anonymous topics are
    the replay's own (``main:`` becomes ``<replay id>:``)."""

    def __init__(self, topics: Any, prefix: str) -> None:
        self._topics = topics
        self._prefix = prefix

    def rename(self, topic_id: str) -> str:
        return self._prefix + topic_id[5:] if topic_id.startswith("main:") else topic_id

    def attach(self, topic_id: str, *args: Any, **kwargs: Any) -> Any:
        return self._topics.attach(self.rename(topic_id), *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._topics, name)


class _ReplayAlerts:
    def __init__(self, alerts: Any, replay_id: str) -> None:
        self._alerts = alerts
        self.topics = _ReplayTopics(alerts.topics, replay_id + ":")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._alerts, name)


@dataclass
class ReplayContext(NodeContext):
    """What the nodes of a replay get: the daemon's context, marked as a replay."""

    replay: bool = True


def _discard(database: str, retention_policy: str, points: list[Any]) -> None:
    """Where the points a replay's kapacitorLoopback nodes write go."""


class ReplayFailed(KapaError):
    """A replay that could not run to its end; the message is the replay's error."""


class TaskRunFailed(ReplayFailed):
    """A node's error stopped the replay's task (the replay's error: ``task run: ...``)."""


class TaskStartFailed(ReplayFailed):
    """The replay's task could not have started in Kapacitor (its query text)."""


#: What InfluxDB says of a query whose text Kapacitor's own InfluxQL parser checks (and
#: refuses when the task starts) in the same words. "GROUP BY requires at least one
#: aggregate function" is not one of them here: a GROUP BY time() of the query's own text
#: is refused before the replay starts (``check_query``), so InfluxDB says it only of the
#: node's ``.groupBy(time(...))``, which Kapacitor's parser never sees: the replay fails
#: with InfluxDB's error.
_PARSER_CHECKS = re.compile(
    r"(mixing aggregate and non-aggregate queries is not supported"
    r"|invalid number of arguments for \w+, .*"
    r"|expected (field|integer|float|number) argument in \w+\(\)"
    r"|expected integer argument as (second|third) arg in \w+"
    r"|second arg to \w+ must be greater than 0, got -?\d+"
    r"|second argument (to|for) \w+ must be (a duration|an integer), got \S+"
    r"|moving_average window (must be greater than 1|too large), got -?\d+"
    r"|count\(distinct <field>\) can only have one argument"
    r"|only ORDER BY time supported at this time"
    r"|at least 1 non-time field must be queried)$")
_PARSING = re.compile(r"^(?:\S+ answered HTTP 400: )?error parsing query: (.*)$")


_POSITION = re.compile(r" at line (\d+), char (\d+)$")


def parser_error(message: str, statement: str, same: int) -> str | None:
    """The error Kapacitor gives when the task starts, for an InfluxDB error that its
    parser would have found in the query text first; None for any other error. A
    syntax error is Kapacitor's only where it lies in the first ``same`` characters of
    the ``statement`` InfluxDB saw (those are the task's own text; the rest has the
    time range and dimensions added)."""
    parsing = _PARSING.match(message)
    text = parsing.group(1) if parsing else message
    if _PARSER_CHECKS.match(text):
        return f"failed to parse InfluxQL query: {text}"
    if not parsing:
        return None
    position = _POSITION.search(text)
    if position is not None:
        lines = statement.split("\n")
        line, char = int(position.group(1)), int(position.group(2))
        offset = sum(len(x) + 1 for x in lines[:line - 1]) + char - 1
        if offset >= same:
            return None
    return f"failed to parse InfluxQL query: {text}"


@dataclass(order=True)
class _Tick:
    stop: int
    index: int
    start: int = field(compare=False)


def query_windows(node: QueryNode, start: int, stop: int, now: int
                  ) -> Iterator[tuple[int, int]]:
    """The ``[start, stop)`` windows ``node`` queries for a replay of ``[start, stop]``
    (see the module doc)."""
    current = start
    while True:
        if node.cron is not None:
            found = node.cron.next_ns(current)
            if found is None:
                return
            current = found
        else:
            current += node.every
            if node.align:
                current = go_round(current, node.every)
        if current > stop:
            return
        qstop = current - node.offset
        if qstop > now:
            return
        yield qstop - node.period, qstop


@runtime_checkable
class _DoesIO(Protocol):
    """A node that sends or receives outside the task (a query, an HTTP post...): the
    replay runs its run_io() beside the feeding of points."""

    async def run_io(self) -> None: ...


class ReplayRun:
    """One replay of a batch task: its own pipeline, its queries, its outputs."""

    def __init__(self, replay: Replay, task: Any, pipeline: Any, context: NodeContext,
                 start: int, stop: int, log: Logger) -> None:
        self.replay = replay
        self.task = task
        self.start = start
        self.stop = stop
        self.log = log.with_(task=task.id, replay=replay.id)
        self.alerts = _ReplayAlerts(context.alerts, replay.id) if context.alerts else None
        # kapacitorLoopback writes to the replay's own (empty) stream, as Kapacitor's
        # replay task master does: nothing of a replay reaches the live tasks.
        context = ReplayContext(**{f.name: getattr(context, f.name)
                                   for f in dataclasses.fields(NodeContext)})
        context = dataclasses.replace(context, task_id=task.id,
                                      alerts=self.alerts or context.alerts,
                                      write_points=_discard)
        for spec in pipeline.walk():  # Kapacitor's words for a query that cannot start
            if isinstance(spec, QuerySpec):
                check_query(spec)
        try:
            self.nodes: list[Node] = build_nodes(pipeline, self.log, context)
        except BaseException:
            # Alert nodes built before the failing one attached their handlers.
            if self.alerts is not None:
                prefix = f"{replay.id}:{task.id}:"
                for topic in [t for t in self.alerts.topics.topics if t.startswith(prefix)]:
                    self.alerts._alerts.delete_topic(topic)
            raise
        self.context = context
        self.pipeline = pipeline
        self.topics: list[str] = []
        for node in self.nodes:
            if isinstance(node, AlertNode) and node.anon_topic and self.alerts:
                node.anon_topic = self.alerts.topics.rename(node.anon_topic)
                self.topics.append(node.anon_topic)
        self.queries = [n for n in self.nodes if isinstance(n, QueryNode)]
        self.started = time.time_ns()
        self.stopped: TaskStopped | None = None

    def node_stats(self) -> dict[str, dict[str, Any]]:
        """The statistics of each node as Kapacitor reports them after a replay: the
        batch source counts what its queries collected and emits nothing, and query
        nodes have no query counters (their schedule never ran)."""
        out = {}
        for node in self.nodes:
            stats = node.stats()
            if isinstance(node, QueryNode):
                stats = {k: v for k, v in stats.items() if k not in node.extra_stats()}
            elif isinstance(node.spec, BatchSpec):
                stats["collected"] = sum(c.collected for c in node.children)
                stats["emitted"] = 0
            out[node.name] = dict(sorted(stats.items()))
        return dict(sorted(out.items()))  # Go maps: written with sorted keys

    async def run(self) -> None:
        io_nodes = [n for n in self.nodes if isinstance(n, _DoesIO)
                    and not isinstance(n, QueryNode)]
        try:
            async with trio.open_nursery() as nursery:
                drained: list[tuple[Node, trio.Event]] = []
                for node in io_nodes:
                    done = trio.Event()
                    drained.append((node, done))
                    nursery.start_soon(self._run_io, node, done)
                failed: ReplayFailed | None
                try:
                    await self._feed()
                except ReplayFailed as exc:
                    failed = exc
                except TaskStopped as exc:  # what was sent before the error goes out
                    failed = TaskRunFailed(str(exc))
                    await self._drain(drained)
                else:
                    failed = None
                    await self._drain(drained)
                nursery.cancel_scope.cancel()
            if failed is None and self.stopped is not None:
                failed = TaskRunFailed(str(self.stopped))
            if failed is not None:
                raise failed
        finally:
            self.close()

    async def _run_io(self, node: _DoesIO, done: trio.Event) -> None:
        try:
            await node.run_io()
        except TaskStopped as exc:  # from what the node emitted: the replay fails
            self.stopped = self.stopped or exc
        finally:
            done.set()

    async def _drain(self, drained: list[tuple[Node, trio.Event]]) -> None:
        """Let queued outputs go out: close the queues of the nodes that send, wait for
        their tasks, then for the replay's alert handlers to empty their queues."""
        with trio.move_on_after(DRAIN_TIMEOUT):
            await close_senders(drained)
            if self.alerts is not None:
                topics = self.alerts._alerts.topics
                while any(runner.receive.statistics().current_buffer_used
                          for topic in self.topics
                          if (t := topics.topics.get(topic)) is not None
                          for runner in t.handlers.values()):
                    await trio.sleep(0.01)
        # One more turn so that a handler that took the last event finishes with it.
        await trio.sleep(0)

    def _schedule(self) -> Iterator[tuple[QueryNode, int, int]]:
        now = time.time_ns()
        windows = [query_windows(node, self.start, self.stop, now) for node in self.queries]
        heap: list[_Tick] = []
        for index, it in enumerate(windows):
            first = next(it, None)
            if first is not None:
                heapq.heappush(heap, _Tick(first[1], index, first[0]))
        while heap:
            tick = heapq.heappop(heap)
            yield self.queries[tick.index], tick.start, tick.stop
            following = next(windows[tick.index], None)
            if following is not None:
                heapq.heappush(heap, _Tick(following[1], tick.index, following[0]))

    async def _feed(self) -> None:
        state: dict[int, dict[str, int]] = {id(n): {"diff": 0, "first": 0, "tmax": 0}
                                            for n in self.queries}
        real = self.replay.clock == "real"
        zero = self.started

        async def deliver(node: QueryNode, batch: Batch) -> None:
            await self._deliver(node, batch, state[id(node)], real, zero)

        await self.query_all(deliver)

    @property
    def collectors(self) -> list[QueryNode]:
        """The query nodes in the order of Kapacitor's batch collectors (the order its
        pipeline walk links them to the batch source): file entry ``i`` of a batch
        recording is for the ``i``-th."""
        order = {spec.id: i for i, spec in enumerate(self.pipeline.sorted_nodes())}
        return sorted(self.queries, key=lambda n: order.get(n.spec.id, 0))

    def close(self) -> None:
        """Stop the nodes and drop the replay's anonymous topics (a run that never ran)."""
        for node in self.nodes:
            node.stop()
        if self.alerts is not None:
            for topic in self.topics:
                self.alerts._alerts.delete_topic(topic)

    async def query_all(self, deliver: Callable[[QueryNode, Batch], Any]) -> None:
        """Run every query of the replay's range and hand each answer's batches to
        ``deliver`` (awaited), in time order."""
        selects = {id(n): SelectQuery(n.spec.query, n.spec.group_dimensions(), n.spec.fill)
                   for n in self.queries}
        for select in selects.values():
            try:
                check_dbrps(select, self.task.dbrps)
            except ValueError as exc:
                raise ReplayFailed(str(exc)) from None
        for count, (node, start, stop) in enumerate(self._schedule()):
            if count % QUERIES_PER_CHECKPOINT == 0:
                await trio.lowlevel.checkpoint()
            select = selects[id(node)]
            statement = select.render(start, stop)
            node.last_query = statement
            self.log.debug("running batch query for replay", query=statement)
            service = self.context.influxdb()
            client = service.client(node.cluster or None) if service is not None else None
            if client is None:
                name = node.cluster
                if not name and service is not None:
                    default = default_cluster(service.elements)
                    name = default.name if default is not None else ""
                raise ReplayFailed(f"no such InfluxDB config {name}")
            try:
                results = await run_query(client, statement, database=node.database,
                                          retention_policy=node.retention_policy)
            except QueryFailed as exc:
                checked = parser_error(str(exc), statement, len(select.head))
                if checked is not None:  # Kapacitor's parser refuses it at the start
                    raise TaskStartFailed(checked) from None
                raise ReplayFailed(str(exc)) from None
            except ConnectionFailed as exc:
                raise ReplayFailed(str(exc)) from None
            for series_list in results:
                for series in series_list:
                    batch = series_to_batch(series, node.by_name, stop,
                                            select.grouped_by_time)
                    await deliver(node, batch)

    async def _deliver(self, node: QueryNode, batch: Batch, state: dict[str, int],
                       real: bool, zero: int) -> None:
        points = batch.points
        if not points:
            state["tmax"] = batch.tmax
            node.receive_batch(batch)
            return
        if not state["first"]:
            state["first"] = 1
            state["diff"] = zero - points[0].time
        diff = state["diff"]
        if self.replay.recording_time:
            last = points[-1].time + diff
        else:
            batch.points = points = [BatchPoint(p.time + diff, p.fields, p.tags)
                                     for p in points]
            last = points[-1].time
        if real:
            delay = (last - time.time_ns()) / S
            if delay > 0:
                await trio.sleep(delay)
        if batch.tmax < points[-1].time:
            batch.tmax = points[-1].time
        state["tmax"] = batch.tmax
        node.receive_batch(batch)


class ReplayService:
    """Creates, runs, lists and deletes replays; runs them in its own nursery."""

    def __init__(self, store: Store, tasks: Any, context: Callable[[], NodeContext],
                 log: Logger, replay_dir: str | None = None, stream: Any = None) -> None:
        self.store = store
        self.tasks = tasks
        self.context = context
        self.log = log
        self.replays: dict[str, Replay] = {}
        self.running: dict[str, trio.CancelScope] = {}
        self._nursery: trio.Nursery | None = None
        #: The recordings of ``replay_dir`` (``[replay] dir``), when one is given.
        self.recordings: Any = None
        if replay_dir is not None:
            from kapa_core.engine.recording import RecordingService

            self.recordings = RecordingService(store, tasks, context, log, replay_dir,
                                               stream)
            self.recordings.spawn = self._spawn
        for key, data in store.items_json(REPLAYS):
            try:
                replay = Replay.from_json(data)
            except (TypeError, KeyError):
                log.error("stored replay is unreadable; skipped", replay=key)
                continue
            if replay.status == "running":
                replay.status = "failed"
                replay.error = "unexpected Kapacitor shutdown"
                store.put_json(REPLAYS, replay.id, replay.to_json())
            self.replays[key] = replay

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def _spawn(self, work: Any) -> None:
        """Run the coroutine ``work`` in the service's nursery."""
        assert self._nursery is not None, "the replay service is not running"

        async def run() -> None:
            await work

        self._nursery.start_soon(run)

    # -- API operations -------------------------------------------------------------------
    def _load_task(self, task_id: str) -> tuple[Any, Any]:
        task = self.tasks.tasks.get(task_id)
        if task is None:
            raise APIError(404, "task load: no task exists")
        try:
            return task, self.tasks.evaluate(task)
        except KapaError as exc:
            raise APIError(404, f"task load: {exc}") from None

    async def create_from_recording(self, body: bytes) -> Replay:
        """``POST /replays``: replay a recording through a task."""
        from kapa_core.engine.recording import RecordingReplayRun

        options = decode_options(body, REPLAY_OPTIONS, "CreateReplayOptions")
        replay_id = options["id"] or str(uuid.uuid4())
        if not REPLAY_ID.fullmatch(replay_id):
            raise APIError(400, "replay ID must contain only letters, numbers, '-', '.' "
                           f"and '_'. {_go_quote(replay_id)}")
        task, evaluated = self._load_task(options["task"])
        recording = None if self.recordings is None else \
            self.recordings.recordings.get(options["recording"])
        if recording is None:
            raise APIError(404, "recording not found: no recording exists")
        replay = Replay(replay_id, task.id, recording=options["recording"],
                        recording_time=options["recording-time"], clock=options["clock"],
                        date=now_text())
        # Kapacitor answers 201 even when the ID is taken (the replay is then replaced).
        await self._start(replay, lambda: RecordingReplayRun(
            replay, task, evaluated.pipeline, self.context(), GO_ZERO_TIME, GO_ZERO_TIME,
            self.log, recording=recording))
        return dataclasses.replace(replay, stats={})

    async def create_query(self, body: bytes) -> Replay:
        """``POST /replays/query``: replay the answer of a query through a task."""
        from kapa_core.engine.recording import QueryReplayRun

        options = decode_options(body, QUERY_REPLAY_OPTIONS, "ReplayQueryOptions")
        replay_id = options["id"] or str(uuid.uuid4())
        if not REPLAY_ID.fullmatch(replay_id):
            raise APIError(400, f"recording ID must match {REPLAY_ID_TEXT} "
                           f"{_go_quote(replay_id)}")
        if not options["query"]:
            raise APIError(400, "must provide query")
        task, evaluated = self._load_task(options["task"])
        if replay_id in self.replays:
            raise APIError(500, "replay already exists")
        replay = Replay(replay_id, task.id, recording_time=options["recording-time"],
                        clock=options["clock"], date=now_text())
        await self._start(replay, lambda: QueryReplayRun(
            replay, task, evaluated.pipeline, self.context(), GO_ZERO_TIME, GO_ZERO_TIME,
            self.log, query=options["query"], cluster=options["cluster"]))
        return dataclasses.replace(replay, stats={})

    async def _start(self, replay: Replay, make: Callable[[], ReplayRun]) -> None:
        try:
            run: ReplayRun | None = make()
        except (KapaError, ValueError) as exc:
            run = None
            replay.status, replay.progress = "failed", 1.0
            replay.error = f"task start: {exc}"
        old = self.running.pop(replay.id, None)
        if old is not None:
            old.cancel()
        self.replays[replay.id] = replay
        await self._save(replay)
        if run is not None:
            assert self._nursery is not None, "the replay service is not running"
            scope = trio.CancelScope()
            self.running[replay.id] = scope
            self._nursery.start_soon(self._run, run, scope)

    async def create_batch(self, body: bytes) -> Replay:
        options = decode_options(body)
        replay_id = options["id"] or str(uuid.uuid4())
        if not REPLAY_ID.fullmatch(replay_id):
            raise APIError(400, f"replay ID must match {REPLAY_ID_TEXT} {_go_quote(replay_id)}")
        task = self.tasks.tasks.get(options["task"])
        if task is None:
            raise APIError(404, "task load: no task exists")
        try:
            evaluated = self.tasks.evaluate(task)
        except KapaError as exc:
            raise APIError(404, f"task load: {exc}") from None
        if task.type == "stream":
            raise APIError(400, f"cannot replay batch against stream task: {options['task']}")
        if replay_id in self.replays:
            raise APIError(500, "replay already exists")
        replay = Replay(replay_id, task.id, recording_time=options["recording-time"],
                        clock=options["clock"], date=now_text())
        stop = options["stop"]
        if stop == GO_ZERO_TIME:
            stop = time.time_ns()
        answer = dataclasses.replace(replay)  # Kapacitor answers before the task starts
        try:
            run = ReplayRun(replay, task, evaluated.pipeline, self.context(),
                            options["start"], stop, self.log)
        except (KapaError, ValueError) as exc:
            # Kapacitor reports a task that cannot start in the replay itself.
            run = None
            replay.status, replay.progress = "failed", 1.0
            replay.error = f"task start: {exc}"
        self.replays[replay.id] = replay
        await self._save(replay)
        if run is not None:
            assert self._nursery is not None, "the replay service is not running"
            scope = trio.CancelScope()
            self.running[replay.id] = scope
            self._nursery.start_soon(self._run, run, scope)
        return answer

    async def _run(self, run: ReplayRun, scope: trio.CancelScope) -> None:
        replay = run.replay
        error = ""
        with scope:
            try:
                await run.run()
            except TaskStartFailed as exc:
                error = f"task start: {exc}"
            except TaskRunFailed as exc:
                error = f"task run: {exc}"
            except ReplayFailed as exc:
                error = f"running replay: {exc}"
            except Exception as exc:  # a broken replay must not stop the service
                while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
                    exc = exc.exceptions[0]
                error = f"running replay: {type(exc).__name__}: {exc}"
                self.log.error("replay failed", replay=replay.id, err=error)
        self.running.pop(replay.id, None)
        if scope.cancelled_caught or self.replays.get(replay.id) is not replay:
            return  # deleted meanwhile
        replay.stats = {"task-stats": {"throughput": 0}, "node-stats": run.node_stats()}
        replay.status = "failed" if error else "finished"
        replay.error = error
        replay.progress = 1.0
        replay.date = now_text()
        with trio.CancelScope(shield=True):
            await self._save(replay)

    async def _save(self, replay: Replay) -> None:
        await self.store.aput_json(REPLAYS, replay.id, replay.to_json())

    def get(self, replay_id: str) -> Replay:
        replay = self.replays.get(replay_id)
        if replay is None:
            raise APIError(404, "could not find replay: no replay exists")
        return replay

    def list(self, pattern: str = "", offset: int = 0, limit: int = 100) -> list[Replay]:
        """Newest first (by the date to the second, then by ID, both descending), paged
        as Kapacitor's store pages: ``offset`` matching replays skipped, at most
        ``limit`` returned, and never more than the replays left after ``offset``
        counted over all replays; a negative ``limit`` lists every replay, pattern or
        not."""
        ordered = sorted(self.replays.values(), key=lambda r: (_date_key(r), r.id),
                         reverse=True)
        if limit < 0:
            return ordered
        size = min(offset + limit, len(ordered)) - offset
        if size <= 0:
            return []
        matching = set(filter_names([r.id for r in ordered], pattern))
        chosen = [r for r in ordered if r.id in matching]
        return chosen[max(offset, 0):][:size]

    async def delete(self, replay_id: str) -> None:
        scope = self.running.pop(replay_id, None)
        if scope is not None:
            scope.cancel()
        if self.replays.pop(replay_id, None) is not None:
            await self.store.adelete(REPLAYS, replay_id)

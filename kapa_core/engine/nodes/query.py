"""Runtime of ``batch|query()``: a wall-clock schedule, an InfluxQL query, batches out.

The node's own trio task (``run_io``, started by the running task like every I/O
node's) waits for each tick of the schedule:

* ``.every(d)``: every ``d`` after the task starts, the tick being the time it fires;
* ``.every(d).align()``: on multiples of ``d`` (Go's ``time.Truncate``, counted from
  Go's zero time, which equals counting from the Unix epoch for durations dividing a
  day), the tick being the boundary itself;
* ``.cron(s)``: at each matching local wall-clock second, the tick being that second.

A tick ``t`` queries ``[stop - period, stop)`` with ``stop = t - offset``, through the
``[[influxdb]]`` cluster named by ``.cluster()`` (or the default one). Each series of
the answer becomes one batch, as Kapacitor's ``ResultToBufferedBatches`` builds it: the
series' name and tags (the group is made of all the series' tag keys, plus the
measurement with ``.groupByMeasurement()``), one point per row that has at least one
non-null value, every number as a float. The batch's ``tmax`` is ``stop`` (the end of
the query window), except for a non-empty batch of a query grouped by time: the time of
its latest point.

Batches are pushed through the task's synchronous nodes straight from this trio task:
trio runs one task at a time and a batch goes down the whole DAG without a checkpoint,
so node code never interleaves, exactly as if the task's single consumer had delivered
it. Batch tasks receive no stream points (the task master only routes writes to stream
tasks); should one arrive, it is ignored.

Failures never stop the schedule. Each is logged with the task, node and query (the
first of a run of identical failures at error level, the repeats at debug level, and a
line when queries succeed again) and counted in the node's ``errors`` (as in Kapacitor)
and in kapa-core's own ``query_errors``, which counts every failed run,
``connect_errors`` the subset where InfluxDB could not be reached (down, refused, no
client for the cluster); ``batches_queried`` and ``points_queried`` count what arrived.
A run that is still waiting for InfluxDB when the next tick comes makes that tick be
skipped, as Go's ticker drops ticks for a slow receiver.
"""

from __future__ import annotations

import time
from typing import Any

import trio

from kapa_core.engine.cron import CronError, CronExpression
from kapa_core.engine.cron import parse as parse_cron
from kapa_core.engine.node import Node
from kapa_core.engine.nodes.io import NodeContext
from kapa_core.gotemplate.lexer import go_quote
from kapa_core.influxdb.client import ConnectionFailed
from kapa_core.influxdb.config import default_cluster
from kapa_core.influxdb.query import QueryFailed, Series, run_query
from kapa_core.influxdb.select_query import QueryTextError, SelectQuery, TimeGroup
from kapa_core.logs import Logger
from kapa_core.models.batch import Batch, BatchPoint, go_truncate, group_id
from kapa_core.models.point import Point
from kapa_core.pipeline.query import QuerySpec


async def _sleep_until(target_ns: int) -> None:
    """Sleep until the wall clock reads ``target_ns`` (re-checking after waking)."""
    while True:
        delay = target_ns - time.time_ns()
        if delay <= 0:
            return
        await trio.sleep(delay / 1e9)


class Schedule:
    """When a query node runs: :meth:`wait` returns the next tick (Unix ns)."""

    def __init__(self, every: int, align: bool, cron: CronExpression | None) -> None:
        self.every = every
        self.align = align
        self.cron = cron
        self.started = trio.current_time()
        self.count = 0
        self.last = time.time_ns()

    async def wait(self) -> int | None:
        """Sleep until the next tick and return it; None when the schedule has ended
        (a cron expression without any future match)."""
        if self.cron is not None:
            found = self.cron.next_ns(max(time.time_ns(), self.last))
            if found is None:
                return None
            await _sleep_until(found)
            self.last = found
            return found
        if self.align:
            boundary = go_truncate(max(time.time_ns(), self.last), self.every) + self.every
            await _sleep_until(boundary)
            self.last = boundary
            return boundary
        # Like Go's ticker: every `every` after the start, skipping ticks missed while a
        # slow query ran; the tick is the time it fired.
        period = self.every / 1e9
        self.count = max(self.count + 1,
                         int((trio.current_time() - self.started) // period) + 1)
        await trio.sleep_until(self.started + self.count * period)
        return time.time_ns()


def series_to_batch(series: Series, by_name: bool, stop: int, grouped_by_time: bool
                    ) -> Batch:
    """One result series as a batch (see the module doc for the rules)."""
    tags = dict(series.tags)
    dims = tuple(sorted(tags))
    columns = series.columns
    time_index = columns.index("time") if "time" in columns else -1
    named = [(i, name) for i, name in enumerate(columns) if i != time_index]
    points: list[BatchPoint] = []
    tmax = 0
    for row in series.values:
        fields: dict[str, Any] = {}
        for i, name in named:
            value = row[i]
            if value is None:
                continue
            # Kapacitor decodes numbers as json.Number and turns them into float64.
            fields[name] = float(value) if type(value) is int else value
        if not fields:
            continue
        t = int(row[time_index]) if time_index >= 0 else 0
        if t > tmax:
            tmax = t
        points.append(BatchPoint(t, fields, tags))
    if not grouped_by_time or not points:
        tmax = stop
    return Batch(series.name, group_id(series.name, tags, dims, by_name), tags, dims,
                 by_name, tmax, points)


FILLS = ("null", "none", "previous", "linear")


def _go_type(value: Any) -> str:
    return {bool: "bool", int: "int64", float: "float64"}.get(type(value),
                                                             type(value).__name__)


def check(spec: QuerySpec) -> SelectQuery:
    """What Kapacitor checks when a query node starts, in its order and words (a task
    with any of these mistakes can be defined, not enabled or replayed); ValueError
    otherwise. Returns the query, ready to be rendered."""
    times = 0
    for value in spec.group_dimensions():
        if isinstance(value, TimeGroup):
            times += 1
            if times > 1:
                raise ValueError("groupBy cannot have more than one time dimension")
        elif not isinstance(value, str):
            raise ValueError(f"invalid dimension type:{_go_type(value)}, must be string "
                             "or time.Duration")
    try:
        select = spec.select()
    except QueryTextError as exc:
        if exc.parsed:
            raise ValueError(str(exc)) from None
        raise ValueError(f"failed to parse InfluxQL query: {exc}") from None
    if isinstance(spec.fill, str) and spec.fill not in FILLS:
        raise ValueError(f"unexpected fill option {spec.fill}")
    if spec.every and spec.cron:
        raise ValueError("must not set both 'every' and 'cron' properties")
    if spec.every > 0:
        return select
    if spec.cron:
        try:
            parse_cron(spec.cron)
        except CronError as exc:
            raise ValueError(str(exc)) from None
        return select
    if spec.every < 0:
        raise ValueError("'every' duration must must non-negative")  # sic, as Kapacitor
    raise ValueError("must define one of 'every' or 'cron'")


def check_dbrps(select: SelectQuery, dbrps: Any) -> None:
    """A query may only read the databases and retention policies of its task: a
    ``"db"."rp".measurement`` source outside them is refused with Kapacitor's words. A
    measurement named without its database is read from the task's first dbrp (a
    kapa-core extension: Kapacitor refuses it too)."""
    allowed = {tuple(d) for d in dbrps or ()}
    for source in select.sources():
        if source is not None and source not in allowed:
            raise ValueError("batch query is not allowed to request data from "
                             f"{go_quote(source[0])}.{go_quote(source[1])}")


class QueryNode(Node):
    spec: QuerySpec

    def __init__(self, spec: QuerySpec, log: Logger, ctx: NodeContext) -> None:
        super().__init__(spec, log)
        self.ctx = ctx
        self.select = check(spec)
        if not getattr(ctx, "replay", False):  # a replay reports this when it runs
            check_dbrps(self.select, getattr(spec.pipeline, "dbrps", None))
        self.period = int(spec.period)
        self.offset = int(spec.offset)
        self.every = int(spec.every)
        self.align = spec.align
        self.cron = parse_cron(spec.cron) if spec.cron else None
        self.cluster = spec.cluster
        # Kapacitor sends no database, so `FROM cpu` fails there; here the task's first
        # dbrp names it (what InfluxDB 2.x users write, as in its Kapacitor guide).
        dbrps = list(getattr(spec.pipeline, "dbrps", None) or [])
        self.database: str
        self.retention_policy: str
        self.database, self.retention_policy = dbrps[0] if dbrps else ("", "")
        self.by_name = spec.group_by_measurement
        self.query_errors = 0
        self.connect_errors = 0
        self.batches_queried = 0
        self.points_queried = 0
        self.last_query = ""
        self._failing = ""  # the message of the current run of failures
        self._failures = 0

    def extra_stats(self) -> dict[str, Any]:
        return {"query_errors": self.query_errors, "connect_errors": self.connect_errors,
                "batches_queried": self.batches_queried,
                "points_queried": self.points_queried}

    def point(self, p: Point) -> None:
        """Batch tasks are fed by their queries only."""

    def check_cluster(self) -> None:
        """As Kapacitor's query node gets its client when it starts running: a cluster
        that is not configured and enabled (or no default one) stops the task."""
        service = self.ctx.influxdb()
        enabled = tuple(e for e in getattr(service, "elements", ()) if e.enabled)
        name = self.cluster
        if not name:
            default = default_cluster(enabled)
            name = default.name if default is not None else ""
        if not name or not any(e.name == name for e in enabled):
            raise self.stop_task(f"failed to get InfluxDB client: no such InfluxDB "
                                 f"config {name}")

    async def run_io(self) -> None:
        self.check_cluster()
        schedule = Schedule(self.every, self.align, self.cron)
        while (tick := await schedule.wait()) is not None:
            try:
                await self.run_once(tick)
            except Exception as exc:  # an unexpected failure must not end the schedule
                self.query_errors += 1
                self.errors += 1
                self.log.error("batch query run failed", query=self.last_query,
                               err=f"{type(exc).__name__}: {exc}")
        self.log.info("the cron schedule has no future time left; no more queries",
                      cron=self.spec.cron)

    async def run_once(self, tick: int) -> None:
        """Query the window that ends at ``tick - offset`` and emit its batches."""
        stop = tick - self.offset
        statement = self.select.render(stop - self.period, stop)
        self.last_query = statement
        self.log.debug("starting next batch query", query=statement)
        service = self.ctx.influxdb()
        client = service.client(self.cluster or None) if service is not None else None
        if client is None:
            which = repr(self.cluster) if self.cluster else "(default)"
            self._failed(f"InfluxDB cluster {which} is not configured or not enabled, "
                         "cannot query InfluxDB for batch query", statement, connect=True)
            return
        try:
            results = await run_query(client, statement, database=self.database,
                                      retention_policy=self.retention_policy)
        except ConnectionFailed as exc:
            self._failed(str(exc), statement, connect=True)
            return
        except QueryFailed as exc:
            self._failed(str(exc), statement, connect=False)
            return
        if self._failing:
            self.log.info("batch query succeeds again", failures=self._failures)
            self._failing, self._failures = "", 0
        grouped = self.select.grouped_by_time
        for series_list in results:
            for series in series_list:
                try:
                    batch = series_to_batch(series, self.by_name, stop, grouped)
                except (ValueError, TypeError, IndexError) as exc:
                    self.query_errors += 1
                    self.errors += 1
                    self.log.error("failed to understand query result", query=statement,
                                   err=str(exc))
                    continue
                self.batches_queried += 1
                self.points_queried += len(batch.points)
                self.receive_batch(batch)

    def _failed(self, message: str, statement: str, *, connect: bool) -> None:
        self.query_errors += 1
        self.errors += 1  # an error of the node too, as Kapacitor counts it
        if connect:
            self.connect_errors += 1
        self._failures += 1
        if message != self._failing:
            self._failing = message
            self.log.error("error executing batch query", query=statement, err=message,
                           cluster=self.cluster or None)
        else:
            self.log.debug("error executing batch query (repeated)", query=statement,
                           err=message, failures=self._failures)

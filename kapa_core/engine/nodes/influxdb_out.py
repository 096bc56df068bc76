"""Runtime of ``|influxDBOut()``: buffered, batched writes to an InfluxDB cluster.

The synchronous side (``point``/``batch``, called by the task) only turns data into lines
of line protocol and appends them to the node's bounded buffer; it never waits for
InfluxDB. The node's own trio task (``run_io``, started by the task like every I/O
node's) writes them:

* lines are grouped by destination (database, retention policy) into batches of
  ``buffer`` lines; a full batch wakes the writer, and every ``flushInterval`` the
  partial batches are written too. As in Kapacitor, a stream point goes to the database
  and retention policy it was written to unless ``.database()``/``.retentionPolicy()``
  say otherwise (each one separately: ``.database('x')`` alone keeps the point's
  retention policy); a batch goes to ``.database()`` and ``.retentionPolicy()`` (empty:
  the database's default);
* each batch is one ``POST /write`` through the cluster's client (the named ``cluster``
  or the default one, looked up at every write so that a config override of
  ``[[influxdb]]`` is followed), gzip-compressed unless the cluster has
  ``compression = "none"``;
* ``.create()`` runs ``CREATE DATABASE db [WITH NAME rp]`` (names quoted only where
  InfluxQL needs it, as Kapacitor's QuoteIdent does) when the task starts, as Kapacitor
  does, and again before the next write while InfluxDB could not be reached;
* when the task stops, what is buffered is written one last time (for at most
  ``FINAL_FLUSH_TIMEOUT`` seconds), as Kapacitor flushes its write buffer on stop.

Failures (Kapacitor counts them in ``write_errors`` and drops the batch in every case;
kapa-core keeps what can still be written):

* InfluxDB unreachable, timing out or answering 5xx/429: the batch stays buffered and
  is retried at the next ``flushInterval`` tick. While writes fail, the node holds at
  most ``buffer`` points (the oldest); newer points are dropped and counted in
  ``points_dropped``. The first failure is logged as an error naming the cluster,
  database and error, repeats of the same error at debug level, and the recovery once.
* Any other 4xx (database not found, bad credentials, field type conflict) or a
  retention policy that does not exist (a 500 from InfluxDB 1.x): retrying cannot
  help, so the batch is logged, counted and dropped (its points are counted in
  ``points_dropped``; for a partial write only those InfluxDB says it dropped).

While writes succeed the buffer may grow to ``max(QUEUE_BATCHES * buffer, QUEUE_MIN)``
points (a task pushes thousands of points between two chances for the writer to run);
beyond that points are dropped and counted too.

Statistics: ``points_written`` and ``write_errors`` (Kapacitor's names; one error per
failed request), ``points_dropped`` and ``points_buffered``.
"""

from __future__ import annotations

from collections import deque
from math import isfinite
from typing import TYPE_CHECKING, Any

import trio

from kapa_core.engine.node import Node
from kapa_core.influxdb import write as influx_write
from kapa_core.influxdb.config import default_cluster
from kapa_core.logs import Logger
from kapa_core.models.batch import Batch
from kapa_core.models.gojson import plain_float
from kapa_core.models.lineprotocol import precision_scale
from kapa_core.models.point import Point, format_field
from kapa_core.pipeline.influxdb_out import PRECISIONS, InfluxDBOutSpec

if TYPE_CHECKING:
    from kapa_core.engine.nodes.io import NodeContext

#: While writes succeed, the buffer holds up to this many batches of ``buffer`` points...
QUEUE_BATCHES = 100
#: ...and at least this many points.
QUEUE_MIN = 100_000
#: Seconds the last flush of a stopping task may take.
FINAL_FLUSH_TIMEOUT = 5.0
#: Drops are logged on the first one of an episode, then once per this many.
DROP_LOG_EVERY = 10_000

_MEASUREMENT = str.maketrans({",": "\\,", " ": "\\ "})
_KEY = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})

Destination = tuple[str, str]  # database, retention policy


def _scaled(t: int, scale: int) -> int:
    """The timestamp in ``precision`` units, truncated toward zero (as Go divides)."""
    if scale == 1:
        return t
    return t // scale if t >= 0 else -(-t // scale)


#: Units of a Go duration: the precisions Kapacitor's client can write with (it checks
#: ``time.ParseDuration("1" + precision)``); it sends them as they are written...
_GO_UNITS = ("ns", "us", "µs", "μs", "ms", "s", "m", "h")
#: ...and scales the times only for these (InfluxDB's GetPrecisionMultiplier), so
#: ``us`` goes with nanoseconds.
_GO_SCALE = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def write_precision(precision: str) -> tuple[str, int]:
    """(The ``precision`` parameter of the node's writes, the nanoseconds per unit of
    their times), as Kapacitor 1.5.7 sends them: ``ns`` when none is set, a Go duration
    unit as written. ``n``, ``u`` and ``µ`` fail every write in Kapacitor (not Go
    units); kapa-core writes them as InfluxDB reads them instead."""
    if not precision or precision in _GO_UNITS:
        return precision or "ns", _GO_SCALE.get(precision, 1)
    sent = PRECISIONS[precision]
    return sent, precision_scale(sent)


class LineFormatter:
    """Lines of line protocol, with the escaped tag sets and field keys cached.

    As InfluxDB's own point model does, tags with an empty key or value are left out;
    fields InfluxDB cannot store (empty key; None, NaN, ±Inf) are left out too, and a
    point with no field left is an error. Tags and fields are written sorted by key and
    floats in plain decimals without a trailing ``.0`` (``2``, ``1000000000000000000000``,
    ``0.0000001``), as Kapacitor 1.5.7's point model writes them.
    """

    #: Entries per cache before it is emptied (tag sets of a high-cardinality stream).
    CACHE_SIZE = 10_000

    def __init__(self) -> None:
        self._tag_sets: dict[tuple[tuple[str, str], ...], str] = {}
        self._keys: dict[str, str] = {}

    def _tag_set(self, tags: dict[str, str]) -> str:
        ident = tuple(tags.items())
        text = self._tag_sets.get(ident)
        if text is None:
            if len(self._tag_sets) >= self.CACHE_SIZE:
                self._tag_sets.clear()
            text = self._tag_sets[ident] = "".join(
                f",{k.translate(_KEY)}={v.translate(_KEY)}"
                for k, v in sorted(tags.items()) if k and v)
        return text

    def _key(self, key: str) -> str:
        if len(self._keys) >= self.CACHE_SIZE:
            self._keys.clear()
        escaped = self._keys[key] = key.translate(_KEY)
        return escaped

    def line(self, measurement: str, tags: dict[str, str], fields: dict[str, Any],
             t: int) -> str:
        """One line; ``measurement`` is already escaped, ``t`` already scaled."""
        tag_set = self._tag_set(tags) if tags else ""
        keys = self._keys
        parts = []
        for k, v in sorted(fields.items()):
            key = keys.get(k) or self._key(k)
            if not key:
                continue
            kind = type(v)
            if kind is float:
                if isfinite(v):
                    parts.append(f"{key}={plain_float(v)}")
            elif kind is int:
                parts.append(f"{key}={v}i")
            elif v is not None:
                parts.append(f"{key}={format_field(v)}")
        if not parts:
            raise ValueError("the point has no field InfluxDB can store (fields: "
                             f"{sorted(fields)})")
        return f"{measurement}{tag_set} {','.join(parts)} {t}"


class InfluxDBOutNode(Node):
    def __init__(self, spec: InfluxDBOutSpec, log: Logger, ctx: NodeContext) -> None:
        super().__init__(spec, log)
        self.spec_ = spec
        self.ctx = ctx
        service = ctx.influxdb()
        # Kapacitor's words ("failed to get InfluxDB client: ..."), then kapa-core's hint
        missing = f"failed to get InfluxDB client: no such InfluxDB config {spec.cluster}"
        if service is None:
            raise ValueError(f"{missing} (no InfluxDB cluster is configured)")
        elements = [e for e in getattr(service, "elements", ()) if e.enabled]
        if spec.cluster:
            if not any(e.name == spec.cluster for e in elements):
                raise ValueError(f"{missing} (no enabled [[influxdb]] cluster of that name)")
            self.cluster = spec.cluster
        else:
            element = default_cluster(tuple(elements))
            if element is None:
                raise ValueError(f"{missing} (no InfluxDB cluster is enabled)")
            self.cluster = element.name
        self.database = spec.database
        self.retention_policy = spec.retention_policy
        self.measurement = spec.measurement.translate(_MEASUREMENT)
        self.tags = spec.tags
        self.precision, self.scale = write_precision(spec.precision)
        self.consistency = spec.write_consistency.lower()
        self.size = spec.buffer
        self.interval = spec.flush_interval / 1e9
        self.queue_limit = max(QUEUE_BATCHES * self.size, QUEUE_MIN)
        self.create = spec.create
        # Lines waiting for a batch to fill, per destination, and full batches (oldest
        # first; the head is the one being written).
        self._open: dict[Destination, list[str]] = {}
        self._ready: deque[tuple[Destination, list[str]]] = deque()
        self.held = 0
        self.failing = False
        self._last_error = ""
        self._wake = trio.Event()
        self._names: dict[str, str] = {}
        self._format = LineFormatter().line
        self.points_written = 0
        self.write_errors = 0
        self.points_dropped = 0
        self._drop_episode = 0

    # -- the task side: never blocks ------------------------------------------------------
    def extra_stats(self) -> dict[str, Any]:
        return {"points_written": self.points_written, "write_errors": self.write_errors,
                "points_dropped": self.points_dropped, "points_buffered": self.held}

    def _name(self, name: str) -> str:
        if self.measurement:
            return self.measurement
        escaped = self._names.get(name)
        if escaped is None:
            escaped = self._names[name] = name.translate(_MEASUREMENT)
        return escaped

    def _tags(self, tags: dict[str, str]) -> dict[str, str]:
        return {**tags, **self.tags} if self.tags else tags

    def point(self, p: Point) -> None:
        line = self._format(self._name(p.name), self._tags(p.tags), p.fields,
                            _scaled(p.time, self.scale))
        self._add((self.database or p.database,
                   self.retention_policy or p.retention_policy), [line])

    def batch(self, b: Batch) -> None:
        name = self._name(b.name)
        lines = []
        for bp in b.points:
            try:
                lines.append(self._format(name, self._tags(bp.tags), bp.fields,
                                          _scaled(bp.time, self.scale)))
            except ValueError as exc:  # one bad point does not lose the batch
                self.fail(exc)
        if lines:
            self._add((self.database, self.retention_policy), lines)

    def _add(self, destination: Destination, lines: list[str]) -> None:
        limit = self.size if self.failing else self.queue_limit
        room = limit - self.held
        if room < len(lines):
            self._dropped(len(lines) - max(room, 0), "the buffer is full")
            lines = lines[:max(room, 0)]
            if not lines:
                return
        self.held += len(lines)
        pending = self._open.get(destination)
        if pending is None:
            pending = self._open[destination] = []
        pending.extend(lines)
        if len(pending) >= self.size:
            for start in range(0, len(pending) - self.size + 1, self.size):
                self._ready.append((destination, pending[start:start + self.size]))
            rest = pending[len(pending) - len(pending) % self.size:]
            if rest:
                self._open[destination] = rest
            else:
                del self._open[destination]
            if not self.failing:
                self._wake.set()

    def _dropped(self, count: int, why: str) -> None:
        before = self._drop_episode
        self.points_dropped += count
        self._drop_episode += count
        if before == 0 or before // DROP_LOG_EVERY != self._drop_episode // DROP_LOG_EVERY:
            self.log.error("influxDBOut dropped points", reason=why, cluster=self.cluster,
                           db=self.database or None, dropped=self.points_dropped,
                           buffered=self.held)

    # -- the writer task --------------------------------------------------------------------
    async def run_io(self) -> None:
        try:
            if self.create:
                await self._create()
            next_tick = trio.current_time() + self.interval
            while True:
                with trio.move_on_at(next_tick):
                    if self.failing:
                        await trio.sleep_forever()  # retry only at the next tick
                    await self._wake.wait()
                self._wake = trio.Event()
                if trio.current_time() >= next_tick:
                    next_tick = max(next_tick + self.interval,
                                    trio.current_time() + self.interval / 2)
                    self._seal_all()
                await self._write_ready()
        finally:
            with trio.move_on_after(FINAL_FLUSH_TIMEOUT, shield=True):
                self._seal_all()
                if self._ready:
                    await self._write_ready()

    def _seal_all(self) -> None:
        for destination, lines in self._open.items():
            self._ready.append((destination, lines))
        self._open = {}

    def _client(self) -> Any:
        service = self.ctx.influxdb()
        client = service.client(self.cluster) if service is not None else None
        if client is None:
            raise influx_write.WriteFailed(f"InfluxDB cluster {self.cluster!r} is not "
                                           "connected (disabled or restarting)", retry=True)
        return client

    async def _create(self) -> bool:
        """Run ``.create()``'s statement; False while InfluxDB cannot be reached."""
        try:
            await influx_write.create_database(self._client(), self.database,
                                               self.retention_policy)
        except influx_write.WriteFailed as exc:
            if exc.retry:
                self._failed(exc, "create the database")
                return False
            self.errors += 1
            self.log.error("influxDBOut: failed to create database", cluster=self.cluster,
                           db=self.database, rp=self.retention_policy or None, err=str(exc))
        except Exception as exc:  # never let the writer die
            self.errors += 1
            self.log.error("influxDBOut: failed to create database", cluster=self.cluster,
                           db=self.database, err=str(exc) or type(exc).__name__)
        self.create = False
        return True

    async def _write_ready(self) -> None:
        if self.create and not await self._create():
            return
        while self._ready:
            (database, rp), lines = self._ready[0]
            body = ("\n".join(lines) + "\n").encode()
            try:
                await influx_write.write(self._client(), body, database=database,
                                         retention_policy=rp, precision=self.precision,
                                         consistency=self.consistency)
            except influx_write.WriteFailed as exc:
                self.write_errors += 1
                if exc.retry:
                    self._failed(exc, "write", database, rp, len(lines))
                    return
                self._pop(len(lines))
                dropped = len(lines) if exc.dropped is None else min(exc.dropped, len(lines))
                self.points_written += len(lines) - dropped
                self.points_dropped += dropped
                self.log.error("influxDBOut: InfluxDB refused the points; they are dropped",
                               cluster=self.cluster, db=database, rp=rp or None,
                               points=len(lines), dropped=dropped, err=str(exc))
                continue
            except Exception as exc:  # a bug or an unexpected answer: count, drop, go on
                self.write_errors += 1
                self._pop(len(lines))
                self.points_dropped += len(lines)
                self.log.error("influxDBOut: write failed; the points are dropped",
                               cluster=self.cluster, db=database, points=len(lines),
                               err=str(exc) or type(exc).__name__)
                continue
            self._pop(len(lines))
            self.points_written += len(lines)
            if self.failing:
                self.failing = False
                self._last_error = ""
                self._drop_episode = 0
                self.log.info("influxDBOut: writing to InfluxDB again", cluster=self.cluster,
                              db=database, dropped=self.points_dropped)

    def _pop(self, count: int) -> None:
        self._ready.popleft()
        self.held -= count

    def _failed(self, exc: influx_write.WriteFailed, what: str, database: str = "",
                rp: str = "", points: int = 0) -> None:
        """A retryable failure: log it, keep at most ``buffer`` points for the retry."""
        first = not self.failing
        self.failing = True
        log = self.log.error if first or str(exc) != self._last_error else self.log.debug
        self._last_error = str(exc)
        log(f"influxDBOut: cannot {what}; keeping up to buffer points and retrying every "
            "flushInterval", cluster=self.cluster, db=database or self.database or None,
            rp=rp or self.retention_policy or None, points=points or None,
            buffered=self.held, err=str(exc))
        self._trim()

    def _trim(self) -> None:
        """Keep the oldest ``buffer`` points, drop the newer ones."""
        excess = self.held - self.size
        if excess <= 0:
            return
        dropped = 0
        for destination in reversed(list(self._open)):
            lines = self._open[destination]
            cut = min(excess - dropped, len(lines))
            del lines[len(lines) - cut:]
            dropped += cut
            if not lines:
                del self._open[destination]
            if dropped == excess:
                break
        while dropped < excess and len(self._ready) > 1:
            destination, lines = self._ready[-1]
            cut = min(excess - dropped, len(lines))
            del lines[len(lines) - cut:]
            dropped += cut
            if not lines:
                self._ready.pop()
        # The head batch (at most ``buffer`` lines) always stays.
        self.held -= dropped
        if dropped:
            self._dropped(dropped, "InfluxDB cannot be written to")

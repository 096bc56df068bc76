"""Recordings, and replays of a recording or of a query, as Kapacitor 1.5.7 makes them.

A recording is data kept in the ``[replay] dir`` in Kapacitor's own file formats (see
:mod:`kapa_core.models.recordfile`), so that one made by either daemon replays on the
other:

* a **stream** recording (``POST /recordings/stream``) writes to ``<id>.srpl`` the
  points the task's databases, retention policies and measurements receive, until a
  point later than ``stop`` arrives (only then does it finish, as in Kapacitor);
* a **batch** recording (``POST /recordings/batch``) runs the task's queries over
  ``[start, stop]`` as a batch replay would and writes each query node's batches to its
  entry of ``<id>.brpl``;
* a **query** recording (``POST /recordings/query``) runs one fully qualified query and
  keeps its answer as points (``stream``: one time after the other across the series)
  or as batches (``batch``: entry ``0``).

Recordings are listed in the ``recordings`` store; files found in the directory at
start are registered as finished recordings (their date the file's time), as Kapacitor
does, and ``POST /recordings/import`` registers one dropped in while running.

A replay of a recording (``POST /replays``) feeds the file through a separate instance
of the task (the machinery of :mod:`kapa_core.engine.replay`): points of a stream
recording reach the task when they belong to one of its databases/retention policies
and measurements; each entry of a batch recording goes to the query node of the same
rank. ``POST /replays/query`` does the same with the answer of a query, unsaved. Times
move as in a batch replay: without ``recording-time`` the first point (of each entry)
lands on the replay's start and the others keep their distance to it.
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import trio

from kapa_core.engine.nodes.query import QueryNode, series_to_batch
from kapa_core.engine.replay import (
    GO_ZERO_TIME,
    RECORD_BATCH_OPTIONS,
    RECORD_QUERY_OPTIONS,
    RECORD_STREAM_OPTIONS,
    REPLAY_ID,
    Replay,
    ReplayFailed,
    ReplayRun,
    decode_options,
    go_time_text,
    now_text,
)
from kapa_core.errors import APIError, KapaError
from kapa_core.glob import filter_names
from kapa_core.gotemplate.lexer import go_quote
from kapa_core.influxdb.client import ConnectionFailed
from kapa_core.influxdb.query import QueryFailed, Series, run_query
from kapa_core.influxdb.select_query import QueryTextError, SelectQuery
from kapa_core.logs import Logger
from kapa_core.models.batch import Batch
from kapa_core.models.point import Point
from kapa_core.models.recordfile import (
    BATCH_EXT,
    STREAM_EXT,
    RecordingFileError,
    RecordingOpenError,
    StreamWriter,
    read_batches,
    read_stream,
    write_batches,
    write_stream,
)
from kapa_core.storage import RECORDINGS, Store

S = 1_000_000_000
#: Fields of a recording, in the order Kapacitor writes them.
FIELDS = ("link", "id", "type", "size", "date", "error", "status", "progress")


def _id_error(kind: str, value: str) -> APIError:
    return APIError(400, f"{kind} ID must contain only letters, numbers, '-', '.' and "
                    f"'_'. {go_quote(value)}")


@dataclass
class Recording:
    id: str
    type: str  # stream | batch
    path: str
    size: int = 0
    date: str = ""
    error: str = ""
    status: str = "running"
    progress: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Recording:
        return cls(**data)

    def values(self) -> dict[str, Any]:
        return {"link": {"rel": "self", "href": f"/kapacitor/v1/recordings/{self.id}"},
                "id": self.id, "type": self.type, "size": self.size, "date": self.date,
                "error": self.error, "status": self.status,
                "progress": int(self.progress) if float(self.progress).is_integer()
                else self.progress}


def _mtime_text(path: Path) -> str:
    return go_time_text(path.stat().st_mtime_ns)


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return -1  # Kapacitor's size of a recording whose file was never made


def query_dbrp(query: str) -> tuple[str, str]:
    """The database and retention policy a recorded query reads (Kapacitor's words when
    it names none)."""
    try:
        sources = SelectQuery(query).sources()
    except QueryTextError as exc:
        if not str(exc).startswith("query is not a select statement"):
            raise ReplayFailed(str(exc)) from None
        sources = []  # another statement (SHOW ...) reads no measurement
    if len(sources) == 1 and sources[0] is not None and all(sources[0]):
        return sources[0]
    raise ReplayFailed("could not determine database and retention policy. Is the query "
                       "fully qualified?")


async def run_recorded_query(context: Any, query: str, cluster: str
                             ) -> tuple[tuple[str, str], list[list[Series]]]:
    """Kapacitor's ``execQuery``: the query's dbrp and InfluxDB's answer."""
    dbrp = query_dbrp(query)
    service = context.influxdb() if context.influxdb is not None else None
    if service is None:
        raise ReplayFailed("InfluxDB not configured, cannot record query")
    client = service.client(cluster or None)
    if client is None:
        raise ReplayFailed(f"failed to get InfluxDB client: no such InfluxDB config "
                           f"{cluster}")
    try:
        return dbrp, await run_query(client, query)
    except (QueryFailed, ConnectionFailed) as exc:
        raise ReplayFailed(f"InfluxDB query failed: {exc}") from None


def answer_batches(results: list[list[Series]]) -> list[Batch]:
    """The batches of a query's answer as a query recording or replay makes them: the
    time of each is its last point's (Go's zero time without points)."""
    out = []
    for series_list in results:
        for series in series_list:
            out.append(series_to_batch(series, False, GO_ZERO_TIME, True))
    return out


def answer_points(dbrp: tuple[str, str], results: list[list[Series]]) -> list[Point]:
    """The points of a query's answer, as a stream: time after time, and at one time
    the series in the answer's order."""
    out: list[Point] = []
    for series_list in results:
        keyed = []
        for index, series in enumerate(series_list):
            batch = series_to_batch(series, False, GO_ZERO_TIME, True)
            for seq, p in enumerate(batch.points):
                keyed.append((p.time, index, seq, Point(
                    batch.name, dict(p.tags), p.fields, p.time, dbrp[0], dbrp[1])))
        keyed.sort(key=lambda k: k[:3])
        out.extend(k[3] for k in keyed)
    return out


class _StreamRecorder:
    """A consumer of the stream router writing a stream recording."""

    def __init__(self, service: RecordingService, recording: Recording, stop: int,
                 dbrps: list[tuple[str, str]], measurements: frozenset[str] | None) -> None:
        self.service = service
        self.recording = recording
        self.stop = stop
        self.dbrps = set(dbrps)
        self.measurements = measurements
        self.writer: StreamWriter | None = StreamWriter(recording.path)

    def wants(self, database: str, retention_policy: str) -> bool:
        return (database, retention_policy) in self.dbrps

    def deliver(self, points: list[Any], present: frozenset[str] | None = None) -> None:
        writer = self.writer
        if writer is None:
            return
        names = self.measurements
        for p in points:
            if names is not None and p.name not in names:
                continue
            if p.time > self.stop:
                self.finish()
                return
            writer.write(p.database, p.retention_policy, p)

    def finish(self, error: str = "") -> None:
        if self.writer is None:
            return
        self.writer.close()
        self.writer = None
        self.service.stream.unsubscribe(self)
        self.service.recorders.pop(self.recording.id, None)
        self.service.spawn(self.service.finish(self.recording, error))


class RecordingService:
    """Makes, lists, imports and deletes recordings (part of the replay service)."""

    def __init__(self, store: Store, tasks: Any, context: Any, log: Logger,
                 directory: str, stream: Any) -> None:
        self.store = store
        self.tasks = tasks
        self.context = context
        self.log = log
        self.dir = Path(directory)
        self.stream = stream
        self.recordings: dict[str, Recording] = {}
        self.recorders: dict[str, _StreamRecorder] = {}
        self.running: dict[str, trio.CancelScope] = {}
        self.spawn: Any = None  # set by the replay service: start a task in its nursery
        for key, data in store.items_json(RECORDINGS):
            try:
                recording = Recording.from_json(data)
            except (TypeError, KeyError):
                log.error("stored recording is unreadable; skipped", recording=key)
                continue
            self.recordings[key] = recording
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sync_files()
        for recording in self.recordings.values():
            if recording.status == "running":
                recording.status = "failed"
                recording.error = "unexpected Kapacitor shutdown"
                store.put_json(RECORDINGS, recording.id, recording.to_json())

    # -- files ----------------------------------------------------------------------------
    def _from_file(self, path: Path) -> Recording | None:
        name = path.name
        stem, dot, ext = name.rpartition(".")
        if not dot:
            self.log.error("file without extension in replay dir", file=name)
            return None
        kinds = {STREAM_EXT: "stream", BATCH_EXT: "batch"}
        if "." + ext not in kinds:
            self.log.error("unknown file type in replay dir", file=name)
            return None
        return Recording(stem, kinds["." + ext], str(path), size=path.stat().st_size,
                         date=_mtime_text(path), status="finished", progress=1.0)

    def sync_files(self) -> None:
        """Register the recording files of the directory that no recording names (as
        Kapacitor does at start: a shared recording dropped in is found)."""
        for path in sorted(self.dir.iterdir()):
            if path.is_dir():
                continue
            recording = self._from_file(path)
            if recording is None or recording.id in self.recordings:
                continue
            self.recordings[recording.id] = recording
            self.store.put_json(RECORDINGS, recording.id, recording.to_json())

    async def import_file(self, body: bytes) -> Recording:
        """``POST /recordings/import`` (kapa-core's): register ``<id>.srpl`` or
        ``<id>.brpl`` of the directory as a finished recording (again, if it was)."""
        options = decode_options(body, {"id": "string"}, "ImportRecordingOptions")
        rid = options["id"]
        if not rid:
            raise APIError(400, "must provide recording id")
        if not REPLAY_ID.fullmatch(rid):
            raise _id_error("recording", rid)
        found = [self.dir / (rid + ext) for ext in (STREAM_EXT, BATCH_EXT)
                 if (self.dir / (rid + ext)).is_file()]
        if not found:
            raise APIError(404, f"no recording file {rid}{STREAM_EXT} or {rid}{BATCH_EXT} "
                           f"in {self.dir}")
        if len(found) > 1:
            raise APIError(400, f"both {rid}{STREAM_EXT} and {rid}{BATCH_EXT} are in "
                           f"{self.dir}: remove one")
        if rid in self.recorders or rid in self.running:
            raise APIError(400, f"recording {rid} is still running")
        recording = self._from_file(found[0])
        assert recording is not None
        self.recordings[rid] = recording
        await self._save(recording)
        return recording

    # -- making recordings -------------------------------------------------------------------
    def _new(self, rid: str, kind: str) -> Recording:
        if rid in self.recordings:
            raise APIError(500, "recording already exists")
        ext = STREAM_EXT if kind == "stream" else BATCH_EXT
        return Recording(rid, kind, str(self.dir / (rid + ext)), date=now_text())

    def _task(self, task_id: str) -> Any:
        task = self.tasks.tasks.get(task_id)
        if task is None:
            raise APIError(404, "no task exists")
        try:
            return task, self.tasks.evaluate(task)
        except KapaError as exc:
            raise APIError(404, str(exc)) from None

    @staticmethod
    def _id(options: dict[str, Any]) -> str:
        rid = options["id"] or str(uuid.uuid4())
        if not REPLAY_ID.fullmatch(rid):
            raise _id_error("recording", rid)
        return rid

    async def create_stream(self, body: bytes) -> Recording:
        options = decode_options(body, RECORD_STREAM_OPTIONS, "RecordStreamOptions")
        rid = self._id(options)
        task, evaluated = self._task(options["task"])
        recording = self._new(rid, "stream")
        self.recordings[rid] = recording
        await self._save(recording)
        answer = dataclasses.replace(recording)
        names = [getattr(n, "measurement", "") for n in evaluated.pipeline.nodes
                 if n.kind == "from"]
        # Kapacitor forks the stream by (db, rp, measurement) of the task's from()
        # nodes: one without a measurement takes them all, a task without from()
        # (a batch task) none.
        measurements = None if "" in names else frozenset(names)
        try:
            recorder = _StreamRecorder(self, recording, options["stop"], task.dbrps,
                                       measurements)
        except OSError as exc:
            await self.finish(recording, f"failed to create recording file: {exc}")
            return answer
        self.recorders[rid] = recorder
        self.stream.subscribe(recorder)
        return answer

    async def create_batch(self, body: bytes) -> Recording:
        options = decode_options(body, RECORD_BATCH_OPTIONS, "RecordBatchOptions")
        rid = self._id(options)
        if options["start"] == GO_ZERO_TIME:
            raise APIError(400, "must provide start time")
        stop = options["stop"] if options["stop"] != GO_ZERO_TIME else time.time_ns()
        task, evaluated = self._task(options["task"])
        recording = self._new(rid, "batch")
        self.recordings[rid] = recording
        await self._save(recording)
        answer = dataclasses.replace(recording)
        self._start(recording, self._record_batch(recording, task, evaluated.pipeline,
                                                  options["start"], stop))
        return answer

    async def create_query(self, body: bytes) -> Recording:
        options = decode_options(body, RECORD_QUERY_OPTIONS, "RecordQueryOptions")
        rid = self._id(options)
        if not options["query"]:
            raise APIError(400, "must provide query")
        kind = options["type"]
        recording = self._new(rid, kind if kind in ("stream", "batch") else "stream")
        self.recordings[rid] = recording
        await self._save(recording)
        answer = dataclasses.replace(recording)
        self._start(recording, self._record_query(recording, options["query"], kind,
                                                  options["cluster"]))
        return answer

    def _start(self, recording: Recording, work: Any) -> None:
        scope = trio.CancelScope()
        self.running[recording.id] = scope

        async def run() -> None:
            error = ""
            with scope:
                try:
                    await work
                except (ReplayFailed, RecordingFileError, OSError) as exc:
                    error = str(exc)
                except Exception as exc:  # a broken recording must not stop the service
                    error = f"{type(exc).__name__}: {exc}"
                    self.log.error("recording failed", recording=recording.id, err=error)
            self.running.pop(recording.id, None)
            if scope.cancelled_caught:
                return
            await self.finish(recording, error)

        self.spawn(run())

    async def _record_batch(self, recording: Recording, task: Any, pipeline: Any,
                            start: int, stop: int) -> None:
        if task.type != "batch":  # Kapacitor's ExecutingTask.BatchQueries refuses it
            raise ReplayFailed("wrong task type")
        holder = Replay(f"recording-{recording.id}", task.id)
        try:
            run = ReplayRun(holder, task, pipeline, self.context(), start, stop, self.log)
        except (KapaError, ValueError) as exc:
            raise ReplayFailed(str(exc)) from None
        try:
            collectors = run.collectors
            batches: dict[int, list[Batch]] = {id(n): [] for n in collectors}

            async def keep(node: QueryNode, batch: Batch) -> None:
                batches[id(node)].append(batch)

            await run.query_all(keep)
        finally:
            run.close()
        sources = [batches[id(n)] for n in collectors]
        await trio.to_thread.run_sync(write_batches, recording.path, sources)

    async def _record_query(self, recording: Recording, query: str, kind: str,
                            cluster: str) -> None:
        if kind not in ("stream", "batch"):
            raise ReplayFailed(f"unsupported recording type {kind or 'invalid'}")
        # Kapacitor opens the file as the query starts: a failed query leaves it empty.
        Path(recording.path).touch()
        dbrp, results = await run_recorded_query(self.context(), query, cluster)
        for series_list in results:
            for series in series_list:
                if "time" not in series.columns:
                    raise ReplayFailed("unexpected time value: <nil>")
        if kind == "stream":
            await trio.to_thread.run_sync(write_stream, recording.path,
                                          answer_points(dbrp, results))
        else:
            await trio.to_thread.run_sync(write_batches, recording.path,
                                          [answer_batches(results)])

    async def finish(self, recording: Recording, error: str) -> None:
        if self.recordings.get(recording.id) is not recording:
            return  # deleted meanwhile
        recording.status = "failed" if error else "finished"
        recording.error = error
        recording.date = now_text()
        recording.progress = 1.0
        recording.size = _size(recording.path)
        with trio.CancelScope(shield=True):
            await self._save(recording)

    async def _save(self, recording: Recording) -> None:
        await self.store.aput_json(RECORDINGS, recording.id, recording.to_json())

    # -- reading and deleting ----------------------------------------------------------------
    def get(self, rid: str) -> Recording:
        recording = self.recordings.get(rid)
        if recording is None:
            raise APIError(500, "error finding recording: no recording exists")
        return recording

    def list(self, pattern: str = "", offset: int = 0, limit: int = 100) -> list[Recording]:
        """Newest first, paged as Kapacitor's store pages (see the replays' list)."""
        ordered = sorted(self.recordings.values(), key=lambda r: (r.date[:19], r.id),
                         reverse=True)
        if limit < 0:
            return ordered
        size = min(offset + limit, len(ordered)) - offset
        if size <= 0:
            return []
        matching = set(filter_names([r.id for r in ordered], pattern))
        chosen = [r for r in ordered if r.id in matching]
        return chosen[max(offset, 0):][:size]

    async def delete(self, rid: str) -> None:
        recording = self.recordings.pop(rid, None)
        if recording is None:
            return
        recorder = self.recorders.pop(rid, None)
        if recorder is not None and recorder.writer is not None:
            recorder.writer.close()
            recorder.writer = None
            self.stream.unsubscribe(recorder)
        scope = self.running.pop(rid, None)
        if scope is not None:
            scope.cancel()
        await self.store.adelete(RECORDINGS, rid)
        try:
            os.remove(recording.path)
        except OSError as exc:
            # Kapacitor reports a file that is not there too (its recording is gone).
            reason = (exc.strerror or str(exc)).lower()
            raise APIError(500, f"remove {recording.path}: {reason}") from None


# -- replays of recordings and queries -------------------------------------------------------
class _FedRun(ReplayRun):
    """A replay whose data come from a file or a query instead of the task's queries."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = [getattr(n, "measurement", "") for n in self.pipeline.nodes
                 if n.kind == "from"]
        self.measurements = None if "" in names else frozenset(names)
        self.dbrps = {tuple(d) for d in self.task.dbrps}

    async def _feed_points(self, points: Any) -> None:
        """Points through the task's stream, Kapacitor's replayStreamFromChan: times
        moved (unless recording-time) so that the first lands on the replay's start."""
        source = self.nodes[0]
        children = source.children
        real = self.replay.clock == "real"
        keep = self.replay.recording_time
        diff = None
        names, dbrps = self.measurements, self.dbrps
        for count, p in enumerate(points):
            if count % 1000 == 999:
                await trio.lowlevel.checkpoint()
            if diff is None:
                diff = self.started - p.time
            moved = p.time + diff
            if not keep:
                p = Point(p.name, p.tags, p.fields, moved, p.database, p.retention_policy)
            if real:
                delay = (moved - time.time_ns()) / S
                if delay > 0:
                    await trio.sleep(delay)
            if (p.database, p.retention_policy) not in dbrps or (
                    names is not None and p.name not in names):
                continue
            source.collected += 1
            source.emitted += 1
            for child in children:
                child.receive_point(p)
            if self.stopped is not None:
                return

    async def _feed_sources(self, sources: list[list[Batch]]) -> None:
        """Batches of each source to the query node of the same rank; sources are
        interleaved by the time of their batches' last points."""
        collectors = self.collectors
        if len(sources) != len(collectors):
            raise ReplayFailed(f"unexpected number of batch collectors. exp "
                               f"{len(sources)} got {len(collectors)}")
        real = self.replay.clock == "real"
        states = [{"diff": 0, "first": 0, "tmax": 0} for _ in sources]
        positions = [0] * len(sources)
        count = 0
        while True:
            best, best_time = -1, 0
            for i, batches in enumerate(sources):
                if positions[i] < len(batches):
                    b = batches[positions[i]]
                    state = states[i]
                    diff = state["diff"] if state["first"] else self.started - b.points[0].time
                    t = b.points[-1].time + diff
                    if best < 0 or t < best_time:
                        best, best_time = i, t
            if best < 0:
                return
            batch = sources[best][positions[best]]
            positions[best] += 1
            count += 1
            if count % 50 == 0:
                await trio.lowlevel.checkpoint()
            await self._deliver(collectors[best], batch, states[best], real, self.started)
            if self.stopped is not None:
                return


class RecordingReplayRun(_FedRun):
    """``POST /replays``: a recording through the task."""

    def __init__(self, *args: Any, recording: Recording, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recording = recording

    async def _feed(self) -> None:
        path = self.recording.path
        if self.task.type == "stream":
            try:
                # a large file is read off the event loop
                points = await trio.to_thread.run_sync(lambda: list(read_stream(path)))
            except FileNotFoundError as exc:
                raise ReplayFailed(f"data source open: open {path}: {cast(str, exc.strerror).lower()}"
                                   ) from None
            except RecordingOpenError as exc:
                raise ReplayFailed(f"data source open: {exc}") from None
            except RecordingFileError as exc:
                raise ReplayFailed(str(exc)) from None
            await self._feed_points(points)
        else:
            try:
                sources = await trio.to_thread.run_sync(read_batches, path)
            except FileNotFoundError as exc:
                raise ReplayFailed(f"data source open: open {path}: {cast(str, exc.strerror).lower()}"
                                   ) from None
            except RecordingOpenError as exc:
                raise ReplayFailed(f"data source open: {exc}") from None
            except RecordingFileError as exc:
                raise ReplayFailed(str(exc)) from None
            await self._feed_sources(sources)


class QueryReplayRun(_FedRun):
    """``POST /replays/query``: the answer of a query through the task, unsaved."""

    def __init__(self, *args: Any, query: str, cluster: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.query = query
        self.cluster = cluster

    async def _feed(self) -> None:
        if self.task.type == "batch" and len(self.collectors) != 1:
            raise ReplayFailed(f"unexpected number of batch collectors. exp 1 got "
                               f"{len(self.collectors)}")
        dbrp, results = await run_recorded_query(self.context, self.query, self.cluster)
        if self.task.type == "stream":
            await self._feed_points(answer_points(dbrp, results))
        else:
            await self._feed_sources([[b for b in answer_batches(results) if b.points]])

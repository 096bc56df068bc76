"""The task master: runs enabled tasks, each fed through one bounded ingest channel.

The stream router hands every write to :meth:`RunningTask.deliver`, which only does a
non-blocking send: a task that cannot keep up drops the write and counts the dropped
points (``points_dropped`` in its stats) instead of stalling the writer or other tasks.
Each task's trio task takes writes off its channel and pushes the points through its
synchronous nodes, yielding to the event loop every ``CHUNK`` points.
"""

from __future__ import annotations

import dataclasses
import functools
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio
import trio.lowlevel

from kapa_core.engine.build import build_nodes
from kapa_core.engine.node import DEFAULT_TIMING, Node, TaskStopped, Timing
from kapa_core.engine.nodes.basic import FromNode
from kapa_core.engine.nodes.enrich import SideloadSources
from kapa_core.engine.nodes.io import NodeContext
from kapa_core.engine.nodes.output import HTTPOutNode
from kapa_core.engine.snapshots import SNAPSHOT_TIMEOUT, Snapshots
from kapa_core.logs import Logger
from kapa_core.pipeline.pipeline import Pipeline

#: Writes (not points) a task's ingest channel holds before it drops.
CHANNEL_CAPACITY = 1000
#: Points processed between two checkpoints of the event loop.
CHUNK = 2000
#: Seconds a task stopped by a node's error gives its nodes to send what they hold.
DRAIN_TIMEOUT = 2.0


async def close_senders(drained: list[tuple[Node, trio.Event]]) -> None:
    """Close the queue of each node that sends (httpPost...) and wait for its task."""
    for node, done in drained:
        send = getattr(node, "send", None)
        if isinstance(send, trio.MemorySendChannel):
            send.close()
            await done.wait()


_E = TypeVar("_E", bound=BaseException)


def _first(group: BaseExceptionGroup[_E]) -> _E:
    """The first exception of a (nested) exception group."""
    exc: _E | BaseExceptionGroup[_E] = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


class RunningTask:
    def __init__(self, task_id: str, pipeline: Pipeline, dbrps: list[tuple[str, str]],
                 log: Logger, context: NodeContext | None = None) -> None:
        self.id = task_id
        self.pipeline = pipeline
        self.dbrps = set(dbrps)
        self.log = log.with_(task=task_id)
        context = dataclasses.replace(context or NodeContext(), task_id=task_id)
        self.nodes: list[Node] = build_nodes(pipeline, self.log, context)
        self.source = self.nodes[0]
        # Like Kapacitor, a task is only handed the measurements its from() nodes name;
        # one from() without a measurement takes them all (None: no filter).
        names = [getattr(n, "measurement", "") for n in pipeline.nodes if n.kind == "from"]
        self.measurements = None if not names or "" in names else frozenset(names)
        if self.measurements is not None and len(self.measurements) == 1:
            for node in self.nodes:  # deliver() keeps their one measurement only
                if isinstance(node, FromNode):
                    node.name_checked = True
        self.send, self.receive = trio.open_memory_channel[list[Any]](CHANNEL_CAPACITY)
        self.points_dropped = 0
        self.points_received = 0
        #: Points queued on the channel or in the chunk being processed (see
        #: ``StreamRouter.backlog``).
        self.backlog = 0
        self.started = time.monotonic()
        self.scope: trio.CancelScope | None = None
        self.error = ""
        self.done = trio.Event()
        self._consuming: trio.CancelScope | None = None
        #: Called once when the task ends by itself (a node's error), at once.
        self.on_stop: Callable[[], None] | None = None
        self.detached = False  # set by the master when it let go of the ended task
        #: when the task was enabled (seconds since the epoch; None: unknown)
        self.since: float | None = None

    # -- the router's consumer interface ----------------------------------------------------
    def wants(self, database: str, retention_policy: str) -> bool:
        # Batch tasks are fed by their queries, never by writes (as in Kapacitor).
        return (self.pipeline.task_type != "batch"
                and (database, retention_policy) in self.dbrps)

    def deliver(self, points: list[Any], present: frozenset[str] | None = None) -> None:
        """Queue the points of a write this task's from() nodes may want (``present``:
        the write's measurements, when the router counted them)."""
        names = self.measurements
        if names is not None and (present is None or not present <= names):
            if present is not None and present.isdisjoint(names):
                return
            points = [p for p in points if p.name in names]
            if not points:
                return
        try:
            self.send.send_nowait(points)
            self.backlog += len(points)
        except trio.WouldBlock:
            self.points_dropped += len(points)
            if self.points_dropped == len(points) or self.points_dropped % 100_000 < len(
                    points):
                self.log.error("task ingest channel full: dropping points",
                               dropped=self.points_dropped)

    # -- running ----------------------------------------------------------------------------
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        with trio.CancelScope() as scope:
            self.scope = scope
            try:
                async with trio.open_nursery() as io_tasks:
                    drained = []
                    for node in self.nodes:
                        run_io = getattr(node, "run_io", None)
                        if run_io is not None:
                            done = trio.Event()
                            drained.append((node, done))
                            io_tasks.start_soon(self._run_io, run_io, done)
                    task_status.started()
                    with trio.CancelScope() as self._consuming:
                        if self.error:  # a node's own task stopped it already
                            self._consuming.cancel()
                        try:
                            await self._consume()
                        except TaskStopped as exc:
                            self._stopped(exc)
                    # Only a node's error ends the consumer: what the task's nodes
                    # already handed to their I/O goes out, then the task stops.
                    await self._drain(drained)
                    io_tasks.cancel_scope.cancel()
            except* TaskStopped as group:  # raised where no node could catch it
                self._stopped(_first(group))
            except* Exception as group:  # one broken task must not stop the others
                first = _first(group)
                if not self.error:
                    self.error = f"{type(first).__name__}: {first}"
                    self.log.error("task stopped with an error", err=self.error)
                    if self.on_stop is not None:
                        self.on_stop()
            finally:
                for node in self.nodes:
                    node.stop()
                self.done.set()

    async def _run_io(self, run_io: Any, done: trio.Event) -> None:
        """A node's own trio task (timers, queries, outbound I/O): what it emits can stop
        the task as well."""
        try:
            await run_io()
        except TaskStopped as exc:
            self._stopped(exc)
        finally:
            done.set()

    def _stopped(self, exc: TaskStopped) -> None:
        """A node stopped the task (Kapacitor's ``<node>: <error>``): the first error is
        kept, the consumer ends; no write reaches the nodes any more."""
        if not self.error:
            self.error = str(exc)
            self.log.error("task finished with error", err=self.error)
            if self.on_stop is not None:
                self.on_stop()  # no longer executing, even while its I/O drains
        if self._consuming is not None:
            self._consuming.cancel()

    async def _drain(self, drained: list[tuple[Node, trio.Event]]) -> None:
        """Let the nodes that send (httpPost...) send what they hold: close their queues,
        wait a moment for their tasks to end."""
        with trio.move_on_after(DRAIN_TIMEOUT):
            await close_senders(drained)

    async def _consume(self) -> None:
        # The source node only passes points on: count them in bulk and hand each chunk
        # straight to its children (see "Runs of points" in node.py). A write goes through
        # the script's first branch, then the next: in Kapacitor each branch is a
        # goroutine fed by its own buffered edge and the first one usually drains a
        # write before the next gets going, which decides the order messages of
        # several branches meet in a join (the order of its .on() series).
        source = self.source
        children = source.children
        async for points in self.receive:
            self.points_received += len(points)
            for start in range(0, len(points), CHUNK):
                chunk = points[start:start + CHUNK] if len(points) > CHUNK else points
                source.collected += len(chunk)
                source.emitted += len(chunk)
                try:
                    for child in children:
                        child.receive_points(chunk)
                finally:
                    self.backlog -= len(chunk)
                if len(points) > CHUNK:
                    await trio.lowlevel.checkpoint()

    async def stop(self) -> None:
        if self.scope is not None:
            self.scope.cancel()
        await self.done.wait()

    # -- state ------------------------------------------------------------------------------
    def has_state(self) -> bool:
        """Whether a node can be asked for a snapshot (a UDF node)."""
        return any(hasattr(node, "snapshot") for node in self.nodes)

    async def snapshot(self) -> dict[str, bytes]:
        """Every node's state by node name (empty for nodes without state)."""
        out: dict[str, bytes] = {}
        for node in self.nodes:
            take = getattr(node, "snapshot", None)
            out[node.name] = await take() if take is not None else b""
        return out

    def restore(self, snapshot: dict[str, bytes]) -> bool:
        """Give each node its saved state, before any data; as Kapacitor, only when the
        snapshot names every node of the task (else the pipeline changed: False)."""
        if any(node.name not in snapshot for node in self.nodes):
            return False
        for node in self.nodes:
            data = snapshot[node.name]
            give = getattr(node, "restore", None)
            if data and give is not None:
                give(data)
        return True

    # -- views ------------------------------------------------------------------------------
    def http_out(self, endpoint: str) -> HTTPOutNode | None:
        for node in self.nodes:
            if isinstance(node, HTTPOutNode) and node.endpoint == endpoint:
                return node
        return None

    def node_stats(self) -> dict[str, dict[str, Any]]:
        return {node.name: node.stats() for node in self.nodes}

    def throughput(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.points_received / elapsed if elapsed > 0 else 0.0


class TaskMaster:
    """Starts and stops running tasks inside the daemon's nursery.

    A task that ends by itself (a node's error, see :class:`TaskStopped`) is no longer
    executing: it leaves the master and the router, and ``on_task_error`` (set by the
    task service, which keeps the error with the task) hears its error.

    The master owns what its tasks share: ``timing`` (how nodes time themselves, the
    daemon's [stats] timing settings) and ``sideloads`` (the open sideload sources). A
    ``context`` the daemon sets carries them to the nodes (see :meth:`node_context`)."""

    def __init__(self, router: Any, log: Logger, context: NodeContext | None = None, *,
                 timing: Timing = DEFAULT_TIMING) -> None:
        self.router = router
        self.log = log
        self.timing = timing
        self.sideloads = SideloadSources()
        self.context = context or self.node_context(write_points=router.write)
        self.tasks: dict[str, RunningTask] = {}
        self.on_task_error: Callable[[str, str], Awaitable[None]] | None = None
        #: Where task snapshots are kept (set by the task service); None: no snapshots.
        self.snapshots: Snapshots | None = None
        self._nursery: trio.Nursery | None = None

    def node_context(self, **values: Any) -> NodeContext:
        """A node context with ``values`` and this master's timing and sideload sources."""
        return NodeContext(**values, timing=self.timing, sideloads=self.sideloads)

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    async def start(self, task_id: str, pipeline: Pipeline,
                    dbrps: list[tuple[str, str]], *, since: float | None = None
                    ) -> RunningTask:
        """Start the task (again); ``since``: when it was enabled (seconds since the
        epoch), for a router that reads the points written from then on (a cluster's)."""
        assert self._nursery is not None, "the task master is not running"
        await self.stop(task_id)
        running = RunningTask(task_id, pipeline, dbrps, self.log, self.context)
        running.since = since
        running.on_stop = functools.partial(self._detach, running)
        snapshots = self.snapshots
        if snapshots is not None and running.has_state():
            saved = await snapshots.load(task_id)
            if saved is not None and not running.restore(saved):
                self.log.debug("task pipeline changed not using snapshot", task=task_id)
        self.tasks[task_id] = running  # before it runs: it may end at once
        try:
            await self._nursery.start(self._run, running)
        except BaseException:
            if self.tasks.get(task_id) is running:
                del self.tasks[task_id]
            raise
        if self.tasks.get(task_id) is running:
            self.router.subscribe(running)
            self.log.info("started task", task=task_id)
            if snapshots is not None and snapshots.interval > 0 and running.has_state():
                self._nursery.start_soon(self._snapshotter, running, snapshots)
        return running

    async def _snapshotter(self, running: RunningTask, snapshots: Snapshots) -> None:
        """Snapshot ``running`` every interval until it ends, the first time after a
        random part of the interval (Kapacitor's splay)."""
        delay = random.random() * snapshots.interval
        while True:
            with trio.move_on_after(delay) as waiting:
                await running.done.wait()
            if not waiting.cancelled_caught:
                return  # the task ended
            await self._snapshot(running, snapshots)
            delay = snapshots.interval

    async def _snapshot(self, running: RunningTask, snapshots: Snapshots) -> None:
        try:
            with trio.fail_after(SNAPSHOT_TIMEOUT):
                nodes = await running.snapshot()
            if await snapshots.save(running.id, nodes):
                self.log.debug("saved task snapshot", task=running.id)
        except trio.TooSlowError:
            self.log.error("failed to snapshot task", task=running.id,
                           err="no answer within the timeout")
        except Exception as exc:  # a failing snapshot never stops the task
            self.log.error("failed to snapshot task", task=running.id,
                           err=str(exc) or type(exc).__name__)

    async def _run(self, running: RunningTask, *,
                   task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await running.run(task_status=task_status)
        if running.detached:  # else stopped by the master (disabled, deleted, restarted)
            self.log.info("stopped task", task=running.id)

    def _detach(self, running: RunningTask) -> None:
        """``running`` ended by itself: it is no longer the task's running instance."""
        if self.tasks.get(running.id) is running:
            del self.tasks[running.id]
            self.router.unsubscribe(running)
            running.detached = True
            if self.on_task_error is not None and self._nursery is not None:
                self._nursery.start_soon(self.on_task_error, running.id, running.error)

    async def stop(self, task_id: str) -> None:
        running = self.tasks.pop(task_id, None)
        if running is None:
            return
        self.router.unsubscribe(running)
        snapshots = self.snapshots
        if snapshots is not None and running.has_state() and not running.done.is_set():
            await self._snapshot(running, snapshots)  # its state at the stop, for later
        await running.stop()
        self.log.info("stopped task", task=task_id)

    async def snapshot_all(self) -> None:
        """Save a snapshot of every running task with state (the daemon stopping)."""
        if self.snapshots is None:
            return
        for running in list(self.tasks.values()):
            if running.has_state() and not running.done.is_set():
                await self._snapshot(running, self.snapshots)

    def get(self, task_id: str) -> RunningTask | None:
        return self.tasks.get(task_id)

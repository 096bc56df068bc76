"""The runtime of ``@name()``: data in, through the function's session, data out.

The node hands what it receives to the session with plain calls (a stream point is
``point``; a batch is ``begin_batch``, ``point`` per point, ``end_batch``) and forwards what
the session sends to its output to the children, rebuilding batches from begin/point/end.
A session may also answer later, from a trio task it starts through its context (a
process or socket UDF): those tasks run in the node's own I/O task for as long as the
task runs. A :class:`UDFError` (from a call or from such a task) stops the task with the
node's name and the message, as a failing UDF does in Kapacitor; any other exception from
a data call is one error of the node.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from kapa_core.engine.node import Node, TaskStopped
from kapa_core.engine.nodes.io import NodeContext
from kapa_core.logs import Logger
from kapa_core.models.batch import Batch, BatchPoint, group_id
from kapa_core.models.point import Point
from kapa_core.pipeline.udf import UDFSpec
from kapa_core.udf import BeginBatch, EdgeType, EndBatch, UDFError, UDFNodeContext, UDFSession


class _Output:
    """The session's output: points and batches go on to the node's children."""

    __slots__ = ("_batch", "_node", "_provides")

    def __init__(self, node: UDFNode, provides: EdgeType) -> None:
        self._node = node
        self._provides = provides
        self._batch: Batch | None = None

    def point(self, p: Point) -> None:
        batch = self._batch
        if batch is not None:
            batch.points.append(BatchPoint(p.time, p.fields, p.tags))
        elif self._provides is EdgeType.STREAM:
            self._node.emit_point(p)
        else:
            raise UDFError("the UDF sent a point outside a batch, but it provides batches")

    def begin_batch(self, begin: BeginBatch) -> None:
        if self._provides is not EdgeType.BATCH:
            raise UDFError("the UDF sent a batch, but it provides a stream")
        if self._batch is not None:
            raise UDFError(f"the UDF began a batch of {begin.name!r} before ending the "
                           f"batch of {self._batch.name!r}")
        self._batch = Batch(begin.name, begin.group, dict(begin.tags), begin.dims,
                            begin.by_name, 0, [])

    def end_batch(self, end: EndBatch) -> None:
        batch = self._batch
        if batch is None:
            raise UDFError("the UDF ended a batch it did not begin")
        self._batch = None
        # As Kapacitor: the batch that goes on is the end's (its name and tags, the
        # tags' names as its dimensions, its tmax); only ``by_name`` comes from the begin.
        tags = dict(end.tags)
        dims = tuple(sorted(tags))
        batch.name = end.name
        batch.tags = tags
        batch.dims = dims
        batch.group = group_id(end.name, tags, dims, batch.by_name)
        batch.tmax = end.tmax
        self._node.emit_batch(batch)


class UDFNode(Node):
    def __init__(self, spec: UDFSpec, log: Logger, ctx: NodeContext) -> None:
        super().__init__(spec, log)
        self.udf_name = spec.udf_name
        self._pending: list[Callable[[], Awaitable[None]]] = []
        self._nursery: trio.Nursery | None = None
        self._failure: TaskStopped | None = None
        self._closed = False
        context = UDFNodeContext(task_id=ctx.task_id, node_id=self.name,
                                 logger=self.log.with_(udf=spec.udf_name),
                                 output=_Output(self, spec.function.info.provides),
                                 start_soon=self._start_soon)
        try:
            self.session: UDFSession = spec.function.function.open(spec.options, context)
        except Exception as exc:
            raise ValueError(f"failed to open UDF {spec.udf_name}: "
                             f"{str(exc) or type(exc).__name__}") from None

    # -- data in ------------------------------------------------------------------------
    def point(self, p: Point) -> None:
        try:
            self.session.point(p)
        except UDFError as exc:
            raise self.stop_task(str(exc)) from None

    def batch(self, b: Batch) -> None:
        # As Kapacitor sends a batch: the begin has the name, group, tags and byName; a
        # point only its time, tags, fields and the group; the end byName false.
        session = self.session
        group = b.group
        try:
            session.begin_batch(BeginBatch(b.name, group, b.tags, b.dims, b.by_name,
                                           len(b.points)))
            for bp in b.points:
                session.point(Point("", bp.tags, bp.fields, bp.time, "", "", group))
            session.end_batch(EndBatch(b.name, group, b.tags, b.tmax, b.dims, False))
        except UDFError as exc:
            raise self.stop_task(str(exc)) from None

    # -- state --------------------------------------------------------------------------
    async def snapshot(self) -> bytes:
        """The session's state, to be saved with the task."""
        return await self.session.snapshot()

    def restore(self, data: bytes) -> None:
        """Give the session its saved state, before any data."""
        self.session.restore(data)

    # -- the session's own tasks --------------------------------------------------------
    def _start_soon(self, fn: Callable[[], Awaitable[None]]) -> None:
        if self._nursery is None:
            self._pending.append(fn)  # the task has not started running yet
        else:
            self._nursery.start_soon(self._guard, fn)

    async def _guard(self, fn: Callable[[], Awaitable[None]]) -> None:
        try:
            await fn()
        except UDFError as exc:
            self._fail(str(exc))
        except Exception as exc:
            self._fail(f"{type(exc).__name__}: {exc}")

    def _fail(self, message: str) -> None:
        if self._failure is None:
            self._failure = self.stop_task(message)
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def run_io(self) -> None:
        """Runs the tasks the session starts while the task runs; a task's UDFError
        stops the task."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            pending, self._pending = self._pending, []
            for fn in pending:
                nursery.start_soon(self._guard, fn)
            await trio.sleep_forever()
        if self._failure is not None:
            raise self._failure

    def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.session.close()
        except Exception as exc:
            self.log.error("failed to close UDF", udf=self.udf_name,
                           err=str(exc) or type(exc).__name__)

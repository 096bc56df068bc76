"""The stream router of a cluster member: every accepted point goes through JetStream.

It stands where :class:`kapa_core.engine.router.StreamRouter` stands in a single daemon
(the write endpoint, input listeners, the stats stream and ``kapacitorLoopback`` write
into it; the task master subscribes its running tasks to it), with two differences
(docs/cluster.md, "Ingest"):

- :meth:`write` queues the points for publishing and returns a :class:`Ticket`; the
  points are published in order, one message per database, retention policy and
  measurement of the write, by one publisher task, which sends whatever has queued up
  together. The write endpoint awaits its tickets before it
  answers ``204``: a ticket is done when JetStream has stored every message of it, and
  fails (a ``500``) when it could not within ``publish-timeout``. Every try of one
  message carries the same message ID, so a try whose acknowledgement was lost is not
  stored twice (JetStream's duplicate window).
- a subscribed task is fed from the stream, not from the writes: one durable pull
  consumer per database and retention policy of the task, named after the task, reads
  in stream order from where the task last acknowledged. A batch of messages is
  acknowledged once the task has processed every point of it, so the points of a member
  that dies are read again by the next run of the task, never lost.

A task's consumers keep their position on the servers: a task stopped and started again,
here or on a restarted daemon, resumes after the last acknowledged message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from kapa_core.cluster import ClusterError, codec
from kapa_core.logs import Logger
from kapa_core.models.point import Point

#: Messages fetched at once by a task's consumer, and how long a fetch waits for one.
FETCH_BATCH = 64
FETCH_WAIT = 1.0
#: Seconds before a message fetched and not acknowledged is delivered again.
ACK_WAIT = 30.0
#: Messages waiting to be published before writes are refused.
QUEUE_POINTS = 200_000
#: Messages published together at most (one round trip for all).
PUBLISH_BATCH = 256


class Feedable(Protocol):
    """A running task as the router feeds it (:class:`kapa_core.engine.task_master.RunningTask`)."""

    id: str
    backlog: int
    done: trio.Event

    def wants(self, database: str, retention_policy: str) -> bool: ...

    def deliver(self, points: list[Any], present: frozenset[str] | None = None) -> None: ...


@dataclass
class Ticket:
    """The publishing of one write: done once JetStream stored all of it."""

    pending: int = 0
    error: str = ""
    done: trio.Event = field(default_factory=trio.Event)

    def _finished(self, error: str = "") -> None:
        if error and not self.error:
            self.error = error
        self.pending -= 1
        if self.pending <= 0 or self.error:
            self.done.set()

    async def wait(self) -> None:
        """Return once stored; ClusterError when it could not be."""
        if self.pending > 0:
            await self.done.wait()
        if self.error:
            raise ClusterError(self.error)


class ClusterRouter:
    """``bridge``: a connected :class:`kapa_core.cluster.bridge.NatsBridge` (given by
    :meth:`open` once the daemon has connected); ``cluster``: the cluster's name."""

    def __init__(self, cluster: str, *, publish_timeout: float, replicas: int,
                 retention: float, log: Logger | None = None) -> None:
        self.cluster = cluster
        self.stream = f"{cluster}_points"
        self.publish_timeout = publish_timeout
        self.replicas = replicas
        self.retention = retention
        self.log = log or Logger("cluster")
        self.bridge: Any = None
        self._nursery: trio.Nursery | None = None
        self._send, self._receive = trio.open_memory_channel[tuple[str, bytes, Ticket]](
            QUEUE_POINTS)
        self._feeds: dict[int, trio.CancelScope] = {}
        self._ingress: dict[tuple[str, str, str], int] = {}
        self.points_received = 0
        self.writes = 0
        self.published = 0
        #: whether a task may run here: the member's placement (it holds the task's lease)
        self.may_run: Callable[[str], bool] = lambda task_id: False

    # -- lifecycle ----------------------------------------------------------------------
    async def open(self, bridge: Any, nursery: trio.Nursery) -> None:
        """Make sure the stream exists, then start publishing."""
        self.bridge = bridge
        await bridge.ensure_stream(self.stream, [f"{self.cluster}.points.>"],
                                   replicas=self.replicas, max_age=self.retention)
        self._nursery = nursery
        nursery.start_soon(self._publisher)

    # -- ingest -------------------------------------------------------------------------
    def write(self, database: str, retention_policy: str, points: list[Point]) -> Ticket:
        """Queue ``points`` (all of ``database``.``retention_policy``) for the stream."""
        ticket = Ticket()
        if not points:
            ticket.done.set()
            return ticket
        self.writes += 1
        self.points_received += len(points)
        for p in points:
            p.database, p.retention_policy = database, retention_policy
        for run in codec.split(points):
            key = (database, retention_policy, run[0].name)
            self._ingress[key] = self._ingress.get(key, 0) + len(run)
            subject = codec.subject(self.cluster, database, retention_policy, run[0].name)
            ticket.pending += 1
            try:
                self._send.send_nowait((subject, codec.encode(run), ticket))
            except trio.WouldBlock:
                ticket._finished(f"the cluster's publishing queue is full ({QUEUE_POINTS} "
                                 "messages): JetStream is not keeping up")
        return ticket

    async def _publisher(self) -> None:
        """Publish what is queued, in order: whatever has queued up meanwhile goes out
        together (one round trip for all, :meth:`NatsBridge.publish_many`), so many
        writers share the wait for JetStream. Each message has its own ID, the same for
        every try of it: a try whose acknowledgement was lost is stored once, while two
        writes of the same points are two messages, as a single daemon sees them twice."""
        async for first in self._receive:
            batch = [first]
            while len(batch) < PUBLISH_BATCH:
                try:
                    batch.append(self._receive.receive_nowait())
                except trio.WouldBlock:
                    break
            live = [(subject, body, ticket) for subject, body, ticket in batch
                    if not ticket.error]  # a message of a write that failed: not sent
            for _subject, _body, ticket in batch:
                if ticket.error:
                    ticket._finished()
            if not live:
                continue
            try:
                results = await self.bridge.publish_many(
                    [(subject, body) for subject, body, _ in live],
                    timeout=self.publish_timeout)
            except ClusterError as exc:
                results = [exc] * len(live)
            for (subject, _body, ticket), result in zip(live, results, strict=True):
                if isinstance(result, ClusterError):
                    self.log.error("points not stored in the cluster's stream",
                                   subject=subject, err=str(result))
                    ticket._finished(str(result))
                else:
                    self.published += 1
                    ticket._finished()

    # -- the task master's side ---------------------------------------------------------
    def subscribe(self, task: Feedable) -> None:
        if self._nursery is None:
            raise ClusterError("the cluster router is not open")
        scope = self._feeds.setdefault(id(task), trio.CancelScope())
        for database, rp in sorted(getattr(task, "dbrps", ())):
            if task.wants(database, rp):  # a batch task reads its queries, not the stream
                self._nursery.start_soon(self._feed, task, database, rp, scope)

    def unsubscribe(self, task: Feedable) -> None:
        scope = self._feeds.pop(id(task), None)
        if scope is not None:
            scope.cancel()

    def consumer_name(self, task_id: str, database: str, retention_policy: str,
                      since: float | None = None) -> str:
        """The durable consumer of a task, DBRP and enablement (a NATS name: no dots or
        spaces). A task enabled again reads from its new enable time, with a new
        consumer; a task moved to another member keeps its consumer, and so its place."""
        key = f"{task_id}\0{database}\0{retention_policy}\0{since or 0:.6f}"
        digest = hashlib.blake2b(key.encode(), digest_size=8).hexdigest()
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in task_id)[:40]
        return f"{self.cluster}_task_{safe}_{digest}"

    async def _feed(self, task: Feedable, database: str, rp: str,
                    scope: trio.CancelScope) -> None:
        durable = self.consumer_name(task.id, database, rp, getattr(task, "since", None))
        with scope:
            while not task.done.is_set():
                try:
                    # a task reads what was written from when it was enabled on
                    # (a new consumer; an existing one resumes where it acknowledged)
                    consumer = await self.bridge.pull_consumer(
                        self.stream, durable, [codec.dbrp_filter(self.cluster, database, rp)],
                        ack_wait=ACK_WAIT, start_time=getattr(task, "since", None))
                    await self._consume(task, consumer)
                except ClusterError as exc:
                    self.log.error("task cannot read the cluster's stream; trying again",
                                   task=task.id, consumer=durable, err=str(exc))
                    await trio.sleep(1.0)

    async def _consume(self, task: Feedable, consumer: Any) -> None:
        while not task.done.is_set():
            messages = await consumer.fetch(FETCH_BATCH, timeout=FETCH_WAIT)
            if not messages:
                continue
            taken = []
            for message in messages:
                try:
                    points = codec.decode(message.data)
                except codec.CodecError as exc:
                    self.log.error("message dropped from the cluster's stream", task=task.id,
                                   seq=message.seq, err=str(exc))
                    await message.term()
                    continue
                taken.append(message)
                if points:
                    task.deliver(points, frozenset((points[0].name,)))
            while task.backlog > 0 and not task.done.is_set():
                await trio.sleep(0.001)  # the task's own consumer processes what it got
            if taken and not task.done.is_set():
                await consumer.ack(taken)

    # -- the StreamRouter interface the rest of the daemon uses -------------------------
    def backlog(self) -> int:
        """Nothing waits here for the tasks: writes wait for JetStream (their tickets)."""
        return 0

    async def settle(self, limit: int) -> None:
        await trio.lowlevel.checkpoint()

    def ingress(self) -> Iterable[tuple[tuple[str, str, str], int]]:
        return list(self._ingress.items())

"""The runtime node: plain synchronous objects that push data to their children.

``receive_point``/``receive_batch`` count what a node collects and catch what it raises:
an error on one point is counted and logged, the task goes on. Subclasses implement
``point(p)`` and ``batch(b)`` and call ``emit_point``/``emit_batch``.

Runs of points: a write reaches a task as a list, and along an edge where it changes
nothing, a list is handed on whole (``receive_points``/``emit_points``): one call per
run instead of two or three per point. A node that does not override ``receive_points``
takes the run point by point, exactly as before, and a node with several children sends
each point to each child in turn, so the order in which messages reach the nodes of a
branch, and meet in a join, is the one a point-by-point walk gives.

A few errors end the whole task instead, as they do in Kapacitor (where a node's run
function returns them): a node raises :class:`TaskStopped` (see :meth:`Node.stop_task`),
which no node catches; the running task stops and keeps the message as its error.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from kapa_core.logs import Logger
from kapa_core.models.batch import Batch
from kapa_core.models.point import Point
from kapa_core.pipeline.base import NodeSpec


@dataclass(frozen=True)
class Timing:
    """How nodes time themselves for ``avg_exec_time_ns`` ([stats] timing-sample-rate and
    timing-movavg-size): every ``every``-th call is timed (Kapacitor times a random
    ``rate`` fraction; every 1/rate-th call is the same share without a random draw per
    point), and the figure is the mean of the last ``window`` timings.

    Each daemon has its own (its task master's node context carries it, see
    ``kapa_core.engine.nodes.io.NodeContext``); a node built without one uses
    :data:`DEFAULT_TIMING`."""

    every: int = 10
    window: int = 1000

    @classmethod
    def from_stats(cls, sample_rate: float, movavg_size: int) -> Timing:
        """From [stats] ``timing-sample-rate`` and ``timing-movavg-size``; a rate of 0
        (or less) times nothing."""
        if sample_rate <= 0:
            every = 1 << 62  # never: collected never reaches it
        else:
            every = max(1, round(1 / min(sample_rate, 1.0)))
        return cls(every, max(1, movavg_size))


#: The timing of nodes built outside a daemon (Kapacitor's defaults: rate 0.1, 1000).
DEFAULT_TIMING = Timing()


class TaskStopped(BaseException):
    """An error that stops the task, as an error a Kapacitor node returns does: the task
    stops, its ``error`` is ``<node>: <message>`` and nothing more is emitted.

    A ``BaseException``: the ``except Exception`` that keeps one bad point from stopping a
    node (here and in the nodes' own loops) lets it through, at no cost per point."""

    def __init__(self, node: str, message: str) -> None:
        super().__init__(f"{node}: {message}")
        self.node = node
        self.message = message


#: Error logs per node are limited to this many, then one line per this many errors.
ERROR_LOG_BURST = 20


class Node:
    def __init__(self, spec: NodeSpec, log: Logger) -> None:
        self.spec = spec
        self.name = spec.name
        self.children: list[Node] = []
        self.collected = 0
        self.emitted = 0
        self.errors = 0
        self.log = log.with_(node=self.name)
        self._every = DEFAULT_TIMING.every
        self._timings: deque[int] = deque(maxlen=DEFAULT_TIMING.window)
        self._time_total = 0

    def use_timing(self, timing: Timing) -> None:
        """Time this node as ``timing`` says (its task's, set when the task is built)."""
        self._every = timing.every
        self._timings = deque(maxlen=timing.window)
        self._time_total = 0

    # -- receiving ----------------------------------------------------------------------
    def receive_point(self, p: Point) -> None:
        self.collected += 1
        if self.collected % self._every:
            try:
                self.point(p)
            except Exception as exc:  # one bad point never stops the task
                self.fail(exc)
            return
        started = time.perf_counter_ns()
        try:
            self.point(p)
        except Exception as exc:
            self.fail(exc)
        self._timing(time.perf_counter_ns() - started)

    def receive_points(self, points: list[Point]) -> None:
        """A run of points along one edge, in order. By default each is taken as
        :meth:`receive_point` takes it; nodes with a faster way override this."""
        receive = self.receive_point
        for p in points:
            receive(p)

    def _time_run(self, started: int, count: int) -> None:
        """After a run of ``count`` points (already counted in ``collected``): when the
        run holds a point that :meth:`receive_point` would have timed (every
        ``every``-th), record the run's time per point as one timing."""
        every = self._every
        if count and self.collected // every > (self.collected - count) // every:
            self._timing((time.perf_counter_ns() - started) // count)

    def receive_batch(self, b: Batch) -> None:
        self.collected += 1
        if self.collected % self._every:
            try:
                self.batch(b)
            except Exception as exc:
                self.fail(exc)
            return
        started = time.perf_counter_ns()
        try:
            self.batch(b)
        except Exception as exc:
            self.fail(exc)
        self._timing(time.perf_counter_ns() - started)

    def _timing(self, elapsed: int) -> None:
        timings = self._timings
        if len(timings) == timings.maxlen:
            self._time_total -= timings[0]
        timings.append(elapsed)
        self._time_total += elapsed

    def receive_barrier(self, group: str, t: int) -> None:
        """No data older than ``t`` will arrive for ``group`` (from a barrier node)."""
        try:
            self.barrier(group, t)
        except Exception as exc:
            self.fail(exc)
        for child in self.children:
            child.receive_barrier(group, t)

    def receive_delete(self, group: str) -> None:
        """Forget everything about ``group`` (a barrier with ``.delete(TRUE)``)."""
        self.delete_group(group)
        for child in self.children:
            child.receive_delete(group)

    def barrier(self, group: str, t: int) -> None:
        """React to a barrier; nodes that hold data per group flush here."""

    def delete_group(self, group: str) -> None:
        """Drop per-group state; nodes with such state override this."""
        for name in ("windows", "pending", "buffers", "previous", "last", "since",
                     "counts", "seen"):
            state = getattr(self, name, None)
            if isinstance(state, dict):
                state.pop(group, None)

    def point(self, p: Point) -> None:
        self.emit_point(p)

    def batch(self, b: Batch) -> None:
        self.emit_batch(b)

    # -- sending ------------------------------------------------------------------------
    def emit_point(self, p: Point) -> None:
        self.emitted += 1
        for child in self.children:
            child.receive_point(p)

    def emit_points(self, points: list[Point]) -> None:
        """Send a run of points: whole to a single child, else point by point to each
        child in turn (the order :meth:`emit_point` gives)."""
        children = self.children
        if len(children) == 1:
            self.emitted += len(points)
            children[0].receive_points(points)
            return
        for p in points:
            self.emitted += 1
            for child in children:
                child.receive_point(p)

    def emit_batch(self, b: Batch) -> None:
        self.emitted += 1
        for child in self.children:
            child.receive_batch(b)

    # -- errors and stats ---------------------------------------------------------------
    def fail(self, exc: BaseException) -> None:
        self.errors += 1
        if self.spec.quiet:
            return
        if self.errors <= ERROR_LOG_BURST or self.errors % 1000 == 0:
            self.log.error("error processing data", err=str(exc) or type(exc).__name__,
                           errors=self.errors)

    def stats(self) -> dict[str, Any]:
        """The node's statistics as Kapacitor reports them. Its ``emitted`` is the sum of
        what each outgoing edge carried: what the node sent times its number of children
        (0 for a node with none), while ``self.emitted`` is what each edge carried."""
        timed = len(self._timings)
        avg = self._time_total // timed if timed else 0
        return {"avg_exec_time_ns": avg, "collected": self.collected,
                "emitted": self.emitted * len(self.children), "errors": self.errors,
                "working_cardinality": self.cardinality(), **self.extra_stats()}

    def cardinality(self) -> int:
        return 0

    def extra_stats(self) -> dict[str, Any]:
        return {}

    def stop_task(self, message: str) -> TaskStopped:
        """The error to raise to stop the task with ``message`` (Kapacitor's words: the
        task's error becomes ``<node name>: <message>``)."""
        return TaskStopped(self.name, message)

    def stop(self) -> None:
        """Called once when the task stops."""

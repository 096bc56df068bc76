"""Runtime of ``|barrier()``, following Kapacitor's idle and periodic barriers.

Idle: when a group has had no data for ``idle`` of wall-clock time, a barrier at the
group's last data time plus ``idle`` goes downstream (and again after each further
``idle``). Periodic: every ``period`` of wall-clock time counted from the group's first
message (each group has its own ticker, as in Kapacitor), a barrier at the current time.
Points older than a group's last barrier are dropped. With ``.delete(TRUE)`` the group
is forgotten downstream after each barrier; a group deleted (here or upstream) gets a
new timer with its next message.
"""

from __future__ import annotations

import heapq
import itertools
import time

import trio

from kapa_core.engine.node import Node
from kapa_core.logs import Logger
from kapa_core.models.batch import Batch
from kapa_core.models.point import Point
from kapa_core.pipeline.nodes import BarrierSpec


class _GroupState:
    __slots__ = ("last_barrier", "last_point", "reset_at")

    def __init__(self, last_point: int) -> None:
        self.last_point = last_point
        self.last_barrier = -(2**63)
        self.reset_at = time.monotonic()


class BarrierNode(Node):
    def __init__(self, spec: BarrierSpec, log: Logger) -> None:
        super().__init__(spec, log)
        self.idle = int(spec.idle)
        self.period = int(spec.period)
        self.delete = spec.delete_group
        self.groups: dict[str, _GroupState] = {}
        self.barriers = 0
        # periodic: (next tick, sequence, group, state), one entry per live group
        self._ticks: list[tuple[float, int, str, _GroupState]] = []
        self._seq = itertools.count()

    def _new_group(self, group: str, t: int) -> _GroupState:
        state = self.groups[group] = _GroupState(t)
        if not self.idle:
            heapq.heappush(self._ticks, (state.reset_at + self.period / 1e9,
                                         next(self._seq), group, state))
        return state

    def delete_group(self, group: str) -> None:
        """A group deleted upstream stops its timer (a later message starts a new one)."""
        self.groups.pop(group, None)

    def cardinality(self) -> int:
        return len(self.groups)

    def point(self, p: Point) -> None:
        state = self.groups.get(p.group)
        if state is None:
            state = self._new_group(p.group, p.time)
        if p.time < state.last_barrier:
            return  # older than what downstream was promised
        if self.idle:
            state.last_point = p.time
            state.reset_at = time.monotonic()
        self.emit_point(p)

    def batch(self, b: Batch) -> None:
        """A batch's points older than the group's last barrier are left out; the others
        reset the idle timer."""
        state = self.groups.get(b.group)
        if state is None:
            state = self._new_group(b.group, b.tmax)
        kept = [bp for bp in b.points if bp.time >= state.last_barrier]
        if self.idle and kept:
            state.last_point = kept[-1].time
            state.reset_at = time.monotonic()
        if len(kept) != len(b.points):
            b = Batch(b.name, b.group, b.tags, b.dims, b.by_name, b.tmax, kept)
        self.emit_batch(b)

    def receive_barrier(self, group: str, t: int) -> None:
        """A barrier from upstream passes unless it is older than this group's last one;
        for an idle barrier it counts as data at its time."""
        state = self.groups.get(group)
        if state is None:
            state = self._new_group(group, t)
        if t < state.last_barrier:
            return
        if self.idle:
            state.last_point = t
            state.last_barrier = t
            state.reset_at = time.monotonic()
        for child in self.children:
            child.receive_barrier(group, t)

    async def run_io(self) -> None:
        if not self.idle:
            await self._run_periodic()
            return
        interval = self.idle / 1e9
        tick = min(interval / 4, 0.05)
        while True:
            await trio.sleep(tick)
            now = time.monotonic()
            for group, state in list(self.groups.items()):
                if now - state.reset_at < interval:
                    continue
                t = state.last_point + self.idle
                state.last_point = t
                state.reset_at = now
                state.last_barrier = t
                self._send(group, t)

    async def _run_periodic(self) -> None:
        """Each group's ticks fall every ``period`` after its first message; a tick
        missed while busy is skipped, as a Go ticker does."""
        interval = self.period / 1e9
        ticks = self._ticks
        while True:
            if not ticks:
                await trio.sleep(min(interval, 0.05))
                continue
            # A group made while sleeping ticks later than the earliest tick waited for.
            wait = ticks[0][0] - time.monotonic()
            if wait > 0:
                await trio.sleep(wait)
            now = time.monotonic()
            while ticks and ticks[0][0] <= now:
                due, _, group, state = heapq.heappop(ticks)
                if self.groups.get(group) is not state:
                    continue  # deleted since
                t = time.time_ns()
                state.last_barrier = t
                self._send(group, t)
                if self.groups.get(group) is state:
                    due += interval
                    while due <= now:
                        due += interval
                    heapq.heappush(ticks, (due, next(self._seq), group, state))

    def _send(self, group: str, t: int) -> None:
        self.barriers += 1
        for child in self.children:
            child.receive_barrier(group, t)
        if self.delete:
            self.groups.pop(group, None)
            for child in self.children:
                child.receive_delete(group)

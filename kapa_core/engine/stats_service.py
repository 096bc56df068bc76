"""The ``[stats]`` service: Kapacitor's internal statistics written into the stream.

Every ``stats-interval`` of wall-clock time it computes the statistics described in
:mod:`kapa_core.engine.statistics` and writes them as points, all stamped with the
current time, into ``database``.``retention-policy`` of ``[stats]`` (``_kapacitor``.
``autogen`` by default) through the stream router, exactly as a ``/write`` would. A task
reads them like any other data::

    dbrp "_kapacitor"."autogen"
    stream|from().measurement('ingress')|httpOut('ingress')

Like a Go ticker, a tick that comes too late (a busy event loop) is not caught up: the
next report happens at the next multiple of the interval. A failure to compute or
route the statistics is logged and counted (``failures``); the service goes on.

With ``enabled = false`` the service stays idle: nothing is written and the task
master's ``stats`` edge does not exist, as in Kapacitor, which then does not start the
service at all. ``timing-sample-rate`` and ``timing-movavg-size`` set how the daemon's
nodes time themselves (:class:`kapa_core.engine.node.Timing`, given to its task master);
with ``enabled = false`` nodes are not timed.

InfluxDB never sees these points unless a task sends them there; the default
``[[influxdb]] excluded-subscriptions`` keeps ``_kapacitor.autogen`` out of the
subscriptions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import trio

from kapa_core.config.core_sections import StatsConfig
from kapa_core.engine.statistics import GC_PAUSES, Daemon, stream_statistics
from kapa_core.logs import Logger
from kapa_core.models.duration import format_go
from kapa_core.models.point import Point


class StatsService:
    """The ``[stats]`` service of ``daemon`` (what :mod:`kapa_core.engine.statistics`
    reads of it); ``write_points(db, rp, points)`` feeds the stream."""

    def __init__(self, config: StatsConfig, *, daemon: Daemon,
                 write_points: Callable[[str, str, list[Any]], None], logger: Logger) -> None:
        self.enabled: bool = config.enabled
        self.interval_ns = int(config.stats_interval)
        self.database: str = config.database
        self.retention_policy: str = config.retention_policy
        self.daemon = daemon
        self.write = write_points
        self.log = logger
        self.points_written = 0
        self.reports = 0
        self.failures = 0

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        if not self.enabled or self.interval_ns <= 0:
            if self.enabled:
                self.log.error("stats-interval must be positive: no statistics are written",
                               interval=format_go(self.interval_ns))
            self.enabled = False
            task_status.started()
            await trio.sleep_forever()
        GC_PAUSES.install()
        self.log.info("opened service", db=self.database, rp=self.retention_policy,
                      interval=format_go(self.interval_ns))
        task_status.started()
        interval = self.interval_ns / 1e9
        next_at = trio.current_time() + interval
        while True:
            await trio.sleep_until(next_at)
            self.report()
            now = trio.current_time()
            next_at += interval
            if next_at <= now:  # late: skip the missed ticks
                next_at += ((now - next_at) // interval + 1) * interval

    def report(self) -> int:
        """Compute the statistics and write them into the stream; the points written."""
        try:
            stats = stream_statistics(self.daemon)
        except Exception as exc:  # a broken statistic must not stop the others next time
            self.failures += 1
            self.log.error("error getting stats data", err=f"{type(exc).__name__}: {exc}",
                           failures=self.failures)
            return 0
        now = time.time_ns()
        db, rp = self.database, self.retention_policy
        points = [Point(s.name, dict(s.tags), dict(s.values), now, db, rp) for s in stats]
        try:
            self.write(db, rp, points)
        except Exception as exc:
            self.failures += 1
            self.log.error("error writing statistics into the stream", db=db, rp=rp,
                           err=f"{type(exc).__name__}: {exc}", failures=self.failures)
            return 0
        self.points_written += len(points)
        self.reports += 1
        return len(points)

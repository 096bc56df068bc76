"""[stats] timing settings: which executions are timed and over how many the mean runs."""

from __future__ import annotations

from types import SimpleNamespace

from kapa_core.engine import node as node_module
from kapa_core.engine.node import Node, Timing, configure_timing
from kapa_core.logs import Logger


def make_node() -> Node:
    return Node(SimpleNamespace(name="n", quiet=False), Logger("test"))  # type: ignore[arg-type]


def test_window_and_rate(monkeypatch) -> None:
    saved = (Timing.every, Timing.window)
    try:
        configure_timing(1.0, 3)
        n = make_node()
        assert n._every == 1 and n._timings.maxlen == 3
        for cost in (100, 200, 300, 400):  # each execution takes `cost` ns
            ticks = iter((0, cost))
            monkeypatch.setattr(node_module.time, "perf_counter_ns", lambda t=ticks: next(t))
            n.receive_point(None)  # type: ignore[arg-type]
        assert n.stats()["avg_exec_time_ns"] == (200 + 300 + 400) // 3  # the last three
        configure_timing(0.25, 10)
        assert make_node()._every == 4
        configure_timing(0.0, 10)
        quiet = make_node()
        for _ in range(100):
            quiet.receive_point(None)  # type: ignore[arg-type]
        assert quiet.stats()["avg_exec_time_ns"] == 0 and quiet.collected == 100
    finally:
        Timing.every, Timing.window = saved

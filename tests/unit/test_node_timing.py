"""[stats] timing settings: which executions are timed and over how many the mean runs."""

from __future__ import annotations

from types import SimpleNamespace

from kapa_core.engine import node as node_module
from kapa_core.engine.node import DEFAULT_TIMING, Node, Timing
from kapa_core.logs import Logger


def make_node(timing: Timing | None = None) -> Node:
    node = Node(SimpleNamespace(name="n", quiet=False), Logger("test"))  # type: ignore[arg-type]
    if timing is not None:
        node.use_timing(timing)
    return node


def test_window_and_rate(monkeypatch) -> None:
    n = make_node(Timing.from_stats(1.0, 3))
    assert n._every == 1 and n._timings.maxlen == 3
    for cost in (100, 200, 300, 400):  # each execution takes `cost` ns
        ticks = iter((0, cost))
        monkeypatch.setattr(node_module.time, "perf_counter_ns", lambda t=ticks: next(t))
        n.receive_point(None)  # type: ignore[arg-type]
    assert n.stats()["avg_exec_time_ns"] == (200 + 300 + 400) // 3  # the last three
    assert make_node(Timing.from_stats(0.25, 10))._every == 4
    quiet = make_node(Timing.from_stats(0.0, 10))
    for _ in range(100):
        quiet.receive_point(None)  # type: ignore[arg-type]
    assert quiet.stats()["avg_exec_time_ns"] == 0 and quiet.collected == 100


def test_timing_is_per_node_not_shared() -> None:
    """Settings given to one node (one daemon's tasks) leave every other node alone."""
    timed = make_node(Timing.from_stats(1.0, 3))
    plain = make_node()
    assert (timed._every, timed._timings.maxlen) == (1, 3)
    assert (plain._every, plain._timings.maxlen) == (DEFAULT_TIMING.every,
                                                     DEFAULT_TIMING.window) == (10, 1000)

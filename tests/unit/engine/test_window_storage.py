"""Compact window storage (two arrays per series) against the object storage it stands
in for: the same batches, whatever the points, in every kind of time window."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kapa_core.engine.nodes import window as window_module
from kapa_core.models.batch import Batch
from kapa_core.testing import run_script

S = 1_000_000_000

WINDOWS = ["period(10s).every(10s)", "period(10s).every(3s)", "period(4s).every(10s)",
           "period(10s).every(5s).align()", "period(10s).every(5s).fillPeriod()",
           "period(7s).every(2s).align().fillPeriod()", "period(5s)"]

# a point: (seconds, host, the field set) — most are the compact case (one float field
# `v`), some are not: an int, another field, a second field, a different tag
FIELDS = st.sampled_from(["v=1.5", "v=2", "v=-0.25", "v=3i", "w=1", "v=1,w=2", "v=true"])
POINT = st.tuples(st.integers(0, 60), st.sampled_from(["a", "b"]), FIELDS,
                  st.sampled_from(["", ",dc=x"]))


def lines(points: list[tuple[int, str, str, str]]) -> str:
    return "\n".join(f"cpu,host={h}{extra} {f} {t * S}" for t, h, f, extra in points)


def batches(script: str, data: str, compact: bool) -> list[Any]:
    saved = window_module.COMPACT
    window_module.COMPACT = compact
    try:
        run = run_script(script, data)
    finally:
        window_module.COMPACT = saved
    out = []
    for b in run.outputs("window"):
        assert isinstance(b, Batch)
        out.append((b.name, b.group, b.tags, b.tmax,
                    [(p.time, p.tags, sorted((k, type(v).__name__, v)
                                             for k, v in p.fields.items()))
                     for p in b.points]))
    return out


@pytest.mark.parametrize("spec", WINDOWS)
@settings(max_examples=60, deadline=None)
@given(points=st.lists(POINT, max_size=40))
def test_compact_windows_emit_what_object_windows_emit(spec: str,
                                                        points: list[Any]) -> None:
    script = f"stream|from().measurement('cpu').groupBy('host')|window().{spec}"
    data = lines(points)
    assert batches(script, data, True) == batches(script, data, False)


def test_the_usual_series_is_kept_in_arrays() -> None:
    data = lines([(t, "a", "v=1.5", "") for t in range(5)])
    run = run_script("stream|from().groupBy('host')|window().period(1m).every(1m)", data)
    node: Any = next(n for n in run.nodes if type(n).__name__ == "WindowNode")
    (window,) = node.windows.values()
    assert window.values is not None and list(window.times) == [t * S for t in range(5)]
    assert window.window == []


def test_a_point_that_does_not_fit_turns_the_series_into_objects() -> None:
    data = lines([(0, "a", "v=1.5", ""), (1, "a", "v=2i", ""), (2, "a", "v=3", ""),
                  (11, "a", "v=4", "")])
    run = run_script("stream|from().groupBy('host')|window().period(10s).every(10s)", data)
    (batch,) = run.outputs("window")
    assert isinstance(batch, Batch)
    assert [p.fields["v"] for p in batch.points] == [1.5, 2, 3.0]
    assert [type(p.fields["v"]) for p in batch.points] == [float, int, float]

"""InfluxQL nodes (aggregates, selectors, transformations) over windows and batches."""

from __future__ import annotations

import pytest

from kapa_core.testing import run_script

S = 1_000_000_000
VALUES = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]


def series(values: list[float] = VALUES, host: str = "a") -> str:
    """One point a second from t=0, then one at 10s that closes the first window."""
    rows = [f"cpu,host={host} v={v} {i * S}" for i, v in enumerate(values)]
    return "\n".join([*rows, f"cpu,host={host} v=0 {10 * S}"])


def aggregate(call: str, values: list[float] = VALUES) -> list[object]:
    script = f"stream|from()|window().period(10s).every(10s)|{call}"
    run = run_script(script, series(values))
    name = call.split("(")[0]
    as_ = call.split(".as('")[1].rstrip("')") if ".as('" in call else name
    return run.fields(name, as_)


@pytest.mark.parametrize(("call", "expected"), [
    ("mean('v')", [sum(VALUES) / len(VALUES)]),
    ("sum('v')", [31.0]),
    ("count('v')", [8]),
    ("min('v')", [1.0]),
    ("max('v')", [9.0]),
    ("spread('v')", [8.0]),
    ("median('v')", [3.5]),
    ("first('v')", [3.0]),
    ("last('v')", [6.0]),
    ("distinct('v')", [3.0, 1.0, 4.0, 5.0, 9.0, 2.0, 6.0]),
    ("mode('v')", [1.0]),
    ("percentile('v', 50.0)", [3.0]),
    ("percentile('v', 90.0)", [6.0]),
    ("sum('v').as('total')", [31.0]),
])
def test_aggregate_over_one_window(call: str, expected: list[object]) -> None:
    assert aggregate(call) == expected


def test_stddev_is_the_sample_deviation() -> None:
    (value,) = aggregate("stddev('v')")
    mean = sum(VALUES) / len(VALUES)
    sample = (sum((v - mean) ** 2 for v in VALUES) / (len(VALUES) - 1)) ** 0.5
    assert value == pytest.approx(sample)


def test_top_and_bottom_keep_the_selected_points_with_use_point_times() -> None:
    run = run_script("stream|from()|window().period(10s).every(10s)|top(2, 'v')"
                     ".usePointTimes()", series())
    assert [(p.time // S, p.fields["top"]) for p in run.points("top")] == [(5, 9.0), (7, 6.0)]
    run = run_script("stream|from()|window().period(10s).every(10s)|bottom(2, 'v')"
                     ".usePointTimes()", series())
    assert sorted(p.fields["bottom"] for p in run.points("bottom")) == [1.0, 1.0]


def test_selector_takes_the_window_time_unless_use_point_times() -> None:
    run = run_script("stream|from()|window().period(10s).every(10s)|max('v')", series())
    (p,) = run.points("max")
    assert p.time == 10 * S
    run = run_script("stream|from()|window().period(10s).every(10s)|max('v')"
                     ".usePointTimes()", series())
    (p,) = run.points("max")
    assert p.time == 5 * S


def test_aggregate_takes_the_window_end_as_its_time() -> None:
    run = run_script("stream|from()|window().period(10s).every(10s)|mean('v')", series())
    (p,) = run.points("mean")
    assert p.time == 10 * S


def test_aggregate_per_group() -> None:
    data = series([1.0, 2.0, 3.0], "a") + "\n" + series([10.0, 20.0], "b")
    run = run_script("stream|from().groupBy('host')|window().period(10s).every(10s)"
                     "|sum('v')", data)
    got = {p.tags["host"]: p.fields["sum"] for p in run.points("sum")}
    assert got == {"a": 6.0, "b": 30.0}


def test_moving_average_over_a_stream() -> None:
    run = run_script("stream|from()|movingAverage('v', 3)",
                     "\n".join(f"cpu v={v} {i * S}" for i, v in enumerate([1, 2, 3, 4, 5])))
    assert run.fields("movingAverage", "movingAverage") == [2.0, 3.0, 4.0]


def test_cumulative_sum_over_a_stream() -> None:
    run = run_script("stream|from()|cumulativeSum('v')",
                     "\n".join(f"cpu v={v} {i * S}" for i, v in enumerate([1, 2, 3, 4])))
    assert run.fields("cumulativeSum", "cumulativeSum") == [1.0, 3.0, 6.0, 10.0]


def test_elapsed_between_points() -> None:
    run = run_script("stream|from()|elapsed('v', 1s)",
                     "cpu v=1 0\ncpu v=1 2000000000\ncpu v=1 7000000000")
    assert run.fields("elapsed", "elapsed") == [2, 5]


def test_aggregate_over_batches_of_a_batch_task() -> None:
    script = """batch|query('SELECT v FROM "db"."autogen".cpu').period(10s).every(10s)
        .groupBy('host')|sum('v')"""
    answer = "cpu,host=a v=1 0\ncpu,host=a v=2 1000000000\ncpu,host=b v=5 0"
    run = run_script(script, [answer], task_type="batch")
    got = {p.tags["host"]: p.fields["sum"] for p in run.points("sum")}
    assert got == {"a": 3.0, "b": 5.0}


def test_aggregate_of_a_missing_field_counts_an_error_per_point() -> None:
    # as Kapacitor: sum (like count) of a window with no usable point is 0
    run = run_script("stream|from()|window().period(10s).every(10s)|sum('nope')", series())
    assert run.stats("sum")["errors"] == len(VALUES)
    assert run.fields("sum", "sum") == [0.0]


def test_mean_of_a_missing_field_emits_nothing() -> None:
    run = run_script("stream|from()|window().period(10s).every(10s)|mean('nope')", series())
    assert run.stats("mean")["errors"] == len(VALUES)
    assert run.fields("mean", "mean") == []

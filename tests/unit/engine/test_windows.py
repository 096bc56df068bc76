"""Window and shift nodes, run through kapa_core.testing.run_script."""

from __future__ import annotations

from kapa_core.models.batch import Batch
from kapa_core.testing import run_script

S = 1_000_000_000


def cpu(*rows: tuple[float, int], host: str = "a") -> str:
    """Line protocol of cpu points: (value, seconds)."""
    return "\n".join(f"cpu,host={host} v={v} {t * S}" for v, t in rows)


def windows(run: object, name: str = "window") -> list[Batch]:
    out = run.outputs(name)  # type: ignore[attr-defined]
    assert all(isinstance(b, Batch) for b in out)
    return out  # type: ignore[no-any-return]


def test_tumbling_window_emits_when_a_point_passes_its_end() -> None:
    run = run_script("stream|from().measurement('cpu')|window().period(10s).every(10s)",
                     cpu((1, 0), (2, 5), (3, 10), (4, 15), (5, 21)))
    out = windows(run)
    assert [[p.fields["v"] for p in b.points] for b in out] == [[1.0, 2.0], [3.0, 4.0]]
    assert [b.tmax for b in out] == [10 * S, 20 * S]


def test_open_window_is_not_flushed_at_the_end() -> None:
    run = run_script("stream|from()|window().period(10s).every(10s)", cpu((1, 0), (2, 5)))
    assert run.outputs("window") == []
    assert run.stats("window")["collected"] == 2


def test_sliding_window_overlaps() -> None:
    run = run_script("stream|from()|window().period(10s).every(5s)",
                     cpu(*[(i, i) for i in range(0, 21)]))
    out = windows(run)
    # every 5s a window of the last 10s
    firsts = [[p.time // S for p in b.points][:1] + [b.points[-1].time // S] for b in out]
    assert firsts[:3] == [[0, 4], [0, 9], [5, 14]]
    assert [b.tmax // S for b in out] == [5, 10, 15, 20]


def test_window_per_group() -> None:
    data = cpu((1, 0), (2, 11), host="a") + "\n" + cpu((10, 1), (20, 12), host="b")
    run = run_script("stream|from().groupBy('host')|window().period(10s).every(10s)", data)
    out = windows(run)
    assert sorted((b.tags["host"], [p.fields["v"] for p in b.points]) for b in out) == [
        ("a", [1.0]), ("b", [10.0])]


def test_count_based_window() -> None:
    run = run_script("stream|from()|window().periodCount(3).everyCount(3)",
                     cpu(*[(i, i) for i in range(7)]))
    out = windows(run)
    assert [[p.fields["v"] for p in b.points] for b in out] == [[0.0, 1.0, 2.0],
                                                                [3.0, 4.0, 5.0]]


def test_sliding_count_window_emits_partial_windows_first() -> None:
    # As Kapacitor: without fillPeriod the first windows hold fewer than 3 points.
    run = run_script("stream|from()|window().periodCount(3).everyCount(1)",
                     cpu(*[(i, i) for i in range(5)]))
    out = windows(run)
    assert [[p.fields["v"] for p in b.points] for b in out] == [
        [0.0], [0.0, 1.0], [0.0, 1.0, 2.0], [1.0, 2.0, 3.0], [2.0, 3.0, 4.0]]


def test_fill_period_waits_for_a_full_period() -> None:
    run = run_script("stream|from()|window().period(10s).every(5s).fillPeriod()",
                     cpu(*[(i, i) for i in range(0, 21)]))
    out = windows(run)
    assert all(b.points[-1].time - b.points[0].time >= 9 * S for b in out)
    assert out[0].tmax == 10 * S


def test_aligned_window_edges_are_multiples_of_every() -> None:
    run = run_script("stream|from()|window().period(10s).every(10s).align()",
                     cpu((1, 3), (2, 9), (3, 12), (4, 25)))
    out = windows(run)
    assert [b.tmax for b in out] == [10 * S, 20 * S]
    assert [[p.fields["v"] for p in b.points] for b in out] == [[1.0, 2.0], [3.0]]


def test_window_emits_batches_to_an_aggregate() -> None:
    run = run_script("stream|from()|window().period(10s).every(10s)|sum('v')",
                     cpu((1, 0), (2, 5), (4, 10), (8, 15), (0, 20)))
    assert run.fields("sum", "sum") == [3.0, 12.0]


def test_shift_moves_point_times() -> None:
    run = run_script("stream|from()|shift(5s)", cpu((1, 0), (2, 10)))
    assert [p.time for p in run.points("shift")] == [5 * S, 15 * S]


def test_negative_shift() -> None:
    run = run_script("stream|from()|shift(-1m)", cpu((1, 60)))
    assert [p.time for p in run.points("shift")] == [0]


def test_shift_of_window_batches_moves_tmax_and_points() -> None:
    run = run_script("stream|from()|window().period(10s).every(10s)|shift(1h)",
                     cpu((1, 0), (2, 11)))
    (b,) = windows(run, "shift")
    assert b.tmax == 3600 * S + 10 * S
    assert [p.time for p in b.points] == [3600 * S]


def test_window_stats_count_what_it_received_and_sent() -> None:
    run = run_script("stream|from()|window().period(10s).every(10s)|count('v')",
                     cpu(*[(i, i) for i in range(35)]))
    stats = run.stats("window")
    assert stats["collected"] == 35 and stats["emitted"] == 3
    assert run.fields("count", "count") == [10, 10, 10]

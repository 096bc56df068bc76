"""Transform nodes: eval, default, delete, where, sample, derivative, difference,
stateDuration, stateCount, changeDetect, holtWinters."""

from __future__ import annotations

import pytest

from kapa_core.testing import run_script

S = 1_000_000_000


def rows(*values: object, every: int = 1, name: str = "m", tags: str = "") -> str:
    tag_text = f",{tags}" if tags else ""
    return "\n".join(f"{name}{tag_text} v={v} {i * every * S}" for i, v in enumerate(values))


def test_eval_computes_fields() -> None:
    run = run_script("stream|from()|eval(lambda: \"v\" * 2.0, lambda: \"v\" + 1.0)"
                     ".as('double', 'next')", rows(1.5, 4))
    assert run.fields("eval", "double") == [3.0, 8.0]
    assert run.fields("eval", "next") == [2.5, 5.0]


def test_eval_keep_lists_the_fields_kept() -> None:
    run = run_script("stream|from()|eval(lambda: \"v\" * 10.0).as('big').keep('big')",
                     rows(1, 2))
    assert [p.fields for p in run.points("eval")] == [{"big": 10.0}, {"big": 20.0}]


def test_eval_uses_earlier_results_in_later_expressions() -> None:
    run = run_script("stream|from()|eval(lambda: \"v\" + 1.0, lambda: \"a\" * 2.0)"
                     ".as('a', 'b')", rows(1.0))
    assert run.fields("eval", "b") == [4.0]


def test_eval_tags_turns_a_result_into_a_tag() -> None:
    run = run_script("stream|from()|eval(lambda: string(\"v\")).as('s').tags('s')",
                     rows(7))
    (p,) = run.points("eval")
    assert p.tags["s"] == "7" and "s" not in p.fields


def test_eval_error_counts_and_drops_the_point() -> None:
    run = run_script("stream|from()|eval(lambda: \"missing\" * 2.0).as('x')", rows(1, 2))
    assert run.outputs("eval") == []
    assert run.stats("eval")["errors"] == 2


def test_where_filters_points() -> None:
    run = run_script("stream|from()|where(lambda: \"v\" > 2)", rows(1, 3, 2, 5))
    assert run.fields("where", "v") == [3.0, 5.0]


def test_from_where_and_measurement() -> None:
    data = rows(1, 2, name="a") + "\n" + rows(10, 20, name="b")
    run = run_script("stream|from().measurement('b').where(lambda: \"v\" > 10)", data)
    assert [(p.name, p.fields["v"]) for p in run.points("from")] == [("b", 20.0)]


def test_default_fills_missing_fields_and_tags() -> None:
    run = run_script("stream|from()|default().field('w', 0.5).tag('dc', 'eu')",
                     "m v=1 0\nm,dc=us v=2,w=9 1000000000")
    got = [(p.tags.get("dc"), p.fields["w"]) for p in run.points("default")]
    assert got == [("eu", 0.5), ("us", 9.0)]


def test_delete_removes_fields_and_tags() -> None:
    run = run_script("stream|from()|delete().field('w').tag('host')",
                     "m,host=a,dc=eu v=1,w=2 0")
    (p,) = run.points("delete")
    assert p.fields == {"v": 1.0} and p.tags == {"dc": "eu"}


def test_sample_keeps_every_nth_point() -> None:
    run = run_script("stream|from()|sample(3)", rows(*range(7)))
    assert run.fields("sample", "v") == [0.0, 3.0, 6.0]


def test_derivative_per_second_and_per_unit() -> None:
    # as in Kapacitor, the result keeps the field's name unless .as() renames it
    run = run_script("stream|from()|derivative('v')", rows(0, 10, 30, every=10))
    assert run.fields("derivative", "v") == [1.0, 2.0]
    run = run_script("stream|from()|derivative('v').unit(1m).as('rate')",
                     rows(0, 10, every=10))
    assert run.fields("derivative", "rate") == [60.0]


def test_non_negative_derivative_drops_decreases() -> None:
    run = run_script("stream|from()|derivative('v').nonNegative()", rows(5, 10, 2, 4))
    assert run.fields("derivative", "v") == [5.0, 2.0]


def test_difference_between_consecutive_points() -> None:
    run = run_script("stream|from()|difference('v')", rows(1, 4, 4, 2))
    assert run.fields("difference", "difference") == [3.0, 0.0, -2.0]


def test_state_duration_counts_time_in_state() -> None:
    run = run_script("stream|from()|stateDuration(lambda: \"v\" > 5).unit(1s)",
                     rows(6, 7, 8, 1, 9, every=10))
    assert run.fields("stateDuration", "state_duration") == [0.0, 10.0, 20.0, -1.0, 0.0]


def test_state_count_counts_points_in_state() -> None:
    run = run_script("stream|from()|stateCount(lambda: \"v\" > 5).as('n')",
                     rows(6, 7, 1, 9, 9))
    assert run.fields("stateCount", "n") == [1, 2, -1, 1, 2]


def test_change_detect_passes_changes_only() -> None:
    run = run_script("stream|from()|changeDetect('v')", rows(1, 1, 2, 2, 2, 1))
    assert run.fields("changeDetect", "v") == [1.0, 2.0, 1.0]


def test_state_is_per_group() -> None:
    data = rows(1, 2, tags="h=a") + "\n" + rows(10, 20, tags="h=b")
    run = run_script("stream|from().groupBy('h')|difference('v')", data)
    got = sorted((p.tags["h"], p.fields["difference"]) for p in run.points("difference"))
    assert got == [("a", 1.0), ("b", 10.0)]


def test_holt_winters_forecasts_a_linear_trend() -> None:
    script = ("stream|from()|window().period(10s).every(10s)"
              "|holtWinters('v', 3, 0, 1s)")
    run = run_script(script, rows(*range(10), 100, every=1))
    forecast = run.fields("holtWinters", "holtWinters")
    assert len(forecast) == 3
    assert forecast == pytest.approx([10.0, 11.0, 12.0], abs=0.5)


def test_lambda_type_error_refuses_the_start() -> None:
    from kapa_core.errors import KapaError

    with pytest.raises(KapaError):
        run_script("stream|from()|where(lambda: \"v\" > 'x' AND 1 > 'y')", rows(1))

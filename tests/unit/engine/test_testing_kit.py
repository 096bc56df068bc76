"""kapa_core.testing.run_script itself: handler kinds, vars, naming, errors, run_nodes."""

from __future__ import annotations

import pytest

from kapa_core.alert import kinds
from kapa_core.errors import TickError
from kapa_core.models.point import Point
from kapa_core.pipeline.evaluate import Var, evaluate
from kapa_core.plugins import load_plugins
from kapa_core.testing import batches_of, parse_points, run_nodes, run_script

S = 1_000_000_000
ALERT = "stream|from()|alert().crit(lambda: \"v\" > 1).{}"


def test_handler_kinds_installed_come_from_the_entry_points() -> None:
    with kinds.using(kinds.NONE):  # as outside the test suite: no kind known
        with pytest.raises(TickError, match="no property method \"log\""):
            run_script(ALERT.format("log('/tmp/x')"), "m v=2 0")
        run = run_script(ALERT.format("log('/tmp/x')"), "m v=2 0",
                         handler_kinds="installed")
    assert [h.kind for h in run.handled()] == ["log"]


def test_handler_kinds_given_as_a_mapping_are_the_only_ones() -> None:
    only_log = {"log": load_plugins().handler_kinds["log"]}
    run_script(ALERT.format("log('/tmp/x')"), "m v=2 0", handler_kinds=only_log)
    with pytest.raises(TickError):
        run_script(ALERT.format("post('http://127.0.0.1:1/')"), "m v=2 0",
                   handler_kinds=only_log)


def test_handler_kinds_are_put_back_after_the_run() -> None:
    before = kinds.current()
    with pytest.raises(TickError):
        run_script(ALERT.format("log('/tmp/x')"), "m v=2 0", handler_kinds={})
    assert kinds.current() is before


def test_vars_take_plain_values_and_var_objects() -> None:
    script = "var f = 'v'\nvar n = 1\nstream|from()|where(lambda: \"v\" > n)|sum(f)"
    run = run_script("var n = 1\nstream|from()|where(lambda: \"v\" > n)",
                     "m v=1 0\nm v=2 1\nm v=3 2", vars={"n": Var("int", 2)})
    assert run.fields("where", "v") == [3.0]
    with pytest.raises(TypeError, match="give a Var"):
        run_script(script, [], vars={"n": object()})


def test_lines_without_a_time_take_now() -> None:
    run = run_script("stream|from()", "m v=1", now=42 * S)
    assert [p.time for p in run.points("from")] == [42 * S]


def test_bad_line_protocol_is_an_error() -> None:
    with pytest.raises(ValueError, match="unable to parse"):
        run_script("stream|from()", "m v=")


def test_a_stream_task_refuses_batches() -> None:
    with pytest.raises(TypeError, match="stream task"):
        run_script("stream|from()", batches_of("m v=1 0"))  # type: ignore[arg-type]


def test_unknown_and_ambiguous_node_names_list_the_nodes() -> None:
    run = run_script("var s = stream|from()\ns|window().period(1s).every(1s)\n"
                     "s|window().period(2s).every(2s)", [])
    assert run.node("window2").name == "window2"
    with pytest.raises(KeyError, match="several nodes"):
        run.outputs("window")
    with pytest.raises(KeyError, match="stream0, from1, window2, window3"):
        run.outputs("eval")


def test_points_keep_their_database_and_given_points_get_the_task_dbrp() -> None:
    run = run_script('dbrp "telegraf"."autogen"\nstream|from()',
                     [Point("m", {}, {"v": 1.0}, 0), "m v=2 1"])
    assert [(p.database, p.retention_policy) for p in run.points("from")] == [
        ("telegraf", "autogen"), ("telegraf", "autogen")]


def test_batches_of_groups_by_dimensions() -> None:
    batches = batches_of("cpu,host=a,dc=x v=1 0\ncpu,host=b,dc=x v=2 0\n"
                         "cpu,host=a,dc=x v=3 5", ["*"])
    assert [(b.group, len(b.points), b.tmax) for b in batches] == [
        ("dc=x,host=a", 2, 5), ("dc=x,host=b", 1, 0)]
    assert batches_of(parse_points("cpu v=1 0"))[0].group == ""


def test_run_nodes_runs_a_pipeline_of_specs() -> None:
    pipeline = evaluate("stream|from()|sample(2)", "stream").pipeline
    run = run_nodes(pipeline, "m v=1 0\nm v=2 1\nm v=3 2")
    assert run.fields("sample", "v") == [1.0, 3.0]

"""The script check and the dry run, without a daemon: errors and their positions, the
graph, the nodes' outputs and alert events, the bounds, and that nothing leaves the run."""

from __future__ import annotations

from typing import Any

import pytest

from kapa_core.engine import dryrun
from kapa_core.engine.nodes.io import NodeContext
from kapa_core.engine.script_check import Checked, ScriptInput, check
from kapa_core.errors import APIError
from kapa_core.pipeline.evaluate import Var

DEFAULT_BOUNDS = dryrun.Bounds()


def checked(script: str, **given: Any) -> Checked:
    return check(ScriptInput(script, **given))


async def run(script: str, points: str, *, bounds: dryrun.Bounds = DEFAULT_BOUNDS,
              context: NodeContext | None = None, **given: Any) -> dict[str, Any]:
    result = checked(script, **given)
    parsed, errors = dryrun.parse_points(points, "s", "db", "autogen", bounds)
    assert errors == []
    out = await dryrun.dry_run(result, parsed, context or NodeContext(), bounds=bounds)
    return out.to_json()


def node(answer: dict[str, Any], node_id: str) -> dict[str, Any]:
    (found,) = [n for n in answer["nodes"] if n["id"] == node_id]
    return dict(found)


# -- the check --------------------------------------------------------------------------
def test_a_syntax_error_has_its_line_and_column_and_no_graph() -> None:
    answer = checked("stream\n  |from()\n  |window(\n").to_json()
    assert answer["ok"] is False
    (error,) = answer["errors"]
    assert error["line"] == 4 or error["line"] == 3
    assert not error["message"].startswith("line ")  # the position is given apart
    assert (answer["dot"], answer["nodes"], answer["edges"], answer["vars"]) == (
        "", [], [], {})


def test_a_node_validation_error_has_the_node_position() -> None:
    # both period and periodCount: found when the pipeline is validated
    answer = checked("stream\n  |from()\n  |window()\n    .period(1s)\n    .periodCount(3)\n"
                     ).to_json()
    (error,) = answer["errors"]
    assert (error["line"], error["column"]) == (3, 4)


def test_nodes_and_edges_follow_the_dot() -> None:
    script = ("var s = stream|from().measurement('m')\n"
              "s|window().period(1s).every(1s)|count('v')\n"
              "s|derivative('v')\n")
    result = checked(script, name="branches")
    answer = result.to_json()
    assert answer["ok"] is True
    dot_edges = [line.rstrip(";").split(" -> ")
                 for line in answer["dot"].splitlines() if " -> " in line]
    assert [[e["from"], e["to"]] for e in answer["edges"]] == dot_edges
    ids = [n["id"] for n in answer["nodes"]]
    assert ids[0] == "stream0" and set(ids) == {"stream0", "from1", "window2", "count3",
                                                "derivative4"}
    positions = {n["id"]: (n["line"], n["column"]) for n in answer["nodes"]}
    assert positions["derivative4"] == (3, 3)  # the method's name, after the |
    assert positions["window2"] == (2, 3)


def test_a_batch_script_does_not_draw_its_root() -> None:
    answer = checked("batch|query('SELECT mean(v) FROM db.rp.m').period(1m).every(1m)"
                     "|log()").to_json()
    assert answer["ok"] is True, answer["errors"]
    assert [n["id"] for n in answer["nodes"]] == ["query1", "log2"]


def test_vars_are_listed_and_template_vars_may_lack_values() -> None:
    script = "// the threshold\nvar crit float\nvar every = 5m\n" \
             "stream|from()|alert().crit(lambda: \"v\" > crit)\n"
    assert "missing value" in checked(script).to_json()["errors"][0]["message"]
    answer = checked(script, template=True).to_json()
    assert answer["ok"] is True
    assert answer["vars"]["every"] == {"type": "duration", "value": 300_000_000_000,
                                       "description": ""}
    assert answer["vars"]["crit"]["type"] == "float"
    assert answer["vars"]["crit"]["value"] is None
    given = checked(script, vars={"crit": Var("float", 9.5)}).to_json()
    assert given["ok"] is True


def test_a_script_of_both_types_is_an_error() -> None:
    answer = checked("stream|from()\nbatch|query('SELECT v FROM m')").to_json()
    assert "invalid task type" in answer["errors"][0]["message"]


def test_dbrps_both_in_the_script_and_given() -> None:
    answer = checked('dbrp "a"."b"\nstream|from()', dbrps=[("c", "d")]).to_json()
    assert answer["errors"][0]["message"] == ("cannot specify dbrp in both implicitly "
                                              "and explicitly")


def test_what_kapacitor_refuses_at_start_is_an_error() -> None:
    answer = checked("stream|from()|where(lambda: 'a' > 1)").to_json()
    assert answer["ok"] is False
    assert "where" in answer["errors"][0]["message"]


# -- the run ------------------------------------------------------------------------------
WINDOW = """stream
    |from().measurement('cpu').groupBy('host')
    |window().period(10s).every(10s)
    |max('usage')
    |alert()
        .crit(lambda: "max" > 80)
        .topic('ops')
"""


async def test_window_outputs_and_alert_events() -> None:
    points = "\n".join([*(f"cpu,host=a usage={50 if t < 10 else 95} {t}" for t in range(21)),
                        "mem,host=a used=1 3"])
    answer = await run(WINDOW, points, name="cpu")
    assert answer["ok"] is True, answer["errors"]
    assert node(answer, "from1")["collected"] == 22
    assert node(answer, "from1")["emitted"] == 21  # mem is not cpu
    window = node(answer, "window2")
    assert [len(b["values"]) for b in window["output"]] == [10, 10]
    assert window["output"][0]["columns"] == ["time", "usage"]
    assert window["output"][0]["values"][0] == ["1970-01-01T00:00:00Z", 50.0]
    alert = node(answer, "alert4")
    # published to its own topic and to 'ops': kept once
    assert [(e["level"], e["id"]) for e in alert["alerts"]] == [("CRITICAL", "cpu:host=a")]
    # a selector's time is the window's end unless .usePointTimes(), as in Kapacitor
    assert alert["output"][0]["values"] == [["1970-01-01T00:00:20Z", 95.0]]


async def test_rows_beyond_the_bound_are_cut() -> None:
    points = "\n".join(f"m v={t} {t}" for t in range(30))
    answer = await run("stream|from()|window().period(10s).every(10s)", points,
                       bounds=dryrun.Bounds(rows=15))
    window = node(answer, "window2")
    assert window["emitted"] == 2
    assert [len(b["values"]) for b in window["output"]] == [10]
    assert window["truncated"] is True
    assert "truncated" not in node(answer, "stream0") or node(answer, "stream0")["truncated"]


async def test_output_is_cut_without_holes() -> None:
    # batches of 10, 10 and 2 points: the third would fit, but follows one left out
    times = [*range(20), 20, 21, 30]
    points = "\n".join(f"m v={t} {t}" for t in times)
    answer = await run("stream|from()|window().period(10s).every(10s)", points,
                       bounds=dryrun.Bounds(rows=15))
    window = node(answer, "window2")
    assert window["emitted"] == 3
    assert [len(b["values"]) for b in window["output"]] == [10]


async def test_alert_events_beyond_the_bound_are_cut() -> None:
    points = "\n".join(f"m v={t % 2} {t}" for t in range(10))
    answer = await run("stream|from()|alert().crit(lambda: \"v\" > 0)", points,
                       bounds=dryrun.Bounds(alerts=3))
    alert = node(answer, "alert2")
    assert len(alert["alerts"]) == 3
    assert alert["truncated"] is True
    assert alert["collected"] == 10


async def test_the_time_limit_stops_the_run() -> None:
    points = "\n".join(f"m v={t} {t}" for t in range(2000))
    answer = await run("stream|from()", points, bounds=dryrun.Bounds(seconds=-1))
    assert answer["truncated"] is True
    assert "stopped after" in answer["errors"][0]["message"]
    assert node(answer, "from1")["collected"] == 0


async def test_an_error_that_stops_the_task_ends_the_run_at_its_node() -> None:
    # an id template that fails to execute stops the task, as in Kapacitor
    script = "stream\n  |from()\n  |alert()\n    .id('{{ call .Name }}')\n"
    answer = await run(script, "m v=1 1\nm v=2 2")
    assert answer["ok"] is False
    error = answer["errors"][-1]
    assert error["message"].startswith("alert2: ")
    assert (error["line"], error["column"]) == (3, 4)
    assert node(answer, "alert2")["collected"] == 1  # the second point never came


async def test_errors_nodes_only_log_are_the_runs_and_said_once() -> None:
    script = "stream\n  |from()\n    .where(lambda: \"x\" > 1)\n  |log().level('ERROR')\n"
    answer = await run(script, "m v=1 1\nm v=2 2\nm x=2 3")
    assert node(answer, "from1")["errors"] == 2
    assert node(answer, "log2")["collected"] == 1  # its ERROR lines are no errors
    (error,) = answer["errors"]
    assert error["message"].startswith("from1: failed to evaluate WHERE expression: ")
    assert (error["line"], error["column"]) == (2, 4)


async def test_a_node_that_cannot_be_built_is_an_error_at_its_position() -> None:
    answer = await run("stream\n  |from()\n  |window()\n", "m v=1 1")
    (error,) = answer["errors"]
    assert "non zero period" in error["message"]
    assert (error["line"], error["column"]) == (3, 4)


async def test_a_duplicate_http_out_endpoint_is_an_error() -> None:
    answer = await run("stream|from()|httpOut('x')|httpOut('x')", "m v=1 1")
    assert "multiple registrations" in answer["errors"][0]["message"]


async def test_loopback_writes_nowhere() -> None:
    written: list[Any] = []
    context = NodeContext(write_points=lambda db, rp, points: written.extend(points))
    answer = await run("stream|from()|kapacitorLoopback().database('x').retentionPolicy('y')"
                       ".measurement('n')", "m v=1 1", context=context)
    assert answer["ok"] is True, answer["errors"]
    assert node(answer, "kapacitor_loopback2")["collected"] == 1
    assert written == []


class _DaemonAlerts:
    """Stands for the daemon's alert service: counts what reaches it."""

    def __init__(self) -> None:
        self.published: list[Any] = []
        self.topics = self

    def task_handlers(self, spec: Any, task_id: str) -> tuple[list[tuple[str, Any]], bool]:
        return [("post", object())], False

    def publish(self, event: Any) -> None:
        self.published.append(event)


async def test_events_never_reach_the_daemons_alert_service() -> None:
    alerts = _DaemonAlerts()
    answer = await run("stream|from()|alert().crit(lambda: TRUE).topic('t')", "m v=1 1",
                       context=NodeContext(alerts=alerts))  # type: ignore[arg-type]
    # a stand-in with only what the dry run may call
    assert len(node(answer, "alert2")["alerts"]) == 1
    assert alerts.published == []


BATCH = """batch
    |query('SELECT mean(usage) AS usage FROM "telegraf"."autogen".cpu')
        .period(1m)
        .every(1m)
        .groupBy(time(10s), 'host')
    |alert()
        .crit(lambda: "usage" > 80)
"""


async def test_a_batch_script_takes_the_points_as_its_query_answer() -> None:
    points = "cpu,host=a usage=90 60\ncpu,host=b usage=10 50\ncpu,host=a usage=50 0\n" \
             "cpu,host=b usage=20 40"
    answer = await run(BATCH, points, dbrps=[("telegraf", "autogen")])
    assert answer["ok"] is True, answer["errors"]
    query = node(answer, "query1")
    # one batch per host (the time dimension groups nothing), points in time order
    assert [(b["tags"], [v[0][-3:] for v in b["values"]]) for b in query["output"]] == [
        ({"host": "a"}, ["00Z", "00Z"]), ({"host": "b"}, ["40Z", "50Z"])]
    assert query["output"][0]["values"] == [["1970-01-01T00:00:00Z", 50.0],
                                            ["1970-01-01T00:01:00Z", 90.0]]
    alert = node(answer, "alert2")
    assert [(e["id"], e["level"]) for e in alert["alerts"]] == [("cpu:host=a", "CRITICAL")]
    assert [n["id"] for n in answer["nodes"]] == ["query1", "alert2"]


async def test_a_batch_script_without_points_emits_nothing() -> None:
    answer = await run(BATCH, "", dbrps=[("telegraf", "autogen")])
    assert answer["ok"] is True
    assert node(answer, "query1")["emitted"] == 0


def test_bad_lines_of_points_have_their_line() -> None:
    points, errors = dryrun.parse_points("m v=1 1\n\nm v=\nm v=2 2", "s", "db", "rp",
                                         dryrun.Bounds())
    assert len(points) == 2
    assert [e.line for e in errors] == [3]
    assert points[1].time == 2_000_000_000
    assert (points[0].database, points[0].retention_policy) == ("db", "rp")


def test_both_endpoints_need_the_api_permission() -> None:
    from kapa_core.auth.permissions import privilege, required_permissions

    for path in ("/kapacitor/v1/scripts/check", "/kapacitor/v1preview/scripts/try"):
        assert required_permissions(path) == [("api",)]
    assert privilege("POST") == "write"


def test_too_many_points_and_an_unknown_precision_are_refused() -> None:
    with pytest.raises(APIError, match="too many points"):
        dryrun.parse_points("m v=1 1\nm v=1 2", "s", "", "", dryrun.Bounds(points=1))
    with pytest.raises(APIError, match="invalid precision"):
        dryrun.parse_points("m v=1 1", "d", "", "", dryrun.Bounds())

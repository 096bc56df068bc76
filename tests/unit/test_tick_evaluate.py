"""Evaluating TICKscript as Kapacitor does: var expressions, list arguments, Go's checks of
method arguments, and the lambda checks made when a task starts."""

from __future__ import annotations

import pytest

from kapa_core.errors import TickError
from kapa_core.models.duration import SECOND, Duration
from kapa_core.pipeline.evaluate import Var, evaluate

SOURCE = "stream|from().measurement('cpu')"


def values(script: str, **overrides: Var) -> dict:
    evaluated = evaluate(script + "\n" + SOURCE, "stream", overrides)
    return {name: var.value for name, var in evaluated.vars.items()}


def refusal(script: str, **overrides: Var) -> str:
    with pytest.raises(TickError) as err:
        evaluate(script, "stream", overrides)
    return str(err.value)


def test_operators_outside_lambdas_are_computed_once() -> None:
    got = values("var gb = 1000000000\nvar crit = 10 * gb\nvar b = (1 + 1) * 3\n"
                 "var id = 'cpu' + ':{{.Group}}'\nvar p = 2 * 5s\nvar n = 1m / 10s\n"
                 "var q = -7 / 2\nvar m = -7 % 3\nvar on = 1 < 2.5 AND !FALSE")
    assert got["crit"] == 10_000_000_000 and got["b"] == 6
    assert got["id"] == "cpu:{{.Group}}"
    assert got["p"] == Duration(10 * SECOND) and type(got["p"]) is Duration
    assert (got["n"], got["q"], got["m"], got["on"]) == (6, -3, -1, True)


def test_int64_arithmetic_wraps() -> None:
    assert values("var x = 9223372036854775807 + 1")["x"] == -(1 << 63)


@pytest.mark.parametrize(("expr", "message"), [
    ("1 + 1.5", "mismatched type to binary operator. got int + float. see bool(), int(), "
                "float(), string(), duration()"),
    ("'a' - 'b'", "invalid math operator - for type string"),
    ("TRUE < FALSE", "invalid comparison operator < for type boolean"),
    ("7.5 % 2.0", "invalid math operator % for type float"),
    ("1 / 0", "runtime error: integer divide by zero"),
])
def test_operator_refusals_are_kapacitors(expr: str, message: str) -> None:
    assert refusal(f"var x = {expr}\n{SOURCE}") == message


def test_a_list_alone_is_the_argument_list() -> None:
    evaluated = evaluate("var g = ['host', 'dc']\n" + SOURCE + ".groupBy(g)", "stream")
    assert evaluated.pipeline.nodes[1].group_by == ["host", "dc"]
    evaluate("var g = []\n" + SOURCE + ".groupBy(g)", "stream")
    assert refusal("var g = ['host']\n" + SOURCE + ".groupBy(g, 'dc')") == \
        "invalid dimension object of type []interface {}"


def test_vars_the_script_does_not_declare_are_ignored() -> None:
    assert values("var x = 1", other=Var("int", 3)) == {"x": 1}
    assert refusal("var x = 1\n" + SOURCE, x=Var("bool", True)) == \
        "invalid type supplied for x, got boolean exp int"


def test_arguments_are_checked_against_go_signatures() -> None:
    window = SOURCE + "|window()"
    assert refusal(window + ".period(10)").endswith(
        'error calling func "period" on obj *pipeline.WindowNode: reflect.Set: value of type '
        "int64 is not assignable to type time.Duration")
    assert refusal(window + ".period(10s, 5s)").endswith(
        "too many arguments to set property Period on *pipeline.WindowNode")
    assert refusal(SOURCE + "|deadman(1, 10s)").endswith(
        "reflect: Call using int64 as type float64")
    assert refusal(SOURCE + "|eval(lambda: 1).as(5)").endswith(
        "reflect: cannot use int64 as type string in Call")
    assert refusal(SOURCE + "|shift()").endswith("reflect: Call with too few input arguments")


def test_names_match_with_the_first_letter_upper_cased() -> None:
    evaluated = evaluate("stream|From().Measurement('cpu')|Window().Period(10s)", "stream")
    assert evaluated.pipeline.nodes[2].period == 10 * SECOND


def test_handler_objects_follow_kapacitors() -> None:
    alert = SOURCE + "|alert().crit(lambda: TRUE)"
    evaluate(alert + ".slack().channel('a').id('x').channel('b')", "stream")
    assert refusal(alert + ".email().channel('a')").endswith(
        'no method or property "channel" on *pipeline.EmailHandler')
    assert refusal(alert + ".slack().stateChangesOnly().channel('a')").endswith(
        'no method or property "channel" on *pipeline.AlertNodeData')


def test_lambda_constants_of_mismatched_types_refuse_the_start_only() -> None:
    evaluated = evaluate(SOURCE + "|where(lambda: 'count' > 10)", "stream")
    assert evaluated.start_error == (
        "Failed to compile expression in where clause: mismatched type to binary operator. "
        "got string > int. see bool(), int(), float(), string(), duration()")
    evaluated = evaluate(SOURCE + "|eval(lambda: \"v\", lambda: ('a' > 1) AND TRUE).as('a', 'b')",
                         "stream")
    assert evaluated.start_error.startswith(
        "Failed to compile 1 expression: Failed to handle left node: mismatched type")
    assert evaluate(SOURCE + "|where(lambda: \"v\" > 'a')", "stream").start_error == ""


def test_template_vars_without_value_compute_with_zero() -> None:
    evaluated = evaluate("var crit float\nvar x = crit * 2.0\n" + SOURCE, "stream",
                         require_vars=False)
    assert evaluated.vars["x"].value == 0.0 and evaluated.missing_vars == ["crit"]


def test_errors_kapacitor_words_without_a_position() -> None:
    assert refusal("var x = 5\nvar x = 6\n" + SOURCE) == \
        "attempted to redefine x, vars are immutable"
    assert refusal("var x int8\n" + SOURCE) == 'invalid var type "int8"'
    assert refusal("var x float\n" + SOURCE) == 'missing value for var "x".'
    assert refusal("var x = -TRUE\n" + SOURCE) == "line 1 char 9: invalid arugument to '-' true"


def test_a_lambda_var_resolves_its_names_where_it_is_declared() -> None:
    assert refusal('var l = lambda: "v" > t\nvar t = 5.0\n' + SOURCE).startswith(
        'name "t" is undefined. Names in scope: ')
    evaluate('var t = 5.0\nvar l = lambda: "v" > t\n' + SOURCE + "|where(l)", "stream")

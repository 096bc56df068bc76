"""Lambda evaluation: operand types, functions, state and errors, as Kapacitor defines them."""

from __future__ import annotations

import math

import pytest

from kapa_core.errors import TickError
from kapa_core.models.duration import SECOND, Duration
from kapa_core.tick.lambdas import EvalError, compile_lambda
from kapa_core.tick.parser import parse

# 2021-03-05T14:07:09Z, a Friday
T0 = 1614953229 * SECOND
FIELDS = {"v": 5.0, "n": 3, "s": "web01", "ok": True, "d": 0.0}
TAGS = {"host": "web01", "dc": "eu"}


def run(src: str, fields=FIELDS, tags=TAGS, **scope):
    lam = parse("var x = lambda: " + src).statements[0].value
    return compile_lambda(lam, scope).eval(T0, fields, tags)


@pytest.mark.parametrize(("src", "expected"), [
    ('"v" + 1.5', 6.5), ('"n" * 2 + 1', 7), ('"n" / 2', 1), ("-7 / 2", -3), ("-7 % 3", -1),
    ('"v" > 4', True), ('"n" >= 3.0', True), ('"host" == \'web01\'', True),
    ('"host" =~ /^web/', True), ('"dc" !~ /eu/', False), ("'a' + 'b'", "ab"),
    ("10s + 5s", Duration(15 * SECOND)), ("10s / 5s", 2), ("10s * 2", Duration(20 * SECOND)),
    ("2.5 * 2s", Duration(5 * SECOND)), ("-5s", Duration(-5 * SECOND)), ('!"ok"', False),
    ('"ok" AND "v" > 1', True), ("TRUE OR 1 / 0 == 0", True), ('"s" < \'t\'', False),
])
def test_operators(src, expected) -> None:
    result = run(src)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(("src", "message"), [
    ('"v" + 1', "mismatched type to binary operator"),
    ('"n" + 1.0', "mismatched type to binary operator"),
    ("1 / 0", "integer divide by zero"),
    ('"missing" > 1', "missing value"),
    ('"host" > 1', "invalid comparison"),
    ('"v" =~ /x/', "expected string =~ regex"),
    ('!"v"', "invalid unary !"),
    ("'a' AND TRUE", "invalid AND operand"),
    ("sqrt(\"n\")", "expected float argument, got int"),
])
def test_runtime_type_errors(src, message) -> None:
    with pytest.raises(EvalError, match=message):
        run(src)


def test_field_and_tag_with_the_same_name_is_an_error() -> None:
    with pytest.raises(EvalError, match="cannot have field and tags with same name"):
        run('"x" == 1.0', fields={"x": 1.0}, tags={"x": "1"})


@pytest.mark.parametrize(("src", "expected"), [
    ('int("v")', 5), ('float("n")', 3.0), ("string(1.5)", "1.5"), ("string(10s)", "10s"),
    ("string(TRUE)", "true"), ("bool('true')", True), ("bool(0)", False),
    ("duration(2, 1m)", Duration(120 * SECOND)), ("duration('1m30s', 1s)", Duration(90 * SECOND)),
    ("sqrt(16.0)", 4.0), ("pow(2.0, 10.0)", 1024.0), ("pow10(3)", 1000.0), ("abs(-2.5)", 2.5),
    ("floor(2.7)", 2.0), ("max(1.0, 2.0)", 2.0), ("strLength('héllo')", 6),
    ("strContains('hello', 'ell')", True), ("strReplace('aaa', 'a', 'b', 2)", "bba"),
    ("strSubstring('hello', 1, 3)", "el"), ("strToUpper('a')", "A"),
    ("strTrimPrefix('web01', 'web')", "01"), ("regexReplace(/(\\d+)/, 'a12b', '<$1>')",
                                              "a<12>b"),
    ('isPresent("v")', True), ('isPresent("zz")', False), ("if(\"v\" > 1.0, 'big', 'small')",
                                                           "big"),
    ('hour("time")', 14), ('minute("time")', 7), ('weekday("time")', 5), ('day("time")', 5),
    ('month("time")', 3), ('year("time")', 2021), ('unixNano("time")', T0),
    ("humanBytes(1536)", "1.5 kB"), ("humanBytes(5)", "5 B"),
])
def test_functions(src, expected) -> None:
    result = run(src)
    assert result == expected and type(result) is type(expected)


def test_if_requires_matching_types() -> None:
    with pytest.raises(EvalError, match="same type"):
        run("if(TRUE, 1, 'a')")


def test_stateful_functions_keep_state_per_lambda() -> None:
    lam = compile_lambda(parse("var x = lambda: count()").statements[0].value)
    assert [lam.eval(0, {}, {}) for _ in range(3)] == [1, 2, 3]
    other = compile_lambda(parse("var x = lambda: count()").statements[0].value)
    assert other.eval(0, {}, {}) == 1
    spread = compile_lambda(parse('var x = lambda: spread("v")').statements[0].value)
    assert [spread.eval(0, {"v": v}, {}) for v in (3.0, 1.0, 7.0)] == [0.0, 2.0, 6.0]
    sigma = compile_lambda(parse('var x = lambda: sigma("v")').statements[0].value)
    values = [sigma.eval(0, {"v": v}, {}) for v in (1.0, 1.0, 1.0, 10.0)]
    assert values[:3] == [0.0, 0.0, 0.0] and math.isclose(values[3], 1.5)


def test_variables_are_resolved_at_compile_time() -> None:
    assert run('"v" > threshold', threshold=4.0) is True
    inner = parse('var x = lambda: "v" > 1.0').statements[0].value
    assert run("cond AND TRUE", cond=inner) is True


def test_compile_errors_keep_their_position_apart() -> None:
    with pytest.raises(TickError, match=r'^name "v" is undefined\. Names in scope: ') as err:
        run("v > 1")
    assert (err.value.line, err.value.column) == (1, 17)


def test_unknown_functions_fail_each_point() -> None:
    # as in Kapacitor: the task starts, every point is an error
    with pytest.raises(EvalError, match='undefined function: "nope"'):
        run("nope(1)")


def test_eval_bool_requires_a_boolean() -> None:
    lam = compile_lambda(parse('var x = lambda: "v" + 1.0').statements[0].value)
    with pytest.raises(EvalError, match="expected boolean"):
        lam.eval_bool(0, FIELDS, TAGS)


def test_regexes_match_in_linear_time_like_go() -> None:
    """A backtracking engine needs ~2^n steps here; RE2 (Go's semantics) answers at once.
    The work runs in a thread so that a regression fails the test instead of hanging it."""
    import threading

    result: list[object] = []
    tags = {"host": "a" * 40 + "!", "dc": "eu"}
    worker = threading.Thread(target=lambda: result.append(run('"host" =~ /(a+)+$/',
                                                               tags=tags)), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert result == [False]
    assert run('"host" =~ /(a+)+!$/', tags=tags) is True


def test_regex_syntax_is_go_s() -> None:
    with pytest.raises(TickError, match="error parsing regexp: invalid escape sequence"):
        run('"host" =~ /(web)\\1/')  # backreferences: refused by Go's regexp too
    assert run('"host" =~ /(?i)^WEB\\d+$/') is True


@pytest.mark.parametrize(("expr", "fields"), [
    ('"n" * 1m', {"n": 1e308}),                 # a duration from an infinite product
    ('"n" * 1m', {"n": float("nan")}),
    ('1m / "n"', {"n": 1e-320}),
    ('int("n")', {"n": float("inf")}),
    ('int("n")', {"n": float("nan")}),
    ('!!(("n" * 1m) % (-3 * 1))', {"n": -1e308}),
])
def test_values_go_cannot_convert_are_errors_of_the_point(expr: str, fields: dict) -> None:
    compiled = compile_lambda(parse("var x = lambda: " + expr).statements[0].value, {})
    with pytest.raises(EvalError):
        compiled.eval(0, fields, {})

"""Long lambdas and expressions: thousands of terms, parentheses or unary operators.

Kapacitor 1.5.7 takes them (its parser and evaluator recurse on Go's growable stack);
kapa-core walks the long runs in loops. The loops must give what the nested closures
give: the same values, short-circuits, order of evaluation and errors.
"""

from __future__ import annotations

import random

import pytest

from kapa_core.errors import TickError
from kapa_core.pipeline.evaluate import evaluate
from kapa_core.tick import ast, lambdas
from kapa_core.tick.format import format_program, format_script
from kapa_core.tick.functions import EvalError
from kapa_core.tick.lambdas import compile_lambda, static_error
from kapa_core.tick.parser import parse


def _script(lam: str) -> str:
    return ("stream\n    |from()\n        .measurement('cpu')\n"
            f"    |where(lambda: {lam})\n    |httpOut('out')\n")


def _lambda(expr: str):
    return parse("var x = lambda: " + expr).statements[0].value


def _outcome(compiled, fields, tags):
    try:
        return ("ok", compiled.eval(0, fields, tags))
    except EvalError as exc:
        return ("error", str(exc))


@pytest.mark.parametrize("op,term", [
    ("OR", "\"host\" == 'h{i}'"),
    ("AND", '"v" > {i}'),
    ("+", '"v"'),
])
def test_ten_thousand_terms_parse_format_and_evaluate(op, term):
    lam = f" {op} ".join(term.format(i=i - 20000) for i in range(10000))
    if op == "+":
        lam += " > 0"
    script = _script(lam)
    program = parse(script)
    assert format_program(program) == script  # already in Kapacitor's format
    evaluated = evaluate(script, "stream", program=program)
    assert evaluated is not None


def test_long_or_of_tags():
    lam = " OR ".join(f"\"host\" == 'h{i}'" for i in range(5000))
    compiled = compile_lambda(_lambda(lam))
    assert compiled.eval_bool(0, {}, {"host": "h0"}) is True
    assert compiled.eval_bool(0, {}, {"host": "h4999"}) is True
    assert compiled.eval_bool(0, {}, {"host": "x"}) is False


def test_long_sum_wraps_as_int64():
    lam = " + ".join('"v"' for _ in range(3000))
    compiled = compile_lambda(_lambda(lam))
    assert compiled.eval(0, {"v": 1}, {}) == 3000
    big = 1 << 62
    expected = (big * 3000 + (1 << 63)) % (1 << 64) - (1 << 63)
    assert compiled.eval(0, {"v": big}, {}) == expected
    with pytest.raises(EvalError):
        compiled.eval(0, {}, {})


_OPERANDS = ['"i"', '"f"', '"b"', '"s"', "1", "2.5", "TRUE", "FALSE", "'x'", '"missing"']
_OPERATORS = ["AND", "OR", "==", "!=", "<", ">=", "+", "-", "*", "/", "%"]


def _random_chain(rng: random.Random, length: int) -> str:
    parts = [rng.choice(_OPERANDS)]
    for _ in range(length):
        parts += [rng.choice(_OPERATORS), rng.choice(_OPERANDS)]
    return " ".join(parts)


def test_loops_give_what_nested_closures_give(monkeypatch):
    """Random chains of every operator and operand type, over points of every field
    type: the loop's value or error is the nested closures' one."""
    rng = random.Random(1971)
    points = [({"i": 3, "f": 0.5, "b": True, "s": "x"}, {}),
              ({"i": 0, "f": -2.0, "b": False, "s": ""}, {}),
              ({"i": 7}, {"s": "tag"})]
    for _ in range(300):
        expr = _random_chain(rng, rng.randrange(40, 80))
        node = _lambda(expr)
        looped = compile_lambda(node)
        with monkeypatch.context() as patch:
            patch.setattr(lambdas, "LONG_CHAIN", 10**9)
            nested = compile_lambda(node)
        assert looped.static_error == nested.static_error, expr
        for fields, tags in points:
            assert _outcome(looped, fields, tags) == _outcome(nested, fields, tags), expr


def test_short_circuit_skips_stateful_functions_as_nested(monkeypatch):
    """count() on the right of a decided OR is not called, in the loop as nested."""
    expr = '"v" > 0 OR ' + " OR ".join("count() > 1000" for _ in range(60))
    node = _lambda(expr)
    looped = compile_lambda(node).copy_reset()
    with monkeypatch.context() as patch:
        patch.setattr(lambdas, "LONG_CHAIN", 10**9)
        nested = compile_lambda(node).copy_reset()
    for v in (1, -1, 1, -1, -1):
        assert looped.eval(0, {"v": v}, {}) == nested.eval(0, {"v": v}, {})


def test_static_error_deep_in_a_long_chain_is_wrapped_per_level():
    expr = "'a' > 1 OR " + " OR ".join(f'"v" == {i}' for i in range(1000))
    message = static_error(_lambda(expr).expr, {})
    # as Kapacitor 1.5.7 words it (the case lang/long_type_error_1000 has its answer)
    assert message == ("Failed to handle left node: " * 1000
                       + "mismatched type to binary operator. got string > int. see "
                       "bool(), int(), float(), string(), duration()")


def test_long_runs_of_unary_operators():
    compiled = compile_lambda(_lambda("!" * 3001 + '("v" > 0)'))
    assert compiled.eval(0, {"v": 1}, {}) is False
    assert compiled.eval(0, {"v": -1}, {}) is True
    compiled = compile_lambda(_lambda("-" * 3000 + '"v"'))
    assert compiled.eval(0, {"v": 2.5}, {}) == 2.5
    assert format_script("var x = " + "!" * 3000 + "TRUE\n") == "var x = " + "!" * 3000 + \
        "TRUE\n"


def test_deep_parentheses_are_one_level_each():
    expr = "(" * 5000 + '"v"' + " + 1)" * 5000 + " > 5000"
    compiled = compile_lambda(_lambda(expr))
    assert compiled.eval(0, {"v": 1}, {}) is True
    assert compiled.eval(0, {"v": 0}, {}) is False
    text = format_script("var x = lambda: " + "(" * 5000 + '"v" > 0' + ")" * 5000 + "\n")
    assert text == 'var x = lambda: ("v" > 0)\n'


def test_long_var_expressions_are_folded():
    script = ("var limit = " + " + ".join(str(i) for i in range(5000)) + "\n"
              "var name = 'a'" + " + 'b'" * 2000 + "\n"
              "var no = " + " OR ".join("FALSE" for _ in range(3000)) + "\n"
              + _script('"v" < limit'))
    evaluated = evaluate(script, "stream")
    assert evaluated is not None


@pytest.mark.parametrize("lam", [
    "abs(" * 3000 + '"v"' + " + 1)" * 3000 + " > 0",
])
def test_deep_nesting_is_refused_with_an_error_not_a_crash(lam):
    """Calls of an operator expression nested in calls still recurse when compiled: past
    the limit they are refused with a TickError, never a RecursionError."""
    with pytest.raises(TickError, match="nested too deeply"):
        evaluate(_script(lam), "stream")


def test_whatever_parses_formats():
    for depth in range(50, 2000, 50):
        script = _script("abs(" * depth + '"v"' + ")" * depth + " > 0")
        try:
            program = parse(script)
        except TickError:
            break
        assert format_program(program) == script


def test_match_expression_nested_too_deeply_is_refused():
    from kapa_core.alert.match import compile_match

    with pytest.raises(ValueError, match="nested too deeply"):
        compile_match("abs(" * 2000 + "level()" + " + 1)" * 2000 + " > 1")
    assert compile_match("abs(" * 2000 + "level()" + ")" * 2000 + " > 1") is not None
    match = compile_match(" OR ".join(f"level() == {i % 4}" for i in range(3000)))
    assert match is not None


def test_recursion_while_evaluating_is_an_error_of_the_point():
    compiled = compile_lambda(_lambda('"v" > 0'))

    def deep(t, f, g):
        raise RecursionError("maximum recursion depth exceeded")
    compiled._fn = deep
    with pytest.raises(EvalError, match="nested too deeply"):
        compiled.eval(0, {"v": 1}, {})


@pytest.mark.parametrize("depth", [1000, 5000])
def test_nested_calls_parse_format_and_evaluate(depth):
    """``abs(abs(...))`` as deep as Kapacitor 1.5.7 takes it (the case
    lang/long_nested_calls_1000 has its answer at 1,000)."""
    lam = "abs(" * depth + '"v"' + ")" * depth
    script = _script(lam + " > 1")
    program = parse(script)
    assert format_program(program) == script
    assert evaluate(script, "stream", program=program) is not None
    node = _lambda(lam)
    assert static_error(node.expr, {}) == ""
    compiled = compile_lambda(node)
    assert compiled.eval(0, {"v": -3.5}, {}) == 3.5
    with pytest.raises(EvalError, match="abs: missing value"):
        compiled.eval(0, {}, {})
    mixed = compile_lambda(_lambda("float(int(abs(" * (depth // 3) + '"v"'
                                   + ")))" * (depth // 3)))
    assert mixed.eval(0, {"v": -2.7}, {}) == 2.0
    typed = "abs(" * depth + "'a' > 1" + ")" * depth
    assert static_error(_lambda(typed).expr, {}) == (
        "Failed to handle 1 argument: " * depth + "mismatched type to binary operator. "
        "got string > int. see bool(), int(), float(), string(), duration()")


_CALLS = ["abs", "float", "int", "string", "bool", "sqrt", "floor", "count", "sigma",
          "isPresent", "if", "nope", "min", "strLength"]
_INNER = ['"i"', '"f"', '"s"', '"b"', '"missing"', "-2", "2.5", "'x'", "TRUE", "'a' > 1",
          '"i" + 1', "count()"]


def _random_calls(rng: random.Random, depth: int) -> str:
    expr = rng.choice(_INNER)
    for _ in range(depth):
        name = rng.choice(_CALLS)
        if name == "if":
            expr = f"if(TRUE, {expr}, {expr})"
        elif name == "min" and rng.random() < 0.5:
            expr = f"{name}({expr}, 1)"
        else:
            expr = f"{name}({expr})"
    return expr


def test_nested_calls_loop_gives_what_nested_closures_give(monkeypatch):
    """Random nests of every kind of call (stateless, stateful, special, undefined, of
    several arguments) over points of every field type: the loop's values, errors,
    static errors and formatting are the nested closures' ones."""
    rng = random.Random(1972)
    points = [({"i": 3, "f": 0.5, "b": True, "s": "4"}, {}),
              ({"i": -7, "f": -2.0, "b": False, "s": ""}, {}),
              ({"i": 7}, {"s": "tag"})]
    for _ in range(300):
        expr = _random_calls(rng, rng.randrange(1, 60))
        node = _lambda(expr)
        assert format_script("var x = lambda: " + expr + "\n") == (
            "var x = lambda: " + expr + "\n")
        with monkeypatch.context() as patch:
            patch.setattr(lambdas, "NESTED_CALLS_LOOP", 1)
            looped = compile_lambda(node).copy_reset()
        with monkeypatch.context() as patch:
            patch.setattr(lambdas, "NESTED_CALLS_LOOP", 10**9)
            nested = compile_lambda(node).copy_reset()
        assert looped.static_error == nested.static_error, expr
        assert looped.references == nested.references, expr
        for _ in range(2):  # stateful functions keep their state between points
            for fields, tags in points:
                assert _outcome(looped, fields, tags) == _outcome(nested, fields, tags), expr


def _right_or(depth: int) -> str:
    return "".join(f'"v" == {i} OR (' for i in range(depth)) + '"v" == -1' + ")" * depth


@pytest.mark.parametrize("depth", [1000, 5000])
def test_right_nested_parentheses_parse_format_and_evaluate(depth):
    """``a OR (b OR (c ...))`` as deep as Kapacitor 1.5.7 takes it (the case
    lang/long_right_parentheses_1000 has its answer at 1,000)."""
    script = _script(_right_or(depth))
    program = parse(script)
    assert format_program(program) == script
    assert evaluate(script, "stream", program=program) is not None
    node = _lambda(_right_or(depth))
    assert static_error(node.expr, {}) == ""
    compiled = compile_lambda(node)
    assert compiled.eval(0, {"v": depth - 1}, {}) is True
    assert compiled.eval(0, {"v": -1}, {}) is True
    assert compiled.eval(0, {"v": -2}, {}) is False
    with pytest.raises(EvalError, match="missing value"):
        compiled.eval(0, {}, {})
    text = format_script("var x = lambda: " + '"b" AND\n(' * depth + "TRUE" + ")" * depth
                         + "\n")
    assert text == ('var x = lambda: "b" AND\n'
                    + "".join("    " * k + '("b" AND\n' for k in range(depth - 1))
                    + "    " * (depth - 1) + "TRUE" + ")" * (depth - 1) + "\n")
    typed = "".join(f'"v" == {i} AND (' for i in range(depth)) + "'a' > 1" + ")" * depth
    assert static_error(_lambda(typed).expr, {}) == (
        "Failed to handle right node: " * depth + "mismatched type to binary operator. "
        "got string > int. see bool(), int(), float(), string(), duration()")


_LOGIC_OPERANDS = ['"b"', '"i" > 1', '"f" < 0.0', "\"s\" == 'x'", '"missing"', "TRUE", "FALSE",
                   "'a' > 1", '"i"', "count() > 1", 'isPresent("i")', '!"b"', '-"i"',
                   '"i" + 1', 'abs("i") > 2', '"i" > 1 AND "b"', '("b" OR "i" == 3)']


def _random_right_nest(rng: random.Random, depth: int) -> str:
    parts = [rng.choice(_LOGIC_OPERANDS) for _ in range(depth + 1)]
    expr = parts[-1]
    for part in reversed(parts[:-1]):
        op = rng.choice(["AND", "OR"])
        expr = f"{part} {op} ({expr})" if rng.random() < 0.85 else f"{part} {op} {expr}"
    return expr


def test_right_nested_logic_loop_gives_what_nested_closures_give(monkeypatch):
    """Random right-nested AND/OR over operands of every type (dynamic ones typed before
    short-circuiting, stateful functions, missing fields): the loop's values and errors
    are the nested closures' ones; the formatting is its own format."""
    rng = random.Random(1973)
    points = [({"i": 3, "f": 0.5, "b": True, "s": "x"}, {}),
              ({"i": 0, "f": -2.0, "b": False, "s": ""}, {}),
              ({"i": 7}, {"s": "tag"}), ({"b": True}, {})]
    for _ in range(300):
        expr = _random_right_nest(rng, rng.randrange(1, 45))
        node = _lambda(expr)
        formatted = format_script("var x = lambda: " + expr + "\n")
        assert format_script(formatted) == formatted, expr
        with monkeypatch.context() as patch:
            patch.setattr(lambdas, "RIGHT_CHAIN", 1)
            looped = compile_lambda(node).copy_reset()
        with monkeypatch.context() as patch:
            patch.setattr(lambdas, "RIGHT_CHAIN", 10**9)
            nested = compile_lambda(node).copy_reset()
        assert looped.references == nested.references, expr
        for _ in range(2):
            for fields, tags in points:
                assert _outcome(looped, fields, tags) == _outcome(nested, fields, tags), expr


def _right_values(parts: list[str], ops: list[str], last: str) -> str:
    """``p0 o0 (p1 o1 (... pn on last))``."""
    return ("".join(f"{p} {o} (" for p, o in zip(parts[:-1], ops[:-1]))
            + f"{parts[-1]} {ops[-1]} {last}" + ")" * (len(parts) - 1))


@pytest.mark.parametrize("depth", [1000, 10000])
def test_right_nested_arithmetic_parse_format_and_evaluate(depth):
    """``1 - (2 - (3 - ...))`` and comparisons of such nests, as deep as Kapacitor 1.5.7
    takes them (the cases lang/long_right_arith_* have its answers at 1,000 to 3,000)."""
    sub = _right_values([str(i) for i in range(1, depth + 1)], ["-"] * depth, '"v"')
    script = _script(sub + " > 0")
    program = parse(script)
    assert format_program(program) == script
    assert evaluate(script, "stream", program=program) is not None
    compiled = compile_lambda(_lambda(sub))
    assert compiled.static_error == ""
    expected = 5
    for i in range(depth, 0, -1):
        expected = i - expected
    assert compiled.eval(0, {"v": 5}, {}) == expected
    with pytest.raises(EvalError, match="missing value"):
        compiled.eval(0, {}, {})
    mul = compile_lambda(_lambda(_right_values(["3"] * depth, ["*"] * depth, '"v"')))
    assert mul.eval(0, {"v": 1}, {}) == lambdas._int64(3 ** depth)
    fsum = compile_lambda(_lambda('"v" > ' + _right_values(['"v"'] * depth, ["+"] * depth,
                                                            "0.5")))
    assert fsum.eval(0, {"v": 0.25}, {}) is False
    assert fsum.eval(0, {"v": -0.25}, {}) is True
    div = compile_lambda(_lambda(_right_values(["100", "7"] * (depth // 2),
                                               ["/", "%"] * (depth // 2), '"v"')))
    assert div.eval(0, {"v": 3}, {}) == 14
    with pytest.raises(EvalError, match="integer divide by zero"):
        div.eval(0, {"v": 0}, {})
    typed = '"v" > ' + _right_values(["1"] * depth, ["+"] * depth, "('a' + 1)")
    assert static_error(_lambda(typed).expr, {}) == (
        "Failed to handle right node: " * (depth + 1) + "mismatched type to binary "
        "operator. got string + int. see bool(), int(), float(), string(), duration()")
    typed = _right_values(["1"] * depth, ["+"] * depth, "1.5") + " > 0"
    assert static_error(_lambda(typed).expr, {}) == (
        "Failed to handle left node: " + "Failed to handle right node: " * (depth - 1)
        + "mismatched type to binary operator. got int + float. see bool(), int(), "
        "float(), string(), duration()")


_VALUE_OPERANDS = ['"i"', '"f"', '"s"', '"b"', '"missing"', "0", "1", "-2", "2.5", "0.0",
                   "'x'", "TRUE", '"i" + 1', "2 * 3", "1 - 2.5", "count()", '-"i"',
                   'abs("f")', '"i" > 1', "10s"]
_VALUE_OPERATORS = ["+", "-", "*", "/", "%", "==", "!=", "<", ">=", "AND", "OR"]


def _random_right_values(rng: random.Random, depth: int) -> str:
    expr = rng.choice(_VALUE_OPERANDS)
    for _ in range(depth):
        left = rng.choice(_VALUE_OPERANDS)
        op = rng.choices(_VALUE_OPERATORS, [6, 6, 6, 4, 3, 1, 1, 1, 1, 1, 1])[0]
        expr = f"{left} {op} ({expr})" if rng.random() < 0.9 else f"{left} {op} {expr}"
    return expr


def _reference_type(node, scope):
    """The type of a constant expression by plain recursion (the form the loops of
    lambdas._const_type_of must agree with)."""
    if isinstance(node, ast.Binary):
        if node.op in lambdas._COMPARISON or node.op in lambdas._LOGICAL:
            return "boolean"
        return lambdas.OPERATIONS.get((node.op, _reference_type(node.left, scope) or "",
                                       _reference_type(node.right, scope) or ""))
    return lambdas._const_type_of(node, scope)


def test_right_nested_values_loop_gives_what_nested_closures_give(monkeypatch):
    """Random right-nested arithmetic and comparisons over operands of every type
    (int/float mixes, zero divisors, overflow, missing fields, stateful functions): the
    loop's values and errors are the nested closures' ones, the constant types the
    recursive ones."""
    rng = random.Random(1974)
    points = [({"i": 3, "f": 0.5, "b": True, "s": "x"}, {}),
              ({"i": 0, "f": -2.0, "b": False, "s": ""}, {}),
              ({"i": 1 << 62, "f": 0.0}, {}), ({"i": 7}, {"s": "tag"})]
    for _ in range(400):
        expr = _random_right_values(rng, rng.randrange(1, 45))
        node = _lambda(expr)
        formatted = format_script("var x = lambda: " + expr + "\n")
        assert format_script(formatted) == formatted, expr
        assert lambdas._const_type_of(node.expr, {}) == _reference_type(node.expr, {}), expr
        with monkeypatch.context() as patch:
            patch.setattr(lambdas, "RIGHT_CHAIN", 1)
            looped = compile_lambda(node).copy_reset()
        with monkeypatch.context() as patch:
            patch.setattr(lambdas, "RIGHT_CHAIN", 10**9)
            nested = compile_lambda(node).copy_reset()
        assert looped.references == nested.references, expr
        assert looped.static_error == nested.static_error, expr
        for _ in range(2):
            for fields, tags in points:  # repr: NaN is NaN, 1 is not 1.0
                assert repr(_outcome(looped, fields, tags)) == repr(
                    _outcome(nested, fields, tags)), expr


def _random_call_args(rng: random.Random, depth: int) -> str:
    expr = rng.choice(_INNER)
    for _ in range(depth):
        name = rng.choice(["abs", "min", "float", "sigma", "if"])
        left = rng.choice(['"i"', "2.5", "'x'", "count()", 'abs("f")'])
        op = rng.choice(["+", "-", "*", ">", "AND"])
        form = rng.randrange(5)
        if form == 0:
            expr = f"{name}({left} {op} {expr})"
        elif form == 1:
            expr = f"{name}({expr}, {left} {op} {left})"
        elif form == 2:
            expr = f"{left} {op} {name}({expr})"
        elif form == 3:
            expr = f"{name}({name}({expr}) {op} {left})"
        else:
            expr = f"{name}(-{expr})" if rng.random() < 0.5 else f"{name}(({expr}))"
    return expr


def test_calls_of_operator_expressions_parse_on_one_stack():
    """``abs("v" + abs("v" + ...))``: the arguments of a call are parsed by the parser's
    own stack; random nests of calls, operators, parentheses and unary operators are
    parsed as written (their format is the text they came from, or its fixed point)."""
    rng = random.Random(1975)
    for _ in range(300):
        expr = _random_call_args(rng, rng.randrange(1, 40))
        text = "var x = lambda: " + expr + "\n"
        formatted = format_script(text)
        assert format_script(formatted) == formatted, expr
        if "((" not in expr and "(-" not in expr:
            assert formatted == text, expr
    lam = 'abs("v" + ' * 10000 + '"v"' + ")" * 10000
    node = _lambda(lam).expr
    depth = 0
    while isinstance(node, ast.Call):
        depth += 1
        node = node.args[0].right
    assert depth == 10000

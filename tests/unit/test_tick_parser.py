"""TICKscript lexing and parsing: every literal, precedence, errors with line and column."""

from __future__ import annotations

import pytest

from kapa_core.errors import TickError
from kapa_core.models.duration import SECOND, WEEK
from kapa_core.tick import ast
from kapa_core.tick.lexer import T, tokenize
from kapa_core.tick.parser import parse


def kinds(text: str) -> list[T]:
    return [t.type for t in tokenize(text) if t.type is not T.EOF]


def test_literals() -> None:
    source = ("/a\\/b/ 'it\\'s' " + "'" * 3 + "multi\n'line" + "'" * 3
              + ' "ref\\"q" 12 0755 1.5 .5 10s 1w 5ms *')
    values = [(t.type, t.text) for t in tokenize(source)[:-1]]
    assert values == [(T.REGEX, "a/b"), (T.STRING, "it's"), (T.STRING, "multi\n'line"),
                      (T.REFERENCE, 'ref"q'), (T.INT, "12"), (T.INT, "0755"),
                      (T.FLOAT, "1.5"), (T.FLOAT, ".5"), (T.DURATION, "10s"),
                      (T.DURATION, "1w"), (T.DURATION, "5ms"), (T.STAR, "*")]


def test_octal_and_durations_parse_to_values() -> None:
    program = parse("var a = 0755\nvar b = 1w\nvar c = 10s")
    values = [s.value for s in program.statements]
    assert values[0].value == 0o755
    assert (values[1].value, values[2].value) == (WEEK, 10 * SECOND)


def test_keywords_are_upper_case_and_lambda_needs_a_colon() -> None:
    assert kinds("TRUE FALSE AND OR true lambda lambda:") == [
        T.TRUE, T.FALSE, T.AND, T.OR, T.IDENT, T.IDENT, T.LAMBDA]


def test_slash_divides_after_an_operand_and_starts_a_regex_elsewhere() -> None:
    assert kinds('"a" / 2') == [T.REFERENCE, T.OP, T.INT]
    assert kinds('"a" =~ /x/') == [T.REFERENCE, T.OP, T.REGEX]


def test_consecutive_comments_are_one_and_attach_to_the_next_statement() -> None:
    program = parse("// first\n// second\nvar x = 1\n\n// third\nvar y = 2\n")
    assert program.comments == {0: "first\nsecond", 1: "third"}


def test_precedence() -> None:
    expr = parse('var x = lambda: "a" + 2 * 3 > 1 OR "b" == 1 AND !"c"').statements[0].value.expr
    assert isinstance(expr, ast.Binary) and expr.op == "OR"
    left, right = expr.left, expr.right
    assert left.op == ">" and left.left.op == "+" and left.left.right.op == "*"
    assert right.op == "AND" and right.left.op == "==" and isinstance(right.right, ast.Unary)


def test_chains_properties_and_udfs() -> None:
    chain = parse("stream|from().measurement('m')@myudf().opt(1)|httpOut('x')").statements[0]
    ops = []
    node = chain
    while isinstance(node, ast.Chain):
        ops.append((node.op, node.name))
        node = node.left
    assert ops[::-1] == [("|", "from"), (".", "measurement"), ("@", "myudf"), (".", "opt"),
                         ("|", "httpOut")]


def test_dbrp_and_typed_vars() -> None:
    program = parse('dbrp "telegraf"."autogen"\n// the threshold\nvar crit float\n')
    dbrp, var = program.statements
    assert (dbrp.database, dbrp.retention_policy) == ("telegraf", "autogen")
    assert (var.name, var.type, var.value, var.comment) == ("crit", "float", None,
                                                            "the threshold")


def test_lambda_keeps_its_source_text() -> None:
    lam = parse('var l = lambda: "v" >  10\n').statements[0].value
    assert lam.text == '"v" >  10'


@pytest.mark.parametrize(("script", "line", "col", "message"), [
    ("var x = 1.2.3", 1, 9, "multiple decimals in number"),
    ("var x = 1.5s", 1, 9, "invalid number or duration"),
    ("stream\n  |from(\n", 3, 1, "unexpected end of script"),
    ("var x = 'open", 1, 9, "unterminated string"),
    ('stream|from().measurement("cpu")', 1, 27, "did you use double quotes"),
    ("var x int8", 1, 7, "invalid var type 'int8'"),
    ("stream|from().where(lambda: \"v\" > )", 1, 35, "unexpected"),
    ("var x = 5\n$", 2, 1, "unexpected character '$'"),
    ('dbrp telegraf.autogen', 1, 6, "expected a database"),
    ("var x = /[/", 1, 9, "invalid regex"),
])
def test_errors_name_line_and_column(script: str, line: int, col: int, message: str) -> None:
    with pytest.raises(TickError) as err:
        parse(script)
    assert (err.value.line, err.value.column) == (line, col)
    assert message in str(err.value)
    assert str(err.value).startswith(f"line {line} char {col}: ")

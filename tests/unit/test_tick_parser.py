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
              + ' "ref\\"q" 12 0755 1.5 .5 10s 1w 5ms [*')
    values = [(t.type, t.text) for t in tokenize(source)[:-1]]
    assert values == [(T.REGEX, "a/b"), (T.STRING, "it's"), (T.STRING, "multi\n'line"),
                      (T.REFERENCE, 'ref"q'), (T.INT, "12"), (T.INT, "0755"),
                      (T.FLOAT, "1.5"), (T.FLOAT, ".5"), (T.DURATION, "10s"),
                      (T.DURATION, "1w"), (T.DURATION, "5ms"), (T.LBRACKET, "["),
                      (T.STAR, "*")]


def test_star_multiplies_after_an_operand_and_is_a_star_elsewhere() -> None:
    assert kinds('"a" * 2') == [T.REFERENCE, T.OP, T.INT]
    assert kinds("groupBy(*)") == [T.IDENT, T.LPAREN, T.STAR, T.RPAREN]


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


OPERAND = ('expected: "number","string","duration","identifier","TRUE","FALSE","==","(",'
           '"-","!"')


@pytest.mark.parametrize(("script", "line", "col", "message"), [
    ("var x = 1.2.3", 1, 9, 'parser: unexpected multiple decimals in number line 1 char 9 in '
     f'"var x = 1.2.3". {OPERAND}'),
    ("stream\n  |from(\n", 3, 1, f'parser: unexpected EOF line 3 char 1 in "". {OPERAND}'),
    ("stream\n  |from(\n  'a'", 3, 6,
     'parser: unexpected EOF line 3 char 6 in "  \'a\'". expected: ")"'),
    ("var x = 'open", 1, 9, "parser: unexpected unterminated string line 1 char 9 in "
     f'"var x = \'open". {OPERAND}'),
    ("stream|from().where(lambda: \"v\" > )", 1, 35,
     f'parser: unexpected ) line 1 char 35 in "da: "v" > )". {OPERAND}'),
    ("var x = 5\n$", 2, 1, "parser: unexpected unknown state, last char: '$' line 2 char 1 "
     f'in "$". {OPERAND}'),
    ('dbrp telegraf.autogen', 1, 6, 'parser: unexpected identifier line 1 char 6 in '
     '"dbrp telegraf.a". expected: "reference"'),
    ("var x = /[/", 1, 9, "parser: error parsing regexp: missing closing ]: `[`"),
    ("var x = 09", 1, 9, 'parser: illegal number syntax: "09"'),
    ("stream\n   ..measurement('m')", 2, 5,
     'parser: unexpected . line 2 char 5 in "   ..measureme". expected: "identifier"'),
    ("var x = ['a' 'b']", 1, 14,
     'parser: unexpected string line 1 char 14 in " x = [\'a\' \'b\']". expected: "]"'),
    ("var x = [1]", 1, 10, 'parser: unexpected number line 1 char 10 in "var x = [1]". '
     'expected: "identifier","string","*"'),
])
def test_errors_are_kapacitors(script: str, line: int, col: int, message: str) -> None:
    with pytest.raises(TickError) as err:
        parse(script)
    assert (err.value.line, err.value.column) == (line, col)
    assert str(err.value) == message


def test_what_kapacitor_parses_and_checks_later() -> None:
    # a number followed by a unit that makes no duration: the unit is the next statement
    assert len(parse("var x = 1.5s").statements) == 2
    # the type of a var and double-quoted arguments are checked when evaluated
    assert parse("var x int8").statements[0].type == "int8"
    assert isinstance(parse('stream|from().measurement("cpu")').statements[0].args[0],
                      ast.Reference)
    # operators outside lambdas
    value = parse("var b = (1 + 1) * 2").statements[0].value
    assert isinstance(value, ast.Binary) and value.op == "*" and value.left.parens


def test_regex_after_assignment_and_match_operators() -> None:
    assert kinds("var x = //") == [T.VAR, T.IDENT, T.ASSIGN, T.REGEX]
    assert kinds('"a" !~ /b/') == [T.REFERENCE, T.OP, T.REGEX]


def test_duration_literals_are_computed_as_influxql_does() -> None:
    assert parse("var d = 106751d").statements[0].value.value == 106751 * 86_400 * 10**9
    with pytest.raises(TickError, match=r"^parser: overflowed duration 106752d: choose a "
                       r"smaller duration or INF$"):
        parse("var d = 106752d")
    with pytest.raises(TickError, match=r"^parser: invalid duration$"):
        parse("var d = " + "9" * 5000 + "s")

"""The TICKscript parser: tokens to a :class:`~kapa_core.tick.ast.Program`.

The grammar is Kapacitor's, rule for rule, so that a script Kapacitor accepts parses and
one it refuses is refused with Kapacitor's words at Kapacitor's place::

    parser: unexpected | line 6 char 5 in "    |httpOut('". expected: ")"

Statements are ``var`` declarations, ``dbrp "db"."rp"`` and expressions. An expression
is a chain (``stream|from().measurement('m')``), a lambda, a list or an operator
expression, with Kapacitor's precedence (loosest first): ``OR``; ``AND``;
``== != =~ !~``; ``< <= > >=``; ``+ -``; ``* / %``; unary ``-`` and ``!``. What the
values mean is for the evaluator: the parser takes ``var x int8`` or ``'a' > 1``.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Generator
from typing import Any, TypeAlias

from kapa_core.errors import TickError
from kapa_core.tick import ast, limits
from kapa_core.tick.lambdas import _int64
from kapa_core.tick.lexer import T, Token, tokenize
from kapa_core.tick.regex import compile_regex, go_regex_error

VAR_TYPES = ("int", "float", "bool", "string", "regex", "duration", "lambda", "list", "star")
#: Binding strength of the binary operators.
PRECEDENCE = {"OR": 0, "AND": 1, "==": 2, "!=": 2, "=~": 2, "!~": 2, "<": 3, "<=": 3,
              ">": 3, ">=": 3, "+": 4, "-": 4, "*": 5, "/": 5, "%": 5}
#: Kapacitor's names of the token kinds, as its errors show them.
_NAMES = {T.EOF: "EOF", T.VAR: "var", T.DBRP: "dbrp", T.IDENT: "identifier",
          T.REFERENCE: "reference", T.DURATION: "duration", T.LAMBDA: "lambda",
          T.INT: "number", T.FLOAT: "number", T.STRING: "string", T.REGEX: "regex",
          T.COMMENT: "//", T.STAR: "*", T.DOT: ".", T.PIPE: "|", T.AT: "@", T.ASSIGN: "=",
          T.LPAREN: "(", T.RPAREN: ")", T.LBRACKET: "[", T.RBRACKET: "]", T.COMMA: ",",
          T.TRUE: "TRUE", T.FALSE: "FALSE", T.AND: "AND", T.OR: "OR"}
#: What may start an operand, as Kapacitor lists it when none does.
_OPERAND = ("number", "string", "duration", "identifier", "TRUE", "FALSE", "==", "(", "-",
            "!")
#: Nanoseconds of each unit of a duration literal.
_UNITS = {"u": 1000, "µ": 1000, "ms": 1_000_000, "s": 1_000_000_000,
          "m": 60_000_000_000, "h": 3_600_000_000_000, "d": 86_400_000_000_000,
          "w": 604_800_000_000_000}


#: Scripts at least this long are kept parsed (the last few): defining a task parses
#: its script, evaluates it, formats it and draws its DOT, and reading or listing it
#: after a restart formats and draws it; each would parse a script of megabytes again.
#: Programs are not changed once parsed, so one can serve every caller. A kept program
#: takes about 18 times its script's size, hence the bound on the scripts' bytes (the
#: most recent one is kept whatever its size).
KEEP_MIN = 16 * 1024
KEEP_COUNT = 2
KEEP_BYTES = 8 * 1024 * 1024
_kept: OrderedDict[tuple[str, int], ast.Program] = OrderedDict()
_kept_lock = threading.Lock()  # large scripts are parsed in worker threads


def parse(text: str) -> ast.Program:
    """Parse a script within the limits in force (see :mod:`kapa_core.tick.limits`):
    TickError naming ``[task] max-script-size`` or ``max-nodes`` beyond them."""
    limits.check_size(text)
    max_nodes = limits.current().max_nodes
    key = (text, max_nodes)
    if len(text) >= KEEP_MIN:
        with _kept_lock:
            program = _kept.get(key)
            if program is not None:
                _kept.move_to_end(key)
                return program
    try:
        program = Parser(text, max_nodes=max_nodes).program()
    except RecursionError:  # e.g. thousands of nested parentheses
        raise TickError("script nested too deeply") from None
    if len(text) >= KEEP_MIN:
        with _kept_lock:
            _kept[key] = program
            while len(_kept) > KEEP_COUNT or (len(_kept) > 1 and sum(
                    len(kept) for kept, _ in _kept) > KEEP_BYTES):
                _kept.popitem(last=False)
    return program


#: A rule of the parser run by :func:`_run`: it yields the rules it calls and is sent
#: back what each of them returned.
Rule: TypeAlias = Generator["Rule", ast.Node, ast.Node]


def _run(rule: Rule) -> ast.Node:
    """Run a generator rule of the parser and the rules it yields, each to its end, with
    a list for a stack (no Python recursion, however deep the nesting)."""
    stack = [rule]
    value: Any = None
    while stack:
        try:
            sub = stack[-1].send(value)
        except StopIteration as stop:
            stack.pop()
            value = stop.value
            continue
        stack.append(sub)
        value = None
    node: ast.Node = value
    return node


def _name(token: Token) -> str:
    if token.type is T.ERROR:
        return token.text
    if token.type is T.OP:
        return token.text
    return _NAMES[token.type]


class Parser:
    def __init__(self, text: str, *, max_nodes: int = 0) -> None:
        self.text = text
        all_tokens = tokenize(text, max_nodes=max_nodes)
        comment = T.COMMENT
        at = [i for i, t in enumerate(all_tokens) if t.type is comment]
        self.tokens = [t for t in all_tokens if t.type is not comment] if at else all_tokens
        # A comment belongs to the token that follows it (the last token is never one).
        # Separate comment blocks are kept apart by a blank entry, as Kapacitor's comment
        # nodes are (so a var's description reads as Kapacitor's).
        self.comment_before: dict[int, str] = {}
        pending: list[str] = []
        for count, i in enumerate(at):
            pending.append(all_tokens[i].text)
            if all_tokens[i + 1].type is not comment:
                # the token after it, among the tokens that are not comments
                self.comment_before[i - count] = "\n\n\n".join(pending)
                pending = []
        self.pos = 0
        self.last = len(self.tokens) - 1

    # -- helpers ------------------------------------------------------------------------
    def peek(self) -> Token:
        try:
            return self.tokens[self.pos]
        except IndexError:  # read past the end: the last token again (EOF)
            return self.tokens[self.last]

    def next(self) -> Token:
        self.pos += 1
        try:
            return self.tokens[self.pos - 1]
        except IndexError:
            return self.tokens[self.last]

    def backup(self) -> None:
        self.pos -= 1

    def expect(self, kind: T) -> Token:
        token = self.next()
        if token.type is not kind:
            self.unexpected(token, _NAMES[kind])
        return token

    def error(self, message: str, token: Token) -> TickError:
        """``parser: <message>``, remembering where (for callers, not in the text)."""
        exc = TickError("parser: " + message)
        exc.line, exc.column = token.line, token.col
        return exc

    def unexpected(self, token: Token, *expected: str) -> None:
        """Kapacitor's complaint: the token, its line and byte column, the ten bytes
        either side of it on its line, and what was expected there."""
        data = self.text.encode("utf-8", "surrogatepass")
        pos = len(self.text[:token.pos].encode("utf-8", "surrogatepass"))
        start = max(pos - 10, 0)
        newline = data.rfind(b"\n", start, pos)
        if newline >= 0:
            start = newline + 1
        stop = min(pos + 10, len(data))
        newline = data.find(b"\n", pos, stop)
        if newline >= 0:
            stop = newline
        line = data.count(b"\n", 0, pos) + 1
        char = pos - data.rfind(b"\n", 0, pos)
        shown = data[start:stop].decode("utf-8", "replace")
        wanted = ",".join(json.dumps(e, ensure_ascii=False) for e in expected)
        exc = TickError(f'parser: unexpected {_name(token)} line {line} char {char} in '
                        f'"{shown}". expected: {wanted}')
        exc.line, exc.column = token.line, token.col
        raise exc

    def comment(self, index: int) -> str:
        return self.comment_before.get(min(index, self.last), "")

    # -- statements ---------------------------------------------------------------------
    def program(self) -> ast.Program:
        program = ast.Program()
        while self.peek().type is not T.EOF:
            comment = self.comment(self.pos)
            statement = self.statement()
            if comment:
                program.comments[len(program.statements)] = comment
            program.statements.append(statement)
        comment = self.comment(self.pos)
        if comment:  # after the last statement: formatted as a statement of its own
            program.comments[len(program.statements)] = comment
        return program

    def statement(self) -> ast.Node:
        kind = self.peek().type
        if kind is T.VAR:
            return self.declaration()
        if kind is T.DBRP:
            return self.dbrp()
        return self.expression()

    def dbrp(self) -> ast.Dbrp:
        token = self.expect(T.DBRP)
        db = self.expect(T.REFERENCE)
        self.expect(T.DOT)
        rp = self.expect(T.REFERENCE)
        return ast.Dbrp(token.line, token.col, db.text, rp.text)

    def declaration(self) -> ast.VarDecl:
        comment = self.comment(self.pos)
        token = self.expect(T.VAR)
        name = self.expect(T.IDENT)
        if self.peek().type is T.ASSIGN:
            self.next()
            value = self.expression()
            return ast.VarDecl(token.line, token.col, name.text, value, comment=comment)
        kind = self.expect(T.IDENT)
        return ast.VarDecl(token.line, token.col, name.text, None, kind.text, comment)

    def expression(self) -> ast.Node:
        token = self.peek()
        if token.type is T.IDENT:
            self.next()
            following = self.peek().type
            self.backup()
            if following is T.LPAREN:
                term = self.function("global")
                if self.peek().type in (T.DOT, T.PIPE, T.AT, T.VAR, T.IDENT):
                    return self.chain(term)
                return self.precedence(term, 0)
            if following in (T.DOT, T.AT, T.PIPE, T.VAR, T.IDENT):
                ident = self.expect(T.IDENT)
                return self.chain(ast.Identifier(ident.line, ident.col, ident.text))
            return self.primary_expr()
        if token.type is T.LAMBDA:
            return self.lambda_expr()
        if token.type is T.LBRACKET:
            return self.string_list()
        return self.primary_expr()

    def chain(self, node: ast.Node) -> ast.Node:
        """``a|b().c()@d()``, left-associative, built without recursion."""
        while self.peek().type in (T.DOT, T.PIPE, T.AT):
            comment = self.comment(self.pos)
            op = self.next()
            self.next()
            is_call = op.type is T.PIPE or self.peek().type is T.LPAREN
            self.backup()
            if is_call:
                name = self.expect(T.IDENT)
                args = self.arguments(name)
                node = ast.Chain(name.line, name.col, node, op.text, name.text, args,
                                 comment=comment)
            else:
                name = self.expect(T.IDENT)  # a property read: placed at its operator
                node = ast.Chain(op.line, op.col, node, op.text, name.text, [],
                                 called=False, comment=comment)
        return node

    def function(self, kind: str) -> ast.Call:
        name = self.expect(T.IDENT)
        return ast.Call(name.line, name.col, name.text, self.arguments(name))

    def arguments(self, name: Token) -> list[ast.Node]:
        self.expect(T.LPAREN)
        args: list[ast.Node] = []
        while self.peek().type is not T.RPAREN:
            args.append(self.expression())
            if self.next().type is not T.COMMA:
                self.backup()
                break
        self.expect(T.RPAREN)
        return args

    def string_list(self) -> ast.ListLit:
        start = self.expect(T.LBRACKET)
        items: list[ast.Node] = []
        while self.peek().type is not T.RBRACKET:
            token = self.peek()
            if token.type is T.IDENT:
                self.next()
                items.append(ast.Identifier(token.line, token.col, token.text))
            elif token.type is T.STRING:
                self.next()
                items.append(ast.String(token.line, token.col, token.text,
                                        token.raw.startswith("'''")))
            elif token.type is T.STAR:
                self.next()
                items.append(ast.Star(token.line, token.col))
            else:
                self.unexpected(token, "identifier", "string", "*")
            if self.next().type is not T.COMMA:
                self.backup()
                break
        self.expect(T.RBRACKET)
        return ast.ListLit(start.line, start.col, items)

    # -- lambdas and operators ------------------------------------------------------------
    def lambda_expr(self) -> ast.Lambda:
        token = self.next()
        first = self.peek()
        expr = self.primary_expr()
        end = self.tokens[min(self.pos, self.last + 1) - 1]
        text = self._source(first, end) if end.pos >= first.pos else ""
        return ast.Lambda(token.line, token.col, expr, text)

    def _source(self, first: Token, last: Token) -> str:
        return self.text[first.pos:last.pos + len(last.raw)]

    def primary_expr(self) -> ast.Node:
        return _run(self._g_primary_expr())

    def _operator(self, token: Token) -> str | None:
        kind = token.type
        if kind is T.OP:
            return None if token.text == "!" else token.text
        if kind is T.AND:
            return "AND"
        if kind is T.OR:
            return "OR"
        return None

    def precedence(self, lhs: ast.Node, minimum: int) -> ast.Node:
        return _run(self._g_precedence(lhs, minimum))

    def primary(self) -> ast.Node:
        token = self.peek()
        if token.type is T.LPAREN or (token.type is T.OP and token.text in ("-", "!")):
            return _run(self._g_primary())
        return self._operand(token)

    # The rules that nest (parentheses, operators, unary operators) are generators run
    # by _run with a stack of their own: ``a OR (b OR (c OR ...))`` is taken as deep as
    # Kapacitor takes it. ``x = yield rule`` is a call of that rule.
    def _g_primary_expr(self) -> Rule:
        lhs = yield self._g_primary()
        return (yield self._g_precedence(lhs, 0))

    def _g_precedence(self, lhs: ast.Node, minimum: int) -> Rule:
        op_text = self._operator(self.peek())
        while op_text is not None and PRECEDENCE[op_text] >= minimum:
            op = self.next()
            token = self.peek()
            if token.type is T.LPAREN or (token.type is T.OP and token.text in ("-", "!")):
                rhs = yield self._g_primary()
            elif self._at_call(token):
                rhs = yield self._g_call()
            else:
                rhs = self._operand(token)
            look = self._operator(self.peek())
            while look is not None and PRECEDENCE[look] > PRECEDENCE[op_text]:
                rhs = yield self._g_precedence(rhs, PRECEDENCE[look])
                look = self._operator(self.peek())
            lhs = ast.Binary(op.line, op.col, op_text, lhs, rhs,
                             multiline=rhs.line > lhs.line)
            op_text = look
        return lhs

    def _g_primary(self) -> Rule:
        token = self.peek()
        kind = token.type
        if kind is T.LPAREN:
            # ``((((x))))``: the opening parentheses are counted, not recursed into
            # (Kapacitor takes a hundred thousand of them); each level closed is the left
            # operand of the operators that follow it in the level around it.
            opened = 0
            while self.peek().type is T.LPAREN:
                self.next()
                opened += 1
            expr = yield self._g_primary_expr()
            while True:
                if isinstance(expr, ast.Binary):
                    expr.parens = True
                self.expect(T.RPAREN)
                opened -= 1
                if not opened:
                    return expr
                expr = yield self._g_precedence(expr, 0)
        if kind is T.OP and token.text in ("-", "!"):
            run = []  # ``!!!x``: a run of operators without recursion
            while token.type is T.OP and token.text in ("-", "!"):
                self.next()
                run.append(token)
                token = self.peek()
            expr = yield self._g_primary()
            for op in reversed(run):
                expr = ast.Unary(op.line, op.col, op.text, expr)
            return expr
        if self._at_call(token):
            return (yield self._g_call())
        return self._operand(token)

    def _at_call(self, token: Token) -> bool:
        """``token`` (the next one) is the name of a call: ``f(``."""
        nxt = self.pos + 1
        return (token.type is T.IDENT and nxt <= self.last
                and self.tokens[nxt].type is T.LPAREN)

    def _operand(self, token: Token) -> ast.Node:
        """An operand that is not parenthesised nor under a unary operator."""
        kind = token.type
        if kind is T.INT or kind is T.FLOAT:
            self.next()
            return self.number(token)
        if kind is T.STRING:
            self.next()
            return ast.String(token.line, token.col, token.text, token.raw.startswith("'''"))
        if kind is T.TRUE or kind is T.FALSE:
            self.next()
            return ast.Bool(token.line, token.col, kind is T.TRUE)
        if kind is T.DURATION:
            self.next()
            return ast.DurationLit(token.line, token.col, self.duration(token), token.text)
        if kind is T.REGEX:
            self.next()
            try:
                compile_regex(token.text)
            except re.error as exc:
                raise self.error(go_regex_error(str(exc)), token) from None
            return ast.Regex(token.line, token.col, token.text)
        if kind is T.STAR:
            self.next()
            return ast.Star(token.line, token.col)
        if kind is T.REFERENCE:
            self.next()
            return ast.Reference(token.line, token.col, token.text,
                                 len(self.text[:token.pos].encode("utf-8", "surrogatepass"))
                                 if not self.text.isascii() else token.pos)
        if kind is T.IDENT:
            self.next()
            if self.peek().type is T.LPAREN:
                self.backup()
                return self.lambda_function()
            return ast.Identifier(token.line, token.col, token.text)
        self.unexpected(token, *_OPERAND)
        raise AssertionError("unreachable")

    def lambda_function(self) -> ast.Call:
        call = _run(self._g_call())
        assert isinstance(call, ast.Call)  # what _g_call returns
        return call

    def _g_call(self) -> Rule:
        """``f(a, b)`` in a lambda. A call whose first argument is a call
        (``abs(abs(abs(x)))``) is descended in a loop: Kapacitor takes a hundred thousand
        of them. Each level then reads the rest of its arguments; an argument that is an
        operator expression with calls in it (``abs("v" + abs("v" + ...))``) is a rule
        run by the same stack, not a recursion."""
        open_calls: list[tuple[Token, list[ast.Node]]] = []
        while True:
            name = self.expect(T.IDENT)
            self.expect(T.LPAREN)
            if self._at_call(self.peek()):
                open_calls.append((name, []))
                continue
            call = yield self._g_call_rest(name, [])
            break
        while open_calls:
            name, args = open_calls.pop()
            arg: ast.Node = call
            if self._operator(self.peek()) is not None:
                arg = yield self._g_precedence(arg, 0)
            args.append(arg)
            if self.next().type is T.COMMA:
                call = yield self._g_call_rest(name, args)
            else:
                self.backup()
                self.expect(T.RPAREN)
                call = ast.Call(name.line, name.col, name.text, args)
        return call

    def _g_call_rest(self, name: Token,
                     args: list[ast.Node]) -> Rule:
        """The arguments of a call after its ``(`` (or after a comma) and its ``)``."""
        while self.peek().type is not T.RPAREN:
            args.append((yield self._g_primary_expr()))
            if self.next().type is not T.COMMA:
                self.backup()
                break
        self.expect(T.RPAREN)
        return ast.Call(name.line, name.col, name.text, args)

    def duration(self, token: Token) -> int:
        """Nanoseconds of a duration literal, as InfluxQL's parser (which Kapacitor uses)
        computes them: in int64, wrapping around; a negative result is an overflow."""
        text = token.text
        digits = text.rstrip("uµsmhdw")
        unit = text[len(digits):]
        if not digits.isascii() or len(digits) > 19 or int(digits) >= 1 << 63:
            raise self.error("invalid duration", token)
        value = _int64(int(digits) * _UNITS[unit])
        if value < 0:
            raise self.error(f"overflowed duration {int(digits)}{unit}: choose a smaller "
                             "duration or INF", token)
        return value

    def number(self, token: Token) -> ast.Number:
        text = token.text
        if token.type is T.FLOAT:
            value = float(text) if text.isascii() else math.inf
            if not math.isinf(value):
                return ast.Number(token.line, token.col, value)
        else:
            octal = len(text) > 1 and text.startswith("0")
            try:
                if text.isascii():
                    value = int(text, 8 if octal else 10)
                    if value < 1 << 63:
                        return ast.Number(token.line, token.col, value, octal)
            except ValueError:  # 08, 09...
                pass
        raise self.error(f"illegal number syntax: {json.dumps(text, ensure_ascii=False)}",
                         token)

"""The TICKscript parser: tokens to a :class:`~kapa_core.tick.ast.Program`.

Statements are ``var`` declarations, ``dbrp "db"."rp"`` and chain expressions. Inside a
lambda the full expression grammar applies, with Kapacitor's precedence (loosest first):
``OR``; ``AND``; ``== != =~ !~``; ``< <= > >=``; ``+ -``; ``* / %``; unary ``-`` and ``!``.
Errors carry the line and column of the offending token and show its text.
"""

from __future__ import annotations

from kapa_core.errors import TickError
from kapa_core.models.duration import Duration
from kapa_core.tick import ast, limits
from kapa_core.tick.lexer import T, Token, tokenize

VAR_TYPES = ("int", "float", "bool", "string", "regex", "duration", "lambda", "list", "star")
PRECEDENCE = [("OR",), ("AND",), ("==", "!=", "=~", "!~"), ("<", "<=", ">", ">="), ("+", "-"),
              ("*", "/", "%")]


def parse(text: str) -> ast.Program:
    """Parse a script within the limits in force (see :mod:`kapa_core.tick.limits`):
    TickError naming ``[task] max-script-size`` or ``max-nodes`` beyond them."""
    limits.check_size(text)
    try:
        return Parser(text, max_nodes=limits.current().max_nodes).program()
    except RecursionError:  # e.g. thousands of nested parentheses
        raise TickError("script nested too deeply") from None


class Parser:
    def __init__(self, text: str, *, max_nodes: int = 0) -> None:
        self.text = text
        all_tokens = tokenize(text, max_nodes=max_nodes)
        self.tokens = [t for t in all_tokens if t.type is not T.COMMENT]
        # A comment belongs to the token that follows it.
        self.comment_before: dict[int, str] = {}
        index = 0
        pending = ""
        for token in all_tokens:
            if token.type is T.COMMENT:
                pending = token.text
                continue
            if pending:
                self.comment_before[index] = pending
                pending = ""
            index += 1
        self.pos = 0

    # -- helpers ------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        if token.type is not T.EOF:
            self.pos += 1
        return token

    def error(self, message: str, token: Token | None = None) -> TickError:
        token = token or self.tok
        shown = token.raw or ("end of script" if token.type is T.EOF else token.text)
        return TickError(message, token.line, token.col, shown)

    def expect(self, kind: T, what: str) -> Token:
        if self.tok.type is not kind:
            found = "end of script" if self.tok.type is T.EOF else repr(self.tok.raw)
            raise self.error(f"expected {what}, found {found}")
        return self.advance()

    # -- statements ---------------------------------------------------------------------
    def program(self) -> ast.Program:
        program = ast.Program()
        while self.tok.type is not T.EOF:
            comment = self.comment_before.get(self.pos, "")
            statement = self.statement(comment)
            if comment:
                program.comments[len(program.statements)] = comment
            program.statements.append(statement)
        return program

    def statement(self, comment: str) -> ast.Node:
        token = self.tok
        if token.type is T.VAR:
            self.advance()
            name = self.expect(T.IDENT, "a variable name")
            if self.tok.type is T.ASSIGN:
                self.advance()
                value = self.chain_expr()
                return ast.VarDecl(token.line, token.col, name.text, value, comment=comment)
            if self.tok.type is T.IDENT and self.tok.text in VAR_TYPES:
                kind = self.advance().text
                return ast.VarDecl(token.line, token.col, name.text, None, kind, comment)
            if self.tok.type is T.IDENT:
                raise self.error(f"invalid var type {self.tok.text!r} (expected one of "
                                 f"{', '.join(VAR_TYPES)})")
            raise self.error("expected '=' or a type after the variable name")
        if token.type is T.DBRP:
            self.advance()
            db = self.expect(T.REFERENCE, 'a database as a double-quoted name: "db"')
            self.expect(T.DOT, "'.' between database and retention policy")
            rp = self.expect(T.REFERENCE, 'a retention policy as a double-quoted name: "rp"')
            return ast.Dbrp(token.line, token.col, db.text, rp.text)
        return self.chain_expr()

    # -- chains -------------------------------------------------------------------------
    def chain_expr(self) -> ast.Node:
        node = self.chain_primary()
        while self.tok.type in (T.PIPE, T.DOT, T.AT):
            comment = self.comment_before.get(self.pos, "")
            op_token = self.advance()
            name = self.expect(T.IDENT, f"a method name after {op_token.text!r}")
            if self.tok.type is T.LPAREN:
                args = self.arguments()
                node = ast.Chain(name.line, name.col, node, op_token.text, name.text, args,
                                 comment=comment)
            elif op_token.type is T.DOT:
                node = ast.Chain(name.line, name.col, node, ".", name.text, [], called=False)
            else:
                raise self.error(f"expected '(' after {name.text!r}")
        return node

    def chain_primary(self) -> ast.Node:
        token = self.tok
        if token.type is T.IDENT:
            self.advance()
            if self.tok.type is T.LPAREN:
                return ast.Call(token.line, token.col, token.text, self.arguments())
            return ast.Identifier(token.line, token.col, token.text)
        if token.type is T.LAMBDA:
            return self.lambda_expr()
        if token.type is T.LBRACKET:
            return self.list_literal()
        if token.type is T.STAR:
            self.advance()
            return ast.Star(token.line, token.col)
        if token.type is T.REFERENCE:
            raise self.error(f'unexpected reference "{token.text}": did you use double '
                             "quotes instead of single quotes?")
        return self.literal()

    def arguments(self) -> list[ast.Node]:
        self.expect(T.LPAREN, "'('")
        args: list[ast.Node] = []
        while self.tok.type is not T.RPAREN:
            args.append(self.argument())
            if self.tok.type is T.COMMA:
                self.advance()
                continue
            if self.tok.type is not T.RPAREN:
                found = "end of script" if self.tok.type is T.EOF else repr(self.tok.raw)
                raise self.error(f"expected ',' or ')' in the argument list, found {found}")
        self.advance()
        return args

    def argument(self) -> ast.Node:
        token = self.tok
        if token.type is T.OP and token.text == "-" and self.peek().type in (
                T.INT, T.FLOAT, T.DURATION):
            self.advance()
            value = self.literal()
            return ast.Unary(token.line, token.col, "-", value)
        return self.chain_expr()

    def list_literal(self) -> ast.ListLit:
        start = self.expect(T.LBRACKET, "'['")
        items: list[ast.Node] = []
        while self.tok.type is not T.RBRACKET:
            if self.tok.type is T.STAR:
                t = self.advance()
                items.append(ast.Star(t.line, t.col))
            elif self.tok.type is T.IDENT:
                t = self.advance()
                items.append(ast.Identifier(t.line, t.col, t.text))
            elif self.tok.type is T.STRING:
                t = self.advance()
                items.append(ast.String(t.line, t.col, t.text))
            else:
                raise self.error("list items must be strings, identifiers or *")
            if self.tok.type is T.COMMA:
                self.advance()
            elif self.tok.type is not T.RBRACKET:
                raise self.error("expected ',' or ']' in the list")
        self.advance()
        return ast.ListLit(start.line, start.col, items)

    # -- lambdas ------------------------------------------------------------------------
    def lambda_expr(self) -> ast.Lambda:
        token = self.expect(T.LAMBDA, "'lambda:'")
        first = self.tok
        expr = self.binary(0)
        end = self.tokens[self.pos - 1]
        text = self._source(first, end)
        return ast.Lambda(token.line, token.col, expr, text)

    def _source(self, first: Token, last: Token) -> str:
        lines = self.text.split("\n")
        if first.line == last.line:
            return lines[first.line - 1][first.col - 1:last.col - 1 + len(last.raw)]
        out = [lines[first.line - 1][first.col - 1:]]
        out += lines[first.line:last.line - 1]
        out.append(lines[last.line - 1][:last.col - 1 + len(last.raw)])
        return "\n".join(out)

    def binary(self, level: int) -> ast.Node:
        if level == len(PRECEDENCE):
            return self.unary()
        ops = PRECEDENCE[level]
        left = self.binary(level + 1)
        while self._is_op(ops):
            token = self.advance()
            multiline = self.tok.line > token.line
            right = self.binary(level + 1)
            left = ast.Binary(token.line, token.col, token.text, left, right,
                              multiline=multiline)
        return left

    def _is_op(self, ops: tuple[str, ...]) -> bool:
        token = self.tok
        if token.type is T.OP:
            return token.text in ops
        if token.type is T.AND:
            return "AND" in ops
        if token.type is T.OR:
            return "OR" in ops
        if token.type is T.STAR:
            return "*" in ops
        return False

    def unary(self) -> ast.Node:
        token = self.tok
        if token.type is T.OP and token.text in ("-", "!"):
            self.advance()
            return ast.Unary(token.line, token.col, token.text, self.unary())
        return self.operand()

    def operand(self) -> ast.Node:
        token = self.tok
        if token.type is T.LPAREN:
            self.advance()
            expr = self.binary(0)
            self.expect(T.RPAREN, "')'")
            if isinstance(expr, ast.Binary):
                expr.parens = True
            return expr
        if token.type is T.REFERENCE:
            self.advance()
            return ast.Reference(token.line, token.col, token.text)
        if token.type is T.IDENT:
            self.advance()
            if self.tok.type is T.LPAREN:
                self.advance()
                args: list[ast.Node] = []
                while self.tok.type is not T.RPAREN:
                    args.append(self.binary(0))
                    if self.tok.type is T.COMMA:
                        self.advance()
                    elif self.tok.type is not T.RPAREN:
                        raise self.error("expected ',' or ')' in the function arguments")
                self.advance()
                return ast.Call(token.line, token.col, token.text, args)
            return ast.Identifier(token.line, token.col, token.text)
        if token.type is T.STAR:
            self.advance()
            return ast.Star(token.line, token.col)
        return self.literal()

    def literal(self) -> ast.Node:
        token = self.tok
        kind = token.type
        if kind is T.INT:
            self.advance()
            text = token.text
            octal = len(text) > 1 and text.startswith("0")
            try:
                value = int(text, 8) if octal else int(text)
            except ValueError:  # 08, 09..., or more digits than int() converts
                raise self.error(f"invalid integer {text[:30]!r}", token) from None
            return ast.Number(token.line, token.col, value, octal)
        if kind is T.FLOAT:
            self.advance()
            return ast.Number(token.line, token.col, float(token.text))
        if kind is T.DURATION:
            self.advance()
            try:
                value = int(Duration.parse(token.text, tick=True))
            except ValueError:  # more digits than int() converts
                raise self.error(f"invalid duration {token.text[:30]!r}", token) from None
            return ast.DurationLit(token.line, token.col, value, token.text)
        if kind is T.STRING:
            self.advance()
            return ast.String(token.line, token.col, token.text,
                              token.raw.startswith("'''"))
        if kind is T.REGEX:
            self.advance()
            return ast.Regex(token.line, token.col, token.text)
        if kind in (T.TRUE, T.FALSE):
            self.advance()
            return ast.Bool(token.line, token.col, kind is T.TRUE)
        if kind is T.EOF:
            raise self.error("unexpected end of script")
        raise self.error(f"unexpected {token.raw!r}")

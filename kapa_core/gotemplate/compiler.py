"""Parse a Go template into closures: text, actions, pipelines, control structures.

Each node compiles to ``fn(state) -> None`` that appends to ``state.out``; each pipeline
to ``fn(state) -> value``. Parsing happens once; execution is closure calls only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kapa_core.gotemplate import funcs as builtins
from kapa_core.gotemplate.gofmt import go_format

MAX_DEPTH = 1000


class TemplateError(Exception):
    def __init__(self, message: str, line: int = 0, column: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


class _NoValue:
    """Go's invalid reflect.Value: a missing map key read as a field."""

    def go_string(self) -> str:
        return "<no value>"

    def __bool__(self) -> bool:
        return False


NO_VALUE = _NoValue()


class _State:
    __slots__ = ("depth", "dot", "out", "vars")

    def __init__(self, dot: Any) -> None:
        self.out: list[str] = []
        self.vars: list[tuple[str, Any]] = [("$", dot)]
        self.dot = dot
        self.depth = 0

    def lookup(self, name: str) -> Any:
        for key, value in reversed(self.vars):
            if key == name:
                return value
        raise TemplateError(f"undefined variable: {name}")

    def assign(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        raise TemplateError(f"undefined variable: {name}")


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


# -- lexing ----------------------------------------------------------------------------------
TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<declare>:=)
  | (?P<assign>=)
  | (?P<pipe>\|)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\]|\\.)+')
  | (?P<number>[-+]?(?:0[xX][0-9a-fA-F_]+|(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))
  | (?P<variable>\$\w*)
  | (?P<field>(?:\.\w+)+|\.)
  | (?P<ident>[A-Za-z_]\w*)
""", re.VERBOSE)

ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0",
           "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)",
                  lambda m: chr(int(m.group(1)[1:], 16)) if m.group(1)[0] in "xuU"
                  and len(m.group(1)) > 1 else ESCAPES.get(m.group(1), m.group(1)), body)


class _Parser:
    def __init__(self, text: str, name: str, funcs: dict[str, Callable[..., Any]],
                 html: bool) -> None:
        self.text = text
        self.name = name
        self.funcs = funcs
        self.html = html
        self.defines: dict[str, Callable[[_State], None]] = {}
        self.items = self._split()
        self.pos = 0

    def error(self, message: str, offset: int) -> TemplateError:
        line = self.text.count("\n", 0, offset) + 1
        column = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        return TemplateError(f"template: {self.name}:{line}: {message}", line, column)

    # text and actions, with trim markers applied
    def _split(self) -> list[tuple[str, str, int]]:
        items: list[tuple[str, str, int]] = []
        text = self.text
        pos = 0
        trim_next = False
        while True:
            start = text.find("{{", pos)
            if start < 0:
                chunk = text[pos:]
                items.append(("text", chunk.lstrip() if trim_next else chunk, pos))
                break
            chunk = text[pos:start]
            inner_start = start + 2
            if text.startswith("- ", inner_start) or text.startswith("-\t", inner_start) or \
                    text.startswith("-\n", inner_start):
                chunk = chunk.rstrip()
                inner_start += 1
            if trim_next:
                chunk = chunk.lstrip()
            items.append(("text", chunk, pos))
            end = self._action_end(inner_start, start)
            inner_end = end
            trim_next = False
            if end - 2 >= inner_start and text[end - 1] == "-" and text[end - 2].isspace():
                trim_next = True
                inner_end = end - 1
            items.append(("action", text[inner_start:inner_end], inner_start))
            pos = end + 2
        return [i for i in items if i[0] == "action" or i[1]]

    def _action_end(self, pos: int, start: int) -> int:
        text = self.text
        i = pos
        if text.startswith("/*", i) or text.startswith(" /*", i):
            close = text.find("*/", i)
            if close < 0:
                raise self.error("unclosed comment", start)
            end = text.find("}}", close)
            if end < 0:
                raise self.error("unclosed action", start)
            return end
        while i < len(text):
            ch = text[i]
            if ch in "\"'`":
                close = self._skip_quoted(i)
                if close < 0:
                    raise self.error("unterminated quoted string", i)
                i = close + 1
                continue
            if text.startswith("}}", i):
                return i
            if False:
                break
            i += 1
        raise self.error("unclosed action", start)

    def _skip_quoted(self, i: int) -> int:
        quote = self.text[i]
        j = i + 1
        while j < len(self.text):
            if self.text[j] == "\\" and quote != "`":
                j += 2
                continue
            if self.text[j] == quote:
                return j
            if self.text[j] == "\n" and quote != "`":
                return -1
            j += 1
        return -1

    # -- structure -------------------------------------------------------------------------
    def parse(self) -> Callable[[_State], None]:
        body, end = self.block(())
        if end is not None:
            raise self.error(f"unexpected {{{{{end[0]}}}}}", end[1])
        return body

    def block(self, stops: tuple[str, ...]) -> tuple[Callable[[_State], None],
                                                   tuple[str, int, str] | None]:
        nodes: list[Callable[[_State], None]] = []
        while self.pos < len(self.items):
            kind, text, offset = self.items[self.pos]
            self.pos += 1
            if kind == "text":
                nodes.append(_text(text))
                continue
            stripped = text.strip()
            if stripped.startswith("/*"):
                if not stripped.endswith("*/"):
                    raise self.error("comment ends before closing delimiter", offset)
                continue
            word = stripped.split(None, 1)[0] if stripped else ""
            rest = stripped[len(word):].strip()
            if word in stops or (word == "else" and "else" in stops):
                return _seq(nodes), (word, offset, rest)
            if word in ("end", "else"):
                raise self.error(f"unexpected {{{{{word}}}}}", offset)
            if word in ("if", "with"):
                nodes.append(self.conditional(word, rest, offset))
            elif word == "range":
                nodes.append(self.range_(rest, offset))
            elif word == "define":
                self.define(rest, offset)
            elif word in ("template", "block"):
                nodes.append(self.template(word, rest, offset))
            elif word == "break":
                nodes.append(_raise(_Break))
            elif word == "continue":
                nodes.append(_raise(_Continue))
            else:
                if not stripped:
                    raise self.error("missing value for command", offset)
                pipe = self.pipeline(stripped, offset, allow_decl=True)
                nodes.append(self._output(pipe))
        if stops:
            raise self.error("unexpected EOF", len(self.text))
        return _seq(nodes), None

    def _output(self, pipe: Callable[[_State], Any] | tuple) -> Callable[[_State], None]:
        if isinstance(pipe, tuple):  # a declaration prints nothing
            decl = pipe[0]
            return decl
        html = self.html

        def output(state: _State) -> None:
            value = pipe(state)
            text = value if type(value) is str else go_format(value)
            state.out.append(builtins.html_escape(text) if html else text)
        return output

    def conditional(self, word: str, rest: str, offset: int) -> Callable[[_State], None]:
        branches: list[tuple[Any, Callable[[_State], None]]] = []
        cond = self.pipeline(rest, offset, allow_decl=True)
        body, end = self.block(("end", "else"))
        branches.append((cond, body))
        otherwise: Callable[[_State], None] | None = None
        while end is not None and end[0] == "else":
            tail = end[2]
            if tail.startswith(("if ", "with ")):
                _sub_word, sub_rest = tail.split(None, 1)
                cond = self.pipeline(sub_rest, end[1], allow_decl=True)
                body, end = self.block(("end", "else"))
                branches.append((cond, body))
                continue
            otherwise, end = self.block(("end",))
            break
        with_ = word == "with"

        def run(state: _State) -> None:
            mark = len(state.vars)
            try:
                for cond, body in branches:
                    value = _pipe_value(cond, state)
                    if builtins.truth(value):
                        if with_:
                            saved, state.dot = state.dot, value
                            try:
                                body(state)
                            finally:
                                state.dot = saved
                        else:
                            body(state)
                        return
                if otherwise is not None:
                    otherwise(state)
            finally:
                del state.vars[mark:]
        return run

    def range_(self, rest: str, offset: int) -> Callable[[_State], None]:
        names: list[str] = []
        m = re.match(r"^(\$\w*)\s*(?:,\s*(\$\w*)\s*)?:=\s*(.*)$", rest, re.S)
        if m:
            names = [n for n in (m.group(1), m.group(2)) if n]
            rest = m.group(3)
        source = self.pipeline(rest, offset)
        body, end = self.block(("end", "else"))
        otherwise = None
        if end is not None and end[0] == "else":
            otherwise, end = self.block(("end",))

        def run(state: _State) -> None:
            value = source(state)
            if value is None or value is NO_VALUE:
                items: list[tuple[Any, Any]] = []
            elif isinstance(value, dict):
                items = sorted(value.items(), key=lambda kv: (str(type(kv[0])), kv[0]))
            elif isinstance(value, list | tuple | str):
                items = list(enumerate(value))
            elif isinstance(value, int) and not isinstance(value, bool):
                items = [(i, i) for i in range(value)]
            else:
                raise TemplateError(f"range can't iterate over {go_format(value)}")
            if not items:
                if otherwise is not None:
                    otherwise(state)
                return
            saved = state.dot
            mark = len(state.vars)
            try:
                for key, item in items:
                    del state.vars[mark:]
                    if len(names) == 1:
                        state.vars.append((names[0], item))
                    elif len(names) == 2:
                        state.vars.append((names[0], key))
                        state.vars.append((names[1], item))
                    state.dot = item
                    try:
                        body(state)
                    except _Continue:
                        continue
                    except _Break:
                        break
            finally:
                state.dot = saved
                del state.vars[mark:]
        return run

    def define(self, rest: str, offset: int) -> None:
        m = re.match(r'^"([^"]*)"$|^`([^`]*)`$', rest)
        if not m:
            raise self.error("define: expected a quoted name", offset)
        name = m.group(1) if m.group(1) is not None else m.group(2)
        body, _ = self.block(("end",))
        self.defines[name] = body

    def template(self, word: str, rest: str, offset: int) -> Callable[[_State], None]:
        m = re.match(r'^("(?:[^"\\]|\\.)*"|`[^`]*`)\s*(.*)$', rest, re.S)
        if not m:
            raise self.error(f"{word}: expected a quoted template name", offset)
        name = _unquote(m.group(1))
        arg = self.pipeline(m.group(2), offset) if m.group(2).strip() else None
        if word == "block":
            body, _ = self.block(("end",))
            self.defines.setdefault(name, body)
        defines = self.defines

        def run(state: _State) -> None:
            body = defines.get(name)
            if body is None:
                raise TemplateError(f'no such template "{name}"')
            if state.depth >= MAX_DEPTH:
                raise TemplateError("exceeded maximum template depth")
            value = arg(state) if arg is not None else None
            inner = _State(value)
            inner.out = state.out
            inner.depth = state.depth + 1
            body(inner)
        return run

    # -- pipelines ---------------------------------------------------------------------------
    def tokens(self, text: str, offset: int) -> list[tuple[str, str]]:
        out = []
        pos = 0
        while pos < len(text):
            m = TOKEN.match(text, pos)
            if m is None:
                raise self.error(f"unexpected {text[pos]!r} in command", offset + pos)
            kind = m.lastgroup or ""
            if kind != "space":
                out.append((kind, m.group()))
            pos = m.end()
        return out

    def pipeline(self, text: str, offset: int, allow_decl: bool = False) -> Any:
        toks = self.tokens(text, offset)
        decl = None
        if len(toks) >= 2 and toks[0][0] == "variable" and toks[1][0] in ("declare", "assign"):
            if not allow_decl and toks[1][0] == "declare":
                pass
            decl = (toks[0][1], toks[1][0])
            toks = toks[2:]
        if not toks:
            raise self.error("missing value for command", offset)
        pipe = self._pipe(toks, offset)
        if decl is None:
            return pipe
        name, how = decl

        def declare(state: _State) -> Any:
            value = pipe(state)
            if how == "declare":
                state.vars.append((name, value))
            else:
                state.assign(name, value)
            return value
        if allow_decl:
            return (lambda state: declare(state) and None, declare)
        return declare

    def _pipe(self, toks: list[tuple[str, str]], offset: int) -> Callable[[_State], Any]:
        commands: list[list[tuple[str, str]]] = [[]]
        depth = 0
        for tok in toks:
            if tok[0] == "lparen":
                depth += 1
            elif tok[0] == "rparen":
                depth -= 1
                if depth < 0:
                    raise self.error("unexpected right paren", offset)
            if tok[0] == "pipe" and depth == 0:
                commands.append([])
            else:
                commands[-1].append(tok)
        if depth:
            raise self.error("unclosed left paren", offset)
        if any(not c for c in commands):
            raise self.error("missing command in pipeline", offset)
        compiled = [self._command(c, offset, i > 0) for i, c in enumerate(commands)]
        if len(compiled) == 1:
            first = compiled[0]
            return lambda state: first(state, _NOTHING)

        def run(state: _State) -> Any:
            value: Any = _NOTHING
            for command in compiled:
                value = command(state, value)
            return value
        return run

    def _operands(self, toks: list[tuple[str, str]], offset: int
                  ) -> list[Callable[[_State], Any]]:
        out = []
        i = 0
        while i < len(toks):
            kind, text = toks[i]
            if kind == "lparen":
                depth, j = 1, i + 1
                while j < len(toks) and depth:
                    depth += {"lparen": 1, "rparen": -1}.get(toks[j][0], 0)
                    j += 1
                inner = self._pipe(toks[i + 1:j - 1], offset)
                # a parenthesised pipeline may be followed by .Field
                if j < len(toks) and toks[j][0] == "field" and toks[j][1] != ".":
                    out.append(_chain(inner, toks[j][1]))
                    j += 1
                else:
                    out.append(inner)
                i = j
                continue
            out.append(self._operand(kind, text, offset))
            i += 1
        return out

    def _operand(self, kind: str, text: str, offset: int) -> Callable[[_State], Any]:
        if kind == "string":
            value: Any = _unquote(text)
            return lambda state: value
        if kind == "raw":
            raw = text[1:-1]
            return lambda state: raw
        if kind == "char":
            ch = _unquote(text)
            if len(ch) != 1:
                raise self.error(f"malformed character constant: {text}", offset)
            code = ord(ch)
            return lambda state: code
        if kind == "number":
            number = _number(text)
            if number is None:
                raise self.error(f"bad number syntax: {text!r}", offset)
            return lambda state: number
        if kind == "field":
            if text == ".":
                return lambda state: state.dot
            path = text[1:].split(".")
            return lambda state: _fields(state.dot, path)
        if kind == "variable":
            name, _, tail = text.partition(".")
            if tail:
                path = tail.split(".")
                return lambda state: _fields(state.lookup(name), path)
            return lambda state: state.lookup(name)
        if kind == "ident":
            if text == "true":
                return lambda state: True
            if text == "false":
                return lambda state: False
            if text == "nil":
                return lambda state: None
            raise self.error(f'function "{text}" not defined', offset)
        raise self.error(f"unexpected {text!r} in operand", offset)

    def _command(self, toks: list[tuple[str, str]], offset: int, piped: bool
                 ) -> Callable[[_State, Any], Any]:
        kind, text = toks[0]
        if kind == "variable" and len(toks) > 1 and toks[1][0] == "field":
            toks = [("variable", text + toks[1][1]), *toks[2:]]
            kind, text = toks[0]
        if kind == "ident" and text not in ("true", "false", "nil"):
            fn = self.funcs.get(text) or builtins.FUNCS.get(text)
            if fn is None:
                raise self.error(f'function "{text}" not defined', offset)
            args = self._operands(toks[1:], offset)
            if text in ("and", "or"):
                return _logic(text, args)
            name = text

            def call(state: _State, prev: Any) -> Any:
                values = [a(state) for a in args]
                if prev is not _NOTHING:
                    values.append(prev)
                try:
                    return fn(*values)
                except TemplateError:
                    raise
                except Exception as exc:
                    raise TemplateError(f"error calling {name}: {exc}") from None
            return call
        if kind == "field" and text != ".":
            path = text[1:].split(".")
            args = self._operands(toks[1:], offset)

            def method(state: _State, prev: Any) -> Any:
                values = [a(state) for a in args]
                if prev is not _NOTHING:
                    values.append(prev)
                return _fields(state.dot, path, values)
            return method
        operands = self._operands(toks, offset)
        if len(operands) != 1:
            raise self.error(f"can't give argument to non-function {text}", offset)
        operand = operands[0]
        if piped:
            def bad(state: _State, prev: Any) -> Any:
                raise TemplateError(f"can't give argument to non-function {text}")
            return bad
        return lambda state, prev: operand(state)


_NOTHING = object()


def _pipe_value(cond: Any, state: _State) -> Any:
    if isinstance(cond, tuple):
        return cond[1](state)
    return cond(state)


def _logic(name: str, args: list[Callable[[_State], Any]]) -> Callable[[_State, Any], Any]:
    want = name == "or"

    def run(state: _State, prev: Any) -> Any:
        values = list(args)
        if prev is not _NOTHING:
            values.append(lambda s: prev)
        if not values:
            raise TemplateError(f"wrong number of args for {name}: want at least 1 got 0")
        value = None
        for arg in values:
            value = arg(state)
            if builtins.truth(value) == want:
                return value
        return value
    return run


def _chain(inner: Callable[[_State], Any], field: str) -> Callable[[_State], Any]:
    path = field[1:].split(".")
    return lambda state: _fields(inner(state), path)


def _fields(value: Any, path: list[str], args: list[Any] | None = None) -> Any:
    for i, name in enumerate(path):
        last = i == len(path) - 1
        if value is None or value is NO_VALUE:
            raise TemplateError(f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(value, dict):
            value = value.get(name, NO_VALUE)
            continue
        attr = getattr(value, name, _NOTHING)
        if attr is _NOTHING or name.startswith("_"):
            raise TemplateError(f"can't evaluate field {name} in type "
                                f"{type(value).__name__}")
        if callable(attr):
            call_args = args if (last and args) else []
            try:
                value = attr(*call_args)
            except TypeError as exc:
                raise TemplateError(f"error calling {name}: {exc}") from None
            if last:
                return value
            continue
        value = attr
    if args:
        raise TemplateError(f"{path[-1]} is not a method but has arguments")
    return value


def _number(text: str) -> int | float | None:
    t = text.replace("_", "")
    try:
        if re.fullmatch(r"[-+]?0[xX][0-9a-fA-F]+", t):
            return int(t, 16)
        if re.fullmatch(r"[-+]?\d+", t):
            return int(t)
        return float(t)
    except ValueError:
        return None


def _text(text: str) -> Callable[[_State], None]:
    return lambda state: state.out.append(text)


def _raise(kind: type[Exception]) -> Callable[[_State], None]:
    def run(state: _State) -> None:
        raise kind()
    return run


def _seq(nodes: list[Callable[[_State], None]]) -> Callable[[_State], None]:
    if len(nodes) == 1:
        return nodes[0]

    def run(state: _State) -> None:
        for node in nodes:
            node(state)
    return run


class Template:
    """A parsed template: ``execute(data) -> str``."""

    __slots__ = ("_body", "_fast", "name", "text")

    def __init__(self, name: str, text: str, body: Callable[[_State], None]) -> None:
        self.name = name
        self.text = text
        self._body = body

    def execute(self, data: Any) -> str:
        state = _State(data)
        try:
            self._body(state)
        except TemplateError as exc:
            if exc.message.startswith("template:"):
                raise
            raise TemplateError(f"template: {self.name}: executing: {exc.message}") from None
        except (_Break, _Continue):
            raise TemplateError(f"template: {self.name}: break or continue outside range"
                                ) from None
        except RecursionError:
            raise TemplateError(f"template: {self.name}: too deeply nested") from None
        except Exception as exc:
            raise TemplateError(f"template: {self.name}: executing: {exc}") from None
        return "".join(state.out)


def parse(text: str, name: str = "template", *,
          funcs: dict[str, Callable[..., Any]] | None = None, html: bool = False) -> Template:
    """Parse ``text``; raises :class:`TemplateError` with line and column."""
    try:
        parser = _Parser(text, name, dict(funcs or {}), html)
        body = parser.parse()
    except TemplateError:
        raise
    except RecursionError:
        raise TemplateError(f"template: {name}: too deeply nested", 1, 1) from None
    return Template(name, text, body)

"""Compile parse trees to closures once; execute them many times.

Every node becomes a closure: output nodes are ``run(dot, vs, out)`` appending strings to
``out``, values are ``value(dot, vs)``, pipeline commands ``command(dot, vs, final)`` where
``final`` is the previous command's result (``_MISSING`` for the first). Text is a constant,
``{{ .Name }}`` one dict lookup and a format. Variables are resolved to slots of the frame
``vs`` at compile time (``vs[0]`` is the template call depth, ``vs[1]`` is ``$``); a name that
is shadowed resolves to every slot it may mean, innermost first, and the first one set wins,
which is Go's run-time search of its variable stack. Slots declared inside ``if``, ``with``
and ``range`` are cleared when Go would pop them.

Execution errors are raised as ``ExecError`` carrying the node they happened at, which
``Template.execute`` turns into Go's ``template: NAME:LINE:COL: executing "NAME" at <NODE>:
MESSAGE``.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias, cast

from kapa_core.gotemplate import funcs as fn
from kapa_core.gotemplate import gotime as gv
from kapa_core.gotemplate import parser as ps
from kapa_core.gotemplate.gofmt import go_format, sorted_items
from kapa_core.gotemplate.gotime import NO_VALUE, PLAIN_MAPS, ExecError, attach, get_field
from kapa_core.gotemplate.htmlctx import HTMLContext
from kapa_core.gotemplate.lexer import go_quote

MAX_DEPTH = 1000  # nested {{template}} calls (Go allows 100000)
_UNSET: Any = object()
_MISSING: Any = object()
_FUNC_TYPES = (types.FunctionType, types.BuiltinFunctionType, types.MethodType,
               functools.partial)


#: A call's variables: ``vs[0]`` the template call depth, ``vs[1]`` is ``$``, then the slots.
Frame: TypeAlias = list[Any]
#: The output of an execution, as pieces.
Out: TypeAlias = list[str]
#: An output node: ``run(dot, vs, out)``.
Run: TypeAlias = Callable[[Any, Frame, Out], None]
#: A value: ``value(dot, vs)``.
Value: TypeAlias = Callable[[Any, Frame], Any]
#: A pipeline command: ``command(dot, vs, final)``, ``final`` the previous command's result.
Command: TypeAlias = Callable[[Any, Frame, Any], Any]
#: Sets a variable: ``setter(vs, value)``.
Setter: TypeAlias = Callable[[Frame, Any], None]


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


# -- compilation --------------------------------------------------------------------------------
class Tree:
    """A compiled template: its body and how many variable slots a call needs."""

    __slots__ = ("body", "pad")

    def __init__(self, body: Run, slots: int) -> None:
        self.body = body
        self.pad = (_UNSET,) * (slots - 2)


class Program:
    """What every tree of one parse shares."""

    def __init__(self, funcs: dict[str, Callable[..., Any]], html: bool) -> None:
        self.funcs = funcs
        self.html = html
        self.trees: dict[str, Tree] = {}


def _const(value: Any) -> Value:
    return lambda dot, vs: value


def _fail(message: str, node: ps.Node, tmpl: str) -> Callable[..., Any]:
    def fail(*_: Any) -> Any:
        raise ExecError(message, node, tmpl)
    return fail


def _seq(parts: list[Run]) -> Run:
    if len(parts) == 1:
        return parts[0]
    steps = tuple(parts)

    def run(dot: Any, vs: Frame, out: Out) -> None:
        for step in steps:
            step(dot, vs, out)
    return run


class Compiler:
    """Compiles one tree (the main template, a define or a block body)."""

    def __init__(self, program: Program, name: str) -> None:
        self.program = program
        self.tmpl = name
        self.slots = 2
        self.scope: list[tuple[str, int]] = [("$", 1)]
        # html/template: the HTML context the text has reached, which picks each
        # action's escaper (and drops comments from the text).
        self.html = HTMLContext() if program.html else None

    def compile(self, root: ps.ListNode) -> Tree:
        body = self.list(root)
        return Tree(body, self.slots)

    def list(self, node: ps.ListNode) -> Run:
        parts: list[Run] = []
        texts: list[str] = []
        for child in node.nodes:
            if isinstance(child, ps.TextNode):
                texts.append(child.text)
                continue
            if texts:
                parts.append(self._text("".join(texts)))
                texts = []
            parts.append(self.node(child))
        if texts:
            parts.append(self._text("".join(texts)))
        return _seq(parts) if parts else (lambda dot, vs, out: None)

    def _text(self, text: str) -> Run:
        if self.html is not None:
            text = self.html.text(text)
        return _text(text)

    def node(self, node: ps.Node) -> Run:
        if isinstance(node, ps.ActionNode):
            return self.action(node)
        if isinstance(node, ps.RangeNode):
            return self.range(node)
        if isinstance(node, ps.BranchNode):
            return self.branch(node)
        if isinstance(node, ps.TemplateNode):
            return self.template(node)
        kind = _Break if isinstance(node, ps.BreakNode) else _Continue

        def jump(dot: Any, vs: Frame, out: Out) -> None:
            raise kind
        return jump

    # -- output ------------------------------------------------------------------------------
    def action(self, node: ps.ActionNode) -> Run:
        pipe = node.pipe
        if pipe.decl:
            value = self.pipe(pipe)[0]

            def declare(dot: Any, vs: Frame, out: Out) -> None:
                value(dot, vs)
            return declare
        last = pipe.cmds[-1].args[0]
        escape = self.program.html and not (isinstance(last, ps.IdentifierNode) and
                                            last.ident == "html" and
                                            "html" not in self.program.funcs)
        escaper = None
        if self.html is not None:
            if escape or self.html.state != 0:  # html as the last command, in text
                escape = True
                escaper = self.html.escaper()
            self.html.after_action()
        show = _printer(node, self.tmpl, escape, self.program.html, escaper)
        first = pipe.cmds[0].args
        if len(pipe.cmds) == 1 and len(first) == 1 and isinstance(first[0], ps.FieldNode) \
                and len(first[0].ident) == 1:
            name, field, tmpl, plain = first[0].ident[0], first[0], self.tmpl, PLAIN_MAPS

            def print_field(dot: Any, vs: Frame, out: Out) -> None:
                if type(dot) in plain:
                    v = dot.get(name, NO_VALUE)
                else:
                    try:
                        v = get_field(dot, name)
                    except ExecError as exc:
                        attach(exc, field, tmpl)
                        raise
                out.append(v if type(v) is str and not escape else show(v))
            return print_field
        value = self.pipe(pipe)[0]

        def print_value(dot: Any, vs: Frame, out: Out) -> None:
            v = value(dot, vs)
            out.append(v if type(v) is str and not escape else show(v))
        return print_value

    def branch(self, node: ps.BranchNode) -> Run:
        mark, first = len(self.scope), self.slots
        cond = self.pipe(node.pipe)[0]
        body = self.list(node.list)
        other = self.list(node.else_list) if node.else_list is not None else None
        created = tuple(range(first, self.slots))
        del self.scope[mark:]
        is_with, is_true = isinstance(node, ps.WithNode), gv.truth

        def run(dot: Any, vs: Frame, out: Out) -> None:
            v = cond(dot, vs)
            if is_true(v):
                body(v if is_with else dot, vs, out)
            elif other is not None:
                other(dot, vs, out)
        return _popping(run, created) if created else run

    def range(self, node: ps.RangeNode) -> Run:
        mark, first = len(self.scope), self.slots
        value, targets = self.pipe(node.pipe)
        body_first = self.slots
        body = self.list(node.list)
        body_created = tuple(range(body_first, self.slots))
        other = self.list(node.else_list) if node.else_list is not None else None
        created = tuple(range(first, self.slots))
        del self.scope[mark:]
        set_key = targets[0] if len(targets) == 2 else None
        set_elem = targets[-1] if targets else None
        pipe_node, tmpl = node.pipe, self.tmpl

        def run(dot: Any, vs: Frame, out: Out) -> None:
            val = value(dot, vs)
            if isinstance(val, dict):
                items: Any = sorted_items(val) if val else None
            elif isinstance(val, list | tuple):
                items = enumerate(val) if val else None
            elif val is NO_VALUE or val is None:
                items = None
            else:
                raise ExecError(f"range can't iterate over {go_format(val)}", pipe_node, tmpl)
            if items is None:
                if other is not None:
                    other(dot, vs, out)
                return
            try:
                for key, elem in items:
                    for slot in body_created:  # Go pops the body's variables each time round
                        vs[slot] = _UNSET
                    if set_key is not None:
                        set_key(vs, key)
                    if set_elem is not None:
                        set_elem(vs, elem)
                    try:
                        body(elem, vs, out)
                    except _Continue:
                        continue
            except _Break:
                pass
        return _popping(run, created) if created else run

    def template(self, node: ps.TemplateNode) -> Run:
        arg = self.pipe(node.pipe)[0] if node.pipe is not None else None
        trees, name, tmpl = self.program.trees, node.name, self.tmpl

        def call(dot: Any, vs: Frame, out: Out) -> None:
            tree = trees.get(name)
            if tree is None:
                raise ExecError(f"template {go_quote(name)} not defined", node, tmpl)
            depth = vs[0]
            if depth >= MAX_DEPTH:
                raise ExecError(f"exceeded maximum template depth ({MAX_DEPTH})", node, tmpl)
            new_dot = arg(dot, vs) if arg is not None else NO_VALUE
            try:
                tree.body(new_dot, [depth + 1, new_dot, *tree.pad], out)
            except RecursionError:  # Python's stack ran out before MAX_DEPTH calls
                raise ExecError(f"exceeded maximum template depth ({depth + 1})", node,
                                tmpl) from None
        return call

    # -- variables -----------------------------------------------------------------------------
    def new_slot(self, name: str) -> int:
        self.slots += 1
        self.scope.append((name, self.slots - 1))
        return self.slots - 1

    def candidates(self, name: str) -> tuple[int, ...]:
        return tuple(dict.fromkeys(slot for n, slot in reversed(self.scope) if n == name))

    def variable(self, node: ps.VariableNode) -> Value:
        name, tmpl = node.ident[0], self.tmpl
        slots = self.candidates(name) or (self.new_slot(name),)
        if slots == (1,):
            get: Value = lambda dot, vs: vs[1]  # noqa: E731
        elif len(slots) == 1:
            slot = slots[0]

            def get(dot: Any, vs: Frame) -> Any:
                v = vs[slot]
                if v is _UNSET:
                    raise ExecError(f"undefined variable: {name}", node, tmpl)
                return v
        else:
            def get(dot: Any, vs: Frame) -> Any:
                for slot in slots:
                    if vs[slot] is not _UNSET:
                        return vs[slot]
                raise ExecError(f"undefined variable: {name}", node, tmpl)
        if len(node.ident) == 1:
            return get
        return self.fields(get, node.ident[1:], node)

    def setter(self, var: ps.VariableNode, assign: bool) -> Setter:
        name, tmpl = var.ident[0], self.tmpl
        if not assign:
            slot = self.new_slot(name)

            def declare(vs: Frame, value: Any) -> None:
                vs[slot] = value
            return declare
        slots = self.candidates(name) or (self.new_slot(name),)

        def assign_(vs: Frame, value: Any) -> None:
            for slot in slots:
                if vs[slot] is not _UNSET:
                    vs[slot] = value
                    return
            raise ExecError(f"undefined variable: {name}", var, tmpl)
        return assign_

    # -- pipelines and commands ------------------------------------------------------------
    def pipe(self, pipe: ps.PipeNode) -> tuple[Value, Sequence[Setter]]:
        """The pipeline's value closure and its variable setters (declared before commands)."""
        targets = [self.setter(v, pipe.is_assign) for v in pipe.decl]
        commands = [self.command(c, i > 0) for i, c in enumerate(pipe.cmds)]
        if len(commands) == 1 and not targets:
            only = commands[0]

            def single(dot: Any, vs: Frame) -> Any:
                v = only(dot, vs, _MISSING)
                return NO_VALUE if v is None else v
            return single, targets

        def run(dot: Any, vs: Frame) -> Any:
            v = _MISSING
            for command in commands:
                v = command(dot, vs, v)
                if v is None:
                    v = NO_VALUE
            for target in targets:
                target(vs, v)
            return v
        return run, targets

    def command(self, cmd: ps.CommandNode, piped: bool) -> Command:
        first, rest = cmd.args[0], cmd.args[1:]
        if isinstance(first, ps.FieldNode):
            return self.field_command(None, first.ident, rest, piped, first)
        if isinstance(first, ps.ChainNode) and not isinstance(first.node, ps.NilNode):
            return self.field_command(self.arg(first.node), first.field, rest, piped, first)
        if isinstance(first, ps.VariableNode) and len(first.ident) > 1:
            base = ps.VariableNode(first.pos, first.ident[:1])
            return self.field_command(self.variable(base), first.ident[1:], rest, piped, first)
        if isinstance(first, ps.IdentifierNode):
            return self.call(first, cmd, rest, piped)
        if isinstance(first, ps.ChainNode):
            return _fail(f"indirection through explicit nil in {first}", first, self.tmpl)
        if rest or piped:
            return _fail(f"can't give argument to non-function {first}", first, self.tmpl)
        if isinstance(first, ps.NilNode):
            return _fail("nil is not a command", first, self.tmpl)
        value = self.arg(first)
        return lambda dot, vs, final: value(dot, vs)

    def field_command(self, recv: Value | None, idents: Sequence[str],
                      rest: Sequence[ps.Node], piped: bool, node: ps.Node) -> Command:
        args = [self.arg(a) for a in rest]
        if not args and not piped:
            value = self.fields(recv, idents, node)
            return lambda dot, vs, final: value(dot, vs)
        head, last, tmpl = idents[:-1], idents[-1], self.tmpl

        def run(dot: Any, vs: Frame, final: Any) -> Any:
            try:
                v = dot if recv is None else recv(dot, vs)
                for name in head:
                    v = get_field(v, name)
                values = [a(dot, vs) for a in args]
                if piped:
                    values.append(final)
                return gv.call_field(v, last, values)
            except ExecError as exc:
                attach(exc, node, tmpl)
                raise
        return run

    def fields(self, recv: Value | None, idents: Sequence[str], node: ps.Node) -> Value:
        """``recv.A.B`` (``recv`` None means dot) with methods called without arguments."""
        tmpl, plain = self.tmpl, PLAIN_MAPS
        if recv is None and len(idents) == 1:
            name = idents[0]

            def field(dot: Any, vs: Frame) -> Any:
                if type(dot) in plain:
                    return dot.get(name, NO_VALUE)
                try:
                    return get_field(dot, name)
                except ExecError as exc:
                    attach(exc, node, tmpl)
                    raise
            return field

        def chain(dot: Any, vs: Frame) -> Any:
            try:
                v = dot if recv is None else recv(dot, vs)
                for name in idents:
                    v = get_field(v, name)
                return v
            except ExecError as exc:
                attach(exc, node, tmpl)
                raise
        return chain

    def arg(self, node: ps.Node) -> Value:
        if isinstance(node, ps.DotNode):
            return lambda dot, vs: dot
        if isinstance(node, ps.NilNode):
            return _const(None)
        if isinstance(node, ps.BoolNode):
            return _const(node.value)
        if isinstance(node, ps.StringNode):
            return _const(node.text)
        if isinstance(node, ps.NumberNode):
            return _fail(node.error, node, self.tmpl) if node.error else _const(node.value)
        if isinstance(node, ps.FieldNode):
            return self.fields(None, node.ident, node)
        if isinstance(node, ps.VariableNode):
            return self.variable(node)
        if isinstance(node, ps.PipeNode):
            return self.pipe(node)[0]
        if isinstance(node, ps.ChainNode):
            if isinstance(node.node, ps.NilNode):
                return _fail(f"indirection through explicit nil in {node}", node, self.tmpl)
            return self.fields(self.arg(node.node), node.field, node)
        # an identifier (the parser gives no other node here): call it without arguments
        command = self.call(cast(ps.IdentifierNode, node), node, [], False)
        return lambda dot, vs: command(dot, vs, _MISSING)

    def call(self, ident: ps.IdentifierNode, cmd: ps.Node, rest: Sequence[ps.Node],
             piped: bool) -> Command:
        name, tmpl = ident.ident, self.tmpl
        user = self.program.funcs.get(name)
        if user is not None:
            spec, target = gv.arity(user), fn.user_call(user)
        else:
            target, fixed, variadic = fn.BUILTINS[name]
            spec = (fixed, None if variadic else fixed)
        args = [self.arg(a) for a in rest]
        given = len(args) + piped
        message = spec and gv.arity_error(name, spec, given, len(args))
        if message:
            return _fail(message, ident, tmpl)
        if user is None and name in ("and", "or"):
            return _logic(name == "or", args, piped)
        if user is None and name == "call":
            target = fn.dynamic_call(str(rest[0]) if rest else "")  # "x | call": piped
        elif user is None and name == "printf":
            first = rest[0] if rest else cmd
            static = (f"expected string; found {first}"
                      if isinstance(first, ps.NumberNode | ps.BoolNode) else
                      "cannot assign nil to string" if isinstance(first, ps.NilNode) else None)
            target = fn.printf_check(static, first, tmpl)

        def failed(exc: Exception) -> Exception:
            if isinstance(exc, ExecError | RecursionError):
                return exc
            return ExecError(f"error calling {name}: {gv.error_text(exc)}", cmd, tmpl)

        if len(args) == 1:  # the common shapes, without building an argument list
            a0 = args[0]

            def run1(dot: Any, vs: Frame, final: Any) -> Any:
                try:
                    return target(a0(dot, vs), final) if piped else target(a0(dot, vs))
                except Exception as exc:
                    raise failed(exc) from None
            return run1
        if len(args) == 2 and not piped:
            a0, a1 = args

            def run2(dot: Any, vs: Frame, final: Any) -> Any:
                try:
                    return target(a0(dot, vs), a1(dot, vs))
                except Exception as exc:
                    raise failed(exc) from None
            return run2

        def run(dot: Any, vs: Frame, final: Any) -> Any:
            values = [a(dot, vs) for a in args]
            if piped:
                values.append(final)
            try:
                return target(*values)
            except Exception as exc:
                raise failed(exc) from None
        return run


# -- helpers the compiler builds closures from -----------------------------------------------
def _text(text: str) -> Run:
    def run(dot: Any, vs: Frame, out: Out) -> None:
        out.append(text)
    return run


def _popping(run: Run, slots: tuple[int, ...]) -> Run:
    """``run``, then forget the variables declared inside it (Go pops them at {{end}})."""
    def popping(dot: Any, vs: Frame, out: Out) -> None:
        try:
            run(dot, vs, out)
        finally:
            for slot in slots:
                vs[slot] = _UNSET
    return popping


def _printer(node: ps.ActionNode, tmpl: str, escape: bool, html: bool,
             escaper: Callable[[Any], str] | None = None) -> Callable[[Any], str]:
    nil = "" if html else "<no value>"

    def show(v: Any) -> str:
        if isinstance(v, _FUNC_TYPES):
            raise ExecError(f"can't print {node} of type {gv.type_name(v)}", node, tmpl)
        if escaper is not None:
            return escaper(v)
        if v is NO_VALUE or v is None:
            return nil
        text = v if type(v) is str else go_format(v)
        return fn.html_escape(text) if escape else text
    return show


def _logic(want: bool, args: Sequence[Value], piped: bool) -> Command:
    truth = gv.truth

    def run(dot: Any, vs: Frame, final: Any) -> Any:
        v = NO_VALUE
        for arg in args:
            v = arg(dot, vs)
            if truth(v) is want:
                return v
        return final if piped else v
    return run

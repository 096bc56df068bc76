"""Lambda expressions compiled once into Python closures.

``compile_lambda(lambda_ast, scope)`` resolves identifiers from the script's variables,
checks function names and arities, and returns a :class:`CompiledLambda` whose
``eval(time, fields, tags)`` runs the closures: no tree walking per point. Run-time type
errors raise :class:`EvalError`, which nodes count and log, never crash on.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeGuard

from kapa_core.errors import TickError
from kapa_core.models.duration import Duration
from kapa_core.tick import ast
from kapa_core.tick.functions import NAMES, STATEFUL, STATELESS, EvalError
from kapa_core.tick.regex import compile_regex, is_regex
from kapa_core.tick.values import MISSING, Time, type_name

Fn = Callable[[int, Mapping[str, Any], Mapping[str, str]], Any]

_CMP = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
        ">": operator.gt, ">=": operator.ge}


class CompiledLambda:
    """A lambda ready to run: ``eval(time_ns, fields, tags)``.

    ``static_error`` is what Kapacitor says when it compiles the expression as the task
    starts (``'count' > 10`` compares constants of types no operator takes), or "".
    """

    __slots__ = ("_fn", "_source", "references", "static_error", "text")

    def __init__(self, fn: Fn, text: str, references: frozenset[str],
                 static_error: str = "") -> None:
        self._fn = fn
        self.text = text
        self.references = references
        self.static_error = static_error
        self._source: tuple[Any, ...] | None = None  # set when it has stateful functions

    def copy_reset(self) -> CompiledLambda:
        """The lambda with fresh state for its stateful functions (count(), sigma()...),
        as Kapacitor gives each group of a node its own copy; itself if it has none."""
        if self._source is None:
            return self
        return compile_lambda(*self._source[:2], functions=self._source[2])

    def eval(self, time: int, fields: Mapping[str, Any], tags: Mapping[str, str]) -> Any:
        try:
            value = self._fn(time, fields, tags)
        except EvalError:
            raise
        except (ArithmeticError, ValueError, IndexError) as exc:
            # e.g. a duration from an infinite float, int(NaN): an error for this point,
            # as Go reports it, not a failure of the node
            raise EvalError(f"{self.text!r}: {exc}") from None
        except RecursionError:  # nesting the compiler took, run from a deeper stack
            raise EvalError(f"{self.text!r}: expression nested too deeply") from None
        if value is MISSING:
            raise EvalError("missing value: a field or tag used by the expression is absent")
        return value

    def eval_bool(self, time: int, fields: Mapping[str, Any], tags: Mapping[str, str]) -> bool:
        value = self.eval(time, fields, tags)
        if value is True or value is False:
            return value
        raise EvalError(f"expression {self.text!r} returned {type_name(value)}, expected "
                        "boolean")


def compile_lambda(node: ast.Lambda, scope: Mapping[str, Any] | None = None, *,
                   functions: Mapping[str, Callable[[], Any]] | None = None
                   ) -> CompiledLambda:
    """``functions``: extra zero-argument functions (topic-handler match expressions)."""
    compiler = _Compiler(scope or {}, functions or {})
    try:
        fn = compiler.compile(node.expr)
    except RecursionError:  # calls in calls... (long runs of operators are loops)
        raise TickError("script nested too deeply") from None
    compiled = CompiledLambda(fn, node.text, frozenset(compiler.references),
                              static_error(node.expr, scope or {}))
    if compiler.stateful:
        compiled._source = (node, scope, functions)
    return compiled


# -- the types of constant expressions, as Kapacitor checks them when a task starts ------
#: (operator, left type, right type) -> result type, for every operation Kapacitor has.
OPERATIONS: dict[tuple[str, str, str], str] = {}
for _op in ("AND", "OR"):
    OPERATIONS[_op, "boolean", "boolean"] = "boolean"
for _op in ("==", "!=", "<", "<=", ">", ">="):
    for _pair in (("int", "int"), ("float", "float"), ("int", "float"), ("float", "int"),
                  ("string", "string"), ("duration", "duration")):
        OPERATIONS[(_op, *_pair)] = "boolean"
for _op in ("==", "!="):
    OPERATIONS[_op, "boolean", "boolean"] = "boolean"
for _op in ("=~", "!~"):
    OPERATIONS[_op, "string", "regex"] = "boolean"
for _op in ("+", "-", "*", "/"):
    OPERATIONS[_op, "float", "float"] = "float"
for _op in ("+", "-", "*", "/", "%"):
    OPERATIONS[_op, "int", "int"] = "int"
for _op in ("+", "-"):
    OPERATIONS[_op, "duration", "duration"] = "duration"
OPERATIONS.update({
    ("*", "duration", "int"): "duration", ("*", "int", "duration"): "duration",
    ("*", "duration", "float"): "duration", ("*", "float", "duration"): "duration",
    ("/", "duration", "int"): "duration", ("/", "duration", "float"): "duration",
    ("/", "duration", "duration"): "int", ("+", "string", "string"): "string"})
#: The operators each type takes, on either side.
_OPERATORS_OF: dict[str, set[str]] = {}
for (_op, _left, _right) in OPERATIONS:
    _OPERATORS_OF.setdefault(_left, set()).add(_op)
    _OPERATORS_OF.setdefault(_right, set()).add(_op)
_LOGICAL = ("AND", "OR")
_COMPARISON = ("==", "!=", "<", "<=", ">", ">=", "=~", "!~")
_GO_NODE_TYPES = {"Star": "*ast.StarNode", "ListLit": "*ast.ListNode",
                  "Identifier": "*ast.IdentifierNode", "Chain": "*ast.ChainNode"}


class _StaticError(Exception):
    pass


def _constant_type(value: Any) -> str | None:
    cls = type(value)
    if cls is bool:
        return "boolean"
    if cls is int:
        return "int"
    if cls is float:
        return "float"
    if cls is str:
        return "string"
    if cls is Duration:
        return "duration"
    if is_regex(value):
        return "regex"
    return None


def operation_error(op: str, left: str | None, right: str | None) -> str:
    """Kapacitor's words for an operator its types do not take."""
    kind = "logical" if op in _LOGICAL else "comparison" if op in _COMPARISON else "math"
    if left is not None and op not in _OPERATORS_OF.get(left, ()):
        return f"invalid {kind} operator {op} for type {left}"
    if right is not None and op not in _OPERATORS_OF.get(left or "", ()):
        return f"invalid {kind} operator {op} for type {right}"
    return (f"mismatched type to binary operator. got {left or 'invalid type'} {op} "
            f"{right or 'invalid type'}. see bool(), int(), float(), string(), duration()")


def static_error(expr: ast.Node, scope: Mapping[str, Any]) -> str:
    """The error Kapacitor reports when it compiles ``expr`` (a lambda's expression) at
    task start: an operator applied to constants of types it does not take, wrapped in
    where it was found ("Failed to handle left node: ..."); "" when there is none."""
    try:
        _static(expr, scope)
    except _StaticError as exc:
        return str(exc)
    except RecursionError:
        return ""
    return ""


def _const_type_of(node: ast.Node, scope: Mapping[str, Any]) -> str | None:
    if isinstance(node, ast.Number):
        return "float" if isinstance(node.value, float) else "int"
    if isinstance(node, ast.String):
        return "string"
    if isinstance(node, ast.Bool):
        return "boolean"
    if isinstance(node, ast.DurationLit):
        return "duration"
    if isinstance(node, ast.Regex):
        return "regex"
    if isinstance(node, ast.Identifier):
        value = scope.get(node.name)
        if isinstance(value, ast.Lambda):
            return _const_type_of(value.expr, scope)
        return _constant_type(value)
    if isinstance(node, ast.Unary):
        while isinstance(node, ast.Unary):  # the outermost ! decides
            if node.op == "!":
                return "boolean"
            node = node.operand
        return _const_type_of(node, scope)
    if isinstance(node, ast.Binary):
        # The operators nested on the left are walked in a loop, and so is an arithmetic
        # expression on the right of the outermost one (``1 - (2 - (3 - ...))``): its
        # operator and left type wait on a stack for the type on the right.
        waiting: list[tuple[str, str | None]] = []
        kind: str | None
        while True:
            if node.op in _COMPARISON or node.op in _LOGICAL:
                kind = "boolean"
                break
            spine = []
            while isinstance(node, ast.Binary) and not (
                    node.op in _COMPARISON or node.op in _LOGICAL):
                spine.append(node)
                node = node.left
            kind = _const_type_of(node, scope)
            for binary in reversed(spine[1:]):
                kind = OPERATIONS.get((binary.op, kind or "",
                                       _const_type_of(binary.right, scope) or ""))
            waiting.append((spine[0].op, kind))
            node = spine[0].right
            if not isinstance(node, ast.Binary):
                kind = _const_type_of(node, scope)
                break
        for op, left in reversed(waiting):
            kind = OPERATIONS.get((op, left or "", kind or ""))
        return kind
    if isinstance(node, ast.Lambda):
        return _const_type_of(node.expr, scope)
    return None


def _wrapped(prefix: str, node: ast.Node, scope: Mapping[str, Any]) -> bool:
    try:
        return _static(node, scope)
    except _StaticError as exc:
        raise _StaticError(prefix + str(exc)) from None


def _static(node: ast.Node, scope: Mapping[str, Any]) -> bool:
    """Check ``node`` as Kapacitor builds its evaluator; True when its value is only
    known per point (it reads a field or calls a function)."""
    if isinstance(node, ast.Number | ast.String | ast.Bool | ast.DurationLit | ast.Regex):
        return False
    if isinstance(node, ast.Reference | ast.Call):
        if isinstance(node, ast.Call):
            depth = 0  # calls of one call (``abs(abs(x))``) in a loop
            while len(node.args) == 1 and isinstance(node.args[0], ast.Call):
                depth += 1
                node = node.args[0]
            try:
                for i, arg in enumerate(node.args):
                    _wrapped(f"Failed to handle {i + 1} argument: ", arg, scope)
            except _StaticError as exc:
                if not depth:
                    raise
                raise _StaticError("Failed to handle 1 argument: " * depth
                                   + str(exc)) from None
        return True
    if isinstance(node, ast.Identifier):
        value = scope.get(node.name)
        if isinstance(value, ast.Lambda):
            return _wrapped("Failed to handle node: ", value.expr, scope)
        if isinstance(value, list):
            raise _StaticError("Given node type is not valid evaluation node: *ast.ListNode")
        if type(value).__name__ == "_Star":
            raise _StaticError("Given node type is not valid evaluation node: *ast.StarNode")
        return _constant_type(value) is None
    if isinstance(node, ast.Unary):  # a run of them (``!!!x``) in a loop
        run = []
        operand: ast.Node = node
        while isinstance(operand, ast.Unary):
            run.append(operand)
            operand = operand.operand
        dynamic = _wrapped("Failed to handle node: " * len(run), operand, scope)
        kind = _const_type_of(operand, scope)
        for unary in reversed(run):
            kind = "boolean" if unary.op == "!" else kind
            dynamic = dynamic and kind is None
        return dynamic
    if isinstance(node, ast.Lambda):
        return _wrapped("Failed to handle node: ", node.expr, scope)
    if isinstance(node, ast.Binary):
        # The operators nested on the left are walked in a loop (a generated lambda may
        # have thousands of terms), innermost first, as the recursion would visit them:
        # each one's left operand, its right operand, then its own types. An operator
        # expression on the right of the outermost one (``a OR (b OR (...))``) is walked
        # next by the same loop, and the operators it was on the right of are typed
        # after it, innermost first.
        frames: list[tuple[ast.Binary, bool, str | None]] = []
        while True:
            try:
                spine = []
                leaf: ast.Node = node
                while isinstance(leaf, ast.Binary):
                    spine.append(leaf)
                    leaf = leaf.left
                dynamic = _wrapped("Failed to handle left node: " * len(spine), leaf, scope)
                kind = _const_type_of(leaf, scope)
                for depth in range(len(spine) - 1, 0, -1):
                    binary = spine[depth]
                    try:
                        right = _wrapped("Failed to handle right node: ", binary.right,
                                         scope)
                        dynamic, kind = _typed(binary, dynamic, kind, right, scope)
                    except _StaticError as exc:
                        raise _StaticError("Failed to handle left node: " * depth
                                           + str(exc)) from None
                binary = spine[0]
                if isinstance(binary.right, ast.Binary):
                    frames.append((binary, dynamic, kind))
                    node = binary.right
                    continue
                right = _wrapped("Failed to handle right node: ", binary.right, scope)
                dynamic, kind = _typed(binary, dynamic, kind, right, scope)
            except _StaticError as exc:
                raise _StaticError("Failed to handle right node: " * len(frames)
                                   + str(exc)) from None
            break
        while frames:
            binary, left_dynamic, left_kind = frames.pop()
            try:  # the type on the right is the one just found (no walk down again)
                dynamic, kind = _typed(binary, left_dynamic, left_kind, dynamic, scope,
                                       kind)
            except _StaticError as exc:
                raise _StaticError("Failed to handle right node: " * len(frames)
                                   + str(exc)) from None
        return dynamic
    name = _GO_NODE_TYPES.get(type(node).__name__, type(node).__name__)
    raise _StaticError(f"Given node type is not valid evaluation node: {name}")


_UNKNOWN = object()


def _typed(binary: ast.Binary, dynamic: bool, kind: str | None, right: bool,
           scope: Mapping[str, Any], rt: Any = _UNKNOWN) -> tuple[bool, str | None]:
    """An operator's own types, its operands checked: whether its value is only known
    per point, and its type (``rt``: the type of the right operand, when known)."""
    if rt is _UNKNOWN:
        rt = _const_type_of(binary.right, scope)
    if binary.op in _COMPARISON or binary.op in _LOGICAL:
        result: str | None = "boolean"
    else:
        result = OPERATIONS.get((binary.op, kind or "", rt or ""))
    if not dynamic and not right:
        if (binary.op, kind, rt) not in OPERATIONS:
            raise _StaticError(operation_error(binary.op, kind, rt))
        return False, result
    return result is None, result


def _kind(value: Any) -> str:
    """Dispatch class: b(ool) i(nt) f(loat) s(tring) d(uration) t(ime) r(egex) m(issing)."""
    cls = type(value)
    if cls is float:
        return "f"
    if cls is int:
        return "i"
    if cls is str:
        return "s"
    if cls is bool:
        return "b"
    if cls is Duration:
        return "d"
    if cls is Time:
        return "t"
    if value is MISSING:
        return "m"
    if is_regex(value):
        return "r"
    return "?"


def _int64(n: int) -> int:
    """An int result as Go's int64 arithmetic gives it: wrapped around on overflow."""
    if -(1 << 63) <= n < (1 << 63):
        return n
    return ((n + (1 << 63)) % (1 << 64)) - (1 << 63)


def binary(op: str, a: Any, b: Any) -> Any:
    """Apply a binary operator with Kapacitor's operand-type rules."""
    ka, kb = _kind(a), _kind(b)
    if ka == "m" or kb == "m":
        raise EvalError("missing value: a field or tag used by the expression is absent")
    pair = ka + kb
    if op in _CMP:
        if pair in ("ii", "ff", "if", "fi", "ss", "dd", "tt", "bb") and (
                pair != "bb" or op in ("==", "!=")):
            return _CMP[op](a, b)
        raise EvalError(f"invalid comparison: {type_name(a)} {op} {type_name(b)}")
    if op in ("=~", "!~"):
        if ka == "s" and kb == "r":
            found = b.search(a) is not None
            return found if op == "=~" else not found
        raise EvalError(f"invalid {op}: expected string {op} regex, got {type_name(a)} "
                        f"{op} {type_name(b)}")
    if op == "+":
        if pair == "ii":
            return _int64(a + b)
        if pair in ("ff", "ss"):
            return a + b
        if pair == "dd":
            return Duration(a + b)
    elif op == "-":
        if pair == "ii":
            return _int64(a - b)
        if pair == "ff":
            return a - b
        if pair == "dd":
            return Duration(a - b)
    elif op == "*":
        if pair == "ii":
            return _int64(a * b)
        if pair == "ff":
            return a * b
        if pair in ("di", "df"):
            return Duration(int(a * b))
        if pair in ("id", "fd"):
            return Duration(int(a * b))
    elif op == "/":
        if pair == "ii":
            if b == 0:
                raise EvalError("integer divide by zero")
            q = abs(a) // abs(b)
            return q if (a >= 0) == (b >= 0) else -q  # Go truncates toward zero
        if pair == "ff":
            if b == 0:
                return a / b if a != a else (float("inf") if a > 0 else float("-inf")
                                            if a < 0 else float("nan"))
            return a / b
        if pair == "dd":
            if b == 0:
                raise EvalError("duration divide by zero")
            return int(a) // int(b)
        if pair in ("di", "df"):
            if b == 0:
                raise EvalError("duration divide by zero")
            return Duration(int(a / b))
    elif op == "%" and pair == "ii":
        if b == 0:
            raise EvalError("integer divide by zero")
        return a - b * (abs(a) // abs(b) * (1 if (a >= 0) == (b >= 0) else -1))
    if pair in ("if", "fi") and op in "+-*/%":
        raise EvalError(f"mismatched type to binary operator. got {type_name(a)} {op} "
                        f"{type_name(b)}. see bool(), int(), float(), string(), duration()")
    raise EvalError(f"invalid binary operator {type_name(a)} {op} {type_name(b)}")


#: Operators nested on their left this deep or deeper are compiled into one loop
#: (``_Compiler._chain``); shorter expressions keep one closure per operator, the fastest.
LONG_CHAIN = 32
_AND, _OR, _COMPARE, _MATH, _OTHER = range(5)


#: Calls of one call nested at least this deep are compiled into one loop.
NESTED_CALLS_LOOP = 32


def _plain_call(node: ast.Node, functions: Mapping[str, Any]) -> bool:
    """A call of one argument to a function of the library (not ``if``, ``isPresent``
    or a handler's own function), compiled as ``fn(arg)``."""
    return (isinstance(node, ast.Call) and len(node.args) == 1 and node.name in NAMES
            and node.name not in functions and node.name not in ("if", "isPresent"))


def _nested_calls(node: ast.Call, functions: Mapping[str, Any]) -> int:
    """How many plain calls of one call are nested from ``node`` (up to the loop's
    threshold)."""
    depth = 0
    while depth < NESTED_CALLS_LOOP and _plain_call(node, functions) and isinstance(
            node.args[0], ast.Call):
        depth += 1
        node = node.args[0]
    return depth


def _plain_logic(node: ast.Node) -> TypeGuard[ast.Binary]:
    """An AND/OR that the compiler would make one logical closure of (its left is no long
    chain of operators)."""
    if not isinstance(node, ast.Binary) or node.op not in _LOGICAL:
        return False
    depth = 1
    left = node.left
    while isinstance(left, ast.Binary) and depth < LONG_CHAIN:
        depth += 1
        left = left.left
    return depth < LONG_CHAIN


#: Logical operators nested on the right at least this deep are compiled into one loop.
RIGHT_CHAIN = 32


def _right_logic(node: ast.Binary) -> int:
    """How many logical operators are nested on the right of ``node`` (up to
    RIGHT_CHAIN), each of them a plain logical closure."""
    depth = 0
    right = node.right
    while depth < RIGHT_CHAIN and _plain_logic(right):
        depth += 1
        right = right.right
    return depth


def _plain_value_op(node: ast.Node) -> TypeGuard[ast.Binary]:
    """An operator that is not AND/OR (arithmetic, a comparison) that the compiler would
    make one closure of (its left is no long chain of operators)."""
    if not isinstance(node, ast.Binary) or node.op in _LOGICAL:
        return False
    depth = 1
    left = node.left
    while isinstance(left, ast.Binary) and depth < LONG_CHAIN:
        depth += 1
        left = left.left
    return depth < LONG_CHAIN


def _right_values(node: ast.Binary) -> int:
    """How many operators other than AND/OR are nested on the right of ``node`` (up to
    RIGHT_CHAIN): ``1 - (2 - (3 - ...))``, ``"v" > ("v" + ("v" + ...))``."""
    depth = 0
    right = node.right
    while depth < RIGHT_CHAIN and _plain_value_op(right):
        depth += 1
        right = right.right
    return depth


def _failing(message: str) -> Fn:
    """A function that fails every point with ``message``."""
    def fail(t: int, f: Mapping[str, Any], g: Mapping[str, str]) -> Any:
        raise EvalError(message)
    return fail


class _Compiler:
    def __init__(self, scope: Mapping[str, Any],
                 functions: Mapping[str, Callable[[], Any]] | None = None) -> None:
        self.scope = scope
        self.functions = functions or {}
        self.references: set[str] = set()
        self.stateful = False

    def error(self, node: ast.Node, message: str) -> TickError:
        return TickError(message, node.line, node.col)

    def compile(self, node: ast.Node) -> Fn:
        method: Callable[[ast.Node], Fn] | None = getattr(self, "c_" + type(node).__name__,
                                                          None)
        if method is None:
            raise self.error(node, f"a {ast.describe(node)} cannot be used in a lambda")
        return method(node)

    # -- leaves -----------------------------------------------------------------------
    def _const(self, value: Any) -> Fn:
        return lambda t, f, g: value

    def c_Number(self, node: ast.Number) -> Fn:
        return self._const(node.value)

    def c_String(self, node: ast.String) -> Fn:
        return self._const(node.value)

    def c_DurationLit(self, node: ast.DurationLit) -> Fn:
        return self._const(Duration(node.value))

    def c_Bool(self, node: ast.Bool) -> Fn:
        return self._const(node.value)

    def c_Regex(self, node: ast.Regex) -> Fn:
        try:
            return self._const(compile_regex(node.pattern))
        except re.error as exc:
            raise self.error(node, f"invalid regex /{node.pattern}/: {exc}") from None

    def c_Reference(self, node: ast.Reference) -> Fn:
        name = node.name
        self.references.add(name)
        if name == "time":
            return lambda t, f, g: Time(t)

        def ref(t: int, f: Mapping[str, Any], g: Mapping[str, str]) -> Any:
            value = f.get(name, MISSING)
            if value is MISSING:
                return g.get(name, MISSING)
            if name in g:
                raise EvalError(f"cannot have field and tags with same name {name!r}")
            return value
        return ref

    def c_Identifier(self, node: ast.Identifier) -> Fn:
        if node.name not in self.scope:
            # Kapacitor's words (without a position), then a hint
            names = ",".join(["time", "stream", *self.scope])
            exc = TickError(f"name {json.dumps(node.name)} is undefined. Names in scope: "
                            f"{names} (quote field and tag names with double quotes: "
                            f'"{node.name}")')
            exc.line, exc.column = node.line, node.col
            raise exc
        value = self.scope[node.name]
        if isinstance(value, ast.Lambda):
            return self.compile(value.expr)
        if (isinstance(value, bool | int | float | str | Duration) or is_regex(value)):
            return self._const(value)
        if isinstance(value, list) or type(value).__name__ == "_Star":
            # refused when the task starts (see static_error), as in Kapacitor
            def unusable(t: int, f: Mapping[str, Any], g: Mapping[str, str]) -> Any:
                raise EvalError(f"variable {node.name!r} cannot be evaluated")
            return unusable
        # a node (a pipeline spec names its Go type itself; the language knows no nodes)
        go_type = getattr(value, "go_type", None)
        kind = go_type() if callable(go_type) else type(value).__name__
        exc = TickError(f"unsupported literal type {kind}")
        exc.line, exc.column = node.line, node.col
        raise exc

    # -- operators ----------------------------------------------------------------------
    def c_Unary(self, node: ast.Unary) -> Fn:
        if isinstance(node.operand, ast.Unary):
            return self._unary_run(node)
        inner = self.compile(node.operand)
        if node.op == "-":
            def neg(t: int, f: Mapping[str, Any], g: Mapping[str, str]) -> Any:
                v = inner(t, f, g)
                k = _kind(v)
                if k in "if":
                    return -v
                if k == "d":
                    return Duration(-v)
                raise EvalError(f"invalid unary -: {type_name(v)}")
            return neg

        def not_(t: int, f: Mapping[str, Any], g: Mapping[str, str]) -> Any:
            v = inner(t, f, g)
            if v is True or v is False:
                return not v
            raise EvalError(f"invalid unary !: {type_name(v)}")
        return not_

    def _unary_run(self, node: ast.Unary) -> Fn:
        """``!!!x`` or ``--x``: the operators applied in a loop, innermost first (Kapacitor
        takes thousands of them in a row)."""
        ops: list[str] = []
        operand: ast.Node = node
        while isinstance(operand, ast.Unary):
            ops.append(operand.op)
            operand = operand.operand
        ops.reverse()
        inner = self.compile(operand)

        def run(t: int, f: Mapping[str, Any], g: Mapping[str, str]) -> Any:
            v = inner(t, f, g)
            for op in ops:
                if op == "!":
                    if v is not True and v is not False:
                        raise EvalError(f"invalid unary !: {type_name(v)}")
                    v = not v
                else:
                    k = _kind(v)
                    if k in "if":
                        v = -v
                    elif k == "d":
                        v = Duration(-v)
                    else:
                        raise EvalError(f"invalid unary -: {type_name(v)}")
            return v
        return run

    def c_Binary(self, node: ast.Binary) -> Fn:
        depth = 1
        left_node = node.left
        while isinstance(left_node, ast.Binary) and depth < LONG_CHAIN:
            depth += 1
            left_node = left_node.left
        if depth >= LONG_CHAIN:
            return self._chain(node)
        if node.op in _LOGICAL:
            if _right_logic(node) >= RIGHT_CHAIN:
                return self._right_chain(node)
        elif _right_values(node) >= RIGHT_CHAIN:
            return self._right_value_chain(node)
        left = self.compile(node.left)
        right = self.compile(node.right)
        op = node.op
        if op in ("AND", "OR"):
            is_and = op == "AND"

            def logic(t: int, f: Mapping[str, Any], g: Mapping[str, str]) -> Any:
                a = left(t, f, g)
                if a is not True and a is not False:
                    raise EvalError(f"invalid {op} operand: {type_name(a)}")
                if a is not is_and:  # short-circuit
                    return a
                b = right(t, f, g)
                if b is not True and b is not False:
                    raise EvalError(f"invalid {op} operand: {type_name(b)}")
                return b
            checks = [c for c in (self._bool_typed(node.left), self._bool_typed(node.right))
                      if c is not None]
            if not checks:
                return logic
            # Kapacitor types both operands of a logical node with a dynamic one (a field,
            # a tag, a function) before each evaluation: an operand that is not boolean (a
            # missing field too) fails the point even where the other would decide it.

            def typed_logic(t: int, f: Mapping[str, Any], g: Mapping[str, str]) -> Any:
                for check in checks:
                    check(t, f, g)
                return logic(t, f, g)
            return typed_logic
        if op in _CMP:
            cmp = _CMP[op]

            def compare(t: int, f: Mapping[str, Any], g: Mapping[str, str]) -> Any:
                a = left(t, f, g)
                b = right(t, f, g)
                ta, tb = type(a), type(b)
                if (ta is float or ta is int) and (tb is float or tb is int):
                    return cmp(a, b)
                return binary(op, a, b)
            return compare
        if op in "+-*/" and len(op) == 1:
            arith = {"+": operator.add, "-": operator.sub, "*": operator.mul}.get(op)

            def math_op(t: int, f: Mapping[str, Any], g: Mapping[str, str]) -> Any:
                a = left(t, f, g)
                b = right(t, f, g)
                if arith is not None and type(a) is float and type(b) is float:
                    return arith(a, b)
                return binary(op, a, b)
            return math_op
        return lambda t, f, g: binary(op, left(t, f, g), right(t, f, g))

    def _chain(self, node: ast.Binary) -> Fn:
        """A long run of operators nested on their left (``a OR b OR c ...``, as lambdas
        generated by tools have thousands of terms) as one loop over the operators, with
        the results and the order of evaluation of the nested closures: every typing
        check of the logical operators first (each runs before its left operand is
        evaluated, so all of them before the innermost operand), then the innermost
        operand, then each operator with its right operand, innermost first."""
        spine: list[ast.Binary] = []
        leaf: ast.Node = node
        while isinstance(leaf, ast.Binary):
            spine.append(leaf)
            leaf = leaf.left
        checks: list[Fn] = []
        for link in spine:  # outermost first
            if link.op in _LOGICAL:
                checks += [c for c in (self._bool_typed(link.left),
                                       self._bool_typed(link.right)) if c is not None]
        first = self.compile(leaf)
        steps: list[tuple[int, str, Fn, Any]] = []
        for link in reversed(spine):
            op = link.op
            right = self.compile(link.right)
            if op in _LOGICAL:
                steps.append((_AND if op == "AND" else _OR, op, right, None))
            elif op in _CMP:
                steps.append((_COMPARE, op, right, _CMP[op]))
            elif op in ("+", "-", "*"):
                steps.append((_MATH, op, right,
                              {"+": operator.add, "-": operator.sub, "*": operator.mul}[op]))
            else:
                steps.append((_OTHER, op, right, None))

        def chain(t: int, f: Mapping[str, Any], g: Mapping[str, str]) -> Any:
            for check in checks:
                check(t, f, g)
            a = first(t, f, g)
            for kind, op, right, fn in steps:
                if kind <= _OR:  # AND, OR
                    if a is not True and a is not False:
                        raise EvalError(f"invalid {op} operand: {type_name(a)}")
                    if a is (kind == _OR):  # short-circuit
                        continue
                    a = right(t, f, g)
                    if a is not True and a is not False:
                        raise EvalError(f"invalid {op} operand: {type_name(a)}")
                elif kind == _COMPARE:
                    b = right(t, f, g)
                    ta, tb = type(a), type(b)
                    if (ta is float or ta is int) and (tb is float or tb is int):
                        a = fn(a, b)
                    else:
                        a = binary(op, a, b)
                elif kind == _MATH:
                    b = right(t, f, g)
                    a = fn(a, b) if type(a) is float and type(b) is float else \
                        binary(op, a, b)
                else:
                    a = binary(op, a, right(t, f, g))
            return a
        return chain

    def _right_chain(self, node: ast.Binary) -> Fn:
        """``a OR (b AND (c OR ...))``: logical operators nested on their right, walked
        in one loop with the nested closures' order of evaluation: at each level the
        typing check of its left operand, that operand, its short-circuit; the right
        operand of the innermost level is typed with its left one, before it."""
        levels: list[tuple[Fn | None, Fn, bool, str]] = []
        while True:
            check = self._bool_typed(node.left)
            left = self.compile(node.left)
            levels.append((check, left, node.op == "AND", node.op))
            right = node.right
            if not _plain_logic(right):
                break
            node = right
        last_check = self._bool_typed(node.right)
        last = self.compile(node.right)
        last_op = node.op

        def right_chain(t: int, f: Mapping[str, Any], g: Mapping[str, str]) -> Any:
            if last_check is None:
                for check, left, is_and, op in levels:
                    if check is not None:
                        check(t, f, g)
                    a = left(t, f, g)
                    if a is not True and a is not False:
                        raise EvalError(f"invalid {op} operand: {type_name(a)}")
                    if a is not is_and:  # short-circuit
                        return a
            else:
                final = len(levels) - 1
                for i, (check, left, is_and, op) in enumerate(levels):
                    if check is not None:
                        check(t, f, g)
                    if i == final:
                        last_check(t, f, g)
                    a = left(t, f, g)
                    if a is not True and a is not False:
                        raise EvalError(f"invalid {op} operand: {type_name(a)}")
                    if a is not is_and:  # short-circuit
                        return a
            b = last(t, f, g)
            if b is not True and b is not False:
                raise EvalError(f"invalid {last_op} operand: {type_name(b)}")
            return b
        return right_chain

    def _right_value_chain(self, node: ast.Binary) -> Fn:
        """``1 - (2 - (3 - ...))``: operators other than AND/OR nested on their right,
        in one loop with the nested closures' order: every left operand, outermost
        first, then the innermost right operand, then the operators, innermost first."""
        lefts: list[Fn] = []
        ops: list[tuple[int, str, Any]] = []
        while True:
            lefts.append(self.compile(node.left))
            op = node.op
            if op in _CMP:
                ops.append((_COMPARE, op, _CMP[op]))
            elif op in ("+", "-", "*"):
                ops.append((_MATH, op, {"+": operator.add, "-": operator.sub,
                                        "*": operator.mul}[op]))
            else:
                ops.append((_OTHER, op, None))
            if not _plain_value_op(node.right):
                break
            node = node.right
        last = self.compile(node.right)
        ops.reverse()

        def right_values(t: int, f: Mapping[str, Any], g: Mapping[str, str]) -> Any:
            values = [left(t, f, g) for left in lefts]
            b = last(t, f, g)
            for kind, op, fn in ops:
                a = values.pop()
                if kind == _COMPARE:
                    ta, tb = type(a), type(b)
                    if (ta is float or ta is int) and (tb is float or tb is int):
                        b = fn(a, b)
                    else:
                        b = binary(op, a, b)
                elif kind == _MATH and type(a) is float and type(b) is float:
                    b = fn(a, b)
                else:
                    b = binary(op, a, b)
            return b
        return right_values

    def _bool_typed(self, node: ast.Node) -> Fn | None:
        """For an operand of AND/OR whose type Kapacitor only knows when it runs (a
        reference, a function, arithmetic on them): a check that fails when it is not a
        boolean, as Kapacitor's typing of the operand does; None for a typed operand
        (literals, comparisons, logical nodes, ``!``)."""
        if isinstance(node, ast.Lambda):
            return self._bool_typed(node.expr)
        if isinstance(node, ast.Identifier):
            value = self.scope.get(node.name)
            return self._bool_typed(value.expr) if isinstance(value, ast.Lambda) else None
        if isinstance(node, ast.Reference):
            if node.name == "time":
                return _failing("invalid logical operand: time")
            name = node.name

            def check_ref(t: int, f: Mapping[str, Any], g: Mapping[str, str]) -> None:
                value = f.get(name, MISSING)
                if value is MISSING:
                    value = g.get(name, MISSING)
                if value is not True and value is not False:
                    raise EvalError(f"invalid logical operand {name!r}: {type_name(value)}")
            return check_ref
        if isinstance(node, ast.Call):
            # typed by its signature: only a missing field argument fails (isPresent
            # takes one)
            refs = [a.name for a in node.args
                    if isinstance(a, ast.Reference) and a.name != "time"]
            if node.name == "isPresent" or not refs:
                return None

            def check_args(t: int, f: Mapping[str, Any], g: Mapping[str, str]) -> None:
                for name in refs:
                    if f.get(name, MISSING) is MISSING and g.get(name, MISSING) is MISSING:
                        raise EvalError(f"missing value {name!r} in {node.name}()")
            return check_args
        if isinstance(node, ast.Unary):
            if node.op == "-" and self._dynamic(node.operand):
                return _failing("invalid logical operand: a number")
            return None
        if isinstance(node, ast.Binary):
            if node.op in _LOGICAL or node.op in _COMPARISON:
                return None
            if self._dynamic(node.left) or self._dynamic(node.right):
                return _failing(f"invalid logical operand: {node.op} arithmetic")
        return None

    def _dynamic(self, node: ast.Node) -> bool:
        """Whether Kapacitor only knows the node's type when it runs."""
        if isinstance(node, ast.Binary):  # walked without recursion (long expressions)
            stack: list[ast.Node] = [node]
            while stack:
                item = stack.pop()
                if isinstance(item, ast.Binary):
                    if item.op not in _LOGICAL and item.op not in _COMPARISON:
                        stack += (item.right, item.left)
                elif self._dynamic(item):
                    return True
            return False
        if isinstance(node, ast.Reference | ast.Call):
            return True
        if isinstance(node, ast.Lambda):
            return self._dynamic(node.expr)
        if isinstance(node, ast.Identifier):
            value = self.scope.get(node.name)
            return isinstance(value, ast.Lambda) and self._dynamic(value.expr)
        if isinstance(node, ast.Unary):
            while isinstance(node, ast.Unary):
                if node.op != "-":
                    return False
                node = node.operand
            return self._dynamic(node)
        if isinstance(node, ast.Binary):
            return node.op not in _LOGICAL and node.op not in _COMPARISON and (
                self._dynamic(node.left) or self._dynamic(node.right))
        return False

    def c_Star(self, node: ast.Star) -> Fn:
        # refused when the task starts (see static_error), as in Kapacitor
        return _failing("'*' cannot be used as a value in a lambda")

    # -- functions ----------------------------------------------------------------------
    def c_Call(self, node: ast.Call) -> Fn:
        name = node.name
        if name in self.functions:
            if node.args:
                raise self.error(node, f"{name}() takes no arguments")
            extra = self.functions[name]
            return lambda t, f, g: extra()
        if name not in NAMES:  # an error of each point, as in Kapacitor
            return _failing(f"undefined function: {json.dumps(name)}")
        if _nested_calls(node, self.functions) >= NESTED_CALLS_LOOP:
            return self._nested(node)
        args = [self.compile(a) for a in node.args]
        if name == "isPresent":
            if len(node.args) != 1 or not isinstance(node.args[0], ast.Reference):
                return _failing("isPresent expects one field or tag reference")
            arg = args[0]
            return lambda t, f, g: arg(t, f, g) is not MISSING
        if name == "if":
            if len(args) != 3:
                return _failing(f"if: expected 3 arguments, got {len(args)}")
            cond, then, other = args

            def if_(t: int, f: Mapping[str, Any], g: Mapping[str, str]) -> Any:
                c = cond(t, f, g)
                if c is not True and c is not False:
                    raise EvalError(f"if: the condition must be boolean, got {type_name(c)}")
                a = then(t, f, g)
                b = other(t, f, g)
                if _kind(a) != _kind(b):
                    raise EvalError("if: the true and false values must have the same "
                                    f"type, got {type_name(a)} and {type_name(b)}")
                return a if c else b
            return if_
        if name in STATEFUL:
            self.stateful = True
        fn = STATEFUL[name]() if name in STATEFUL else STATELESS[name]
        if not args:
            return lambda t, f, g: fn()
        if len(args) == 1:
            (a0,) = args

            def call1(t: int, f: Mapping[str, Any], g: Mapping[str, str]) -> Any:
                v = a0(t, f, g)
                if v is MISSING:
                    raise EvalError(f"{name}: missing value")
                return fn(v)
            return call1

        def call(t: int, f: Mapping[str, Any], g: Mapping[str, str]) -> Any:
            values = [a(t, f, g) for a in args]
            if any(v is MISSING for v in values):
                raise EvalError(f"{name}: missing value")
            return fn(*values)
        return call

    def _nested(self, node: ast.Call) -> Fn:
        """``abs(abs(abs(...(x))))``, deeper than NESTED_CALLS_LOOP: one closure applies
        the functions in a loop, innermost first, as the nested closures would (the
        compiler and the points' evaluation would otherwise recurse once per call)."""
        levels: list[tuple[str, Callable[..., Any]]] = []
        while _plain_call(node, self.functions) and isinstance(node.args[0], ast.Call):
            name = node.name
            if name in STATEFUL:
                self.stateful = True
            levels.append((name, STATEFUL[name]() if name in STATEFUL else STATELESS[name]))
            node = node.args[0]
        levels.reverse()
        inner = self.compile(node)

        def nested(t: int, f: Mapping[str, Any], g: Mapping[str, str]) -> Any:
            v = inner(t, f, g)
            for name, fn in levels:
                if v is MISSING:
                    raise EvalError(f"{name}: missing value")
                v = fn(v)
            return v
        return nested

    def c_Lambda(self, node: ast.Lambda) -> Fn:
        return self.compile(node.expr)

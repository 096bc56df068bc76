"""From a parsed TICKscript to a pipeline: variables, method calls, semantic checks.

Everything a user can get wrong is reported here, before a task is saved, with the line
and column of the offending call: unknown nodes and properties (with a suggestion), a
chaining method used as a property and the reverse, wrong argument kinds or counts,
undefined or redefined variables, edge mismatches such as a window fed by batches.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import kapa_core.pipeline.alert
import kapa_core.pipeline.autoscale
import kapa_core.pipeline.influxdb_out
import kapa_core.pipeline.influxql
import kapa_core.pipeline.nodes
import kapa_core.pipeline.query
from kapa_core.alert import kinds as registry
from kapa_core.errors import TickError
from kapa_core.models.duration import Duration
from kapa_core.pipeline.alert import add_deadman
from kapa_core.pipeline.base import CHAINS, STAR, Edge, NodeSpec, SpecError
from kapa_core.pipeline.nodes import BatchSpec, StreamSpec
from kapa_core.pipeline.pipeline import Pipeline
from kapa_core.pipeline.udf import UDFSpec
from kapa_core.tick import ast, gosignatures, limits
from kapa_core.tick.functions import NAMES as FUNCTION_NAMES
from kapa_core.tick.functions import EvalError, _go_float
from kapa_core.tick.lambdas import (
    CompiledLambda,
    _int64,
    binary,
    compile_lambda,
    static_error,
)
from kapa_core.tick.parser import parse
from kapa_core.tick.regex import compile_regex, is_regex
from kapa_core.tick.values import type_name
from kapa_core.udf import current as udf_functions

VAR_TYPES = ("int", "float", "bool", "string", "regex", "duration", "lambda", "list", "star")

#: The spec modules whose ``@chain`` methods must be registered before a script runs.
SPEC_MODULES = (kapa_core.pipeline.influxql, kapa_core.pipeline.influxdb_out,
                kapa_core.pipeline.query, kapa_core.pipeline.autoscale)


@dataclass(frozen=True)
class TimeDimension:
    """``time(1m)`` or ``time(1m, -5s)`` in a batch query's groupBy."""

    interval: Duration
    offset: Duration = Duration(0)


@dataclass
class Var:
    """A template/task variable: its type, value and description."""

    type: str
    value: Any
    description: str = ""


@dataclass
class Evaluated:
    pipeline: Pipeline
    dbrps: list[tuple[str, str]]
    vars: dict[str, Var] = field(default_factory=dict)
    missing_vars: list[str] = field(default_factory=list)
    #: Why Kapacitor would refuse to start the task (a lambda whose constants no operator
    #: takes, found when its nodes are built), or "".
    start_error: str = ""


def task_type_of(program: ast.Program) -> str:
    """``stream`` or ``batch`` from the script's chains, as Kapacitor finds it: the root
    of each chain statement and of each var's value; "" when none has one, "mixed"."""
    roots: set[str] = set()
    for statement in program.statements:
        if isinstance(statement, ast.VarDecl):
            node = statement.value
        elif isinstance(statement, ast.Chain):
            node = statement
        else:
            continue
        while isinstance(node, ast.Chain):
            node = node.left
        if isinstance(node, ast.Identifier) and node.name in ("stream", "batch"):
            roots.add(node.name)
    if len(roots) == 1:
        return roots.pop()
    return "mixed" if roots else ""


def _var_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Duration):
        return "duration"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if is_regex(value):
        return "regex"
    if isinstance(value, ast.Lambda):
        return "lambda"
    if value is STAR:
        return "star"
    if isinstance(value, list):
        return "list"
    return ""


def evaluate(script: str, task_type: str, overrides: Mapping[str, Var] | None = None,
             *, require_vars: bool = True, dbrps: list[tuple[str, str]] | None = None,
             program: ast.Program | None = None) -> Evaluated:
    """Build the pipeline of ``script``; TickError on any error. ``dbrps`` are the
    task's explicit database/retention policy pairs (for loop checks). ``program`` is
    the script already parsed, when the caller has it (a large script takes seconds)."""
    if program is None:
        program = parse(script)
    try:
        return Evaluator(task_type, overrides or {}, require_vars, dbrps).run(program)
    except RecursionError:  # e.g. a chain of thousands of nodes
        raise TickError("script nested too deeply") from None


class _Defined(Mapping[str, Any]):
    """A view of the evaluator's scope without the template vars that have no value yet.
    A view, not a copy: copying every var for each lambda made scripts with many vars
    and lambdas quadratic to evaluate (vars are immutable, so the view cannot change
    what a compiled lambda saw)."""

    __slots__ = ("_scope",)

    def __init__(self, scope: dict[str, Any]) -> None:
        self._scope = scope

    def __getitem__(self, name: str) -> Any:
        value = self._scope[name]
        if isinstance(value, _Unset):
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return (k for k, v in self._scope.items() if not isinstance(v, _Unset))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:  # without counting (``scope or {}``)
        return True


class Evaluator:
    def __init__(self, task_type: str, overrides: Mapping[str, Var],
                 require_vars: bool, extra_dbrps: list[tuple[str, str]] | None = None
                 ) -> None:
        self.extra_dbrps = extra_dbrps or []
        self.task_type = task_type
        self.pipeline = Pipeline(task_type)
        self.overrides = overrides
        self.require_vars = require_vars
        self.scope: dict[str, Any] = {}
        self.vars: dict[str, Var] = {}
        self.missing: list[str] = []
        self.dbrps: list[tuple[str, str]] = []
        self.source: NodeSpec | None = None
        self.deferred: TickError | None = None  # an error of the validation phase

    def run(self, program: ast.Program) -> Evaluated:
        if self.task_type == "stream":
            self.source = StreamSpec(self.pipeline, [])
        elif self.task_type == "batch":
            self.source = BatchSpec(self.pipeline, [])
        # Vars given for names the script does not declare are ignored, as in Kapacitor.
        for statement in program.statements:
            self.statement(statement)
        deadman = registry.current().deadman
        if deadman.global_ and self.source is not None:
            # [deadman] global: every task's source node gets a deadman, as in Kapacitor.
            add_deadman(self.pipeline, self.source, deadman.threshold, deadman.interval, [])
            self._count_nodes(None)
        self.pipeline.dbrps = list(self.dbrps) + list(self.extra_dbrps)
        if self.deferred is not None:
            raise self.deferred
        for node in self.pipeline.walk():
            try:
                node.validate()
            except SpecError as exc:  # Kapacitor words these without a position
                line, col = node.position
                error = TickError(f"{exc} ({node.name}, line {line} char {col})")
                error.line, error.column = line, col
                raise error from None
        return Evaluated(self.pipeline, self.dbrps, self.vars, self.missing,
                         _start_error(self.pipeline))

    def error(self, node: ast.Node, message: str) -> TickError:
        return TickError(message, node.line, node.col)

    def plain(self, node: ast.Node, message: str) -> TickError:
        """An error Kapacitor words without a position (the position is kept apart)."""
        exc = TickError(message)
        exc.line, exc.column = node.line, node.col
        return exc

    # -- statements ---------------------------------------------------------------------
    def statement(self, node: ast.Node) -> None:
        if isinstance(node, ast.Dbrp):
            self.dbrps.append((node.database, node.retention_policy))
            return
        if isinstance(node, ast.VarDecl):
            self.declare(node)
            return
        if isinstance(node, ast.Identifier):
            return  # a bare name is not even looked up, as in Kapacitor
        self.value(node)

    def declare(self, node: ast.VarDecl) -> None:
        override = self.overrides.get(node.name)
        if node.value is None:
            if node.type not in VAR_TYPES:
                raise self.plain(node, f"invalid var type {_go_quote(node.type)}")
            self.vars[node.name] = Var(node.type, None, node.comment)
            if override is None:
                if self.require_vars:
                    raise self.plain(node, f"missing value for var {_go_quote(node.name)}.")
                self.missing.append(node.name)
                self.scope[node.name] = _Unset(node.name)
                return
            if override.type != node.type:
                raise self.plain(node, _wrong_type(node.name, override.type, node.type))
            self.scope[node.name] = self._var_value(override)
            return
        if isinstance(node.value, ast.Call) and node.value.name != "time":
            raw: Any = _GlobalFunction(node.value.name)  # Kapacitor does not call it here
        elif isinstance(node.value, ast.Lambda):
            raw = node.value
            # Kapacitor resolves a lambda's names where it is declared
            for name in _lambda_identifiers(raw.expr):
                if name.name not in self.scope:
                    names = ",".join(["time", self.task_type or "stream", *self.scope])
                    raise self.plain(name, f"name {_go_quote(name.name)} is undefined. "
                                     f"Names in scope: {names}")
        else:
            raw = self.value(node.value)
        if node.name in self.scope or node.name in ("time", self.task_type):
            raise self.plain(node, f"attempted to redefine {node.name}, vars are immutable")
        declared = _var_type(raw)
        if declared:
            self.vars[node.name] = Var(declared, raw, node.comment)
        if override is not None:
            if override.type != declared:
                raise self.plain(node, _wrong_type(node.name, override.type, declared))
            raw = self._var_value(override)
        self.scope[node.name] = raw

    def _var_value(self, var: Var) -> Any:
        if var.type == "lambda" and isinstance(var.value, str):
            return _declared_value(parse("var v = lambda: " + var.value))
        if var.type == "regex" and isinstance(var.value, str):
            return compile_regex(var.value)
        if var.type == "star":
            return STAR
        if var.type == "list" and isinstance(var.value, list):
            return [STAR if item is None else item for item in var.value]  # star items
        return var.value

    # -- expressions --------------------------------------------------------------------
    def value(self, node: ast.Node) -> Any:
        if isinstance(node, ast.Number | ast.String | ast.Bool):
            return node.value
        if isinstance(node, ast.DurationLit):
            return Duration(node.value)
        if isinstance(node, ast.Regex):
            try:
                return compile_regex(node.pattern)
            except re.error as exc:
                raise self.error(node, f"invalid regex: {exc}") from None
        if isinstance(node, ast.Star):
            return STAR
        if isinstance(node, ast.ListLit):
            return [self.value(item) for item in node.items]
        if isinstance(node, ast.Lambda):
            return self.compile(node)
        if isinstance(node, ast.Unary):
            run = []  # ``!!!x``: a run of operators in a loop, innermost first
            while isinstance(node, ast.Unary):
                run.append(node)
                node = node.operand
            inner = self.value(node)
            for node in reversed(run):
                if node.op == "-" and type(inner) in (int, float):
                    inner = _int64(-inner) if type(inner) is int else -inner
                elif node.op == "-" and isinstance(inner, Duration):
                    inner = Duration(_int64(-inner))
                elif node.op == "!" and type(inner) is bool:
                    inner = not inner
                else:
                    raise self.error(node, f"invalid arugument to '{node.op}' "
                                     f"{_go_value(inner)}")
            return inner
        if isinstance(node, ast.Binary):
            return self.operation(node)
        if isinstance(node, ast.Identifier):
            return self.identifier(node)
        if isinstance(node, ast.Reference):
            return node  # a var may hold it; a method or a lambda refuses it
        if isinstance(node, ast.Call):
            values = [self.value(a) for a in node.args]  # first, as in Kapacitor
            if node.name == "time" and len(values) in (1, 2):
                if all(isinstance(d, Duration) for d in values):
                    return TimeDimension(*values)
            raise self.error(node, f"no global function {_go_quote(node.name)} defined")
        if isinstance(node, ast.Chain):
            return self.chain(node)
        raise self.error(node, f"unexpected {ast.describe(node)}")

    def operation(self, node: ast.Binary) -> Any:
        """An operator expression outside a lambda, worked out once as Kapacitor does:
        variables are replaced by their values, the types are checked, then it is
        computed (``10 * gb``, ``name + ':{{.Group}}'``, ``2 * 10s``, ``1 < 2``)."""
        scope = {}
        for name in _identifiers(node):
            raw = self.scope.get(name.name)
            value = raw if isinstance(raw, ast.Lambda) else self.identifier(name)
            if isinstance(value, ast.Reference):
                raise self.plain(name, "unsupported literal type *ast.ReferenceNode")
            if isinstance(value, _GlobalFunction):
                raise self.plain(name, "unsupported literal type tick.unboundFunc")
            if isinstance(value, _Unset):
                # a template var without a value: Kapacitor computes with its type's zero
                declared = self.vars.get(name.name)
                zero = _ZERO.get(declared.type if declared else "")
                if zero is None:
                    return value
                value = zero
            scope[name.name] = value
        message = static_error(node, scope)
        if message:
            raise self.plain(node, message)
        try:
            return _fold(node, scope)
        except EvalError as exc:
            message = str(exc)
            if message == "integer divide by zero":  # a Go run-time panic
                message = "runtime error: " + message
            raise self.plain(node, message) from None
        except (ArithmeticError, ValueError) as exc:  # e.g. a duration from an infinity
            raise self.error(node, f"cannot compute the expression: {exc}") from None

    def identifier(self, node: ast.Identifier) -> Any:
        if (node.name == "stream" or node.name == "batch") and not (
                node.name != self.task_type and node.name in self.scope):
            # (a stream task may name a var "batch", and the reverse, as in Kapacitor)
            if self.source is None or node.name != self.task_type:
                if self.task_type:  # e.g. a template changed to the other type
                    names = ",".join(["time", self.task_type, *self.scope])
                    raise self.plain(node, f"name {_go_quote(node.name)} is undefined. "
                                     f"Names in scope: {names}")
                raise self.error(node, f"{node.name} is not available in a "
                                 "untyped task")
            return self.source
        if node.name not in self.scope:
            names = ",".join(["time", self.task_type or "stream", *self.scope])
            raise self.plain(node, f"name {_go_quote(node.name)} is undefined. Names in "
                             f"scope: {names}")
        value = self.scope[node.name]
        if isinstance(value, _Unset):
            return value
        if isinstance(value, ast.Lambda):
            return self.compile(value)
        return value

    def compile(self, node: ast.Lambda) -> CompiledLambda | _Unset:
        for name in _lambda_identifiers(node.expr):
            value = self.scope.get(name.name)
            if isinstance(value, ast.Reference):
                raise self.plain(name, "unsupported literal type *ast.ReferenceNode")
            if isinstance(value, _GlobalFunction):
                raise self.plain(name, "unsupported literal type tick.unboundFunc")
        try:
            return compile_lambda(node, _Defined(self.scope))
        except TickError as exc:
            for var_name, marker in self.scope.items():
                if isinstance(marker, _Unset) and \
                        f"name {_go_quote(var_name)} is undefined" in exc.message:
                    break
            else:
                raise
        # A template var without a value yet: compiled with the zero value of each such
        # var, as Kapacitor does; the marker when that cannot be done.
        zeros = {k: (self._zero(v) if isinstance(v, _Unset) else v)
                 for k, v in self.scope.items()}
        if not any(isinstance(v, _Unset) for v in zeros.values()):
            try:
                return compile_lambda(node, zeros)
            except TickError:
                pass
        return marker

    def chain(self, node: ast.Chain) -> Any:
        """A chain ``a|b().c()|d()``, left to right without recursion: the syntax tree
        nests one level per call, and a task may have thousands of nodes in one chain."""
        links = []
        root: ast.Node = node
        while isinstance(root, ast.Chain):
            links.append(root)
            root = root.left
        if isinstance(root, ast.Call):
            # Kapacitor does not call a global function a chain starts from (its
            # arguments are evaluated): the first method is looked up on the function value
            for arg in root.args:
                self.value(arg)
            raise self.error(links[-1], "cannot get properties of non pointer value")
        target = self.value(root)
        for link in reversed(links):
            target = self.link(link, target)
        return target

    def _count_nodes(self, node: ast.Node | None) -> None:
        limit = limits.current().max_nodes
        if limit and len(self.pipeline.nodes) > limit:
            raise limits.too_many_nodes(limit, node.line if node else 0,
                                        node.col if node else 0)

    def link(self, node: ast.Chain, target: Any) -> Any:
        """Apply one call of a chain to ``target``, the value of what it is called on."""
        if isinstance(target, _Unset):
            return target  # a template: checked once its vars are given
        if not isinstance(target, NodeSpec):
            pointer = ("*regexp.Regexp" if is_regex(target) else "*ast.LambdaNode"
                       if isinstance(target, CompiledLambda | ast.Lambda) else
                       "*ast.StarNode" if target is STAR else "")
            if pointer:  # a Go pointer to a struct: it has no such method
                raise self.error(node, f"no method or property {_go_quote(node.name)} on "
                                 f"{pointer}")
            raise self.error(node, "cannot get properties of non pointer value (cannot call "
                             f"{node.op}{node.name}() on a {type(target).__name__}: it is "
                             "not a node)")
        args = [self.value(a) for a in node.args]
        if any(isinstance(a, ast.Reference) for a in args):  # reported at the call
            raise self.error(node, _DOUBLE_QUOTES)
        if len(args) == 1 and isinstance(args[0], list):
            args = list(args[0])  # a list is the arguments, as in Kapacitor
        if any(isinstance(a, _Unset) for a in args):
            # A template var without a value: Kapacitor builds the node with the var's
            # zero value, so the template's DOT has its whole pipeline.
            zeros = [self._zero(a) if isinstance(a, _Unset) else a for a in args]
            if node.op == "|" and not any(isinstance(z, _Unset) for z in zeros):
                try:
                    return self._call(node, target, zeros)
                except TickError:
                    pass
            return target if node.op == "." else _Unset(node.name)
        return self._call(node, target, args)

    def _zero(self, marker: _Unset) -> Any:
        """The zero value of a template var without a value (the marker when none)."""
        declared = self.vars.get(marker.name)
        kind = declared.type if declared else ""
        if kind in _ZERO:
            return _ZERO[kind]
        if kind == "list":
            return []
        if kind == "star":
            return STAR
        if kind == "lambda":
            return compile_lambda(_declared_value(parse("var v = lambda: FALSE")))
        return marker

    def _call(self, node: ast.Chain, target: NodeSpec, args: list[Any]) -> Any:
        """The call of ``link`` once its arguments are known."""
        properties = target.all_properties()
        # Kapacitor looks names up with their first letter upper-cased: .Period() is
        # .period(), .uRL() is .URL().
        name = _canonical(node.name, properties)
        if isinstance(target, UDFSpec) and name != node.name and \
                name in target.function.info.options:
            name = node.name  # a UDF's options are looked up as written, as in Kapacitor
        if not node.called:  # reading a property gives its value, which is no node
            if name in properties:
                attr = properties[name].attr or name
                return getattr(target, attr, _PropertyValue(name))
            raise self.error(node, f"object {go_type(target)} has no property {node.name}")
        refused = _go_call_error(node.op, node.name, target, args)
        if refused:
            raise self.error(node, refused)
        try:
            if node.op == "|":
                factory = CHAINS.get(name)
                if factory is None or not _has_chain(target, name):
                    if name in properties:
                        raise self.error(node, _not_chaining(node.name, target))
                    if node.name in udf_functions():
                        raise self.error(node, _use_dynamic("chaining", node.name, target))
                    raise self.error(node, self._unknown(node.name, target,
                                                         list(CHAINS)))
                try:
                    child = factory(self.pipeline, target, args)
                except SpecError as exc:
                    if _DIMENSION.match(str(exc)):
                        raise
                    raise self.error(node, str(exc)) from None
                child.position = (node.line, node.col)
                self._count_nodes(node)
                self._check_edges(node, child)
                return child
            if node.op == ".":
                if name not in properties:
                    if name in CHAINS and _has_chain(target, name):
                        raise self.error(node, f"no property method {_go_quote(node.name)} "
                                         f"on {go_type(target)}, but chaining method does "
                                         f"exist. Use '|' operator instead: "
                                         f"'node|{node.name}(..)'.")
                    if node.name in udf_functions():
                        raise self.error(node, _use_dynamic("property", node.name, target))
                    raise self.error(node, self._unknown(node.name, target,
                                                         list(properties)))
                handler = getattr(target, "_current", None)
                before = go_type(target)
                target.set_property(name, args)
                if hasattr(target, "_current"):
                    self._follow_alert_object(target, handler, before, name)
                self._count_nodes(node)  # .deadman() adds nodes
                return target
            # '@': a UDF of the daemon's [udf.functions], checked against its info
            function = udf_functions().get(node.name)
            if function is not None:
                child = UDFSpec(self.pipeline, target, function)
                child.position = (node.line, node.col)
                self._count_nodes(node)
                # Kapacitor defines the task whatever its parent provides and refuses to
                # start it when the edges do not match (see _start_error).
                if target.edge_out() is Edge.NONE:
                    raise self.error(node, f"{target.name} provides no data to chain from")
                return child
            what = ("property" if name in properties else "chaining method"
                    if name in CHAINS and _has_chain(target, name) else "")
            if what:
                op = "." if what == "property" else "|"
                raise self.error(node, f"no dynamic method {_go_quote(node.name)} on "
                                 f"{go_type(target)}, but {what} does exist. Use '{op}' "
                                 f"operator instead: 'node{op}{node.name}(..)'.")
            raise self.error(node, f"no method or property {_go_quote(node.name)} on "
                             f"{go_type(target)} (no UDF named {node.name!r} is configured: "
                             f"[udf.functions.{node.name}])")
        except SpecError as exc:
            dimension = _DIMENSION.match(str(exc))
            if dimension and dimension.group(1) in _GO_ARG_TYPES:
                error = self.plain(node, "invalid dimension object of type "
                                   f"{_GO_ARG_TYPES[dimension.group(1)]}")
                if node.op != ".":
                    raise error from None
                # Kapacitor finds it when it validates the pipeline, after the script
                if self.deferred is None:
                    self.deferred = error
                return target
            raise self.error(node, str(exc)) from None

    @staticmethod
    def _follow_alert_object(target: Any, handler: Any, before: str, name: str) -> None:
        """Which Go object of an alert the next property goes to, as in Kapacitor: a field
        (.id(), .message()...) returns the object it was set on, a property method of the
        alert (.stateChangesOnly()...) returns the alert's data, a handler method the new
        handler."""
        if target._current is not None and target._current is not handler:
            target._go_data = False  # a new handler
            return
        entry = gosignatures.TYPES.get(before.removeprefix("*pipeline."))
        is_field = entry is not None and _upper_first(name) in entry["fields"]
        if handler is not None and target._current is None and is_field:
            target._current = handler  # still the handler's
            return
        if target._current is None and not is_field:
            target._go_data = True

    def _unknown(self, name: str, target: NodeSpec, candidates: list[str]) -> str:
        close = difflib.get_close_matches(name, candidates, n=1)
        hint = f" ({target.name}; did you mean {close[0]}?)" if close else ""
        return f"no method or property {_go_quote(name)} on {go_type(target)}{hint}"

    def _check_edges(self, node: ast.Chain, child: NodeSpec) -> None:
        for parent in child.parents:
            got = parent.edge_out()
            if child.wants is not Edge.SAME and got is not child.wants:
                raise self.error(node, f"invalid edge: {child.kind} wants {child.wants.value}"
                                 f" data, {parent.name} provides {got.value}")
            if got is Edge.NONE:
                raise self.error(node, f"{parent.name} provides no data to chain from")


#: Kapacitor's Go type of each kind of node, as its errors name them.
_GO_TYPES = {"changeDetect": "ChangeDetectNode", "groupby": "GroupByNode",
             "http_out": "HTTPOutNode", "http_post": "HTTPPostNode",
             "influxdb_out": "InfluxDBOutNode", "influxql": "InfluxQLNode",
             "noop": "NoOpNode", "kapacitor_loopback": "KapacitorLoopbackNode",
             "k8s_autoscale": "K8sAutoscaleNode", "swarm_autoscale": "SwarmAutoscaleNode",
             "ec2_autoscale": "Ec2AutoscaleNode", "udf": "UDFNode"}


#: The zero value of each var type Kapacitor computes with when a template's var has none.
_ZERO: dict[str, Any] = {"int": 0, "float": 0.0, "string": "", "bool": False,
                         "duration": Duration(0)}
_DOUBLE_QUOTES = ("cannot assign *ast.ReferenceNode to type string, did you use double "
                  "quotes instead of single quotes?")
#: Go's handler types, by the alert property that starts the handler.
_GO_HANDLERS = {"post": "AlertHTTPPostHandler", "tcp": "TcpHandler", "mqtt": "MQTTHandler",
                "snmpTrap": "SNMPTrapHandler"}


def _declared_value(program: ast.Program) -> Any:
    """The value of the one ``var`` statement of ``program``."""
    statement = program.statements[0]
    assert isinstance(statement, ast.VarDecl)
    return statement.value


def go_type(spec: NodeSpec) -> str:
    """``*pipeline.WindowNode`` for a window spec; ``*pipeline.SlackHandler`` for an
    alert spec whose ``.slack()`` handler takes the properties that follow."""
    current = getattr(spec, "_current", None)
    if current is None and getattr(spec, "_go_data", False):
        return "*pipeline.AlertNodeData"
    if current is not None:
        kinds = getattr(spec, "kinds", None) or registry.current()
        handler = kinds.get(current.kind)
        tick = getattr(handler, "tick_name", "") or current.kind
        return "*pipeline." + (_GO_HANDLERS.get(tick) or tick[:1].upper() + tick[1:]
                               + "Handler")
    return _go_node_type(spec.kind)


@functools.cache
def _go_node_type(kind: str) -> str:
    name = _GO_TYPES.get(kind) or "".join(
        part[:1].upper() + part[1:] for part in kind.split("_")) + "Node"
    return "*pipeline." + name


#: Chaining methods only some nodes have; every other one is on every node but the sources.
_SOURCE_CHAINS = {"from": StreamSpec, "query": BatchSpec}


def _upper_first(name: str) -> str:
    return name[:1].upper() + name[1:]


def _canonical(name: str, properties: Mapping[str, Any]) -> str:
    """The property or chaining method Kapacitor finds for ``name``: it upper-cases the
    first letter of the name and of its methods before comparing them."""
    if name in properties or name in CHAINS:
        return name
    wanted = _upper_first(name)
    for key in properties:
        if _upper_first(key) == wanted:
            return key
    for key in CHAINS:
        if _upper_first(key) == wanted:
            return key
    return name


def _has_chain(target: NodeSpec, name: str) -> bool:
    """Whether Kapacitor's node type of ``target`` has the chaining method ``name``."""
    only = _SOURCE_CHAINS.get(name)
    if only is not None:
        return isinstance(target, only)
    if isinstance(target, StreamSpec | BatchSpec):
        return name in ("stats", "deadman")
    return True


#: Go's names of the argument types, as reflection words a wrong argument.
_GO_ARG_TYPES = {"int": "int64", "float": "float64", "string": "string", "bool": "bool",
                 "duration": "time.Duration", "lambda": "*ast.LambdaNode",
                 "regex": "*regexp.Regexp", "star": "*ast.StarNode", "list": "[]interface {}"}
_DIMENSION = re.compile(r"^groupBy: argument \d+ must be string or star, got (\w+)$")


def _go_value_type(value: Any) -> str | None:
    """The Go type Kapacitor's value would have, as reflection names it."""
    cls = type(value)
    if cls is bool:
        return "bool"
    if cls is int:
        return "int64"
    if cls is float:
        return "float64"
    if cls is str:
        return "string"
    if cls is Duration:
        return "time.Duration"
    if isinstance(value, CompiledLambda):
        return "*ast.LambdaNode"
    if is_regex(value):
        return "*regexp.Regexp"
    if value is STAR:
        return "*ast.StarNode"
    if isinstance(value, list):
        return "[]interface {}"
    if isinstance(value, NodeSpec):
        return go_type(value)
    return None


def _assignable(value: Any, go: str) -> str | None:
    """None when Go would take ``value`` for a parameter or field of type ``go``, else
    the Go type of the value."""
    if go.startswith("interface{}"):
        return None
    actual = _go_value_type(value)
    if actual is None:
        return None
    if go in ("Node", "pipeline.Node"):
        return None if isinstance(value, NodeSpec) else actual
    if go in ("string", "int64", "float64", "bool", "time.Duration", "*ast.LambdaNode",
              "int"):
        return None if actual == go else actual
    return None  # a type kapa-core does not judge


def _qualified(go: str) -> str:
    """A type of Kapacitor's pipeline package as reflection names it (pipeline.Node)."""
    bare = go.removeprefix("...")
    if bare in ("Node",):
        return go[:len(go) - len(bare)] + "pipeline." + bare
    return go


def _go_call_error(op: str, name: str, target: NodeSpec, args: list[Any]) -> str:
    """What Kapacitor's reflection says when a method is called or a property set with
    arguments it does not take (counts and Go types), or ""."""
    obj = go_type(target)
    entry = gosignatures.TYPES.get(obj.removeprefix("*pipeline."))
    if entry is None:
        return ""
    method = name[:1].upper() + name[1:]
    if op == "|":
        signature = entry["chain"].get(method) or gosignatures.CHAINNODE.get(method)
    elif op == ".":
        signature = entry["props"].get(method)
        if signature is None:
            field_type = entry["fields"].get(method)
            if field_type is None:
                return ""
            if len(args) != 1:
                return f"too many arguments to set property {method} on {obj}"
            actual = _assignable(args[0], field_type)
            if actual:
                return (f"error calling func {_go_quote(name)} on obj {obj}: reflect.Set: "
                        f"value of type {actual} is not assignable to type {field_type}")
            return ""
    else:
        return ""
    if signature is None:
        return ""
    types, variadic = signature
    types = _qualified_all(types)
    fixed = len(types) - 1 if variadic else len(types)
    why = ""
    if len(args) < fixed:
        why = "reflect: Call with too few input arguments"
    elif not variadic and len(args) > fixed:
        why = "reflect: Call with too many input arguments"
    else:
        for index, arg in enumerate(args):
            if index < fixed:
                actual = _assignable(arg, types[index])
                if actual:
                    why = f"reflect: Call using {actual} as type {types[index]}"
                    break
            else:
                element = types[-1].removeprefix("...")
                actual = _assignable(arg, element)
                if actual:
                    why = f"reflect: cannot use {actual} as type {element} in Call"
                    break
    if not why:
        return ""
    return f"error calling func {_go_quote(name)} on obj {obj}: {why}"


@functools.cache
def _qualified_all(types: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(_qualified(t) for t in types)


def _use_dynamic(kind: str, name: str, target: NodeSpec) -> str:
    """Kapacitor's answer to ``|name()`` or ``.name()`` where ``name`` is a UDF."""
    return (f"no {kind} method {_go_quote(name)} on {go_type(target)}, but dynamic method "
            f"does exist. Use '@' operator instead: 'node@{name}(..)'.")


def _not_chaining(name: str, target: NodeSpec) -> str:
    return (f"no chaining method {_go_quote(name)} on {go_type(target)}, but property does "
            f"exist. Use '.' operator instead: 'node.{name}(..)'.")


def _go_quote(text: str) -> str:
    """Go's %q of a string (the names here are plain text)."""
    return json.dumps(text, ensure_ascii=False)


def _go_value(value: Any) -> str:
    """Go's %v of a value, for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Duration):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, ast.Reference):  # the node's String()
        return f"ReferenceNode@{value.pos}l{value.line}c{value.col}{{{value.name}}}<nil>"
    return str(value)


_TYPE_NAMES = {"bool": "boolean"}


def _wrong_type(name: str, given: str, declared: str) -> str:
    return (f"invalid type supplied for {name}, got {_TYPE_NAMES.get(given, given)} exp "
            f"{_TYPE_NAMES.get(declared, declared) or 'invalid type'}")


def _identifiers(node: ast.Node) -> list[ast.Identifier]:
    """The identifiers of an operator expression, left to right, without recursion (a
    var's expression may have thousands of terms)."""
    found = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, ast.Identifier):
            found.append(item)
        elif isinstance(item, ast.Binary):
            stack += (item.right, item.left)
        elif isinstance(item, ast.Unary):
            stack.append(item.operand)
        elif isinstance(item, ast.Call):
            stack += reversed(item.args)
    return found


def _lambda_identifiers(node: ast.Node) -> list[ast.Identifier]:
    """The identifiers of a lambda expression, without recursion."""
    found = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, ast.Identifier):
            found.append(item)
        elif isinstance(item, ast.Binary):
            stack += (item.left, item.right)
        elif isinstance(item, ast.Unary):
            stack.append(item.operand)
        elif isinstance(item, ast.Call):
            stack += item.args
        elif isinstance(item, ast.Lambda):
            stack.append(item.expr)
    return found


def _fold(node: ast.Node, scope: dict[str, Any]) -> Any:
    """The value of a constant operator expression (its types already checked)."""
    if isinstance(node, ast.Number | ast.String | ast.Bool):
        return node.value
    if isinstance(node, ast.DurationLit):
        return Duration(node.value)
    if isinstance(node, ast.Regex):
        return compile_regex(node.pattern)
    if isinstance(node, ast.Identifier):
        value = scope[node.name]
        if isinstance(value, ast.Lambda):
            return _fold(value.expr, scope)
        return value
    if isinstance(node, ast.Unary):
        run = []  # ``!!!x``: a run of operators in a loop, innermost first
        while isinstance(node, ast.Unary):
            run.append(node.op)
            node = node.operand
        value = _fold(node, scope)
        for op in reversed(run):
            if op == "!":
                if type(value) is not bool:
                    raise EvalError(f"invalid unary !: {type_name(value)}")
                value = not value
            elif type(value) is int:
                value = _int64(-value)
            elif type(value) is float:
                value = -value
            elif type(value) is Duration:
                value = Duration(_int64(-value))
            else:
                raise EvalError(f"invalid unary -: {type_name(value)}")
        return value
    if isinstance(node, ast.Binary):
        # the operators nested on the left in a loop, innermost first (a var's
        # expression may have thousands of terms)
        spine = []
        while isinstance(node, ast.Binary):
            spine.append(node)
            node = node.left
        value = _fold(node, scope)
        for node in reversed(spine):
            value = _fold_step(node, value, scope)
        return value
    if isinstance(node, ast.Reference):
        raise EvalError(f"name {_go_quote(node.name)} is undefined. Names in scope: ")
    if isinstance(node, ast.Call):
        if node.name not in FUNCTION_NAMES:
            raise EvalError(f"undefined function: {_go_quote(node.name)}")
        call = compile_lambda(ast.Lambda(node.line, node.col, node, node.name), scope)
        return call.eval(0, {}, {})
    raise EvalError(f"cannot evaluate a {ast.describe(node)} outside a lambda")


def _fold_step(node: ast.Binary, left: Any, scope: dict[str, Any]) -> Any:
    """The value of ``node`` given the value of its left operand."""
    if node.op in ("AND", "OR"):
        if type(left) is not bool:
            raise EvalError(f"invalid {node.op} operand: {type_name(left)}")
        if left is (node.op == "OR"):
            return left
        right = _fold(node.right, scope)
        if type(right) is not bool:
            raise EvalError(f"invalid {node.op} operand: {type_name(right)}")
        return right
    value = binary(node.op, left, _fold(node.right, scope))
    if type(value) is int:
        return _int64(value)
    if type(value) is Duration:
        return Duration(_int64(value))
    return value


_ALERT_LEVELS = (("info", "info"), ("info_reset", "infoReset"), ("warn", "warn"),
                 ("warn_reset", "warnReset"), ("crit", "crit"), ("crit_reset", "critReset"))


def _start_error(pipeline: Pipeline) -> str:
    """What Kapacitor says when it builds the task's nodes and one of their lambdas
    applies an operator to constants of types it does not take, or a UDF is fed data
    it does not want; "" if none of that happens."""
    for spec in pipeline.sorted_nodes():
        kind = spec.kind
        found: list[tuple[str, Any]] = []
        if kind == "udf":  # the function's wants are checked as the nodes are linked
            got = spec.edge_in()
            if got is not spec.wants:
                return (f"cannot add child mismatched edges: {spec.parents[0].name}:"
                        f"{got.value} -> {spec.name}:{spec.wants.value}")
        elif kind == "where":
            found = [("Failed to compile expression in where clause: ",
                      getattr(spec, "expr", None))]
        elif kind in ("eval", "combine"):
            found = [(f"Failed to compile {i} expression: ", e)
                     for i, e in enumerate(getattr(spec, "exprs", ()))]
        elif kind == "from":
            found = [("Failed to compile from expression: ", e)
                     for e in getattr(spec, "wheres", ())]
        elif kind == "alert":
            found = [(f"Failed to compile stateful expression for {name}: ",
                      getattr(spec, attr, None)) for attr, name in _ALERT_LEVELS]
        elif kind in ("state_count", "state_duration"):
            found = [("", getattr(spec, "expr", None))]
        for prefix, expr in found:
            message = getattr(expr, "static_error", "")
            if message:
                return prefix + message
    return ""


class _GlobalFunction:
    """A var holding a global function call, which Kapacitor does not make there."""

    def __init__(self, name: str) -> None:
        self.name = name


class _PropertyValue:
    """The value of a property read (``a.period``) kapa-core does not keep."""

    def __init__(self, name: str) -> None:
        self.name = name


class _Unset:
    """A template variable without a value yet."""

    def __init__(self, name: str) -> None:
        self.name = name

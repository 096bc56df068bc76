"""From a parsed TICKscript to a pipeline: variables, method calls, semantic checks.

Everything a user can get wrong is reported here, before a task is saved, with the line
and column of the offending call: unknown nodes and properties (with a suggestion), a
chaining method used as a property and the reverse, wrong argument kinds or counts,
undefined or redefined variables, edge mismatches such as a window fed by batches.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kapa_core.pipeline.alert
import kapa_core.pipeline.influxdb_out
import kapa_core.pipeline.influxql
import kapa_core.pipeline.nodes
import kapa_core.pipeline.query
from kapa_core.alert.kinds import DEADMAN
from kapa_core.errors import TickError
from kapa_core.models.duration import Duration
from kapa_core.pipeline.alert import add_deadman
from kapa_core.pipeline.base import CHAINS, STAR, Edge, NodeSpec, SpecError
from kapa_core.pipeline.nodes import BatchSpec, StreamSpec
from kapa_core.pipeline.pipeline import Pipeline
from kapa_core.tick import ast, limits
from kapa_core.tick.lambdas import CompiledLambda, compile_lambda
from kapa_core.tick.parser import parse
from kapa_core.tick.regex import compile_regex, is_regex

_ = kapa_core.pipeline.influxql
_ = kapa_core.pipeline.influxdb_out
_ = kapa_core.pipeline.query


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


def task_type_of(program: ast.Program) -> str:
    """``stream`` or ``batch`` from the script's chains; "" when it cannot tell."""
    roots: set[str] = set()

    def root(node: ast.Node) -> None:
        while isinstance(node, ast.Chain):
            node = node.left
        if isinstance(node, ast.Identifier) and node.name in ("stream", "batch"):
            roots.add(node.name)

    for statement in program.statements:
        root(statement.value if isinstance(statement, ast.VarDecl) and statement.value
             else statement)
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
             *, require_vars: bool = True, dbrps: list[tuple[str, str]] | None = None
             ) -> Evaluated:
    """Build the pipeline of ``script``; TickError on any error. ``dbrps`` are the
    task's explicit database/retention policy pairs (for loop checks)."""
    program = parse(script)
    try:
        return Evaluator(task_type, overrides or {}, require_vars, dbrps).run(program)
    except RecursionError:  # e.g. a chain of thousands of nodes
        raise TickError("script nested too deeply") from None


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

    def run(self, program: ast.Program) -> Evaluated:
        if self.task_type == "stream":
            self.source = StreamSpec(self.pipeline, [])
        elif self.task_type == "batch":
            self.source = BatchSpec(self.pipeline, [])
        for name in self.overrides:
            if not any(isinstance(s, ast.VarDecl) and s.name == name
                       for s in program.statements):
                raise TickError(f"var {name!r} is not declared in the script")
        for statement in program.statements:
            self.statement(statement)
        if DEADMAN.global_ and self.source is not None:
            # [deadman] global: every task's source node gets a deadman, as in Kapacitor.
            add_deadman(self.pipeline, self.source, DEADMAN.threshold, DEADMAN.interval, [])
            self._count_nodes(None)
        self.pipeline.dbrps = list(self.dbrps) + list(self.extra_dbrps)
        for node in self.pipeline.walk():
            try:
                node.validate()
            except SpecError as exc:
                line, col = node.position
                raise TickError(f"{node.name}: {exc}", line, col) from None
        if self.require_vars and self.missing:
            raise TickError(f"missing value for var {self.missing[0]!r}")
        return Evaluated(self.pipeline, self.dbrps, self.vars, self.missing)

    def error(self, node: ast.Node, message: str) -> TickError:
        return TickError(message, node.line, node.col)

    # -- statements ---------------------------------------------------------------------
    def statement(self, node: ast.Node) -> None:
        if isinstance(node, ast.Dbrp):
            self.dbrps.append((node.database, node.retention_policy))
            return
        if isinstance(node, ast.VarDecl):
            self.declare(node)
            return
        self.value(node)

    def declare(self, node: ast.VarDecl) -> None:
        if node.name in self.scope or node.name in ("stream", "batch"):
            raise self.error(node, f"attempted to redefine {node.name}, vars are immutable")
        override = self.overrides.get(node.name)
        if node.value is None:
            self.vars[node.name] = Var(node.type, None, node.comment)
            if override is None:
                self.missing.append(node.name)
                self.scope[node.name] = _Unset(node.name)
                return
            if override.type != node.type:
                raise self.error(node, f"invalid type supplied for {node.name}: declared "
                                 f"{node.type}, got {override.type}")
            self.scope[node.name] = self._var_value(override)
            return
        if isinstance(node.value, ast.Lambda):
            raw: Any = node.value
        else:
            raw = self.value(node.value)
        declared = _var_type(raw)
        if declared:
            self.vars[node.name] = Var(declared, raw, node.comment)
        if override is not None:
            if declared and override.type != declared:
                raise self.error(node, f"invalid type supplied for {node.name}: declared "
                                 f"{declared}, got {override.type}")
            raw = self._var_value(override)
        self.scope[node.name] = raw

    def _var_value(self, var: Var) -> Any:
        if var.type == "lambda" and isinstance(var.value, str):
            program = parse("var _ = lambda: " + var.value)
            return program.statements[0].value
        if var.type == "regex" and isinstance(var.value, str):
            return compile_regex(var.value)
        if var.type == "star":
            return STAR
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
            inner = self.value(node.operand)
            if node.op == "-" and type(inner) in (int, float):
                return -inner
            if node.op == "-" and isinstance(inner, Duration):
                return Duration(-inner)
            raise self.error(node, f"invalid unary {node.op}")
        if isinstance(node, ast.Identifier):
            return self.identifier(node)
        if isinstance(node, ast.Call):
            if node.name == "time" and len(node.args) in (1, 2):
                durations = [self.value(a) for a in node.args]
                if all(isinstance(d, Duration) for d in durations):
                    return TimeDimension(*durations)
            raise self.error(node, f"undefined function {node.name}() outside a lambda")
        if isinstance(node, ast.Chain):
            return self.chain(node)
        raise self.error(node, f"unexpected {ast.describe(node)}")

    def identifier(self, node: ast.Identifier) -> Any:
        if node.name == "stream" or node.name == "batch":
            if self.source is None or node.name != self.task_type:
                raise self.error(node, f"{node.name} is not available in a "
                                 f"{self.task_type or 'untyped'} task")
            return self.source
        if node.name not in self.scope:
            raise self.error(node, f"undefined variable {node.name!r}")
        value = self.scope[node.name]
        if isinstance(value, _Unset):
            return value
        if isinstance(value, ast.Lambda):
            return self.compile(value)
        return value

    def compile(self, node: ast.Lambda) -> CompiledLambda | _Unset:
        scope = {k: v for k, v in self.scope.items() if not isinstance(v, _Unset)}
        unset = {k: v for k, v in self.scope.items() if isinstance(v, _Unset)}
        try:
            return compile_lambda(node, scope)
        except TickError as exc:
            for name, marker in unset.items():
                if f"undefined identifier {name!r}" in exc.message:
                    return marker  # a template var without a value yet
            raise

    def chain(self, node: ast.Chain) -> Any:
        """A chain ``a|b().c()|d()``, left to right without recursion: the syntax tree
        nests one level per call, and a task may have thousands of nodes in one chain."""
        links = []
        root: ast.Node = node
        while isinstance(root, ast.Chain):
            links.append(root)
            root = root.left
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
            raise self.error(node, f"cannot call {node.op}{node.name}() on a "
                             f"{type(target).__name__}: it is not a node")
        args = [self.value(a) for a in node.args]
        if any(isinstance(a, _Unset) for a in args):
            return target if node.op == "." else _Unset(node.name)
        properties = target.all_properties()
        try:
            if node.op == "|":
                factory = CHAINS.get(node.name)
                if factory is None:
                    if node.name in properties:
                        raise self.error(node, f"no chaining method {node.name!r} on "
                                         f"{target.name}, but property does exist. Use '.' "
                                         "operator instead")
                    raise self.error(node, self._unknown(node.name, target,
                                                         list(CHAINS)))
                child = factory(self.pipeline, target, args)
                child.position = (node.line, node.col)
                self._count_nodes(node)
                self._check_edges(node, child)
                return child
            if node.op == ".":
                if node.name not in properties:
                    if node.name in CHAINS:
                        raise self.error(node, f"no property method {node.name!r} on "
                                         f"{target.name}, but chaining method does exist. "
                                         "Use '|' operator instead")
                    raise self.error(node, self._unknown(node.name, target,
                                                         list(properties)))
                target.set_property(node.name, args)
                self._count_nodes(node)  # .deadman() adds nodes
                return target
            raise self.error(node, f"no UDF named {node.name!r} is configured "
                             "([udf.functions." + node.name + "])")
        except SpecError as exc:
            raise self.error(node, str(exc)) from None

    def _unknown(self, name: str, target: NodeSpec, candidates: list[str]) -> str:
        close = difflib.get_close_matches(name, candidates, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        return f"no method or property {name!r} on {target.name}{hint}"

    def _check_edges(self, node: ast.Chain, child: NodeSpec) -> None:
        for parent in child.parents:
            got = parent.edge_out()
            if child.wants is not Edge.SAME and got is not child.wants:
                raise self.error(node, f"invalid edge: {child.kind} wants {child.wants.value}"
                                 f" data, {parent.name} provides {got.value}")
            if got is Edge.NONE:
                raise self.error(node, f"{parent.name} provides no data to chain from")


class _Unset:
    """A template variable without a value yet."""

    def __init__(self, name: str) -> None:
        self.name = name

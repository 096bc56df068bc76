"""A TICKscript checked without a task: its errors with their positions, its graph and
its declared vars (what ``POST /kapacitor/v1/scripts/check`` answers).

The check does what defining a task does up to, not including, saving it: parse, then
evaluate into a pipeline of node specs (every semantic check of
:mod:`kapa_core.pipeline.evaluate`), then the refusals Kapacitor makes when it starts
the task's nodes (``Evaluated.start_error``). It builds no runtime node, so it opens no
UDF session and attaches no alert handler: it is cheap enough to run on every
keystroke of an editor.

An error is reported, never raised: the check of a script that does not compile is an
answer like any other (``ok`` false), so an editor can show it at its line and column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kapa_core.engine.templates import var_json
from kapa_core.errors import APIError, KapaError, TickError
from kapa_core.pipeline.base import NodeSpec
from kapa_core.pipeline.evaluate import Evaluated, Var, evaluate, task_type_of
from kapa_core.pipeline.pipeline import Pipeline
from kapa_core.tick import ast
from kapa_core.tick.parser import parse

#: The DOT graph's name when the request names no task.
DEFAULT_NAME = "script"


@dataclass(frozen=True)
class ScriptError:
    """One problem of a script, at a 1-based line and column (0 and 0: unknown)."""

    message: str
    line: int = 0
    column: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"message": self.message, "line": self.line, "column": self.column}

    @classmethod
    def of(cls, exc: TickError) -> ScriptError:
        """A TICKscript error, its message without the ``line L char C:`` prefix (the
        position is given apart)."""
        return cls(exc.message + (f": {exc.text}" if exc.text else ""), exc.line,
                   exc.column)


@dataclass
class ScriptInput:
    """What the check (and the dry run) is asked about: a task's script, type, dbrps
    and vars as the task API takes them; ``template`` checks it as a template (a var
    without a value is no error)."""

    script: str
    type: str = "stream"
    dbrps: list[tuple[str, str]] = field(default_factory=list)
    vars: dict[str, Var] = field(default_factory=dict)
    template: bool = False
    name: str = DEFAULT_NAME


@dataclass
class Checked:
    """The outcome of a check: the pipeline when the script evaluated, the errors."""

    name: str
    errors: list[ScriptError] = field(default_factory=list)
    evaluated: Evaluated | None = None
    #: the task's dbrps: the script's ``dbrp`` statements, else those given
    dbrps: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def pipeline(self) -> Pipeline | None:
        return self.evaluated.pipeline if self.evaluated is not None else None

    def to_json(self) -> dict[str, Any]:
        """The check's answer: ``ok``, ``errors``, ``dot``, ``nodes``, ``edges``,
        ``vars``."""
        pipeline = self.pipeline
        nodes, edges = graph(pipeline) if pipeline is not None else ([], [])
        return {"ok": self.ok, "errors": [e.to_json() for e in self.errors],
                "dot": pipeline.dot(self.name) if pipeline is not None else "",
                "nodes": [{"id": n.name, "kind": n.kind, "line": n.position[0],
                           "column": n.position[1]} for n in nodes],
                "edges": edges,
                "vars": var_json(self.evaluated) if self.evaluated is not None else {}}


def drawn_nodes(pipeline: Pipeline) -> list[NodeSpec]:
    """The nodes of the pipeline's DOT, in its order (a batch task's ``batch`` root is
    not drawn, as in Kapacitor)."""
    return [n for n in pipeline.sorted_nodes() if n.kind != "batch"]


def graph(pipeline: Pipeline) -> tuple[list[NodeSpec], list[dict[str, str]]]:
    """The DOT's nodes and its edges (``{"from", "to"}``, in the DOT's order)."""
    nodes = drawn_nodes(pipeline)
    edges = [{"from": node.name, "to": child.name}
             for node in nodes for child in node.children]
    return nodes, edges


def check(given: ScriptInput) -> Checked:
    """Check ``given`` as defining a task (or a template) would; never raises for a
    problem of the script itself."""
    out = Checked(given.name)
    try:
        program = parse(given.script)
    except TickError as exc:
        out.errors.append(ScriptError.of(exc))
        return out
    kind = task_type_of(program)
    if kind == "mixed":
        # Kapacitor's words, then where: a script is a stream or a batch task.
        out.errors.append(ScriptError("invalid task type: invalid (the script has both "
                                      "stream and batch chains)"))
        return out
    kind = kind or given.type  # the script decides; a script of vars only takes the given
    implicit = [(s.database, s.retention_policy) for s in program.statements
                if isinstance(s, ast.Dbrp)]
    out.dbrps = implicit or list(given.dbrps)
    try:
        out.evaluated = evaluate(given.script, kind, given.vars,
                                 require_vars=not given.template,
                                 dbrps=list(given.dbrps), program=program)
    except TickError as exc:
        out.errors.append(ScriptError.of(exc))
        return out
    except RecursionError:
        out.errors.append(ScriptError("script nested too deeply"))
        return out
    except KapaError as exc:  # e.g. a limit of [task]: reported, not raised
        out.errors.append(ScriptError(str(exc)))
        return out
    if out.evaluated.start_error:
        # Found by Kapacitor as it builds the nodes: the task saves, but does not start.
        out.errors.append(ScriptError(out.evaluated.start_error))
    if implicit and given.dbrps:
        out.errors.append(ScriptError("cannot specify dbrp in both implicitly and "
                                      "explicitly"))
    return out


def check_type(value: Any) -> str:
    """The request's ``type``: ``stream`` (the default) or ``batch``."""
    if value is None:
        return "stream"
    if value not in ("stream", "batch"):
        raise APIError(400, f"invalid type {value!r}: expected \"stream\" or \"batch\"")
    return str(value)


def check_dbrps(value: Any) -> list[tuple[str, str]]:
    """The request's ``dbrps``: a list of ``{"db": ..., "rp": ...}`` (rp may be empty)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(
            isinstance(d, dict) and isinstance(d.get("db"), str) and d["db"]
            and isinstance(d.get("rp", ""), str) for d in value):
        raise APIError(400, 'invalid dbrps: expected a list of {"db": "...", "rp": "..."}')
    return [(d["db"], d.get("rp", "")) for d in value]

"""The pipeline model: node specs, edges, and how TICKscript methods map onto them.

A spec class declares what TICKscript can say about one kind of node:

* ``kind`` — the display name prefix (``window`` → ``window2``);
* ``wants``/``provides`` — edge types, ``SAME`` meaning "whatever the parent provides";
* ``PROPERTIES`` — ``name: Prop(...)`` for each ``.name(args)`` property method;
* chaining methods are registered with :func:`chain` (``|name(args)`` creates the node).

Argument values arrive already evaluated: ``int``, ``float``, ``str``, ``bool``,
``Duration``, compiled lambdas, compiled regexes, :data:`STAR`, lists, or other specs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar

from kapa_core.models.duration import Duration
from kapa_core.tick.lambdas import CompiledLambda
from kapa_core.tick.regex import is_regex


class Edge(Enum):
    NONE = "none"
    STREAM = "stream"
    BATCH = "batch"
    SAME = "same"  # wants: any; provides: whatever the parent provides


class _Star:
    def __repr__(self) -> str:
        return "*"


STAR = _Star()


class SpecError(Exception):
    """A method call that does not fit the spec; the evaluator adds line and column."""


KIND_CHECKS: dict[str, Callable[[Any], bool]] = {
    "int": lambda v: type(v) is int,
    "float": lambda v: type(v) in (int, float),
    "string": lambda v: type(v) is str,
    "bool": lambda v: type(v) is bool,
    "duration": lambda v: type(v) is Duration,
    "lambda": lambda v: isinstance(v, CompiledLambda),
    "regex": is_regex,
    "star": lambda v: v is STAR,
    "node": lambda v: isinstance(v, NodeSpec),
    "any": lambda v: True,
}


def check_args(name: str, kinds: Sequence[str], args: Sequence[Any], *,
               variadic: str = "", minimum: int | None = None) -> list[Any]:
    """Validate ``args`` against ``kinds`` (then any number of ``variadic``)."""
    need = len(kinds) if minimum is None else minimum
    if len(args) < need or (not variadic and len(args) > len(kinds)):
        expected = f"{len(kinds)}" if not variadic else f"at least {need}"
        raise SpecError(f"{name}: expected {expected} argument(s), got {len(args)}")
    out = []
    for i, value in enumerate(args):
        kind = kinds[i] if i < len(kinds) else variadic
        options = kind.split("|")
        if not any(KIND_CHECKS[k](value) for k in options):
            raise SpecError(f"{name}: argument {i + 1} must be {' or '.join(options)}, got "
                            f"{kind_of(value)}")
        if "float" in options and type(value) is int and "int" not in options:
            value = float(value)
        out.append(value)
    return out


def kind_of(value: Any) -> str:
    for kind in ("bool", "duration", "int", "float", "string", "lambda", "regex", "star",
                 "node"):
        if KIND_CHECKS[kind](value):
            return kind
    if isinstance(value, list):
        return "list"
    return type(value).__name__


@dataclass(frozen=True)
class Prop:
    """A property method: argument kinds, and how the values are stored.

    ``mode``: ``set`` (one value, or a tuple for several kinds), ``flag`` (no argument
    or an optional bool sets True), ``append`` (each call adds its value(s) to a list),
    ``extend`` (variadic values replace the list), ``pairs`` (each call adds a
    (key, value) pair).
    """

    kinds: tuple[str, ...] = ()
    attr: str = ""
    mode: str = "set"
    variadic: str = ""
    minimum: int | None = None


class NodeSpec:
    """One node of a pipeline, as a TICKscript described it."""

    kind: ClassVar[str] = ""
    wants: ClassVar[Edge] = Edge.SAME
    provides: ClassVar[Edge] = Edge.SAME
    PROPERTIES: ClassVar[dict[str, Prop]] = {}
    #: Whether the node accepts being a chain target of several parents (join, union).
    user_creatable: ClassVar[bool] = True

    def __init__(self, pipeline: Any, parents: list[NodeSpec]) -> None:
        self.pipeline = pipeline
        self.parents = parents
        # What the first parent provides, found once: a chain of thousands of nodes
        # needs no recursion (nor quadratic time) to check its edges.
        self._edge_in = parents[0].edge_out() if parents else Edge.NONE
        self.children: list[NodeSpec] = []
        self.id = pipeline.register(self, len(parents)) if pipeline is not None else 0
        self.quiet = False
        self.position = (0, 0)  # line and column of the call that created the node
        for parent in parents:
            parent.children.append(self)

    @property
    def name(self) -> str:
        return f"{self.kind}{self.id}"

    def go_type(self) -> str:
        """The Go type Kapacitor's errors name for this node (``*pipeline.WindowNode``)."""
        from kapa_core.pipeline.evaluate import go_type  # evaluate imports this module

        return go_type(self)

    def edge_in(self) -> Edge:
        return self._edge_in

    def edge_out(self) -> Edge:
        return self.edge_in() if self.provides is Edge.SAME else self.provides

    def all_properties(self) -> dict[str, Prop]:
        """The properties a script may set on this node; a node whose properties
        depend on its configuration (alert handlers, UDF options) extends them."""
        props: dict[str, Prop] = {"quiet": Prop(attr="quiet", mode="flag")}
        for klass in reversed(type(self).__mro__):
            props.update(getattr(klass, "PROPERTIES", {}))
        return props

    def set_property(self, name: str, args: list[Any]) -> None:
        prop = self.all_properties()[name]
        attr = prop.attr or name
        if prop.mode == "flag":
            values = check_args(name, ("bool",), args, minimum=0)
            setattr(self, attr, values[0] if values else True)
            return
        values = check_args(name, prop.kinds, args, variadic=prop.variadic,
                            minimum=prop.minimum)
        if prop.mode == "set":
            setattr(self, attr, values[0] if len(prop.kinds) == 1 and not prop.variadic
                    else tuple(values))
        elif prop.mode == "append":
            getattr(self, attr).append(values[0] if len(values) == 1 else tuple(values))
        elif prop.mode == "extend":
            setattr(self, attr, list(values))
        elif prop.mode == "pairs":
            getattr(self, attr).append((values[0], values[1]))
        else:  # pragma: no cover - a spec author's mistake
            raise AssertionError(prop.mode)

    def validate(self) -> None:
        """Checks across properties, run once the whole script is evaluated."""

    def attributes(self) -> dict[str, Any]:
        """Property values shown in DOT output."""
        return {}


#: Chaining methods: TICKscript name -> factory(pipeline, parent, args) -> spec.
CHAINS: dict[str, Callable[[Any, NodeSpec, list[Any]], NodeSpec]] = {}


def chain(name: str) -> Callable[[Callable[..., NodeSpec]], Callable[..., NodeSpec]]:
    def register(factory: Callable[..., NodeSpec]) -> Callable[..., NodeSpec]:
        CHAINS[name] = factory
        return factory
    return register

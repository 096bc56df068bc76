"""The TICKscript syntax tree. Every node knows where it starts (line, column).

Dataclasses with ``__slots__``: a script of a megabyte makes hundreds of thousands of nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Node:
    line: int
    col: int


@dataclass(slots=True)
class Number(Node):
    value: int | float
    octal: bool = False


@dataclass(slots=True)
class String(Node):
    value: str
    triple: bool = False


@dataclass(slots=True)
class DurationLit(Node):
    value: int  # nanoseconds
    text: str


@dataclass(slots=True)
class Regex(Node):
    pattern: str


@dataclass(slots=True)
class Bool(Node):
    value: bool


@dataclass(slots=True)
class Star(Node):
    pass


@dataclass(slots=True)
class Reference(Node):
    name: str
    pos: int = 0  # byte offset in the script, as Kapacitor's errors show it


@dataclass(slots=True)
class Identifier(Node):
    name: str


@dataclass(slots=True)
class ListLit(Node):
    items: list[Node]


@dataclass(slots=True)
class Lambda(Node):
    expr: Node
    text: str = ""  # the source of the expression, for vars and formatting


@dataclass(slots=True)
class Unary(Node):
    op: str
    operand: Node


@dataclass(slots=True)
class Binary(Node):
    op: str
    left: Node
    right: Node
    parens: bool = False  # written inside parentheses (the formatter keeps them)
    multiline: bool = False  # a line break followed the operator


@dataclass(slots=True)
class Call(Node):
    """A function call: ``time(1m)`` at statement level, ``sigma("v")`` in a lambda."""

    name: str
    args: list[Node]


@dataclass(slots=True)
class Chain(Node):
    """``left | name(args)``, ``left . name(args)`` or ``left @ name(args)``."""

    left: Node
    op: str  # "|", "." or "@"
    name: str
    args: list[Node]
    called: bool = True  # False for a bare property read ``a.b``
    comment: str = ""  # a comment written just before the operator


@dataclass(slots=True)
class VarDecl(Node):
    name: str
    value: Node | None  # None for a typed template var
    type: str = ""
    comment: str = ""


@dataclass(slots=True)
class Dbrp(Node):
    database: str
    retention_policy: str


@dataclass(slots=True)
class Program:
    statements: list[Node] = field(default_factory=list)
    comments: dict[int, str] = field(default_factory=dict)  # statement index -> comment


def describe(node: object) -> str:
    """A short human name of a node's kind, for error messages."""
    return {Number: "number", String: "string", DurationLit: "duration", Regex: "regex",
            Bool: "boolean", Star: "star", Reference: "reference", Identifier: "identifier",
            ListLit: "list", Lambda: "lambda", Unary: "expression", Binary: "expression",
            Call: "function call", Chain: "node"}.get(type(node), type(node).__name__)

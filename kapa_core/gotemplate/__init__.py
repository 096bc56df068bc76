"""Go's ``text/template`` (and the text escaping of ``html/template``) for Kapacitor templates.

Kapacitor's alert ids, messages and details and many handler options are Go templates:
``{{ .Name }}:{{ .Group }}``, ``{{ .ID }} is {{ .Level }}``, ``{{ index .Tags "host" }}``,
``{{ if eq .Level "OK" }}…{{ else }}…{{ end }}``, ``{{ index .Fields "value" | printf
"%0.3f" }}``. :func:`parse` reads one once, the way Go's parser does (same syntax, same
errors), and compiles it to Python closures; :meth:`Template.execute` then renders it as
often as needed without looking at the parse tree again::

    template = parse("{{ .Name }}:{{ .Group }}", "id")
    template.execute({"Name": "cpu", "Group": "host=a"})  # 'cpu:host=a'

Data maps to Go as follows: dicts are maps (``.key``; a missing key prints ``<no value>``),
:class:`StringMap` is a ``map[string]string``, lists and tuples are slices, ``None`` is nil,
other objects are structs whose attributes are fields and whose bound methods are methods
(``{{ .Time.Format "15:04" }}``). Values print with Go's ``%v`` (:func:`go_format`), and a
value with a ``go_string()`` method prints as that (``Duration`` as ``1m30s``, :class:`GoTime`
as ``2006-01-02 15:04:05 +0000 UTC``).

The modules: ``lexer`` (items, Go literal syntax), ``parser`` (parse trees and syntax
errors), ``compiler`` (closures and execution), ``funcs`` (predefined functions,
``printf``), ``gofmt`` (``fmt`` verbs and ``%v``), ``gotime`` (Go value types and
reflection rules), ``htmlctx`` and ``gojson`` (html/template's contexts and escapers). With
``html=True`` every action's output is escaped as html/template escapes it where it lands.
The package imports nothing from the rest of kapa_core (it could be shipped on its own),
and type-checks under ``mypy --strict``. The core catches :class:`TemplateError` where it
parses or runs a template and turns it into its own errors.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kapa_core.gotemplate.compiler import Compiler, Program
from kapa_core.gotemplate.funcs import BUILTINS
from kapa_core.gotemplate.gofmt import go_format
from kapa_core.gotemplate.gotime import NO_VALUE, ExecError, GoTime, StringMap
from kapa_core.gotemplate.lexer import ParseError, go_quote
from kapa_core.gotemplate.parser import parse_trees

__all__ = ["ExecError", "GoTime", "StringMap", "Template", "TemplateError", "go_format", "parse"]

_IDENTIFIER = re.compile(r"[^\W\d]\w*")


class TemplateError(Exception):
    """A template that cannot be parsed or executed; ``line``/``column`` are 1-based."""

    def __init__(self, message: str, line: int = 0, column: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


class Template:
    """A parsed, compiled template: ``execute(data) -> str``."""

    __slots__ = ("_body", "_pad", "html", "name", "text")

    def __init__(self, name: str, text: str, html: bool, program: Program) -> None:
        self.name = name
        self.text = text
        self.html = html
        tree = program.trees[name]
        self._body = tree.body
        self._pad = tree.pad

    def __repr__(self) -> str:
        return f"Template({self.name!r}, {self.text!r})"

    def execute(self, data: Any = None) -> str:
        """Render with ``data`` as dot; raises :class:`TemplateError` on execution errors."""
        out: list[str] = []
        dot = NO_VALUE if data is None else data
        try:
            self._body(dot, [0, dot, *self._pad], out)
        except ExecError as exc:
            raise self._error(exc) from None
        except RecursionError:
            raise TemplateError(f"template: {self.name}: exceeded maximum template depth"
                                ) from None
        except Exception as exc:  # a bug here must still surface as a template error
            raise TemplateError(f"template: {self.name}: {type(exc).__name__}: {exc}") from None
        return "".join(out)

    def _error(self, exc: ExecError) -> TemplateError:
        node = exc.node
        if node is None:
            return TemplateError(f"template: {exc.tmpl or self.name}: {exc.msg}")
        text = self.text
        start = text.rfind("\n", 0, node.pos) + 1
        line = text.count("\n", 0, node.pos) + 1
        byte = len(text[start:node.pos].encode("utf-8", "surrogatepass"))
        return TemplateError(f"template: {self.name}:{line}:{byte}: executing "
                             f"{go_quote(exc.tmpl)} at <{node}>: {exc.msg}",
                             line, node.pos - start + 1)


def parse(text: str, name: str = "template", *,
          funcs: dict[str, Callable[..., Any]] | None = None, html: bool = False) -> Template:
    """Parse and compile ``text``.

    ``funcs`` adds (or overrides) functions by name; they get evaluated arguments, a Go nil
    as ``None``, and their exceptions become ``error calling NAME: ...``. ``html=True``
    escapes every action's output as html/template does in text. Raises
    :class:`TemplateError` ("template: NAME:LINE: MESSAGE") with ``line`` and ``column``
    (1-based) of the offending spot.
    """
    if not isinstance(text, str):
        raise TemplateError(f"template: {name}: text is {type(text).__name__}, not str")
    user = dict(funcs or {})
    for key, value in user.items():
        if not isinstance(key, str) or not _IDENTIFIER.fullmatch(key):
            raise TemplateError(f"template: function name {key!r} is not a valid identifier")
        if not callable(value):
            raise TemplateError(f"template: value for {key} not a function")

    def has_function(ident: str) -> bool:
        return ident in user or ident in BUILTINS

    try:
        trees = parse_trees(text, name, has_function)
        program = Program(user, html)
        for tree_name, root in trees.items():
            program.trees[tree_name] = Compiler(program, tree_name).compile(root)
    except ParseError as exc:
        start = text.rfind("\n", 0, exc.spot) + 1
        line = text.count("\n", 0, exc.spot) + 1
        go_line = text.count("\n", 0, exc.go_pos) + 1
        raise TemplateError(f"template: {name}:{go_line}: {exc.message}", line,
                            exc.spot - start + 1) from None
    except RecursionError:
        raise TemplateError(f"template: {name}:1: max expression depth exceeded", 1, 1
                            ) from None
    return Template(name, text, html, program)

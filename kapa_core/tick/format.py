"""TICKscript formatting, as Kapacitor formats scripts (``script-format=formatted``).

Chains put each ``|node()`` on its own line indented one step (four spaces) and each
``.property()`` two steps; statements are separated by a blank line; lambdas, literals
and operators are written in their canonical form. Comments before statements and before
chain calls are kept, with their own spacing, and so are comments after the last
statement.
"""

from __future__ import annotations

from kapa_core.tick import ast
from kapa_core.tick.functions import _go_float
from kapa_core.tick.parser import parse

STEP = "    "


def format_script(script: str) -> str:
    return format_program(parse(script))


def format_program(program: ast.Program) -> str:
    """``format_script`` of a script already parsed."""
    parts = []
    for index, statement in enumerate(program.statements):
        text = _comment(program.comments.get(index, ""), "")
        text += _node(statement, "")
        parts.append(text + "\n")
    trailing = program.comments.get(len(program.statements))
    if trailing:  # comments after the last statement are a statement of their own
        parts.append(_comment(trailing, "") + "\n")
    return "\n".join(parts)


def _comment(comment: str, indent: str) -> str:
    """A comment's lines as Kapacitor writes them: ``//``, a space and the line as
    written (an empty line as ``//`` alone); a blank line between separate comment
    blocks. The parser keeps blocks apart as a ``\n\n\n`` separator (Kapacitor's
    blank entry joined by newlines), so each pair of empty lines in a row is one blank
    line and an odd one left over is an empty ``//`` line."""
    if not comment:
        return ""
    out = []
    lines = comment.split("\n")
    i = 0
    while i < len(lines):
        if lines[i]:
            out.append(f"{indent}// {lines[i]}\n")
            i += 1
            continue
        run = 0
        while i < len(lines) and not lines[i]:
            run += 1
            i += 1
        out.append(f"{indent}//\n" * (run % 2) + "\n" * (run // 2))
    return "".join(out)


def _node(node: ast.Node, indent: str) -> str:
    if isinstance(node, ast.Dbrp):
        return f'dbrp {_reference(node.database)}.{_reference(node.retention_policy)}'
    if isinstance(node, ast.VarDecl):
        if node.value is None:
            return f"var {node.name} {node.type}"
        return f"var {node.name} = {_node(node.value, indent)}"
    if isinstance(node, ast.Chain):  # one call per line, root first, without recursion
        links = []
        root: ast.Node = node
        while isinstance(root, ast.Chain):
            links.append(root)
            root = root.left
        out = [_node(root, indent)]
        for link in reversed(links):
            step = indent + STEP + (STEP if link.op == "." else "")
            call = link.name + (_args(link.args, step) if link.called else "")
            comment = _comment(link.comment, step)
            out.append(f"\n{comment}{step}{link.op}{call}")
        return "".join(out)
    if isinstance(node, ast.Call):
        if len(node.args) != 1 or not isinstance(node.args[0], ast.Call):
            return node.name + _args(node.args, indent)
        names = []  # ``abs(abs(abs(x)))``: calls of one call, walked in a loop
        while isinstance(node, ast.Call) and len(node.args) == 1 and isinstance(
                node.args[0], ast.Call):
            names.append(node.name + "(")
            node = node.args[0]
            indent += STEP
        return "".join(names) + _node(node, indent) + ")" * len(names)
    if isinstance(node, ast.Identifier):
        return node.name
    if isinstance(node, ast.Number):
        if isinstance(node.value, float):
            text = _go_float(node.value)
            return text if "." in text else text + ".0"
        return ("0" + format(node.value, "o")) if node.octal else str(node.value)
    if isinstance(node, ast.String):
        if node.triple:
            return f"'''{node.value}'''"
        return "'" + node.value.replace("'", "\\'") + "'"
    if isinstance(node, ast.DurationLit):
        return node.text
    if isinstance(node, ast.Regex):
        return "/" + node.pattern.replace("/", "\\/") + "/"
    if isinstance(node, ast.Bool):
        return "TRUE" if node.value else "FALSE"
    if isinstance(node, ast.Star):
        return "*"
    if isinstance(node, ast.Reference):
        return _reference(node.name)
    if isinstance(node, ast.ListLit):
        return "[" + ", ".join(_node(item, indent) for item in node.items) + "]"
    if isinstance(node, ast.Lambda):
        return "lambda: " + _node(node.expr, indent)
    if isinstance(node, ast.Unary):  # a run of operators (``!!x``) without recursion
        ops = []
        while isinstance(node, ast.Unary):
            ops.append(node.op)
            node = node.operand
        return "".join(ops) + _node(node, indent)
    if isinstance(node, ast.Binary):
        return _binary(node, indent)
    raise TypeError(f"cannot format {type(node).__name__}")


def _binary(node: ast.Binary, indent: str) -> str:
    """An operator expression. Its left operands are walked in a loop, not recursively:
    ``a OR b OR c ...`` nests one level per operator and generated lambdas have
    thousands of terms. Each parenthesised level indents its content one step more; the
    indentation is only built where it shows (a line break, a nested call), not for
    thousands of levels of ``((((x + 1) + 1) + 1) ...)``."""
    parts: list[str] = []
    closing: list[str] = []  # after the operands on the right walked in the loop
    while True:
        spine: list[tuple[ast.Binary, int]] = []  # each operator with its inner depth
        left: ast.Node = node
        depth = 0
        while isinstance(left, ast.Binary):
            depth += left.parens
            spine.append((left, depth))
            left = left.left
        # every opening parenthesis of the walk comes before the leftmost operand
        parts += ("(" * depth, _node(left, indent + STEP * depth))
        for binary, level in reversed(spine[1:]):
            right = binary.right
            if binary.multiline or not isinstance(right, _FLAT):
                inner = indent + STEP * level
                sep = "\n" + inner if binary.multiline else " "
                parts += (" ", binary.op, sep, _node(right, inner))
            else:
                parts += (" ", binary.op, " ", _node(right, indent))
            if binary.parens:
                parts.append(")")
        # the outermost operator: an operator expression on its right (``a OR (b OR
        # (...))``) is walked by the loop, not recursed into
        right = node.right
        if node.multiline or not isinstance(right, _FLAT):
            inner = indent + STEP * spine[0][1]
            parts += (" ", node.op, "\n" + inner if node.multiline else " ")
            if isinstance(right, ast.Binary):
                closing.append(")" if node.parens else "")
                node, indent = right, inner
                continue
            parts.append(_node(right, inner))
        else:
            parts += (" ", node.op, " ", _node(right, indent))
        if node.parens:
            parts.append(")")
        break
    parts += reversed(closing)
    return "".join(parts)


#: Nodes whose text does not depend on the indentation.
_FLAT = (ast.Number, ast.String, ast.Reference, ast.Identifier, ast.Bool, ast.DurationLit,
         ast.Regex, ast.Star)


def _args(args: list[ast.Node], indent: str) -> str:
    # a loop, not a generator: one Python frame less per nested call (``abs(abs(...))``),
    # so that whatever nesting the parser takes is formatted too
    inner = indent + STEP
    parts = []
    for arg in args:
        parts.append(_node(arg, inner))
    return "(" + ", ".join(parts) + ")"


def _reference(name: str) -> str:
    return '"' + name.replace('"', '\\"') + '"'

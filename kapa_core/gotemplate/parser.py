"""Parse trees of Go templates, built exactly as ``text/template/parse`` builds them.

``parse_trees(text, name, has_function)`` returns every template the text defines (the
top-level one under ``name``, plus ``{{define}}`` and ``{{block}}`` bodies) as
:class:`ListNode` trees, or raises :class:`ParseError` with Go's message (``unexpected "}"
in operand``, ``function "foo" not defined``, ``undefined variable "$x"``, ``unexpected
EOF``...). Nodes print as Go prints them (``str(node)``), which execution errors quote.
"""

from __future__ import annotations

from collections.abc import Callable

from kapa_core.gotemplate import lexer as lx
from kapa_core.gotemplate.lexer import Item, ParseError, go_quote, number_value, unquote


# -- nodes ------------------------------------------------------------------------------------
class Node:
    """A parse tree node at offset ``pos`` of the text; ``str(node)`` is Go's ``String()``."""

    __slots__ = ("pos",)

    def __init__(self, pos: int) -> None:
        self.pos = pos


class TextNode(Node):
    __slots__ = ("text",)

    def __init__(self, pos: int, text: str) -> None:
        self.pos = pos
        self.text = text

    def __str__(self) -> str:
        return self.text


class ListNode(Node):
    __slots__ = ("nodes",)

    def __init__(self, pos: int, nodes: list[Node]) -> None:
        self.pos = pos
        self.nodes = nodes

    def __str__(self) -> str:
        return "".join(str(c) for c in self.nodes)


class DotNode(Node):
    __slots__ = ()

    def __str__(self) -> str:
        return "."


class NilNode(Node):
    __slots__ = ()

    def __str__(self) -> str:
        return "nil"


class BreakNode(Node):
    __slots__ = ()

    def __str__(self) -> str:
        return "{{break}}"


class ContinueNode(Node):
    __slots__ = ()

    def __str__(self) -> str:
        return "{{continue}}"


class BoolNode(Node):
    __slots__ = ("value",)

    def __init__(self, pos: int, value: bool) -> None:
        self.pos = pos
        self.value = value

    def __str__(self) -> str:
        return "true" if self.value else "false"


class NumberNode(Node):
    """``value``: the untyped constant's value; ``error``: set if it does not fit an int."""

    __slots__ = ("error", "text", "value")

    def __init__(self, pos: int, text: str, value: object, error: str | None) -> None:
        self.pos = pos
        self.text = text
        self.value = value
        self.error = error

    def __str__(self) -> str:
        return self.text


class StringNode(Node):
    __slots__ = ("quoted", "text")

    def __init__(self, pos: int, quoted: str, text: str) -> None:
        self.pos = pos
        self.quoted = quoted
        self.text = text

    def __str__(self) -> str:
        return self.quoted


class IdentifierNode(Node):
    __slots__ = ("ident",)

    def __init__(self, pos: int, ident: str) -> None:
        self.pos = pos
        self.ident = ident

    def __str__(self) -> str:
        return self.ident


class FieldNode(Node):
    """``.A.B``: ``ident`` is ``["A", "B"]``."""

    __slots__ = ("ident",)

    def __init__(self, pos: int, ident: list[str]) -> None:
        self.pos = pos
        self.ident = ident

    def __str__(self) -> str:
        return "".join("." + f for f in self.ident)


class VariableNode(Node):
    """``$x.A``: ``ident`` is ``["$x", "A"]``."""

    __slots__ = ("ident",)

    def __init__(self, pos: int, ident: list[str]) -> None:
        self.pos = pos
        self.ident = ident

    def __str__(self) -> str:
        return ".".join(self.ident)


class ActionNode(Node):
    __slots__ = ("pipe",)

    def __init__(self, pos: int, pipe: PipeNode) -> None:
        self.pos = pos
        self.pipe = pipe

    def __str__(self) -> str:
        return f"{{{{{self.pipe}}}}}"


class ChainNode(Node):
    """``(pipeline).A.B``: ``node`` is the term, ``field`` is ``["A", "B"]``."""

    __slots__ = ("field", "node")

    def __init__(self, pos: int, node: Node, field: list[str]) -> None:
        self.pos = pos
        self.node = node
        self.field = field

    def __str__(self) -> str:
        base = f"({self.node})" if isinstance(self.node, PipeNode) else str(self.node)
        return base + "".join("." + name for name in self.field)


class CommandNode(Node):
    __slots__ = ("args",)

    def __init__(self, pos: int, args: list[Node]) -> None:
        self.pos = pos
        self.args = args

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, PipeNode) else str(a) for a in self.args)


class PipeNode(Node):
    __slots__ = ("cmds", "decl", "is_assign")

    def __init__(self, pos: int, decl: list[VariableNode], is_assign: bool,
                 cmds: list[CommandNode]) -> None:
        self.pos = pos
        self.decl = decl
        self.is_assign = is_assign
        self.cmds = cmds

    def __str__(self) -> str:
        head = ""
        if self.decl:
            head = ", ".join(str(v) for v in self.decl) + (" = " if self.is_assign else " := ")
        return head + " | ".join(str(c) for c in self.cmds)


class BranchNode(Node):
    """``if``, ``range`` and ``with``: a pipeline, a body and an optional else body."""

    __slots__ = ("else_list", "list", "pipe")
    keyword = ""

    def __init__(self, pos: int, pipe: PipeNode, body: ListNode,
                 else_list: ListNode | None) -> None:
        self.pos = pos
        self.pipe = pipe
        self.list = body
        self.else_list = else_list

    def __str__(self) -> str:
        text = f"{{{{{self.keyword} {self.pipe}}}}}{self.list}"
        if self.else_list is not None:
            text += f"{{{{else}}}}{self.else_list}"
        return text + "{{end}}"


class IfNode(BranchNode):
    __slots__ = ()
    keyword = "if"


class RangeNode(BranchNode):
    __slots__ = ()
    keyword = "range"


class WithNode(BranchNode):
    __slots__ = ()
    keyword = "with"


class TemplateNode(Node):
    __slots__ = ("name", "pipe")

    def __init__(self, pos: int, name: str, pipe: PipeNode | None) -> None:
        self.pos = pos
        self.name = name
        self.pipe = pipe

    def __str__(self) -> str:
        pipe = "" if self.pipe is None else f" {self.pipe}"
        return f"{{{{template {go_quote(self.name)}{pipe}}}}}"


class _EndNode(Node):
    """``{{end}}``; ``spot`` is where the keyword is (pos is Go's: the closing delimiter)."""

    __slots__ = ("spot",)

    def __init__(self, pos: int, spot: int) -> None:
        self.pos = pos
        self.spot = spot

    def __str__(self) -> str:
        return "{{end}}"


class _ElseNode(_EndNode):
    __slots__ = ()

    def __str__(self) -> str:
        return "{{else}}"


def is_empty_tree(node: Node) -> bool:
    if isinstance(node, ListNode):
        return all(is_empty_tree(n) for n in node.nodes)
    return isinstance(node, TextNode) and not node.text.strip()


# -- the parser -------------------------------------------------------------------------------
_OPERAND_START = frozenset({lx.BOOL, lx.CHAR_CONSTANT, lx.COMPLEX, lx.DOT, lx.FIELD,
                            lx.IDENTIFIER, lx.NUMBER, lx.NIL, lx.RAW_STRING, lx.STRING,
                            lx.VARIABLE, lx.LEFT_PAREN})
_MAX_PAREN_DEPTH = 10000
_BRANCHES: dict[str, type[BranchNode]] = {"if": IfNode, "range": RangeNode, "with": WithNode}


class _Parser:
    def __init__(self, text: str, name: str, has_function: Callable[[str], bool]) -> None:
        self.text = text
        self.name = name
        self.has_function = has_function
        self.items = lex_items = lx.lex(text, break_ok=not has_function("break"),
                                        continue_ok=not has_function("continue"))
        lex_items.extend([lex_items[-1]] * 4)  # reading past the end repeats the last item
        self.i = 0
        self.seen = 0
        self.trees: dict[str, ListNode] = {}
        self.vars = ["$"]
        self.range_depth = 0
        self.paren_depth = 0
        self.action_line = 0
        self.open: list[int] = []  # where the unclosed control structures start

    def line_of(self, pos: int) -> int:
        return self.text.count("\n", 0, pos) + 1

    # -- token stream ----------------------------------------------------------------------
    def next(self) -> Item:
        item = self.items[self.i]
        self.seen = max(self.seen, self.i)
        self.i += 1
        return item

    def backup(self) -> None:
        self.i -= 1

    def peek(self) -> Item:
        self.seen = max(self.seen, self.i)
        return self.items[self.i]

    def next_non_space(self) -> Item:
        item = self.next()
        while item.typ == lx.SPACE:
            item = self.next()
        return item

    def peek_non_space(self) -> Item:
        item = self.next_non_space()
        self.backup()
        return item

    def error(self, message: str, spot: int) -> ParseError:
        return ParseError(message, spot, self.items[self.seen].go_pos)

    def unexpected(self, item: Item, context: str) -> ParseError:
        if item.typ == lx.ERROR:
            extra = ""
            line = self.line_of(item.go_pos)
            if self.action_line and self.action_line != line:
                extra = f" in action started at {self.name}:{self.action_line}"
                if item.val.endswith(" action"):
                    extra = extra[len(" in action"):]
            return self.error(item.val + extra, item.pos)
        return self.error(f"unexpected {item} in {context}", item.pos)

    def expect(self, typ: int, context: str) -> Item:
        item = self.next_non_space()
        if item.typ != typ:
            raise self.unexpected(item, context)
        return item

    # -- structure -------------------------------------------------------------------------
    def parse(self) -> dict[str, ListNode]:
        root = ListNode(self.peek().pos, [])
        while self.peek().typ != lx.EOF:
            if self.peek().typ == lx.LEFT_DELIM:
                mark = self.i
                self.next()
                keyword = self.next_non_space()
                if keyword.typ == lx.DEFINE:
                    self.parse_definition(keyword)
                    continue
                self.i = mark
            node = self.text_or_action()
            if isinstance(node, _EndNode):
                raise self.error(f"unexpected {node}", node.spot)
            root.nodes.append(node)
        self.add(self.name, root, root.pos)
        return self.trees

    def add(self, name: str, root: ListNode, spot: int) -> None:
        tree = self.trees.get(name)
        if tree is None or is_empty_tree(tree):
            self.trees[name] = root
        elif not is_empty_tree(root):
            raise self.error(f"template: multiple definition of template {go_quote(name)}",
                             spot)

    def _sub_tree(self, keyword: Item, context: str) -> ListNode:
        """The body of a define or block, parsed with its own variables."""
        saved = self.vars, self.range_depth
        self.vars, self.range_depth = ["$"], 0
        self.open.append(keyword.pos)
        # Go parses a block's body with a tree of its own: an end that is not {{end}} is
        # reported at the line of the block's action, where the outer tree stopped
        outer = self.items[self.seen].go_pos
        root, end = self.item_list()
        if not isinstance(end, _EndNode) or isinstance(end, _ElseNode):
            error = self.error(f"unexpected {end} in {context}", end.spot)
            if context == "block clause":
                error.go_pos = outer
            raise error
        self.open.pop()
        self.vars, self.range_depth = saved
        return root

    def parse_definition(self, keyword: Item) -> None:
        item = self.next_non_space()
        if item.typ not in (lx.STRING, lx.RAW_STRING):
            raise self.unexpected(item, "define clause")
        name = self._unquote(item)
        self.expect(lx.RIGHT_DELIM, "define clause")
        self.add(name, self._sub_tree(keyword, "define clause"), item.pos)

    def item_list(self) -> tuple[ListNode, _EndNode]:
        nodes = ListNode(self.peek_non_space().pos, [])
        while self.peek_non_space().typ != lx.EOF:
            node = self.text_or_action()
            if isinstance(node, _EndNode):
                return nodes, node
            nodes.nodes.append(node)
        raise self.error("unexpected EOF", self.open[-1] if self.open else len(self.text))

    def text_or_action(self) -> Node:
        item = self.next_non_space()
        if item.typ == lx.TEXT:
            return TextNode(item.pos, item.val)
        if item.typ == lx.LEFT_DELIM:
            self.action_line = self.line_of(item.pos)
            try:
                return self.action()
            finally:
                self.action_line = 0
        raise self.unexpected(item, "input")

    def action(self) -> Node:
        item = self.next_non_space()
        typ = item.typ
        if typ == lx.BLOCK:
            return self.block_control(item)
        if typ in (lx.BREAK, lx.CONTINUE):
            word = "break" if typ == lx.BREAK else "continue"
            after = self.next_non_space()
            if after.typ != lx.RIGHT_DELIM:
                raise self.unexpected(after, f"{{{{{word}}}}}")
            if not self.range_depth:
                raise self.error(f"{{{{{word}}}}} outside {{{{range}}}}", item.pos)
            return BreakNode(item.pos) if typ == lx.BREAK else ContinueNode(item.pos)
        if typ == lx.ELSE:
            peek = self.peek_non_space()
            if peek.typ == lx.IF:  # {{else if}}; Go 1.19 has no {{else with}}
                return _ElseNode(peek.pos, item.pos)
            return _ElseNode(self.expect(lx.RIGHT_DELIM, "else").pos, item.pos)
        if typ == lx.END:
            return _EndNode(self.expect(lx.RIGHT_DELIM, "end").pos, item.pos)
        if typ in (lx.IF, lx.RANGE, lx.WITH):
            return self.control(item)
        if typ == lx.TEMPLATE:
            name_item = self.next_non_space()
            name = self.template_name(name_item, "template clause")
            pipe = None
            if self.next_non_space().typ != lx.RIGHT_DELIM:
                self.backup()
                pipe = self.pipeline("template clause", lx.RIGHT_DELIM)
            return TemplateNode(name_item.pos, name, pipe)
        self.backup()
        return ActionNode(self.peek().pos, self.pipeline("command", lx.RIGHT_DELIM))

    def control(self, keyword: Item) -> BranchNode:
        context = keyword.val
        mark = len(self.vars)
        self.open.append(keyword.pos)
        pipe = self.pipeline(context, lx.RIGHT_DELIM)
        if context == "range":
            self.range_depth += 1
        body, end = self.item_list()
        if context == "range":
            self.range_depth -= 1
        else_list = None
        if isinstance(end, _ElseNode):
            chained = self.peek()
            if context == "if" and chained.typ == lx.IF:
                self.next()
                else_list = ListNode(end.pos, [])
                else_list.nodes.append(self.control(chained))
            else:
                else_list, end = self.item_list()
                if isinstance(end, _ElseNode):
                    raise self.error(f"expected end; found {end}", end.spot)
        del self.vars[mark:]
        self.open.pop()
        return _BRANCHES[context](pipe.pos, pipe, body, else_list)

    def block_control(self, keyword: Item) -> TemplateNode:
        item = self.next_non_space()
        name = self.template_name(item, "block clause")
        pipe = self.pipeline("block clause", lx.RIGHT_DELIM)
        self.add(name, self._sub_tree(keyword, "block clause"), item.pos)
        return TemplateNode(item.pos, name, pipe)

    def template_name(self, item: Item, context: str) -> str:
        if item.typ not in (lx.STRING, lx.RAW_STRING):
            raise self.unexpected(item, context)
        return self._unquote(item)

    def _unquote(self, item: Item) -> str:
        try:
            return unquote(item.val)
        except ValueError as exc:
            raise self.error(str(exc), item.pos) from None

    # -- pipelines -------------------------------------------------------------------------
    def pipeline(self, context: str, end: int) -> PipeNode:
        pipe = PipeNode(self.peek_non_space().pos, [], False, [])
        while True:  # declarations
            var = self.peek_non_space()
            if var.typ != lx.VARIABLE:
                break
            mark = self.i
            self.next()
            after = self.peek_non_space()
            if after.typ in (lx.ASSIGN, lx.DECLARE):
                pipe.is_assign = after.typ == lx.ASSIGN
                self.next_non_space()
                pipe.decl.append(VariableNode(var.pos, [var.val]))
                self.vars.append(var.val)
                break
            if after.typ == lx.CHAR and after.val == ",":
                self.next_non_space()
                pipe.decl.append(VariableNode(var.pos, [var.val]))
                self.vars.append(var.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in (lx.VARIABLE, lx.RIGHT_DELIM,
                                                      lx.RIGHT_PAREN):
                        continue
                    raise self.error("range can only initialize variables", after.pos)
                raise self.error(f"too many declarations in {context}", after.pos)
            self.i = mark
            break
        while True:
            item = self.next_non_space()
            if item.typ == end:
                self.check_pipeline(pipe, context, item)
                return pipe
            if item.typ not in _OPERAND_START:
                raise self.unexpected(item, context)
            self.backup()
            pipe.cmds.append(self.command())

    def check_pipeline(self, pipe: PipeNode, context: str, end: Item) -> None:
        if not pipe.cmds:
            raise self.error(f"missing value for {context}", end.pos)
        for i, cmd in enumerate(pipe.cmds[1:]):
            if isinstance(cmd.args[0], BoolNode | DotNode | NilNode | NumberNode | StringNode):
                raise self.error(f"non executable command in pipeline stage {i + 2}",
                                 cmd.args[0].pos)

    def command(self) -> CommandNode:
        cmd = CommandNode(self.peek_non_space().pos, [])
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            item = self.next()
            if item.typ == lx.SPACE:
                continue
            if item.typ in (lx.RIGHT_DELIM, lx.RIGHT_PAREN):
                self.backup()
            elif item.typ != lx.PIPE:
                raise self.unexpected(item, "operand")
            break
        if not cmd.args:
            raise self.error("empty command", cmd.pos)
        return cmd

    def operand(self) -> Node | None:
        node = self.term()
        if node is None or self.peek().typ != lx.FIELD:
            return node
        chain = ChainNode(self.peek().pos, node, [])
        while self.peek().typ == lx.FIELD:
            chain.field.append(self.next().val[1:])
        if isinstance(node, FieldNode):
            return FieldNode(chain.pos, str(chain)[1:].split("."))
        if isinstance(node, VariableNode):
            return VariableNode(chain.pos, str(chain).split("."))
        if isinstance(node, BoolNode | StringNode | NumberNode | NilNode | DotNode):
            raise self.error(f"unexpected . after term {go_quote(str(node))}", chain.pos)
        return chain

    def term(self) -> Node | None:
        item = self.next_non_space()
        typ = item.typ
        if typ == lx.IDENTIFIER:
            if not self.has_function(item.val):
                raise self.error(f"function {go_quote(item.val)} not defined", item.pos)
            return IdentifierNode(item.pos, item.val)
        if typ == lx.DOT:
            return DotNode(item.pos)
        if typ == lx.NIL:
            return NilNode(item.pos)
        if typ == lx.VARIABLE:
            if item.val not in self.vars:
                raise self.error(f"undefined variable {go_quote(item.val)}", item.pos)
            return VariableNode(item.pos, [item.val])
        if typ == lx.FIELD:
            return FieldNode(item.pos, item.val[1:].split("."))
        if typ == lx.BOOL:
            return BoolNode(item.pos, item.val == "true")
        if typ in (lx.CHAR_CONSTANT, lx.COMPLEX, lx.NUMBER):
            try:
                value, error = number_value(item.val, typ)
            except ValueError as exc:
                raise self.error(str(exc), item.pos) from None
            return NumberNode(item.pos, item.val, value, error)
        if typ == lx.LEFT_PAREN:
            if self.paren_depth >= _MAX_PAREN_DEPTH:
                raise self.error("max expression depth exceeded", item.pos)
            self.paren_depth += 1
            try:
                return self.pipeline("parenthesized pipeline", lx.RIGHT_PAREN)
            finally:
                self.paren_depth -= 1
        if typ in (lx.STRING, lx.RAW_STRING):
            return StringNode(item.pos, item.val, self._unquote(item))
        self.backup()
        return None


def parse_trees(text: str, name: str, has_function: Callable[[str], bool]) -> dict[str, ListNode]:
    """All templates in ``text``; raises ParseError (and RecursionError on absurd nesting)."""
    return _Parser(text, name, has_function).parse()

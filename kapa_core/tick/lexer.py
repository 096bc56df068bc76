"""The TICKscript lexer: text to tokens, each with its line and column (1-based).

Context decides two things, as in Kapacitor: ``/`` starts a regex where an operand is
expected and divides after one; ``lambda`` is a keyword only right before ``:``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum, auto

from kapa_core.errors import TickError
from kapa_core.tick.limits import too_many_nodes
from kapa_core.tick.regex import compile_regex


class T(Enum):
    IDENT = auto()
    STRING = auto()
    REFERENCE = auto()
    INT = auto()
    FLOAT = auto()
    DURATION = auto()
    REGEX = auto()
    STAR = auto()
    TRUE = auto()
    FALSE = auto()
    VAR = auto()
    DBRP = auto()
    LAMBDA = auto()
    AND = auto()
    OR = auto()
    LPAREN = auto()
    RPAREN = auto()
    LBRACKET = auto()
    RBRACKET = auto()
    COMMA = auto()
    DOT = auto()
    PIPE = auto()
    AT = auto()
    ASSIGN = auto()
    OP = auto()  # + - / % == != < <= > >= =~ !~ !
    COMMENT = auto()
    EOF = auto()


@dataclass(frozen=True, slots=True)  # slots: a token costs 72 bytes, not 250
class Token:
    type: T
    text: str  # the value: unquoted for strings/references, pattern for regexes
    line: int
    col: int
    raw: str = ""  # the source text of the token


KEYWORDS = {"var": T.VAR, "dbrp": T.DBRP, "TRUE": T.TRUE, "FALSE": T.FALSE, "AND": T.AND,
            "OR": T.OR}
#: Tokens after which an operand has ended, so ``/`` divides and ``*`` multiplies.
OPERAND_END = {T.IDENT, T.STRING, T.REFERENCE, T.INT, T.FLOAT, T.DURATION, T.RPAREN,
               T.RBRACKET, T.TRUE, T.FALSE, T.REGEX, T.STAR}
_DURATION = re.compile(r"([0-9]+)(ms|us|u|µs|µ|s|m|h|d|w)(?![\w.])")
_NUMBER = re.compile(r"[0-9]*\.?[0-9]*")
_DIGITS = frozenset("0123456789")  # str.isdigit() also accepts '¹', '٣'...
_TWO_CHAR_OPS = ("==", "!=", "<=", ">=", "=~", "!~")
_PUNCT = {"(": T.LPAREN, ")": T.RPAREN, "[": T.LBRACKET, "]": T.RBRACKET, ",": T.COMMA,
          ".": T.DOT, "|": T.PIPE, "@": T.AT}


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return line, col


def _error(text: str, pos: int, message: str) -> TickError:
    line, col = _line_col(text, pos)
    snippet = text[pos:pos + 20].split("\n")[0]
    return TickError(message, line, col, snippet)


def tokenize(text: str, *, max_nodes: int = 0) -> list[Token]:
    """All tokens of ``text`` (comments included), ending with EOF.

    With ``max_nodes``, a script whose ``|`` and ``@`` (each one makes a pipeline node,
    and there is a source node besides) would make more nodes is refused as soon as the
    lexer meets the one too many, so a script of millions of nodes costs no more than
    the limit's worth of tokens.
    """
    tokens: list[Token] = []
    chained = 1  # the source node
    pos = 0
    n = len(text)
    last: T | None = None
    counted, line_no, line_start = 0, 1, 0  # newlines are counted once, left to right

    def add(kind: T, value: str, start: int, end: int) -> None:
        nonlocal last, counted, line_no, line_start
        if start >= counted:
            newlines = text.count("\n", counted, start)
            if newlines:
                line_no += newlines
                line_start = text.rfind("\n", counted, start) + 1
            counted = start
            line, col = line_no, start - line_start + 1
        else:
            line, col = _line_col(text, start)
        tokens.append(Token(kind, value, line, col, text[start:end]))
        if kind is not T.COMMENT:
            last = kind

    while pos < n:
        c = text[pos]
        if c.isspace():
            pos += 1
            continue
        start = pos
        if text.startswith("//", pos):
            end = text.find("\n", pos)
            end = n if end < 0 else end
            body = [text[pos + 2:end].strip()]
            # Consecutive comment lines form one comment.
            nxt = end
            while True:
                m = re.match(r"[ \t]*\n[ \t]*//", text[nxt:])
                if not m:
                    break
                cstart = nxt + m.end()
                cend = text.find("\n", cstart)
                cend = n if cend < 0 else cend
                body.append(text[cstart:cend].strip())
                nxt = cend
            add(T.COMMENT, "\n".join(body), start, nxt)
            pos = nxt
            continue
        if c.isalpha() or c == "_":
            end = pos + 1
            while end < n and (text[end].isalnum() or text[end] == "_"):
                end += 1
            word = text[pos:end]
            if word == "lambda" and end < n and text[end] == ":":
                add(T.LAMBDA, word, start, end + 1)
                pos = end + 1
                continue
            add(KEYWORDS.get(word, T.IDENT), word, start, end)
            pos = end
            continue
        if c in _DIGITS or (c == "." and pos + 1 < n and text[pos + 1] in _DIGITS):
            m = _DURATION.match(text, pos)
            if m:
                add(T.DURATION, m.group(0), start, m.end())
                pos = m.end()
                continue
            m = _NUMBER.match(text, pos)
            assert m is not None
            end = m.end()
            number = m.group(0)
            if end < n and text[end] == ".":
                raise _error(text, start, "multiple decimals in number")
            if end < n and (text[end].isalpha() or text[end] == "µ"):
                unit_end = end
                while unit_end < n and (text[unit_end].isalnum() or text[unit_end] == "µ"):
                    unit_end += 1
                raise _error(text, start, f"invalid number or duration "
                             f"{text[start:unit_end]!r} (durations take a whole number and "
                             "a unit: u, ms, s, m, h, d, w)")
            add(T.FLOAT if "." in number else T.INT, number, start, end)
            pos = end
            continue
        if c == "'":
            if text.startswith("'''", pos):
                end = text.find("'''", pos + 3)
                if end < 0:
                    raise _error(text, start, "unterminated triple-quoted string")
                add(T.STRING, text[pos + 3:end], start, end + 3)
                pos = end + 3
                continue
            value, pos = _quoted(text, pos, "'")
            add(T.STRING, value, start, pos)
            continue
        if c == '"':
            value, pos = _quoted(text, pos, '"')
            add(T.REFERENCE, value, start, pos)
            continue
        if c == "/" and last not in OPERAND_END:
            end = pos + 1
            chars = []
            while end < n and text[end] != "/":
                if text[end] == "\n":
                    raise _error(text, start, "unterminated regex")
                if text[end] == "\\" and end + 1 < n and text[end + 1] == "/":
                    chars.append("/")
                    end += 2
                    continue
                chars.append(text[end])
                end += 1
            if end >= n:
                raise _error(text, start, "unterminated regex")
            pattern = "".join(chars)
            try:
                compile_regex(pattern)
            except re.error as exc:
                raise _error(text, start, f"invalid regex: {exc}") from None
            add(T.REGEX, pattern, start, end + 1)
            pos = end + 1
            continue
        if c == "*":
            add(T.STAR, "*", start, pos + 1)
            pos += 1
            continue
        two = text[pos:pos + 2]
        if two in _TWO_CHAR_OPS:
            add(T.OP, two, start, pos + 2)
            pos += 2
            continue
        if c in "+-/%<>!":
            add(T.OP, c, start, pos + 1)
            pos += 1
            continue
        if c == "=":
            add(T.ASSIGN, "=", start, pos + 1)
            pos += 1
            continue
        kind = _PUNCT.get(c)
        if kind is not None:
            if kind is T.PIPE or kind is T.AT:
                chained += 1
                if chained > max_nodes > 0:
                    line, col = _line_col(text, start)
                    raise too_many_nodes(max_nodes, line, col)
            add(kind, c, start, pos + 1)
            pos += 1
            continue
        raise _error(text, start, f"unexpected character {c!r}")
    line, col = _line_col(text, n)
    tokens.append(Token(T.EOF, "", line, col))
    return tokens


def _quoted(text: str, pos: int, quote: str) -> tuple[str, int]:
    """A quoted string starting at ``pos``; only an escaped quote is unescaped."""
    out = []
    i = pos + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] == quote:
            out.append(quote)
            i += 2
            continue
        if c == quote:
            return "".join(out), i + 1
        out.append(c)
        i += 1
    what = "string" if quote == "'" else "reference"
    raise _error(text, pos, f"unterminated {what}")

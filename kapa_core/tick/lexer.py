"""The TICKscript lexer: text to tokens, each with its line and column (1-based).

It follows Kapacitor's lexer state by state, so that the same text gives the same tokens
and the same errors at the same place. There are two states:

- *operand*: a token may start here. ``-`` and ``!`` are unary operators, ``*`` is a star,
  ``/`` starts a regex (or a comment), ``.`` is a dot unless a digit follows;
- *after an operand* (after an identifier, a number, a duration, a string, a reference or
  ``)``): spaces and newlines are skipped and a binary operator may follow (``+ - * / %``,
  comparisons, ``=~``, ``!~``) or ``=`` (a regex may follow ``=``, ``=~`` and ``!~``);
  anything else is read in the operand state.

A character that starts no token ends the tokens with an ``ERROR`` token, as Kapacitor's
lexer does: the parser reports it only when it reaches it, with what it expected there.
``lambda`` is a keyword only right before ``:``.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from enum import Enum, auto
from typing import NamedTuple

from kapa_core.gotemplate.lexer import quote_rune
from kapa_core.tick.limits import too_many_nodes


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
    OP = auto()  # + - * / % == != < <= > >= =~ !~ and unary ! (text says which)
    COMMENT = auto()
    ERROR = auto()  # text is the message; nothing follows it but EOF
    EOF = auto()


class Token(NamedTuple):  # a tuple: no instance dict, quick to make
    type: T
    text: str  # the value: unquoted for strings/references, pattern for regexes
    line: int
    col: int
    raw: str = ""  # the source text of the token
    pos: int = 0  # offset of its first character in the script


KEYWORDS = {"var": T.VAR, "dbrp": T.DBRP, "TRUE": T.TRUE, "FALSE": T.FALSE, "AND": T.AND,
            "OR": T.OR}
_DURATION_UNITS = "uµsmhdw"
_NEWLINE = re.compile("\n")
_SPACE = re.compile(r"\s+")
#: After an operand: spaces, then maybe an operator; group 1 is one a regex may follow
#: (=~ !~), group 2 any other binary operator (a '/' that starts no comment) or '!',
#: group 3 an assignment (a regex may follow it too).
_AFTER = re.compile(r"\s*(?:(!~|=~)|(==|!=|<=|>=|[-+*%<>!]|/(?!/))|(=))?")
_ASCII_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
#: Digits (Unicode category Nd, as Go's unicode.IsDigit), then a decimal point and
#: digits; group 1 is the point.
_NUMBER = re.compile(r"\d*(?:(\.)\d*)?")
_PUNCT = {"(": T.LPAREN, ")": T.RPAREN, "[": T.LBRACKET, "]": T.RBRACKET, ",": T.COMMA,
          "|": T.PIPE, "@": T.AT, "*": T.STAR}


def _is_ident(c: str) -> bool:
    return c.isalpha() or c.isdecimal() or c == "_"


def _unescape(literal: str, quote: str) -> str:
    """Drop the backslash of each backslash-quote pair, left to right, as Kapacitor."""
    return literal.replace("\\" + quote, quote) if "\\" in literal else literal


def tokenize(text: str, *, max_nodes: int = 0) -> list[Token]:
    """All tokens of ``text`` (comments included), ending with EOF, or with an ERROR
    token followed by EOF where Kapacitor's lexer stops.

    With ``max_nodes``, a script whose ``|`` and ``@`` (each one makes a pipeline node,
    and there is a source node besides) would make more nodes is refused as soon as the
    lexer meets the one too many, so a script of millions of nodes costs no more than
    the limit's worth of tokens.
    """
    tokens: list[Token] = []
    chained = 1  # the source node
    n = len(text)
    newlines = [m.start() for m in _NEWLINE.finditer(text)]

    def where(start: int) -> tuple[int, int]:
        index = bisect_right(newlines, start - 1)
        return index + 1, start - (newlines[index - 1] + 1 if index else 0) + 1

    starts = [-1, *newlines]  # the offset before each line's first character
    append = tokens.append
    line_of = bisect_right

    def add(kind: T, value: str, start: int, end: int) -> None:
        index = line_of(newlines, start - 1)
        append(Token(kind, value, index + 1, start - starts[index], text[start:end], start))

    def fail(message: str, start: int) -> list[Token]:
        line, col = where(start)
        tokens.append(Token(T.ERROR, message, line, col, text[start:start + 1], start))
        tokens.append(Token(T.EOF, "", line, col, "", start))
        return tokens

    pos = 0
    after = False  # after an operand: a binary operator may come
    regex_next = False  # after = =~ !~: a '/' starts a regex, even '//'
    while True:
        if regex_next:
            regex_next = False
            while pos < n and text[pos].isspace():
                pos += 1
            if pos < n and text[pos] == "/":
                end = _regex_end(text, pos)
                if end < 0:
                    return fail("unterminated regex", pos)
                add(T.REGEX, _unescape(text[pos + 1:end - 1], "/"), pos, end)
                pos = end
                continue
        if after:
            after = False
            m = _AFTER.match(text, pos)
            assert m is not None  # every part of _AFTER is optional
            pos = m.end()
            group = m.lastindex
            if group is not None:
                start = m.start(group)
                op = m.group(group)
                index = line_of(newlines, start - 1)
                append(Token(T.ASSIGN if group == 3 else T.OP, op, index + 1,
                             start - starts[index], op, start))
                regex_next = group != 2  # after = =~ !~
                continue
            # anything else (a comment included) is read as in the operand state
        if pos < n and text[pos].isspace():
            space = _SPACE.match(text, pos)
            assert space is not None  # text[pos] is a space
            pos = space.end()
        if pos >= n:
            line, col = where(n)
            tokens.append(Token(T.EOF, "", line, col, "", n))
            return tokens
        c = text[pos]
        start = pos
        kind = _PUNCT.get(c)
        if kind is not None:  # the most frequent tokens first
            if kind is T.PIPE or kind is T.AT:
                chained += 1
                if chained > max_nodes > 0:
                    line, col = where(start)
                    raise too_many_nodes(max_nodes, line, col)
            index = line_of(newlines, start - 1)
            append(Token(kind, c, index + 1, start - starts[index], c, start))
            pos += 1
            after = kind is T.RPAREN
            continue
        if c.isalpha():
            m = _ASCII_IDENT.match(text, pos)
            end = m.end() if m else pos + 1
            if m is None or (end < n and text[end] > "\x7f"):
                while end < n and _is_ident(text[end]):  # beyond ASCII
                    end += 1
            word = text[pos:end]
            if word == "lambda" and end < n and text[end] == ":":
                add(T.LAMBDA, word, start, end + 1)
                pos = end + 1
                after = True
                continue
            index = line_of(newlines, start - 1)
            append(Token(KEYWORDS.get(word, T.IDENT), word, index + 1, start - starts[index],
                         word, start))
            pos = end
            after = True
            continue
        if c == "-" or c == "!":
            add(T.OP, c, start, pos + 1)
            pos += 1
            continue
        if c == "." or c.isdecimal():  # Go's unicode.IsDigit: category Nd, as \d here
            if c == "." and not (pos + 1 < n and text[pos + 1].isdecimal()):
                add(T.DOT, ".", start, pos + 1)
                pos += 1
                continue
            m = _NUMBER.match(text, pos)
            assert m is not None  # every part of _NUMBER is optional
            end = m.end()
            decimal = m.lastindex == 1
            ch = text[end] if end < n else ""
            if ch == ".":  # a second decimal point (a first one is in the match)
                return fail("multiple decimals in number", start)
            if ch and not decimal and ch in _DURATION_UNITS:
                end += 1
                if ch == "m" and end < n and text[end] == "s":
                    end += 1
                kind = T.DURATION
            else:
                kind = T.FLOAT if decimal else T.INT
            word = text[start:end]
            index = line_of(newlines, start - 1)
            append(Token(kind, word, index + 1, start - starts[index], word, start))
            pos = end
            after = True
            continue
        if c == '"':
            m = _REFERENCE_REST.match(text, pos + 1)
            if m is None:
                return fail("unterminated field reference", start)
            end = m.end()
            raw = text[start:end]
            index = line_of(newlines, start - 1)
            append(Token(T.REFERENCE, _unescape(raw[1:-1], '"'), index + 1,
                         start - starts[index], raw, start))
            pos = end
            after = True
            continue
        if c == "'":
            end = _string_end(text, pos)
            if end < 0:
                return fail("unterminated string", start)
            raw = text[start:end]
            if len(raw) >= 6 and raw.startswith("'''"):
                value = raw[3:-3]
            else:
                value = _unescape(raw[1:-1], "'")
            index = line_of(newlines, start - 1)
            append(Token(T.STRING, value, index + 1, start - starts[index], raw, start))
            pos = end
            after = True
            continue
        if c == "/":
            if text[pos + 1:pos + 2] == "/":
                end = _comment_end(text, pos)
                # Each line as Kapacitor keeps it: trimmed, without its "//" and one
                # space after it (further spacing is the comment's own).
                body = [line.strip() for line in text[pos:end].split("\n")]
                body = [line[2:] if line.startswith("//") else line for line in body if line]
                body = [line[1:] if line.startswith(" ") else line for line in body]
                add(T.COMMENT, "\n".join(body), start, end)
                pos = end
                continue
            end = _regex_end(text, pos)
            if end < 0:
                return fail("unterminated regex", start)
            add(T.REGEX, _unescape(text[start + 1:end - 1], "/"), start, end)
            pos = end
            continue
        return fail(f"unknown state, last char: {quote_rune(ord(c))}", start)


#: The rest of a single-quoted string after its opening quote, through its closing
#: quote: a backslash takes the quote after it. Possessive, so an unterminated string
#: fails in one pass instead of backtracking.
_SINGLE_REST = re.compile(r"(?:[^'\\]++|\\'?)*+'")
#: The same for a reference (``"..."``) and a regex (``/.../``).
_REFERENCE_REST = re.compile(r'(?:[^"\\]++|\\"?)*+"')
_REGEX_REST = re.compile(r"(?:[^/\\]++|\\/?)*+/")


def _string_end(text: str, pos: int) -> int:
    """The end of the string starting at ``pos`` (a quote), -1 if it is unterminated:
    ``''`` is empty, ``'''...'''`` is a triple-quoted string, ``'it\\'s'`` escapes."""
    n = len(text)
    i = pos + 1
    if i < n and text[i] == "'":
        i += 1
        if i < n and text[i] == "'":
            return _triple_end(text, i + 1)
        return i  # ''
    m = _SINGLE_REST.match(text, i)
    return m.end() if m else -1


def _triple_end(text: str, i: int) -> int:
    """The end of a triple-quoted string whose body starts at ``i``: the first three
    quotes in a row, except that after two quotes a backslash takes a quote after it
    (as in Kapacitor's lexer), which only the slow loop below follows."""
    close = text.find("'''", i)
    quirk = text.find("''\\", i)
    if quirk < 0 or (0 <= close < quirk):
        return close + 3 if close >= 0 else -1
    n = len(text)
    count = total = 3
    while True:
        if i >= n:
            return -1
        ch = text[i]
        i += 1
        if ch == "\\" and count == 1:
            if i < n and text[i] == "'":
                i += 1
        elif ch == "'":
            count -= 1
            if count == 0:
                return i
        else:
            count = total


def _regex_end(text: str, pos: int) -> int:
    """The end of the regex whose opening ``/`` is at ``pos``, -1 if unterminated."""
    m = _REGEX_REST.match(text, pos + 1)
    return m.end() if m else -1


def _comment_end(text: str, pos: int) -> int:
    """The end of the comment at ``pos``: following lines whose first non-blank
    character is ``/`` belong to it."""
    n = len(text)
    i = pos
    while True:
        nl = text.find("\n", i)
        if nl < 0:
            return n
        j = nl + 1
        while j < n and text[j] != "\n" and text[j].isspace():
            j += 1
        if j < n and text[j] == "/":
            i = j
            continue
        return j

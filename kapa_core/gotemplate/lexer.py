"""Lexing Go templates, and Go's literal syntax (``strconv`` quoting and unquoting).

``lex(text)`` splits a template into items exactly as ``text/template/parse``'s lexer
does: text, ``{{``/``}}`` with the trim markers ``{{- `` and `` -}}`` already applied to the
neighbouring text, comments dropped, and inside actions spaces, fields, variables,
identifiers, keywords, numbers, strings and punctuation. The list ends with an EOF item or,
on a lexical error, an ERROR item whose value is Go's message (``unclosed action``,
``bad number syntax: "1x"``...). Positions are character offsets into the text.

The ``strconv`` part quotes and unquotes Go literals (``go_quote``, ``unquote``) and gives
number constants the value Go does (``number_value``: ``0x1F``, ``017``, ``1e3``, ``'a'``).
:class:`ParseError` is the syntax error the parser raises with Go's message.
"""

from __future__ import annotations

import math

(TEXT, EOF, ERROR, LEFT_DELIM, RIGHT_DELIM, SPACE, BOOL, CHAR, CHAR_CONSTANT, COMPLEX, ASSIGN,
 DECLARE, FIELD, IDENTIFIER, LEFT_PAREN, NUMBER, PIPE, RAW_STRING, RIGHT_PAREN, STRING,
 VARIABLE) = range(21)
KEYWORD = 100  # item types above this are keywords; they print as <name>
BLOCK, BREAK, CONTINUE, DOT, DEFINE, ELSE, END, IF, NIL, RANGE, TEMPLATE, WITH = range(101, 113)
KEYWORDS = {".": DOT, "block": BLOCK, "break": BREAK, "continue": CONTINUE, "define": DEFINE,
            "else": ELSE, "end": END, "if": IF, "nil": NIL, "range": RANGE,
            "template": TEMPLATE, "with": WITH}

_SPACE = " \t\r\n"
#: What ends a field, variable or identifier (Go's ``atTerminator``): these characters, or
#: the right delimiter ``}}`` (a single ``}`` is a bad character there).
_TERMINATORS = frozenset(" \t\r\n.,|:)(")
_DEC = "0123456789_"
_HEX = "0123456789abcdefABCDEF_"


class ParseError(Exception):
    """A syntax error: Go's message, the offending position, and the position Go reports."""

    def __init__(self, message: str, spot: int, go_pos: int) -> None:
        super().__init__(message)
        self.message = message
        self.spot = spot
        self.go_pos = go_pos


class Item:
    """A lexed item. ``go_pos`` is where Go's lexer would say it starts (for line numbers)."""

    __slots__ = ("go_pos", "pos", "typ", "val")

    def __init__(self, typ: int, pos: int, val: str, go_pos: int = -1) -> None:
        self.typ = typ
        self.pos = pos
        self.val = val
        self.go_pos = pos if go_pos < 0 else go_pos

    def __str__(self) -> str:
        """Go's ``item.String()``, used in parse error messages."""
        if self.typ == EOF:
            return "EOF"
        if self.typ == ERROR:
            return self.val
        if self.typ > KEYWORD:
            return f"<{self.val}>"
        if len(self.val) > 10 or len(self.val.encode("utf-8", "surrogatepass")) > 10:
            # Go: more than 10 bytes are shown as %.10q (the first 10 characters) and ...
            return go_quote(self.val[:10]) + "..."
        return go_quote(self.val)

    def __repr__(self) -> str:
        return f"Item({self.typ}, {self.pos}, {self.val!r})"


def is_alnum(ch: str) -> bool:
    return ch == "_" or ch.isalpha() or ch.isdecimal()


def hash_u(ch: str) -> str:
    """Go's ``%#U``: ``U+0041 'A'``."""
    code = ord(ch)
    return f"U+{code:04X} '{ch}'" if ch.isprintable() else f"U+{code:04X}"


def _left_trim(text: str, pos: int) -> bool:
    return text[pos:pos + 1] == "-" and text[pos + 1:pos + 2] in (" ", "\t", "\r", "\n")


def _at_right_delim(text: str, pos: int) -> tuple[bool, bool]:
    if text.startswith("}}", pos):
        return True, False
    if text[pos:pos + 1] in (" ", "\t", "\r", "\n") and text.startswith("-}}", pos + 1):
        return True, True
    return False, False


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _SPACE:
        pos += 1
    return pos


def _at_terminator(text: str, pos: int) -> bool:
    return pos >= len(text) or text[pos] in _TERMINATORS or text.startswith("}}", pos)


def _scan_number(text: str, p: int) -> tuple[bool, int]:
    n = len(text)
    if p < n and text[p] in "+-":
        p += 1
    digits = _DEC
    if p < n and text[p] == "0":
        p += 1
        if p < n and text[p] in "xX":
            p, digits = p + 1, _HEX
        elif p < n and text[p] in "oO":
            p, digits = p + 1, "01234567_"
        elif p < n and text[p] in "bB":
            p, digits = p + 1, "01_"
    while p < n and text[p] in digits:
        p += 1
    if p < n and text[p] == ".":
        p += 1
        while p < n and text[p] in digits:
            p += 1
    if (digits is _DEC and p < n and text[p] in "eE") or \
            (digits is _HEX and p < n and text[p] in "pP"):
        p += 1
        if p < n and text[p] in "+-":
            p += 1
        while p < n and text[p] in _DEC:
            p += 1
    if p < n and text[p] == "i":
        p += 1
    if p < n and is_alnum(text[p]):
        return False, p + 1
    return True, p


def _quoted_end(text: str, pos: int, quote: str) -> int:
    """End (exclusive) of the quoted literal starting at ``pos``, or -1 if unterminated."""
    p = pos + 1
    n = len(text)
    while p < n:
        c = text[p]
        p += 1
        if c == "\\":
            if p >= n or text[p] == "\n":
                return -1
            p += 1
        elif c == "\n":
            return -1
        elif c == quote:
            return p
    return -1


def lex(text: str, *, break_ok: bool = True, continue_ok: bool = True) -> list[Item]:
    """All items of ``text``, ending with EOF or ERROR."""
    items: list[Item] = []
    n = len(text)
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            if pos < n:
                items.append(Item(TEXT, pos, text[pos:]))
            items.append(Item(EOF, n, ""))
            return items
        end = start
        if _left_trim(text, start + 2):
            while end > pos and text[end - 1] in _SPACE:
                end -= 1
        if end > pos:
            items.append(Item(TEXT, pos, text[pos:end]))
        pos = start + 2
        after = 2 if _left_trim(text, pos) else 0
        if text.startswith("/*", pos + after):
            close = text.find("*/", pos + after + 2)
            if close < 0:
                items.append(Item(ERROR, start, "unclosed comment", pos + after))
                return items
            delim, trim = _at_right_delim(text, close + 2)
            if not delim:
                items.append(Item(ERROR, start, "comment ends before closing delimiter",
                                  pos + after))
                return items
            pos = close + 4 + (2 if trim else 0)
            if trim:
                pos = _skip_space(text, pos)
            continue
        items.append(Item(LEFT_DELIM, start, "{{"))
        pos = _lex_action(text, pos + after, start, items, break_ok, continue_ok)
        if pos < 0:
            return items


def _lex_action(text: str, pos: int, action: int, items: list[Item], break_ok: bool,
                continue_ok: bool) -> int:
    """Items of one action up to and including ``}}``: the position after it, or -1."""
    n = len(text)
    parens = 0
    add = items.append

    def error(message: str, spot: int, go_pos: int = -1) -> int:
        add(Item(ERROR, spot, message, spot if go_pos < 0 else go_pos))
        return -1

    while True:
        delim, trim = _at_right_delim(text, pos)
        if delim:
            if parens:
                return error("unclosed left paren", pos)
            if trim:
                pos += 2
            add(Item(RIGHT_DELIM, pos, "}}"))
            pos += 2
            return _skip_space(text, pos) if trim else pos
        if pos >= n:
            return error("unclosed action", action, pos)
        c = text[pos]
        start = pos
        if c in _SPACE:
            pos = _skip_space(text, pos)
            if text.startswith("-}}", pos):  # the space before a trim marker belongs to it
                pos -= 1
                if pos == start:
                    continue
            add(Item(SPACE, start, text[start:pos]))
        elif c == "=":
            add(Item(ASSIGN, pos, "="))
            pos += 1
        elif c == ":":
            if text[pos + 1:pos + 2] != "=":
                return error("expected :=", pos)
            add(Item(DECLARE, pos, ":="))
            pos += 2
        elif c == "|":
            add(Item(PIPE, pos, "|"))
            pos += 1
        elif c in "\"'":
            pos = _quoted_end(text, pos, c)
            if pos < 0:
                what = "quoted string" if c == '"' else "character constant"
                return error(f"unterminated {what}", start)
            add(Item(STRING if c == '"' else CHAR_CONSTANT, start, text[start:pos]))
        elif c == "`":
            close = text.find("`", pos + 1)
            if close < 0:
                return error("unterminated raw quoted string", start)
            pos = close + 1
            add(Item(RAW_STRING, start, text[start:pos]))
        elif c == "$" or (c == "." and pos + 1 < n and not "0" <= text[pos + 1] <= "9"):
            pos += 1
            if _at_terminator(text, pos):
                add(Item(VARIABLE, start, "$") if c == "$" else Item(DOT, start, "."))
                continue
            while pos < n and is_alnum(text[pos]):
                pos += 1
            if not _at_terminator(text, pos):
                return error(f"bad character {hash_u(text[pos])}", start)
            add(Item(VARIABLE if c == "$" else FIELD, start, text[start:pos]))
        elif c in "+-." or "0" <= c <= "9":
            ok, pos = _scan_number(text, pos)
            typ = NUMBER
            if ok and pos < n and text[pos] in "+-":
                ok, pos = _scan_number(text, pos)
                ok = ok and text[pos - 1] == "i"
                typ = COMPLEX
            if not ok:
                return error(f"bad number syntax: {go_quote(text[start:pos])}", start)
            add(Item(typ, start, text[start:pos]))
        elif is_alnum(c):
            while pos < n and is_alnum(text[pos]):
                pos += 1
            if not _at_terminator(text, pos):
                return error(f"bad character {hash_u(text[pos])}", start)
            word = text[start:pos]
            typ = KEYWORDS.get(word, IDENTIFIER)
            if (typ == BREAK and not break_ok) or (typ == CONTINUE and not continue_ok):
                typ = IDENTIFIER
            if word in ("true", "false"):
                typ = BOOL
            add(Item(typ, start, word))
        elif c == "(":
            add(Item(LEFT_PAREN, pos, "("))
            parens += 1
            pos += 1
        elif c == ")":
            add(Item(RIGHT_PAREN, pos, ")"))
            parens -= 1
            pos += 1
            if parens < 0:
                return error("unexpected right paren", start)
        elif c <= "\x7f" and c.isprintable():
            add(Item(CHAR, pos, c))
            pos += 1
        else:
            return error(f"unrecognized character in action: {hash_u(c)}", pos)


# -- strconv ----------------------------------------------------------------------------------
_ESCAPES = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}
_UNESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92}


def _escape(ch: str, quote: str, ascii_only: bool) -> str:
    if ch == quote or ch == "\\":
        return "\\" + ch
    code = ord(ch)
    if (code < 0x80 or not ascii_only) and ch.isprintable():
        return ch
    known = _ESCAPES.get(code)
    if known is not None:
        return known
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    if 0xD800 <= code <= 0xDFFF:
        code = 0xFFFD
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def go_quote(text: str, ascii_only: bool = False) -> str:
    """``strconv.Quote`` (``strconv.QuoteToASCII`` with ``ascii_only``)."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return '"' + "".join(_escape(ch, '"', ascii_only) for ch in text) + '"'


def quote_rune(code: int, ascii_only: bool = False) -> str:
    """``strconv.QuoteRune``: ``'a'``, ``'\\n'``, ``'\\u00ad'``."""
    if not 0 <= code <= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        code = 0xFFFD
    return "'" + _escape(chr(code), "'", ascii_only) + "'"


def can_backquote(text: str) -> bool:
    """``strconv.CanBackquote``."""
    return not any((c < " " and c != "\t") or c in "`\x7f\ufeff" or "\ud800" <= c <= "\udfff"
                   for c in text)


def unquote_char(s: str, i: int, quote: str) -> tuple[int, bool, int]:
    """``strconv.UnquoteChar`` at ``s[i]``: (code, is raw byte, next index).

    Raises ValueError("invalid syntax") like Go.
    """
    c = s[i]
    if c == quote and quote in "'\"":
        raise ValueError("invalid syntax")
    if c != "\\":
        return ord(c), False, i + 1
    if i + 1 >= len(s):
        raise ValueError("invalid syntax")
    c = s[i + 1]
    i += 2
    if c in _UNESCAPES:
        return _UNESCAPES[c], False, i
    if c in "xuU":
        size = {"x": 2, "u": 4, "U": 8}[c]
        digits = s[i:i + size]
        if len(digits) < size or any(d not in _HEX[:-1] for d in digits):
            raise ValueError("invalid syntax")
        code = int(digits, 16)
        if c != "x" and (code > 0x10FFFF or 0xD800 <= code <= 0xDFFF):
            raise ValueError("invalid syntax")
        return code, c == "x", i + size
    if "0" <= c <= "7":
        digits = s[i - 1:i + 2]
        if len(digits) < 3 or any(d not in "01234567" for d in digits):
            raise ValueError("invalid syntax")
        code = int(digits, 8)
        if code > 255:
            raise ValueError("invalid syntax")
        return code, True, i + 2
    if c in "'\"" and c == quote:
        return ord(c), False, i
    raise ValueError("invalid syntax")


def unquote(literal: str) -> str:
    """``strconv.Unquote`` for a double-quoted or raw string literal."""
    if len(literal) < 2 or literal[0] != literal[-1]:
        raise ValueError("invalid syntax")
    body = literal[1:-1]
    if literal[0] == "`":
        if "`" in body:
            raise ValueError("invalid syntax")
        return body.replace("\r", "")
    if literal[0] != '"' or "\n" in body:
        raise ValueError("invalid syntax")
    if "\\" not in body and '"' not in body:
        return body
    out = bytearray()
    i = 0
    while i < len(body):
        code, raw, i = unquote_char(body, i, '"')
        out.extend(bytes([code]) if raw else chr(code).encode("utf-8", "surrogatepass"))
    return out.decode("utf-8", "replace")


# -- numbers ----------------------------------------------------------------------------------
def _go_int(text: str) -> int | None:
    """``strconv.ParseInt(text, 0, 64)``, or ParseUint when there is no sign."""
    body = text[1:] if text[:1] in "+-" else text
    if len(body) > 1 and body[0] == "0" and body[1] not in "xXoObB":
        body = "0o" + body[1:]  # a leading 0 means octal in Go
    try:
        value = int(body, 0)
    except ValueError:
        return None
    if text[:1] == "-":
        value = -value
    limit = 1 << 63 if text[:1] in "+-" else 1 << 64
    return value if -limit <= value < limit else None


def _go_float(text: str) -> float | None:
    """``strconv.ParseFloat(text, 64)``, None on a syntax or range error."""
    try:
        if text.lstrip("+-")[:2].lower() == "0x":
            value = float.fromhex(text.replace("_", "")) if "p" in text.lower() else math.inf
        else:
            value = float(text)
    except (ValueError, OverflowError):
        return None
    return None if math.isinf(value) else value


def _float_token(text: str, p: int) -> int:
    """The end of what ``fmt``'s scanner takes as a float from ``p`` (its floatToken)."""
    n = len(text)
    if p < n and text[p] in "+-":
        p += 1
    digits, exp = "0123456789_", "eEpP"
    if text.startswith(("0x", "0X"), p):
        p, digits, exp = p + 2, "0123456789abcdefABCDEF_", "pP"
    while p < n and text[p] in digits:
        p += 1
    if p < n and text[p] == ".":
        p += 1
        while p < n and text[p] in digits:
            p += 1
    if p < n and text[p] in exp:
        p += 1
        if p < n and text[p] in "+-":
            p += 1
        while p < n and text[p] in "0123456789_":
            p += 1
    return p


def _scan_float(token: str) -> float:
    """``fmt``'s convertFloat: ``strconv.ParseFloat`` with Go's error text."""
    binary = "p" in token and "x" not in token.lower()  # 1.5p3: a decimal times 2**3
    mantissa, _, power = token.partition("p") if binary else (token, "", "")
    value = _go_float(mantissa)
    if value is None:
        why = "value out of range"
        try:
            if "x" not in mantissa.lower():
                float(mantissa)
            elif "p" not in mantissa.lower():  # a hex mantissa needs a p exponent
                why = "invalid syntax"
            else:
                float.fromhex(mantissa.replace("_", ""))
        except OverflowError:
            pass
        except ValueError:
            why = "invalid syntax"
        raise ValueError(f"strconv.ParseFloat: parsing {go_quote(token)}: {why}")
    if binary:
        if not power.lstrip("+-").isdigit() or not power.isascii():
            raise ValueError(f"strconv.Atoi: parsing {go_quote(token)}: invalid syntax")
        try:
            return math.ldexp(value, int(power, 10))
        except OverflowError:
            return math.copysign(math.inf, value)
    return value


def _scan_complex(text: str) -> complex:
    """A complex constant (``1+2i``) read as Go's ``fmt.Sscan`` reads it, with its errors."""
    real_end = _float_token(text, 0)
    if text[real_end:real_end + 1] not in ("+", "-"):
        raise ValueError("syntax error scanning complex number")
    imag_end = _float_token(text, real_end + 1)
    if text[imag_end:imag_end + 1] != "i":
        raise ValueError("syntax error scanning complex number")
    real = _scan_float(text[:real_end])
    imag = _scan_float(text[real_end] + text[real_end + 1:imag_end])
    return complex(real, imag)


def number_value(text: str, typ: int) -> tuple[object, str | None]:
    """Go's ``newNumber`` then ``idealConstant``: (value, execution error). Raises ValueError."""
    if typ == CHAR_CONSTANT:
        code, _raw, end = unquote_char(text[1:], 0, "'")
        if text[1 + end:] != "'":
            raise ValueError(f"malformed character constant: {text}")
        return code, None
    if typ == COMPLEX:
        return _scan_complex(text), None
    if text.endswith("i"):  # an imaginary constant: its float part must parse
        imag = _go_float(text[:-1])
        if imag is None:
            raise ValueError(f"illegal number syntax: {go_quote(text)}")
        return complex(0, imag), None
    as_int = _go_int(text)
    exact = any(c in text for c in ".eEpP") and not (text[:2] in ("0x", "0X") and
                                                     "p" not in text.lower())
    if as_int is None or exact:
        as_float = _go_float(text)
        if as_int is None and as_float is None:
            raise ValueError(f"illegal number syntax: {go_quote(text)}")
        if as_int is None and not any(c in text for c in ".eEpP"):
            raise ValueError(f"integer overflow: {go_quote(text)}")
        if exact:
            return (as_float if as_float is not None else float(as_int or 0)), None
    if as_int is not None and as_int >= 1 << 63:
        return as_int, f"{text} overflows int"
    return as_int, None

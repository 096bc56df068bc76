"""The contexts of ``html/template``: where in an HTML document each action prints.

Go's ``html/template`` escapes a value by where it lands: HTML text, an attribute value, a
URL (its scheme is checked, the part before the query is normalized, the query and
fragment are percent-encoded), JavaScript inside ``<script>`` or an ``on*`` attribute
(values as JSON, inside a string literal as string escapes), ``<textarea>``/``<title>``
text. HTML comments, and JavaScript comments inside scripts, are dropped from the
template's text.

:class:`HTMLContext` follows the template's text from start to end (branches are taken in
source order, which is what templates that keep one context on every branch give) and
says, for each action, which escaper applies. CSS contexts are not told apart from text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kapa_core.gotemplate import funcs as fn
from kapa_core.gotemplate import gojson
from kapa_core.gotemplate.gofmt import go_format
from kapa_core.gotemplate.gotime import NO_VALUE


class JS(str):
    """Text that is already JavaScript (Go's ``template.JS``): printed as it is in a
    script, escaped like any text elsewhere."""

    __slots__ = ()


# -- states --------------------------------------------------------------------------------
TEXT, TAG, ATTR_NAME, AFTER_NAME, BEFORE_VALUE, ATTR, URL, JS_EXPR, JS_DQ, JS_SQ, JS_BQ, \
    JS_LINE, JS_BLOCK, COMMENT, RCDATA, CSS, CSS_DQ, CSS_SQ, CSS_URL, CSS_DQ_URL, \
    CSS_SQ_URL, CSS_LINE, CSS_BLOCK = range(23)
_JS_STATES = (JS_EXPR, JS_DQ, JS_SQ, JS_BQ, JS_LINE, JS_BLOCK)
_CSS_STATES = (CSS, CSS_DQ, CSS_SQ, CSS_URL, CSS_DQ_URL, CSS_SQ_URL, CSS_LINE, CSS_BLOCK)
#: CSS states whose values are URL parts (strings may hold one) and how each ends
_CSS_URLISH = {CSS_DQ: '"', CSS_SQ: "'", CSS_URL: ")", CSS_DQ_URL: '"', CSS_SQ_URL: "'"}

_URL_ATTRS = frozenset((
    "action", "archive", "background", "cite", "classid", "codebase", "data", "formaction",
    "href", "icon", "longdesc", "manifest", "poster", "profile", "src", "usemap", "xmlns"))
_RAW_ELEMENTS = {"script": JS_EXPR, "textarea": RCDATA, "title": RCDATA, "style": CSS}
_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9:-]*")
_ATTR_NAME_END = re.compile(r"[\s=>/]")
_UNQUOTED_END = re.compile(r"[\s>]")
_SPACE = " \t\n\f\r"


def _attr_kind(name: str) -> int:
    name = name.lower()
    if name.startswith("data-"):
        name = name[5:]
    elif ":" in name:
        prefix, _, name = name.partition(":")
        if prefix == "xmlns":
            return URL
    if name in _URL_ATTRS:
        return URL
    if name == "style":
        return CSS
    if name.startswith("on"):
        return JS_EXPR
    if "src" in name or "uri" in name or "url" in name:
        return URL
    return ATTR


# -- escapers ------------------------------------------------------------------------------
def _text(v: Any) -> str:
    if v is NO_VALUE or v is None:
        return ""
    return v if isinstance(v, str) else go_format(v)


def html_text(v: Any) -> str:
    return fn.html_escape(_text(v))


_NOSPACE = {0: "&#xfffd;", 9: "&#9;", 10: "&#10;", 11: "&#11;", 12: "&#12;", 13: "&#13;",
            32: "&#32;", 34: "&#34;", 38: "&amp;", 39: "&#39;", 43: "&#43;", 60: "&lt;",
            61: "&#61;", 62: "&gt;", 96: "&#96;"}


def html_nospace(v: Any) -> str:
    return _text(v).translate(_NOSPACE)


def html_name(v: Any) -> str:
    """A value where an attribute name goes: only a plain alphanumeric name passes."""
    text = _text(v)
    if not text:
        return "ZgotmplZ"
    text = text.lower()
    if _attr_kind(text) != ATTR or not all(c.isascii() and c.isalnum() for c in text):
        return "ZgotmplZ"
    return text


_JS_LOW = {c: f"\\u{c:04x}" for c in range(0x20)}
_JS_LOW.update({9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"})
_JS_STR = dict(_JS_LOW)
_JS_STR.update({34: "\\u0022", 96: "\\u0060", 38: "\\u0026", 39: "\\u0027", 43: "\\u002b",
                47: "\\/", 60: "\\u003c", 62: "\\u003e", 92: "\\\\", 0x2028: "\\u2028",
                0x2029: "\\u2029"})


def js_string(v: Any) -> str:
    return _text(v).translate(_JS_STR)


def _js_ident_part(c: str) -> bool:
    return c == "$" or c == "_" or c.isascii() and c.isalnum()


def js_value(v: Any) -> str:
    """A value as a JavaScript expression: its JSON, padded with spaces where it could run
    into a neighbouring identifier."""
    if isinstance(v, JS):
        return str(v)
    if v is NO_VALUE:
        v = None
    elif getattr(type(v), "go_type", None) == "time.Duration":  # a fmt.Stringer: its text
        v = str(v)
    try:
        text = gojson.dumps(v)
    except ValueError as exc:
        return f" /* {str(exc).replace('*/', '* /')} */null "
    if not text:
        return " null "
    if _js_ident_part(text[0]) or _js_ident_part(text[-1]):
        return f" {text} "
    return text


_CSS_BAD = frozenset('\x00"\'()/;@[\\]`{}')
_CSS_ESC = {0: "\\0", 9: "\\9", 10: "\\a", 12: "\\c", 13: "\\d", 34: "\\22", 38: "\\26",
            39: "\\27", 40: "\\28", 41: "\\29", 43: "\\2b", 47: "\\2f", 58: "\\3a",
            59: "\\3b", 60: "\\3c", 62: "\\3e", 92: "\\\\", 123: "\\7b", 125: "\\7d"}


def css_value(v: Any) -> str:
    """A value in CSS outside strings: refused (ZgotmplZ) unless plainly a value."""
    text = _text(v)
    if any(c in _CSS_BAD for c in text) or "--" in text:
        return "ZgotmplZ"
    ident = "".join(c for c in text if c.isascii() and (c.isalnum() or c in "-_")).lower()
    if "expression" in ident or "mozbinding" in ident:
        return "ZgotmplZ"
    return text


def css_escape(text: str) -> str:
    out = []
    n = len(text)
    for i, c in enumerate(text):
        repl = _CSS_ESC.get(ord(c))
        if repl is None:
            out.append(c)
            continue
        out.append(repl)
        if repl != "\\\\" and (i + 1 == n or text[i + 1] in "0123456789abcdefABCDEF \t\n\f\r"):
            out.append(" ")
    return "".join(out)


def url_filter(text: str) -> str:
    scheme, colon, _ = text.partition(":")
    if colon and "/" not in scheme and scheme.lower() not in ("http", "https", "mailto"):
        return "#ZgotmplZ"
    return text


_URL_KEEP = frozenset(b"-._~abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_URL_RESERVED = frozenset(b"!#$&*+,/:;=?@[]")
_HEX = frozenset(b"0123456789abcdefABCDEF")


def url_encode(text: str, normalize: bool) -> str:
    data = text.encode("utf-8", "surrogatepass")
    out = []
    for i, c in enumerate(data):
        if c in _URL_KEEP or normalize and (c in _URL_RESERVED or c == 37 and i + 2 < len(
                data) and data[i + 1] in _HEX and data[i + 2] in _HEX):
            out.append(chr(c))
        else:
            out.append(f"%{c:02x}")
    return "".join(out)


class HTMLContext:
    """The context at the current point of a template's text."""

    __slots__ = ("attr", "delim", "element", "state", "url_part")

    def __init__(self) -> None:
        self.state = TEXT
        self.element = ""   # script, textarea, title, style while inside one
        self.attr = ATTR    # the kind of the attribute whose value we are in
        self.delim = ""     # '"', "'", " " (unquoted) or "" (not in an attribute value)
        self.url_part = 0   # 0 nothing yet, 1 before the query, 2 query or fragment

    # -- actions -----------------------------------------------------------------------------
    def escaper(self) -> Callable[[Any], str]:
        """The function that prints a value at this point."""
        if self.state == BEFORE_VALUE:  # an unquoted value starts with the action
            self._enter_value(" ")
        elif self.state in (TAG, AFTER_NAME):
            self.state = ATTR_NAME
        state, delim = self.state, self.delim
        inner: Callable[[Any], str]
        if state == COMMENT or state in (JS_LINE, JS_BLOCK, CSS_LINE, CSS_BLOCK):
            return lambda v: ""
        if state in _CSS_URLISH:
            part, in_string = self.url_part, state in (CSS_DQ, CSS_SQ)
            if part == 2:
                inner = lambda v: url_encode(_text(v), False)
            elif in_string:
                inner = (lambda v: css_escape(_text(v))) if part == 1 else (
                    lambda v: css_escape(url_filter(_text(v))))
            else:
                inner = (lambda v: url_encode(_text(v), True)) if part == 1 else (
                    lambda v: url_encode(url_filter(_text(v)), True))
        elif state == CSS:
            inner = css_value
        elif state == URL:
            part = self.url_part
            if part == 2:
                inner = lambda v: url_encode(_text(v), False)
            elif part == 1:
                inner = lambda v: url_encode(_text(v), True)
            else:
                inner = lambda v: url_encode(url_filter(_text(v)), True)
        elif state == JS_EXPR:
            inner = js_value
        elif state in (JS_DQ, JS_SQ, JS_BQ):
            inner = js_string
        elif state == ATTR_NAME:
            return html_name
        else:
            return html_nospace if delim == " " else html_text
        if delim == " ":
            return lambda v: html_nospace(inner(v))
        if delim:
            return lambda v: fn.html_escape(inner(v))
        return inner

    def after_action(self) -> None:
        """An action does not move the context (a URL part stays where the text left it,
        as in Go)."""

    # -- text --------------------------------------------------------------------------------
    def text(self, s: str) -> str:
        """Move through the template text ``s``; return it without its comments."""
        out: list[str] = []
        i, n = 0, len(s)
        while i < n:
            state = self.state
            if self.delim and state not in (TAG, ATTR_NAME, AFTER_NAME, BEFORE_VALUE):
                i = self._value(s, i, out)
            elif state == TEXT:
                i = self._in_text(s, i, out)
            elif state == COMMENT:
                end = s.find("-->", i)
                if end < 0:
                    return "".join(out)
                self.state, i = TEXT, end + 3
            elif state == RCDATA:
                i = self._raw_until_end(s, i, out)
            elif state in _JS_STATES:
                i = self._script(s, i, out)
            elif state in _CSS_STATES:
                i = self._style(s, i, out)
            else:
                i = self._in_tag(s, i, out)
        return "".join(out)

    def _in_text(self, s: str, i: int, out: list[str]) -> int:
        lt = s.find("<", i)
        if lt < 0:
            out.append(s[i:])
            return len(s)
        if s.startswith("<!--", lt):
            out.append(s[i:lt])
            self.state = COMMENT
            return lt + 4
        closing = s.startswith("</", lt)
        m = _TAG_NAME.match(s, lt + (2 if closing else 1))
        if m is None:  # a "<" that opens no tag is written as an entity
            out.append(s[i:lt])
            out.append("<" if s[lt:lt + 9].upper() == "<!DOCTYPE" else "&lt;")
            return lt + 1
        out.append(s[i:m.end()])
        self.state = TAG
        self.element = "" if closing else m.group(0).lower()
        return m.end()

    def _in_tag(self, s: str, i: int, out: list[str]) -> int:
        state = self.state
        c = s[i]
        if state == BEFORE_VALUE:
            if c in _SPACE:
                out.append(c)
                return i + 1
            if c == ">":
                return self._tag_end(out, i)
            if c in "\"'":
                out.append(c)
                self._enter_value(c)
                return i + 1
            self._enter_value(" ")
            return i
        if c in _SPACE:
            out.append(c)
            if state == ATTR_NAME:
                self.state = AFTER_NAME
            return i + 1
        if c == ">":
            return self._tag_end(out, i)
        if c == "=" and state in (ATTR_NAME, AFTER_NAME):
            out.append(c)
            self.state = BEFORE_VALUE
            return i + 1
        if c == "/":
            out.append(c)
            self.state = TAG
            return i + 1
        m = _ATTR_NAME_END.search(s, i + 1)
        end = m.start() if m else len(s)
        self.attr = _attr_kind(s[i:end])
        self.state = ATTR_NAME
        out.append(s[i:end])
        return end

    def _tag_end(self, out: list[str], i: int) -> int:
        out.append(">")
        self.state = _RAW_ELEMENTS.get(self.element, TEXT)
        if self.state == TEXT:
            self.element = ""
        return i + 1

    def _enter_value(self, delim: str) -> None:
        self.delim = delim
        self.url_part = 0
        self.state = self.attr

    def _value(self, s: str, i: int, out: list[str]) -> int:
        delim = self.delim
        if delim == " ":
            m = _UNQUOTED_END.search(s, i)
            end = m.start() if m else len(s)
        else:
            end = s.find(delim, i)
            if end < 0:
                end = len(s)
        inner = s[i:end]
        if self.state == URL:
            if "#" in inner or "?" in inner:
                self.url_part = 2
            elif inner.strip(_SPACE) and self.url_part == 0:
                self.url_part = 1
            out.append(inner)
        elif self.state in _JS_STATES:
            self._script(inner, 0, out, whole=True)
        elif self.state in _CSS_STATES:
            self._style(inner, 0, out, whole=True)
        else:
            out.append(inner)
        if end == len(s):
            return end
        self.delim = ""
        self.state = TAG
        if delim == " ":
            return end
        out.append(delim)
        return end + 1

    def _style(self, s: str, i: int, out: list[str], whole: bool = False) -> int:
        """CSS text up to its end (``</style`` unless ``whole``): strings and url() tracked
        for their URL part, comments dropped (a block comment leaves a space)."""
        n = len(s)
        start = i
        while i < n:
            state = self.state
            c = s[i]
            if not whole and c == "<" and s[i:i + 7].lower() == "</style":
                if state not in (CSS_LINE, CSS_BLOCK):
                    out.append(s[start:i])
                elif state == CSS_BLOCK and i > 0:
                    out.append(" ")
                out.append(s[i:i + 7])
                self.state, self.element = TAG, ""
                return i + 7
            if state == CSS:
                if c == '"' or c == "'":
                    self.state, self.url_part = (CSS_DQ if c == '"' else CSS_SQ), 0
                elif c == "(" and s[start:i].rstrip(_SPACE)[-3:].lower() == "url":
                    j = i + 1
                    while j < n and s[j] in _SPACE:
                        j += 1
                    q = s[j:j + 1]
                    self.state = CSS_DQ_URL if q == '"' else CSS_SQ_URL if q == "'" \
                        else CSS_URL
                    self.url_part = 0
                    i = j + (1 if q in ('"', "'") else 0)
                    continue
                elif c == "/" and s[i + 1:i + 2] in ("/", "*"):
                    out.append(s[start:i])
                    self.state = CSS_LINE if s[i + 1] == "/" else CSS_BLOCK
                    i = start = i + 2
                    continue
            elif state in _CSS_URLISH:
                if c == "\\":
                    i += 2
                    continue
                if c == _CSS_URLISH[state]:
                    self.state = CSS
                elif c in "#?":
                    self.url_part = 2
                elif c not in _SPACE and self.url_part == 0:
                    self.url_part = 1
            elif state == CSS_LINE:
                if c in "\n\f\r":
                    self.state = CSS
                    start = i
                    continue
                start = i + 1
            elif state == CSS_BLOCK:
                close = s.find("*/", i)
                tag = -1 if whole else s.lower().find("</style", i)
                end = min((x for x in (close, tag) if x >= 0), default=n)
                if (end + 2 if end == close else end) > 0:
                    out.append(" ")
                if end == close:
                    self.state = CSS
                    i = start = close + 2
                    continue
                i = start = end
                if end == n:
                    return n
                continue
            i += 1
        if self.state not in (CSS_LINE, CSS_BLOCK):
            out.append(s[start:])
        return n

    def _raw_until_end(self, s: str, i: int, out: list[str]) -> int:
        """Text of a textarea, title or style element up to its end tag."""
        m = re.compile("</" + self.element, re.IGNORECASE).search(s, i)
        end = len(s) if m is None else m.start()
        out.append(s[i:end].replace("<", "&lt;"))
        if m is None:
            return end
        out.append(s[m.start():m.end()])
        self.state, self.element = TAG, ""
        return m.end()

    def _script(self, s: str, i: int, out: list[str], whole: bool = False) -> int:
        """JavaScript text up to its end (``</script`` unless ``whole``): strings tracked,
        comments dropped."""
        n = len(s)
        start = i
        while i < n:
            state = self.state
            c = s[i]
            if not whole and c == "<" and s[i:i + 8].lower() == "</script":
                # the element ends here, whatever the JavaScript state
                if state not in (JS_LINE, JS_BLOCK):
                    out.append(s[start:i])
                elif state == JS_BLOCK and i > 0:  # an empty stretch of comment
                    out.append(" ")
                out.append(s[i:i + 8])
                self.state, self.element = TAG, ""
                return i + 8
            if state == JS_EXPR:
                if c == '"':
                    self.state = JS_DQ
                elif c == "'":
                    self.state = JS_SQ
                elif c == "`":
                    self.state = JS_BQ
                elif c == "/" and s[i + 1:i + 2] in ("/", "*"):
                    out.append(s[start:i])
                    self.state = JS_LINE if s[i + 1] == "/" else JS_BLOCK
                    i += 2
                    start = i
                    continue
            elif state in (JS_DQ, JS_SQ, JS_BQ):
                if c == "\\":
                    i += 2
                    continue
                if c == {JS_DQ: '"', JS_SQ: "'", JS_BQ: "`"}[state]:
                    self.state = JS_EXPR
            elif state == JS_LINE:
                if c in "\n\r\u2028\u2029":
                    self.state = JS_EXPR
                    start = i
                    continue
                start = i + 1
            elif state == JS_BLOCK:
                # The comment's text up to its end, the end of the script or of this text
                # becomes one space (a newline if it holds one), as Go writes it: only
                # when that stretch ends past the start of this text.
                close = s.find("*/", i)
                tag = -1 if whole else s.lower().find("</script", i)
                end = min((x for x in (close, tag) if x >= 0), default=n)
                run_end = end + 2 if end == close else end
                if run_end > 0:
                    out.append("\n" if any(ch in s[i:end] for ch in "\n\r\u2028\u2029")
                               else " ")
                if end == close:
                    self.state = JS_EXPR
                    i = start = close + 2
                    continue
                if end == n:
                    return n
                out.append(s[end:end + 8])  # the script ends
                self.state, self.element = TAG, ""
                return end + 8
            i += 1
        if self.state not in (JS_LINE, JS_BLOCK):
            out.append(s[start:])
        return n

"""JSON and YAML documents read into a ``map[string]interface{}`` as Kapacitor 1.5.7's Go
code reads them (sideload values files), with Go's error messages.

* JSON: ``encoding/json``'s ``Unmarshal`` — the whole text is first checked by Go's JSON
  scanner (``invalid character 'x' after object key``, ``unexpected end of JSON input``,
  ...), then a top-level value that is not an object is refused (``json: cannot
  unmarshal array into Go value of type map[string]interface {}``); ``null`` gives no
  values. Invalid UTF-8 in strings becomes U+FFFD, as Go decodes it.
* YAML: ``github.com/ghodss/yaml`` — go-yaml v2 parses the document (its errors read
  ``error converting YAML to JSON: yaml: line N: <problem>``, N being go-yaml's 0-based
  line of the problem), the document goes through JSON (keys become strings) and is
  unmarshalled as above (``error unmarshaling JSON: ...``).
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML ships no types

WHITESPACE = b" \t\r\n"
_GO_UNPRINTABLE = {0xA0, 0xAD}
_C_ESCAPES = {0x07: "\\a", 0x08: "\\b", 0x0C: "\\f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t",
              0x0B: "\\v"}
_EOF = "unexpected end of JSON input"
MAP_TYPE = "map[string]interface {}"


def _quote_char(c: int) -> str:
    """Go's encoding/json quoteChar: the byte as a rune, quoted with single quotes."""
    if c == 0x27:
        return "'\\''"
    if c == 0x22:
        return "'\"'"
    if c == 0x5C:
        return "'\\\\'"
    if c in _C_ESCAPES:
        return f"'{_C_ESCAPES[c]}'"
    if c < 0x20 or c == 0x7F:
        return f"'\\x{c:02x}'"
    if 0x80 <= c < 0xA0 or c in _GO_UNPRINTABLE:
        return f"'\\u{c:04x}'"
    return f"'{chr(c)}'"


class _SyntaxError(Exception):
    pass


def _invalid(c: int, context: str) -> _SyntaxError:
    return _SyntaxError(f"invalid character {_quote_char(c)} {context}")


class _Scanner:
    """Go's JSON scanner as a recursive descent: the same error for the same input. At
    the end of the input Go steps one space through the scanner, so an unfinished
    number or literal reports ``invalid character ' '``."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.i = 0

    def _peek(self) -> int | None:
        return self.data[self.i] if self.i < len(self.data) else None

    def _ws(self) -> int | None:
        data, n = self.data, len(self.data)
        while self.i < n and data[self.i] in WHITESPACE:
            self.i += 1
        return self._peek()

    def check(self) -> None:
        self.value()
        c = self._ws()
        if c is not None:
            raise _invalid(c, "after top-level value")

    def value(self) -> None:
        c = self._ws()
        if c is None:
            raise _SyntaxError(_EOF)
        if c == 0x7B:  # {
            self.object()
        elif c == 0x5B:  # [
            self.array()
        elif c == 0x22:
            self.string()
        elif c == 0x2D or 0x30 <= c <= 0x39:
            self.number()
        elif c == 0x74:
            self.literal(b"true")
        elif c == 0x66:
            self.literal(b"false")
        elif c == 0x6E:
            self.literal(b"null")
        else:
            raise _invalid(c, "looking for beginning of value")

    def object(self) -> None:
        self.i += 1
        c = self._ws()
        if c is None:
            raise _SyntaxError(_EOF)
        if c == 0x7D:
            self.i += 1
            return
        while True:
            if c != 0x22:
                raise _invalid(c, "looking for beginning of object key string")
            self.string()
            c = self._ws()
            if c is None:
                raise _SyntaxError(_EOF)
            if c != 0x3A:
                raise _invalid(c, "after object key")
            self.i += 1
            self.value()
            c = self._ws()
            if c is None:
                raise _SyntaxError(_EOF)
            if c == 0x7D:
                self.i += 1
                return
            if c != 0x2C:
                raise _invalid(c, "after object key:value pair")
            self.i += 1
            c = self._ws()
            if c is None:
                raise _SyntaxError(_EOF)

    def array(self) -> None:
        self.i += 1
        c = self._ws()
        if c is None:
            raise _SyntaxError(_EOF)
        if c == 0x5D:
            self.i += 1
            return
        while True:
            self.value()
            c = self._ws()
            if c is None:
                raise _SyntaxError(_EOF)
            if c == 0x5D:
                self.i += 1
                return
            if c != 0x2C:
                raise _invalid(c, "after array element")
            self.i += 1

    def string(self) -> None:
        self.i += 1
        data, n = self.data, len(self.data)
        while True:
            if self.i >= n:
                raise _SyntaxError(_EOF)
            c = data[self.i]
            self.i += 1
            if c == 0x22:
                return
            if c == 0x5C:
                if self.i >= n:
                    raise _invalid(0x20, "in string escape code")
                e = data[self.i]
                self.i += 1
                if e == 0x75:  # \uXXXX
                    for _ in range(4):
                        if self.i >= n:
                            raise _invalid(0x20, "in \\u hexadecimal character escape")
                        h = data[self.i]
                        if h not in b"0123456789abcdefABCDEF":
                            raise _invalid(h, "in \\u hexadecimal character escape")
                        self.i += 1
                elif e not in b'"\\/bfnrt':
                    raise _invalid(e, "in string escape code")
            elif c < 0x20:
                raise _invalid(c, "in string literal")

    def _next_or_space(self) -> int:
        c = self._peek()
        return 0x20 if c is None else c

    def _digits(self) -> None:
        while (c := self._peek()) is not None and 0x30 <= c <= 0x39:
            self.i += 1

    def number(self) -> None:
        if self._peek() == 0x2D:
            self.i += 1
            c = self._next_or_space()
            if not 0x30 <= c <= 0x39:
                raise _invalid(c, "in numeric literal")
        first = self._peek()
        self.i += 1
        if first != 0x30:
            self._digits()
        if self._peek() == 0x2E:
            self.i += 1
            c = self._next_or_space()
            if not 0x30 <= c <= 0x39:
                raise _invalid(c, "after decimal point in numeric literal")
            self._digits()
        if self._peek() in (0x65, 0x45):
            self.i += 1
            if self._peek() in (0x2B, 0x2D):
                self.i += 1
            c = self._next_or_space()
            if not 0x30 <= c <= 0x39:
                raise _invalid(c, "in exponent of numeric literal")
            self._digits()

    def literal(self, word: bytes) -> None:
        self.i += 1
        for expected in word[1:]:
            c = self._next_or_space()
            if c != expected:
                raise _invalid(c, f"in literal {word.decode()} (expecting "
                                  f"{_quote_char(expected)})")
            self.i += 1


def json_syntax_error(data: bytes) -> str | None:
    """What Go's JSON scanner says of ``data``, or None when it is valid JSON."""
    try:
        _Scanner(data).check()
    except _SyntaxError as exc:
        return str(exc)
    return None


def _go_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array"


def _as_map(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"json: cannot unmarshal {_go_kind(value)} into Go value of type "
                         f"{MAP_TYPE}")
    return value


def _go_number(text: str) -> float:
    """A JSON number as Go decodes it into interface{}: a float64 (out of range: an
    error naming the literal)."""
    try:
        value = float(text)
    except OverflowError:
        value = math.inf
    if math.isinf(value):
        raise ValueError(f"json: cannot unmarshal number {text} into Go value of type "
                         "float64")
    return value


def json_object(data: bytes) -> dict[str, Any]:
    """``json.Unmarshal(data, &map[string]interface{}{})``; ValueError with Go's words."""
    error = json_syntax_error(data)
    if error is not None:
        raise ValueError(error)
    loaded = json.loads(data.decode("utf-8", "replace"), parse_float=_go_number,
                        parse_int=_go_number)
    if b"\\u" in data or b"\\U" in data:
        loaded = _no_surrogates(loaded)
    return _as_map(loaded)


#: PyYAML's problem texts (their start) -> go-yaml's (libyaml's) words.
_YAML_PROBLEMS = (
    ("mapping values are not allowed", "mapping values are not allowed in this context"),
    ("found character", "found character that cannot start any token"),
    ("expected ',' or ']'", "did not find expected ',' or ']'"),
    ("expected ',' or '}'", "did not find expected ',' or '}'"),
    ("expected <block end>", None),  # depends on the collection, see below
    ("found undefined alias", None),
    ("expected a comment or a line break", "did not find expected comment or line break"),
    ("expected the node content", "did not find expected node content"),
    ("expected '<document start>'", "did not find expected <document start>"),
    ("found unknown escape character", "found unknown escape character"),
    ("found unexpected end of stream", "found unexpected end of stream"),
    ("could not find expected ':'", "could not find expected ':'"),
    ("found duplicate anchor", "found duplicate anchor"),
    ("found unexpected ':'", "found unexpected ':'"),
)


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    problem = exc.problem or ""
    for start, words in _YAML_PROBLEMS:
        if problem.startswith(start):
            if words is None:
                context = exc.context or ""
                return "did not find expected key" if "mapping" in context \
                    else "did not find expected '-' indicator"
            return words
    return problem or "unknown problem parsing YAML content"


def _yaml_error(exc: yaml.YAMLError) -> str:
    if not isinstance(exc, yaml.MarkedYAMLError):
        return f"yaml: {exc}"
    problem = exc.problem or ""
    if problem.startswith("found undefined alias "):  # go-yaml's decoder, no line
        return f"yaml: unknown anchor {problem.removeprefix('found undefined alias ')} " \
               "referenced"
    line = 0
    if exc.problem_mark is not None and exc.problem_mark.line:
        line = exc.problem_mark.line
    elif exc.context_mark is not None and exc.context_mark.line:
        line = exc.context_mark.line
    where = f"line {line}: " if line else ""
    return f"yaml: {where}{_yaml_problem(exc)}"


_GO_TAG = "!go-plain"
_INF, _NAN = float("inf"), float("nan")
#: go-yaml v2's table of plain scalars with a fixed meaning.
_RESOLVE_MAP: dict[str, Any] = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"),
                    True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off",
                     "OFF"), False),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), _NAN),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), _INF),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -_INF),
}
_GO_FLOAT_SPECIAL = {"inf": _INF, "+inf": _INF, "-inf": -_INF, "infinity": _INF,
                     "+infinity": _INF, "-infinity": -_INF, "nan": _NAN}


def _go_parse_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64), then ParseUint: None when neither takes it."""
    body, sign = text, 1
    if body[:1] in ("+", "-"):
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    base = 10
    lower = body.lower()
    if lower.startswith(("0x", "0o", "0b")):
        base = {"x": 16, "o": 8, "b": 2}[lower[1]]
        body = body[2:]
    elif len(body) > 1 and body.startswith("0"):
        base = 8
        body = body[1:]
    if not body:
        return None
    try:
        value = sign * int(body, base)
    except ValueError:
        return None
    if body[0] in "+-" or not -(2**63) <= value < 2**64 or (sign < 0 and value < -(2**63)):
        return None
    return value


def _go_parse_float(text: str) -> float | None:
    """strconv.ParseFloat(text, 64), or None."""
    special = _GO_FLOAT_SPECIAL.get(text.lower())
    if special is not None:
        return special
    if not text or text.lower().lstrip("+-").startswith(("inf", "nan")):
        return None
    try:
        if "x" in text.lower():
            return float.fromhex(text)
        if "_" in text or text.strip() != text:
            return None
        return float(text)
    except (ValueError, OverflowError):
        return None


def go_resolve(text: str) -> Any:
    """What go-yaml v2 makes of a plain scalar."""
    if text in _RESOLVE_MAP:
        return _RESOLVE_MAP[text]
    first = text[:1]
    if first == ".":
        value = _go_parse_float(text)
        return text if value is None else value
    if first in ("+", "-") or first.isdigit() and first.isascii():
        plain = text.replace("_", "")
        number = _go_parse_int(plain)
        if number is not None:
            return number
        value = _go_parse_float(plain)
        if value is not None:
            return value
    return text


class _Loader(yaml.SafeLoader):  # type: ignore[misc]  # base class untyped (PyYAML)
    """YAML as go-yaml v2 reads it for ghodss/yaml: plain scalars resolved by go-yaml's
    rules (no timestamps, Go's number syntax), the rest as YAML says."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode and implicit[0]:
            return "tag:yaml.org,2002:merge" if value == "<<" else _GO_TAG
        return super().resolve(kind, value, implicit)

    def construct_go_plain(self, node: yaml.ScalarNode) -> Any:
        return go_resolve(self.construct_scalar(node))

    def construct_scalar(self, node: Any) -> Any:
        value = super().construct_scalar(node)
        if node.style == '"' and any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
            raise _GoYAMLError(node.start_mark.line,
                               "found invalid Unicode character escape code")
        return value

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.SequenceNode | yaml.MappingNode):
                    key = self.construct_object(key_node, deep=True)
                    raise _GoYAMLError(0, f"invalid map key: {_go_value(key)}")
        return super().construct_mapping(node, deep=deep)


class _GoYAMLError(ValueError):
    """An error go-yaml reports itself (``yaml: [line N: ]<problem>``)."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"yaml: line {line}: {problem}" if line else f"yaml: {problem}")


_Loader.add_constructor(_GO_TAG, _Loader.construct_go_plain)


def _go_value(value: Any, nested: bool = False) -> str:
    """A decoded YAML value as Go's ``%#v`` writes it (a nil inside a collection is
    ``interface {}(nil)``)."""
    if value is None:
        return "interface {}(nil)" if nested else "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[]interface {}{" + ", ".join(_go_value(v, True) for v in value) + "}"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: str(kv[0]))
        return "map[interface {}]interface {}{" + ", ".join(
            f"{_go_value(k, True)}:{_go_value(v, True)}" for k, v in items) + "}"
    return str(value)


def _go_float(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "+Inf" if value > 0 else "-Inf"
    return json.dumps(value) if value != int(value) or abs(value) >= 1e21 else str(int(value))


def _json_key(key: Any, value: Any) -> str:
    """A YAML key as ghodss/yaml writes it into JSON (it refuses a null key)."""
    if key is None:
        raise ValueError("Unsupported map key of type: %!s(<nil>), key: <nil>, value: "
                         f"{_go_value(value)}")
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, float):
        return _go_float_key(key)
    return str(key)


def _go_float_key(key: float) -> str:
    """ghodss/yaml's key of a float: strconv.FormatFloat(f, 'g', -1, 32), with YAML's
    names for infinities and NaN."""
    if key != key:
        return ".nan"
    if key in (math.inf, -math.inf):
        return ".inf" if key > 0 else "-.inf"
    f32 = struct.unpack("f", struct.pack("f", key))[0]
    for digits in range(1, 10):  # the shortest text that gives the same float32
        text = f"{f32:.{digits}e}" if digits else ""
        mantissa, exp = f"{f32:.{digits - 1}e}".split("e")
        if struct.unpack("f", struct.pack("f", float(f"{mantissa}e{exp}")))[0] == f32:
            break
    _ = text
    sign = "-" if mantissa.startswith("-") else ""
    significant = mantissa.lstrip("-").replace(".", "").rstrip("0") or "0"
    exponent = int(exp)
    if exponent < -4 or exponent >= 6:
        head = significant[0] + ("." + significant[1:] if len(significant) > 1 else "")
        return f"{sign}{head}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if exponent >= 0:
        whole = significant[:exponent + 1].ljust(exponent + 1, "0")
        frac = significant[exponent + 1:]
        return f"{sign}{whole}" + (f".{frac}" if frac else "")
    return f"{sign}0.{'0' * (-exponent - 1)}{significant}"


def _convert(value: Any) -> Any:
    """ghodss/yaml's YAML-to-JSON step: string keys; a non-finite float is refused by
    json.Marshal (maps walked in key order)."""
    if isinstance(value, dict):
        converted = {_json_key(k, v): v for k, v in value.items()}
        return {k: _convert(converted[k]) for k in sorted(converted)}
    if isinstance(value, list):
        return [_convert(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"json: unsupported value: {_go_float(value)}")
    if isinstance(value, bytes):  # !!binary: the decoded bytes as a Go string
        return value.decode("utf-8", "replace")
    return value


def _no_surrogates(value: Any) -> Any:
    """Strings as Go decodes them: a lone UTF-16 surrogate escape becomes U+FFFD."""
    if isinstance(value, str):
        if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
            return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in value)
        return value
    if isinstance(value, dict):
        return {_no_surrogates(k): _no_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_surrogates(v) for v in value]
    return value


def yaml_object(data: bytes) -> dict[str, Any]:
    """ghodss/yaml's ``Unmarshal(data, &map[string]interface{}{})``: the first document
    only; ValueError with its words."""
    try:
        loaded = next(yaml.load_all(data.decode("utf-8", "replace"), Loader=_Loader), None)
        loaded = _convert(loaded)
    except yaml.YAMLError as exc:
        raise ValueError(f"error converting YAML to JSON: {_yaml_error(exc)}") from None
    except ValueError as exc:  # go-yaml's own errors, ghodss/yaml's conversion
        raise ValueError(f"error converting YAML to JSON: {exc}") from None
    try:
        return _as_map(loaded)
    except ValueError as exc:
        raise ValueError(f"error unmarshaling JSON: {exc}") from None

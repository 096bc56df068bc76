"""The built-in functions of Go templates: and/or/not, comparisons, index, printf…"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import Any

from kapa_core.gotemplate.gofmt import go_format, sprintf


def truth(value: Any) -> bool:
    if value is None or value is False:
        return False
    if type(value).__name__ == "_NoValue":
        return False
    if isinstance(value, int | float | str | list | tuple | dict):
        return bool(value)
    return True


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def _comparable(a: Any, b: Any, op: str) -> None:
    if _kind(a) != _kind(b):
        raise ValueError("incompatible types for comparison")
    if op != "eq" and _kind(a) not in ("int", "float", "string"):
        raise ValueError(f"invalid type for comparison: {_kind(a)}")


def eq(a: Any, *others: Any) -> bool:
    if not others:
        raise ValueError("missing argument for comparison")
    for b in others:
        _comparable(a, b, "eq")
        if a == b:
            return True
    return False


def ne(a: Any, b: Any) -> bool:
    _comparable(a, b, "eq")
    return a != b


def _ordered(op: Callable[[Any, Any], bool], name: str) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        _comparable(a, b, name)
        return op(a, b)
    return compare


def index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if value is None:
            raise ValueError("index of untyped nil")
        if isinstance(value, dict):
            value = value[key] if key in value else getattr(value, "zero", None)
        elif isinstance(value, list | tuple | str):
            if not isinstance(key, int) or isinstance(key, bool):
                raise ValueError(f"cannot index slice/array with type {_kind(key)}")
            if not 0 <= key < len(value):
                raise ValueError(f"index out of range: {key}")
            value = value[key]
        else:
            raise ValueError(f"can't index item of type {type(value).__name__}")
    return value


def slice_(value: Any, *bounds: int) -> Any:
    if len(bounds) > 3:
        raise ValueError("too many slice indexes")
    start = bounds[0] if bounds else 0
    end = bounds[1] if len(bounds) > 1 else len(value)
    if not 0 <= start <= end <= len(value):
        raise ValueError(f"slice index out of range: {start}:{end}")
    return value[start:end]


def length(value: Any) -> int:
    if isinstance(value, str | list | tuple | dict):
        return len(value.encode() if isinstance(value, str) else value)
    raise ValueError(f"len of type {_kind(value)}")


def _print(*args: Any) -> str:
    out = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_format(a))
    return "".join(out)


def _println(*args: Any) -> str:
    return " ".join(go_format(a) for a in args) + "\n"


HTML = str.maketrans({'"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;",
                      "+": "&#43;", "\0": "\ufffd"})


def html_escape(text: str) -> str:
    return text.translate(HTML)


def _html(*args: Any) -> str:
    return _print(*args).translate(str.maketrans({'"': "&#34;", "'": "&#39;", "&": "&amp;",
                                                  "<": "&lt;", ">": "&gt;", "\0": "\ufffd"}))


def _js(*args: Any) -> str:
    out = []
    for ch in _print(*args):
        if ch in "\\'\"":
            out.append("\\" + ch)
        elif ch in "<>&=" or ord(ch) < 32:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _call(fn: Any, *args: Any) -> Any:
    if not callable(fn):
        raise ValueError("non-function of type " + type(fn).__name__)
    return fn(*args)


FUNCS: dict[str, Callable[..., Any]] = {
    "and": lambda *a: a[-1], "or": lambda *a: a[-1], "not": lambda a: not truth(a),
    "len": length, "index": index, "slice": slice_, "print": _print, "printf": sprintf,
    "println": _println, "eq": eq, "ne": ne,
    "lt": _ordered(lambda a, b: a < b, "lt"), "le": _ordered(lambda a, b: a <= b, "le"),
    "gt": _ordered(lambda a, b: a > b, "gt"), "ge": _ordered(lambda a, b: a >= b, "ge"),
    "html": _html, "js": _js, "urlquery": lambda *a: urllib.parse.quote_plus(_print(*a)),
    "call": _call,
}

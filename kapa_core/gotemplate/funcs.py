"""The predefined functions of Go templates, with Go's semantics and error messages.

``and``/``or`` short-circuit and ``call`` needs the callee's name, so the compiler handles
those three itself; everything else is a plain function here taking template values (a Go
nil is ``None``, Go's invalid value from a missing map key is ``NO_VALUE``). A function
raises :class:`GoError` where Go's returns an error, which execution reports as
``error calling NAME: MESSAGE``. ``BUILTINS`` maps names to ``(function, fixed, variadic)``
arity as Go declares them, for Go's ``wrong number of args`` checks.

``sprintf`` is ``fmt.Sprintf``: the format string with flags, width, precision (``*`` too),
argument indexes (``%[2]d``) and the in-band errors ``%!d(MISSING)``, ``%!(EXTRA int=1)``,
``%!(NOVERB)``, ``%!(BADWIDTH)``; each operand is formatted by ``gofmt.print_arg``.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeAlias

from kapa_core.gotemplate import gotime as gv
from kapa_core.gotemplate.gofmt import Fmt, go_format, print_arg, sprint, sprintln
from kapa_core.gotemplate.gotime import NO_VALUE, ExecError, StringMap, truth, type_name
from kapa_core.gotemplate.parser import Node


class GoError(Exception):
    """An error a Go builtin returns."""


#: A template function: evaluated arguments in, a value out (Go's ``interface{}``).
Func: TypeAlias = Callable[..., Any]
#: A ``printf`` format parsed once: (literal text, None) and (verb, flags) pairs.
Plan: TypeAlias = tuple[tuple[str, Fmt | None], ...]


def user_call(user: Func) -> Func:
    def call(*args: Any) -> Any:
        return user(*[None if a is NO_VALUE else a for a in args])
    return call


def dynamic_call(callee: str) -> Func:
    def call(func: Any, *args: Any) -> Any:
        if func is None or func is NO_VALUE:
            raise GoError("call of nil")
        if not callable(func) or isinstance(func, type):
            shown = f"{callee} " if callee else ""
            raise GoError(f"non-function {shown}of type {type_name(func)}")
        values = [None if a is NO_VALUE else a for a in args]
        spec = gv.arity(func)
        message = spec and gv.arity_error(callee, spec, len(values), len(values))
        if message:
            raise GoError(message)
        return func(*values)
    return call


def printf_check(static: str | None, first: Node, tmpl: str) -> Callable[..., str]:
    """``printf`` whose format must be a string; ``static`` is the error for a literal."""
    def checked(fmt: Any, *args: Any) -> str:
        if isinstance(fmt, str):
            return sprintf(fmt, *args)
        if static is not None:
            message = static
        elif fmt is None or fmt is NO_VALUE:
            message = "invalid value; expected string"
        else:
            message = f"wrong type for value; expected string; got {type_name(fmt)}"
        raise ExecError(message, first, tmpl)
    return checked


# -- comparison -----------------------------------------------------------------------------
INVALID, BOOL, INT, FLOAT, COMPLEX, STRING, OTHER = range(7)


def _kind(value: Any) -> int:
    cls = type(value)
    if cls is str:
        return STRING
    if cls is int:
        return INT
    if cls is float:
        return FLOAT
    if value is None or value is NO_VALUE:
        return INVALID
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return FLOAT
    if isinstance(value, complex):
        return COMPLEX
    if isinstance(value, str):
        return STRING
    return OTHER


def _coarse(value: Any) -> str:
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list | tuple | bytes | bytearray):
        return "slice"
    return "func" if callable(value) else "struct"


def eq(arg1: Any, *args: Any) -> bool:
    """``eq a b c`` is ``a == b || a == c``; values of different kinds are an error."""
    if not args:
        raise GoError("missing argument for comparison")
    k1 = _kind(arg1)
    for arg in args:
        k2 = _kind(arg)
        if k1 != k2:
            if k1 != INVALID and k2 != INVALID:
                raise GoError(f"incompatible types for comparison: {type_name(arg1)} and "
                              f"{type_name(arg)}")
            continue
        if k1 == INVALID:
            return True
        if k1 == OTHER:
            c1, c2 = _coarse(arg1), _coarse(arg)
            if c1 != c2:
                raise GoError(f"non-comparable types {go_format(arg1)}: {type_name(arg1)}, "
                              f"{type_name(arg)}: {go_format(arg)}")
            if c1 != "struct":
                raise GoError(f"non-comparable type {go_format(arg)}: {type_name(arg)}")
        try:
            if arg1 == arg:
                return True
        except Exception as exc:
            raise GoError(str(exc)) from None
    return False


def ne(arg1: Any, arg2: Any) -> bool:
    return not eq(arg1, arg2)


def lt(arg1: Any, arg2: Any) -> bool:
    k1, k2 = _kind(arg1), _kind(arg2)
    if k1 in (INVALID, OTHER) or k2 in (INVALID, OTHER):
        raise GoError("invalid type for comparison")
    if k1 != k2:
        raise GoError(f"incompatible types for comparison: {type_name(arg1)} and "
                      f"{type_name(arg2)}")
    if k1 in (BOOL, COMPLEX):
        raise GoError("invalid type for comparison")
    return bool(arg1 < arg2)


def le(arg1: Any, arg2: Any) -> bool:
    return lt(arg1, arg2) or eq(arg1, arg2)


def gt(arg1: Any, arg2: Any) -> bool:
    return not le(arg1, arg2)


def ge(arg1: Any, arg2: Any) -> bool:
    return not lt(arg1, arg2)


def not_(arg: Any) -> bool:
    return not truth(arg)


# -- index, slice, len ----------------------------------------------------------------------
def _index_arg(index: Any, cap: int) -> int:
    if index is None or index is NO_VALUE:
        raise GoError("cannot index slice/array with nil")
    if not isinstance(index, int) or isinstance(index, bool):
        raise GoError(f"cannot index slice/array with type {type_name(index)}")
    if index < 0 or index > cap:
        raise GoError(f"index out of range: {index}")
    return int(index)


def index(item: Any, *indexes: Any) -> Any:
    """``index x 1 2`` is ``x[1][2]``; a missing map key gives the map's zero value."""
    if len(indexes) == 1 and isinstance(item, dict) and type(indexes[0]) is str:
        return item.get(indexes[0], "" if isinstance(item, StringMap) else None)
    if item is None or item is NO_VALUE:
        raise GoError("index of untyped nil")
    for key in indexes:
        if item is None:
            raise GoError("index of nil pointer")
        if isinstance(item, str | bytes | bytearray | list | tuple):
            data = item.encode() if isinstance(item, str) else item
            i = _index_arg(key, len(data))
            if i == len(data):
                what = "string" if isinstance(item, str) else "slice"
                raise GoError(f"reflect: {what} index out of range")
            item = data[i]
        elif isinstance(item, dict):
            stringly = isinstance(item, StringMap)
            if key is None or key is NO_VALUE:
                if stringly:
                    raise GoError("value is nil; should be of type string")
                key = None
            elif stringly and not isinstance(key, str):
                raise GoError(f"value has type {type_name(key)}; should be string")
            try:
                item = item.get(key, "" if stringly else None)
            except TypeError:
                raise GoError(f"value has type {type_name(key)}; should be string") from None
        else:
            raise GoError(f"can't index item of type {type_name(item)}")
    return item


def slice_(item: Any, *indexes: Any) -> Any:
    """``slice x 1 2`` is ``x[1:2]``; strings are sliced by bytes as in Go."""
    if item is None or item is NO_VALUE:
        raise GoError("slice of untyped nil")
    if len(indexes) > 3:
        raise GoError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise GoError("cannot 3-index slice a string")
        data: Any = item.encode()
    elif isinstance(item, list | tuple | bytes | bytearray):
        data = item
    else:
        raise GoError(f"can't slice item of type {type_name(item)}")
    bounds = [0, len(data), len(data)]
    for i, key in enumerate(indexes):
        bounds[i] = _index_arg(key, len(data))
    if bounds[0] > bounds[1]:
        raise GoError(f"invalid slice index: {bounds[0]} > {bounds[1]}")
    if len(indexes) == 3 and bounds[1] > bounds[2]:
        raise GoError(f"invalid slice index: {bounds[1]} > {bounds[2]}")
    part = data[bounds[0]:bounds[1]]
    return part.decode("utf-8", "replace") if isinstance(item, str) else part


def length(item: Any) -> int:
    """``len``: bytes of a string, elements of a slice or map."""
    if item is None:
        raise GoError("len of nil pointer")
    if item is NO_VALUE:
        raise GoError("reflect: call of reflect.Value.Type on zero Value")
    if isinstance(item, str):
        return len(item.encode("utf-8", "surrogateescape"))
    if isinstance(item, bytes | bytearray | list | tuple | dict):
        return len(item)
    raise GoError(f"len of type {type_name(item)}")


# -- printing and escaping --------------------------------------------------------------------
def _eval_args(args: tuple[Any, ...]) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint(*("<no value>" if a is None or a is NO_VALUE else a for a in args))


_HTML = str.maketrans({"\0": "\ufffd", '"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;",
                       ">": "&gt;"})


def html(*args: Any) -> str:
    """text/template's ``html``: HTMLEscapeString of the printed arguments."""
    return _eval_args(args).translate(_HTML)


_JS = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026",
       "=": "\\u003D"}


def js(*args: Any) -> str:
    """``js``: JSEscapeString of the printed arguments."""
    out = []
    for ch in _eval_args(args):
        if ch in _JS:
            out.append(_JS[ch])
        elif ch < " " or (ch >= "\x80" and not ch.isprintable()):
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def urlquery(*args: Any) -> str:
    """``urlquery``: url.QueryEscape of the printed arguments."""
    return urllib.parse.quote_plus(_eval_args(args), safe="")


# -- printf: fmt.Sprintf's format string ---------------------------------------------------
def _parse_num(fmt: str, i: int, end: int) -> tuple[int | None, int]:
    """Digits at ``i``: (number or None, new index); absurdly long numbers are rejected."""
    j = i
    while j < end and "0" <= fmt[j] <= "9":
        j += 1
    if j == i:
        return None, i
    num = int(fmt[i:j])
    return (num, j) if num <= 1_000_000 else (None, end)


def _int_arg(args: tuple[Any, ...], argnum: int) -> tuple[int | None, int]:
    if argnum >= len(args):
        return None, argnum
    value = args[argnum]
    if isinstance(value, int) and not isinstance(value, bool) and -1_000_000 <= value <= 1_000_000:
        return int(value), argnum + 1
    return None, argnum + 1


def _arg_index(fmt: str, i: int, nargs: int, state: list[bool]) -> tuple[int | None, int, bool]:
    """``%[n]`` at ``i``: (argument index or None if absent/bad, new index, found)."""
    if i >= len(fmt) or fmt[i] != "[":
        return None, i, False
    state[0] = True  # reordered
    close = fmt.find("]", i + 1)
    if len(fmt) - i < 3 or close < 0:
        state[1] = False
        return None, i + 1, False
    num, j = _parse_num(fmt, i + 1, close)
    if num is None or j != close:
        state[1] = False
        return None, close + 1, False
    if 0 <= num - 1 < nargs:
        return num - 1, close + 1, True
    state[1] = False
    return None, close + 1, True


def _flags(fmt: str, i: int, f: Fmt) -> int:
    while i < len(fmt):
        c = fmt[i]
        if c == "#":
            f.sharp = True
        elif c == "0":
            f.zero = not f.minus
        elif c == "+":
            f.plus = True
        elif c == "-":
            f.minus, f.zero = True, False
        elif c == " ":
            f.space = True
        else:
            break
        i += 1
    return i


@functools.lru_cache(maxsize=512)
def _plan(fmt: str) -> Plan | None:
    """A format without ``*`` or ``[n]`` parsed once: (text, None) and (verb, Fmt) pairs."""
    if "*" in fmt or "[" in fmt:
        return None
    plan: list[tuple[str, Fmt | None]] = []
    i, end = 0, len(fmt)
    while i < end:
        j = fmt.find("%", i)
        if j < 0:
            plan.append((fmt[i:], None))
            break
        plan.append((fmt[i:j], None))
        f = Fmt()
        i = _flags(fmt, j + 1, f)
        f.wid, i = _parse_num(fmt, i, end)
        if i + 1 < end and fmt[i] == ".":
            f.prec, i = _parse_num(fmt, i + 1, end)
            f.prec = f.prec or 0
        if i >= end:
            plan.append(("%!(NOVERB)", None))
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            plan.append(("%", None))
            continue
        if verb == "v":
            f.sharp_v, f.sharp, f.plus_v, f.plus = f.sharp, False, f.plus, False
        plan.append((verb, f))
    return tuple(p for p in plan if p[0] or p[1] is not None)


def _extra(args: tuple[Any, ...]) -> str:
    return "%!(EXTRA " + ", ".join("<nil>" if a is None or a is NO_VALUE
                                   else f"{type_name(a)}={print_arg(Fmt(), a, 'v')}"
                                   for a in args) + ")"


def sprintf(fmt: str, *args: Any) -> str:
    """``fmt.Sprintf``."""
    plan = _plan(fmt) if len(fmt) <= 200 else None
    if plan is not None:
        parts: list[str] = []
        argnum, count = 0, len(args)
        for text, spec in plan:
            if spec is None:
                parts.append(text)
            elif argnum < count:
                parts.append(print_arg(spec, args[argnum], text))
                argnum += 1
            else:
                parts.append(f"%!{text}(MISSING)")
        if argnum < count:
            parts.append(_extra(args[argnum:]))
        return "".join(parts)
    out: list[str] = []
    end = len(fmt)
    argnum = 0
    state = [False, True]  # reordered, good argument index
    i = 0
    while i < end:
        state[1] = True
        j = fmt.find("%", i)
        if j < 0:
            out.append(fmt[i:])
            break
        if j > i:
            out.append(fmt[i:j])
        f = Fmt()
        i = _flags(fmt, j + 1, f)
        index, i, after_index = _arg_index(fmt, i, len(args), state)
        if index is not None:
            argnum = index
        if i < end and fmt[i] == "*":
            i += 1
            f.wid, argnum = _int_arg(args, argnum)
            if f.wid is None:
                out.append("%!(BADWIDTH)")
            elif f.wid < 0:
                f.wid, f.minus, f.zero = -f.wid, True, False
            after_index = False
        else:
            f.wid, i = _parse_num(fmt, i, end)
            if after_index and f.wid is not None:
                state[1] = False
        if i + 1 < end and fmt[i] == ".":
            i += 1
            if after_index:
                state[1] = False
            index, i, after_index = _arg_index(fmt, i, len(args), state)
            if index is not None:
                argnum = index
            if i < end and fmt[i] == "*":
                i += 1
                f.prec, argnum = _int_arg(args, argnum)
                if f.prec is not None and f.prec < 0:
                    f.prec = None
                if f.prec is None:
                    out.append("%!(BADPREC)")
                after_index = False
            else:
                f.prec, i = _parse_num(fmt, i, end)
                if f.prec is None:
                    f.prec = 0
        if not after_index:
            index, i, after_index = _arg_index(fmt, i, len(args), state)
            if index is not None:
                argnum = index
        if i >= end:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
        elif not state[1]:
            out.append(f"%!{verb}(BADINDEX)")
        elif argnum >= len(args):
            out.append(f"%!{verb}(MISSING)")
        else:
            if verb == "v":
                f.sharp_v, f.sharp = f.sharp, False
                f.plus_v, f.plus = f.plus, False
            out.append(print_arg(f, args[argnum], verb))
            argnum += 1
    if not state[0] and argnum < len(args):
        out.append(_extra(args[argnum:]))
    return "".join(out)


_HTML_TEMPLATE = str.maketrans({"\0": "\ufffd", '"': "&#34;", "'": "&#39;", "&": "&amp;",
                                "+": "&#43;", "<": "&lt;", ">": "&gt;"})
_HTML_SPECIAL = re.compile("[\0\"'&+<>]")


def html_escape(text: str) -> str:
    """html/template's escaper for text: ``"'&+<>`` become entities, NUL becomes U+FFFD."""
    return text.translate(_HTML_TEMPLATE) if _HTML_SPECIAL.search(text) else text


# name -> (function, fixed argument count, variadic)
BUILTINS: dict[str, tuple[Callable[..., Any], int, bool]] = {
    "and": (truth, 1, True), "or": (truth, 1, True), "call": (truth, 1, True),
    "not": (not_, 1, False), "len": (length, 1, False), "index": (index, 1, True),
    "slice": (slice_, 1, True), "print": (sprint, 0, True), "printf": (sprintf, 1, True),
    "println": (sprintln, 0, True), "eq": (eq, 1, True), "ne": (ne, 2, False),
    "lt": (lt, 2, False), "le": (le, 2, False), "gt": (gt, 2, False), "ge": (ge, 2, False),
    "html": (html, 0, True), "js": (js, 0, True), "urlquery": (urlquery, 0, True),
}

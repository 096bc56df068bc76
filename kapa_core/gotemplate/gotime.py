"""Go values as templates see them: ``time.Time``, ``map[string]string``, fields and truth.

``GoTime(ns)`` is a UTC instant in Unix nanoseconds with the ``time.Time`` methods
templates call (``{{ .Time.Format "2006-01-02" }}``, ``{{ .Time.Unix }}``); it prints as
``Time.String()`` does: ``2006-01-02 15:04:05.999999999 +0000 UTC``. ``Format`` takes Go
reference-time layouts (``2006 01 02 15 04 05 .000 Z07:00 Jan Monday``...).
``StringMap`` marks a Go ``map[string]string`` (``index`` of a missing key gives ``""``).
``Duration`` is a ``time.Duration`` (``Time.Sub`` gives one), printed as ``1m30s``.

Python values stand in for Go's: dicts are maps, lists and tuples slices, other objects
structs whose attributes are fields and whose methods are methods. This module holds the
rules Go's reflection applies to them: ``NO_VALUE`` (the invalid value a missing map key
yields), ``type_name`` (Go's type names; a class may name its own with a ``go_type``
attribute), ``truth`` (Go's ``IsTrue``) and ``get_field`` /
``call_field`` (``.Field`` and ``.Method arg``), which raise :class:`ExecError`.
"""

from __future__ import annotations

import datetime as dt
import inspect
import types
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kapa_core.gotemplate.parser import Node

_MISSING: Any = object()
_PRIMITIVES = (bool, int, float, complex, str, bytes, bytearray, list, tuple, dict, set,
               frozenset)

_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_SECOND = 1_000_000_000
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"]
_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]


class _NoValue:
    """Go's invalid ``reflect.Value``: a missing map key read as a field (``<no value>``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_VALUE"

    def __bool__(self) -> bool:
        return False


NO_VALUE: Any = _NoValue()

_TYPE_NAMES: dict[type, str] = {
    bool: "bool", int: "int", float: "float64", str: "string", complex: "complex128",
    bytes: "[]uint8", bytearray: "[]uint8", list: "[]interface {}", tuple: "[]interface {}",
    dict: "map[string]interface {}"}


def type_name(value: Any) -> str:
    """Go's ``reflect.TypeOf(value).String()`` for a template value."""
    if value is None or value is NO_VALUE:
        return "<nil>"
    cls = type(value)
    name = _TYPE_NAMES.get(cls)
    if name is not None:
        return name
    go_type = getattr(cls, "go_type", None)
    if isinstance(go_type, str):
        return go_type
    for base, base_name in _TYPE_NAMES.items():
        if isinstance(value, base):
            return base_name
    if callable(value):
        return "func"
    return cls.__name__


def truth(value: Any) -> bool:
    """Go's ``IsTrue``: zero values, nil and empty containers are false, structs are true."""
    if value is None or value is NO_VALUE or value is False:
        return False
    cls = type(value)
    if cls is str or cls is list or cls is dict or cls is tuple:
        return len(value) > 0
    if cls is int or cls is float or cls is bool:
        nonzero: bool = value != 0
        return nonzero
    if isinstance(value, str | bytes | bytearray | list | tuple | dict):
        return len(value) > 0
    if isinstance(value, int | float | complex):
        return value != 0
    return True


class ExecError(Exception):
    """An execution error; ``node`` (and the template it is in) are filled in on the way up."""

    def __init__(self, msg: str, node: Node | None = None, tmpl: str = "") -> None:
        super().__init__(msg)
        self.msg, self.node, self.tmpl = msg, node, tmpl


def attach(exc: ExecError, node: Node, tmpl: str) -> None:
    if exc.node is None:
        exc.node, exc.tmpl = node, tmpl


# -- fields and methods, as Go's reflection reads them ----------------------------------------
_MAP_METHODS: dict[type, frozenset[str]] = {dict: frozenset()}
PLAIN_MAPS: set[type] = {dict}  # dict classes without methods: ``.key`` is just a lookup


def _map_methods(cls: type) -> frozenset[str]:
    """Methods a dict subclass adds (Go looks up methods before map keys)."""
    methods = _MAP_METHODS.get(cls)
    if methods is None:
        methods = _MAP_METHODS[cls] = frozenset(
            name for klass in cls.__mro__ if klass is not dict and klass is not object
            for name, value in vars(klass).items()
            if not name.startswith("_") and isinstance(value, types.FunctionType))
        if not methods:
            PLAIN_MAPS.add(cls)
    return methods


def arity(func: Callable[..., Any]) -> tuple[int, int | None] | None:
    """(required, maximum or None if variadic) positional arguments, None if unknown."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return None
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = sum(1 for p in positional if p.default is p.empty)
    variadic = any(p.kind == p.VAR_POSITIONAL for p in params)
    return required, None if variadic else len(positional)


def arity_error(name: str, spec: tuple[int, int | None], given: int, listed: int) -> str | None:
    low, high = spec
    if high is None:
        if given < low:
            return f"wrong number of args for {name}: want at least {low} got {listed}"
    elif not low <= given <= high:
        want = str(low) if low == high else f"{low} to {high}"
        return f"wrong number of args for {name}: want {want} got {given}"
    return None


def error_text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def invoke(func: Callable[..., Any], name: str, args: Sequence[Any]) -> Any:
    """Call a Go method or function: Python errors become Go's ``error calling``."""
    try:
        return func(*args)
    except (ExecError, RecursionError):
        raise
    except TypeError as exc:
        spec = arity(func)
        if spec is not None:
            message = arity_error(name, spec, len(args), len(args))
            if message:
                raise ExecError(message) from None
        raise ExecError(f"error calling {name}: {error_text(exc)}") from None
    except Exception as exc:
        raise ExecError(f"error calling {name}: {error_text(exc)}") from None


def _attribute(recv: Any, name: str, args: list[Any] | None) -> Any:
    cls = type(recv)
    attr = _MISSING
    blocked = name.startswith("_") or cls in _PRIMITIVES or (
        isinstance(recv, _PRIMITIVES)
        and any(hasattr(base, name) for base in _PRIMITIVES if isinstance(recv, base)))
    if not blocked:
        try:
            attr = getattr(recv, name, _MISSING)
        except Exception as exc:
            raise ExecError(error_text(exc)) from None
    if attr is _MISSING:
        raise ExecError(f"can't evaluate field {name} in type {type_name(recv)}")
    if callable(attr) and getattr(attr, "__self__", None) is recv:  # a method
        return invoke(attr, name, [None if a is NO_VALUE else a for a in args or ()])
    if args:
        raise ExecError(f"{name} has arguments but cannot be invoked as function")
    return attr


def get_field(recv: Any, name: str) -> Any:
    """``recv.name`` as Go evaluates a field with no arguments (methods are called)."""
    if isinstance(recv, dict):
        if type(recv) not in PLAIN_MAPS and name in _map_methods(type(recv)):
            return invoke(getattr(recv, name), name, ())
        return recv.get(name, NO_VALUE)
    if recv is NO_VALUE:
        return NO_VALUE
    if recv is None:
        raise ExecError(f"nil pointer evaluating interface {{}}.{name}")
    return _attribute(recv, name, None)


def call_field(recv: Any, name: str, args: list[Any]) -> Any:
    """``recv.name arg...``: only a method can take arguments."""
    if isinstance(recv, dict):
        if name in _map_methods(type(recv)):
            return invoke(getattr(recv, name), name, [None if a is NO_VALUE else a for a in args])
        raise ExecError(f"{name} is not a method but has arguments")
    if recv is NO_VALUE:
        return NO_VALUE
    if recv is None:
        raise ExecError(f"nil pointer evaluating interface {{}}.{name}")
    return _attribute(recv, name, args)


class StringMap(dict[str, str]):
    """A Go ``map[string]string``: ``index`` of a missing key gives ``""``, not nil."""

    go_type = "map[string]string"


class Month(int):
    """``time.Month``: an int that prints as its English name."""

    go_type = "time.Month"

    def go_string(self) -> str:
        return _MONTHS[self - 1] if 1 <= self <= 12 else f"%!Month({int(self)})"

    def String(self) -> str:
        return self.go_string()


class Weekday(int):
    """``time.Weekday``: Sunday is 0; prints as its English name."""

    go_type = "time.Weekday"

    def go_string(self) -> str:
        return _DAYS[self] if 0 <= self <= 6 else f"%!Weekday({int(self)})"

    def String(self) -> str:
        return self.go_string()


def format_duration(ns: int) -> str:
    """Go's ``time.Duration.String()``: ``1h2m3.5s``, ``1.5ms``, ``0s``."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = -ns if ns < 0 else ns
    if u < _SECOND:
        for unit, scale, digits in (("ns", 1, 0), ("µs", 1_000, 3), ("ms", 1_000_000, 6)):
            if u < scale * 1000:
                return sign + _decimal(u, digits) + unit
    hours, rest = divmod(u, 3600 * _SECOND)
    minutes, rest = divmod(rest, 60 * _SECOND)
    text = f"{hours}h{minutes}m" if hours else f"{minutes}m" if minutes else ""
    return sign + text + _decimal(rest, 9) + "s"


def _decimal(value: int, digits: int) -> str:
    """``value / 10**digits`` in decimal, without trailing zeros in the fraction."""
    if not digits:
        return str(value)
    whole, frac = divmod(value, 10 ** digits)
    if not frac:
        return str(whole)
    return f"{whole}." + f"{frac:0{digits}d}".rstrip("0")


class Duration(int):
    """A ``time.Duration`` (what ``Time.Sub`` gives): nanoseconds that print as Go's."""

    __slots__ = ()
    go_type = "time.Duration"

    def __str__(self) -> str:
        return format_duration(self)

    def __repr__(self) -> str:
        return f"Duration({format_duration(self)!r})"

    def go_string(self) -> str:
        return format_duration(self)


class _Parts:
    __slots__ = ("day", "hour", "minute", "month", "nanos", "second", "weekday", "yday", "year")

    def __init__(self, ns: int) -> None:
        secs, self.nanos = divmod(ns, _SECOND)
        days, rest = divmod(secs, 86400)
        date = dt.date.fromordinal(_EPOCH_ORDINAL + days)
        self.year, self.month, self.day = date.year, date.month, date.day
        self.yday = date.timetuple().tm_yday
        self.weekday = (date.weekday() + 1) % 7
        self.hour, rest = divmod(rest, 3600)
        self.minute, self.second = divmod(rest, 60)


class GoTime:
    """A UTC instant in Unix nanoseconds, with the ``time.Time`` methods templates use."""

    __slots__ = ("ns",)
    go_type = "time.Time"

    def __init__(self, ns: int) -> None:
        self.ns = int(ns)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GoTime) and other.ns == self.ns

    def __hash__(self) -> int:
        return hash(self.ns)

    def __lt__(self, other: GoTime) -> bool:
        return self.ns < other.ns

    def __repr__(self) -> str:
        return f"GoTime({self.ns})"

    def __str__(self) -> str:
        return self.go_string()

    def go_string(self) -> str:
        """Go's ``Time.String()`` in UTC."""
        return format_layout(self.ns, "2006-01-02 15:04:05.999999999 -0700 MST")

    def unix_nano(self) -> int:
        return self.ns

    # -- methods a template may call (Go's names) ------------------------------------------
    def String(self) -> str:
        return self.go_string()

    def Format(self, layout: str) -> str:
        return format_layout(self.ns, layout)

    def Unix(self) -> int:
        return self.ns // _SECOND

    def UnixMilli(self) -> int:
        return self.ns // 1_000_000

    def UnixMicro(self) -> int:
        return self.ns // 1_000

    def UnixNano(self) -> int:
        return self.ns

    def UTC(self) -> GoTime:
        return self

    def Year(self) -> int:
        return _Parts(self.ns).year

    def Month(self) -> Month:
        return Month(_Parts(self.ns).month)

    def Day(self) -> int:
        return _Parts(self.ns).day

    def YearDay(self) -> int:
        return _Parts(self.ns).yday

    def Hour(self) -> int:
        return _Parts(self.ns).hour

    def Minute(self) -> int:
        return _Parts(self.ns).minute

    def Second(self) -> int:
        return _Parts(self.ns).second

    def Nanosecond(self) -> int:
        return self.ns % _SECOND

    def Weekday(self) -> Weekday:
        return Weekday(_Parts(self.ns).weekday)

    def Add(self, d: int) -> GoTime:
        return GoTime(self.ns + int(d))

    def Sub(self, other: GoTime) -> Duration:
        return Duration(self.ns - other.ns)

    def Equal(self, other: GoTime) -> bool:
        return self.ns == other.ns

    def Before(self, other: GoTime) -> bool:
        return self.ns < other.ns

    def After(self, other: GoTime) -> bool:
        return self.ns > other.ns


# -- Format -----------------------------------------------------------------------------------
def _pad(value: int, width: int, fill: str = "0") -> str:
    return str(value).rjust(width, fill)


def _hour12(p: _Parts) -> int:
    return p.hour % 12 or 12


# Layout elements in the order Go's nextStdChunk tries them at each position.
_STD: list[tuple[str, Callable[[_Parts], str] | None]] = [
    ("January", lambda p: _MONTHS[p.month - 1]), ("Monday", lambda p: _DAYS[p.weekday]),
    ("MST", lambda p: "UTC"), ("2006", lambda p: _pad(p.year, 4)),
    ("_2006", None), ("002", lambda p: _pad(p.yday, 3)), ("__2", lambda p: _pad(p.yday, 3, " ")),
    ("01", lambda p: _pad(p.month, 2)), ("02", lambda p: _pad(p.day, 2)),
    ("03", lambda p: _pad(_hour12(p), 2)), ("04", lambda p: _pad(p.minute, 2)),
    ("05", lambda p: _pad(p.second, 2)), ("06", lambda p: _pad(p.year % 100, 2)),
    ("15", lambda p: _pad(p.hour, 2)), ("_2", lambda p: _pad(p.day, 2, " ")),
    ("PM", lambda p: "PM" if p.hour >= 12 else "AM"),
    ("pm", lambda p: "pm" if p.hour >= 12 else "am"),
    ("-07:00:00", lambda p: "+00:00:00"), ("-070000", lambda p: "+000000"),
    ("-07:00", lambda p: "+00:00"), ("-0700", lambda p: "+0000"), ("-07", lambda p: "+00"),
    ("Z07:00:00", lambda p: "Z"), ("Z070000", lambda p: "Z"), ("Z07:00", lambda p: "Z"),
    ("Z0700", lambda p: "Z"), ("Z07", lambda p: "Z"),
    ("1", lambda p: str(p.month)), ("2", lambda p: str(p.day)),
    ("3", lambda p: str(_hour12(p))), ("4", lambda p: str(p.minute)),
    ("5", lambda p: str(p.second)),
]
_STARTS = frozenset(token[0] for token, _ in _STD) | {".", ","}


def format_layout(ns: int, layout: str) -> str:
    """``time.Time.Format(layout)`` for the UTC instant ``ns``."""
    parts = _Parts(ns)
    out: list[str] = []
    i = 0
    n = len(layout)
    while i < n:
        c = layout[i]
        if c not in _STARTS:
            out.append(c)
            i += 1
            continue
        if c in ".," and i + 1 < n and layout[i + 1] in "09":
            j = i + 1
            while j < n and layout[j] == layout[i + 1]:
                j += 1
            if j >= n or not "0" <= layout[j] <= "9":  # a run of 0s or 9s: fractional seconds
                digits = f"{parts.nanos:09d}"[:j - i - 1]
                if layout[i + 1] == "9":
                    digits = digits.rstrip("0")
                out.append(c + digits if digits else "")
                i = j
                continue
        for token, render in _STD:
            if not layout.startswith(token, i):
                continue
            end = i + len(token)
            if render is None:  # "_2006" is a literal underscore before the year
                out.append("_")
                end = i + 1
            else:
                out.append(render(parts))
            i = end
            break
        else:
            if layout.startswith("Jan", i) and not layout[i + 3:i + 4].islower():
                out.append(_MONTHS[parts.month - 1][:3])
                i += 3
            elif layout.startswith("Mon", i) and not layout[i + 3:i + 4].islower():
                out.append(_DAYS[parts.weekday][:3])
                i += 3
            else:
                out.append(c)
                i += 1
    return "".join(out)

"""The built-in functions of TICKscript lambdas (Kapacitor's ``tick/stateful``).

Stateless functions are plain Python functions with a declared signature; stateful ones
(``count``, ``sigma``, ``spread``) are classes instantiated once per lambda, so their
state lives as long as the node that owns the lambda.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable
from typing import Any

from kapa_core.models.duration import Duration
from kapa_core.models.gojson import plain_float
from kapa_core.tick import gomath, gostrings
from kapa_core.tick.regex import is_regex
from kapa_core.tick.values import MISSING, Time, type_name


class EvalError(Exception):
    """A lambda could not be evaluated for one point (counted, the task goes on)."""


def _num(name: str, value: Any) -> float:
    if isinstance(value, float):
        return value
    raise EvalError(f"{name}: expected float argument, got {type_name(value)} "
                    "(use float() to convert)")


def _str(name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    raise EvalError(f"{name}: expected string argument, got {type_name(value)}")


def _int(name: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool | Duration | Time):
        return value
    raise EvalError(f"{name}: expected int argument, got {type_name(value)}")


def _time(name: str, value: Any) -> Time:
    if isinstance(value, Time):
        return value
    raise EvalError(f"{name}: expected time argument, got {type_name(value)}")


def _arity(name: str, args: tuple[Any, ...], n: int) -> None:
    if len(args) != n:
        raise EvalError(f"{name} expects exactly {n} argument(s), got {len(args)}")


def fn_bool(*args: Any) -> bool:
    _arity("bool", args, 1)
    v = args[0]
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        if v in ("1", "t", "T", "TRUE", "true", "True"):
            return True
        if v in ("0", "f", "F", "FALSE", "false", "False"):
            return False
        raise EvalError(f"bool: cannot convert string {v!r} to a boolean")
    if isinstance(v, int | float) and not isinstance(v, Duration | Time):
        if v == 0 or v == 1:  # Kapacitor converts only 0 and 1
            return v == 1
        raise EvalError(f"cannot convert {_go_float(v) if isinstance(v, float) else v} to "
                        "boolean")
    raise EvalError(f"bool: cannot convert {type_name(v)} to a boolean")


def fn_int(*args: Any) -> int:
    _arity("int", args, 1)
    v = args[0]
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, Time):
        raise EvalError("cannot convert time.Time to integer")
    if isinstance(v, Duration):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise EvalError(f"int: cannot convert {v} to an int")
        n = int(v)
        # Go's int64(float64) outside int64's range gives the smallest int64 (amd64)
        return n if -(1 << 63) <= n < (1 << 63) else -(1 << 63)
    if isinstance(v, str):  # Go's strconv.ParseInt(s, 10, 64): no spaces, no "_"
        if _GO_INT.fullmatch(v):
            n = int(v)
            if -(1 << 63) <= n < (1 << 63):
                return n
            raise EvalError(f'strconv.ParseInt: parsing "{v}": value out of range')
        raise EvalError(f'strconv.ParseInt: parsing "{v}": invalid syntax')
    raise EvalError(f"int: cannot convert {type_name(v)} to an int")


def fn_float(*args: Any) -> float:
    _arity("float", args, 1)
    v = args[0]
    if isinstance(v, bool | int | float) and not isinstance(v, Duration | Time):
        return float(v)
    if isinstance(v, str):
        return _parse_go_float(v)
    raise EvalError(f"float: cannot convert {type_name(v)} to a float")


_GO_INT = re.compile(r"[+-]?[0-9]+")
_DIGITS = r"[0-9](?:_?[0-9])*"  # Go allows "_" between digits in ParseFloat
_GO_FLOAT = re.compile(rf"[+-]?(?:(?:{_DIGITS}(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})"
                       rf"(?:[eE][+-]?{_DIGITS})?|inf|infinity|nan)", re.IGNORECASE)
_GO_HEX_FLOAT = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)"
                           r"[pP][+-]?[0-9]+")


def _parse_go_float(text: str) -> float:
    """Go's strconv.ParseFloat(s, 64): no spaces, "_" only between digits; hex with a p
    exponent; a value beyond float64 is an error."""
    if _GO_HEX_FLOAT.fullmatch(text):
        try:
            return float.fromhex(text)
        except OverflowError:
            raise EvalError(f'strconv.ParseFloat: parsing "{text}": value out of range') \
                from None
    if not _GO_FLOAT.fullmatch(text):
        raise EvalError(f'strconv.ParseFloat: parsing "{text}": invalid syntax')
    value = float(text.replace("_", ""))
    if math.isinf(value) and "n" not in text.lower():
        raise EvalError(f'strconv.ParseFloat: parsing "{text}": value out of range')
    return value


def fn_string(*args: Any) -> str:
    _arity("string", args, 1)
    v = args[0]
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Duration):
        return _influxql_duration(int(v))
    if isinstance(v, float):
        return _go_float(v)
    if isinstance(v, int | str):
        return str(v)
    raise EvalError(f"string: cannot convert {type_name(v)} to a string")


_go_float = plain_float  # Go's strconv.FormatFloat(v, 'f', -1, 64)


_DURATION_UNITS = ((7 * 24 * 3600 * 10**9, "w"), (24 * 3600 * 10**9, "d"),
                   (3600 * 10**9, "h"), (60 * 10**9, "m"), (10**9, "s"), (10**6, "ms"))


def _influxql_duration(ns: int) -> str:
    """How string() writes a duration: InfluxQL's largest whole unit (``90s``, ``5m``)."""
    if ns == 0:
        return "0s"
    for size, unit in _DURATION_UNITS:
        if ns % size == 0:
            return f"{ns // size}{unit}"
    q = abs(ns) // 1000
    return f"{q if ns > 0 else -q}u"


def fn_duration(*args: Any) -> Duration:
    """duration(d), duration(int or float, unit), duration('1m30s') (unit ignored)."""
    if len(args) not in (1, 2):
        raise EvalError("duration expects one or two arguments duration(value, unit) where "
                        "unit is optional depending on the type of value.")
    value = args[0]
    if isinstance(value, Duration):
        return value
    if len(args) != 2:  # Kapacitor's signatures: (duration) or (int|float|string, duration)
        raise EvalError(f"duration: no signature takes a single {go_type(value)}")
    if isinstance(value, str):
        ns = _parse_influxql_duration(value)
        if ns is None:
            raise EvalError(f"invalid duration string {go_quote(value)}")
        return Duration(ns)
    if isinstance(value, bool | Time) or not isinstance(value, int | float):
        raise EvalError(f"cannot convert {go_type(value)} to duration")
    if len(args) != 2:
        raise EvalError("duration expects unit argument for int and float values")
    unit = args[1]
    if not isinstance(unit, Duration):
        raise EvalError(f"invalid duration unit type: {go_type(unit)}")
    if isinstance(value, float):
        scaled = value * float(unit)
        if math.isnan(scaled) or math.isinf(scaled):
            raise EvalError(f"duration: cannot convert {value} to a duration")
        n = int(scaled)
    else:
        n = value * int(unit)
    return Duration(n if -(1 << 63) <= n < (1 << 63) else -(1 << 63))


_INFLUXQL_UNITS = {"u": 1000, "µ": 1000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
                   "h": 3600 * 10**9, "d": 24 * 3600 * 10**9, "w": 7 * 24 * 3600 * 10**9}


def _parse_influxql_duration(text: str) -> int | None:
    """InfluxQL's ParseDuration: ``-``? then (digits unit)+, units u µ ms s m h d w."""
    if len(text) < 2:
        return None
    i = 0
    negative = text[0] == "-"
    if negative:
        i = 1
    total = 0
    while i < len(text):
        start = i
        while i < len(text) and "0" <= text[i] <= "9":
            i += 1
        if i >= len(text) or i == start:
            return None
        n = int(text[start:i])
        if text.startswith("ms", i):
            unit, i = "ms", i + 2
        else:
            unit, i = text[i], i + 1
        if unit not in _INFLUXQL_UNITS:
            return None
        total += n * _INFLUXQL_UNITS[unit]
    return -total if negative else total


def go_type(value: Any) -> str:
    """The Go type name Kapacitor's messages use for a value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Duration):
        return "time.Duration"
    if isinstance(value, Time):
        return "time.Time"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    return type_name(value)


def go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _math1(name: str, fn: Callable[[float], float]) -> Callable[..., float]:
    def call(*args: Any) -> float:
        _arity(name, args, 1)
        try:
            return float(fn(_num(name, args[0])))
        except (ValueError, OverflowError):
            return math.nan
    return call


def _math2(name: str, fn: Callable[[float, float], float]) -> Callable[..., float]:
    def call(*args: Any) -> float:
        _arity(name, args, 2)
        try:
            return float(fn(_num(name, args[0]), _num(name, args[1])))
        except (ValueError, OverflowError, ZeroDivisionError):
            return math.nan
    return call


def _bessel(kind: str, n: int) -> Callable[[float], float]:
    def unavailable(x: float) -> float:
        raise EvalError(f"{kind}{n}: Bessel functions need scipy, which kapa-core does "
                        "not depend on")
    return unavailable


def _str_fn(name: str, fn: Callable[..., Any], kinds: str) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        _arity(name, args, len(kinds))
        checked = []
        for kind, arg in zip(kinds, args, strict=True):
            checked.append(_str(name, arg) if kind == "s" else _int(name, arg))
        return fn(*checked)
    return call


# Go strings are bytes: lengths, indexes and substrings count UTF-8 bytes.
def _utf8(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def _substring(s: str, start: int, stop: int) -> str:
    raw = _utf8(s)
    if start < 0:
        raise EvalError(f"found negative index for strSubstring: {start}")
    if stop < 0:
        raise EvalError(f"found negative index for strSubstring: {stop}")
    if stop >= len(raw):  # sic: Kapacitor refuses a stop at the end of the string
        raise EvalError(f"stop index too large for string in strSubstring: {stop}")
    if start > stop:
        raise EvalError(f"runtime error: slice bounds out of range [{start}:{stop}]")
    return raw[start:stop].decode("utf-8", "surrogateescape")


def _byte_index(s: str, i: int) -> int:
    return i if i < 0 or s.isascii() else len(_utf8(s[:i]))


def _index(s: str, sub: str) -> int:
    return _byte_index(s, s.find(sub))


def _last_index(s: str, sub: str) -> int:
    return _byte_index(s, s.rfind(sub))


def _length(s: str) -> int:
    return len(s) if s.isascii() else len(_utf8(s))


def _replace(s: str, old: str, new: str, n: int) -> str:
    return s.replace(old, new) if n < 0 else s.replace(old, new, n)


def _index_any(s: str, chars: str) -> int:
    positions = [s.find(c) for c in chars if c in s]
    return _byte_index(s, min(positions)) if positions else -1


def _last_index_any(s: str, chars: str) -> int:
    positions = [s.rfind(c) for c in chars if c in s]
    return _byte_index(s, max(positions)) if positions else -1


def fn_regex_replace(*args: Any) -> str:
    _arity("regexReplace", args, 3)
    pattern, s, repl = args
    if not is_regex(pattern):
        raise EvalError("regexReplace: the first argument must be a regex")
    template = _str("regexReplace", repl)
    if "$" not in template:
        return pattern.sub(lambda m: template, _str("regexReplace", s))
    parts = _go_template(template)
    names = getattr(pattern, "groupindex", {})
    groups = getattr(pattern, "groups", 0)

    def expand(m: Any) -> str:
        out = []
        for literal, name in parts:
            out.append(literal)
            if name is None:
                continue
            if name.isdigit():
                index = int(name)
                value = m.group(index) if index <= groups else None
            else:
                value = m.group(name) if name in names else None
            out.append(value or "")
        return "".join(out)
    return pattern.sub(expand, _str("regexReplace", s))


_TEMPLATE_NAME = re.compile(r"\$(?:\$|\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")


def _go_template(template: str) -> list[tuple[str, str | None]]:
    """Go's Regexp.Expand syntax: ``$$`` is a dollar, ``$name`` takes the longest run of
    letters, digits and underscores (``$1x`` is the group named "1x"), ``${name}``;
    an unknown group expands to nothing. (literal, group name or None) pairs."""
    parts: list[tuple[str, str | None]] = []
    literal = ""
    pos = 0
    for m in _TEMPLATE_NAME.finditer(template):
        literal += template[pos:m.start()]
        pos = m.end()
        if m.group(0) == "$$":
            literal += "$"
            continue
        parts.append((literal, m.group(1) or m.group(2)))
        literal = ""
    parts.append((literal + template[pos:], None))
    return parts


def fn_human_bytes(*args: Any) -> str:
    """go-humanize's Bytes of the value as Go's uint64 conversion gives it."""
    _arity("humanBytes", args, 1)
    v = args[0]
    if isinstance(v, bool) or not isinstance(v, int | float) or isinstance(v, Duration | Time):
        raise EvalError(f"humanBytes: expected a number, got {type_name(v)}")
    size = _go_uint64(v)
    if size < 10:
        return f"{size} B"
    e = math.floor(gomath.log(float(size)) / gomath.log(1000.0))
    value = math.floor(float(size) / gomath.pow(1000.0, float(e)) * 10 + 0.5) / 10
    text = f"{value:.0f}" if value >= 10 else f"{value:.1f}"
    return f"{text} {('B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB')[int(e)]}"


def _go_uint64(v: int | float) -> int:
    """uint64(v) as Go on amd64 converts an int64 or a float64."""
    mask = (1 << 64) - 1
    if isinstance(v, int):
        return v & mask
    if math.isnan(v):
        return 1 << 63
    if v < 2.0 ** 63:
        n = int(v) if v > -(2.0 ** 63) else -(1 << 63)
        return n & mask
    n = int(v - 2.0 ** 63)
    n = n if n < (1 << 63) else -(1 << 63)
    return (n & mask) | (1 << 63)


def _time_part(name: str, part: Callable[[Any], int]) -> Callable[..., int]:
    def call(*args: Any) -> int:
        _arity(name, args, 1)
        return part(_time(name, args[0]).to_datetime())
    return call


def fn_unix_nano(*args: Any) -> int:
    _arity("unixNano", args, 1)
    return int(_time("unixNano", args[0]))


def fn_now(*args: Any) -> Time:
    _arity("now", args, 0)
    return Time(time.time_ns())


def fn_rand(*args: Any) -> int:
    if not args:
        return random.getrandbits(63)
    _arity("rand", args, 1)
    return random.randrange(_int("rand", args[0]))


STATELESS: dict[str, Callable[..., Any]] = {
    "bool": fn_bool, "int": fn_int, "float": fn_float, "string": fn_string,
    "duration": fn_duration, "regexReplace": fn_regex_replace, "humanBytes": fn_human_bytes,
    "unixNano": fn_unix_nano, "now": fn_now, "rand": fn_rand,
    "minute": _time_part("minute", lambda d: d.minute),
    "hour": _time_part("hour", lambda d: d.hour),
    "weekday": _time_part("weekday", lambda d: (d.weekday() + 1) % 7),
    "day": _time_part("day", lambda d: d.day),
    "month": _time_part("month", lambda d: d.month),
    "year": _time_part("year", lambda d: d.year),
    "strContains": _str_fn("strContains", lambda s, t: t in s, "ss"),
    "strContainsAny": _str_fn("strContainsAny", lambda s, t: any(c in s for c in t), "ss"),
    "strHasPrefix": _str_fn("strHasPrefix", str.startswith, "ss"),
    "strHasSuffix": _str_fn("strHasSuffix", str.endswith, "ss"),
    "strCount": _str_fn("strCount", lambda s, t: s.count(t) if t else len(s) + 1, "ss"),
    "strIndex": _str_fn("strIndex", _index, "ss"),
    "strIndexAny": _str_fn("strIndexAny", _index_any, "ss"),
    "strLastIndex": _str_fn("strLastIndex", _last_index, "ss"),
    "strLastIndexAny": _str_fn("strLastIndexAny", _last_index_any, "ss"),
    "strLength": _str_fn("strLength", _length, "s"),
    "strReplace": _str_fn("strReplace", _replace, "sssi"),
    "strSubstring": _str_fn("strSubstring", _substring, "sii"),
    "strToLower": _str_fn("strToLower", gostrings.to_lower, "s"),
    "strToUpper": _str_fn("strToUpper", gostrings.to_upper, "s"),
    "strTrimSpace": _str_fn("strTrimSpace", str.strip, "s"),
    "strTrim": _str_fn("strTrim", lambda s, c: s.strip(c), "ss"),
    "strTrimLeft": _str_fn("strTrimLeft", lambda s, c: s.lstrip(c), "ss"),
    "strTrimRight": _str_fn("strTrimRight", lambda s, c: s.rstrip(c), "ss"),
    "strTrimPrefix": _str_fn("strTrimPrefix", str.removeprefix, "ss"),
    "strTrimSuffix": _str_fn("strTrimSuffix", str.removesuffix, "ss"),
    "atan2": _math2("atan2", gomath.atan2), "hypot": _math2("hypot", gomath.hypot),
    "max": _math2("max", gomath.fmax), "min": _math2("min", gomath.fmin), "mod": _math2("mod", math.fmod),
    "pow": _math2("pow", gomath.pow),
}
_MATH1: dict[str, Callable[[float], float]] = {
    "abs": abs, "acos": gomath.acos, "acosh": gomath.acosh, "asin": gomath.asin,
    "asinh": gomath.asinh, "atan": gomath.atan, "atanh": gomath.atanh, "cbrt": gomath.cbrt,
    "ceil": math.ceil, "cos": gomath.cos, "cosh": gomath.cosh, "erf": gomath.erf,
    "erfc": gomath.erfc, "exp": gomath.exp, "exp2": gomath.exp2, "expm1": gomath.expm1,
    "floor": math.floor, "gamma": gomath.gamma, "log": gomath.log, "log10": gomath.log10,
    "log1p": gomath.log1p, "log2": gomath.log2, "logb": gomath.logb, "sin": gomath.sin,
    "sinh": gomath.sinh, "sqrt": math.sqrt, "tan": gomath.tan, "tanh": gomath.tanh,
    "trunc": math.trunc, "j0": _bessel("j", 0), "j1": _bessel("j", 1), "y0": _bessel("y", 0),
    "y1": _bessel("y", 1),
}
for _name, _fn in _MATH1.items():
    STATELESS[_name] = _math1(_name, _fn)


def fn_pow10(*args: Any) -> float:
    _arity("pow10", args, 1)
    return gomath.pow10(_int("pow10", args[0]))


STATELESS["pow10"] = fn_pow10


class Count:
    """``count()``: how many times this lambda has been evaluated."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, *args: Any) -> int:
        _arity("count", args, 0)
        self.n += 1
        return self.n


class Sigma:
    """``sigma(x)``: how many standard deviations x is from the running mean."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    def __call__(self, *args: Any) -> float:
        _arity("sigma", args, 1)
        x = _num("sigma", args[0])
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)
        if self.n < 2:
            return 0.0
        stddev = math.sqrt(self.m2 / (self.n - 1))
        return 0.0 if stddev == 0 else abs(x - self.mean) / stddev


class Spread:
    """``spread(x)``: running maximum minus running minimum."""

    def __init__(self) -> None:
        self.low = math.inf
        self.high = -math.inf

    def __call__(self, *args: Any) -> float:
        _arity("spread", args, 1)
        x = _num("spread", args[0])
        self.low = min(self.low, x)
        self.high = max(self.high, x)
        return self.high - self.low


STATEFUL: dict[str, type] = {"count": Count, "sigma": Sigma, "spread": Spread}
#: Functions that receive the missing value instead of failing on it.
SPECIAL = {"isPresent", "if"}
NAMES = frozenset(STATELESS) | frozenset(STATEFUL) | SPECIAL

__all__ = ["MISSING", "NAMES", "STATEFUL", "STATELESS", "EvalError"]

"""Go's ``fmt``: ``%v`` printing of values and ``printf`` verbs."""

from __future__ import annotations

import math
import re
from typing import Any


def go_float(f: float, verb: str = "v") -> str:
    """``%v`` of a float64: shortest repr, exponent when exp < -4 or >= 21."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    sign = "-" if f < 0 else ""
    point = _decimal_point(abs(f))
    digits = _shortest_digits(abs(f))
    exponent = point - 1
    if exponent < -4 or exponent >= 21:
        m = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{m}e{'+' if exponent >= 0 else '-'}{abs(exponent):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _shortest_digits(f: float) -> str:
    r = repr(f)
    mantissa = r.split("e")[0]
    return mantissa.replace(".", "").lstrip("0").rstrip("0") or "0"


def _decimal_point(f: float) -> int:
    """Position of the decimal point relative to the shortest digits."""
    r = repr(f)
    mantissa, _, exp = r.partition("e")
    whole, _, frac = mantissa.partition(".")
    e = int(exp) if exp else 0
    if whole.strip("0"):
        return len(whole.lstrip("0")) + e
    lead = len(frac) - len(frac.lstrip("0"))
    return -lead + e


def go_format(value: Any, plus: bool = False) -> str:
    """``%v`` (``%+v`` with ``plus``) of a value."""
    if value is None:
        return "<nil>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    go_string = getattr(value, "go_string", None)
    if go_string is not None:
        return go_string()
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: (str(type(kv[0])), kv[0]))
        return "map[" + " ".join(f"{go_format(k)}:{go_format(v)}" for k, v in items) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    return str(value)


def _type_name(value: Any) -> str:
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list | tuple):
        return "[]interface {}"
    return type(value).__name__


def _quote(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


VERB = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d*))?([a-zA-Z%])")


def _pad(text: str, flags: str, width: int | None) -> str:
    if width is None or len(text) >= width:
        return text
    if "-" in flags:
        return text.ljust(width)
    if "0" in flags and text[:1] in "+-" and text[1:2].isdigit():
        return text[0] + text[1:].rjust(width - 1, "0")
    if "0" in flags:
        return text.rjust(width, "0")
    return text.rjust(width)


def _bad(verb: str, value: Any) -> str:
    return f"%!{verb}({_type_name(value)}={go_format(value)})"


def _one(verb: str, flags: str, width: int | None, prec: int | None, value: Any) -> str:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    is_num = is_int or isinstance(value, float)
    if verb == "v":
        text = go_format(value, "+" in flags)
        if isinstance(value, float) and prec is not None:
            text = f"{value:.{prec}g}"
        return _pad(text, flags, width)
    if verb == "T":
        return _pad(_type_name(value), flags, width)
    if verb == "t":
        if not isinstance(value, bool):
            return _bad(verb, value)
        return _pad("true" if value else "false", flags, width)
    if verb in "dboxXcU" and is_int:
        n = int(value)
        if verb == "c":
            return _pad(chr(n), flags, width)
        if verb == "U":
            return _pad(f"U+{n:04X}", flags, width)
        base = {"d": "d", "b": "b", "o": "o", "x": "x", "X": "X"}[verb]
        sign = "+" if "+" in flags else (" " if " " in flags else "")
        text = format(n, sign + ("#" if "#" in flags else "") + base)
        if prec is not None:
            neg = text.startswith("-")
            digits = text.lstrip("+- ")
            text = ("-" if neg else sign.strip()) + digits.rjust(prec, "0")
        return _pad(text, flags, width)
    if verb in "eEfFgG" and is_num:
        f = float(value)
        sign = "+" if "+" in flags else (" " if " " in flags else "")
        if math.isnan(f) or math.isinf(f):
            return _pad(go_float(f), flags.replace("0", ""), width)
        p = 6 if prec is None else prec
        if verb in "gG":
            text = go_float(f) if prec is None else format(f, f"{sign}.{p}{verb.lower()}")
            if prec is None and sign and f >= 0:
                text = sign + text
            if verb == "G":
                text = text.upper()
        else:
            text = format(f, f"{sign}.{p}{verb}")
            if verb in "eE":
                text = re.sub(r"([eE][+-])(\d)$", r"\g<1>0\2", text)
        return _pad(text, flags, width)
    if verb in "sqxX" and isinstance(value, str | bytes):
        s = value if isinstance(value, str) else value.decode(errors="replace")
        if verb == "s":
            text = s if prec is None else s[:prec]
        elif verb == "q":
            text = _quote(s)
        else:
            text = s.encode().hex()
            if verb == "X":
                text = text.upper()
        return _pad(text, flags, width)
    if verb == "s":
        return _pad(go_format(value), flags, width) if not is_num and not isinstance(
            value, bool) and value is not None else _bad(verb, value)
    if verb == "q" and is_int:
        return _pad("'" + chr(int(value)) + "'", flags, width)
    return _bad(verb, value)


def sprintf(fmt: str, *args: Any) -> str:
    out = []
    pos = 0
    index = 0
    for m in VERB.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        flags, width_s, prec_s, verb = m.group(1), m.group(2), m.group(3), m.group(4)
        if verb == "%":
            out.append("%")
            continue
        width = prec = None
        if width_s == "*":
            width = int(args[index]) if index < len(args) else None
            index += 1
        elif width_s:
            width = int(width_s)
        if prec_s == "*":
            prec = int(args[index]) if index < len(args) else None
            index += 1
        elif prec_s is not None:
            prec = int(prec_s) if prec_s else 0
        if index >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_one(verb, flags, width, prec, args[index]))
        index += 1
    out.append(fmt[pos:])
    if index < len(args):
        extra = ", ".join(f"{_type_name(a)}={go_format(a)}" for a in args[index:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)

"""JSON written byte for byte as Go's ``encoding/json`` ``Marshal`` writes it, for the
bodies Kapacitor produces that way (httpOut, httpPost, alert events).

The differences from ``json.dumps`` that show in Kapacitor's output:

- floats are the shortest representation, without ``.0`` (``2`` not ``2.0``), in plain
  notation from 1e-6 up to 1e21 and in ``1e-07``-free exponent notation (``1e-7``,
  ``1e+21``) outside it;
- ``<``, ``>``, ``&``, U+2028 and U+2029 are escaped as ``\\u003c``..., other non-ASCII
  characters are written as UTF-8;
- no spaces after separators.

Dict keys are written in the dict's order: a Go map is written with sorted keys, so a
caller sorts what Kapacitor holds in a map (tags, for one).
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from kapa_core.gotemplate.gojson import string as string  # Go's escaping, one copy

_GO_SPECIAL_FLOATS = {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}


def plain_float(value: float) -> str:
    """Go's ``strconv.FormatFloat(value, 'f', -1, 64)``: the shortest digits that read
    back as ``value``, in plain decimal notation (``2``, ``0.00000015``, ``-0``,
    ``NaN``, ``+Inf``)."""
    text = repr(value)
    if "e" in text:
        return format(Decimal(text), "f")
    if text.endswith(".0"):
        return text[:-2]
    return _GO_SPECIAL_FLOATS.get(text, text)


def _digits(value: float) -> tuple[str, int]:
    """The shortest decimal digits of ``abs(value)`` and the exponent ``e`` such that
    the value is ``0.<digits> × 10**e``."""
    text = repr(abs(value))
    mantissa, _, exp = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    if frac == "0":
        frac = ""
    digits = (whole + frac).lstrip("0")
    point = len(whole) + (int(exp) if exp else 0)
    lead = len(whole + frac) - len((whole + frac).lstrip("0"))
    digits = digits.rstrip("0") or "0"
    return digits, point - lead


def number(value: float) -> str:
    """A float as Go's encoding/json writes it (NaN and ±Inf are the caller's problem:
    Go refuses them; kapa-core writes null)."""
    if not math.isfinite(value):
        return "null"
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    digits, exp = _digits(value)
    magnitude = abs(value)
    if 1e-6 <= magnitude < 1e21:
        if exp <= 0:
            return f"{sign}0.{'0' * -exp}{digits}"
        if exp >= len(digits):
            return sign + digits + "0" * (exp - len(digits))
        return f"{sign}{digits[:exp]}.{digits[exp:]}"
    e = exp - 1
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mant}e{'-' if e < 0 else '+'}{abs(e):02d}".replace("e-0", "e-", 1) \
        if abs(e) < 10 else f"{sign}{mant}e{'-' if e < 0 else '+'}{abs(e)}"


def dumps(obj: Any) -> str:
    parts: list[str] = []
    _encode(obj, parts.append)
    return "".join(parts)


def _encode(obj: Any, out: Any) -> None:
    if obj is None:
        out("null")
    elif obj is True:
        out("true")
    elif obj is False:
        out("false")
    elif isinstance(obj, str):
        out(string(obj))
    elif isinstance(obj, int):
        out(int.__repr__(obj))  # a Duration too: Go writes time.Duration as nanoseconds
    elif isinstance(obj, float):
        out(number(obj))
    elif isinstance(obj, dict):
        out("{")
        first = True
        for key, value in obj.items():
            if not first:
                out(",")
            first = False
            out(string(str(key)))
            out(":")
            _encode(value, out)
        out("}")
    elif isinstance(obj, list | tuple):
        out("[")
        for i, value in enumerate(obj):
            if i:
                out(",")
            _encode(value, out)
        out("]")
    else:
        raise TypeError(f"cannot encode {type(obj).__name__} as JSON")

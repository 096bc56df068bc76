"""JSON encoded as Go's ``encoding/json`` encodes it (what ``{{ json . }}`` produces).

Differences from Python's ``json.dumps`` that users can see: no spaces, map keys sorted,
floats without a trailing ``.0`` (``5`` not ``5.0``) and with Go's exponent rules,
``<``, ``>`` and ``&`` escaped as ``\\u003c`` ``\\u003e`` ``\\u0026``, times as RFC3339Nano
strings and durations as integer nanoseconds.
"""

from __future__ import annotations

import math
from typing import Any

from kapa_core.models.batch import format_time
from kapa_core.models.duration import Duration
from kapa_core.models.gojson import number
from kapa_core.models.gojson import string as _string


def go_float(f: float) -> str:
    """A float as encoding/json writes it: plain from 1e-6 up to 1e21, else an exponent
    without a leading zero (``1.5e-7``, ``1e+21``); NaN and infinities are refused."""
    if math.isnan(f) or math.isinf(f):
        raise ValueError(f"json: unsupported value: {f}")
    return number(f)


def dumps(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return _string(value)
    if kind is float:
        return go_float(value)
    if kind is int:  # plain ints before the checks for bool and subclasses below
        return str(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, Duration):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return _string(value)
    if hasattr(value, "unix_nano"):
        return _string(format_time(value.unix_nano()))
    if hasattr(value, "UnixNano"):
        return _string(format_time(value.UnixNano()))
    if isinstance(value, dict):
        keys = value.keys() if getattr(value, "ordered", False) else sorted(value)
        return "{" + ",".join(f"{_string(str(k))}:{dumps(value[k])}" for k in keys) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return _string(str(value))


class Struct(dict[str, Any]):
    """A dict that keeps its key order in JSON, like a Go struct (maps are sorted)."""

    ordered = True

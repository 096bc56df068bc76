"""Go's ``encoding/json`` for template values: what html/template writes for a value in
JavaScript (``<script>var x = {{ . }}</script>``).

``dumps(value)`` writes Go's bytes: no spaces, map keys sorted (a dict whose class sets
``ordered = True`` is a struct and keeps its order), floats in ``strconv``'s shortest form
without ``.0`` (exponent form below 1e-6 and from 1e21: ``1e-7``, ``1e+21``), ``<``, ``>``,
``&``, U+2028 and U+2029 escaped, a ``time.Duration`` as nanoseconds, times (values with
``unix_nano()`` or ``UnixNano()``) as RFC 3339 strings with nanoseconds. NaN and
infinities raise ``ValueError`` as Go's encoder refuses them; values of other types are
written as the JSON string of their ``str()``.
"""

from __future__ import annotations

import math
import re
from typing import Any

from kapa_core.gotemplate.gofmt import format_float
from kapa_core.gotemplate.gotime import format_layout

_RFC3339_NANO = "2006-01-02T15:04:05.999999999Z07:00"

# Go's escapes: short forms for quote, backslash, newline, carriage return and tab;
# \u00XX for every other control character; and the HTML-safe \u003c \u003e \u0026
# \u2028 \u2029.
_ESCAPES = {c: f"\\u{c:04x}" for c in range(0x20)}
_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\", ord("\n"): "\\n", ord("\r"): "\\r",
                 ord("\t"): "\\t", ord("<"): "\\u003c", ord(">"): "\\u003e",
                 ord("&"): "\\u0026", 0x2028: "\\u2028", 0x2029: "\\u2029"})
_SPECIAL = re.compile('[\x00-\x1f"\\\\<>&\u2028\u2029]')
_SURROGATE = re.compile("[\ud800-\udfff]")


def string(text: str) -> str:
    """A JSON string as Go writes it (a lone surrogate becomes U+FFFD, as Go's invalid
    UTF-8 does)."""
    if _SPECIAL.search(text) is not None:
        text = text.translate(_ESCAPES)
    if _SURROGATE.search(text) is not None:
        text = _SURROGATE.sub("\ufffd", text)
    return '"' + text + '"'


def number(value: float) -> str:
    """A float as Go's encoder writes it; NaN and infinities raise ``ValueError``."""
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"json: unsupported value: {value}")
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = format_float(value, "e", -1)
        if text[-4:-1] == "e-0":  # e-07 is written e-7
            text = text[:-2] + text[-1]
        return text
    return format_float(value, "f", -1)


def dumps(value: Any) -> str:
    """``json.Marshal(value)`` as text."""
    kind = type(value)
    if kind is str:
        return string(value)
    if kind is float:
        return number(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        if getattr(kind, "go_type", None) == "time.Duration":
            return str(int(value))  # nanoseconds, not the Duration's text
        return str(value)
    if isinstance(value, float):
        return number(value)
    if isinstance(value, str):
        return string(value)
    if hasattr(value, "unix_nano"):
        return string(format_layout(value.unix_nano(), _RFC3339_NANO))
    if hasattr(value, "UnixNano"):
        return string(format_layout(value.UnixNano(), _RFC3339_NANO))
    if isinstance(value, dict):
        keys = value.keys() if getattr(value, "ordered", False) else sorted(value)
        return "{" + ",".join(f"{string(str(k))}:{dumps(value[k])}" for k in keys) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return string(str(value))

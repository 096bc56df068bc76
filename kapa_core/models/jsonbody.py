"""Request bodies decoded as Go's ``encoding/json`` decodes them: invalid UTF-8 and lone
surrogates become U+FFFD, and documents nested too deeply are refused."""

from __future__ import annotations

import json
import math
import re
from typing import Any

#: a ``\\uD800``-``\\uDFFF`` escape: the only way a JSON text can carry a lone surrogate
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


#: Deepest nesting accepted in a request body.
MAX_JSON_DEPTH = 100


class JSONBodyError(ValueError):
    """A request body that is not acceptable JSON (the message says why)."""


def decode_json(body: bytes | str) -> Any:
    """Decode a request body as Go's ``encoding/json`` would.

    The body is UTF-8; invalid bytes, including an encoded lone surrogate, become U+FFFD
    as Go replaces them, and so does a lone UTF-16 surrogate escape (``"\\ud800"``):
    every string can then be stored, logged and encoded like any other. Documents
    nested deeper than :data:`MAX_JSON_DEPTH` are refused with :class:`JSONBodyError`
    (no API body comes near it, and deeper values would only meet recursion later).
    """
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    try:
        value = json.loads(raw.decode("utf-8", "replace"))
    except RecursionError:
        raise JSONBodyError("nesting too deep") from None
    except ValueError as exc:
        raise JSONBodyError(str(exc)) from None
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and _too_deep(value):
        raise JSONBodyError(f"nesting too deep (more than {MAX_JSON_DEPTH} levels)")
    if _SURROGATE_ESCAPE.search(raw):
        value = _replace_surrogates(value)
    return value


def _too_deep(value: Any) -> bool:
    """Whether arrays and objects in ``value`` nest deeper than :data:`MAX_JSON_DEPTH`."""
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def without_surrogates(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD (pairs are never lone in a
    Python str: ``json`` joins escaped pairs into one character)."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def _replace_surrogates(value: Any) -> Any:
    """``value`` with :func:`without_surrogates` applied to every string, keys included;
    iterative, so a deep but decodable document cannot exhaust the stack."""
    root: list[Any] = [value]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        container, key = stack.pop()
        item = container[key]
        if isinstance(item, str):
            container[key] = without_surrogates(item)
        elif isinstance(item, list):
            stack.extend((item, i) for i in range(len(item)))
        elif isinstance(item, dict):
            fixed = {without_surrogates(k): v for k, v in item.items()}
            item.clear()
            item.update(fixed)
            stack.extend((item, k) for k in item)
    return root[0]

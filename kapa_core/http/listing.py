"""What every list endpoint shares: ``pattern``, ``fields``, ``offset``, ``limit``, and
the JSON body and ``script-format`` parameter of the task and template endpoints."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from kapa_core.auth.permissions import go_quote
from kapa_core.errors import APIError
from kapa_core.gcpause import GC_PAUSE_BYTES as GC_PAUSE_BYTES
from kapa_core.gcpause import gc_paused as gc_paused
from kapa_core.glob import filter_names
from kapa_core.http.messages import JSONBodyError, Request, decode_json
from kapa_core.tick.format import format_program, format_script

#: Go's strconv.ParseInt syntax (base 10): an optional sign and ASCII digits.
_INT = re.compile(r"[+-]?[0-9]+")


def parse_int_param(name: str, text: str) -> int:
    """``text`` as Kapacitor's list endpoints parse ``offset``/``limit``, refused in its
    words: ``invalid offset parameter "x" must be an integer: strconv.ParseInt: parsing
    "x": invalid syntax`` (or ``value out of range``)."""
    reason = ""
    value = 0
    if not _INT.fullmatch(text):
        reason = "invalid syntax"
    else:
        digits = text.lstrip("+-").lstrip("0") or "0"  # int() refuses 4300+ digits
        value = -int(digits) if text.startswith("-") and len(digits) <= 19 else \
            int(digits) if len(digits) <= 19 else 2**63
        if not -2**63 <= value < 2**63:
            reason = "value out of range"
    if reason:
        raise APIError(400, f"invalid {name} parameter {go_quote(text)} must be an integer: "
                       f"strconv.ParseInt: parsing {go_quote(text)}: {reason}")
    return value


def select(request: Request, ids: Iterable[str], allowed: tuple[str, ...],
           defaults: tuple[str, ...] | None = None, *, negative_limit_all: bool = False
           ) -> tuple[list[str], tuple[str, ...]]:
    """The IDs to show (sorted, glob-filtered, paged) and the fields asked for, as
    Kapacitor's list endpoints take them: ``fields`` (``defaults`` when none; a field it
    does not know is refused only when something is listed), ``offset`` (a negative one
    is 0) and ``limit`` (default 100; a negative one means no limit where
    ``negative_limit_all``, nothing otherwise, as Kapacitor's task and template lists
    differ there)."""
    fields = tuple(request.query.get("fields", [])) or (defaults or allowed)
    offset = parse_int_param("offset", request.arg("offset") or "0")
    limit = parse_int_param("limit", request.arg("limit") or "100")
    offset = max(offset, 0)
    pattern = request.arg("pattern")
    chosen = filter_names(sorted(ids), pattern)
    if limit < 0:
        chosen = chosen[offset:] if negative_limit_all else []
    else:
        chosen = chosen[offset:offset + limit]
    if chosen:
        for name in fields:
            if name not in allowed:
                raise APIError(400, f"unsupported field {go_quote(name)}")
    return chosen, fields


def script_format(request: Request) -> str:
    value = request.arg("script-format") or "formatted"
    if value not in ("formatted", "raw"):
        raise APIError(400, f"invalid script-format parameter {go_quote(value)}")
    return value


def dot_view(request: Request) -> str:
    value = request.arg("dot-view") or "attributes"
    if value not in ("attributes", "labels"):
        raise APIError(400, f"invalid dot-view parameter {go_quote(value)}")
    return value


#: Formatted large scripts are kept (most recently used first) up to this many bytes
#: of text, so reading or listing large tasks again does not parse them again.
FORMAT_CACHE_BYTES = 64 * 1024 * 1024
#: Scripts shorter than this are formatted each time (it is quick).
FORMAT_CACHE_MIN = 16 * 1024


class _FormatCache:
    def __init__(self) -> None:
        self.entries: OrderedDict[str, str] = OrderedDict()
        self.size = 0
        self.lock = threading.Lock()  # views of large scripts run in worker threads

    def get(self, script: str) -> str | None:
        with self.lock:
            text = self.entries.get(script)
            if text is not None:
                self.entries.move_to_end(script)
            return text

    def put(self, script: str, text: str) -> None:
        cost = len(script) + len(text)
        if cost > FORMAT_CACHE_BYTES:
            return
        with self.lock:
            if script in self.entries:
                return
            self.entries[script] = text
            self.size += cost
            while self.size > FORMAT_CACHE_BYTES:
                old, old_text = self.entries.popitem(last=False)
                self.size -= len(old) + len(old_text)


_FORMATTED = _FormatCache()


def render_program(script: str, program: Any) -> str:
    """The formatted ``script`` from its parsed ``program`` (kept like render_script's)."""
    cached = _FORMATTED.get(script)
    if cached is not None:
        return cached
    try:
        text = format_program(program)
    except Exception:
        return render_script(script, "formatted")
    if len(script) >= FORMAT_CACHE_MIN:
        _FORMATTED.put(script, text)
    return text


def render_script(script: str, form: str) -> str:
    if form == "raw":
        return script
    cache = len(script) >= FORMAT_CACHE_MIN
    if cache and (text := _FORMATTED.get(script)) is not None:
        return text
    try:
        text = format_script(script)
    except Exception:  # a stored script the formatter cannot handle is shown as written
        return script
    if cache:
        _FORMATTED.put(script, text)
    return text


def json_body(request: Request, *, prefix: str = "invalid JSON", what: str = "an object",
              details: bool = True, empty: bytes = b"{}") -> dict[str, Any]:
    """The request's JSON object (``empty`` stands for an empty body); 400 ``<prefix>:
    <reason>`` otherwise, or just ``<prefix>`` without ``details`` (each endpoint answers
    with the wording Kapacitor uses there)."""
    try:
        body = decode_json(request.body or empty)
    except JSONBodyError as exc:
        raise APIError(400, f"{prefix}: {exc}" if details else prefix) from None
    if not isinstance(body, dict):
        raise APIError(400, f"{prefix}: expected {what}" if details else prefix)
    return body

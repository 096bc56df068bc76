"""What the handler sections share to answer ``/kapacitor/v1/service-tests/<name>`` as
Kapacitor 1.5.7 does: a section service offering ``test_options()`` and ``test()``, and
the decoding of a test body as Go's encoding/json decodes it into the service's
``testOptions`` struct (a 400 with Kapacitor's words when it cannot). Also Go's way of
cutting a string at a byte count and writing it (Teams, ServiceNow)."""

from __future__ import annotations

import re
from typing import Any, Generic, Protocol, TypeVar

import trio

from kapa_core.plugin_api import APIError, HandlerError, Level, ServiceContext, go_json

ConfigT = TypeVar("ConfigT")

#: Kapacitor's alert.Level reads a level by finding its text in this string: only the
#: offsets of the four names are levels (so "" is OK and "RITICAL" is not a level).
_LEVEL_TEXT = "OKINFOWARNINGCRITICAL"
_LEVEL_AT = {0: Level.OK, 2: Level.INFO, 6: Level.WARNING, 13: Level.CRITICAL}

#: Python type of a test option -> the Go type named in a decode error.
GO_TYPES = {str: "string", bool: "bool", Level: "alert.Level", list: "[]string"}


def go_level(text: str) -> Level | None:
    """The level alert.Level's UnmarshalText reads from ``text``; None when none."""
    return _LEVEL_AT.get(_LEVEL_TEXT.find(text))


def json_kind(value: Any) -> str:
    """How Go's encoding/json names the kind of a decoded JSON value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else "string"


def decode(options: dict[str, Any], defaults: dict[str, Any],
           types: dict[str, type]) -> dict[str, Any]:
    """``options`` over ``defaults`` as Go decodes a JSON body into a struct: a null
    leaves the default (a list becomes None); a value of the wrong kind or an unknown level is refused (400).
    ``Level`` options come back as :class:`Level`."""
    out: dict[str, Any] = {}
    for key, default in defaults.items():
        value = options.get(key)
        kind = types.get(key, str)
        if value is None and not (kind is list and key in options):
            value = default  # a JSON null sets a Go slice to nil, leaves anything else
        if value is None:  # a Go nil slice
            out[key] = value
            continue
        wanted = str if kind is Level else kind
        if kind is list and isinstance(value, list):
            bad = next((v for v in value if not isinstance(v, str)), None)
            if bad is not None:
                raise APIError(400, f"failed to decode JSON body:json: cannot unmarshal "
                                    f"{json_kind(bad)} into Go struct field "
                                    f"testOptions.{key} of type string")
        if not isinstance(value, wanted) or (wanted is not bool and isinstance(value, bool)):
            raise APIError(400, f"failed to decode JSON body:json: cannot unmarshal "
                                f"{json_kind(value)} into Go struct field "
                                f"testOptions.{key} of type {GO_TYPES[kind]}")
        if kind is Level and isinstance(value, str):
            level = go_level(value)
            if level is None:
                raise APIError(400, f"failed to decode JSON body:unknown alert level "
                                    f"'{value}'")
            value = level
        out[key] = value
    return out


def cut_bytes(text: str, limit: int) -> str:
    """Go's ``text[:limit]``: the first ``limit`` UTF-8 bytes; the bytes of a character
    cut in two stay as lone surrogates (U+DC80..U+DCFF) until :func:`go_marshal`."""
    raw = text.encode("utf-8", "surrogatepass")
    return text if len(raw) <= limit else raw[:limit].decode("utf-8", "surrogateescape")


_CUT_BYTE = re.compile("[\udc80-\udcff]")
#: What a cut byte is while the JSON is written: control characters that go_json escapes
#: (\u0000), so that the escapes can be told from any text.
_MARK = "\x00\x01\x00"
_MARK_JSON = "\\u0000\\u0001\\u0000"


def _marked(value: Any) -> Any:
    if isinstance(value, str):
        return _CUT_BYTE.sub(_MARK, value)
    if isinstance(value, dict):
        return type(value)((k, _marked(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_marked(v) for v in value]
    return value


def go_marshal(value: Any) -> str:
    """``json.Marshal``'s text of ``value``: each byte left of a cut character is
    written ``\\ufffd``, as Go writes a byte that is not UTF-8."""
    return go_json(_marked(value)).replace(_MARK_JSON, "\\ufffd")


class SectionService(Generic[ConfigT]):
    """A handler section's service: its config, the daemon's facts and the deny-list
    check, for the section's service test (``/kapacitor/v1/service-tests/<name>``).
    Subclasses add ``test_options()`` and ``test(options)``. Handlers do not use it:
    they read their section from their HandlerContext."""

    def __init__(self, context: ServiceContext) -> None:
        self.config: ConfigT = context.config
        self.daemon = context.daemon
        self._check_outgoing = context.check_outgoing
        self.http_client = context.http_client

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()

    def check_outgoing(self, url: str) -> None:
        self._check_outgoing(url)


class _Workspace(Protocol):
    @property
    def workspace(self) -> str: ...
    @property
    def default(self) -> bool: ...


WorkspaceT = TypeVar("WorkspaceT", bound=_Workspace)


def workspace_element(elements: tuple[WorkspaceT, ...], workspace: str,
                      service: str) -> WorkspaceT:
    """The element Kapacitor's slack or discord service finds for ``workspace`` ("" for
    the default one: the only element, or the one marked default), with its errors."""
    if not elements:
        raise HandlerError(f"no {service} configuration found")
    if workspace:
        found = next((e for e in elements if e.workspace == workspace), None)
    elif len(elements) == 1:
        found = elements[0]
    else:
        found = next((e for e in elements if e.default), None)
    if found is None:
        raise HandlerError("workspace id not found")
    return found


"""HTTP requests and responses as the API handlers see them (no sockets here)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

# Request bodies are decoded by kapa_core.models.jsonbody; the API modules import the
# names from here.
from kapa_core.models.jsonbody import MAX_JSON_DEPTH as MAX_JSON_DEPTH
from kapa_core.models.jsonbody import JSONBodyError as JSONBodyError
from kapa_core.models.jsonbody import decode_json as decode_json
from kapa_core.models.jsonbody import finite
from kapa_core.models.jsonbody import without_surrogates as without_surrogates

JSON_TYPE = "application/json; charset=utf-8"


@dataclass
class Request:
    """A complete request: headers parsed, body read (and gzip-decoded)."""

    method: str
    path: str
    raw_target: str = ""
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    client: tuple[str, int] = ("", 0)
    request_id: str = ""
    params: dict[str, str] = field(default_factory=dict)
    http_version: str = "1.1"
    context: dict[str, Any] = field(default_factory=dict)

    def arg(self, name: str, default: str = "") -> str:
        """The first value of query parameter ``name``."""
        values = self.query.get(name)
        return values[0] if values else default

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None


#: Writes one piece of a streamed body (sent as one HTTP chunk).
SendChunk = Callable[[bytes], Awaitable[None]]


@dataclass
class Response:
    """An answer; with ``stream`` set the body is streamed (chunked, no length): the
    server calls ``stream(send)`` after the head and ends the body when it returns,
    cancels it when the client goes away or the server shuts down."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    stream: Callable[[SendChunk], Awaitable[None]] | None = None

    @classmethod
    def json(cls, obj: Any, status: int = 200, *, pretty: bool = True) -> Response:
        """JSON, pretty-printed with four spaces as Kapacitor's API does.

        Always valid JSON: a NaN or infinite float (computed by a lambda, say; written
        values are refused at /write) is written as ``null`` rather than as the
        ``NaN``/``Infinity`` no JSON parser accepts."""
        indent, separators = (4, None) if pretty else (None, (",", ":"))
        try:
            text = json.dumps(obj, indent=indent, ensure_ascii=False, separators=separators,
                              allow_nan=False) + "\n"
        except ValueError:
            text = json.dumps(finite(obj), indent=indent, ensure_ascii=False,
                              separators=separators) + "\n"
        try:
            data = text.encode()
        except UnicodeEncodeError:  # a lone surrogate from somewhere: U+FFFD, as Go writes
            data = without_surrogates(text).encode()
        return cls(status, [("content-type", JSON_TYPE)], data)

    @classmethod
    def error(cls, status: int, message: str) -> Response:
        return cls.json({"error": message}, status)

    @classmethod
    def empty(cls, status: int = 204) -> Response:
        return cls(status, [], b"")

    @classmethod
    def text(cls, status: int, text: str) -> Response:
        return cls(status, [("content-type", "text/plain; charset=utf-8")],
                   without_surrogates(text).encode())

    @classmethod
    def raw(cls, status: int, body: bytes, content_type: str) -> Response:
        return cls(status, [("content-type", content_type)], body)

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

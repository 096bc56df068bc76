"""HTTP requests and responses as the API handlers see them (no sockets here)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

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


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @classmethod
    def json(cls, obj: Any, status: int = 200, *, pretty: bool = True) -> Response:
        """JSON, pretty-printed with four spaces as Kapacitor's API does."""
        text = json.dumps(obj, indent=4 if pretty else None, ensure_ascii=False,
                          separators=None if pretty else (",", ":"))
        return cls(status, [("content-type", JSON_TYPE)], (text + "\n").encode())

    @classmethod
    def error(cls, status: int, message: str) -> Response:
        return cls.json({"error": message}, status)

    @classmethod
    def empty(cls, status: int = 204) -> Response:
        return cls(status, [], b"")

    @classmethod
    def text(cls, status: int, text: str) -> Response:
        return cls(status, [("content-type", "text/plain; charset=utf-8")], text.encode())

    @classmethod
    def raw(cls, status: int, body: bytes, content_type: str) -> Response:
        return cls(status, [("content-type", content_type)], body)

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

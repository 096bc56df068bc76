"""Routing: exact paths in a dict (the write endpoint is hot), then patterns.

Patterns are paths whose segments may be ``{name}`` (one segment) or, last,
``{name:path}`` (the rest of the path, slashes included, at least one character).
``/kapacitor/v1preview/...`` is served by the ``/kapacitor/v1/...`` routes.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable

from kapa_core.http.messages import Request, Response

Handler = Callable[[Request], Awaitable[Response]]
PREVIEW = "/kapacitor/v1preview"
V1 = "/kapacitor/v1"
_PARAM = re.compile(r"\{(\w+)(:path)?\}")


def _compile(pattern: str) -> re.Pattern[str]:
    out = []
    pos = 0
    for match in _PARAM.finditer(pattern):
        out.append(re.escape(pattern[pos:match.start()]))
        name, is_path = match.group(1), match.group(2)
        out.append(f"(?P<{name}>.+)" if is_path else f"(?P<{name}>[^/]+)")
        pos = match.end()
    out.append(re.escape(pattern[pos:]))
    return re.compile("^" + "".join(out) + "$")


class Router:
    def __init__(self) -> None:
        self._exact: dict[str, dict[str, Handler]] = {}
        self._patterns: list[tuple[str, re.Pattern[str], dict[str, Handler]]] = []

    def add(self, methods: str | Iterable[str], pattern: str, handler: Handler) -> None:
        names = [methods] if isinstance(methods, str) else list(methods)
        if _PARAM.search(pattern):
            existing = [t for text, _regex, t in self._patterns if text == pattern]
            if existing:
                table = existing[0]
            else:
                table = {}
                self._patterns.append((pattern, _compile(pattern), table))
        else:
            table = self._exact.setdefault(pattern, {})
        for method in names:
            table[method.upper()] = handler

    def resolve(self, method: str, path: str) -> tuple[Handler | None, dict[str, str]]:
        if path.startswith(PREVIEW):
            path = V1 + path[len(PREVIEW):]
        table = self._exact.get(path)
        if table is not None:
            handler = table.get(method)
            if handler is not None:
                return handler, {}
        for _text, regex, table in self._patterns:
            match = regex.match(path)
            if match is not None and method in table:
                return table[method], match.groupdict()
        return None, {}

    async def dispatch(self, request: Request) -> Response:
        handler, params = self.resolve(request.method, request.path)
        if handler is None:
            return Response.error(404, "Not Found")
        request.params = params
        return await handler(request)

    def routes(self) -> dict[str, list[str]]:
        out = {path: sorted(t) for path, t in self._exact.items()}
        out.update({text: sorted(t) for text, _r, t in self._patterns})
        return dict(sorted(out.items()))

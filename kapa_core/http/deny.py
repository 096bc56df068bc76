"""Refuse API requests from client addresses in a ``-blacklist-cidrs`` range.

A middleware for :class:`kapa_core.http.server.HTTPServer`, first in the chain so a
denied client never reaches authentication or a handler. A denied request is answered
``403 {"error": "..."}``, logged with the client address and counted
(``incoming_refused`` in :meth:`kapa_core.denylist.DenyList.statistics`).

"Most" operations are denied, as kapacitord's flag help says: everything except the
liveness probe (``GET``/``HEAD /kapacitor/v1/ping``) and CORS preflight ``OPTIONS``
requests, which the server answers before any middleware and which reveal nothing. A
request whose client address is unknown is denied too (fail closed).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from kapa_core.denylist import DenyList, parse_address
from kapa_core.http.messages import Request, Response
from kapa_core.logs import Logger

PING_PATHS = frozenset({"/kapacitor/v1/ping", "/kapacitor/v1preview/ping"})


def exempt(request: Request) -> bool:
    """Requests every client may make, listed or not."""
    return request.method in ("GET", "HEAD") and request.path in PING_PATHS


class DenyClients:
    """``await DenyClients(denylist)(request, call_next)``: 403 for listed clients."""

    def __init__(self, denylist: DenyList, log: Logger | None = None) -> None:
        self.denylist = denylist
        self.log = log or Logger("http")

    async def __call__(self, request: Request,
                       call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if not self.denylist or exempt(request):
            return await call_next(request)
        client = request.client[0]
        if parse_address(client) is None:
            reason = "unknown client address"
        else:
            network = self.denylist.match(client)
            if network is None:
                return await call_next(request)
            reason = f"in -blacklist-cidrs range {network}"
        self.denylist.incoming_refused += 1
        self.log.warn("request denied: client address is on the deny list",
                      client=client or "unknown", reason=reason, method=request.method,
                      path=request.path, request_id=request.request_id)
        return Response.error(403, f"access denied for client address {client or 'unknown'}")

"""Small server endpoints: ping, the route list, the log level, and ``/debug/vars``."""

from __future__ import annotations

from kapa_core import logs
from kapa_core.engine.nodes.enrich import SideloadSources
from kapa_core.engine.statistics import Daemon, debug_vars
from kapa_core.errors import APIError
from kapa_core.http.messages import Request, Response, decode_json
from kapa_core.http.router import Router


class ServerAPI:
    """``daemon``: what ``/debug/vars`` reports on; ``sideloads``: the daemon's open
    sideload sources, read again by ``/sideload/reload``."""

    def __init__(self, daemon: Daemon, sideloads: SideloadSources) -> None:
        self.daemon = daemon
        self.sideloads = sideloads

    def register(self, router: Router) -> None:
        router.add(["GET", "HEAD"], "/kapacitor/v1/ping", self.ping)
        router.add("GET", "/kapacitor/v1/:routes", self.routes)
        router.add("POST", "/kapacitor/v1/loglevel", self.loglevel)
        router.add("GET", "/kapacitor/v1/debug/vars", self.debug_vars)
        router.add("POST", "/kapacitor/v1/sideload/reload", self.sideload_reload)
        self._router = router

    async def sideload_reload(self, request: Request) -> Response:
        try:
            self.sideloads.reload_all()
        except ValueError as exc:  # Kapacitor answers 500 with the source's error
            raise APIError(500, str(exc)) from None
        return Response.empty(204)

    async def ping(self, request: Request) -> Response:
        return Response.empty(204)

    async def routes(self, request: Request) -> Response:
        return Response.json(self._router.routes())

    async def loglevel(self, request: Request) -> Response:
        try:
            body = decode_json(request.body or b"null")
            level = body["level"]
            if not isinstance(level, str):
                raise TypeError("level must be a string")
        except (ValueError, KeyError, TypeError) as exc:
            raise APIError(400, f"invalid json: {exc}") from None
        # Kapacitor's API takes debug, info or error in any case, and says no more.
        if level.upper() not in ("DEBUG", "INFO", "ERROR"):
            raise APIError(400, "invalid log level")
        logs.set_level(level.lower())
        return Response.empty(204)

    async def debug_vars(self, request: Request) -> Response:
        """Kapacitor's expvar JSON, built with the stats stream's own numbers
        (:mod:`kapa_core.engine.statistics`)."""
        return Response.json(debug_vars(self.daemon), pretty=False)

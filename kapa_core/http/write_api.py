"""``POST /write`` and ``POST /kapacitor/v1/write``: line protocol into the stream.

What InfluxDB subscriptions and Telegraf send. Errors are plain text, as Kapacitor
writes them. A body with some malformed lines is handled the way Kapacitor handles it
(see "Partial writes" in :mod:`kapa_core.models.lineprotocol`): the valid points are
written and the response is 400 listing each bad line with its line number and reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import trio

from kapa_core.engine.router import StreamRouter
from kapa_core.http.messages import Request, Response
from kapa_core.http.router import Router
from kapa_core.logs import Logger
from kapa_core.models import lineprotocol

#: Bodies larger than this are parsed in a worker thread so the event loop keeps
#: answering other requests in between (the GIL still serialises the work).
THREAD_PARSE_BYTES = 256 * 1024
#: At most this many bad lines are listed in one error response.
MAX_ERRORS_SHOWN = 10


class WriteAPI:
    def __init__(self, router: StreamRouter, *, default_rp: Callable[[], str],
                 logger: Logger, tracing: bool = False) -> None:
        self.router = router
        self.default_rp = default_rp
        self.log = logger
        self.tracing = tracing

    def register(self, router: Router) -> None:
        for path in ("/write", "/kapacitor/v1/write"):
            router.add("POST", path, self.write)
            router.add("OPTIONS", path, self.options)

    async def options(self, request: Request) -> Response:
        return Response.empty(204)

    async def write(self, request: Request) -> Response:
        db = request.arg("db")
        if not db:
            return Response.text(400, "database is required\n")
        rp = request.arg("rp") or self.default_rp()
        precision = request.arg("precision") or "n"
        body = request.body
        if not body.strip():
            return Response.empty(200) if not body else Response.empty(204)
        if self.tracing:
            self.log.info("write body received by handler", body=body[:4096].decode(
                "utf-8", "replace"), db=db, rp=rp, precision=precision)
        now = time.time_ns()
        try:
            if len(body) > THREAD_PARSE_BYTES:
                result = await trio.to_thread.run_sync(_parse, body, precision, now, db, rp)
            else:
                result = _parse(body, precision, now, db, rp)
        except ValueError as exc:
            return Response.text(400, f"{exc}\n")
        self.router.write(db, rp, result.points)
        if result.errors:
            shown = [str(e) for e in result.errors[:MAX_ERRORS_SHOWN]]
            more = len(result.errors) - len(shown)
            if more:
                shown.append(f"... and {more} more malformed line(s)")
            self.log.info("malformed lines in write", db=db, rp=rp,
                          bad_lines=len(result.errors), points_written=len(result.points))
            return Response.text(400, "\n".join(shown) + "\n")
        return Response.empty(204)


def _parse(body: bytes, precision: str, now: int, db: str, rp: str) -> lineprotocol.ParseResult:
    return lineprotocol.parse(body, precision=precision, now_ns=now, database=db,
                              retention_policy=rp)

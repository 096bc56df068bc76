"""``POST /write`` and ``POST /kapacitor/v1/write``: line protocol into the stream.

What InfluxDB subscriptions and Telegraf send. Errors are plain text, as Kapacitor
writes them. A body with malformed lines is refused whole, as Kapacitor refuses it (see
"Partial writes" in :mod:`kapa_core.models.lineprotocol`): 400 listing each bad line
with its line number and reason, and none of the body's points are written.

A principal limited to some databases (an InfluxDB subscription token, see
:mod:`kapa_core.auth.subscription_tokens`) writing elsewhere gets Kapacitor's 401
``"<user>" user is not authorized to write to database "<db>"``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import trio

from kapa_core.auth.middleware import error_response
from kapa_core.auth.permissions import go_quote
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

    async def write(self, request: Request) -> Response:
        db = request.arg("db")
        rp = request.arg("rp") or self.default_rp()
        precision = request.arg("precision") or "n"
        body = request.body
        if not body:
            return Response.empty(200)  # Kapacitor answers an empty body with 200
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
        if result.errors:
            shown = [str(e) for e in result.errors[:MAX_ERRORS_SHOWN]]
            more = len(result.errors) - len(shown)
            if more:
                shown.append(f"... and {more} more malformed line(s)")
            self.log.info("write refused: malformed lines", db=db, rp=rp,
                          bad_lines=len(result.errors), good_lines=len(result.points))
            return Response.text(400, "\n".join(shown) + "\n")
        if not db:
            return Response.text(400, "database is required\n")
        principal = request.context.get("principal")
        if principal is not None and not principal.may_write(db):
            self.log.info("write refused: database not granted", user=principal.name, db=db)
            return error_response(401, f"{go_quote(principal.name)} user is not authorized "
                                  f"to write to database {go_quote(db)}")
        self.router.write(db, rp, result.points)
        return Response.empty(204)


def _parse(body: bytes, precision: str, now: int, db: str, rp: str) -> lineprotocol.ParseResult:
    return lineprotocol.parse(body, precision=precision, now_ns=now, database=db,
                              retention_policy=rp)

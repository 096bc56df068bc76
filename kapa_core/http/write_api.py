"""``POST /write`` and ``POST /kapacitor/v1/write``: line protocol into the stream.

What InfluxDB subscriptions and Telegraf send. Errors are plain text, as Kapacitor
writes them. A body with malformed lines is refused whole, as Kapacitor refuses it (see
"Partial writes" in :mod:`kapa_core.models.lineprotocol`): 400 listing each bad line
with its line number and reason, and none of the body's points are written.

Memory: a point costs 50-80 times its line of text, so a large body is never held as
points all at once: it is checked whole, then parsed and routed a piece of
``THREAD_PARSE_BYTES`` at a time (pieces cut after a newline, line numbers counted over
the whole body).

- With the compiled parser (:data:`kapa_core.models.lineprotocol.COMPILED`), the check
  is :func:`~kapa_core.models.lineprotocol.check` in a worker thread: C scans the body
  without the GIL and makes no points (~50M lines/s), so each line is parsed into points
  once, when its piece is routed. Only a body with a bad line is parsed in full a second
  time, to list its errors.
- In pure Python, the checking pass parses the pieces in a worker thread and keeps the
  points of the first ``KEEP_POINTS`` lines only and at most ``MAX_ERRORS_SHOWN`` errors;
  when every line is good, the pieces are routed in order and the ones whose points were
  dropped are parsed again. A 20 MB body of ``m v=1`` lines adds ~75 MiB to the daemon's
  peak memory instead of ~1.5 GiB, for about 1.5x the CPU time of one parse
  (``benchmarks/bench_write_memory.py``).

A principal limited to some databases (an InfluxDB subscription token, see
:mod:`kapa_core.auth.subscription_tokens`) writing elsewhere gets Kapacitor's 401
``"<user>" user is not authorized to write to database "<db>"``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import trio
import trio.lowlevel

from kapa_core.auth.permissions import go_quote
from kapa_core.cluster import ClusterError
from kapa_core.cluster.router import ClusterRouter
from kapa_core.engine.router import StreamRouter
from kapa_core.errors import APIError
from kapa_core.http.auth_middleware import error_response
from kapa_core.http.messages import Request, Response
from kapa_core.http.router import Router
from kapa_core.logs import Logger
from kapa_core.models import lineprotocol
from kapa_core.models.point import Point

#: Bodies larger than this are parsed in a worker thread, a piece of about this size at
#: a time, so the event loop keeps answering other requests in between (the GIL still
#: serialises the work).
THREAD_PARSE_BYTES = 256 * 1024
#: At most this many bad lines are listed in one error response.
MAX_ERRORS_SHOWN = 10
#: Points of a large body kept from the checking pass; the pieces after them are parsed
#: again when they are routed. About 20-45 MB of points: a point costs 50-60 times its
#: line (``m v=1`` becomes ~370 bytes of Point, dicts and float), so keeping every point
#: of a 20 MB body of short lines until it is known to be valid took over 1 GB.
KEEP_POINTS = 50_000
#: Points of a large body routed but not yet processed by a task when the next piece is
#: parsed: beyond it the handler waits for the tasks (``StreamRouter.settle``), so the
#: parsed points of a body never pile up faster than the tasks take them.
BACKLOG_POINTS = 50_000
#: The precisions ``/write`` knows. Kapacitor reads the timestamps of a write with any
#: other precision (``ns``, ``us``, ``rfc3339``, a typo...) as nanoseconds, so kapa-core
#: does too rather than refusing the write.
WRITE_PRECISIONS = ("n", "u", "ms", "s", "m", "h")


@dataclass
class _Piece:
    start: int
    end: int
    first_line: int
    points: list[Point] | None  # None: dropped after checking, parse again to route


@dataclass
class _Checked:
    pieces: list[_Piece] = field(default_factory=list)
    errors: list[lineprotocol.LineError] = field(default_factory=list)
    bad_lines: int = 0
    good_lines: int = 0


class WriteAPI:
    def __init__(self, router: StreamRouter | ClusterRouter, *, default_rp: Callable[[], str],
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
        precision = request.arg("precision")
        if precision not in WRITE_PRECISIONS:
            precision = "n"  # as Kapacitor: any other precision means nanoseconds
        body = request.body
        if not body:
            return Response.empty(200)  # Kapacitor answers an empty body with 200
        if self.tracing:
            self.log.info("write body received by handler", body=body[:4096].decode(
                "utf-8", "replace"), db=db, rp=rp, precision=precision)
        now = time.time_ns()
        try:
            checked = await self._check(body, precision, now, db, rp)
        except ValueError as exc:
            return Response.text(400, f"{exc}\n")
        if checked.bad_lines:
            shown = [str(e) for e in checked.errors]
            more = checked.bad_lines - len(shown)
            if more:
                shown.append(f"... and {more} more malformed line(s)")
            self.log.info("write refused: malformed lines", db=db, rp=rp,
                          bad_lines=checked.bad_lines, good_lines=checked.good_lines)
            return Response.text(400, "\n".join(shown) + "\n")
        if not db:
            return Response.text(400, "database is required\n")
        principal = request.context.get("principal")
        if principal is not None and not principal.may_write(db):
            self.log.info("write refused: database not granted", user=principal.name, db=db)
            return error_response(401, f"{go_quote(principal.name)} user is not authorized "
                                  f"to write to database {go_quote(db)}")
        await self._route(body, checked, precision, now, db, rp)
        return Response.empty(204)

    async def _check(self, body: bytes, precision: str, now: int, db: str,
                     rp: str) -> _Checked:
        """Parse the whole body before any of it is routed (a bad line refuses it all).

        A large body is parsed a piece at a time in a worker thread and only the first
        ``KEEP_POINTS`` points are kept, so the memory a write costs stays a small
        multiple of its size; :meth:`_route` parses the other pieces again.
        """
        checked = _Checked()
        if lineprotocol.COMPILED and len(body) > THREAD_PARSE_BYTES:
            bad_at = await trio.to_thread.run_sync(_check_compiled, body, precision)
            if bad_at < 0:  # every line is good: each piece is parsed when it is routed
                checked.pieces = [_Piece(start, end, first, None) for start, end, first
                                  in lineprotocol.pieces(body, THREAD_PARSE_BYTES)]
                return checked
            # A bad line: the full pass below lists the errors.
        if len(body) <= THREAD_PARSE_BYTES:
            result = _parse(body, 0, len(body), 1, precision, now, db, rp)
            checked.pieces.append(_Piece(0, len(body), 1, result.points))
            checked.errors, checked.bad_lines = result.errors, result.bad_lines
            checked.good_lines = len(result.points)
            return checked
        view = memoryview(body)
        parse = _parse if not lineprotocol.COMPILED else _parse_pure  # see _parse_pure
        for start, end, first in lineprotocol.pieces(body, THREAD_PARSE_BYTES):
            result = await trio.to_thread.run_sync(parse, view, start, end, first,
                                                   precision, now, db, rp)
            room = MAX_ERRORS_SHOWN - len(checked.errors)
            checked.errors.extend(result.errors[:room])
            checked.bad_lines += result.bad_lines
            checked.good_lines += len(result.points)
            keep = not checked.bad_lines and checked.good_lines <= KEEP_POINTS
            checked.pieces.append(_Piece(start, end, first, result.points if keep else None))
        return checked

    async def _route(self, body: bytes, checked: _Checked, precision: str, now: int,
                     db: str, rp: str) -> None:
        """Route a checked body piece by piece (same ``now`` for lines without a time)."""
        view = memoryview(body)
        for piece in checked.pieces:
            points = piece.points
            piece.points = None
            if points is None:
                if lineprotocol.COMPILED:  # ~3 ms a piece, holding the GIL: no thread
                    points = _parse(view, piece.start, piece.end, piece.first_line,
                                    precision, now, db, rp).points
                    await trio.lowlevel.checkpoint()
                else:
                    result = await trio.to_thread.run_sync(_parse, view, piece.start,
                                                           piece.end, piece.first_line,
                                                           precision, now, db, rp)
                    points = result.points
            ticket = self.router.write(db, rp, points)
            if ticket is not None:  # a cluster member: stored by JetStream, or a 500
                try:
                    await ticket.wait()
                except ClusterError as exc:
                    raise APIError(500, f"points not stored: {exc}") from None
            elif len(checked.pieces) > 1:  # let the tasks catch up before the next piece
                await self.router.settle(BACKLOG_POINTS)


def _parse(body: bytes | memoryview, start: int, end: int, first_line: int, precision: str,
           now: int, db: str, rp: str) -> lineprotocol.ParseResult:
    return lineprotocol.parse_range(body, start, end, precision=precision, now_ns=now,
                                    database=db, retention_policy=rp,
                                    first_line=first_line, max_errors=MAX_ERRORS_SHOWN)


def _parse_pure(body: bytes | memoryview, start: int, end: int, first_line: int,
                precision: str, now: int, db: str, rp: str) -> lineprotocol.ParseResult:
    """The pass that lists a refused body's errors, with the compiled parser present:
    pure Python reads a body of bad lines faster than C handing each of them back."""
    return lineprotocol.parse_pure(body[start:end], precision=precision, now_ns=now,
                                   database=db, retention_policy=rp, first_line=first_line,
                                   max_errors=MAX_ERRORS_SHOWN)


def _check_compiled(body: bytes, precision: str) -> int:
    return lineprotocol.check(body, precision=precision)

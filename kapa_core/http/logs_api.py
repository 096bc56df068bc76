"""``GET /kapacitor/v1preview/logs``: the daemon's log lines, live, as Kapacitor streams
them (``kapacitor logs``, ``kapacitor watch <task>``).

- Every query parameter is a ``key=value`` filter a line must match (``task=cpu``,
  ``node=log2``, ``service=http``, ``msg=...``, ``lvl=error``); ``lvl=<level>+`` asks for
  that level and above instead. A key given twice is Kapacitor's 400 ``query params
  cannot contain duplicate params`` (as ``text/plain``, Kapacitor's quirk).
- ``Accept: application/json`` gives one JSON object per line, anything else logfmt
  (``Content-Type: application/logfmt``). The body is chunked and endless: it ends when
  the client goes away or the daemon stops (then properly, with the last chunk).
- A follower sees debug lines whatever ``[logging] level`` says, as in Kapacitor.
- kapa-core sends the head at once (Kapacitor holds it back until the first line that
  matches); the first line of an unfiltered stream is its own ``created log session``.
- A follower that reads too slowly never slows the daemon: its lines wait in a bounded
  queue (``kapa_core.logs.FOLLOWER_CAPACITY``), further lines are dropped and counted,
  and when it catches up it reads one line saying how many it lost::

      ts=... lvl=warn msg="log lines dropped: the reader is too slow" service=sessions id=... dropped=1234

  (a logfmt/JSON line like any other, so ``kapacitor logs`` prints it as it prints the
  rest). Only ``/kapacitor/v1preview/logs`` exists: ``/kapacitor/v1/logs`` is a 404, as
  in Kapacitor.
"""

from __future__ import annotations

import json
import logging
import uuid

import trio

from kapa_core.http.messages import Request, Response, SendChunk
from kapa_core.http.router import PREVIEW, V1, Router
from kapa_core.logs import LogBroadcast, LogFollower, Logger

LOGS_PATH = V1 + "/logs"
PREVIEW_LOGS_PATH = PREVIEW + "/logs"
JSON_LINES = "application/json"
LOGFMT = "application/logfmt"
#: lines per chunk when a follower has many waiting
CHUNK_LINES = 500
DUPLICATE_PARAMS = "query params cannot contain duplicate params"
#: ``lvl=<name>+``: Go's names (either case); anything else means every level
_THRESHOLDS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
               "error": logging.ERROR}


class BadFilter(ValueError):
    pass


def parse_filters(query: dict[str, list[str]]) -> tuple[list[tuple[str, str]], int]:
    """The tag filters and the lowest level of a logs request's query."""
    tags: list[tuple[str, str]] = []
    threshold = logging.DEBUG
    for key, values in query.items():
        if len(values) != 1:
            raise BadFilter(DUPLICATE_PARAMS)
        value = values[0]
        if key == "lvl" and value.endswith("+"):
            name = value[:-1]
            if name in (name.lower(), name.upper()):
                threshold = _THRESHOLDS.get(name.lower(), logging.DEBUG)
            continue
        tags.append((key, value))
    return tags, threshold


class LogsAPI:
    """The live log route; ``broadcast`` is the daemon's (one is made if not given)."""

    def __init__(self, broadcast: LogBroadcast | None = None, *,
                 capacity: int | None = None) -> None:
        self.broadcast = broadcast or LogBroadcast()
        self.capacity = capacity
        self.log = Logger("sessions")

    def register(self, router: Router) -> None:
        router.add("GET", LOGS_PATH, self.follow)

    async def follow(self, request: Request) -> Response:
        if not request.path.startswith(PREVIEW):
            return Response.error(404, "Not Found")
        try:
            tags, threshold = parse_filters(request.query)
        except BadFilter as exc:
            # Kapacitor's route writes its JSON error without a JSON content type
            body = json.dumps({"error": str(exc)}, indent=4).encode()
            return Response(400, [("content-type", "text/plain; charset=utf-8")], body)
        content_type = JSON_LINES if request.header("accept") == JSON_LINES else LOGFMT
        token = trio.lowlevel.current_trio_token()
        bell_send, bell_receive = trio.open_memory_channel[None](1)

        def ring() -> None:
            try:
                bell_send.send_nowait(None)
            except (trio.WouldBlock, trio.ClosedResourceError):
                pass

        def wake() -> None:  # called by whichever thread logged the line
            try:
                token.run_sync_soon(ring)
            except trio.RunFinishedError:
                pass

        options = {} if self.capacity is None else {"capacity": self.capacity}
        follower = LogFollower(tags, threshold=threshold,
                               json_lines=content_type == JSON_LINES, wake=wake, **options)

        async def stream(send: SendChunk) -> None:
            await self._pump(follower, bell_receive, send, content_type)

        return Response(200, [("content-type", content_type)], stream=stream)

    async def _pump(self, follower: LogFollower, bell: trio.MemoryReceiveChannel[None],
                    send: SendChunk, content_type: str) -> None:
        session = str(uuid.uuid4())
        described = {f"tags_{i}": f"{k}={v}" for i, (k, v) in enumerate(follower.tags)}
        self.broadcast.add(follower)
        try:
            self.log.info("created log session", id=session,
                          **{"content-type": content_type}, **described)
            while True:
                lines, dropped = follower.take()
                if dropped:
                    lines.append(self.broadcast.note(
                        follower, logging.WARNING, "log lines dropped: the reader is too slow",
                        service="sessions", id=session, dropped=dropped))
                if not lines:
                    await bell.receive()
                    continue
                for start in range(0, len(lines), CHUNK_LINES):
                    piece = lines[start:start + CHUNK_LINES]
                    await send(("\n".join(piece) + "\n").encode("utf-8", "replace"))
        finally:
            self.broadcast.remove(follower)
            self.log.info("deleted log session", id=session,
                          **{"content-type": content_type}, **described,
                          dropped=follower.dropped_total or None)


__all__ = ["LOGS_PATH", "PREVIEW_LOGS_PATH", "LogsAPI", "parse_filters"]

"""``/kapacitor/v1/replays``: replay a recording, a query or a batch task's queries over a
past range through a task; read, list and delete
replays (see kapa_core/engine/replay.py for what a replay does).

    POST   /kapacitor/v1/replays         201 and the replay of a recording
    POST   /kapacitor/v1/replays/batch   201 and the replay (status "running")
    POST   /kapacitor/v1/replays/query   201 and the replay of a query's answer
    GET    /kapacitor/v1/replays/<id>    202 while running, 200 once finished or failed
    GET    /kapacitor/v1/replays         {"replays": [...]}, newest first; pattern, fields,
                                         offset, limit as Kapacitor reads them
    DELETE /kapacitor/v1/replays/<id>    204, whether it existed or not
"""

from __future__ import annotations

from typing import Any

from kapa_core.engine.replay import FIELDS, ReplayService
from kapa_core.errors import APIError
from kapa_core.http.listing import parse_int_param
from kapa_core.http.messages import Request, Response
from kapa_core.http.router import Router

BASE = "/kapacitor/v1/replays"


class ReplaysAPI:
    def __init__(self, service: ReplayService) -> None:
        self.service = service

    def register(self, router: Router) -> None:
        router.add("POST", BASE, self.create)
        router.add("POST", BASE + "/batch", self.create_batch)
        router.add("POST", BASE + "/query", self.create_query)
        router.add("GET", BASE, self.list)
        router.add("GET", BASE + "/", self.no_id)
        router.add("DELETE", BASE + "/", self.no_id)
        router.add("GET", BASE + "/{id:path}", self.get)
        router.add("DELETE", BASE + "/{id:path}", self.delete)

    async def create(self, request: Request) -> Response:
        replay = await self.service.create_from_recording(request.body or b"")
        return Response.json(replay.view(), status=201)

    async def create_query(self, request: Request) -> Response:
        replay = await self.service.create_query(request.body or b"")
        return Response.json(replay.view(), status=201)

    async def create_batch(self, request: Request) -> Response:
        replay = await self.service.create_batch(request.body or b"")
        return Response.json(replay.view(), status=201)

    async def no_id(self, request: Request) -> Response:
        raise APIError(400, "must specify replay id on path")

    async def get(self, request: Request) -> Response:
        replay = self.service.get(request.params["id"])
        return Response.json(replay.view(), status=202 if replay.status == "running"
                             else 200)

    async def list(self, request: Request) -> Response:
        fields = list(request.query.get("fields", []))
        fields = [*fields, "id", "link"] if fields else list(FIELDS)
        for name in fields:
            if name not in FIELDS:
                raise APIError(400, f'unsupported field "{name}"')
        offset = parse_int_param("offset", request.arg("offset") or "0")
        limit = parse_int_param("limit", request.arg("limit") or "100")
        replays = self.service.list(request.arg("pattern"), offset, limit)
        out: list[dict[str, Any]] = []
        for replay in replays:
            values = replay.values()
            # Kapacitor writes each replay as a Go map: keys in sorted order.
            out.append({name: values[name] for name in sorted(set(fields))})
        return Response.json({"replays": out})

    async def delete(self, request: Request) -> Response:
        await self.service.delete(request.params["id"])
        return Response.empty()


"""``/kapacitor/v1/recordings``: record a task's stream, its batch queries or one query,
read, list, import and delete recordings (see kapa_core/engine/recording.py).

    POST   /kapacitor/v1/recordings/stream  201 and the recording (status "running")
    POST   /kapacitor/v1/recordings/batch   201 and the recording
    POST   /kapacitor/v1/recordings/query   201 and the recording
    POST   /kapacitor/v1/recordings/import  201 and the recording (kapa-core's: a file
                                            of the replay dir registered)
    GET    /kapacitor/v1/recordings/<id>    202 while running, 200 once finished or failed
    GET    /kapacitor/v1/recordings         {"recordings": [...]}, newest first; pattern,
                                            fields, offset, limit as Kapacitor reads them
    DELETE /kapacitor/v1/recordings/<id>    204, whether it existed or not
"""

from __future__ import annotations

from typing import Any

from kapa_core.engine.recording import FIELDS, RecordingService
from kapa_core.errors import APIError
from kapa_core.http.listing import parse_int_param
from kapa_core.http.messages import Request, Response
from kapa_core.http.router import Router

BASE = "/kapacitor/v1/recordings"


class RecordingsAPI:
    def __init__(self, service: RecordingService) -> None:
        self.service = service

    def register(self, router: Router) -> None:
        router.add("POST", BASE + "/stream", self.create_stream)
        router.add("POST", BASE + "/batch", self.create_batch)
        router.add("POST", BASE + "/query", self.create_query)
        router.add("POST", BASE + "/import", self.import_file)
        router.add("GET", BASE, self.list)
        router.add("GET", BASE + "/", self.no_id)
        router.add("DELETE", BASE + "/", self.no_id)
        router.add("GET", BASE + "/{id:path}", self.get)
        router.add("DELETE", BASE + "/{id:path}", self.delete)

    async def create_stream(self, request: Request) -> Response:
        recording = await self.service.create_stream(request.body or b"")
        return Response.json(recording.values(), status=201)

    async def create_batch(self, request: Request) -> Response:
        recording = await self.service.create_batch(request.body or b"")
        return Response.json(recording.values(), status=201)

    async def create_query(self, request: Request) -> Response:
        recording = await self.service.create_query(request.body or b"")
        return Response.json(recording.values(), status=201)

    async def import_file(self, request: Request) -> Response:
        recording = await self.service.import_file(request.body or b"")
        return Response.json(recording.values(), status=201)

    async def no_id(self, request: Request) -> Response:
        raise APIError(400, "must specify recording id on path")

    async def get(self, request: Request) -> Response:
        recording = self.service.get(request.params["id"])
        return Response.json(recording.values(), status=202
                             if recording.status == "running" else 200)

    async def list(self, request: Request) -> Response:
        fields = list(request.query.get("fields", []))
        fields = [*fields, "id", "link"] if fields else list(FIELDS)
        for name in fields:
            if name not in FIELDS:
                raise APIError(400, f'unsupported field "{name}"')
        offset = parse_int_param("offset", request.arg("offset") or "0")
        limit = parse_int_param("limit", request.arg("limit") or "100")
        out: list[dict[str, Any]] = []
        for recording in self.service.list(request.arg("pattern"), offset, limit):
            values = recording.values()
            out.append({name: values[name] for name in sorted(set(fields))})
        return Response.json({"recordings": out})

    async def delete(self, request: Request) -> Response:
        await self.service.delete(request.params["id"])
        return Response.empty()

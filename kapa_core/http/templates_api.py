"""``/kapacitor/v1/templates``: define, list, read, update and delete templates."""

from __future__ import annotations

from typing import Any

from kapa_core.engine.templates import TemplateDef, TemplateService, var_json
from kapa_core.errors import APIError
from kapa_core.http.listing import json_body, render_script, script_format, select
from kapa_core.http.messages import Request, Response
from kapa_core.http.router import Router

BASE = "/kapacitor/v1/templates"
FIELDS = ("id", "link", "type", "script", "vars", "dot", "error", "created", "modified")


class TemplatesAPI:
    def __init__(self, service: TemplateService) -> None:
        self.service = service

    def register(self, router: Router) -> None:
        router.add("GET", BASE, self.list)
        router.add("POST", BASE, self.create)
        router.add("GET", BASE + "/{id}", self.get)
        router.add("PATCH", BASE + "/{id}", self.update)
        router.add("DELETE", BASE + "/{id}", self.delete)

    def view(self, template: TemplateDef, fields: tuple[str, ...] = FIELDS,
             form: str = "formatted") -> dict[str, Any]:
        out: dict[str, Any] = {"link": {"rel": "self", "href": f"{BASE}/{template.id}"},
                               "id": template.id}
        error = ""
        try:
            evaluated = self.service.evaluate(template)
            variables, dot = var_json(evaluated), evaluated.pipeline.dot(template.id)
        except Exception as exc:  # a stored template broken by a newer check still lists
            variables, dot, error = {}, "", str(exc)
        values = {"type": template.type,
                  "script": render_script(template.script, form), "vars": variables,
                  "dot": dot, "error": error, "created": template.created,
                  "modified": template.modified}
        out.update({k: v for k, v in values.items() if k in fields})
        return out

    async def list(self, request: Request) -> Response:
        ids, fields = select(request, self.service.templates, FIELDS)
        form = script_format(request)
        return Response.json({"templates": [self.view(self.service.templates[i], fields,
                                                      form) for i in ids]})

    async def get(self, request: Request) -> Response:
        template = self.service.templates.get(request.params["id"])
        if template is None:
            raise APIError(404, f"no template exists with ID {request.params['id']}")
        return Response.json(self.view(template, FIELDS, script_format(request)))

    async def create(self, request: Request) -> Response:
        return Response.json(self.view(await self.service.create(json_body(request))))

    async def update(self, request: Request) -> Response:
        template = await self.service.update(request.params["id"], json_body(request))
        return Response.json(self.view(template))

    async def delete(self, request: Request) -> Response:
        await self.service.delete(request.params["id"])
        return Response.empty(204)

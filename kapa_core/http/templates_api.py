"""``/kapacitor/v1/templates``: define, list, read, update and delete templates."""

from __future__ import annotations

import copy
import threading
from typing import Any

import trio

from kapa_core.alert import kinds
from kapa_core.engine.tasks import THREAD_SCRIPT_BYTES
from kapa_core.engine.templates import TemplateDef, TemplateService, var_json
from kapa_core.errors import APIError
from kapa_core.http.listing import (
    GC_PAUSE_BYTES,
    gc_paused,
    json_body,
    render_script,
    script_format,
    select,
)
from kapa_core.http.messages import Request, Response
from kapa_core.http.router import Router
from kapa_core.pipeline.evaluate import Evaluated

BASE = "/kapacitor/v1/templates"
FIELDS = ("id", "link", "type", "script", "vars", "dot", "error", "created", "modified")
#: What a template list shows unless ``fields`` asks (vars only when asked for).
LIST_DEFAULTS = tuple(f for f in FIELDS if f != "vars")


class TemplatesAPI:
    def __init__(self, service: TemplateService) -> None:
        self.service = service
        self._drawn: dict[str, tuple[tuple[Any, ...], tuple[dict[str, Any], str, str]]] = {}
        self._recent: tuple[tuple[Any, ...], Evaluated] | None = None
        self._lock = threading.Lock()  # large templates are checked in worker threads
        service.on_evaluated = self._keep_evaluation

    def _keep_evaluation(self, template: TemplateDef, evaluated: Evaluated) -> None:
        """Keep the last template the service evaluated (until drawn), so that
        defining a large template evaluates it once, not twice."""
        with self._lock:
            self._recent = (_key(template), evaluated)

    def drawn(self, template: TemplateDef) -> tuple[dict[str, Any], str, str]:
        """The template's vars, DOT and error, kept until its script changes: they
        evaluate the script, which takes seconds for one of megabytes."""
        key = _key(template)
        cached = self._drawn.get(template.id)
        if cached is not None and cached[0] == key:
            return copy.deepcopy(cached[1][0]), cached[1][1], cached[1][2]
        error = ""
        with self._lock:
            recent, self._recent = self._recent, None
        try:
            evaluated = recent[1] if recent is not None and recent[0] == key else \
                self.service.evaluate(template, notify=False)
            variables, dot = var_json(evaluated), evaluated.pipeline.dot(template.id)
        except Exception as exc:  # a stored template broken by a newer check still lists
            variables, dot, error = {}, "", str(exc)
        if len(self._drawn) >= 10_000:
            self._drawn.clear()
        self._drawn[template.id] = (key, (copy.deepcopy(variables), dot, error))
        return variables, dot, error

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
        variables, dot, error = self.drawn(template)
        values = {"type": template.type,
                  "script": render_script(template.script, form), "vars": variables,
                  "dot": dot, "error": error, "created": template.created,
                  "modified": template.modified}
        out.update({k: v for k, v in values.items() if k in fields})
        return out

    async def views(self, templates: list[TemplateDef], fields: tuple[str, ...] = FIELDS,
                    form: str = "formatted") -> list[dict[str, Any]]:
        """``view`` of each template, in a worker thread when their scripts are large."""
        def run() -> list[dict[str, Any]]:
            return [self.view(template, fields, form) for template in templates]
        if sum(len(t.script) for t in templates) > THREAD_SCRIPT_BYTES:
            with gc_paused(any(len(t.script) >= GC_PAUSE_BYTES for t in templates)):
                return await trio.to_thread.run_sync(
                    run, limiter=self.service.tasks.script_limiter)
        return run()

    async def list(self, request: Request) -> Response:
        form = script_format(request)
        ids, fields = select(request, self.service.templates, FIELDS, LIST_DEFAULTS)
        templates = [self.service.templates[i] for i in ids]
        return Response.json({"templates": await self.views(templates, fields, form)})

    async def get(self, request: Request) -> Response:
        template = self.service.templates.get(request.params["id"])
        if template is None:
            raise APIError(404, "no template exists")  # Kapacitor's words, without the ID
        (out,) = await self.views([template], FIELDS, script_format(request))
        return Response.json(out)

    async def create(self, request: Request) -> Response:
        body = json_body(request)
        with gc_paused(_large(body)):
            template = await self.service.create(body)
            return Response.json((await self.views([template]))[0])

    async def update(self, request: Request) -> Response:
        body = json_body(request)
        with gc_paused(_large(body)):
            template = await self.service.update(request.params["id"], body)
            return Response.json((await self.views([template]))[0])

    async def delete(self, request: Request) -> Response:
        await self.service.delete(request.params["id"])
        return Response.empty(204)


def _key(template: TemplateDef) -> tuple[Any, ...]:
    """What a template's vars and DOT depend on (a global deadman adds nodes)."""
    return (template.script, template.type, kinds.current().deadman.global_)


def _large(body: dict[str, Any]) -> bool:
    script = body.get("script")
    return isinstance(script, str) and len(script) >= GC_PAUSE_BYTES

"""``/kapacitor/v1/tasks``: define, list, read, update and delete tasks; httpOut results."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import httpx
import trio

from kapa_core.alert import kinds
from kapa_core.auth.permissions import go_quote
from kapa_core.engine.tasks import ID, THREAD_SCRIPT_BYTES, TaskDef, TaskService
from kapa_core.engine.templates import json_number
from kapa_core.errors import APIError
from kapa_core.http.listing import (
    GC_PAUSE_BYTES,
    dot_view,
    gc_paused,
    json_body,
    render_script,
    script_format,
    select,
)
from kapa_core.http.messages import JSON_TYPE, Request, Response
from kapa_core.http.router import Router
from kapa_core.models import gojson
from kapa_core.models.duration import Duration
from kapa_core.pipeline.evaluate import Evaluated
from kapa_core.pipeline.pipeline import Pipeline

BASE = "/kapacitor/v1/tasks"
#: Set on a request one cluster member makes to another for a task's data.
PROXIED = "x-kapa-core-proxied"
FIELDS = ("id", "link", "type", "dbrps", "script", "executing", "dot", "stats", "error",
          "status", "created", "modified", "last-enabled", "vars", "template-id")
#: What a task list can show: everything but template-id, which Kapacitor lists only
#: with a single task.
LIST_FIELDS = tuple(f for f in FIELDS if f != "template-id")


def client_vars(raw: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """A task's vars as Kapacitor writes them back: each with its description (empty if
    none was given), durations in nanoseconds, floats as Go writes them, list items as
    typed vars, a star without value."""
    out: dict[str, dict[str, Any]] = {}
    for name, spec in (raw or {}).items():
        if not isinstance(spec, dict):
            continue
        out[name] = {"type": spec.get("type"),
                     "value": _client_value(spec.get("type"), spec.get("value")),
                     "description": str(spec.get("description") or "")}
    return out


def _client_value(kind: Any, value: Any) -> Any:
    try:
        if value is None or kind == "star":
            return None
        if kind == "duration":
            return int(value) if isinstance(value, int | float) and not isinstance(
                value, bool) else int(Duration.parse(str(value), tick=True))
        if kind == "float" and isinstance(value, int | float):
            return json_number(float(value))
        if kind == "list" and isinstance(value, list):
            items = [item if isinstance(item, dict) else {"type": "string", "value": item}
                     for item in value]
            return [{"type": item.get("type"), "value": _client_value(
                item.get("type"), item.get("value")), "description": ""} for item in items]
    except (TypeError, ValueError):
        pass
    return value


def check_task_json(body: dict[str, Any]) -> dict[str, Any]:
    """What Kapacitor's JSON decoding of a task refuses, refused with its words
    (``invalid JSON``): an ID, template ID or script that is not text, a type other than
    stream, batch or invalid, a status other than enabled or disabled, dbrps that are
    not a list of objects, vars it cannot decode. Returns the body without a type of
    ``invalid`` (the script's chains say the type)."""
    for key in ("id", "template-id", "script"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise APIError(400, f"invalid JSON: {key} must be a string")
    kind = body.get("type")
    if kind is not None and kind not in ("stream", "batch", "invalid"):
        raise APIError(400, f"invalid JSON: unknown TaskType {kind}")
    status = body.get("status")
    if status is not None and status not in ("enabled", "disabled"):
        raise APIError(400, f"invalid JSON: unknown TaskStatus {status}")
    dbrps = body.get("dbrps")
    if dbrps is not None and (not isinstance(dbrps, list) or not all(
            isinstance(d, dict) for d in dbrps)):
        raise APIError(400, "invalid JSON: dbrps must be a list of {\"db\", \"rp\"}")
    check_vars_json(body.get("vars"))
    if kind == "invalid":
        body = {k: v for k, v in body.items() if k != "type"}
    return body


VAR_TYPES = ("bool", "int", "float", "string", "regex", "duration", "lambda", "list", "star")


def check_vars_json(raw: Any) -> None:
    """What Kapacitor's JSON decoding of ``vars`` refuses, refused with its words
    (``invalid JSON``): an unknown type, a duration that is neither nanoseconds nor
    duration text, an int or float that is not a number, a list that is not a list of
    typed values."""
    if not isinstance(raw, dict):
        return
    for name, spec in raw.items():
        if not isinstance(spec, dict):
            continue
        kind, value = spec.get("type"), spec.get("value")
        reason = ""
        if kind not in VAR_TYPES:
            reason = f"unknown VarType {kind}"
        elif value is None:
            continue
        elif kind == "duration":
            if isinstance(value, bool) or not isinstance(value, int | float | str) or (
                    isinstance(value, float) and not value.is_integer()):
                reason = "expected int or string value"
            elif isinstance(value, str):
                try:
                    Duration.parse(value, tick=True)
                except ValueError:
                    reason = f"invalid duration string {value!r}"
        elif kind in ("int", "float") and (isinstance(value, bool) or not isinstance(
                value, int | float) or (kind == "int" and isinstance(value, float)
                                        and not value.is_integer())):
            reason = f"expected {kind} value"
        elif kind == "list" and (not isinstance(value, list) or not all(
                isinstance(item, dict) and item.get("type") in VAR_TYPES and "value" in item
                for item in value)):
            reason = "expected list of vars"
        if reason:
            raise APIError(400, f"invalid JSON: invalid var {name}: {reason}")


def _large(body: dict[str, Any], service: TaskService) -> bool:
    """Whether the task ``body`` describes has a large script (its own, or its
    template's)."""
    script = body.get("script")
    if not isinstance(script, str) and isinstance(body.get("template-id"), str):
        template = service.template_lookup(body["template-id"])
        script = getattr(template, "script", None)
    return isinstance(script, str) and len(script) >= GC_PAUSE_BYTES


def _dot_key(task: TaskDef) -> tuple[Any, ...]:
    """What a stopped task's DOT depends on (a global deadman adds nodes to every task)."""
    return (task.script, repr(task.vars), task.type, tuple(task.dbrps), kinds.current().deadman.global_)


class TasksAPI:
    def __init__(self, service: TaskService) -> None:
        self.service = service
        self._dots: dict[str, tuple[tuple[Any, ...], str]] = {}
        self._recent: OrderedDict[tuple[Any, ...], Pipeline] = OrderedDict()
        self._lock = threading.Lock()  # large tasks are checked in worker threads
        service.on_evaluated = self._keep_evaluation

    def stopped_dot(self, task: TaskDef) -> str:
        """The plain DOT of a task that is not running. It is kept per task until the
        task's script, vars, type or dbrps change: drawing it evaluates the script, which
        takes seconds for a script of megabytes, and listing tasks draws every one. The
        pipeline the service built when it checked the task is used when it is still at
        hand (so defining a large task evaluates it once, not twice)."""
        key = _dot_key(task)
        cached = self._dots.get(task.id)
        if cached is not None and cached[0] == key:
            return cached[1]
        with self._lock:  # used once: the DOT text is kept from now on
            recent = self._recent.pop(key, None)
        pipeline = (recent if recent is not None
                    else self.service.evaluate(task, notify=False).pipeline)
        dot = pipeline.dot(task.id)
        if len(self._dots) >= 10_000:
            self._dots.clear()
        self._dots[task.id] = (key, dot)
        return dot

    def _keep_evaluation(self, task: TaskDef, evaluated: Evaluated) -> None:
        """Keep the pipeline of a task the service evaluated (the last two, until
        drawn) for ``stopped_dot``. (Its program is kept by the parser, so formatting
        the script just checked does not parse it again.)"""
        with self._lock:
            self._recent[_dot_key(task)] = evaluated.pipeline
            while len(self._recent) > 2:
                self._recent.popitem(last=False)

    def register(self, router: Router) -> None:
        router.add(["GET"], BASE, self.list)
        router.add(["POST"], BASE, self.create)
        router.add(["GET"], BASE + "/{id}", self.get)
        router.add(["PATCH"], BASE + "/{id}", self.update)
        router.add(["DELETE"], BASE + "/{id}", self.delete)
        router.add(["GET"], BASE + "/{id}/{endpoint}", self.http_out)

    def view(self, task: TaskDef, fields: tuple[str, ...] = FIELDS,
             form: str = "formatted", view: str = "attributes", *, listing: bool = False
             ) -> dict[str, Any]:
        """The task as Kapacitor shows it. In a list (``listing``) a task that is not
        running has null ``stats``, and a DOT that cannot be drawn is null; alone it has
        empty ``stats`` and an empty DOT."""
        running = self.service.master.get(task.id)
        out: dict[str, Any] = {"link": {"rel": "self", "href": f"{BASE}/{task.id}"},
                               "id": task.id}
        if "template-id" in fields:
            out["template-id"] = task.template_id
        if "type" in fields:
            out["type"] = task.type
        if "dbrps" in fields:
            out["dbrps"] = [{"db": db, "rp": rp} for db, rp in task.dbrps]
        if "script" in fields:
            out["script"] = render_script(task.script, form)
        if "vars" in fields:
            out["vars"] = client_vars(task.vars)
        if "dot" in fields:
            try:
                if running:
                    out["dot"] = running.pipeline.dot(
                        task.id, running.node_stats(), running.throughput(),
                        labels=view == "labels",
                        unit="batches" if task.type == "batch" else "points")
                else:
                    out["dot"] = self.stopped_dot(task)
            except Exception as exc:  # a broken stored script still lists
                out["dot"] = None if listing else ""
                task.error = task.error or str(exc)
        if "status" in fields:
            out["status"] = task.status
        if "executing" in fields:
            out["executing"] = running is not None and not running.done.is_set()
        if self.service.cluster is not None:  # kapa-core's cluster: who runs it
            out["owner"] = self.service.cluster.owner_of(task.id)
        if "error" in fields:
            out["error"] = task.error or (running.error if running else "")
        if "stats" in fields:
            out["stats"] = {"task-stats": {"throughput": json_number(running.throughput()),
                                           "points_dropped": running.points_dropped},
                            "node-stats": running.node_stats()} if running else (
                None if listing else {})
        for name, attr in (("created", "created"), ("modified", "modified"),
                           ("last-enabled", "last_enabled")):
            if name in fields:
                out[name] = getattr(task, attr) or "0001-01-01T00:00:00Z"
        return out

    async def _from_owner(self, request: Request) -> Response:
        """Ask the member that runs the task (kapa-core's cluster, docs/cluster.md)."""
        cluster = self.service.cluster
        assert cluster is not None
        url = await cluster.api_of(request.params["id"])
        if not url:
            raise APIError(503, f"task {request.params['id']} runs on no live member now")
        headers = {k: v for k, v in request.headers if k in ("authorization",)}
        headers[PROXIED] = "1"
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                answer = await client.get(url + request.raw_target, headers=headers)
        except httpx.HTTPError as exc:
            raise APIError(502, f"the member running the task did not answer: {exc}") from None
        return Response.raw(answer.status_code, answer.content,
                            answer.headers.get("content-type", JSON_TYPE))

    async def views(self, tasks: list[TaskDef], fields: tuple[str, ...] = FIELDS,
                    form: str = "formatted", view: str = "attributes", *,
                    listing: bool = False) -> list[dict[str, Any]]:
        """``view`` of each task; when their scripts are large (formatting and the DOT
        graph re-read the script) in a worker thread, so other requests go on."""
        def run() -> list[dict[str, Any]]:
            return [self.view(task, fields, form, view, listing=listing) for task in tasks]
        heavy = ("script" in fields or "dot" in fields) and sum(
            len(t.script) for t in tasks) > THREAD_SCRIPT_BYTES
        if not heavy:
            return run()
        with gc_paused(any(len(t.script) >= GC_PAUSE_BYTES for t in tasks)):
            return await trio.to_thread.run_sync(run, limiter=self.service.script_limiter)

    async def list(self, request: Request) -> Response:
        form, view = script_format(request), dot_view(request)
        ids, fields = select(request, self.service.tasks, LIST_FIELDS,
                             negative_limit_all=True)
        tasks = [self.service.tasks[i] for i in ids]
        return Response.json({"tasks": await self.views(tasks, fields, form, view,
                                                        listing=True)})

    async def get(self, request: Request) -> Response:
        task = self.service.tasks.get(request.params["id"])
        if task is None:
            raise APIError(404, "no task exists")  # Kapacitor's words, without the ID
        (out,) = await self.views([task], FIELDS, script_format(request), dot_view(request))
        return Response.json(out)

    def _check_template(self, body: dict[str, Any]) -> None:
        template_id = body.get("template-id")
        if template_id and self.service.template_lookup(template_id) is None:
            raise APIError(400, f"unknown template {template_id}: err: no template exists")

    async def create(self, request: Request) -> Response:
        body = check_task_json(json_body(request))
        task_id = body.get("id")
        if task_id and not ID.fullmatch(task_id):
            raise APIError(400, "task ID must contain only letters, numbers, '-', '.' and "
                           f"'_'. {go_quote(task_id)}")
        if task_id in self.service.tasks:
            raise APIError(400, f"task {task_id} already exists")
        self._check_template(body)
        with gc_paused(_large(body, self.service)):
            task = await self.service.create(body)
            return Response.json((await self.views([task]))[0])

    async def update(self, request: Request) -> Response:
        body = check_task_json(json_body(request))
        if request.params["id"] not in self.service.tasks:
            raise APIError(404, "task does not exist, cannot update")
        self._check_template(body)
        existing = self.service.tasks[request.params["id"]]
        with gc_paused(_large(body, self.service) or len(existing.script) >= GC_PAUSE_BYTES):
            task = await self.service.update(request.params["id"], body)
            return Response.json((await self.views([task]))[0])

    async def delete(self, request: Request) -> Response:
        self._dots.pop(request.params["id"], None)
        await self.service.delete(request.params["id"])
        return Response.empty(204)

    async def http_out(self, request: Request) -> Response:
        running = self.service.master.get(request.params["id"])
        node = running.http_out(request.params["endpoint"]) if running else None
        if node is None and running is None and self.service.cluster is not None \
                and request.params["id"] in self.service.tasks \
                and request.header(PROXIED) is None:  # asked by a member: no second hop
            # a cluster member: the task runs on another member, which serves its data
            return await self._from_owner(request)
        if node is None:  # Kapacitor reads <id>/<endpoint> as a task ID it does not have
            raise APIError(404, "no task exists")
        # Kapacitor writes this body with Go's json.Marshal: no newline, Go's floats.
        return Response.raw(200, gojson.dumps(node.result()).encode(), JSON_TYPE)

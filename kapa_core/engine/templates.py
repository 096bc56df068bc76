"""Templates: TICKscripts with typed ``var`` declarations that tasks fill in.

A template is validated without its unset vars; a task made from one (``template-id``)
takes the template's script and type and supplies ``vars``. Updating a template re-checks
every task made from it first and changes nothing if one of them would break; then the
enabled ones are reloaded.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import trio

from kapa_core.auth.permissions import go_quote
from kapa_core.engine.tasks import ID, THREAD_SCRIPT_BYTES, TaskService, now
from kapa_core.errors import APIError, TickError
from kapa_core.models.duration import Duration
from kapa_core.pipeline.base import STAR
from kapa_core.pipeline.evaluate import Evaluated, evaluate, task_type_of
from kapa_core.storage import TEMPLATES, Store
from kapa_core.tick.parser import parse


@dataclass
class TemplateDef:
    id: str
    type: str
    script: str
    created: str = ""
    modified: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def json_number(value: float) -> int | float:
    """A float as Go's encoding/json writes it: integral values without ``.0``."""
    if value == value and abs(value) < 1e21 and float(value).is_integer():
        return int(value)
    return value


def _var_value(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, Duration) or kind == "duration":
        return int(value)  # Go's time.Duration: nanoseconds
    if kind == "float" and isinstance(value, int | float) and not isinstance(value, bool):
        return json_number(float(value))
    if kind == "lambda":
        return getattr(value, "text", str(value))
    if kind == "regex":
        return getattr(value, "pattern", value)
    if kind == "star":
        return {"typeOf": "star"}  # Kapacitor marshals its star node
    if kind == "list":
        return [{"description": "", "type": _item_kind(item), "value": _var_value(
            _item_kind(item), item)} for item in value]
    return value


def _item_kind(value: Any) -> str:
    if value is STAR:
        return "star"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Duration):
        return "duration"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "string"


def var_json(evaluated: Evaluated) -> dict[str, dict[str, Any]]:
    """The ``vars`` object of a template as Kapacitor shows it: every declared var with
    its type, default (``null`` when it has none; durations in nanoseconds, lists as
    typed items, a star as Kapacitor's star node) and description."""
    return {name: {"type": var.type, "value": _var_value(var.type, var.value),
                   "description": var.description}
            for name, var in evaluated.vars.items()}


def check_template_json(body: dict[str, Any]) -> None:
    """What Kapacitor's JSON decoding of a template refuses (``invalid JSON``): an ID or
    script that is not text, a type other than stream, batch or invalid."""
    for key in ("id", "script"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise APIError(400, f"invalid JSON: {key} must be a string")
    kind = body.get("type")
    if kind is not None and kind not in ("stream", "batch", "invalid"):
        raise APIError(400, f"invalid JSON: unknown TaskType {kind}")


class TemplateService:
    def __init__(self, store: Store, tasks: TaskService) -> None:
        self.store = store
        self.tasks = tasks
        self.templates: dict[str, TemplateDef] = {
            key: TemplateDef(**data) for key, data in store.items_json(TEMPLATES)}
        tasks.template_lookup = self.templates.get
        #: Called with each template this service evaluates and the result (the HTTP
        #: API keeps the last one, so that drawing a template just checked does not
        #: evaluate it again).
        self.on_evaluated: Callable[[TemplateDef, Evaluated], None] | None = None
        #: A cluster member's catalog: told of each template saved or deleted here (its
        #: JSON, or None), to share it with the other members.
        self.on_change: Callable[[str, dict[str, Any] | None], Awaitable[None]] | None = None

    async def _save(self, template: TemplateDef) -> None:
        data = template.to_json()
        await self.store.aput_json(TEMPLATES, template.id, data)
        if self.on_change is not None:
            await self.tasks._shared(self.on_change(template.id, data))

    # -- a cluster's catalog (kapa_core.cluster.catalog) ----------------------------------
    def local_templates(self) -> dict[str, dict[str, Any]]:
        return {key: template.to_json() for key, template in self.templates.items()}

    async def apply_remote_template(self, template_id: str,
                                    data: dict[str, Any] | None) -> None:
        """Take a template as another member wrote it (None: deleted). Its tasks come
        through the catalog on their own (the member that changed it saved them)."""
        if data is None:
            if self.templates.pop(template_id, None) is not None:
                await self.store.adelete(TEMPLATES, template_id)
            return
        try:
            self.templates[template_id] = TemplateDef(**data)
        except TypeError:
            return
        await self.store.aput_json(TEMPLATES, template_id, data)

    def evaluate(self, template: TemplateDef, program: Any = None, *,
                 notify: bool = True) -> Evaluated:
        """The template's pipeline and vars; ``program`` is its script already parsed.
        ``on_evaluated`` hears of it unless ``notify`` is false."""
        evaluated = evaluate(template.script, template.type, require_vars=False,
                             program=program)
        if notify and self.on_evaluated is not None:
            self.on_evaluated(template, evaluated)
        return evaluated

    async def _checked(self, body: dict[str, Any], existing: TemplateDef | None
                       ) -> TemplateDef:
        """``_resolve``, in a worker thread for a large script."""
        script = body.get("script")
        if isinstance(script, str) and len(script) > THREAD_SCRIPT_BYTES:
            return await trio.to_thread.run_sync(self._resolve, body, existing,
                                                 limiter=self.tasks.script_limiter)
        return self._resolve(body, existing)

    def _resolve(self, body: dict[str, Any], existing: TemplateDef | None) -> TemplateDef:
        """The template ``body`` describes, as Kapacitor takes it: a new template's type
        is its script's (``invalid task type: invalid`` when the script has no stream or
        batch chain, or both); an update keeps the script when none is given and the type
        unless one is, and the result must evaluate."""
        check_template_json(body)
        script = body.get("script") or (existing.script if existing else "")
        try:
            program = parse(script)
            inferred = task_type_of(program)
        except TickError as exc:
            raise APIError(400, f"invalid TICKscript: {exc}") from None
        if existing is None:
            if inferred not in ("stream", "batch"):
                raise APIError(400, "invalid task type: invalid")
            kind = inferred
        else:
            kind = body["type"] if body.get("type") in ("stream", "batch") else existing.type
        stamp = now()
        template = TemplateDef(existing.id if existing else "", kind, script,
                               existing.created if existing else stamp, stamp)
        try:
            self.evaluate(template, program)
        except TickError as exc:
            raise APIError(400, f"invalid TICKscript: {exc}") from None
        return template

    async def create(self, body: dict[str, Any]) -> TemplateDef:
        check_template_json(body)
        template_id = body.get("id") or str(uuid.uuid4())
        if not ID.fullmatch(template_id):
            raise APIError(400, f"template ID must contain only letters, numbers, '-', '.' "
                           f"and '_'. {go_quote(template_id)}")
        if template_id in self.templates:
            raise APIError(400, f"template {template_id} already exists")
        template = await self._checked(body, None)
        if template_id in self.templates:  # created while a large script was checked
            raise APIError(400, f"template {template_id} already exists")
        template.id = template_id
        self.templates[template_id] = template
        await self._save(template)
        return template

    async def update(self, template_id: str, body: dict[str, Any]) -> TemplateDef:
        check_template_json(body)
        existing = self.templates.get(template_id)
        if existing is None:
            raise APIError(404, "template does not exist, cannot update")
        template = await self._checked(body, existing)
        template.id = template_id
        users = [t for t in self.tasks.tasks.values() if t.template_id == template_id]

        def check_users() -> None:  # check every task before changing anything
            for task in users:
                trial = type(task)(**{**task.__dict__, "script": template.script,
                                      "type": template.type})
                try:
                    self.tasks.evaluate(trial)
                except TickError as exc:
                    raise APIError(400, f"failed to update template: task {task.id} would "
                                   f"break: {exc}") from None
        if users and len(template.script) * len(users) > THREAD_SCRIPT_BYTES:
            await trio.to_thread.run_sync(check_users, limiter=self.tasks.script_limiter)
        else:
            check_users()
        if self.templates.get(template_id) is not existing:
            raise APIError(409, f"template {template_id} was changed or deleted meanwhile; "
                           "retry")
        self.templates[template_id] = template
        await self._save(template)
        for task in users:
            task.script, task.type, task.modified = template.script, template.type, now()
            if task.status == "enabled":
                await self.tasks.master.stop(task.id)
                await self.tasks.enable(task)
            await self.tasks.save(task)
        return template

    async def delete(self, template_id: str) -> None:
        if self.templates.pop(template_id, None) is not None:
            await self.store.adelete(TEMPLATES, template_id)
            if self.on_change is not None:
                await self.tasks._shared(self.on_change(template_id, None))

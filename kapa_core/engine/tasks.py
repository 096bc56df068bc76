"""Task definitions: validation, storage, enabling — what /kapacitor/v1/tasks drives.

A task is saved only once its TICKscript evaluates without error; an enabled task is
started on save and again at every daemon start.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, cast

import trio

from kapa_core.engine.task_master import TaskMaster
from kapa_core.errors import APIError, KapaError, TickError
from kapa_core.gcpause import GC_PAUSE_BYTES, gc_paused
from kapa_core.logs import Logger
from kapa_core.models.duration import Duration
from kapa_core.pipeline.evaluate import Evaluated, Var, evaluate, task_type_of
from kapa_core.storage import SNAPSHOTS, TASKS, Store
from kapa_core.tick.ast import Dbrp
from kapa_core.tick.parser import parse
from kapa_core.tick.regex import compile_regex

#: Kapacitor's ID syntax (Go's RE2, where ``$`` does not match before a final newline):
#: letters of any script, ASCII digits, ``-``, ``.`` and ``_``.
ID = compile_regex(r"^[-._\p{L}0-9]+$")
#: Worker threads that may parse large scripts at the same time.
SCRIPT_WORKERS = 2
#: Scripts longer than this are parsed and checked in a worker thread.
THREAD_SCRIPT_BYTES = 16 * 1024
VAR_TYPES = ("bool", "int", "float", "string", "regex", "duration", "lambda", "list", "star")


class StartRefused(KapaError):
    """A task Kapacitor would refuse to start (e.g. a lambda comparing a string with a
    number): the message is Kapacitor's, without a prefix."""


def now() -> str:
    """The time as Kapacitor writes ``created``, ``modified`` and ``last-enabled``: Go's
    RFC 3339 with nanoseconds, trailing zeros of the fraction dropped."""
    ns = time.time_ns()
    seconds, fraction = divmod(ns, 1_000_000_000)
    text = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{fraction:09d}".rstrip("0")
    return f"{text}.{digits}Z" if digits else text + "Z"


def epoch(text: str) -> float | None:
    """Seconds since the epoch of a time :func:`now` wrote; None when empty or not one."""
    try:
        whole, _, fraction = text.rstrip("Z").partition(".")
        seconds = dt.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
        return seconds.timestamp() + (float(f"0.{fraction}") if fraction else 0.0)
    except ValueError:
        return None


class ClusterView(Protocol):
    """What the API shows of a cluster member's placement (kapa_core.cluster.member)."""

    def owner_of(self, task_id: str) -> str | None:
        """The member that owns the task (by placement over the live members)."""

    async def api_of(self, task_id: str) -> str | None:
        """The API address of the member running the task (None: none now)."""


@dataclass
class TaskDef:
    id: str
    type: str
    script: str
    dbrps: list[tuple[str, str]]
    vars: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: str = "disabled"
    template_id: str = ""
    created: str = ""
    modified: str = ""
    last_enabled: str = ""
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["dbrps"] = [list(d) for d in self.dbrps]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskDef:
        data = dict(data)
        data["dbrps"] = [tuple(d) for d in data.get("dbrps", [])]
        return cls(**data)


def parse_vars(raw: Any) -> dict[str, Var]:
    """The API's ``vars`` object to typed values, with errors naming the var."""
    if raw in (None, {}):
        return {}
    if not isinstance(raw, dict):
        raise APIError(400, "vars must be an object of {name: {type, value}}")
    out = {}
    for name, spec in raw.items():
        if not isinstance(spec, dict) or spec.get("type") not in VAR_TYPES:
            raise APIError(400, f"invalid var {name!r}: expected {{\"type\": one of "
                           f"{', '.join(VAR_TYPES)}, \"value\": ...}}")
        value: Any
        kind, value = spec["type"], spec.get("value")
        try:
            if kind == "duration":
                value = Duration(value) if isinstance(value, int) else Duration.parse(
                    str(value), tick=True)
            elif kind == "float":
                value = float(value)
            elif kind == "int":
                if isinstance(value, bool) or not isinstance(value, int | float) or (
                        isinstance(value, float) and not value.is_integer()):
                    raise ValueError("not an integer")
                value = int(value)
            elif kind == "bool" and not isinstance(value, bool):
                raise ValueError("not a boolean")
            elif kind in ("string", "regex", "lambda") and not isinstance(value, str):
                raise ValueError("not a string")
            elif kind == "regex":
                try:
                    compile_regex(value)
                except re.error as exc:
                    raise ValueError(f"invalid regex /{value}/: {exc}") from None
            elif kind == "list":
                # a star item is None here (its value, if any, means nothing, as in
                # Kapacitor): the evaluator reads it as *, the API lists it as a star
                value = [None if isinstance(item, dict) and item.get("type") == "star"
                         else item.get("value") if isinstance(item, dict) else item
                         for item in (value or [])]
        except (TypeError, ValueError) as exc:
            raise APIError(400, f"invalid value for var {name!r} of type {kind}: {exc}"
                           ) from None
        out[name] = Var(kind, value, str(spec.get("description", "")))
    return out


def json_kind(value: Any) -> str:
    """The JSON name of ``value``'s type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    names: dict[type, str] = {dict: "an object", list: "an array"}
    return names.get(type(value), type(value).__name__)


class TaskService:
    def __init__(self, store: Store, master: TaskMaster, log: Logger) -> None:
        self.store = store
        self.master = master
        self.log = log
        self.tasks: dict[str, TaskDef] = {}
        self.template_lookup: Any = lambda template_id: None
        #: Called with each task this service evaluates and the result (the HTTP API
        #: keeps the last pipelines, so that drawing a task just checked does not
        #: evaluate it again).
        self.on_evaluated: Callable[[TaskDef, Evaluated], None] | None = None
        #: A cluster member's catalog: told of every task this member saves or deletes
        #: (kapa_core.cluster.catalog), which applies other members' with apply_remote.
        self.on_saved: Callable[[str, dict[str, Any]], Awaitable[None]] | None = None
        self.on_deleted: Callable[[str], Awaitable[None]] | None = None
        #: A cluster member's view of who runs each task (None: a single daemon).
        self.cluster: ClusterView | None = None
        #: Large scripts are parsed, checked and drawn in worker threads, at most this
        #: many at once: each can take a few hundred MB while it is parsed, so concurrent
        #: requests queue here instead of adding up.
        self.script_limiter = trio.CapacityLimiter(SCRIPT_WORKERS)
        master.on_task_error = self._finished_with_error
        for key, data in store.items_json(TASKS):
            try:
                self.tasks[key] = TaskDef.from_json(data)
            except (TypeError, KeyError):
                log.error("stored task is unreadable; skipped", task=key)

    async def _finished_with_error(self, task_id: str, error: str) -> None:
        """A running task stopped on a node's error: as Kapacitor, the task stays
        enabled, is no longer executing and keeps the error until it starts again."""
        task = self.tasks.get(task_id)
        if task is None or self.master.get(task_id) is not None:
            return  # deleted, or started again meanwhile
        task.error = error
        await self.save(task)

    async def start_enabled(self) -> None:
        enabled = [task for task in self.tasks.values() if task.status == "enabled"]
        # Evaluating large scripts with the cyclic garbage collector running takes three
        # times as long (it goes over the growing heap again and again).
        with gc_paused(any(len(task.script) >= GC_PAUSE_BYTES for task in enabled)):
            for task in enabled:
                try:
                    await self._enable(task)
                except KapaError as exc:
                    task.error = str(exc)
                    self.log.error("failed to start task", task=task.id, err=str(exc))

    # -- what cluster placement moves (kapa_core.cluster.member.Tasks) -----------------
    def enabled(self) -> list[str]:
        return [t.id for t in self.tasks.values() if t.status == "enabled"]

    def running(self, task_id: str) -> bool:
        return self.master.get(task_id) is not None

    async def start(self, task_id: str) -> None:
        """Start an enabled task that is not running (placement gave it to this member)."""
        task = self.tasks.get(task_id)
        if task is None or task.status != "enabled" or self.running(task_id):
            return
        try:
            await self._enable(task)
        except KapaError as exc:
            task.error = str(exc)
            self.log.error("failed to start task", task=task.id, err=str(exc))

    async def stop(self, task_id: str) -> None:
        """Stop a running task that stays enabled (placement gave it to another member)."""
        await self.master.stop(task_id)

    def evaluate(self, task: TaskDef, program: Any = None, *, notify: bool = True
                 ) -> Evaluated:
        """``task``'s pipeline; ``program`` is its script already parsed, if at hand.
        ``on_evaluated`` hears of it unless ``notify`` is false."""
        evaluated = evaluate(task.script, task.type, parse_vars(task.vars),
                             dbrps=task.dbrps, program=program)
        if notify and self.on_evaluated is not None:
            self.on_evaluated(task, evaluated)
        return evaluated

    async def enable(self, task: TaskDef) -> None:
        await self._enable(task)

    async def _enable(self, task: TaskDef, evaluated: Evaluated | None = None) -> None:
        if evaluated is None:
            evaluated = self.evaluate(task)
        if evaluated.start_error:  # Kapacitor finds it as it builds the nodes
            raise StartRefused(evaluated.start_error)
        self._check_handlers(evaluated)
        if not self.master.router.may_run(task.id):
            return  # a cluster member: another member runs it (docs/cluster.md)
        running = await self.master.start(task.id, evaluated.pipeline, task.dbrps,
                                          since=epoch(task.last_enabled))
        task.error = running.error  # "" unless a node stopped it already

    def _check_handlers(self, evaluated: Evaluated) -> None:
        """Handlers Kapacitor fails to create when the task starts: a ``.kafka()`` whose
        cluster is no ``[[kafka]]`` element, a ``.post()`` with neither a URL nor a
        configured endpoint."""
        alerts = getattr(self.master.context, "alerts", None)
        if alerts is None:
            return
        for spec in evaluated.pipeline.walk():
            for use in getattr(spec, "handlers", ()):
                kind = getattr(use, "kind", "")
                if kind not in ("kafka", "post"):
                    continue
                section = "kafka" if kind == "kafka" else "httppost"
                try:
                    config = alerts.section_config(section)
                except KapaError:
                    continue
                elements = config if isinstance(config, tuple) else (config,)
                if kind == "kafka":
                    cluster = use.values.get("cluster", "")
                    if not any(getattr(e, "id", None) == cluster for e in elements):
                        raise StartRefused(f"failed to create kafka handler: unknown "
                                           f"cluster {json.dumps(cluster)}")
                    continue
                endpoint = use.values.get("endpoint", "")
                if not use.values.get("url") and not endpoint:
                    raise StartRefused("Either URL or endpoint must be non-empty")
                if not use.values.get("url") and not any(
                        getattr(e, "endpoint", None) == endpoint for e in elements):
                    raise StartRefused("failed to create HTTPPostService.Handler: An "
                                       "appropriately formatted url must be specified if "
                                       "an endpoint is not specified")

    async def save(self, task: TaskDef) -> None:
        data = task.to_json()
        await self.store.aput_json(TASKS, task.id, data)
        if self.on_saved is not None:
            await self._shared(self.on_saved(task.id, data))

    async def _shared(self, done: Awaitable[None]) -> None:
        try:
            await done
        except KapaError as exc:  # kept here, not known to the other members yet
            raise APIError(500, f"saved on this member but not shared with the cluster: "
                           f"{exc}") from None

    # -- a cluster's catalog (kapa_core.cluster.catalog.TaskStore) ------------------------
    def local(self) -> dict[str, dict[str, Any]]:
        return {task_id: task.to_json() for task_id, task in self.tasks.items()}

    async def apply_remote(self, task_id: str, data: dict[str, Any] | None) -> None:
        """Take a task as another member wrote it (None: it deleted it). A running task
        whose status, script, DBRPs or enablement changed is started again with its new
        definition (or stays stopped: disabled, or placed on another member)."""
        existing = self.tasks.get(task_id)
        if data is None:
            if existing is not None:
                await self.master.stop(task_id)
                del self.tasks[task_id]
                await self.store.adelete(TASKS, task_id)
                self.log.info("task deleted by another member", task=task_id)
            return
        try:
            task = TaskDef.from_json(data)
        except (TypeError, KeyError) as exc:
            self.log.error("task from the cluster's catalog is unreadable; skipped",
                           task=task_id, err=str(exc))
            return
        self.tasks[task_id] = task
        await self.store.aput_json(TASKS, task_id, data)
        changed = existing is None or any(getattr(existing, f) != getattr(task, f) for f in (
            "status", "script", "dbrps", "vars", "last_enabled", "template_id", "type"))
        if not changed:
            return
        self.log.info("task changed by another member", task=task_id, status=task.status)
        if self.running(task_id):
            await self.master.stop(task_id)
            await self.start(task_id)  # again, as changed, if it still runs here

    # -- API operations -------------------------------------------------------------------
    async def _checked(self, body: dict[str, Any], existing: TaskDef | None
                       ) -> tuple[TaskDef, Evaluated]:
        """The task ``body`` describes, checked and evaluated. A large script is parsed
        in a worker thread, so the API keeps answering other requests meanwhile."""
        script = body.get("script")
        for key in ("template-id", "type", "status"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise APIError(400, f"invalid {key}: expected a string, got "
                               f"{json_kind(body[key])}")
        template_id = body.get("template-id") or (existing.template_id if existing else "")
        if not isinstance(script, str) and template_id:
            template = self.template_lookup(template_id)
            script = template.script if template is not None else ""
        elif not isinstance(script, str) and existing is not None:
            script = existing.script  # e.g. a status change re-checks the stored script
        if isinstance(script, str) and len(script) > THREAD_SCRIPT_BYTES:
            return await trio.to_thread.run_sync(self._resolve, body, existing,
                                                 limiter=self.script_limiter)
        return self._resolve(body, existing)

    def _resolve(self, body: dict[str, Any], existing: TaskDef | None
                 ) -> tuple[TaskDef, Evaluated]:
        template_id = body.get("template-id", existing.template_id if existing else "")
        if template_id:
            template = self.template_lookup(template_id)
            if template is None:
                raise APIError(400, f"unknown template {template_id}: err: no template exists")
            if "script" in body and body["script"] != template.script:
                raise APIError(400, "cannot provide a script for a task made from a "
                               "template; change the template instead")
            body = {**body, "script": template.script, "type": template.type}
        script = body.get("script", existing.script if existing else "")
        if not isinstance(script, str) or not script.strip():
            raise APIError(400, "must provide TICKscript")
        try:
            program = parse(script)
        except TickError as exc:
            raise APIError(400, f"invalid TICKscript: {exc}") from None
        # The script decides the type, as in Kapacitor: a "type" given with it is ignored.
        kind = task_type_of(program)
        if kind not in ("stream", "batch"):
            raise APIError(400, "invalid task type: invalid")
        implicit = [(cast(Dbrp, s).database, cast(Dbrp, s).retention_policy)
                    for s in program.statements
                    if type(s).__name__ == "Dbrp"]
        explicit_raw = body.get("dbrps")
        explicit: list[tuple[str, str]] = []
        if explicit_raw:
            if not isinstance(explicit_raw, list) or not all(
                    isinstance(d, dict) and d.get("db") for d in explicit_raw):
                raise APIError(400, 'dbrps must be a list of {"db": ..., "rp": ...}')
            explicit = [(str(d["db"]), str(d.get("rp", ""))) for d in explicit_raw]
        dbrps = implicit or explicit or (existing.dbrps if existing and not implicit
                                         else [])
        status = body.get("status", existing.status if existing else "disabled")
        if status not in ("enabled", "disabled"):
            raise APIError(400, f"invalid status {status!r} (expected enabled or disabled)")
        raw_vars = body.get("vars", existing.vars if existing else {}) or {}
        parse_vars(raw_vars)
        stamp = now()
        task = TaskDef(
            id=existing.id if existing else "", type=kind, script=script, dbrps=dbrps,
            vars=raw_vars, status=status,
            template_id=body.get("template-id", existing.template_id if existing else ""),
            created=existing.created if existing else stamp, modified=stamp,
            last_enabled=existing.last_enabled if existing else "")
        try:
            evaluated = self.evaluate(task, program)  # parsed once, above
        except TickError as exc:
            raise APIError(400, f"invalid TICKscript: {exc}") from None
        # Checked once the script is evaluated, as Kapacitor does.
        if not dbrps:
            raise APIError(400, "must specify dbrp")
        if implicit and explicit:
            raise APIError(400, "cannot specify dbrp in both implicitly and explicitly")
        return task, evaluated

    async def create(self, body: dict[str, Any]) -> TaskDef:
        task_id = body.get("id") or str(uuid.uuid4())
        if not isinstance(task_id, str) or not ID.fullmatch(task_id):
            raise APIError(400, f"task ID must contain only letters, numbers, '-', '.' and "
                           f"'_'. {task_id!r}")
        if task_id in self.tasks:
            raise APIError(400, f"task {task_id} already exists")
        task, evaluated = await self._checked(body, None)
        if task_id in self.tasks:  # created meanwhile (a large script is checked in a thread)
            raise APIError(400, f"task {task_id} already exists")
        task.id = task_id
        refused = await self._apply_status(task, evaluated)
        self.tasks[task.id] = task
        try:
            await self.save(task)
        except BaseException:  # not stored: not half-created either
            self.tasks.pop(task.id, None)
            with trio.CancelScope(shield=True):
                await self.master.stop(task.id)
            raise
        if refused:
            raise APIError(400, refused)
        return task

    async def update(self, task_id: str, body: dict[str, Any]) -> TaskDef:
        existing = self.tasks.get(task_id)
        if existing is None:
            raise APIError(404, "task does not exist, cannot update")
        task, evaluated = await self._checked(body, existing)
        if self.tasks.get(task_id) is not existing:
            raise APIError(409, f"task {task_id} was changed or deleted meanwhile; retry")
        new_id = body.get("id", task_id)
        if new_id != task_id:
            if not isinstance(new_id, str) or not ID.fullmatch(new_id):
                raise APIError(400, f"invalid task ID {new_id!r}")
            if new_id in self.tasks:
                raise APIError(400, f"task {new_id} already exists")
            await self.master.stop(task_id)
            del self.tasks[task_id]
            await self.store.adelete(TASKS, task_id)
            if self.on_deleted is not None:
                await self._shared(self.on_deleted(task_id))
        task.id = new_id
        task.error = existing.error  # kept until the task starts again, as in Kapacitor
        was_enabled = existing.status == "enabled"
        if was_enabled and task.status == "enabled" and new_id == task_id:
            # As Kapacitor: only a change of status (or of ID) starts or stops the task;
            # a new script takes effect at the next enable (the kapacitor CLI's define
            # reloads by disabling and enabling, unless -no-reload).
            refused = ""
        else:
            refused = await self._apply_status(task, evaluated, was_enabled=was_enabled)
        self.tasks[task.id] = task
        await self.save(task)
        if refused:
            raise APIError(400, refused)
        return task

    async def _apply_status(self, task: TaskDef, evaluated: Evaluated | None = None, *,
                            was_enabled: bool = False) -> str:
        """Start or stop ``task`` as its status says. A task that fails to start is kept
        as Kapacitor keeps it (enabled, not executing, the failure as its error) and the
        failure is returned for the caller to answer with once the task is saved."""
        refused = ""
        if task.status == "enabled":
            if not was_enabled:  # as Kapacitor: when it becomes enabled, at its modified time
                task.last_enabled = task.modified or now()
            try:
                await self._enable(task, evaluated)
            except KapaError as exc:  # Kapacitor's words alone (it answers 500)
                await self.master.stop(task.id)
                task.error = refused = str(exc)
        else:
            await self.master.stop(task.id)
        return refused

    async def delete(self, task_id: str) -> None:
        await self.master.stop(task_id)
        if self.tasks.pop(task_id, None) is not None:
            await self.store.adelete(TASKS, task_id)
            await self.store.adelete(SNAPSHOTS, task_id)  # its saved node state too
            if self.on_deleted is not None:
                await self._shared(self.on_deleted(task_id))
            alerts = getattr(self.master.context, "alerts", None)
            if alerts is not None:  # the task's anonymous topics go with it, as in Kapacitor
                for topic in list(alerts.topics.topics):
                    if topic.startswith(f"main:{task_id}:"):
                        alerts.delete_topic(topic)

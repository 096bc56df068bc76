"""``POST /kapacitor/v1/scripts/check`` and ``/scripts/try``: a TICKscript checked, or
run on a few points, without creating a task (kapa-core additions; Kapacitor has none).

Both take the task API's words for the script: ``script``, ``type`` (``stream`` by
default; the script's chains decide, as for a task), ``dbrps``, ``vars`` (the task
API's typed vars), and ``template`` (true: check it as a template, a var without a
value is fine); ``id`` names the graph and the task the alert templates see
(``script`` by default). ``try`` also takes ``points`` (line protocol), ``db``/``rp``
(where the points are written: by default the task's first dbrp; a batch script takes
them as its queries' answer) and ``precision``.

A problem of the script (or of the points) is an answer like any other, 200 with
``ok: false`` and the errors at their line and column; a request that is not one
(bad JSON, no script, a value of the wrong type, too large) is a 400. Nothing is
stored and no task is made: see :mod:`kapa_core.engine.script_check` and
:mod:`kapa_core.engine.dryrun`.
"""

from __future__ import annotations

from typing import Any

import trio

from kapa_core.engine import dryrun
from kapa_core.engine.script_check import (
    DEFAULT_NAME,
    Checked,
    ScriptError,
    ScriptInput,
    check,
    check_dbrps,
    check_type,
)
from kapa_core.engine.tasks import ID, THREAD_SCRIPT_BYTES, TaskService, json_kind, parse_vars
from kapa_core.errors import APIError
from kapa_core.http.listing import json_body
from kapa_core.http.messages import Request, Response
from kapa_core.http.router import V1, Router
from kapa_core.http.tasks_api import check_vars_json
from kapa_core.logs import Logger

CHECK_PATH = V1 + "/scripts/check"
TRY_PATH = V1 + "/scripts/try"
#: The longest script either endpoint takes (an editor's script, not a generated one).
MAX_SCRIPT_CHARS = 256 * 1024
#: The longest ``points`` text a dry run takes.
MAX_POINTS_CHARS = 2 * 1024 * 1024
#: Dry runs at the same time; more wait their turn.
CONCURRENT_RUNS = 2


def _string(body: dict[str, Any], key: str, default: str = "") -> str:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise APIError(400, f"invalid {key}: expected a string, got {json_kind(value)}")
    return value


def script_input(body: dict[str, Any]) -> ScriptInput:
    """The script part of a request's body, checked; 400 for what is not a request."""
    script = body.get("script")
    if not isinstance(script, str):
        raise APIError(400, "must provide TICKscript: \"script\" must be a string" if
                       script is not None else "must provide TICKscript (\"script\")")
    if len(script) > MAX_SCRIPT_CHARS:
        raise APIError(400, f"script too large: {len(script)} characters (at most "
                       f"{MAX_SCRIPT_CHARS})")
    template = body.get("template", False)
    if not isinstance(template, bool):
        raise APIError(400, f"invalid template: expected true or false, got "
                       f"{json_kind(template)}")
    name = _string(body, "id", DEFAULT_NAME)
    if not ID.fullmatch(name):
        raise APIError(400, f"invalid id {name!r}: letters, digits, '-', '.' and '_'")
    raw_vars = body.get("vars")
    if raw_vars is not None and not isinstance(raw_vars, dict):
        raise APIError(400, "invalid vars: expected an object of {name: {type, value}}")
    check_vars_json(raw_vars)
    return ScriptInput(script, check_type(body.get("type")), check_dbrps(body.get("dbrps")),
                       parse_vars(raw_vars), template, name)


class ScriptsAPI:
    """The check and try routes; ``tasks`` is the daemon's task service (its task
    master's node context is what the dry runs' nodes are built with)."""

    def __init__(self, tasks: TaskService, *, bounds: dryrun.Bounds | None = None) -> None:
        self.tasks = tasks
        self.bounds = bounds or dryrun.Bounds()
        self.runs = trio.CapacityLimiter(CONCURRENT_RUNS)
        self.log = Logger("dryrun")

    def register(self, router: Router) -> None:
        router.add("POST", CHECK_PATH, self.check)
        router.add("POST", TRY_PATH, self.try_)

    async def _check(self, given: ScriptInput) -> Checked:
        """The check; a large script in a worker thread (as the task API parses one)."""
        if len(given.script) > THREAD_SCRIPT_BYTES:
            return await trio.to_thread.run_sync(check, given,
                                                 limiter=self.tasks.script_limiter)
        return check(given)

    async def check(self, request: Request) -> Response:
        given = script_input(json_body(request))
        return Response.json((await self._check(given)).to_json())

    async def try_(self, request: Request) -> Response:
        body = json_body(request)
        given = script_input(body)
        given.template = False  # a run needs a value for every var, template or not
        text = _string(body, "points")
        if len(text) > MAX_POINTS_CHARS:
            raise APIError(400, f"points too large: {len(text)} characters (at most "
                           f"{MAX_POINTS_CHARS})")
        precision = _string(body, "precision", "n")
        db, rp = _string(body, "db"), _string(body, "rp")
        checked = await self._check(given)
        if not db and checked.dbrps:
            db, rp = checked.dbrps[0] if not rp else (checked.dbrps[0][0], rp)
        elif db and "rp" not in body:  # the rp the task has for that database
            rp = next((r for d, r in checked.dbrps if d == db), "")
        points, errors = dryrun.parse_points(text, precision, db, rp, self.bounds)
        run = dryrun.DryRun(checked, errors)
        stream = checked.pipeline is not None and checked.pipeline.task_type == "stream"
        if stream and checked.ok and checked.dbrps and (db, rp) not in checked.dbrps:
            wanted = ", ".join(f'"{d}"."{r}"' for d, r in checked.dbrps)
            run.errors.append(ScriptError(
                f'the points are written to "{db}"."{rp}", which the task does not read '
                f"(its dbrps: {wanted})"))
        if not run.errors:
            async with self.runs:
                run = await dryrun.dry_run(checked, points, self.tasks.master.context,
                                           bounds=self.bounds, log=self.log)
        return Response.json(run.to_json())

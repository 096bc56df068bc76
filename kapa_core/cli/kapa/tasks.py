"""Tasks and templates: ``define``, ``define-template``, ``enable``, ``disable``,
``reload``, ``show``, ``show-template``, and the ``list``/``delete`` commands with their
``tasks`` and ``templates`` kinds (other modules add kinds through the registry).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, NoReturn

from kapa_core.cli.kapa.api import BASE, APIError, Client
from kapa_core.cli.kapa.flags import FlagSet, go_quote
from kapa_core.cli.kapa.output import (
    dbrps_text,
    decoder_error,
    go_sprintf,
    go_type_name,
    join_path,
    os_error,
    rfc822,
    var_value,
    width,
)
from kapa_core.cli.kapa.registry import Command, CommandError, Context, Registry
from kapa_core.gotemplate.gofmt import sprintln
from kapa_core.models.duration import Duration
from kapa_core.models.govalues import json_object, yaml_object

__all__ = ["register"]

TASKS = BASE + "/tasks"
TEMPLATES = BASE + "/templates"
LIMIT = 100
VAR_TYPES = frozenset({"bool", "int", "float", "string", "regex", "duration", "lambda",
                       "list", "star"})


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def _exit_usage(message: str, usage: Any) -> NoReturn:
    _err(message)
    usage()
    raise SystemExit(2)


def task_link(task_id: str) -> str:
    return join_path(TASKS, task_id)


def template_link(template_id: str) -> str:
    return join_path(TEMPLATES, template_id)


def _read_file(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except IsADirectoryError:
        raise CommandError(f"read {path}: is a directory") from None
    except OSError as exc:
        raise CommandError(os_error("open", path, exc)) from None


# -- listing helpers (shared with enable/disable/delete) -------------------------------
def list_tasks(client: Client, pattern: str, fields: list[str], offset: int = 0,
               limit: int = LIMIT) -> list[dict[str, Any]]:
    answer = client.get(TASKS, {
        "dot-view": "attributes", "script-format": "formatted", "replay-id": "",
        "pattern": pattern, "fields": fields, "offset": str(offset), "limit": str(limit),
    })
    return list(answer.get("tasks") or []) if isinstance(answer, dict) else []


def list_templates(client: Client, pattern: str, fields: list[str], offset: int = 0,
                   limit: int = LIMIT) -> list[dict[str, Any]]:
    answer = client.get(TEMPLATES, {
        "script-format": "formatted", "pattern": pattern, "fields": fields,
        "offset": str(offset), "limit": str(limit),
    })
    return list(answer.get("templates") or []) if isinstance(answer, dict) else []


def _href(item: Mapping[str, Any]) -> str:
    link = item.get("link")
    href = link.get("href", "") if isinstance(link, dict) else ""
    if not href:
        rel = link.get("rel", "") if isinstance(link, dict) else ""
        raise CommandError(f"invalid link {{{rel} }}")
    return str(href)


# -- define --------------------------------------------------------------------------
DEFINE_USAGE = """Usage: kapacitor define <task ID> [options]

	Create or update a task.

	A task is defined via a TICKscript that defines the data processing pipeline of the task.

	If an option is absent it will be left unmodified.

	If the task is enabled then it will be reloaded unless -no-reload is specified.

For example:

	You must define a task for the first time with all the flags.

		$ kapacitor define my_task -tick path/to/TICKscript -type stream -dbrp mydb.myrp

	Later you can change a single property of the task by referencing its name
	and only providing the single option you wish to modify.

		$ kapacitor define my_task -tick path/to/TICKscript

	or

		$ kapacitor define my_task -dbrp mydb.myrp -dbrp otherdb.default

	NOTE: you must specify all 'dbrp' flags you desire if you wish to modify them.

Options:

"""


def _parse_quoted(text: str) -> tuple[str, int]:
    """Go's ``parseQuotedStr``: the unescaped quoted string and the bytes read."""
    quote = text[0]
    out: list[str] = []
    last = 1
    i = 1
    while i < len(text) - 1:
        if text[i] == "\\" and text[i + 1] == quote:
            out.append(text[last:i])
            out.append(quote)
            i += 2
            last = i
        elif text[i] == quote:
            break
        else:
            i += 1
    out.append(text[last:i])
    return "".join(out), i + 1


class DBRPValue:
    """The repeatable ``-dbrp "db"."rp"`` flag (quotes optional)."""

    is_bool = False
    type_name = "value"

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def set(self, text: str) -> None:
        if not text:
            raise ValueError("dbrp cannot be empty")
        if text[0] == '"':
            db, n = _parse_quoted(text)
        else:
            n = text.find(".")
            if n == -1:
                raise ValueError("does not contain a '.', it must be in the form "
                                 '"dbname"."rpname" where the quotes are optional.')
            db = text[:n]
        if n >= len(text):
            # Go indexes past the end here and panics; say what is wrong instead.
            raise ValueError("dbrp must specify retention policy, do you have a missing "
                             "or extra '.'?")
        if text[n] != ".":
            raise ValueError("dbrp must specify retention policy, do you have a missing "
                             "or extra '.'?")
        rest = text[n + 1:]
        if rest[:1] == '"':
            rp, _ = _parse_quoted(rest)
        else:
            rp = rest
        self.items.append({"db": db, "rp": rp})

    def string(self) -> str:
        return "[" + " ".join(f"{{{d['db']} {d['rp']}}}" for d in self.items) + "]"

    def zero_string(self) -> str:
        return "[]"


def define_flags() -> tuple[FlagSet, dict[str, Any]]:
    flags = FlagSet("define", usage=lambda: define_usage(flags))
    values: dict[str, Any] = {
        "tick": flags.string("tick", "", "Path to the TICKscript"),
        "type": flags.string("type", "", "The task type (stream|batch)"),
        "template": flags.string("template", "", "Optional template ID"),
        "vars": flags.string("vars", "", "Optional path to a JSON vars file"),
        "file": flags.string("file", "", "Optional path to a YAML or JSON template task "
                             "file. If id is given in the task file, it must match the "
                             "Task id given on the command line."),
        "no-reload": flags.bool("no-reload", False,
                                "Do not reload the task even if it is enabled"),
        "dbrp": DBRPValue(),
    }
    flags.var(values["dbrp"], "dbrp", 'A database and retention policy pair of the form '
              '"db"."rp" the quotes are optional. The flag can be specified multiple times.')
    return flags, values


def define_usage(flags: FlagSet | None = None) -> None:
    sys.stderr.write(DEFINE_USAGE + "\n")
    (flags or define_flags()[0]).print_defaults()


def _go_var(name: str, var: Any, *, in_list: bool = False) -> dict[str, Any]:
    """One var as the Go client decodes it and encodes it again."""
    if var is None:
        var = {}
    if not isinstance(var, dict):
        raise CommandError(f"json: cannot unmarshal {_json_kind(var)} into Go value of "
                           "type client.Var")
    kind = var.get("type")
    if kind is None:
        # Decodes (as Go's unknown VarType 0), fails when the request is encoded.
        return {"type": None, "value": var.get("value"), "description": ""}
    if not isinstance(kind, str) or kind not in VAR_TYPES:
        raise CommandError(f"unknown VarType {kind}")
    value = var.get("value")
    description = var.get("description", "")
    if not isinstance(description, str):
        description = ""
    if value is not None and not in_list:
        if kind == "duration":
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise CommandError(f"invalid var {name}: expected int or string value")
            if isinstance(value, str):
                try:
                    value = int(Duration.parse(value, tick=True))
                except ValueError as exc:
                    raise CommandError(f"invalid duration string for var {name}: {exc}"
                                       ) from None
            elif isinstance(value, float):
                if not value.is_integer():
                    raise CommandError(f"invalid var {name}: strconv.ParseInt: parsing "
                                       f"{go_quote(repr(value))}: invalid syntax")
                value = int(value)
        elif kind == "int":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise CommandError(f"invalid var {name}: expected int value")
            if isinstance(value, float):
                if not value.is_integer():
                    raise CommandError(f"invalid var {name}: strconv.ParseInt: parsing "
                                       f"{go_quote(repr(value))}: invalid syntax")
                value = int(value)
        elif kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise CommandError(f"invalid var {name}: expected float value")
            value = float(value)
        elif kind == "list":
            if not isinstance(value, list):
                raise CommandError(f"invalid var {name}: expected list of vars")
            items = []
            for item in value:
                if not isinstance(item, dict):
                    raise CommandError(f"invalid var {name}: expected list of vars")
                if "type" not in item:
                    raise CommandError(
                        f"invalid var {name}: expected list type key in object")
                if "value" not in item:
                    raise CommandError(
                        f"invalid var {name}: expected list value key in object")
                items.append(_go_var(name, item, in_list=True))
            value = items
    return {"type": kind, "value": value, "description": description}


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _go_vars(data: Any) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CommandError(f"json: cannot unmarshal {_json_kind(data)} into Go value of "
                           "type map[string]client.Var")
    return {str(name): _go_var(str(name), var) for name, var in data.items()}


def _check_encodable(task_vars: dict[str, Any]) -> None:
    """Vars decoded without a type cannot be sent: the Go client fails encoding them."""
    if any(var["type"] is None or (var["type"] == "list" and isinstance(var["value"], list)
                                   and any(item["type"] is None for item in var["value"]))
           for var in task_vars.values()):
        raise CommandError("json: error calling MarshalText for type client.VarType: "
                           "unknown VarType 0")


def _load_vars_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise CommandError(f"failed to open file {path}: {os_error('open', path, exc)}"
                           ) from None
    try:
        data = json_object(raw)
    except ValueError as exc:
        raise CommandError(f"invalid JSON in file {path}: "
                           f"{decoder_error(str(exc), 'client.TaskVars', raw)}") from None
    # A map of vars first; if that does not decode, a task vars file ({"vars": ...}).
    if isinstance(data, dict):
        try:
            return _go_vars(data)
        except CommandError:
            pass
        try:
            return _go_vars(data.get("vars"))
        except CommandError as exc:
            raise CommandError(f"invalid JSON in file {path}: {exc}") from None
    raise CommandError(f"invalid JSON in file {path}: json: cannot unmarshal "
                       f"{_json_kind(data)} into Go value of type client.TaskVars")


def _load_task_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise CommandError(f"failed to open file {path}: {os_error('open', path, exc)}"
                           ) from None
    ext = path[path.rfind("."):] if "." in path.rsplit("/", 1)[-1] else ""
    if ext in (".yaml", ".yml"):
        try:
            data: Any = yaml_object(raw)
        except ValueError as exc:
            raise CommandError(f"failed to unmarshal yaml task vars file {go_quote(path)}: "
                               f"{go_type_name(str(exc), 'client.TaskVars')}") from None
    elif ext == ".json":
        try:
            data = json_object(raw)
        except ValueError as exc:
            raise CommandError(f"failed to unmarshal json task vars file {go_quote(path)}: "
                               f"{go_type_name(str(exc), 'client.TaskVars')}") from None
    else:
        raise CommandError("bad file extension. Must be YAML or JSON")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CommandError(f"failed to unmarshal task vars file {go_quote(path)}: "
                           f"json: cannot unmarshal {_json_kind(data)} into Go value of "
                           "type client.TaskVars")
    out: dict[str, Any] = {}
    if data.get("id"):
        out["id"] = str(data["id"])
    if data.get("template-id"):
        out["template-id"] = str(data["template-id"])
    dbrps = data.get("dbrps")
    if dbrps:
        if not isinstance(dbrps, list) or not all(isinstance(d, dict) for d in dbrps):
            raise CommandError(f"failed to unmarshal task vars file {go_quote(path)}: "
                               "json: cannot unmarshal into Go struct field "
                               "TaskVars.dbrps of type []client.DBRP")
        out["dbrps"] = [{"db": str(d.get("db", "")), "rp": str(d.get("rp", ""))}
                        for d in dbrps]
    task_vars = _go_vars(data.get("vars"))
    if task_vars:
        out["vars"] = task_vars
    return out


def _get_task(client: Client, task_id: str) -> dict[str, Any]:
    """The task, or ``{}`` if it cannot be read (``define`` ignores the error)."""
    link = task_link(task_id)
    if not link:
        return {}
    try:
        answer = client.get(link, {"dot-view": "attributes", "script-format": "formatted",
                                   "replay-id": ""})
    except APIError:
        return {}
    return answer if isinstance(answer, dict) else {}


def do_define(ctx: Context, args: list[str]) -> None:
    flags, values = define_flags()
    # One task ID and pairs of flags: Kapacitor's client counts the arguments.
    if len(args) % 2 == 0:
        _exit_usage("Must provide a task ID.", flags.usage)
    flags.parse(args[1:])
    task_id = args[0]
    script = _read_file(values["tick"].value) if values["tick"].value else ""
    task_type = values["type"].value if values["type"].value in ("stream", "batch") else ""
    task_vars: dict[str, Any] = {}
    if values["vars"].value:
        task_vars = _load_vars_file(values["vars"].value)
    file_opts: dict[str, Any] = {}
    task_file = values["file"].value
    if task_file:
        file_opts = _load_task_file(task_file)
    client = ctx.client
    link = task_link(task_id)
    task = _get_task(client, task_id)
    dbrps = values["dbrp"].items
    if not task.get("id"):
        if task_file:
            body = dict(file_opts)
            if not body.get("id"):
                body = {"id": task_id, **body}
            elif body["id"] != task_id:
                raise CommandError("Task id given on command line does not match id in "
                                   + task_file)
        else:
            body = _options(task_id, values["template"].value, task_type, dbrps, script,
                            task_vars, status="disabled")
        _check_encodable(body.get("vars") or {})
        client.post(TASKS, body)
    else:
        if task_file:
            body = dict(file_opts)
            if not body.get("id"):
                body = {"id": task_id, **body}
            elif body["id"] != task_id:
                raise CommandError("Task id given on command line does not match id in "
                                   + task_file)
        else:
            body = _options("", values["template"].value, task_type, dbrps, script,
                            task_vars)
        _check_encodable(body.get("vars") or {})
        _patch(client, link, body)
    if not values["no-reload"].value and task.get("status") == "enabled":
        _patch(client, link, {"status": "disabled"})
        _patch(client, link, {"status": "enabled"})


def _patch(client: Client, link: str, body: dict[str, Any]) -> None:
    if not link:
        raise CommandError("invalid link { }")
    client.patch(link, body)


def _options(task_id: str, template: str, task_type: str, dbrps: list[dict[str, str]],
             script: str, task_vars: dict[str, Any], status: str = "") -> dict[str, Any]:
    """Task options as the Go client encodes them: empty fields left out."""
    body: dict[str, Any] = {}
    if task_id:
        body["id"] = task_id
    if template:
        body["template-id"] = template
    if task_type:
        body["type"] = task_type
    if dbrps:
        body["dbrps"] = dbrps
    if script:
        body["script"] = script
    if status:
        body["status"] = status
    if task_vars:
        body["vars"] = task_vars
    return body


# -- define-template -------------------------------------------------------------------
DEFINE_TEMPLATE_USAGE = """Usage: kapacitor define-template <template ID> [options]

	Create or update a template.

	A template is defined via a TICKscript that defines the data processing pipeline of the template.

	If an option is absent it will be left unmodified.

	NOTE: Updating a template will reload all associated tasks.

For example:

	You must define a template for the first time with all the flags.

		$ kapacitor define-template my_template -tick path/to/TICKscript -type stream

	Later you can change a single property of the template by referencing its name
	and only providing the single option you wish to modify.

		$ kapacitor define-template my_template -tick path/to/TICKscript

	or

		$ kapacitor define-template my_template -type batch

Options:

"""


def define_template_flags() -> tuple[FlagSet, dict[str, Any]]:
    flags = FlagSet("define-template", usage=lambda: define_template_usage(flags))
    values: dict[str, Any] = {
        "tick": flags.string("tick", "", "Path to the TICKscript"),
        "type": flags.string("type", "", "The template type (stream|batch)"),
    }
    return flags, values


def define_template_usage(flags: FlagSet | None = None) -> None:
    sys.stderr.write(DEFINE_TEMPLATE_USAGE + "\n")
    (flags or define_template_flags()[0]).print_defaults()


def do_define_template(ctx: Context, args: list[str]) -> None:
    flags, values = define_template_flags()
    if len(args) < 1:
        _exit_usage("Must provide a template ID.", flags.usage)
    flags.parse(args[1:])
    template_id = args[0]
    script = _read_file(values["tick"].value) if values["tick"].value else ""
    template_type = values["type"].value if values["type"].value in ("stream", "batch") \
        else ""
    link = template_link(template_id)
    existing: dict[str, Any] = {}
    if link:
        try:
            answer = ctx.client.get(link, {"script-format": "formatted"})
            existing = answer if isinstance(answer, dict) else {}
        except APIError:
            existing = {}
    body: dict[str, Any] = {}
    if not existing.get("id"):
        if template_id:
            body["id"] = template_id
        if template_type:
            body["type"] = template_type
        if script:
            body["script"] = script
        ctx.client.post(TEMPLATES, body)
    else:
        if template_type:
            body["type"] = template_type
        if script:
            body["script"] = script
        ctx.client.patch(link, body)


# -- enable / disable / reload ---------------------------------------------------------
ENABLE_USAGE = """Usage: kapacitor enable [task ID...]

	Enable and start a task running from the live data.

For example:

	You can enable by specific task ID.

		$ kapacitor enable cpu_alert

	Or, you can enable by glob:

		$ kapacitor enable *_alert
"""
DISABLE_USAGE = """Usage: kapacitor disable [task ID...]

	Disable and stop a task running.

For example:

	You can disable by specific task ID.

		$ kapacitor disable cpu_alert

	Or, you can disable by glob:

		$ kapacitor disable *_alert
"""
RELOAD_USAGE = """Usage: kapacitor reload [task ID...]

	Disable then enable a running task.

For example:

	You can reload by specific task ID.

		$ kapacitor reload cpu_alert

	Or, you can reload by glob:

		$ kapacitor reload *_alert
"""


def _printer(text: str) -> Any:
    def show() -> None:
        sys.stderr.write(text + "\n")
    return show


def _set_status(ctx: Context, args: list[str], status: str, usage: Any) -> None:
    if len(args) < 1:
        _exit_usage("Must pass at least one task ID", usage)
    verb = "enabling" if status == "enabled" else "disabling"
    for pattern in args:
        offset = 0
        while True:
            try:
                tasks = list_tasks(ctx.client, pattern, ["link"], offset)
            except APIError as exc:
                raise CommandError(f"listing tasks: {exc}") from None
            for task in tasks:
                try:
                    ctx.client.patch(_href(task), {"status": status})
                except (APIError, CommandError) as exc:
                    raise CommandError(f"{verb} task {task.get('id', '')}: {exc}") from None
            if len(tasks) != LIMIT:
                break
            offset += LIMIT


def do_enable(ctx: Context, args: list[str]) -> None:
    _set_status(ctx, args, "enabled", _printer(ENABLE_USAGE))


def do_disable(ctx: Context, args: list[str]) -> None:
    _set_status(ctx, args, "disabled", _printer(DISABLE_USAGE))


def do_reload(ctx: Context, args: list[str]) -> None:
    if len(args) < 1:
        _exit_usage("Must pass at least one task ID", _printer(RELOAD_USAGE))
    do_disable(ctx, args)
    do_enable(ctx, args)


# -- show / show-template --------------------------------------------------------------
SHOW_USAGE = """Usage: kapacitor show [-replay] [task ID]

	Show details about a specific task.

Options:
"""
SHOW_TEMPLATE_USAGE = """Usage: kapacitor show-template [template ID]

	Show details about a specific template.
"""


def show_flags() -> tuple[FlagSet, Any]:
    flags = FlagSet("show", usage=lambda: show_usage(flags))
    replay = flags.string("replay", "", "Optional replay ID. If set the task information is "
                          "in the context of the running replay.")
    return flags, replay


def show_usage(flags: FlagSet | None = None) -> None:
    sys.stderr.write(SHOW_USAGE + "\n")
    (flags or show_flags()[0]).print_defaults()


def _println(ctx: Context, *parts: Any) -> None:
    ctx.write(sprintln(*parts))


def do_show(ctx: Context, args: list[str]) -> None:
    flags, replay = show_flags()
    args = flags.parse(args)
    if len(args) != 1:
        _exit_usage("Must specify one task ID", show_usage)
    link = task_link(args[0])
    if not link:
        raise CommandError("invalid link {self }")
    task = ctx.client.get(link, {"dot-view": "attributes", "script-format": "formatted",
                                 "replay-id": replay.value})
    if not isinstance(task, dict):
        raise CommandError("failed to decode JSON: json: cannot unmarshal "
                           f"{_json_kind(task)} into Go value of type client.Task")
    if ctx.json_output:
        ctx.print_json(task)
        return
    task_vars = task.get("vars") or {}
    lines = [
        ("ID:", task.get("id", "")),
        ("Error:", task.get("error", "")),
        ("Template:", task.get("template-id", "")),
        ("Type:", _task_type(task.get("type"))),
        ("Status:", _task_status(task.get("status"))),
        ("Executing:", bool(task.get("executing", False))),
        ("Created:", rfc822(task.get("created"))),
        ("Modified:", rfc822(task.get("modified"))),
        ("LastEnabled:", rfc822(task.get("last-enabled"))),
    ]
    shown_vars = [(name, task_vars[name].get("type", ""), var_value(task_vars[name], name))
                  for name in sorted(task_vars)]
    for label, value in lines:
        _println(ctx, label, value)
    _println(ctx, "Databases Retention Policies:", dbrps_text(task.get("dbrps")))
    ctx.write(f"TICKscript:\n{task.get('script', '')}\n")
    if task_vars:
        ctx.write("Vars:\n")
        fmt = "%-30s%-10v%-40v\n"
        ctx.write(go_sprintf(fmt, "Name", "Type", "Value"))
        for name, kind, value in shown_vars:
            ctx.write(go_sprintf(fmt, name, kind, value))
    ctx.write(f"DOT:\n{task.get('dot', '')}\n")


def _task_type(value: Any) -> str:
    return value if value in ("stream", "batch") else "invalid"


def _task_status(value: Any) -> str:
    return value if value in ("enabled", "disabled") else "unknown TaskStatus 0"


def do_show_template(ctx: Context, args: list[str]) -> None:
    if len(args) != 1:
        _exit_usage("Must specify one template ID", _printer(SHOW_TEMPLATE_USAGE))
    link = template_link(args[0])
    if not link:
        raise CommandError("invalid link {self }")
    template = ctx.client.get(link, {"script-format": "formatted"})
    if not isinstance(template, dict):
        raise CommandError("failed to decode JSON: json: cannot unmarshal "
                           f"{_json_kind(template)} into Go value of type client.Template")
    if ctx.json_output:
        ctx.print_json(template)
        return
    template_vars = template.get("vars") or {}
    rows = []
    for name in sorted(template_vars):
        var = template_vars[name]
        value = var_value(var, name)
        rows.append((name, var.get("type", ""), "<required>" if value is None else value,
                     var.get("description", "")))
    _println(ctx, "ID:", template.get("id", ""))
    _println(ctx, "Error:", template.get("error", ""))
    _println(ctx, "Type:", _task_type(template.get("type")))
    _println(ctx, "Created:", rfc822(template.get("created")))
    _println(ctx, "Modified:", rfc822(template.get("modified")))
    ctx.write(f"TICKscript:\n{template.get('script', '')}\n")
    ctx.write("Vars:\n")
    fmt = "%-30s%-10v%-40v%-40s\n"
    ctx.write(go_sprintf(fmt, "Name", "Type", "Default Value", "Description"))
    for row in rows:
        ctx.write(go_sprintf(fmt, *row))
    ctx.write(f"DOT:\n{template.get('dot', '')}\n")


# -- list / delete ---------------------------------------------------------------------
LIST_USAGE = """Usage: kapacitor list (tasks|templates|recordings|replays|topics|topic-handlers|service-tests) [ID or pattern]...

	List tasks, templates, recordings, replays, topics or handlers and their current state.

	If no ID or pattern is given then all items will be listed.

	Listing handlers requires that the topic ID or pattern be specified before the handler patterns.

		$ kapacitor list topic-handlers [topicID or pattern] [ID or pattern]

	For example list all handlers in the system topic

		$ kapacitor list topic-handlers system

	For example list all email* handlers in the system topic

		$ kapacitor list topic-handlers system email*

"""
DELETE_USAGE = """Usage: kapacitor delete (tasks|templates|recordings|replays|topics|topic-handlers) [ID or pattern]...

	Delete a tasks, templates, recordings, replays, topics or handlers.

	If a task is enabled it will be disabled and then deleted.

	Deleting a handler requires that the topic be specified before the pattern.

		$ kapacitor delete topic-handlers [topic] [ID or pattern]


For example:

	You can delete task:

		$ kapacitor delete tasks my_task

	Or you can delete items by glob:

		$ kapacitor delete tasks *_alert

	You can delete recordings:

		$ kapacitor delete recordings b0a2ba8a-aeeb-45ec-bef9-1a2939963586

	You can delete a handler in the topic 'system':

		$ kapacitor delete topic-handlers system slack
"""


def list_command(registry: Registry) -> Any:
    def run(ctx: Context, args: list[str]) -> None:
        if not args:
            _exit_usage("Must specify 'tasks', 'recordings', 'replays', 'topics', or "
                        "'topic-handlers'", _printer(LIST_USAGE))
        patterns = args[1:] if len(args) >= 2 else [""]
        kind = registry.kinds["list"].get(args[0])
        if kind is None:
            raise CommandError(
                f"cannot list '{args[0]}' did you mean 'tasks', 'recordings', 'replays', "
                "'topics', 'topic-handlers' or 'service-tests'?")
        kind(ctx, patterns)
    return run


def delete_command(registry: Registry) -> Any:
    def run(ctx: Context, args: list[str]) -> None:
        if len(args) < 2:
            _exit_usage("Must pass at least one ID", _printer(DELETE_USAGE))
        kind = registry.kinds["delete"].get(args[0])
        if kind is None:
            raise CommandError(
                f"cannot delete '{args[0]}' did you mean 'tasks', 'templates', "
                "'recordings', 'replays', 'topics' or 'topic-handlers'?")
        kind(ctx, args[1:])
    return run


def list_tasks_kind(ctx: Context, patterns: list[str]) -> None:
    all_tasks: list[dict[str, Any]] = []
    max_id = 2
    for pattern in patterns:
        offset = 0
        while True:
            tasks = list_tasks(ctx.client, pattern,
                               ["type", "status", "executing", "dbrps"], offset)
            all_tasks.extend(tasks)
            for task in tasks:
                max_id = max(max_id, width(str(task.get("id", ""))))
            if len(tasks) != LIMIT:
                break
            offset += LIMIT
    all_tasks.sort(key=lambda t: str(t.get("id", "")).encode())
    if ctx.json_output:
        ctx.print_json(all_tasks)
        return
    fmt = f"%-{max_id + 1}s%-10v%-10v%-10v%s\n"
    out = [go_sprintf(fmt, "ID", "Type", "Status", "Executing",
                      "Databases and Retention Policies")]
    for task in all_tasks:
        out.append(go_sprintf(fmt, task.get("id", ""), _task_type(task.get("type")),
                              _task_status(task.get("status")),
                              bool(task.get("executing", False)),
                              dbrps_text(task.get("dbrps"))))
    ctx.write("".join(out))


def list_templates_kind(ctx: Context, patterns: list[str]) -> None:
    all_templates: list[dict[str, Any]] = []
    max_id = 2
    for pattern in patterns:
        offset = 0
        while True:
            templates = list_templates(ctx.client, pattern, ["type", "vars"], offset)
            all_templates.extend(templates)
            for template in templates:
                max_id = max(max_id, width(str(template.get("id", ""))))
            if len(templates) != LIMIT:
                break
            offset += LIMIT
    all_templates.sort(key=lambda t: str(t.get("id", "")).encode())
    if ctx.json_output:
        ctx.print_json(all_templates)
        return
    fmt = f"%-{max_id + 1}s%-10v%-40v\n"
    out = [go_sprintf(fmt, "ID", "Type", "Vars")]
    for template in all_templates:
        names = sorted((template.get("vars") or {}).keys())
        out.append(go_sprintf(fmt, template.get("id", ""),
                              _task_type(template.get("type")), ",".join(names)))
    ctx.write("".join(out))


def delete_tasks_kind(ctx: Context, patterns: list[str]) -> None:
    for pattern in patterns:
        while True:
            tasks = list_tasks(ctx.client, pattern, ["link"])
            for task in tasks:
                ctx.client.delete(_href(task))
            if len(tasks) != LIMIT:
                break


def delete_templates_kind(ctx: Context, patterns: list[str]) -> None:
    for pattern in patterns:
        while True:
            templates = list_templates(ctx.client, pattern, ["link"])
            for template in templates:
                ctx.client.delete(_href(template))
            if len(templates) != LIMIT:
                break


def register(registry: Registry) -> None:
    registry.add(Command("define", do_define, define_usage))
    registry.add(Command("define-template", do_define_template, define_template_usage))
    registry.add(Command("enable", do_enable, _printer(ENABLE_USAGE)))
    registry.add(Command("disable", do_disable, _printer(DISABLE_USAGE)))
    registry.add(Command("reload", do_reload, _printer(RELOAD_USAGE)))
    registry.add(Command("show", do_show, show_usage, json=True))
    registry.add(Command("show-template", do_show_template, _printer(SHOW_TEMPLATE_USAGE),
                         json=True))
    registry.add(Command("list", list_command(registry), _printer(LIST_USAGE), json=True))
    registry.add(Command("delete", delete_command(registry), _printer(DELETE_USAGE)))
    registry.add_kind("list", "tasks", list_tasks_kind)
    registry.add_kind("list", "templates", list_templates_kind)
    registry.add_kind("delete", "tasks", delete_tasks_kind)
    registry.add_kind("delete", "templates", delete_templates_kind)

"""The ``[load]`` directory: templates, tasks and task-from-template files at startup.

    <dir>/templates/*.tick            templates (ID = file name)
    <dir>/tasks/*.tick                tasks, with dbrp statements, loaded enabled
    <dir>/tasks/*.{json,yaml,yml}     tasks from templates: template-id, dbrps, vars
    <dir>/handlers/*.{json,yaml,yml}  topic handlers (loaded by the alerting service)

Loaded items are remembered in the ``load`` store: an item whose file is gone is deleted
at the next load (startup or SIGHUP). A bad file is logged with its path and skipped;
the others still load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]  # PyYAML ships no types

from kapa_core.engine.tasks import TaskService
from kapa_core.engine.templates import TemplateService
from kapa_core.errors import APIError, KapaError
from kapa_core.logs import Logger
from kapa_core.storage import LOAD, Store
from kapa_core.tick import limits


def _read(path: Path) -> str:
    """A file's text; one larger than ``[task] max-script-size`` is refused unread."""
    limit = limits.current().max_script_size
    if limit:
        size = path.stat().st_size
        if size > limit:
            raise limits.too_large(size, limit)
    return path.read_text(encoding="utf-8")


def _read_structured(path: Path) -> dict[str, Any]:
    text = _read(path)
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError("expected an object")
    return data


def _vars_json(raw: Any) -> dict[str, Any]:
    """Vars as the task API takes them; YAML files may give plain {name: {type, value}}."""
    return dict(raw or {})


async def load_directory(directory: str, tasks: TaskService, templates: TemplateService,
                         store: Store, log: Logger, alerts: Any = None) -> int:
    """Load everything under ``directory``; returns the number of files that failed."""
    root = Path(directory)
    if not root.is_dir():
        log.warn("load directory does not exist", dir=directory)
        return 0
    failed = 0
    seen: set[str] = set()

    async def upsert(kind: str, item_id: str, body: dict[str, Any], path: Path) -> None:
        nonlocal failed
        try:
            if kind == "template":
                if item_id in templates.templates:
                    await templates.update(item_id, body)
                else:
                    await templates.create({**body, "id": item_id})
            else:
                if item_id in tasks.tasks:
                    await tasks.update(item_id, {**body, "status": "disabled"})
                    await tasks.update(item_id, {"status": "enabled"})
                else:
                    await tasks.create({**body, "id": item_id, "status": "enabled"})
            seen.add(f"{kind}:{item_id}")
            await store.aput(LOAD, f"{kind}:{item_id}", str(path).encode())
            log.info("loaded from the load directory", kind=kind, id=item_id, file=str(path))
        except (APIError, KapaError, OSError, ValueError) as exc:
            failed += 1
            log.error("failed to load file", file=str(path), err=str(exc))

    async def upsert_script(kind: str, path: Path) -> None:
        nonlocal failed
        try:
            script = _read(path)
        except (KapaError, OSError, ValueError) as exc:  # too large, unreadable, not UTF-8
            failed += 1
            log.error("failed to load file", file=str(path), err=str(exc))
            return
        await upsert(kind, path.stem, {"script": script}, path)

    for path in sorted((root / "templates").glob("*.tick")):
        await upsert_script("template", path)
    for path in sorted((root / "tasks").glob("*")):
        if path.suffix == ".tick":
            await upsert_script("task", path)
        elif path.suffix in (".json", ".yaml", ".yml"):
            try:
                data = _read_structured(path)
            except (OSError, ValueError, yaml.YAMLError) as exc:
                failed += 1
                log.error("failed to load file", file=str(path), err=str(exc))
                continue
            if data.get("id", path.stem) != path.stem:
                failed += 1
                log.error("failed to load file", file=str(path),
                          err=f"id {data.get('id')!r} does not match the file name")
                continue
            body = {"template-id": data.get("template-id", data.get("template_id", "")),
                    "dbrps": data.get("dbrps"), "vars": _vars_json(data.get("vars"))}
            await upsert("task", path.stem, body, path)
    for path in sorted((root / "handlers").glob("*")) if alerts is not None else ():
        if path.suffix not in (".json", ".yaml", ".yml"):
            continue
        try:
            data = _read_structured(path)
            topic = data.get("topic", "")
            if not isinstance(topic, str) or not topic:
                raise ValueError("topic is required")
            spec = alerts.parse_spec(topic, data)
            alerts.save(spec)
            key = f"handler:{topic}\x01{spec.id}"
            seen.add(key)
            await store.aput(LOAD, key, str(path).encode())
            log.info("loaded from the load directory", kind="handler", id=spec.id,
                     topic=topic, file=str(path))
        except (APIError, KapaError, OSError, ValueError, yaml.YAMLError) as exc:
            failed += 1
            log.error("failed to load file", file=str(path), err=str(exc))
    for key, _ in await store.aitems(LOAD):
        if key in seen:
            continue
        kind, _, item_id = key.partition(":")
        if kind == "task":
            await tasks.delete(item_id)
        elif kind == "template":
            await templates.delete(item_id)
        elif kind == "handler" and alerts is not None:
            topic, _, handler_id = item_id.partition("\x01")
            alerts.remove(topic, handler_id)
        await store.adelete(LOAD, key)
        log.info("removed item whose file left the load directory", kind=kind, id=item_id)
    return failed

"""``/kapacitor/v1/storage``: backup of the store, its list of stores, and rebuild.

As Kapacitor 1.5.7 answers them (services/storage/api.go):

- ``GET /kapacitor/v1/storage/backup``: the whole database as
  ``application/octet-stream`` with ``Content-Disposition: attachment;
  filename="kapacitor.db"`` and a ``Content-Length``, which ``kapacitor backup FILE``
  compares with what it saved. kapa-core sends a consistent SQLite snapshot taken with
  SQLite's online backup API while the API goes on writing (see ``Store.backup_to``).
- ``GET /kapacitor/v1/storage/stores``: the stores that can be rebuilt, each with its
  link, in the order Kapacitor lists them.
- ``POST /kapacitor/v1/storage/stores/<store>`` with ``{"action": "rebuild"}``: 204;
  404 ``unknown storage "<store>"``; 400 for a body that is not a storage action.
  For SQLite, rebuilding a store re-writes each of its rows in one transaction (the
  ``tasks`` store covers templates too, as Kapacitor keeps both in it) and then runs
  ``REINDEX`` on the table, so its index is rebuilt from the rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import trio

from kapa_core.errors import APIError, StorageError
from kapa_core.http.messages import Request, Response
from kapa_core.http.router import Router
from kapa_core.storage import (
    HANDLER_SPECS,
    LOAD,
    OVERRIDES,
    RECORDINGS,
    REPLAYS,
    SNAPSHOTS,
    TASKS,
    TEMPLATES,
    TOPIC_STATES,
    Store,
)

BASE = "/kapacitor/v1/storage"
STORES_PATH = BASE + "/stores"
BACKUP_PATH = BASE + "/backup"

# Kapacitor's store names (in the order kapacitord lists them) -> kapa-core's stores.
STORES: dict[str, tuple[str, ...]] = {
    "overrides": (OVERRIDES,),
    "load": (LOAD,),
    "handler-specs": (HANDLER_SPECS,),
    "topic-states": (TOPIC_STATES,),
    "tasks": (TASKS, TEMPLATES, SNAPSHOTS),
    "recordings": (RECORDINGS,),
    "replays": (REPLAYS,),
}


def parse_action(body: bytes) -> str:
    """The action of a storage-action body, with Kapacitor's errors."""
    try:
        doc: Any = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError) as exc:
        start = body.lstrip(b" \t\r\n")[:1]
        if not start:
            reason = "EOF"
        elif start not in b'{["-0123456789tfn':  # Go's wording for the common case
            reason = f"invalid character {start.decode('latin-1')!r} looking for " \
                     "beginning of value"
        else:
            reason = str(exc)
        raise APIError(400, f"failed to unmarshal storage action {reason}") from None
    action = doc.get("action") if isinstance(doc, dict) else None
    if action is None:
        # Go decodes a missing action as its zero value, which prints this way.
        raise APIError(400, 'unkown storage action "unknown StorageAction 0"')
    if action != "rebuild":
        raise APIError(400, f"failed to unmarshal storage action unknown StorageAction "
                            f"{action if isinstance(action, str) else json.dumps(action)}")
    return "rebuild"


class StorageAPI:
    def __init__(self, store: Store, rebuild: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.rebuild_one = rebuild or store.rebuild

    def register(self, router: Router) -> None:
        router.add("GET", BACKUP_PATH, self.backup)
        router.add("GET", STORES_PATH, self.list)
        router.add("POST", STORES_PATH + "/{store}", self.action)

    async def backup(self, request: Request) -> Response:
        try:
            data = await self.store.abackup_bytes()
        except StorageError as exc:
            raise APIError(500, f"failed to send backup data: {exc}") from None
        response = Response.raw(200, data, "application/octet-stream")
        response.headers += [("content-disposition", 'attachment; filename="kapacitor.db"'),
                             # never gzipped (Kapacitor's NoGzip): Content-Length is the
                             # snapshot's size, which `kapacitor backup` checks
                             ("content-encoding", "identity")]
        return response

    async def list(self, request: Request) -> Response:
        return Response.json({
            "link": {"rel": "self", "href": STORES_PATH},
            "storage": [{"link": {"rel": "self", "href": f"{STORES_PATH}/{name}"},
                         "name": name} for name in STORES]})

    async def action(self, request: Request) -> Response:
        name = request.params["store"]
        tables = STORES.get(name)
        if tables is None:
            raise APIError(404, f"unknown storage {json.dumps(name)}")
        parse_action(request.body)
        try:
            for table in tables:
                await trio.to_thread.run_sync(self.rebuild_one, table)
        except StorageError as exc:
            raise APIError(500, f"failed to rebuild {json.dumps(name)}: {exc}") from None
        return Response.empty(204)


__all__ = ["BACKUP_PATH", "STORES", "STORES_PATH", "StorageAPI", "parse_action"]

"""Task snapshots: the saved state of a task's nodes, as Kapacitor keeps them.

A snapshot maps every node of a running task to bytes (empty for nodes without state;
a UDF node asks its function). Kapacitor takes one every ``[task] snapshot-interval``
(first after a random part of the interval, so tasks do not snapshot together) and saves
it only when some node had state; kapa-core also takes one when a running task is
stopped (disabled, reloaded, the daemon shutting down). When a task starts and a
snapshot of it exists naming exactly its nodes, each node with state gets it back before
any data (a changed pipeline starts afresh, as in Kapacitor). Deleting a task deletes its
snapshot.

Stored in the ``task-snapshots`` store as JSON: ``{"nodes": {"<node>": "<base64>"}}``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from kapa_core.logs import Logger
from kapa_core.storage import SNAPSHOTS

#: How long a snapshot may take before it is given up (a function that does not answer).
SNAPSHOT_TIMEOUT = 10.0


class Snapshots:
    """Where a task master keeps its tasks' snapshots."""

    def __init__(self, store: Any, interval_ns: int, log: Logger) -> None:
        self.store = store
        self.interval = interval_ns / 1e9 if interval_ns > 0 else 0.0
        self.log = log

    async def load(self, task_id: str) -> dict[str, bytes] | None:
        raw = await self.store.aget(SNAPSHOTS, task_id)
        if raw is None:
            return None
        try:
            nodes = json.loads(raw)["nodes"]
            return {str(name): base64.b64decode(data, validate=True)
                    for name, data in nodes.items()}
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            self.log.error("stored task snapshot is unreadable; not used", task=task_id,
                           err=str(exc))
            return None

    async def save(self, task_id: str, nodes: dict[str, bytes]) -> bool:
        """Save ``nodes`` unless no node had state; True when saved."""
        if not any(nodes.values()):
            return False
        doc = {"nodes": {name: base64.b64encode(data).decode("ascii")
                         for name, data in nodes.items()}}
        await self.store.aput(SNAPSHOTS, task_id, json.dumps(doc).encode())
        return True

    async def delete(self, task_id: str) -> None:
        await self.store.adelete(SNAPSHOTS, task_id)


__all__ = ["SNAPSHOT_TIMEOUT", "Snapshots"]

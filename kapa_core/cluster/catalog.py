"""The shared catalog: every member's tasks, in one key-value bucket.

A task created, changed or deleted through any member's API is written to
``<cluster>_catalog`` under ``tasks.<id>`` (task IDs hold only letters, digits, ``-``,
``.`` and ``_``, all valid in a key) as the JSON the member stores locally. Every member
watches the bucket and applies the changes, in the bucket's order, to its own task
service, so all of them know every task; placement then decides which one runs it
(docs/cluster.md, "The API on any member").

A member's own writes come back through the watch: one equal to what the member holds is
skipped. At start, the bucket's content is the truth: tasks it holds replace the local
ones; a local task the bucket does not hold (a daemon joining a cluster with tasks of its
own) is written to it, unless another member wrote that ID first.

Two members changing one task at the same moment: the last write wins, and both end up
with it. (Templates, topic handlers, users and configuration overrides are to follow the
same way.)
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import trio

from kapa_core.cluster import ClusterError, ConflictError
from kapa_core.logs import Logger

PREFIX = "tasks."


class TaskStore(Protocol):
    """The task service as the catalog drives it."""

    def local(self) -> dict[str, dict[str, Any]]:
        """Every task this member holds, as stored."""

    async def apply_remote(self, task_id: str, data: dict[str, Any] | None) -> None:
        """Take a task as another member wrote it (None: deleted)."""


class Catalog:
    def __init__(self, bridge: Any, cluster: str, *, replicas: int,
                 log: Logger | None = None) -> None:
        self.bridge = bridge
        self.bucket_name = f"{cluster}_catalog"
        self.replicas = replicas
        self.log = log or Logger("cluster")
        self.bucket: Any = None
        self.tasks: TaskStore | None = None
        self.synced = trio.Event()

    async def open(self) -> None:
        self.bucket = await self.bridge.kv(self.bucket_name, history=5, replicas=self.replicas)

    # -- this member's changes ----------------------------------------------------------
    async def task_saved(self, task_id: str, data: dict[str, Any]) -> None:
        await self.bucket.put(PREFIX + task_id, _encode(data))

    async def task_deleted(self, task_id: str) -> None:
        await self.bucket.delete(PREFIX + task_id)

    # -- everyone's changes -------------------------------------------------------------
    async def run(self) -> None:
        """Apply the bucket to the task service, then follow it (until cancelled)."""
        assert self.tasks is not None
        while True:
            try:
                await self._follow(self.tasks)
            except ClusterError as exc:
                self.log.error("cannot follow the cluster's catalog; trying again",
                               err=str(exc))
                await trio.sleep(1.0)

    async def _follow(self, tasks: TaskStore) -> None:
        # what the bucket holds now, then the tasks only this member had, then changes
        keys = await self.bucket.keys(PREFIX + ">")
        for key in keys:
            entry = await self.bucket.get(key)
            await self._apply(tasks, key, None if entry is None else entry.value)
        if not self.synced.is_set():
            await self._publish_local_only(tasks, {k[len(PREFIX):] for k in keys})
        async with self.bucket.watch(PREFIX + ">") as changes:
            async for change in changes:
                await self._apply(tasks, change.key, change.value)
        # the watch ended (the bridge gave up on it): read the bucket again

    async def _apply(self, tasks: TaskStore, key: str, value: bytes | None) -> None:
        task_id = key[len(PREFIX):]
        data = None if value is None else json.loads(value)
        if data != tasks.local().get(task_id):
            await tasks.apply_remote(task_id, data)

    async def _publish_local_only(self, tasks: TaskStore, seen: set[str]) -> None:
        """Tasks this member had before it joined and the bucket lacks: shared now."""
        for task_id, data in tasks.local().items():
            if task_id in seen:
                continue
            try:
                await self.bucket.create(PREFIX + task_id, _encode(data))
                self.log.info("local task shared with the cluster", task=task_id)
            except ConflictError:
                pass  # another member wrote it meanwhile: its version comes through
        self.synced.set()


def _encode(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()

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

Templates are shared the same way under ``templates.<id>``, the users of ``[auth]``
under ``users.<hex of name>`` (with their bcrypt hashes, as the local store keeps them),
and topic handlers under ``handlers.<hex of topic NUL id>`` (topic
names hold characters a key cannot). Two members changing one item at the same moment:
the last write wins, and both end up with it. (Configuration overrides are to follow the
same way.)
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import trio

from kapa_core.cluster import ClusterError, ConflictError
from kapa_core.logs import Logger

PREFIX = "tasks."
HANDLERS = "handlers."
TEMPLATES = "templates."
USERS = "users."


class UserStore(Protocol):
    """The users of ``[auth]`` (kapa_core.auth.users.UserStore) as the catalog shares them."""

    listeners: list[Callable[[str], None]]

    def local_users(self) -> dict[str, dict[str, Any]]: ...

    async def apply_remote_user(self, name: str, data: dict[str, Any] | None) -> None: ...


class TemplateStore(Protocol):
    """The template service as the catalog drives it."""

    on_change: Callable[[str, dict[str, Any] | None], Awaitable[None]] | None

    def local_templates(self) -> dict[str, dict[str, Any]]: ...

    async def apply_remote_template(self, template_id: str,
                                    data: dict[str, Any] | None) -> None: ...


class HandlerStore(Protocol):
    """The alert service as the catalog drives it."""

    on_change: Callable[[str, str, dict[str, Any] | None], None] | None

    def local_handlers(self) -> dict[tuple[str, str], dict[str, Any]]: ...

    def apply_remote_handler(self, topic: str, handler_id: str,
                             data: dict[str, Any] | None) -> None: ...


def handler_key(topic: str, handler_id: str) -> str:
    return HANDLERS + f"{topic}\0{handler_id}".encode().hex()


def handler_of(key: str) -> tuple[str, str]:
    topic, _, handler_id = bytes.fromhex(key[len(HANDLERS):]).decode().partition("\0")
    return topic, handler_id


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
        self.handlers: HandlerStore | None = None
        self.templates: TemplateStore | None = None
        self.users: UserStore | None = None
        self.synced = trio.Event()
        self._outgoing, self._queued = trio.open_memory_channel[tuple[str, bytes | None]](
            10_000)

    async def open(self) -> None:
        self.bucket = await self.bridge.kv(self.bucket_name, history=5, replicas=self.replicas)

    # -- this member's changes ----------------------------------------------------------
    async def task_saved(self, task_id: str, data: dict[str, Any]) -> None:
        await self.bucket.put(PREFIX + task_id, _encode(data))

    async def task_deleted(self, task_id: str) -> None:
        await self.bucket.delete(PREFIX + task_id)

    async def template_changed(self, template_id: str, data: dict[str, Any] | None) -> None:
        if data is None:
            await self.bucket.delete(TEMPLATES + template_id)
        else:
            await self.bucket.put(TEMPLATES + template_id, _encode(data))

    def share_users(self, users: UserStore) -> None:
        """Share ``users``: told of each user changed here, applying the others'."""
        self.users = users
        users.listeners.append(self.user_changed)

    def user_changed(self, name: str) -> None:
        """The user store's listener: the user as it is now (None: deleted), queued."""
        if self.users is None:
            return
        data = self.users.local_users().get(name)
        try:
            self._outgoing.send_nowait((USERS + name.encode().hex(),
                                        None if data is None else _encode(data)))
        except trio.WouldBlock:
            self.log.error("user not shared: the catalog's queue is full", user=name)

    def handler_changed(self, topic: str, handler_id: str,
                        data: dict[str, Any] | None) -> None:
        """The alert service's hook (it is not async): queued, written in order."""
        try:
            self._outgoing.send_nowait((handler_key(topic, handler_id),
                                        None if data is None else _encode(data)))
        except trio.WouldBlock:
            self.log.error("topic handler not shared: the catalog's queue is full",
                           topic=topic, handler=handler_id)

    async def _write_queued(self) -> None:
        async for key, value in self._queued:
            try:
                if value is None:
                    await self.bucket.delete(key)
                else:
                    await self.bucket.put(key, value)
            except ClusterError as exc:
                self.log.error("topic handler not shared with the cluster", key=key,
                               err=str(exc))

    # -- everyone's changes -------------------------------------------------------------
    async def run(self) -> None:
        """Apply the bucket to the task service (and the alert service's topic handlers),
        then follow it (until cancelled)."""
        assert self.tasks is not None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._write_queued)
            while True:
                try:
                    await self._follow(self.tasks)
                except ClusterError as exc:
                    self.log.error("cannot follow the cluster's catalog; trying again",
                                   err=str(exc))
                    await trio.sleep(1.0)

    async def _follow(self, tasks: TaskStore) -> None:
        # what the bucket holds now, then what only this member had, then changes
        keys = await self.bucket.keys(">")
        for key in keys:
            entry = await self.bucket.get(key)
            await self._apply(tasks, key, None if entry is None else entry.value)
        if not self.synced.is_set():
            await self._publish_local_only(tasks, set(keys))
        async with self.bucket.watch(">") as changes:
            async for change in changes:
                await self._apply(tasks, change.key, change.value)
        # the watch ended (the bridge gave up on it): read the bucket again

    async def _apply(self, tasks: TaskStore, key: str, value: bytes | None) -> None:
        data = None if value is None else json.loads(value)
        if key.startswith(PREFIX):
            task_id = key[len(PREFIX):]
            if data != tasks.local().get(task_id):
                await tasks.apply_remote(task_id, data)
        elif key.startswith(TEMPLATES) and self.templates is not None:
            template_id = key[len(TEMPLATES):]
            if data != self.templates.local_templates().get(template_id):
                await self.templates.apply_remote_template(template_id, data)
        elif key.startswith(USERS) and self.users is not None:
            name = bytes.fromhex(key[len(USERS):]).decode()
            if data != self.users.local_users().get(name):
                await self.users.apply_remote_user(name, data)
        elif key.startswith(HANDLERS) and self.handlers is not None:
            topic, handler_id = handler_of(key)
            if data != self.handlers.local_handlers().get((topic, handler_id)):
                self.handlers.apply_remote_handler(topic, handler_id, data)

    async def _publish_local_only(self, tasks: TaskStore, seen: set[str]) -> None:
        """What this member had before it joined and the bucket lacks: shared now."""
        mine = {PREFIX + task_id: data for task_id, data in tasks.local().items()}
        if self.templates is not None:
            mine.update({TEMPLATES + key: data
                         for key, data in self.templates.local_templates().items()})
        if self.users is not None:
            mine.update({USERS + name.encode().hex(): data
                         for name, data in self.users.local_users().items()})
        if self.handlers is not None:
            mine.update({handler_key(*key): data
                         for key, data in self.handlers.local_handlers().items()})
        for key, data in mine.items():
            if key in seen:
                continue
            try:
                await self.bucket.create(key, _encode(data))
                self.log.info("shared with the cluster", key=key)
            except ConflictError:
                pass  # another member wrote it meanwhile: its version comes through
        self.synced.set()


def _encode(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()

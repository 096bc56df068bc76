"""Key-value buckets of the NATS bridge: reads, writes, compare-and-set, watches.

A bucket is a JetStream stream (``KV_<bucket>``) holding the last ``history`` values of
each key; a revision is the stream sequence of a write, so revisions order all writes to
a bucket. Made by :meth:`NatsBridge.kv <kapa_core.cluster.bridge.NatsBridge.kv>`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import nats.errors
import nats.js.errors
import trio
from nats.js.kv import KeyValue, StopIterSentinel

from kapa_core.cluster import ClusterError
from kapa_core.logs import Logger

if TYPE_CHECKING:
    from kapa_core.cluster.bridge import NatsBridge

_log = Logger("cluster")


@dataclass(frozen=True)
class KvEntry:
    key: str
    value: bytes
    revision: int


@dataclass(frozen=True)
class KvChange:
    """One change a watch delivers; ``value`` is None when the key was deleted/purged."""

    key: str
    value: bytes | None
    revision: int
    operation: Literal["PUT", "DEL", "PURGE"]


class KvBucket:
    """A JetStream key-value bucket; see :meth:`NatsBridge.kv`. Keys are NATS subject
    tokens joined by dots (``tasks.cpu``); a watch pattern may use ``*`` and ``>``."""

    def __init__(self, bridge: NatsBridge, kv: KeyValue, name: str) -> None:
        self._bridge = bridge
        self._kv = kv
        self.name = name

    def __repr__(self) -> str:
        return f"KvBucket({self.name!r})"

    def _what(self, verb: str, key: str) -> str:
        return f"{verb} {key!r} in bucket {self.name!r}"

    async def get(self, key: str) -> KvEntry | None:
        """The key's current value, or None if it has none (never set, deleted, expired)."""
        return await self._bridge._call(self._what("get", key), self._get(key))

    async def _get(self, key: str) -> KvEntry | None:
        try:
            entry = await self._kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            return None
        return KvEntry(key, entry.value or b"", entry.revision or 0)

    async def put(self, key: str, value: bytes, *,
                  timeout: float = 10.0) -> int:  # noqa: ASYNC109 (a retry deadline)
        """Set the key whatever it holds; its new revision. Retried through reconnects
        until ``timeout`` (harmless: the same value twice)."""
        async def attempt(seconds: float) -> int:
            return await asyncio.wait_for(self._kv.put(key, value), seconds)
        return await self._bridge._call(self._what("put", key),
                                        self._bridge._retrying(attempt, timeout, 2.0))

    async def create(self, key: str, value: bytes) -> int:
        """Set the key only if it has no value; ConflictError if it has one."""
        return await self._bridge._call(self._what("create", key),
                                        self._kv.create(key, value))

    async def update(self, key: str, value: bytes, last_revision: int) -> int:
        """Set the key only if its revision is still ``last_revision`` (compare-and-set);
        ConflictError otherwise. The new revision."""
        return await self._bridge._call(self._what("update", key),
                                        self._kv.update(key, value, last=last_revision))

    async def delete(self, key: str, last_revision: int | None = None) -> None:
        """Delete the key (a delete marker watchers see); with ``last_revision``, only if
        the key is still at that revision (ConflictError otherwise)."""
        await self._bridge._call(self._what("delete", key),
                                 self._kv.delete(key, last=last_revision))

    async def keys(self, pattern: str = ">") -> list[str]:
        """The keys matching ``pattern`` that have a value, in the order last written."""
        return await self._bridge._call(self._what("list keys", pattern), self._keys(pattern))

    async def _keys(self, pattern: str) -> list[str]:
        watcher = await self._kv.watch(pattern, ignore_deletes=True, meta_only=True)
        keys: list[str] = []
        try:
            while (entry := await watcher.updates(timeout=None)) is not None:
                if isinstance(entry, StopIterSentinel):
                    break
                keys.append(entry.key)
        finally:
            await watcher.stop()
        return keys

    @asynccontextmanager
    async def watch(self, pattern: str = ">", *, include_history: bool = False,
                    buffer: int = 256) -> AsyncIterator[KvWatch]:
        """Changes of the keys matching ``pattern``: first each key's current value (or
        every stored revision with ``include_history``), then every change as it happens,
        in revision order. Iterate the :class:`KvWatch` this yields; it ends when the
        block does. A background trio task moves changes from the client into a memory
        channel of ``buffer`` changes; when it is full the client waits (back-pressure).

        The client's watcher is an ephemeral consumer that a restarted server forgets,
        and the client notices only after missing its heartbeats for about 20 seconds;
        so after every reconnection the watch starts a new one at once. That one
        delivers each key's latest value again; those the reader has already seen are
        skipped (by revision), so a key written several times meanwhile shows only its
        last write, and the order stays that of the revisions.
        """
        what = self._what("watch", pattern)
        source = _Source(self, pattern, include_history, what)
        await source.start()  # the first one's errors are the caller's
        send, receive = trio.open_memory_channel[KvChange](buffer)
        watch = KvWatch(receive)
        try:
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(source.pump, send, watch)
                    try:
                        yield watch
                    finally:
                        nursery.cancel_scope.cancel()
            except BaseExceptionGroup as group:
                # The pump never raises (its errors go to the reader), so the group holds
                # what the caller's block raised: give it back as it was raised.
                if len(group.exceptions) == 1:
                    raise group.exceptions[0] from None
                raise
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await source.stop()


_IDLE = object()  # no change within the poll interval


class _Source:
    """The client's watcher behind one :meth:`KvBucket.watch`, started again after each
    reconnection of the bridge."""

    def __init__(self, bucket: KvBucket, pattern: str, include_history: bool,
                 what: str) -> None:
        self.bucket = bucket
        self.bridge = bucket._bridge
        self.pattern = pattern
        self.include_history = include_history
        self.what = what
        self.watcher: KeyValue.KeyWatcher | None = None
        self.epoch = -1  # the bridge's reconnection count the watcher was started in

    async def start(self) -> None:
        await self.stop()
        self.epoch = self.bridge.reconnects
        self.watcher = await self.bridge._call(self.what, self.bucket._kv.watch(
            self.pattern, include_history=self.include_history))

    async def stop(self) -> None:
        watcher, self.watcher = self.watcher, None
        if watcher is not None:
            with suppress(ClusterError):
                await self.bridge._call(self.what, watcher.stop())

    @staticmethod
    async def _next(watcher: KeyValue.KeyWatcher, poll: float) -> object:
        try:
            return await watcher.updates(timeout=poll)
        except nats.errors.TimeoutError:
            return _IDLE

    async def pump(self, send: trio.MemorySendChannel[KvChange], watch: KvWatch) -> None:
        last_revision = 0
        failures = 0  # in a row, while connected
        async with send:
            while True:
                try:
                    if self.watcher is None or self.epoch != self.bridge.reconnects:
                        await self.start()
                    assert self.watcher is not None
                    entry = await self.bridge._call(self.what, self._next(self.watcher, 0.5))
                except ClusterError as exc:
                    # Failing while the client reconnects is expected: try again. Failing
                    # for seconds while connected, or closed, is the reader's to know (the
                    # error goes through the watch, not to the nursery).
                    failures += self.bridge.connected
                    if self.bridge.closed or failures >= 10:
                        watch.error = exc
                        return
                    _log.warn("watch failed, starting it again", error=str(exc))
                    self.watcher = None
                    await trio.sleep(0.5)
                    continue
                failures = 0
                if entry is _IDLE:
                    continue
                if isinstance(entry, StopIterSentinel):
                    return
                if entry is None:  # the client's marker: the current values are all out
                    watch.caught_up.set()
                    continue
                assert isinstance(entry, KeyValue.Entry)
                revision = entry.revision or 0
                if revision <= last_revision:  # seen before a restart of the watcher
                    continue
                last_revision = revision
                operation = entry.operation or "PUT"
                await send.send(KvChange(
                    entry.key, None if operation in ("DEL", "PURGE") else entry.value or b"",
                    revision, "DEL" if operation == "DEL" else
                    "PURGE" if operation == "PURGE" else "PUT"))


class KvWatch:
    """The changes of a :meth:`KvBucket.watch`, as an async iterator of :class:`KvChange`.

    ``caught_up`` is set once every value the bucket held when the watch began has been
    queued (those come first); waiting on it tells a starting member it has the whole
    state.
    """

    def __init__(self, receive: trio.MemoryReceiveChannel[KvChange]) -> None:
        self._receive = receive
        self.caught_up = trio.Event()
        self.error: ClusterError | None = None

    def __aiter__(self) -> KvWatch:
        return self

    async def __anext__(self) -> KvChange:
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            if self.error is not None:
                raise self.error from None
            raise StopAsyncIteration from None


__all__ = ["KvBucket", "KvChange", "KvEntry", "KvWatch"]

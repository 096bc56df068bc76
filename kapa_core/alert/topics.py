"""Topics: named event streams with per-ID state and the handlers that consume them.

An alert node publishes synchronously (``Topics.publish`` never waits): the topic records
the event's state, then hands the event to each handler's bounded queue. Every handler
runs in its own trio task, so a slow or failing handler never blocks the task that
raised the alert nor the other handlers; a full queue drops the event and counts it, as
Kapacitor's handler buffer does (``alert/topics.go``: 5,000 events by default,
``[alert] topic-buffer-length``, a full one refuses the event).

A handler takes its events one at a time, in order. One that can do better with
several at once (the post handler pipelines its requests on one connection) has an
``async handle_batch(events)`` returning one outcome per event (None, or the exception
``handle`` would have raised): its runner hands it what has queued up since the last
call (up to :data:`BATCH`), and counts and logs each outcome as it would for ``handle``.

With ``[alert] persist-topics`` the per-ID states are written to storage by a background
flusher (a task must not wait on a disk sync per event) and restored at start.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import trio

from kapa_core.alert.event import Event, EventState
from kapa_core.alert.levels import Level
from kapa_core.glob import filter_names
from kapa_core.logs import Logger
from kapa_core.storage import TOPIC_STATES, Store

FLUSH_INTERVAL = 0.5
#: The most queued events one handler is given at once through its ``handle_batch``
BATCH = 256


@dataclass
class HandlerStats:
    handled: int = 0
    errors: int = 0
    dropped: int = 0


class HandlerRunner:
    """One handler attached to a topic: its queue and the trio task draining it."""

    def __init__(self, topic: str, handler_id: str, kind: str, handler: Any,
                 match: Callable[[Event], bool] | None, buffer: int, log: Logger) -> None:
        self.topic = topic
        self.id = handler_id
        self.kind = kind
        self.handler = handler
        self.match = match
        self.log = log
        self.stats = HandlerStats()
        self.send, self.receive = trio.open_memory_channel[Event](max(buffer, 1))

    def offer(self, event: Event) -> None:
        try:
            self.send.send_nowait(event)
        except trio.WouldBlock:
            self.stats.dropped += 1
            self.log.error("handler queue full, event dropped", topic=self.topic,
                           handler=self.id, kind=self.kind, alert=event.id)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    async def run(self) -> None:
        async with self.receive:
            async for event in self.receive:
                batch = [event]
                while len(batch) < BATCH:
                    try:
                        batch.append(self.receive.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                matched = [e for e in batch if self._matches(e)]
                many = self._batch_method() if len(matched) > 1 else None
                if many is None:
                    for one in matched:
                        await self._handle_one(one)
                    continue
                try:
                    outcomes = await many(matched)
                except Exception as exc:
                    outcomes = [exc] * len(matched)
                for one, outcome in zip(matched, outcomes, strict=True):
                    self._count(one, outcome)

    def _matches(self, event: Event) -> bool:
        if self.match is None:
            return True
        try:
            return self.match(event)
        except Exception as exc:
            self.stats.errors += 1
            self.log.error("handler match expression failed", topic=self.topic,
                           handler=self.id, alert=event.id, err=str(exc))
            return False

    def _batch_method(self) -> Callable[[list[Event]], Awaitable[Sequence[Exception | None]]
                                        ] | None:
        """The handler's ``handle_batch`` when it has one. The alert service wraps a
        plugin's handler in a proxy whose ``current()`` is the handler to use now (made
        again after a config change); a proxy that cannot make it answers None here and
        the events go one by one through ``handle``, which reports why for each."""
        handler = self.handler
        current = getattr(handler, "current", None)
        if current is not None:
            try:
                handler = current()
            except Exception:
                return None
        many = getattr(handler, "handle_batch", None)
        return many if callable(many) else None

    async def _handle_one(self, event: Event) -> None:
        try:
            await self.handler.handle(event)
        except Exception as exc:
            self._count(event, exc)
        else:
            self._count(event, None)

    def _count(self, event: Event, outcome: Exception | None) -> None:
        if outcome is None:
            self.stats.handled += 1
            return
        self.stats.errors += 1
        self.log.error("alert handler failed", topic=self.topic,
                       handler=self.id, kind=self.kind, alert=event.id,
                       err=str(outcome) or type(outcome).__name__)

    def close(self) -> None:
        self.send.close()
        close = getattr(self.handler, "close", None)
        if close is not None:
            close()


@dataclass
class Topic:
    id: str
    events: dict[str, EventState] = field(default_factory=dict)
    handlers: dict[str, HandlerRunner] = field(default_factory=dict)
    collected: int = 0

    @property
    def level(self) -> Level:
        return max((s.level for s in self.events.values()), default=Level.OK)


@dataclass
class Inhibitor:
    """``.inhibit(category, tags…)`` of one alert node: tag values of its non-OK groups."""

    category: str
    tags: tuple[str, ...]
    active: dict[str, tuple[str, ...]] = field(default_factory=dict)  # group -> values

    def set(self, group: str, tags: dict[str, str], level: Level) -> None:
        if level is Level.OK:
            self.active.pop(group, None)
        else:
            self.active[group] = tuple(tags.get(t, "") for t in self.tags)

    def inhibits(self, category: str, tags: dict[str, str]) -> bool:
        if category != self.category or not self.active:
            return False
        values = tuple(tags.get(t, "") for t in self.tags)
        return values in self.active.values()


class Topics:
    def __init__(self, store: Store | None, *, persist: bool, buffer: int,
                 log: Logger | None = None) -> None:
        self.store = store
        self.persist = persist and store is not None
        self.buffer = buffer
        self.log = log or Logger("alert")
        self.topics: dict[str, Topic] = {}
        self.inhibitors: list[Inhibitor] = []
        self._nursery: trio.Nursery | None = None
        self._pending: list[HandlerRunner] = []
        self._dirty: set[tuple[str, str]] = set()
        if self.persist:
            self._restore()

    # -- lifecycle ------------------------------------------------------------------------
    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for runner in self._pending:
                    nursery.start_soon(runner.run)
                self._pending.clear()
                if self.persist:
                    nursery.start_soon(self._flusher)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            self.flush()

    def _restore(self) -> None:
        store = cast(Store, self.store)  # only called when persisting, so there is one
        for key, raw in store.items_json(TOPIC_STATES):
            topic_id, _, _ = key.partition("\x00")
            try:
                state = EventState.from_store(raw)
            except (KeyError, ValueError, TypeError):
                continue
            self.topic(topic_id).events[state.id] = state

    async def _flusher(self) -> None:
        while True:
            await trio.sleep(FLUSH_INTERVAL)
            if self._dirty:
                await trio.to_thread.run_sync(self.flush)

    def flush(self) -> None:
        if not self.persist or not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        with cast(Store, self.store).transaction() as tx:  # persisting: there is one
            for topic_id, event_id in dirty:
                topic = self.topics.get(topic_id)
                state = topic.events.get(event_id) if topic else None
                key = f"{topic_id}\x00{event_id}"
                if state is None:
                    tx.delete(TOPIC_STATES, key)
                else:
                    tx.put_json(TOPIC_STATES, key, state.to_store())

    def start_soon(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` (async, no arguments) in the topics' nursery: a handler's timer."""
        if self._nursery is None:
            raise RuntimeError("the alert service is not running")
        self._nursery.start_soon(fn)

    # -- topics ---------------------------------------------------------------------------
    def topic(self, topic_id: str) -> Topic:
        topic = self.topics.get(topic_id)
        if topic is None:
            topic = self.topics[topic_id] = Topic(topic_id)
        return topic

    def matching(self, pattern: str = "", min_level: Level = Level.OK) -> list[Topic]:
        ids = filter_names(sorted(self.topics), pattern)
        return [t for t in (self.topics[i] for i in ids) if t.level >= min_level]

    def delete(self, topic_id: str) -> None:
        topic = self.topics.pop(topic_id, None)
        if topic is None:
            return
        for runner in topic.handlers.values():
            runner.close()
        for event_id in topic.events:
            self._dirty.add((topic_id, event_id))

    def state(self, topic_id: str, event_id: str) -> EventState | None:
        topic = self.topics.get(topic_id)
        return topic.events.get(event_id) if topic else None

    # -- handlers -------------------------------------------------------------------------
    def attach(self, topic_id: str, handler_id: str, kind: str, handler: Any,
               match: Callable[[Event], bool] | None = None) -> HandlerRunner:
        topic = self.topic(topic_id)
        old = topic.handlers.pop(handler_id, None)
        if old is not None:
            old.close()
        log = self.log
        parts = topic_id.split(":")
        if len(parts) == 3 and parts[0] == "main":  # an alert node's own topic: its lines
            log = log.with_(task=parts[1], node=parts[2])  # carry task= and node=
        runner = HandlerRunner(topic_id, handler_id, kind, handler, match, self.buffer, log)
        topic.handlers[handler_id] = runner
        if self._nursery is not None:
            self._nursery.start_soon(runner.run)
        else:
            self._pending.append(runner)
        return runner

    def detach(self, topic_id: str, handler_id: str) -> None:
        topic = self.topics.get(topic_id)
        if topic is None:
            return
        runner = topic.handlers.pop(handler_id, None)
        if runner is not None:
            runner.close()

    # -- events ---------------------------------------------------------------------------
    def inhibited(self, category: str, tags: dict[str, str]) -> bool:
        # the empty category is one like any other: `.inhibit('', ...)` matches alerts
        # without a category
        inhibitors = self.inhibitors
        return bool(inhibitors) and any(i.inhibits(category, tags) for i in inhibitors)

    def publish(self, event: Event) -> None:
        """Record ``event`` in its topic and queue it for the topic's handlers."""
        topic = self.topic(event.topic)
        topic.collected += 1
        previous = topic.events.get(event.id)
        event.changed = previous is None or previous.level != event.level
        # previousLevel is this ID's last level in this topic (a recovery that
        # noRecoveries kept from the topic leaves it at the alert's level).
        event.previous_level = Level.OK if previous is None else previous.level
        topic.events[event.id] = event.state
        if self.persist:
            self._dirty.add((topic.id, event.id))
        for runner in topic.handlers.values():
            runner.offer(event)

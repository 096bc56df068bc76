"""The alert service: topics, stored topic-handler specs, and handler construction.

Handlers are built from a :class:`HandlerKind` (a plugin) and its options with a
:class:`~kapa_core.alert.handler_context.HandlerContext`. The handler object is made
lazily and made again when its section's config or running service changes (a config
override of that section), so a long-lived topic handler always uses the current
settings; an override of another section leaves it as it is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from kapa_core.alert import kinds as registry
from kapa_core.alert import options as opts
from kapa_core.alert.event import Event, EventState
from kapa_core.alert.handler_context import (
    Handler,
    HandlerContext,
)
from kapa_core.alert.levels import Level
from kapa_core.alert.match import compile_match
from kapa_core.alert.outbound import HTTPClients
from kapa_core.alert.topics import Topics
from kapa_core.errors import APIError, ConfigError, HandlerError
from kapa_core.httpclients import ClientsClosed
from kapa_core.logs import Logger
from kapa_core.services import DaemonFacts
from kapa_core.storage import HANDLER_SPECS
from kapa_core.tick.regex import compile_regex
from kapa_core.tlsconfig import TLS

#: Kapacitor's ID syntax, on RE2 as in Go (``$`` does not match before a final newline)
HANDLER_ID = compile_regex(r"^[-._\p{L}0-9]+$")
TOPIC_ID = compile_regex(r"^[-:._\p{L}0-9]+$")


class HandlerProxy:
    """A handler kind + options: makes the plugin's handler with a :class:`HandlerContext`
    on first use, and again exactly when the kind's section config or running service
    has changed since (a config override of that section)."""

    def __init__(self, kind: registry.Kind, options: object, service: AlertService,
                 log: Logger | None = None) -> None:
        self.kind = kind
        self.options = options
        self.alerts = service
        #: the handler's logger: an alert node's handlers log with its task= and node=
        self.log = log or service.log
        self._context: HandlerContext[Any, Any] | None = None
        self._impl: Handler | None = None
        self._seen: object = None  # the config object last found equal to the context's

    async def handle(self, event: Event) -> None:
        await self.current().handle(event)

    def current(self) -> Handler:
        """The handler for the section's current config and service (made if needed)."""
        section: str = self.kind.section
        alerts = self.alerts
        config = alerts.section_config(section) if section else None
        service = alerts.section_service(section) if section else None
        context, impl = self._context, self._impl
        if context is not None and impl is not None and context.service is service:
            if config is self._seen or config is context.config:
                return impl
            if config == context.config:  # another section's override rebuilt the config
                self._seen = config
                return impl
        context = HandlerContext(self.kind.name, config, service,
                                 self.log.with_(handler=self.kind.name), alerts.daemon,
                                 alerts)
        made: Handler = self.kind.factory(self.options, context)
        self.close()
        self._context, self._impl, self._seen = context, made, config
        alerts.log.debug("alert handler made", kind=self.kind.name,
                         section=section or None)
        return made

    def close(self) -> None:
        close = getattr(self._impl, "close", None)
        if close is not None:
            close()


@dataclass
class HandlerSpec:
    topic: str
    id: str
    kind: str
    options: dict[str, Any]
    match: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"link": {"rel": "self", "href": f"/kapacitor/v1/alerts/topics/{self.topic}/"
                         f"handlers/{self.id}"},
                "id": self.id, "kind": self.kind, "options": self.options,
                "match": self.match}


class AlertService:
    def __init__(self, store: Any, config: Any, *, section_service: Callable[[str], Any],
                 check_outgoing: Callable[[str], None] = lambda url: None,
                 section_config: Callable[[str], Any] = lambda name: None,
                 log: Logger | None = None,
                 kinds: registry.HandlerKinds = registry.NONE,
                 daemon: DaemonFacts | None = None) -> None:
        self.store = store
        self.kinds = kinds
        self.log = log or Logger("alert")
        self.topics = Topics(store, persist=config.persist_topics,
                             buffer=config.topic_buffer_length, log=self.log)
        self.section_service = section_service
        self.section_config = section_config
        self.check_outgoing = check_outgoing
        #: What handlers may know of the daemon (its DaemonFacts)
        self.daemon = daemon or DaemonFacts()
        #: The handlers' long-lived HTTP clients, closed when the service stops
        self.clients = HTTPClients("the alert service")
        self.specs: dict[tuple[str, str], HandlerSpec] = {}
        #: A cluster member's catalog: told of each handler saved or removed here (topic,
        #: id, its JSON or None), to share it with the other members.
        self.on_change: Callable[[str, str, dict[str, Any] | None], None] | None = None

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        for _, raw in self.store.items_json(HANDLER_SPECS):
            spec = HandlerSpec(raw["topic"], raw["id"], raw["kind"], raw.get("options") or {},
                               raw.get("match", ""))
            try:
                self._attach(spec)
            except (ConfigError, ValueError) as exc:
                self.log.error("stored topic handler cannot be loaded", topic=spec.topic,
                               handler=spec.id, err=str(exc))
        try:
            await self.topics.serve(task_status=task_status)
        finally:
            with trio.CancelScope(shield=True):
                await self.clients.aclose()

    # -- events -----------------------------------------------------------------------------
    def publish(self, event: Event) -> None:
        self.topics.publish(event)

    # -- what handler contexts use (kapa_core.alert.handler_context.AlertHost) ---------------
    def topic_level(self, topic: str, event_id: str) -> Level:
        """The level ``topic`` last recorded for ``event_id`` (OK when none)."""
        state = self.topics.state(topic, event_id)
        return state.level if state else Level.OK

    def start_soon(self, fn: Callable[[], Awaitable[object]]) -> None:
        self.topics.start_soon(fn)

    def http_client(self, tls: TLS, timeout: float) -> httpx.AsyncClient:  # noqa: ASYNC109
        try:
            return self.clients.get(tls, timeout)
        except ClientsClosed as exc:
            raise HandlerError(str(exc)) from None

    def restored_state(self, anon_topic: str, topic: str, event_id: str
                       ) -> EventState | None:
        for name in (anon_topic, topic):
            if name:
                state = self.topics.state(name, event_id)
                if state is not None:
                    return state
        return None

    # -- handlers -----------------------------------------------------------------------------
    def kind(self, name: str) -> Any:
        kind = self.kinds.get(name)
        if kind is None:
            raise ConfigError("kind", f"unknown handler kind {name!r} (known: "
                              f"{', '.join(self.kinds.names())})")
        if name in self.kinds.disabled:
            raise ConfigError("kind", f"handler kind {name!r} is disabled on this server "
                              "(-disable-handlers)")
        return kind

    def handler(self, kind_name: str, options: Any) -> HandlerProxy:
        return HandlerProxy(self.kind(kind_name), options, self)

    def task_handlers(self, spec: Any, task_id: str) -> tuple[list[tuple[str, Any]], bool]:
        """Handlers written on an alert node, plus the kinds configured ``global``.

        Returns them with whether a global handler forces ``stateChangesOnly``.
        """
        out = []
        used = set()
        log = self.log.with_(task=task_id, node=getattr(spec, "name", None))
        for use in spec.handlers:
            kind = self.kind(use.kind)
            options = opts.build(kind.options, dict(use.values))
            out.append((kind.name, HandlerProxy(kind, options, self, log)))
            used.add(kind.name)
        forced = False
        for kind in self.kinds.kinds.values():
            if not kind.section or kind.name in self.kinds.disabled:
                continue
            config = self.section_config(kind.section)
            elements = config if isinstance(config, tuple) else (config,)
            config = next((e for e in elements if getattr(e, "global_", False)
                           and getattr(e, "enabled", True)), None)
            if config is None:
                continue
            if kind.name not in used:
                out.append((kind.name, HandlerProxy(kind, opts.build(kind.options, {}),
                                                    self, log)))
            if getattr(config, "state_changes_only", False):
                forced = True
        return out, forced

    # -- topic handler specs ------------------------------------------------------------------
    def parse_spec(self, topic: str, raw: Any, handler_id: str = "") -> HandlerSpec:
        if not isinstance(raw, dict):
            raise APIError(400, "invalid handler json: expected an object")
        if not TOPIC_ID.fullmatch(topic):
            raise APIError(400, f"invalid topic ID {topic!r}")
        hid = raw.get("id", handler_id) or handler_id
        if not isinstance(hid, str) or not HANDLER_ID.fullmatch(hid):
            raise APIError(400, f"invalid handler spec: invalid ID {hid!r} (letters, digits,"
                           " '-', '.' and '_')")
        kind = raw.get("kind")
        if not isinstance(kind, str) or not kind:
            raise APIError(400, "invalid handler spec: kind is required")
        match = raw.get("match", "") or ""
        if not isinstance(match, str):
            raise APIError(400, "invalid handler spec: match must be a string")
        options = raw.get("options") or {}
        spec = HandlerSpec(topic, hid, kind, options, match)
        try:
            self._build(spec)
        except ConfigError as exc:
            raise APIError(400, f"invalid handler spec: {exc}") from None
        except ValueError as exc:
            raise APIError(400, f"invalid handler spec: {exc}") from None
        return spec

    def _build(self, spec: HandlerSpec) -> tuple[HandlerProxy, Any]:
        kind = self.kind(spec.kind)
        options = opts.from_json(kind.name, kind.options, spec.options)
        match = compile_match(spec.match) if spec.match else None
        return HandlerProxy(kind, options, self), match

    def _attach(self, spec: HandlerSpec) -> None:
        handler, match = self._build(spec)
        self.topics.attach(spec.topic, spec.id, spec.kind, handler, match)
        self.specs[spec.topic, spec.id] = spec

    def save(self, spec: HandlerSpec, *, share: bool = True) -> None:
        data = spec_json(spec)
        self.store.put_json(HANDLER_SPECS, f"{spec.topic}\x00{spec.id}", data)
        self._attach(spec)
        if share and self.on_change is not None:
            self.on_change(spec.topic, spec.id, data)

    def remove(self, topic: str, handler_id: str, *, share: bool = True) -> bool:
        found = self.specs.pop((topic, handler_id), None) is not None
        self.store.delete(HANDLER_SPECS, f"{topic}\x00{handler_id}")
        self.topics.detach(topic, handler_id)
        if found and share and self.on_change is not None:
            self.on_change(topic, handler_id, None)
        return found

    # -- a cluster's catalog (kapa_core.cluster.catalog) ----------------------------------
    def local_handlers(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {key: spec_json(spec) for key, spec in self.specs.items()}

    def apply_remote_handler(self, topic: str, handler_id: str,
                             data: dict[str, Any] | None) -> None:
        """Take a topic handler as another member wrote it (None: it deleted it)."""
        if data is None:
            self.remove(topic, handler_id, share=False)
            return
        try:
            spec = self.parse_spec(topic, data, handler_id)
        except APIError as exc:  # a kind this member lacks (a plugin not installed here)
            self.log.error("topic handler from the cluster's catalog not usable here",
                           topic=topic, handler=handler_id, err=exc.message)
            return
        if (topic, handler_id) in self.specs:
            self.topics.detach(topic, handler_id)
        self.save(spec, share=False)

    def delete_topic(self, topic: str) -> None:
        for key in [k for k in self.specs if k[0] == topic]:
            self.remove(*key)
        self.topics.delete(topic)


def spec_json(spec: HandlerSpec) -> dict[str, Any]:
    """A topic handler as it is stored (and shared in a cluster's catalog)."""
    return {"topic": spec.topic, "id": spec.id, "kind": spec.kind,
            "options": spec.options, "match": spec.match}

"""``/kapacitor/v1/alerts/topics``: topics, their events and their handlers."""

from __future__ import annotations

import copy
from typing import Any, Protocol

import httpx
import trio

from kapa_core.alert import kinds as registry
from kapa_core.alert.levels import Level
from kapa_core.alert.service import HANDLER_ID, AlertService, HandlerSpec
from kapa_core.alert.topics import Topic
from kapa_core.auth.permissions import go_quote
from kapa_core.engine.tasks import json_kind
from kapa_core.errors import APIError
from kapa_core.glob import filter_names
from kapa_core.http.messages import Request, Response, decode_json
from kapa_core.http.router import Router
from kapa_core.http.tasks_api import PROXIED
from kapa_core.models.govalues import yaml_object

BASE = "/kapacitor/v1/alerts/topics"
#: request content types read as a handler YAML file (kapa-core addition)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


class Peers(Protocol):
    async def peers(self) -> list[str]:
        """The API addresses of the other live members."""


def _merge_topics(views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One view per topic ID, sorted: the worst level, the events collected everywhere."""
    merged: dict[str, dict[str, Any]] = {}
    for view in views:
        seen = merged.get(view["id"])
        if seen is None:
            merged[view["id"]] = dict(view)
            continue
        seen["collected"] += view["collected"]
        if Level.parse(view["level"]) > Level.parse(seen["level"]):
            seen["level"] = view["level"]
    return [merged[k] for k in sorted(merged)]


def _merge_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One event per ID, the newest state of it, sorted by ID."""
    merged: dict[str, dict[str, Any]] = {}
    for event in events:
        seen = merged.get(event["id"])
        if seen is None or event["state"]["time"] > seen["state"]["time"]:
            merged[event["id"]] = event
    return [merged[k] for k in sorted(merged)]


def _min_level(request: Request) -> Level:
    try:
        return Level.parse(request.arg("min-level", "OK"))
    except ValueError as exc:
        raise APIError(400, str(exc)) from None


def _pattern(request: Request) -> str:
    pattern = request.arg("pattern", "")
    if pattern.count("[") != pattern.count("]"):
        raise APIError(400, f"invalid pattern {pattern!r}")
    return pattern


class AlertsAPI:
    #: A cluster member's peers (kapa_core.cluster.member): their topics are listed too.
    cluster: Peers | None = None

    def __init__(self, alerts: AlertService | None) -> None:
        assert alerts is not None
        self.alerts = alerts

    def register(self, router: Router) -> None:
        router.add("GET", BASE, self.list_topics)
        router.add("GET", BASE + "/{topic}", self.get_topic)
        router.add("DELETE", BASE + "/{topic}", self.delete_topic)
        router.add("GET", BASE + "/{topic}/events", self.list_events)
        router.add("GET", BASE + "/{topic}/events/{event}", self.get_event)
        router.add("GET", BASE + "/{topic}/handlers", self.list_handlers)
        router.add("POST", BASE + "/{topic}/handlers", self.create_handler)
        router.add("GET", BASE + "/{topic}/handlers/{handler}", self.get_handler)
        router.add("PUT", BASE + "/{topic}/handlers/{handler}", self.put_handler)
        router.add("PATCH", BASE + "/{topic}/handlers/{handler}", self.patch_handler)
        router.add("DELETE", BASE + "/{topic}/handlers/{handler}", self.delete_handler)

    # -- topics -----------------------------------------------------------------------------
    @staticmethod
    def topic_json(topic: Topic) -> dict[str, Any]:
        href = f"{BASE}/{topic.id}"
        return {"link": {"rel": "self", "href": href}, "id": topic.id,
                "level": str(topic.level), "collected": topic.collected,
                "events-link": {"rel": "events", "href": href + "/events"},
                "handlers-link": {"rel": "handlers", "href": href + "/handlers"}}

    def _topic(self, request: Request) -> Topic:
        topic_id = request.params["topic"]
        topic = self.alerts.topics.topics.get(topic_id)
        if topic is None:
            raise APIError(404, f'unknown topic: "{topic_id}"')
        return topic

    async def list_topics(self, request: Request) -> Response:
        topics = self.alerts.topics.matching(_pattern(request), _min_level(request))
        views = [self.topic_json(t) for t in topics]
        for answer in await self._peers(request):  # a cluster member: everyone's topics
            views.extend(answer.get("topics", []))
        return Response.json({"link": {"rel": "self", "href": BASE},
                              "topics": _merge_topics(views)})

    async def get_topic(self, request: Request) -> Response:
        topic = self.alerts.topics.topics.get(request.params["topic"])
        views = [self.topic_json(topic)] if topic is not None else []
        views.extend(a for a in await self._peers(request) if "id" in a)
        if not views:
            raise APIError(404, f'unknown topic: "{request.params["topic"]}"')
        return Response.json(_merge_topics(views)[0])

    async def _peers(self, request: Request) -> list[dict[str, Any]]:
        """The same request's answers from the other live members of a cluster (kapa-core,
        docs/cluster.md): a task's alerts are in the member that runs it. None asked for
        a single daemon, or for a request a member made (one hop at most)."""
        if self.cluster is None or request.header(PROXIED) is not None:
            return []
        headers = {k: v for k, v in request.headers if k == "authorization"}
        headers[PROXIED] = "1"
        answers: list[dict[str, Any]] = []

        async def ask(client: httpx.AsyncClient, url: str) -> None:
            try:
                answer = await client.get(url + request.raw_target, headers=headers)
                if answer.status_code == 200:
                    answers.append(answer.json())
            except (httpx.HTTPError, ValueError):
                pass  # a member going away: its topics are gone with it until it is back

        async with httpx.AsyncClient(timeout=5) as client, trio.open_nursery() as nursery:
            for url in await self.cluster.peers():
                nursery.start_soon(ask, client, url)
        return answers

    async def delete_topic(self, request: Request) -> Response:
        self.alerts.delete_topic(request.params["topic"])
        return Response.empty()

    # -- events -----------------------------------------------------------------------------
    @staticmethod
    def event_json(topic: str, state: Any) -> dict[str, Any]:
        return {"link": {"rel": "self", "href": f"{BASE}/{topic}/events/{state.id}"},
                "id": state.id, "state": state.to_json()}

    async def list_events(self, request: Request) -> Response:
        topic_id = request.params["topic"]
        topic = self.alerts.topics.topics.get(topic_id)
        peers = [a for a in await self._peers(request) if "events" in a]
        if topic is None and not peers:
            raise APIError(404, f'unknown topic: "{topic_id}"')
        minimum = _min_level(request)
        events = [self.event_json(topic_id, s) for _, s in sorted(topic.events.items())
                  if s.level >= minimum] if topic is not None else []
        for answer in peers:
            events.extend(answer["events"])
        return Response.json({"link": {"rel": "self", "href": f"{BASE}/{topic_id}/events"},
                              "topic": topic_id, "events": _merge_events(events)})

    async def get_event(self, request: Request) -> Response:
        topic_id, event_id = request.params["topic"], request.params["event"]
        state = self.alerts.topics.state(topic_id, event_id)
        if state is None:
            found = [a for a in await self._peers(request) if "state" in a]
            if found:
                return Response.json(_merge_events(found)[0])
            raise APIError(404, f'unknown event "{event_id}" in topic "{topic_id}"')
        return Response.json(self.event_json(topic_id, state))

    # -- handlers ---------------------------------------------------------------------------
    def _spec(self, request: Request) -> HandlerSpec:
        key = (request.params["topic"], request.params["handler"])
        spec = self.alerts.specs.get(key)
        if spec is None:
            raise APIError(404, f'unknown handler: "{key[1]}"')
        return spec

    @staticmethod
    def _body(request: Request) -> Any:
        """JSON, as in Kapacitor; kapa-core also takes the YAML file that ``kapacitor
        define-topic-handler`` reads (``Content-Type: application/yaml``), converted as
        that command converts it. Its ``topic`` key, when given, must name this topic."""
        kind = (request.header("content-type") or "").split(";")[0].strip().lower()
        if kind in YAML_TYPES:
            try:
                body: dict[str, Any] = yaml_object(request.body)
            except ValueError as exc:
                raise APIError(400, f"invalid handler yaml: {exc}") from None
            topic = body.pop("topic", None)
            if topic not in (None, "", request.params["topic"]):
                raise APIError(400, f"invalid handler yaml: topic {go_quote(str(topic))} "
                               f"is not this topic {go_quote(request.params['topic'])}")
            return body
        try:
            return decode_json(request.body or b"null")
        except ValueError as exc:
            raise APIError(400, f"invalid handler json: {exc}") from None

    async def list_handlers(self, request: Request) -> Response:
        topic = request.params["topic"]
        pattern = _pattern(request)
        ids = filter_names(sorted(hid for t, hid in self.alerts.specs if t == topic), pattern)
        specs = [self.alerts.specs[topic, hid].to_json() for hid in ids]
        return Response.json({"link": {"rel": "self", "href": f"{BASE}/{topic}/handlers"},
                              "topic": topic, "handlers": specs})

    async def create_handler(self, request: Request) -> Response:
        topic = request.params["topic"]
        spec = self.alerts.parse_spec(topic, _kapacitor_checks(self._body(request), "create",
                                                               kinds=self.alerts.kinds))
        if (topic, spec.id) in self.alerts.specs:
            raise APIError(400, "failed to create handler: cannot register handler, handler "
                           f"with ID {go_quote(spec.id)} already exists")
        self.alerts.save(spec)
        return Response.json(spec.to_json())

    async def get_handler(self, request: Request) -> Response:
        return Response.json(self._spec(request).to_json())

    async def put_handler(self, request: Request) -> Response:
        old = self._spec(request)
        checked = _kapacitor_checks(self._body(request), "update", old.id,
                                    kinds=self.alerts.kinds)
        spec = self.alerts.parse_spec(old.topic, checked, old.id)
        if spec.id != old.id:
            self.alerts.remove(old.topic, old.id)
        self.alerts.save(spec)
        return Response.json(spec.to_json())

    async def patch_handler(self, request: Request) -> Response:
        old = self._spec(request)
        try:
            ops = decode_json(request.body or b"null")
        except ValueError as exc:
            raise APIError(400, f"invalid patch json: {exc}") from None
        document = {"id": old.id, "kind": old.kind, "options": copy.deepcopy(old.options),
                    "match": old.match}
        try:
            patched = apply_patch(document, ops)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise APIError(400, f"failed to apply patch: {exc}") from None
        checked = _kapacitor_checks(patched, "update", old.id, kinds=self.alerts.kinds)
        spec = self.alerts.parse_spec(old.topic, checked, old.id)
        if spec.id != old.id:
            self.alerts.remove(old.topic, old.id)
        self.alerts.save(spec)
        return Response.json(spec.to_json())

    async def delete_handler(self, request: Request) -> Response:
        self.alerts.remove(request.params["topic"], request.params["handler"])
        return Response.empty()


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str):
        raise ValueError(f"a JSON pointer is a string, not {json_kind(path)}")
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> tuple[Any, str]:
    if not parts:
        raise ValueError("cannot operate on the whole document")
    target = doc
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target[part]
    return target, parts[-1]


def apply_patch(doc: dict[str, Any], ops: Any) -> dict[str, Any]:
    """RFC 6902 JSON Patch: add, remove, replace, move, copy, test."""
    if not isinstance(ops, list):
        raise ValueError("a JSON Patch is an array of operations")
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise ValueError("each operation needs 'op' and 'path'")
        name = op["op"]
        parent, key = _parent(doc, _pointer(op["path"]))
        if name in ("add", "replace"):
            if "value" not in op:
                raise ValueError(f"{name} needs a value")
            if isinstance(parent, list):
                index = len(parent) if key == "-" else int(key)
                if name == "add":
                    parent.insert(index, op["value"])
                else:
                    parent[index] = op["value"]
            else:
                if name == "replace" and key not in parent:
                    raise KeyError(key)
                parent[key] = op["value"]
        elif name == "remove":
            del parent[int(key) if isinstance(parent, list) else key]
        elif name in ("move", "copy"):
            source, skey = _parent(doc, _pointer(op.get("from", "")))
            value = source[int(skey) if isinstance(source, list) else skey]
            if name == "move":
                del source[int(skey) if isinstance(source, list) else skey]
            else:
                value = copy.deepcopy(value)
            if isinstance(parent, list):
                parent.insert(len(parent) if key == "-" else int(key), value)
            else:
                parent[key] = value
        elif name == "test":
            current = parent[int(key) if isinstance(parent, list) else key]
            if current != op.get("value"):
                raise ValueError(f"test failed at {op['path']}")
        else:
            raise ValueError(f"unknown operation {name!r}")
    return doc


def _kapacitor_checks(body: Any, verb: str, handler_id: str = "", *,
                      kinds: registry.HandlerKinds) -> Any:
    """What Kapacitor checks of a handler before kapa-core parses it, in its words: the
    handler ID, then whether it knows the kind, then an aggregate handler's interval.
    Kapacitor answers these with a 500; kapa-core with a 400, as every refusal of what a
    client sent."""
    if isinstance(body, dict):
        hid = body.get("id", handler_id) or handler_id
        if isinstance(hid, str) and not HANDLER_ID.fullmatch(hid):
            raise APIError(400, "invalid handler spec: handler ID must contain only "
                           f"letters, numbers, '-', '.' and '_'. {go_quote(hid)}")
        kind = body.get("kind")
        if isinstance(kind, str) and kind and kind not in kinds:
            raise APIError(400, f"failed to {verb} handler: unsupported action kind "
                           f"{go_quote(kind)}")
    return _aggregate_interval(body, verb)


def _aggregate_interval(body: Any, verb: str) -> Any:
    """An aggregate handler's ``interval`` as Kapacitor 1.5.7 decodes it: a number of
    nanoseconds. Text (even ``"10s"``) or a boolean is refused with its words (as a 400:
    Kapacitor answers 500); an integral float (``1e10``) is taken as the integer it is."""
    options = body.get("options") if isinstance(body, dict) and body.get(
        "kind") == "aggregate" else None
    if not isinstance(options, dict) or options.get("interval") is None:
        return body
    value = options["interval"]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return {**body, "options": {**options, "interval": int(value)}}
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = {bool: "bool", str: "string", list: "slice", dict: "map"}.get(
            type(value), type(value).__name__)
        raise APIError(400, f"failed to {verb} handler: failed to decode options into "
                       "*alert.AggregateHandlerConfig: 1 error(s) decoding:\n\n* 'interval' "
                       f"expected type 'time.Duration', got unconvertible type '{kind}'")
    return body

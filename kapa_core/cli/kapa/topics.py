"""Alert topics and their handlers: ``define-topic-handler``, ``show-topic``,
``show-topic-handler``, and the ``topics``/``topic-handlers`` kinds of ``list`` and
``delete``.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

from kapa_core.cli.kapa.api import BASE, APIError, Client
from kapa_core.cli.kapa.flags import go_quote
from kapa_core.cli.kapa.output import (
    decoder_error,
    go_json,
    go_sprintf,
    go_type_name,
    join_path,
    os_error,
    rfc822,
    width,
)
from kapa_core.cli.kapa.registry import Command, CommandError, Context, Registry
from kapa_core.gotemplate.gofmt import sprintln
from kapa_core.models.govalues import json_object, yaml_object

__all__ = ["register"]

TOPICS = BASE + "/alerts/topics"
HANDLER_TYPE = "client.TopicHandlerOptions"

DEFINE_TOPIC_HANDLER_USAGE = """Usage: kapacitor define-topic-handler <path to handler spec file>

	Create or update a handler.

	A handler is defined via a JSON or YAML file.

For example:

	Define a handler using the slack.yaml file:

		$ kapacitor define-topic-handler slack.yaml

Options:
"""
SHOW_TOPIC_HANDLER_USAGE = """Usage: kapacitor show-topic-handler [topic ID] [handler ID]

	Show details about a specific handler.
"""
SHOW_TOPIC_USAGE = """Usage: kapacitor show-topic [topic ID]

	Show details about a specific topic.
"""


def _printer(text: str) -> Any:
    def show() -> None:
        sys.stderr.write(text + "\n")
    return show


def _exit_usage(message: str, text: str) -> NoReturn:
    sys.stderr.write(message + "\n")
    _printer(text)()
    raise SystemExit(2)


def topic_link(topic: str) -> str:
    return join_path(TOPICS, topic)


def handlers_link(topic: str) -> str:
    return join_path(TOPICS, topic, "handlers")


def handler_link(topic: str, handler: str) -> str:
    return join_path(TOPICS, topic, "handlers", handler)


def list_topics(client: Client, pattern: str) -> list[dict[str, Any]]:
    answer = client.get(TOPICS, {"pattern": pattern, "min-level": "OK"})
    return list(answer.get("topics") or []) if isinstance(answer, dict) else []


def list_handlers(client: Client, link: str, pattern: str) -> list[dict[str, Any]]:
    answer = client.get(link, {"pattern": pattern})
    return list(answer.get("handlers") or []) if isinstance(answer, dict) else []


def _link(item: dict[str, Any], key: str = "link") -> str:
    link = item.get(key)
    href = link.get("href", "") if isinstance(link, dict) else ""
    if not href:
        rel = link.get("rel", "") if isinstance(link, dict) else ""
        raise CommandError(f"invalid link {{{rel} }}")
    return str(href)


# -- define-topic-handler --------------------------------------------------------------
def _handler_options(data: Any, path: str, kind: str) -> dict[str, Any]:
    """The file decoded into Go's ``TopicHandlerOptions``: every field, empty if absent."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CommandError(f"failed to unmarshal {kind} handler file {go_quote(path)}: "
                           "json: cannot unmarshal into Go value of type "
                           "client.TopicHandlerOptions")
    out: dict[str, Any] = {}
    for key in ("topic", "id", "kind"):
        value = data.get(key, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise CommandError(f"failed to unmarshal {kind} handler file {go_quote(path)}: "
                               f"json: cannot unmarshal into Go struct field "
                               f"TopicHandlerOptions.{key} of type string")
        out[key] = value
    options = data.get("options")
    if options is not None and not isinstance(options, dict):
        raise CommandError(f"failed to unmarshal {kind} handler file {go_quote(path)}: "
                           "json: cannot unmarshal into Go struct field "
                           "TopicHandlerOptions.options of type map[string]interface {}")
    out["options"] = options
    match = data.get("match", "")
    out["match"] = match if isinstance(match, str) else ""
    return out


def do_define_topic_handler(ctx: Context, args: list[str]) -> None:
    if len(args) != 1:
        _exit_usage("Must provide a path to a handler file.", DEFINE_TOPIC_HANDLER_USAGE)
    path = args[0]
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise CommandError(f"failed to open handler spec file {go_quote(path)}: "
                           f"{os_error('open', path, exc)}") from None
    base = path.rsplit("/", 1)[-1]
    ext = base[base.rfind("."):] if "." in base else ""
    if ext in (".yaml", ".yml"):
        try:
            data: Any = yaml_object(raw)
        except ValueError as exc:
            raise CommandError(f"failed to unmarshal yaml handler file {go_quote(path)}: "
                               f"{go_type_name(str(exc), HANDLER_TYPE)}") from None
        options = _handler_options(data, path, "yaml")
    elif ext == ".json":
        try:
            data = json_object(raw)
        except ValueError as exc:
            raise CommandError(f"failed to unmarshal json handler file {go_quote(path)}: "
                               f"{decoder_error(str(exc), HANDLER_TYPE, raw)}") from None
        options = _handler_options(data, path, "json")
    else:
        # Kapacitor's client sends empty options for any other file name.
        options = _handler_options({}, path, "")
    link = handler_link(options["topic"], options["id"])
    existing: dict[str, Any] = {}
    try:
        answer = ctx.client.get(link)
        existing = answer if isinstance(answer, dict) else {}
    except APIError:
        existing = {}
    if not existing.get("id"):
        ctx.client.post(handlers_link(options["topic"]), options)
    else:
        ctx.client.put(link, options)


# -- show-topic-handler / show-topic ---------------------------------------------------
def do_show_topic_handler(ctx: Context, args: list[str]) -> None:
    if len(args) != 2:
        _exit_usage("Must specify both topic and handler IDs", SHOW_TOPIC_HANDLER_USAGE)
    topic, handler_id = args
    handler = ctx.client.get(handler_link(topic, handler_id))
    if not isinstance(handler, dict):
        handler = {}
    if ctx.json_output:
        ctx.print_json(handler)
        return
    ctx.write(sprintln("ID:", handler.get("id", "")))
    ctx.write(sprintln("Topic:", topic))
    ctx.write(sprintln("Kind:", handler.get("kind", "")))
    ctx.write(sprintln("Match:", handler.get("match", "")))
    ctx.write(sprintln("Options:", go_json(handler.get("options"))))


def _event_time(event: dict[str, Any]) -> str:
    state = event.get("state") or {}
    return str(state.get("time") or "0001-01-01T00:00:00Z")


def do_show_topic(ctx: Context, args: list[str]) -> None:
    if len(args) != 1:
        _exit_usage("Must specify one topic ID", SHOW_TOPIC_USAGE)
    topic = ctx.client.get(topic_link(args[0]))
    if not isinstance(topic, dict):
        topic = {}
    events_answer = ctx.client.get(_link(topic, "events-link"), {"min-level": "OK"})
    events = list((events_answer or {}).get("events") or [])
    max_event, max_message = 5, 7
    for event in events:
        max_event = max(max_event, width(str(event.get("id", ""))))
        max_message = max(max_message, width(str((event.get("state") or {}).get("message", ""))))
    events.sort(key=_time_key)
    handlers = list_handlers(ctx.client, _link(topic, "handlers-link"), "")
    if ctx.json_output:
        ctx.print_json({**topic, "events": events, "handlers": handlers})
        return
    fmt = f"%-{max_event + 1}s%-9s%-{max_message + 1}s%-23s\n"
    out = [sprintln("ID:", topic.get("id", "")),
           sprintln("Level:", topic.get("level", "")),
           sprintln("Collected:", int(topic.get("collected") or 0)),
           "Handlers: [" + ", ".join(str(h.get("id", "")) for h in handlers) + "]\n",
           "Events:\n",
           go_sprintf(fmt, "Event", "Level", "Message", "Date")]
    for event in events:
        state = event.get("state") or {}
        out.append(go_sprintf(fmt, event.get("id", ""), state.get("level", ""),
                              state.get("message", ""),
                              rfc822(_event_time(event), local=True)))
    ctx.write("".join(out))


def _time_key(event: dict[str, Any]) -> tuple[str, ...]:
    # RFC 3339 times in UTC sort as text; other offsets are rare in answers.
    text = _event_time(event)
    return (text[:19], text[19:].rstrip("Z"))


# -- list / delete kinds ---------------------------------------------------------------
def list_topics_kind(ctx: Context, patterns: list[str]) -> None:
    all_topics: list[dict[str, Any]] = []
    max_id, max_level = 2, 8
    for pattern in patterns:
        topics = list_topics(ctx.client, pattern)
        all_topics.extend(topics)
        for topic in topics:
            max_id = max(max_id, width(str(topic.get("id", ""))))
            max_level = max(max_level, width(str(topic.get("level", ""))))
    if ctx.json_output:
        ctx.print_json(all_topics)
        return
    fmt = f"%-{max_id + 1}v%-{max_level + 1}v%10v\n"
    out = [go_sprintf(fmt, "ID", "Level", "Collected")]
    for topic in all_topics:
        out.append(go_sprintf(fmt, topic.get("id", ""), topic.get("level", ""),
                              int(topic.get("collected") or 0)))
    ctx.write("".join(out))


def list_handlers_kind(ctx: Context, patterns: list[str]) -> None:
    topics = list_topics(ctx.client, patterns[0])
    handler_patterns = patterns[1:] or [""]
    max_topic = max_id = max_kind = 10
    rows: list[tuple[str, str, str]] = []
    objects: list[dict[str, Any]] = []
    for topic in topics:
        link = _link(topic, "handlers-link")
        for pattern in handler_patterns:
            for handler in list_handlers(ctx.client, link, pattern):
                row = (str(topic.get("id", "")), str(handler.get("id", "")),
                       str(handler.get("kind", "")))
                max_topic = max(max_topic, width(row[0]))
                max_id = max(max_id, width(row[1]))
                max_kind = max(max_kind, width(row[2]))
                rows.append(row)
                objects.append({"topic": row[0], **handler})
    if ctx.json_output:
        ctx.print_json(objects)
        return
    fmt = f"%-{max_topic + 1}v%-{max_id + 1}v%-{max_kind + 1}v\n"
    out = [go_sprintf(fmt, "Topic", "ID", "Kind")]
    out.extend(go_sprintf(fmt, *row) for row in rows)
    ctx.write("".join(out))


def delete_topics_kind(ctx: Context, patterns: list[str]) -> None:
    for pattern in patterns:
        for topic in list_topics(ctx.client, pattern):
            ctx.client.delete(_link(topic))


def delete_handlers_kind(ctx: Context, args: list[str]) -> None:
    topic = args[0]
    for pattern in args[1:]:
        for handler in list_handlers(ctx.client, handlers_link(topic), pattern):
            ctx.client.delete(_link(handler))


def register(registry: Registry) -> None:
    registry.add(Command("define-topic-handler", do_define_topic_handler,
                         _printer(DEFINE_TOPIC_HANDLER_USAGE)))
    registry.add(Command("show-topic-handler", do_show_topic_handler,
                         _printer(SHOW_TOPIC_HANDLER_USAGE), json=True))
    registry.add(Command("show-topic", do_show_topic, _printer(SHOW_TOPIC_USAGE), json=True))
    registry.add_kind("list", "topics", list_topics_kind)
    registry.add_kind("list", "topic-handlers", list_handlers_kind)
    registry.add_kind("delete", "topics", delete_topics_kind)
    registry.add_kind("delete", "topic-handlers", delete_handlers_kind)

"""Discord: the [[discord]] section (one element per workspace) and the ``discord`` handler.

TICKscript: ``.discord().workspace('ops').username('bot').avatarUrl('https://…')
.embedTitle('{{ .ID }}')``. Topic handler: kind ``discord`` with options ``workspace``,
``username``, ``avatar-url``, ``embed-title``.

Each event is one webhook POST of JSON to the workspace's ``url``, as Kapacitor sends it::

    {"username": "…", "avatar_url": "…",
     "embeds": [{"color": 16342867, "title": "…", "description": "<message>",
                 "timestamp": "2006-01-02T15:04:05Z"}]}

``username`` and ``avatar_url`` are the handler's, else the workspace's (both keys are
always present, empty when neither sets them). The embed is coloured by level: CRITICAL
``0xF95F53``, WARNING ``0xF48D38``, anything else ``0x7A65F2``. ``title`` is the
``embedTitle`` Go template (rendered with the event's template data), else the
workspace's ``embed-title``; ``timestamp`` is the event time in RFC 3339 (whole seconds,
UTC) when the workspace sets ``timestamp = true``, else an empty string. ``workspace``
picks a [[discord]] element; empty means the default one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kapa_core.plugin_api import (
    TLS,
    APIError,
    ConfigError,
    Event,
    GoStruct,
    HandlerContext,
    HandlerError,
    HandlerKind,
    Level,
    Section,
    TemplateError,
    go_json,
    hookimpl,
    one_default,
    option,
    parse_template,
    pick_element,
    require_url,
    send,
    unique_elements,
)

from .service_test_kit import SectionService, decode, workspace_element

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class DiscordConfig:
    enabled: bool = False
    default: bool = False  # a lone element is the default anyway
    workspace: str = ""
    url: str = ""
    timestamp: bool = False
    username: str = ""
    avatar_url: str = ""
    embed_title: str = ""
    global_: bool = False
    state_changes_only: bool = False
    ssl_ca: str = ""
    ssl_cert: str = ""
    ssl_key: str = ""
    insecure_skip_verify: bool = False

    def validate(self) -> None:
        if self.enabled:
            require_url(self.url, "url")


def _check(elements: tuple[DiscordConfig, ...]) -> None:
    unique_elements("workspace")(elements)
    if len(elements) > 1:  # Kapacitor's rules for several workspaces
        for i, element in enumerate(elements):
            if not element.workspace:
                raise ConfigError(f"[{i}].workspace", "id must not be empty")
        if not any(element.default for element in elements):
            raise ConfigError("default", "at least one Discord config must be set as "
                              "default")
    for i, element in enumerate(elements):
        if element.global_ and not element.default:
            raise ConfigError(f"[{i}].global", "only the default config may be "
                              "assigned as global")
        if element.state_changes_only and not (element.default and element.global_):
            raise ConfigError(f"[{i}].state-changes-only", "stateChangesOnly may only "
                              "be assigned when the config is both default and global")
    one_default(elements)


@dataclass(frozen=True, kw_only=True)
class DiscordSection(Section):
    def default_raw(self) -> Any:
        """Kapacitor's built-in element (no [[discord]] in the file) is the default one;
        an element written in the file is not unless it says so."""
        return [{**self.default_raw_element(), "default": True}]


def _rfc3339(value: str) -> str:
    """A JSON time as Go's time.RFC3339 writes it back (whole seconds, its offset)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise APIError(400, f"failed to decode JSON body:parsing time \"{value}\" as "
                            f"\"2006-01-02T15:04:05Z07:00\"") from None
    offset = parsed.utcoffset()
    if offset is None:
        raise APIError(400, f"failed to decode JSON body:parsing time \"{value}\" as "
                            f"\"2006-01-02T15:04:05Z07:00\"")
    zone = "Z" if not offset else parsed.strftime("%z")[:3] + ":" + parsed.strftime("%z")[3:]
    return parsed.strftime("%Y-%m-%dT%H:%M:%S") + zone


class DiscordService(SectionService[tuple[DiscordConfig, ...]]):
    """``/service-tests/discord`` as Kapacitor 1.5.7 answers it."""

    def test_options(self) -> dict[str, Any]:
        try:
            workspace = workspace_element(self.config, "", "discord").workspace
        except HandlerError:
            workspace = ""
        return {"workspace": workspace, "message": "test discord message", "level": "INFO",
                "username": "Kapacitor", "avatar-url": _TEST_AVATAR,
                "embed-title": "Kapacitor Alert", "time-val": "1970-01-01T00:00:01Z"}

    async def test(self, options: dict[str, Any]) -> None:
        values = decode(options, self.test_options(), {"level": Level})
        stamp = _rfc3339(values["time-val"])
        config = workspace_element(self.config, values["workspace"], "discord")
        if not config.enabled:
            raise HandlerError("service is not enabled")
        embed = GoStruct(color=COLORS.get(values["level"], OTHER_COLOR),
                         title=values["embed-title"], description=values["message"],
                         timestamp=stamp if config.timestamp else "")
        body = {"username": values["username"] or config.username,
                "avatar_url": values["avatar-url"] or config.avatar_url, "embeds": [embed]}
        await send(self, "discord", config.url, content=go_json(body) + "\n",
                   headers={"Content-Type": "application/json"}, tls=TLS.of(config))


_TEST_AVATAR = ("https://influxdata.github.io/branding/img/downloads/"
                "influxdata-logo--symbol--pool-alpha.png")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [DiscordSection(name="discord", schema=DiscordConfig, multiple=True,
                           element_key="workspace", default_elements=1, check=_check,
                           service=DiscordService, doc="Send alerts to Discord webhooks.")]


@dataclass(frozen=True, kw_only=True)
class DiscordOptions:
    workspace: str = option("", doc="The [[discord]] element; empty for the default.")
    username: str = ""
    avatar_url: str = ""
    embed_title: str = option("", doc="A Go template rendered per event.")

    def validate(self) -> None:
        try:
            parse_template(self.embed_title, "embedTitle")
        except TemplateError as exc:
            raise ConfigError("embed-title", f"discord: {exc}") from None


#: Embed colours by level; any other level gets :data:`OTHER_COLOR`.
COLORS = {Level.CRITICAL: 0xF95F53, Level.WARNING: 0xF48D38}
OTHER_COLOR = 0x7A65F2


def rfc3339(ns: int) -> str:
    """Go's ``time.RFC3339`` in UTC: whole seconds, fraction dropped."""
    return (_EPOCH + timedelta(seconds=ns // 1_000_000_000)).strftime("%Y-%m-%dT%H:%M:%SZ")


class DiscordHandler:
    def __init__(self, options: DiscordOptions,
                 context: HandlerContext[tuple[DiscordConfig, ...] | None, object]) -> None:
        self.options = options
        self.context = context
        self.title = parse_template(options.embed_title, "embedTitle")

    def _workspace(self) -> DiscordConfig:
        return pick_element(self.context, self.options.workspace, section="discord")

    def body(self, config: DiscordConfig, event: Event) -> dict[str, Any]:
        """The webhook JSON for ``event`` under the workspace ``config``."""
        try:
            title = self.title.execute(event.template_data())
        except TemplateError as exc:
            raise HandlerError(f"discord: embedTitle: {exc}") from None
        embed = GoStruct(color=COLORS.get(event.level, OTHER_COLOR),
                         title=title or config.embed_title,
                         description=event.state.message,
                         timestamp=rfc3339(event.state.time) if config.timestamp else "")
        return {"username": self.options.username or config.username,
                "avatar_url": self.options.avatar_url or config.avatar_url,
                "embeds": [embed]}

    async def handle(self, event: Event) -> None:
        config = self._workspace()
        if not config.enabled:
            raise HandlerError("discord: the [[discord]] section is not enabled")
        # as Go's json.Encoder writes it: map keys sorted, the embed in struct order, a
        # final newline
        await send(self.context, "discord", config.url,
                   content=go_json(self.body(config, event)) + "\n",
                   headers={"Content-Type": "application/json"}, tls=TLS.of(config))


@hookimpl
def kapa_handler_kinds() -> list[HandlerKind]:
    return [HandlerKind(name="discord", options=DiscordOptions, factory=DiscordHandler,
                        section="discord", doc="Post alerts to a Discord webhook.")]

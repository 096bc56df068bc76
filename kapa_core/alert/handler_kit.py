"""Small helpers that handler plugins share (exported through ``kapa_core.plugin_api``)."""

from __future__ import annotations

import posixpath
from typing import Protocol, TypeVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from kapa_core.alert.handler_context import HandlerContext
from kapa_core.errors import ConfigError, HandlerError
from kapa_core.gotemplate import Template, TemplateError
from kapa_core.gotemplate import parse as parse_template


class Enablable(Protocol):
    """A section with an ``enabled`` key."""

    @property
    def enabled(self) -> bool: ...


SectionT = TypeVar("SectionT", bound=Enablable)
ElementT = TypeVar("ElementT")


def enabled_config(context: HandlerContext[SectionT | None, object], section: str
                   ) -> SectionT:
    """The section's config from a handler context; HandlerError when it is disabled."""
    config = context.config
    if config is None or not config.enabled:
        raise HandlerError(f"{section}: the [{section}] section is not enabled")
    return config


def option_template(text: str, option: str, handler: str) -> Template:
    """Parse a templated option once; a bad template is a ConfigError naming the option."""
    try:
        return parse_template(text, option)
    except TemplateError as exc:
        raise ConfigError(option, f"{handler}: invalid template: {exc}") from None


def pick_element(context: HandlerContext[tuple[ElementT, ...] | None, object], wanted: str,
                 *, section: str, key: str = "workspace") -> ElementT:
    """The element of a ``[[section]]`` a handler uses: the one whose ``key`` is
    ``wanted``, else the ``default`` one, else the only one; HandlerError otherwise."""
    elements = context.config or ()
    for element in elements:
        if (getattr(element, key) == wanted) if wanted else getattr(element, "default", False):
            return element
    if not wanted and len(elements) == 1:
        return elements[0]
    raise HandlerError(f"{section}: no [[{section}]] {key} {wanted!r} configured")


#: Characters Go's ``URL.String`` leaves unescaped in a path (besides letters, digits
#: and ``-_.~``).
GO_PATH_SAFE = "/$&+,:;=@"


def go_path_join(*parts: str) -> str:
    """Go's ``path.Join``: the non-empty parts joined by ``/``, then cleaned."""
    joined = "/".join(p for p in parts if p)
    if not joined:
        return ""
    cleaned = posixpath.normpath(joined)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def go_join_url(base: str, *segments: str, append: str = "", query: str | None = None
                ) -> str:
    """``base`` with ``append`` added to its path as is, then ``segments`` joined on with
    Go's ``path.Join``, escaped as Go's ``URL.String`` escapes a path; ``query``, when
    given, replaces the query. How Kapacitor builds e.g. Telegram's and HipChat's URLs."""
    parts = urlsplit(base)
    path = go_path_join(unquote(parts.path) + append, *segments)
    if parts.netloc and not path.startswith("/"):
        path = "/" + path
    replaced = parts._replace(path=quote(path, safe=GO_PATH_SAFE))
    return urlunsplit(replaced if query is None else replaced._replace(query=query))

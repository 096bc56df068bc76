"""Small helpers that handler plugins share (exported through ``kapa_core.plugin_api``)."""

from __future__ import annotations

from typing import Any

from kapa_core.errors import ConfigError, HandlerError
from kapa_core.gotemplate import Template, TemplateError
from kapa_core.gotemplate import parse as parse_template


def enabled_config(context: Any, section: str) -> Any:
    """The section's config from a handler context; HandlerError when it is disabled."""
    config = getattr(context, "config", None)
    if config is None or not getattr(config, "enabled", False):
        raise HandlerError(f"{section}: the [{section}] section is not enabled")
    return config


def option_template(text: str, option: str, handler: str) -> Template:
    """Parse a templated option once; a bad template is a ConfigError naming the option."""
    try:
        return parse_template(text, option)
    except TemplateError as exc:
        raise ConfigError(option, f"{handler}: invalid template: {exc}") from None


def pick_element(context: Any, wanted: str, *, section: str, key: str = "workspace") -> Any:
    """The element of a ``[[section]]`` a handler uses: the one whose ``key`` is
    ``wanted``, else the ``default`` one, else the only one; HandlerError otherwise."""
    elements = tuple(getattr(context, "config", None) or ())
    for element in elements:
        if (getattr(element, key) == wanted) if wanted else getattr(element, "default", False):
            return element
    if not wanted and len(elements) == 1:
        return elements[0]
    raise HandlerError(f"{section}: no [[{section}]] {key} {wanted!r} configured")

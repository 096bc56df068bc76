"""Checks that many config sections share (URLs, choices, uniqueness of element names)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from kapa_core.errors import ConfigError


def require_url(value: str, key: str, schemes: Sequence[str] = ("http", "https")) -> None:
    """Raise ConfigError unless ``value`` is an absolute URL with one of ``schemes``."""
    expected = " or ".join(f"{s}://" for s in schemes)
    if not value:
        raise ConfigError(key, f"must be set (expected a URL starting with {expected})")
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.netloc:
        raise ConfigError(key, f"invalid URL {value!r} (expected {expected}host...)")


def require_choice(value: str, key: str, choices: Iterable[str]) -> None:
    allowed = list(choices)
    if value not in allowed:
        shown = ", ".join(repr(c) for c in allowed)
        raise ConfigError(key, f"invalid value {value!r} (expected one of {shown})")


def unique_elements(key: str, attr: str | None = None) -> Any:
    """A Section ``check=`` that refuses two elements with the same ``key`` value."""
    field = attr or key.replace("-", "_")

    def check(elements: tuple[Any, ...]) -> None:
        seen: dict[str, int] = {}
        for i, element in enumerate(elements):
            value = getattr(element, field)
            if value in seen:
                raise ConfigError(f"[{i}].{key}", f"duplicate {key} {value!r} (also element "
                                  f"{seen[value]})")
            seen[value] = i
    return check


def one_default(elements: tuple[Any, ...]) -> None:
    """At most one enabled element may have ``default = true``."""
    defaults = [i for i, e in enumerate(elements) if getattr(e, "enabled", True)
                and getattr(e, "default", False)]
    if len(defaults) > 1:
        raise ConfigError(f"[{defaults[1]}].default", "more than one element has "
                          "default = true")

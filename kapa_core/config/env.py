"""``KAPACITOR_*`` environment variables applied on top of the file.

The mapping is Kapacitor's: ``KAPACITOR_`` + the key path upper-cased and joined by ``_``,
dashes as underscores, array elements by 0-based index (``KAPACITOR_INFLUXDB_0_URLS_0``),
map entries by their key with its case kept (``KAPACITOR_HTTPPOST_0_HEADERS_Authorization``).
An array section with exactly one element may leave out the index
(``KAPACITOR_KUBERNETES_ENABLED``). Values are text, parsed for the key's type; a whole
string list may also be given comma-separated (``KAPACITOR_INFLUXDB_0_URLS=http://a,http://b``).
Only existing array elements can be set; new map entries are created.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Iterable, Mapping
from typing import Any, cast

from kapa_core.config.schema import Section, coerce, keys_of
from kapa_core.errors import ConfigError

PREFIX = "KAPACITOR"
#: Variables that are not configuration keys.
SPECIAL = frozenset({"KAPACITOR_OPTS", "KAPACITOR_CONFIG_PATH", "KAPACITOR_URL",
                     "KAPACITOR_UNSAFE_SSL"})
_INDEX = re.compile(r"_(\d+)$")


def _token(name: str) -> str:
    return name.upper().replace("-", "_")


class _Slot:
    """One settable place in the raw tree: ``container[index]`` of type ``tp``."""

    __slots__ = ("container", "index", "path", "tp")

    def __init__(self, container: Any, index: Any, tp: Any, path: str) -> None:
        self.container = container
        self.index = index
        self.tp = tp
        self.path = path


def _slots(raw: dict[str, Any], sections: Iterable[Section]) -> dict[str, _Slot]:
    """Every environment variable name that addresses a key, mapped to its slot."""
    out: dict[str, _Slot] = {}
    for section in sections:
        base = PREFIX if not section.name else f"{PREFIX}_{_token(section.name)}"
        value = raw.get(section.name)
        if section.multiple:
            elements = value or []
            for i, element in enumerate(elements):
                _walk(out, f"{base}_{i}", element, section.schema, f"{section.name}[{i}]")
            if len(elements) == 1:
                _walk(out, base, elements[0], section.schema, f"{section.name}[0]", weak=True)
        elif isinstance(value, dict):
            _walk(out, base, value, section.schema, section.name)
    return out


def _walk(out: dict[str, _Slot], base: str, raw: dict[str, Any], schema: type, path: str,
          weak: bool = False) -> None:
    for key in keys_of(schema):
        name = f"{base}_{_token(key.name)}"
        where = f"{path}.{key.name}" if path else key.name
        if weak and name in out:
            continue
        if dataclasses.is_dataclass(key.type):
            sub = raw.setdefault(key.name, {})
            if isinstance(sub, dict):
                _walk(out, name, sub, cast(type, key.type), where, weak)
            continue
        out[name] = _Slot(raw, key.name, key.type, where)


def apply_env(raw: dict[str, Any], sections: Iterable[Section],
              environ: Mapping[str, str]) -> list[str]:
    """Apply ``KAPACITOR_*`` variables to ``raw`` in place.

    Returns the names of variables that address no key (reported as unknown). Raises
    ConfigError naming the variable, the key path, the value and the expected type.
    """
    sections = list(sections)
    slots = _slots(raw, sections)
    unknown = []
    for name in sorted(environ):
        if not name.startswith(PREFIX + "_") or name in SPECIAL:
            continue
        text = environ[name]
        if text == "":  # Kapacitor: an empty value means "not set"
            continue
        try:
            if not _apply_one(slots, name, text):
                unknown.append(name)
        except ConfigError as exc:
            raise ConfigError(exc.path, f"{exc.message} (from environment variable {name})"
                              ) from None
    return unknown


def _apply_one(slots: dict[str, _Slot], name: str, text: str) -> bool:
    slot = slots.get(name)
    if slot is not None:
        slot.container[slot.index] = coerce(text, slot.tp, slot.path, from_text=True)
        return True
    # A list element (..._URLS_0) or a map entry (..._HEADERS_Authorization).
    for base, slot in slots.items():
        if not name.startswith(base + "_"):
            continue
        rest = name[len(base) + 1:]
        origin = typing.get_origin(slot.tp)
        args = typing.get_args(slot.tp)
        current = slot.container.get(slot.index)
        if origin is list and rest.isdigit():
            i = int(rest)
            items = list(current or [])
            where = f"{slot.path}[{i}]"
            if i > len(items):
                raise ConfigError(where, f"cannot set element {i} of a list of {len(items)} "
                                  "(set the elements in order, or the whole list "
                                  "comma-separated)")
            value = coerce(text, args[0], where, from_text=True)
            if i == len(items):
                items.append(value)
            else:
                items[i] = value
            slot.container[slot.index] = items
            return True
        if origin is dict and rest:
            entries = dict(current or {})
            entries[rest] = coerce(text, args[1], f"{slot.path}.{rest}", from_text=True)
            slot.container[slot.index] = entries
            return True
    return False

"""Configuration printed as TOML, the way ``kapacitord config`` prints it.

Root keys first, then each section in registration order: ``[name]`` tables and
``[[name]]`` array elements, map-valued keys as sub-tables after the plain keys. A
redacted key that holds a value is printed commented out, so secrets never reach the
terminal while the output stays valid TOML.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from kapa_core.config.schema import Key, Section, keys_of
from kapa_core.models.duration import Duration

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_key(name: str) -> str:
    return name if _BARE.match(name) else json.dumps(name, ensure_ascii=False)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Duration):
        return json.dumps(str(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(value)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{toml_key(str(k))} = {toml_value(v)}"
                               for k, v in value.items()) + "}"
    if dataclasses.is_dataclass(value):
        return toml_value({k.name: getattr(value, k.attr) for k in keys_of(type(value))})
    raise TypeError(f"cannot print {type(value).__name__} as TOML")


def _is_table(key: Key, value: Any) -> bool:
    return isinstance(value, Mapping) or dataclasses.is_dataclass(value)


def _emit_table(lines: list[str], header: str, instance: Any, indent: str) -> None:
    """Plain keys of ``instance`` then its map-valued keys as sub-tables."""
    keys = keys_of(type(instance))
    tables = []
    for key in keys:
        value = getattr(instance, key.attr)
        if _is_table(key, value):
            tables.append((key, value))
            continue
        _emit_key(lines, key, value, indent)
    for key, value in tables:
        sub = f"{header}.{toml_key(key.name)}"
        lines.append("")
        if key.doc:
            lines.append(f"{indent}  # {key.doc}")
        lines.append(f"{indent}  [{sub}]")
        if key.redact and value:
            lines.append(f"{indent}    # (redacted: set)")
            continue
        if dataclasses.is_dataclass(value):
            for sub_key in keys_of(type(value)):
                _emit_key(lines, sub_key, getattr(value, sub_key.attr), indent + "  ")
            continue
        for name, item in value.items():
            if dataclasses.is_dataclass(item):
                lines.append("")
                lines.append(f"{indent}    [{sub}.{toml_key(str(name))}]")
                for sub_key in keys_of(type(item)):
                    _emit_key(lines, sub_key, getattr(item, sub_key.attr), indent + "    ")
            else:
                lines.append(f"{indent}    {toml_key(str(name))} = {toml_value(item)}")


def _emit_key(lines: list[str], key: Key, value: Any, indent: str) -> None:
    if key.doc:
        lines.append(f"{indent}  # {key.doc}")
    if key.redact and value:
        lines.append(f"{indent}  # {toml_key(key.name)} = (redacted: set)")
    else:
        lines.append(f"{indent}  {toml_key(key.name)} = {toml_value(value)}")


def dump(root: Any, sections: Iterable[tuple[Section, Any]]) -> str:
    """The whole configuration as TOML text."""
    lines: list[str] = []
    for key in keys_of(type(root)):
        if key.doc:
            lines.append(f"# {key.doc}")
        lines.append(f"{toml_key(key.name)} = {toml_value(getattr(root, key.attr))}")
    for section, value in sections:
        if not section.name:
            continue
        lines.append("")
        if section.doc:
            lines.extend(f"# {line}" for line in section.doc.splitlines())
        name = toml_key(section.name)
        if section.multiple:
            if not value:
                lines.append(f"# [[{name}]] (no elements configured)")
            for element in value:
                lines.append(f"[[{name}]]")
                _emit_table(lines, name, element, "")
                lines.append("")
        else:
            lines.append(f"[{name}]")
            _emit_table(lines, name, value, "")
    return "\n".join(lines).rstrip() + "\n"

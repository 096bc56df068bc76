"""Configuration overrides made through ``/kapacitor/v1/config``, as Kapacitor models them.

An override targets one section and, for array sections, one element (named by the
section's element key; single sections use element ``""``). It either sets options on
that element, creates a new element (``add``) or removes one (``remove``). Overrides are
stored as JSON and re-applied at startup unless ``skip-config-overrides`` is set.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kapa_core.config.schema import Section, coerce_key, key_map
from kapa_core.errors import ConfigError


@dataclass
class Override:
    section: str
    element: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    create: bool = False
    delete: bool = False

    @property
    def id(self) -> str:
        return f"{self.section}/{self.element}"

    def to_json(self) -> dict[str, Any]:
        return {"section": self.section, "element": self.element, "options": self.options,
                "create": self.create, "delete": self.delete}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Override:
        return cls(section=str(data["section"]), element=str(data.get("element", "")),
                   options=dict(data.get("options") or {}), create=bool(data.get("create")),
                   delete=bool(data.get("delete")))


def _set_options(target: dict[str, Any], section: Section, options: Mapping[str, Any],
                 path: str) -> None:
    keys = key_map(section.schema)
    for name, value in options.items():
        key = keys.get(name)
        if key is None:
            close = [k for k in keys if k.replace("-", "") == name.replace("-", "").replace(
                "_", "")]
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"{path}.{name}", f"unknown option{hint}")
        target[name] = coerce_key(key, value, f"{path}.{name}", from_text=True)


def apply_overrides(raw: dict[str, Any], sections: Mapping[str, Section],
                    overrides: Iterable[Override]) -> None:
    """Apply overrides to a raw tree in place (invalid ones raise ConfigError)."""
    for ov in overrides:
        section = sections.get(ov.section)
        if section is None:
            continue  # a plugin that is no longer installed; its overrides wait for it
        if not section.multiple:
            _set_options(raw[ov.section], section, ov.options, ov.section)
            continue
        elements: list[dict[str, Any]] = raw[ov.section]
        name_key = section.element_key
        if not ov.element and not ov.create and not ov.delete:
            # Kapacitor applies an override without an element to every element of an
            # array section (what `POST /config/influxdb/` with one cluster relies on).
            for i, element in enumerate(elements):
                _set_options(element, section, ov.options, f"{ov.section}[{i}]")
            continue
        index = next((i for i, e in enumerate(elements) if str(e.get(name_key, "")) ==
                      ov.element), None)
        if ov.delete:
            if index is not None:
                del elements[index]
            continue
        if ov.create:
            if index is not None:
                raise ConfigError(f"{ov.section}", f"element {ov.element!r} already exists")
            element = section.default_raw_element()
            _set_options(element, section, ov.options, f"{ov.section}[{len(elements)}]")
            elements.append(element)
            continue
        if index is None:
            continue  # the element left the file; the override waits for it
        _set_options(elements[index], section, ov.options, f"{ov.section}[{index}]")


class OverrideError(ConfigError):
    """A request to the config API that cannot be applied as asked (HTTP 400)."""

    def __init__(self, message: str) -> None:
        super().__init__("", message)


def _field(body: Mapping[str, Any], name: str, empty: Any) -> Any:
    value = body.get(name)
    return empty if value is None else value


def updated(overrides: Mapping[str, Override], section: Section, element: str | None,
            body: Mapping[str, Any]) -> dict[str, Override]:
    """The override set after one POST to ``/config/<section>[/<element>]``.

    ``element`` is None when the URL names no element (needed for add/remove on array
    sections); ``""`` for a single section's trailing-slash URL. Raises OverrideError.
    """
    allowed = {"set", "delete", "add", "remove"}
    extra = set(body) - allowed
    if extra:
        raise OverrideError(f"unknown field(s) {', '.join(sorted(extra))} in request "
                            "(expected set, delete, add or remove)")
    set_opts = _field(body, "set", {})
    delete_opts = _field(body, "delete", [])
    add = _field(body, "add", {})
    remove = _field(body, "remove", [])
    if not isinstance(set_opts, Mapping) or not isinstance(add, Mapping):
        raise OverrideError("set and add must be JSON objects")
    if not isinstance(delete_opts, list) or not isinstance(remove, list):
        raise OverrideError("delete and remove must be JSON arrays")
    result = {k: copy.deepcopy(v) for k, v in overrides.items()}
    if (set_opts or delete_opts) and (add or remove):
        raise OverrideError("cannot provide both set/delete and add/remove actions in the "
                            "same update")
    if set_opts or delete_opts:
        if element is None:
            element = ""  # on an array section: every element, as in Kapacitor
        ov = result.get(f"{section.name}/{element}") or Override(section.name, element)
        if ov.delete:
            raise OverrideError(f"element {element!r} has been removed")
        if section.multiple and section.element_key in set_opts and not ov.create:
            raise OverrideError(f"cannot override element key {section.element_key}")
        ov.options.update(set_opts)
        for name in delete_opts:
            ov.options.pop(str(name), None)
        result[ov.id] = ov
        return result
    if add or remove:
        if not section.multiple:
            raise OverrideError(f"section {section.name!r} is not a list; "
                                "add and remove are not allowed")
        if element:
            raise OverrideError("must not provide an element name when adding or removing")
        if add:
            name = add.get(section.element_key)
            if not name:
                raise OverrideError(f"the option {section.element_key!r} is required "
                                    "when adding an element")
            key = f"{section.name}/{name}"
            if key in result and not result[key].delete:
                raise OverrideError(f"element {name!r} already exists")
            result[key] = Override(section.name, str(name), dict(add), create=True)
        for name in remove:
            key = f"{section.name}/{name}"
            existing = result.get(key)
            if existing is not None and existing.create:
                del result[key]
            else:
                result[key] = Override(section.name, str(name), delete=True)
        return result
    raise OverrideError("nothing to do: provide set, delete, add or remove")

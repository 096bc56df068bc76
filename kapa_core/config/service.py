"""The live configuration: base layers, stored overrides, and what changes when they do.

The config API goes through :class:`ConfigService`: it validates an update against the
whole configuration, stores it (so it survives a restart and a kill -9), swaps the
effective configuration and tells the daemon which section changed so that only that
section's service is re-opened.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from kapa_core.config.loader import Config, ConfigLayers
from kapa_core.config.overrides import Override, updated
from kapa_core.config.schema import Section, key_map, to_raw
from kapa_core.errors import APIError, ConfigError
from kapa_core.models.duration import Duration
from kapa_core.storage import OVERRIDES, Store

BASE = "/kapacitor/v1/config"


class ConfigService:
    def __init__(self, layers: ConfigLayers, store: Store, *, skip_overrides: bool,
                 on_change: Callable[[str, Config], Awaitable[None]] | None = None) -> None:
        self.layers = layers
        self.store = store
        self.on_change = on_change
        #: one update at a time: each reads the overrides, stores the change and re-opens
        #: the section's service, and two interleaved would lose an update or open a
        #: service twice
        self._updating = trio.Lock()
        self.overrides: dict[str, Override] = {}
        if not skip_overrides:
            for key, data in store.items_json(OVERRIDES):
                try:
                    self.overrides[key] = Override.from_json(data)
                except (KeyError, TypeError, ValueError):
                    raise ConfigError("", f"stored config override {key!r} is unreadable; "
                                      "start with skip-config-overrides = true to ignore "
                                      "stored overrides") from None
        self.config = layers.build(layers.effective_raw(self.overrides.values()))

    @property
    def enabled(self) -> bool:
        return bool(self.config["config-override"].enabled)

    # -- reading --------------------------------------------------------------------
    def overridable(self) -> list[Section]:
        return sorted((s for s in self.layers.sections.values() if s.name and s.overridable),
                      key=lambda s: s.name)

    def section(self, name: str) -> Section:
        section = self.layers.sections.get(name)
        if section is None or not section.name or not section.overridable:
            raise APIError(404, f"unknown section: {name}")
        return section

    def elements(self, section: Section) -> list[dict[str, Any]]:
        value = self.config[section.name]
        items = value if section.multiple else (value,)
        return [self.element_view(section, item) for item in items]

    def element_view(self, section: Section, item: Any) -> dict[str, Any]:
        name = section.element_name(item)
        options = _jsonable(to_raw(item))
        redacted = section.redacted_keys()
        for key in redacted:
            options[key] = _is_set(options.get(key))
        return {"link": {"rel": "self", "href": f"{BASE}/{section.name}/{name}"},
                "options": options, "redacted": redacted or None}

    def find_element(self, section: Section, element: str) -> dict[str, Any]:
        for view in self.elements(section):
            if not section.multiple or str(view["options"].get(section.element_key)) == \
                    element:
                return view
        raise APIError(404, f"unknown section/element: {section.name}/{element}")

    # -- updating -------------------------------------------------------------------
    async def update(self, name: str, element: str | None, body: Mapping[str, Any]) -> None:
        if not self.enabled:
            raise APIError(403, "config override service is not enabled")
        section = self.layers.sections.get(name)
        if section is None or not name:
            raise APIError(404, f"unknown section: {name}")
        if not section.overridable:
            raise APIError(403, f"section {name!r} cannot be overridden over the API; set it "
                           "in the configuration file or with KAPACITOR_ environment "
                           "variables")
        if not section.multiple and element:
            raise APIError(404, f"unknown section/element: {name}/{element}")
        async with self._updating:
            await self._update(name, section, element, body)

    async def _update(self, name: str, section: Section, element: str | None,
                      body: Mapping[str, Any]) -> None:
        try:
            new = updated(self.overrides, section, element, body)
            config = self.layers.build(self.layers.effective_raw(new.values()))
        except ConfigError as exc:
            raise APIError(400, f"failed to apply update: {exc}") from None
        changed = {k for k in set(new) | set(self.overrides)
                   if new.get(k) != self.overrides.get(k)}
        for key in changed:
            if key in new:
                await self.store.aput_json(OVERRIDES, key, new[key].to_json())
            else:
                await self.store.adelete(OVERRIDES, key)
        self.overrides = new
        self.config = config
        if self.on_change is not None:
            await self.on_change(name, config)


def _is_set(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(_is_set(v) for v in value.values())
    return bool(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Duration):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def dumps(value: Any) -> str:
    return json.dumps(_jsonable(value))


__all__ = ["BASE", "ConfigService", "key_map"]

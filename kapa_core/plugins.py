"""The plugin manager: loads plugins from the ``kapa_core.plugins`` entry-point group.

Built-in plugins are registered through the same entry-point group as pip-installed ones.
A plugin that fails to import is recorded with its reason and skipped; the daemon goes on.
Registries built from the registration hooks refuse a name claimed twice, naming both
plugins.
"""

from __future__ import annotations

import importlib.metadata as md
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

from kapa_core import hookspecs
from kapa_core.alert.kinds import DeadmanDefaults, HandlerKinds, Kind
from kapa_core.config.core_sections import CORE_SECTIONS
from kapa_core.config.schema import Section
from kapa_core.errors import PluginError

if TYPE_CHECKING:  # the registries' types; the modules are loaded when a daemon runs them
    from kapa_core.discovery import DiscoveryKind
    from kapa_core.inputs import InputListener
    from kapa_core.udf import UDFBridge

_Item = TypeVar("_Item")


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin, as ``kapa-core plugins`` lists it."""

    name: str
    module: str
    distribution: str
    version: str
    hooks: tuple[str, ...]


@dataclass(frozen=True)
class BrokenPlugin:
    """An entry point that could not be loaded."""

    name: str
    value: str
    distribution: str
    reason: str


@dataclass
class Plugins:
    """The loaded plugins and the registries built from their hooks."""

    manager: pluggy.PluginManager
    infos: list[PluginInfo] = field(default_factory=list)
    broken: list[BrokenPlugin] = field(default_factory=list)
    sections: dict[str, Section] = field(default_factory=dict)
    section_owner: dict[str, str] = field(default_factory=dict)
    handler_kinds: dict[str, Kind] = field(default_factory=dict)
    input_listeners: dict[str, InputListener] = field(default_factory=dict)
    discovery_kinds: dict[str, DiscoveryKind] = field(default_factory=dict)
    udf_bridges: dict[str, UDFBridge] = field(default_factory=dict)

    @property
    def hook(self) -> pluggy.HookRelay:
        return self.manager.hook

    def ordered_sections(self) -> list[Section]:
        return list(self.sections.values())

    def kinds(self, disabled: Iterable[str] = (),
              deadman: DeadmanDefaults | None = None) -> HandlerKinds:
        """A registry of these plugins' handler kinds (for one daemon or tool), with
        ``disabled`` kinds refused and the given ``[deadman]`` defaults."""
        return HandlerKinds(dict(self.handler_kinds), frozenset(disabled),
                            deadman or DeadmanDefaults())


def _new_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    return manager


def _hooks_of(manager: pluggy.PluginManager, plugin: object) -> tuple[str, ...]:
    callers = manager.get_hookcallers(plugin) or []
    return tuple(sorted(c.name for c in callers))


def _dist_of(ep: md.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "", ""
    return dist.metadata["Name"] or "", dist.version or ""


def load_plugins(
    modules: Iterable[ModuleType | object] | None = None,
    *,
    entry_points: bool = True,
) -> Plugins:
    """Load plugins from the entry-point group (and ``modules``, for tests), then build
    the registries. Raises PluginError when two plugins claim the same name."""
    manager = _new_manager()
    plugins = Plugins(manager)
    if entry_points:
        eps = sorted(md.entry_points(group=hookspecs.ENTRY_POINT_GROUP), key=lambda e: e.name)
        seen: set[str] = set()
        for ep in eps:
            if ep.name in seen:  # the same distribution found twice on sys.path
                continue
            seen.add(ep.name)
            dist, version = _dist_of(ep)
            try:
                obj = ep.load()
                manager.register(obj, name=ep.name)
            except Exception as exc:
                plugins.broken.append(BrokenPlugin(ep.name, ep.value, dist,
                                                   f"{type(exc).__name__}: {exc}"))
                continue
            plugins.infos.append(PluginInfo(ep.name, ep.value, dist, version,
                                            _hooks_of(manager, obj)))
    for module in modules or ():
        name = getattr(module, "__name__", repr(module))
        if manager.is_registered(module):
            continue
        manager.register(module, name=name)
        plugins.infos.append(PluginInfo(name, name, "", "", _hooks_of(manager, module)))
    _build_registries(plugins)
    return plugins


def _results(manager: pluggy.PluginManager, hook_name: str) -> list[tuple[str, Any]]:
    """(plugin name, item) for every item every plugin returned from a registration hook
    (whatever a plugin returned: the registries take it as its hook declares it)."""
    out: list[tuple[str, Any]] = []
    caller = getattr(manager.hook, hook_name)
    for impl in reversed(caller.get_hookimpls()):  # registration order
        items = impl.function()
        for item in items or ():
            out.append((impl.plugin_name, item))
    return out


def _register(registry: dict[str, _Item], owners: dict[str, str], what: str,
              name: str, plugin: str, item: _Item) -> None:
    if name in registry:
        raise PluginError(f"{what} {name!r} is claimed by both {owners[name]!r} and {plugin!r}")
    registry[name] = item
    owners[name] = plugin


def _build_registries(plugins: Plugins) -> None:
    manager = plugins.manager
    for section in CORE_SECTIONS:
        plugins.sections[section.name] = section
        plugins.section_owner[section.name] = "kapa-core"
    for plugin, section in _results(manager, "kapa_config_sections"):
        _register(plugins.sections, plugins.section_owner, "config section", section.name,
                  plugin, section)
    _fill(manager, "kapa_handler_kinds", plugins.handler_kinds)
    _fill(manager, "kapa_input_listeners", plugins.input_listeners)
    _fill(manager, "kapa_discovery_kinds", plugins.discovery_kinds)
    _fill(manager, "kapa_udf_bridges", plugins.udf_bridges)


def _fill(manager: pluggy.PluginManager, hook: str, registry: dict[str, _Item]) -> None:
    """The items of a registration hook by name (``handler kind 'slack'``...)."""
    owners: dict[str, str] = {}
    what = hook.removeprefix("kapa_").rstrip("s").replace("_", " ")
    for plugin, item in _results(manager, hook):
        _register(registry, owners, what, item.name, plugin, item)

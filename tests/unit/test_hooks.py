"""The plugin contract: every hook is collected, conflicts name both plugins."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

import kapa_core.plugin_api as api
from kapa_core import hookspecs
from kapa_core.errors import PluginError
from kapa_core.plugins import load_plugins
from kapa_core.services import DaemonFacts

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, kw_only=True)
class Conf:
    enabled: bool = False


@dataclass(frozen=True, kw_only=True)
class Opts:
    channel: str = ""


def plugin(**hooks):
    """A plugin object implementing the given hooks."""
    ns = SimpleNamespace()
    for name, fn in hooks.items():
        setattr(ns, name, api.hookimpl(fn))
    return ns


def test_hook_kapa_config_sections() -> None:
    p = plugin(kapa_config_sections=lambda: [api.Section(name="thing", schema=Conf)])
    loaded = load_plugins([p], entry_points=False)
    assert loaded.sections["thing"].schema is Conf
    assert "kapa_config_sections" in loaded.infos[0].hooks


def test_hook_kapa_handler_kinds() -> None:
    kind = api.HandlerKind(name="pager", options=Opts, factory=lambda o, s: None)
    loaded = load_plugins([plugin(kapa_handler_kinds=lambda: [kind])], entry_points=False)
    assert loaded.handler_kinds == {"pager": kind}


def test_hook_kapa_input_listeners() -> None:
    item = api.InputListener(name="udp", section="udp", factory=lambda element, ctx: None)
    loaded = load_plugins([plugin(kapa_input_listeners=lambda: [item])], entry_points=False)
    assert loaded.input_listeners == {"udp": item}


def test_hook_kapa_discovery_kinds() -> None:
    item = api.DiscoveryKind(name="dns", section="dns", factory=lambda element, ctx: None)
    loaded = load_plugins([plugin(kapa_discovery_kinds=lambda: [item])], entry_points=False)
    assert loaded.discovery_kinds == {"dns": item}


def test_hook_kapa_udf_bridges() -> None:
    item = api.UDFBridge(name="process", selects=lambda c: True, factory=lambda c: None)
    loaded = load_plugins([plugin(kapa_udf_bridges=lambda: [item])], entry_points=False)
    assert loaded.udf_bridges == {"process": item}


def test_hook_kapa_startup_and_kapa_shutdown() -> None:
    calls = []
    p = plugin(kapa_startup=lambda context: calls.append(("up", context.daemon.server_id)),
               kapa_shutdown=lambda context: calls.append(("down", context.daemon.server_id)))
    loaded = load_plugins([p], entry_points=False)
    ctx = api.StartupContext(config=None, daemon=DaemonFacts(server_id="s1"))
    assert not hasattr(ctx, "app")  # the daemon's facts, never the daemon
    loaded.hook.kapa_startup(context=ctx)
    loaded.hook.kapa_shutdown(context=ctx)
    assert calls == [("up", "s1"), ("down", "s1")]


def test_two_plugins_claiming_a_section_are_both_named() -> None:
    a = plugin(kapa_config_sections=lambda: [api.Section(name="dup", schema=Conf)])
    b = plugin(kapa_config_sections=lambda: [api.Section(name="dup", schema=Conf)])
    with pytest.raises(PluginError, match=r"'dup' is claimed by both"):
        load_plugins([a, b], entry_points=False)


def test_a_plugin_cannot_take_a_core_section() -> None:
    p = plugin(kapa_config_sections=lambda: [api.Section(name="http", schema=Conf)])
    with pytest.raises(PluginError, match=r"'http' is claimed by both 'kapa-core'"):
        load_plugins([p], entry_points=False)


def test_every_hookspec_is_documented_and_tested() -> None:
    names = [n for n in dir(hookspecs) if n.startswith("kapa_")]
    docs = (ROOT / "docs" / "plugins.md").read_text()
    tests = Path(__file__).read_text()
    for name in names:
        assert re.search(rf"^#+ .*`{name}`", docs, re.M), f"{name} not in docs/plugins.md"
        assert re.search(rf"def test_hook_\w*{name.removeprefix('kapa_')}", tests), name


def test_plugin_api_all_matches_its_namespace() -> None:
    public = {n for n in vars(api) if not n.startswith("_") and n not in
              ("annotations", "Any", "Callable", "dataclass", "field")}
    assert set(api.__all__) == public
    assert len(api.__all__) == len(set(api.__all__))  # order: ruff (RUF022) keeps it


def test_every_package_directory_is_listed_for_installation() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = set()
    for top, name in (("kapa_core", "kapa_core"), ("plugins", "kapa_plugins")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join([name, *rel.parts]))
    assert found == listed


def test_every_builtin_plugin_module_has_an_entry_point() -> None:
    eps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][
        "kapa_core.plugins"]
    modules = set(eps.values())
    for path in (ROOT / "plugins").rglob("*.py"):
        if path.name == "__init__.py" or "@hookimpl" not in path.read_text():
            continue  # support modules (wire formats) implement no hook
        rel = path.relative_to(ROOT / "plugins").with_suffix("")
        assert ".".join(["kapa_plugins", *rel.parts]) in modules, path

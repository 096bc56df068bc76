"""static-discovery and file-discovery discoverers: the groups they publish (sources,
labels, ``__meta_filepath``), file-discovery re-reading changed, new, broken and removed
files, config checks, and their service tests."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import trio
from kapa_plugins.discovery.file_discovery import (
    FileDiscoverer,
    FileDiscoveryConfig,
    FileError,
    read_groups,
)
from kapa_plugins.discovery.static_discovery import StaticDiscoverer, StaticDiscoveryConfig

from kapa_core.discovery import DiscoveryContext, DiscoveryRegistry, DiscoveryTestService
from kapa_core.errors import ConfigError
from kapa_core.logs import Logger
from kapa_core.models.duration import Duration
from kapa_core.services import ServiceContext

S = 1_000_000_000


def context(section: str, id: str) -> tuple[DiscoveryContext, DiscoveryRegistry]:
    registry = DiscoveryRegistry()
    found = DiscoveryContext(section, None, Logger(section), id=id, registry=registry)
    found.open()
    return found, registry


def groups(registry: DiscoveryRegistry, section: str, id: str) -> dict[str, Any]:
    entry = registry.get(section, id)
    assert entry is not None
    return {g.source: (list(g.targets), dict(g.labels)) for g in entry.current()}


async def test_static_discovery_publishes_one_group() -> None:
    cfg = StaticDiscoveryConfig(enabled=True, id="web", targets=["a:1", "b:2"],
                                labels={"team": "ops"})
    found, registry = context("static-discovery", "web")
    async with trio.open_nursery() as nursery:
        await nursery.start(StaticDiscoverer(cfg, found).serve)
        assert groups(registry, "static-discovery", "web") == {
            "0": (["a:1", "b:2"], {"team": "ops"})}
        nursery.cancel_scope.cancel()


async def test_static_discovery_without_targets_answers_empty() -> None:
    found, registry = context("static-discovery", "none")
    updates: list[Any] = []
    registry.subscribe(lambda s, i, g: updates.append(g))
    async with trio.open_nursery() as nursery:
        await nursery.start(StaticDiscoverer(StaticDiscoveryConfig(enabled=True, id="none"),
                                             found).serve)
        nursery.cancel_scope.cancel()
    assert updates == [()]


def write(path: Path, data: Any) -> None:
    text = json.dumps(data) if path.suffix == ".json" else data
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_read_groups_json_and_yaml(tmp_path: Path) -> None:
    j = tmp_path / "a.json"
    write(j, [{"targets": ["h:1", "h:2"], "labels": {"env": "prod"}}, {"targets": []}])
    assert [(g.source, g.targets, g.labels) for g in read_groups(str(j))] == [
        (f"{j}:0", ("h:1", "h:2"), {"env": "prod", "__meta_filepath": str(j)}),
        (f"{j}:1", (), {"__meta_filepath": str(j)})]
    y = tmp_path / "b.yml"
    write(y, "- targets: ['y:1']\n  labels:\n    zone: a\n    port: 80\n    on: yes\n")
    # scalars keep their text, as Go's yaml.v2 sets a string from them
    assert [(g.targets, g.labels) for g in read_groups(str(y))] == [
        (("y:1",), {"zone": "a", "port": "80", "on": "yes", "__meta_filepath": str(y)})]
    for bad in ("- targets: [1\n", "- targets: ['a:1']\n  other: x\n",
                "- labels: {'bad-name': x}\n", "{}\n"):
        write(y, bad)
        with pytest.raises(FileError):
            read_groups(str(y))


async def test_file_discovery_follows_the_files(tmp_path: Path) -> None:
    first, second = tmp_path / "one.json", tmp_path / "two.yaml"
    write(first, [{"targets": ["a:1"], "labels": {"k": "v"}}, {"targets": ["b:1"]}])
    cfg = FileDiscoveryConfig(enabled=True, id="f", files=[str(tmp_path / "*.json"),
                                                           str(tmp_path / "*.yaml")],
                              refresh_interval=Duration(300 * S))
    found, registry = context("file-discovery", "f")
    discoverer = FileDiscoverer(cfg, found, poll_interval=0.02)

    async def until(expected: dict[str, Any]) -> None:
        with trio.fail_after(5):
            while groups(registry, "file-discovery", "f") != expected:  # noqa: ASYNC110
                await trio.sleep(0.02)

    p1 = str(first)
    async with trio.open_nursery() as nursery:
        await nursery.start(discoverer.serve)
        assert groups(registry, "file-discovery", "f") == {
            f"{p1}:0": (["a:1"], {"k": "v", "__meta_filepath": p1}),
            f"{p1}:1": (["b:1"], {"__meta_filepath": p1})}
        # a changed file: one group fewer
        write(first, [{"targets": ["c:1"]}])
        await until({f"{p1}:0": (["c:1"], {"__meta_filepath": p1})})
        # a new file matching the second pattern
        write(second, "- targets: ['d:1']\n")
        p2 = str(second)
        await until({f"{p1}:0": (["c:1"], {"__meta_filepath": p1}),
                     f"{p2}:0": (["d:1"], {"__meta_filepath": p2})})
        # a broken file keeps its groups
        write(first, "[{")
        await trio.sleep(0.2)
        assert f"{p1}:0" in groups(registry, "file-discovery", "f")
        # a removed file withdraws them
        first.unlink()
        await until({f"{p2}:0": (["d:1"], {"__meta_filepath": p2})})
        nursery.cancel_scope.cancel()


async def test_file_discovery_rereads_every_refresh_interval(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    write(path, [{"targets": ["a:1"]}])
    cfg = FileDiscoveryConfig(enabled=True, id="f", files=[str(path)],
                              refresh_interval=Duration(S // 10))
    found, registry = context("file-discovery", "f")
    updates: list[Any] = []
    registry.subscribe(lambda s, i, g: updates.append(g))
    async with trio.open_nursery() as nursery:
        await nursery.start(FileDiscoverer(cfg, found, poll_interval=10).serve)
        await trio.sleep(0.35)
        nursery.cancel_scope.cancel()
    assert len(updates) >= 3


def test_file_discovery_config_checks() -> None:
    FileDiscoveryConfig(enabled=True, id="x", files=["/etc/t/*.json", "a.YML"]).validate()
    for files in (["/etc/t/*.txt"], ["/etc/*/t.json"], ["t"]):
        with pytest.raises(ConfigError, match="not valid for file discovery"):
            FileDiscoveryConfig(enabled=True, id="x", files=files).validate()


def service(factory: Any, section: str, elements: list[Any]) -> DiscoveryTestService:
    ctx = ServiceContext(section, elements, None, Logger(section), lambda *a: None)
    return DiscoveryTestService(ctx, factory)


async def test_service_tests(tmp_path: Path) -> None:
    static = service(StaticDiscoverer, "static-discovery",
                     [StaticDiscoveryConfig(enabled=True, id="web", targets=["a:1"])])
    assert static.test_options() == {"id": ""}
    await static.test({"id": "web"}, timeout=5)
    with pytest.raises(Exception, match='discoverer "nope" is not enabled or does not exist'):
        await static.test({"id": "nope"}, timeout=5)
    files = service(FileDiscoverer, "file-discovery",
                    [FileDiscoveryConfig(enabled=True, id="f",
                                         files=[str(tmp_path / "*.json")])])
    await files.test({"id": "f"}, timeout=5)

"""Input listeners and discoverers run per enabled element: contexts, registries, failures."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

import pytest
import trio

from kapa_core.config.schema import Section
from kapa_core.discovery import DiscoveryContext, DiscoveryKind, DiscoveryRegistry, TargetGroup
from kapa_core.elements import ElementStartError, PluginElements, Plumbing
from kapa_core.errors import APIError
from kapa_core.inputs import InputContext, InputListener, Statistics, point_writer
from kapa_core.logs import Logger
from kapa_core.models.point import Point
from kapa_core.services import DaemonFacts, ServiceRunner


@dataclass(frozen=True, kw_only=True)
class Listen:
    enabled: bool = False
    name: str = ""
    port: int = 0
    #: the id of the "fixed" discoverer element it reads targets from
    follows: str = ""


@dataclass(frozen=True, kw_only=True)
class Fixed:
    enabled: bool = False
    id: str = ""
    targets: list[str] | None = None


class TCPListener:
    """Binds a real TCP port; counts what it accepts."""

    def __init__(self, config: Listen, context: InputContext) -> None:
        self.config = config
        self.context = context

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.config.port, host="127.0.0.1")
        stats = self.context.statistic("tcp", {"name": self.config.name})
        stats.add("opened")
        task_status.started()
        async with listeners[0]:
            await trio.sleep_forever()


class FixedDiscoverer:
    def __init__(self, config: Fixed, context: DiscoveryContext) -> None:
        self.config = config
        self.context = context

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self.context.update([TargetGroup(tuple(self.config.targets or ()), {"id": self.config.id})])
        task_status.started()
        await trio.sleep_forever()


SECTIONS = {"listen": Section(name="listen", schema=Listen, multiple=True, element_key="name"),
            "fixed": Section(name="fixed", schema=Fixed, multiple=True, element_key="id")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def follows(element: Listen) -> tuple[str, str] | None:
    return ("fixed", element.follows) if element.follows else None


def make() -> tuple[PluginElements, Statistics, DiscoveryRegistry, list[Any]]:
    written: list[Any] = []
    stats, registry = Statistics(), DiscoveryRegistry()
    elements = PluginElements(
        SECTIONS, {"listen": InputListener(name="listen", section="listen", factory=TCPListener,
                                           follows=follows)},
        {"fixed": DiscoveryKind(name="fixed", section="fixed", factory=FixedDiscoverer)},
        Plumbing(point_writer(lambda db, rp, pts: written.append((db, rp, pts)), lambda: "auto"),
                 lambda url: None, DaemonFacts, stats, registry))
    return elements, stats, registry, written


def config(listen: list[Listen], fixed: list[Fixed]) -> dict[str, Any]:
    return {"listen": tuple(listen), "fixed": tuple(fixed)}


async def test_enabled_elements_start_and_close_with_their_statistics_and_groups() -> None:
    elements, stats, registry, _ = make()
    cfg = config([Listen(enabled=True, name="a", port=free_port(), follows="web"),
                  Listen(name="off", follows="x")],
                 [Fixed(enabled=True, id="web", targets=["h:1", "h:2"]), Fixed(id="x")])
    async with trio.open_nursery() as nursery:
        runner = ServiceRunner(nursery, Logger("test"))
        await elements.open_all(runner, cfg)
        assert [(c.name, c.tags, c.values) for c in stats] == [("tcp", {"name": "a"},
                                                               {"opened": 1})]
        [entry] = registry.entries()
        assert (entry.service, entry.id) == ("fixed", "web")
        assert entry.current() == (TargetGroup(("h:1", "h:2"), {"id": "web"}, "0"),)
        await runner.close_all()
        assert len(stats) == 0 and registry.entries() == []
        nursery.cancel_scope.cancel()


async def test_a_port_in_use_stops_startup_naming_the_element() -> None:
    elements, stats, registry, _ = make()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = config([Listen(enabled=True, name="ok", port=free_port()),
                      Listen(enabled=True, name="busy", port=port)], [])
        with pytest.raises(ExceptionGroup) as raised:
            async with trio.open_nursery() as nursery:
                await elements.open_all(ServiceRunner(nursery, Logger("test")), cfg)
        assert raised.group_contains(ElementStartError,
                                     match=r"listen\[1\] \(busy\): OSError")
        assert len(stats) == 0  # the element that had started was closed again


async def test_an_override_that_fails_answers_500_and_keeps_the_rest_running() -> None:
    elements, stats, registry, _ = make()
    first = config([Listen(enabled=True, name="a", port=free_port())], [])
    async with trio.open_nursery() as nursery:
        runner = ServiceRunner(nursery, Logger("test"))
        await elements.open_all(runner, first)
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            second = config([Listen(enabled=True, name="a", port=free_port()),
                             Listen(enabled=True, name="b", port=taken.getsockname()[1])], [])
            with pytest.raises(APIError, match=r"failed to update service listen: .*\(b\)"):
                await elements.section_changed(runner, "listen", second)
        assert [c.tags["name"] for c in stats] == ["a"]
        # a section with no listener or discoverer is not touched
        await elements.section_changed(runner, "other", second)
        await runner.close_all()
        nursery.cancel_scope.cancel()


async def test_a_listener_reads_and_watches_discovered_targets_while_it_runs() -> None:
    elements, _, registry, _ = make()
    contexts: list[InputContext] = []
    seen: list[Any] = []

    def factory(config: Listen, context: InputContext) -> TCPListener:
        contexts.append(context)
        context.watch_targets(lambda service, id, groups: seen.append((id, groups)))
        return TCPListener(config, context)

    elements.listeners["listen"] = InputListener(name="listen", section="listen",
                                                 factory=factory, follows=follows)
    listen = [Listen(enabled=True, name="a", port=free_port(), follows="web")]
    cfg = config(listen, [Fixed(enabled=True, id="web", targets=["h:1"])])
    async with trio.open_nursery() as nursery:
        runner = ServiceRunner(nursery, Logger("test"))
        await elements.open_all(runner, cfg)  # listeners open before discoverers
        [context] = contexts
        assert context.target_groups("fixed", "web") == (TargetGroup(("h:1",), {"id": "web"},
                                                                     "0"),)
        assert context.target_groups("fixed", "nope") is None
        await elements.section_changed(
            runner, "fixed", config(listen, [Fixed(enabled=True, id="web", targets=["h:2"])]))
        assert [(id, groups and groups[0].targets) for id, groups in seen] == [
            ("web", ("h:1",)), ("web", None), ("web", ("h:2",))]
        await runner.close("input:listen")
        assert registry._subscribers == []  # the watch ends with its listener
        await runner.close_all()
        nursery.cancel_scope.cancel()


async def test_only_the_discoverers_an_enabled_listener_follows_run() -> None:
    elements, _, registry, _ = make()
    fixed = [Fixed(enabled=True, id="web", targets=["h:1"]),
             Fixed(enabled=True, id="db", targets=["h:2"])]

    def running() -> list[str]:
        return [entry.id for entry in registry.entries()]

    async with trio.open_nursery() as nursery:
        runner = ServiceRunner(nursery, Logger("test"))
        await elements.open_all(runner, config([Listen(name="off", follows="web")], fixed))
        assert running() == []  # a disabled listener follows nothing
        # an override of the listeners' section starts and stops discoverers
        await elements.section_changed(runner, "listen", config(
            [Listen(enabled=True, name="a", port=free_port(), follows="web")], fixed))
        assert running() == ["web"]
        web = registry.get("fixed", "web")
        await elements.section_changed(runner, "listen", config(
            [Listen(enabled=True, name="a", port=free_port(), follows="web"),
             Listen(enabled=True, name="b", port=free_port(), follows="db")], fixed))
        assert running() == ["db", "web"]
        assert registry.get("fixed", "web") is web  # the running one was left alone
        await elements.section_changed(runner, "listen", config(
            [Listen(enabled=True, name="b", port=free_port(), follows="db")], fixed))
        assert running() == ["db"]
        # a followed element of the discoverers' section that is disabled does not run
        await elements.section_changed(runner, "fixed", config(
            [Listen(enabled=True, name="b", port=free_port(), follows="db")],
            [Fixed(id="db", targets=["h:2"])]))
        assert running() == []
        await runner.close_all()
        nursery.cancel_scope.cancel()


async def test_a_listener_of_an_undeclared_section_is_left_out() -> None:
    stray = InputListener(name="stray", section="nowhere", factory=TCPListener)
    elements = PluginElements(SECTIONS, {"stray": stray}, {}, make()[0].plumbing)
    assert elements.names() == []
    async with trio.open_nursery() as nursery:
        await elements.open_all(ServiceRunner(nursery, Logger("test")), config([], []))
        nursery.cancel_scope.cancel()


def test_updates_merge_by_source_and_an_empty_group_removes_it() -> None:
    registry = DiscoveryRegistry()
    seen: list[Any] = []
    registry.subscribe(lambda service, id, groups: seen.append((service, id, groups)))
    ctx = DiscoveryContext("fixed", None, Logger("t"), id="e", registry=registry)
    ctx.open()
    ctx.update([TargetGroup(("a:1",), source="s1"), TargetGroup(("b:1",), source="s2")])
    ctx.update([TargetGroup(("c:1",), source="s1")])
    assert [g.targets for g in ctx.groups()] == [("c:1",), ("b:1",)]
    ctx.update([TargetGroup((), source="s2")])
    assert [g.source for g in ctx.groups()] == ["s1"]
    ctx.update([TargetGroup(("d:1",), source="s3")], replace=True)
    assert [g.source for g in ctx.groups()] == ["s3"]
    ctx.close()
    ctx.update([TargetGroup(("late:1",))])  # after its discoverer stopped: ignored
    assert registry.get("fixed", "e") is None
    assert seen[-1] == ("fixed", "e", None) and len(seen) == 5


def test_target_groups_refuse_bad_values() -> None:
    with pytest.raises(TypeError, match="sequence"):
        TargetGroup("a:1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="non-empty string"):
        TargetGroup(("a:1", ""))
    with pytest.raises(TypeError, match="string pair"):
        TargetGroup(("a:1",), {"k": 1})  # type: ignore[dict-item]
    registry = DiscoveryRegistry()
    ctx = DiscoveryContext("fixed", None, Logger("t"), registry=registry)
    with pytest.raises(TypeError, match="expected TargetGroup"):
        ctx.update(["a:1"])  # type: ignore[list-item]


def test_point_writer_stamps_db_rp_and_applies_the_default_rp() -> None:
    written: list[Any] = []
    write = point_writer(lambda db, rp, pts: written.append((db, rp, pts)), lambda: "autogen")
    p = Point("cpu", {}, {"v": 1.0}, 1)
    write("db", "", [p])
    assert written == [("db", "autogen", [p])]
    assert (p.database, p.retention_policy) == ("db", "autogen")
    write("db", "rp", [])
    assert len(written) == 1


def test_statistics_keys_stay_unique() -> None:
    stats = Statistics()
    a = stats.publish("udp", {"bind": ":1"})
    b = stats.publish("udp", {"bind": ":1"})
    assert (a.key, b.key) == ("udp:bind=:1", "udp:bind=:1:2")
    a.add("points_rx", 3)
    a.add("points_rx")
    assert a.values == {"points_rx": 4}
    stats.remove(a)
    assert list(stats) == [b]

"""[[marathon]] discovery against a local server answering ``/v2/apps`` as Marathon's
REST API documents: apps with tasks, port definitions and Docker port mappings -> groups
and labels, the request (path, query, the DC/OS ``token=`` authorization), refreshes,
failures keeping the targets, the section's service test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import trio
from kapa_plugins.discovery import marathon
from kapa_plugins.discovery.marathon import MarathonConfig, MarathonDiscoverer, app_groups

from kapa_core.errors import KapaError
from kapa_core.logs import Logger
from kapa_core.models.duration import Duration
from kapa_core.services import ServiceContext
from tests.unit.test_consul_discovery import FakeAPI, Request, start

MS = 1_000_000


def app(app_id: str, tasks: list[tuple[str, str, list[int]]], *,
        labels: dict[str, str] | None = None, image: str = "",
        definitions: list[dict[str, str]] | None = None,
        mappings: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """An app as ``GET /v2/apps?embed=apps.tasks`` answers it (the fields Marathon
    documents; the discovery reads a few)."""
    docker: dict[str, Any] = {"image": image, "network": "BRIDGE",
                              "portMappings": [{"containerPort": 8080, "hostPort": 0,
                                                "protocol": "tcp", "labels": m}
                                               for m in mappings or []]}
    return {
        "id": app_id, "cmd": None, "instances": len(tasks), "cpus": 0.1, "mem": 64,
        "labels": labels or {}, "tasksRunning": len(tasks), "tasksStaged": 0,
        "container": {"type": "DOCKER", "docker": docker, "volumes": []} if image or mappings
        else None,
        "portDefinitions": [{"port": 10000 + i, "protocol": "tcp", "labels": d}
                            for i, d in enumerate(definitions or [])],
        "tasks": [{"id": task_id, "appId": app_id, "host": host, "ports": ports,
                   "startedAt": "2017-01-01T00:00:00.000Z", "state": "TASK_RUNNING",
                   "slaveId": "agent-1"} for task_id, host, ports in tasks],
    }


APPS = [
    app("/web", [("web.1", "10.0.0.1", [31000, 31001]), ("web.2", "10.0.0.2", [31002])],
        labels={"team": "ops", "dcos.lb-name": "web"}, image="nginx:1.13",
        definitions=[{"metrics": "yes"}, {"kind": "admin"}],
        mappings=[{"map-label": "m0"}]),
    app("/group/db", [("db.1", "fe80::2", [5432]), ("db.2", "10.0.0.4", [])]),
    app("/idle", []),
]


class FakeMarathon(FakeAPI):
    """``/v2/apps`` with its tasks; ``status``/``body`` override the answer."""

    def __init__(self, apps: list[dict[str, Any]] | None = None) -> None:
        super().__init__()
        self.apps = list(apps or [])
        self.status = 200
        self.body: Any = None

    def answer(self, request: Request) -> tuple[int, dict[str, str], Any]:
        if request.path.rstrip("/") != "/v2/apps":
            return 404, {}, {"message": f"Not found: {request.path}"}
        if self.body is not None:
            return self.status, {}, self.body
        return self.status, {}, {"apps": self.apps}


@pytest.fixture
def fake() -> Iterator[FakeMarathon]:
    with FakeMarathon(APPS) as server:
        yield server


def config(*servers: FakeAPI | str, **kw: Any) -> MarathonConfig:
    kw.setdefault("refresh_interval", Duration(200 * MS))
    kw.setdefault("id", "m")
    return MarathonConfig(enabled=True, servers=[
        s if isinstance(s, str) else s.url for s in servers], **kw)


WEB = {"__meta_marathon_app": "/web", "__meta_marathon_image": "nginx:1.13",
       "__meta_marathon_app_label_team": "ops", "__meta_marathon_app_label_dcos_lb_name": "web"}
DB = {"__meta_marathon_app": "/group/db", "__meta_marathon_image": ""}
EXPECTED = {
    "/web:0": (("10.0.0.1:31000",), {
        **WEB, "__meta_marathon_task": "web.1",
        "__meta_marathon_port_definition_label_metrics": "yes",
        "__meta_marathon_port_mapping_label_map_label": "m0"}),
    "/web:1": (("10.0.0.1:31001",), {
        **WEB, "__meta_marathon_task": "web.1",
        "__meta_marathon_port_definition_label_kind": "admin"}),
    "/web:2": (("10.0.0.2:31002",), {
        **WEB, "__meta_marathon_task": "web.2",
        "__meta_marathon_port_definition_label_metrics": "yes",
        "__meta_marathon_port_mapping_label_map_label": "m0"}),
    "/group/db:0": (("[fe80::2]:5432",), {**DB, "__meta_marathon_task": "db.1"}),
}


def as_dict(groups: list[Any]) -> dict[str, Any]:
    return {g.source: (g.targets, dict(g.labels)) for g in groups}


# -- apps -> groups ---------------------------------------------------------------------
def test_apps_become_one_group_per_task_port_with_prometheus_labels() -> None:
    assert as_dict(app_groups({"apps": APPS})) == EXPECTED


def test_answers_go_would_decode() -> None:
    assert app_groups({}) == [] and app_groups({"apps": None}) == []
    # Go matches JSON keys to struct fields ignoring case; absent fields are empty
    [group] = app_groups({"Apps": [{"ID": "/x", "Tasks": [{"Host": "h", "Ports": [1]}]}]})
    assert (group.source, group.targets) == ("/x:0", ("h:1",))
    assert group.labels == {"__meta_marathon_app": "/x", "__meta_marathon_image": "",
                            "__meta_marathon_task": ""}


@pytest.mark.parametrize("body", [[], {"apps": {}}, {"apps": [{"id": 5}]},
                                  {"apps": [{"tasks": [{"ports": ["80"]}]}]},
                                  {"apps": [{"tasks": [{"ports": [-1]}]}]},
                                  {"apps": [{"labels": {"a": 1}}]}])
def test_answers_of_another_shape_are_errors(body: Any) -> None:
    with pytest.raises(marathon.MarathonError):
        app_groups(body)


# -- against the fake -------------------------------------------------------------------
async def test_apps_are_discovered_with_the_request_marathon_documents(
        fake: FakeMarathon) -> None:
    async with trio.open_nursery() as nursery:
        running = await start(nursery, "marathon", config(fake, bearer_token="tok"),
                              MarathonDiscoverer)
        await running.until(lambda: running.updates >= 1)
        assert running.groups() == EXPECTED
        await running.until(lambda: len(fake.requests) >= 3)  # every refresh-interval
        nursery.cancel_scope.cancel()
    await running.context.clients.aclose()
    for request in fake.requests:
        assert (request.path, request.query) == ("/v2/apps/", "embed=apps.tasks")
        # the DC/OS form the vendored code sends, not "Bearer"
        assert request.headers["authorization"] == "token=tok"


async def test_apps_coming_and_going_and_failures(fake: FakeMarathon) -> None:
    async with trio.open_nursery() as nursery:
        running = await start(nursery, "marathon", config(fake), MarathonDiscoverer)
        await running.until(lambda: running.groups() == EXPECTED)
        assert "authorization" not in fake.requests[0].headers
        fake.apps = [app("/new", [("new.1", "10.0.0.9", [9000])])]
        await running.until(lambda: sorted(running.groups()) == ["/new:0"])
        for status, body in ((500, b"<html>Internal Server Error</html>"),
                             (200, b"not json"), (401, {"message": "denied"}),
                             (200, {"apps": 5})):
            fake.status, fake.body = status, body
            seen = len(fake.requests)
            await running.until(lambda: len(fake.requests) >= seen + 2)
            assert sorted(running.groups()) == ["/new:0"], status  # kept
        fake.status, fake.body = 200, None
        fake.apps = []
        await running.until(lambda: running.groups() == {})
        nursery.cancel_scope.cancel()
    await running.context.clients.aclose()


async def test_servers_are_picked_at_random() -> None:
    with FakeMarathon(APPS) as one, FakeMarathon(APPS) as two:
        async with trio.open_nursery() as nursery:
            running = await start(nursery, "marathon",
                                  config(one, two, refresh_interval=Duration(20 * MS)),
                                  MarathonDiscoverer)
            await running.until(lambda: len(one.requests) >= 2 and len(two.requests) >= 2)
            nursery.cancel_scope.cancel()
        await running.context.clients.aclose()


async def test_timeout_bounds_a_request(fake: FakeMarathon) -> None:
    class Slow(FakeMarathon):
        def answer(self, request: Request) -> tuple[int, dict[str, str], Any]:
            with self.lock:
                self.lock.wait_for(lambda: self.closing, 5)
            return super().answer(request)

    with Slow(APPS) as slow:
        async with trio.open_nursery() as nursery:
            running = await start(nursery, "marathon",
                                  config(slow, timeout=Duration(200 * MS),
                                         refresh_interval=Duration(50 * MS)),
                                  MarathonDiscoverer)
            await running.until(lambda: len(slow.requests) >= 2, timeout=3)
            assert running.updates == 0
            nursery.cancel_scope.cancel()
        await running.context.clients.aclose()


# -- the section's service test ---------------------------------------------------------
def section_service(*elements: Any) -> Any:
    [section] = marathon.kapa_config_sections()
    assert section.service is not None
    return section.service(ServiceContext("marathon", tuple(elements), None, Logger("t"),
                                          lambda db, rp, points: None))


async def test_service_test_answers(fake: FakeMarathon) -> None:
    svc = section_service(config(fake), MarathonConfig(id="off"))
    await svc.test({"id": "m"}, timeout=10)
    with pytest.raises(KapaError, match='discoverer "off" is not enabled or does not exist'):
        await svc.test({"id": "off"})
    gone = section_service(config("http://127.0.0.1:1", id="gone"))
    with pytest.raises(KapaError, match='timeout waiting for discoverer "gone" to return'):
        await gone.test({"id": "gone"}, timeout=1)
    await svc.context.clients.aclose()
    await gone.context.clients.aclose()


def test_the_kind_is_registered() -> None:
    [kind] = marathon.kapa_discovery_kinds()
    assert (kind.name, kind.section, kind.factory) == ("marathon", "marathon",
                                                       MarathonDiscoverer)
    assert json.dumps(marathon.APPS_PATH) == '"/v2/apps/?embed=apps.tasks"'

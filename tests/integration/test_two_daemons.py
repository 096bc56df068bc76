"""Two daemons in one process share nothing: each has its own node timing, sideload
sources, InfluxDB subscription history and handler kinds.

Both run in one trio run, each on its own free port and data directory, with different
``[stats]``, ``[[influxdb]]`` and ``-disable-handlers`` settings, driven through their
HTTP APIs as a user would.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from kapa_core.config.loader import ConfigLayers
from kapa_core.daemon import Daemon, DaemonOptions
from kapa_core.plugins import load_plugins
from kapa_core.services import CoreServiceContext, ServiceContext
from tests.integration.influxd import free_port

pytestmark = pytest.mark.integration

#: A task that adds field ``v`` from ``values.json`` in the sideload directory.
SIDELOAD = """stream
    |from().measurement('m')
    |sideload().source('file://{dir}').order('values.json').field('v', 0.0)
    |httpOut('out')
"""


def make_daemon(data_dir: Path, config: dict[str, Any], disable: tuple[str, ...] = ()
                ) -> Daemon:
    plugins = load_plugins()
    layers = ConfigLayers(plugins.ordered_sections())
    base: dict[str, Any] = {"data_dir": str(data_dir),
                            "http": {"bind-address": "127.0.0.1:0", "log-enabled": False},
                            "logging": {"file": "STDERR", "level": "WARN"}}
    layers.load({**base, **config}, {})
    return Daemon(plugins, layers, DaemonOptions(disable_handlers=disable))


class Running:
    def __init__(self, daemon: Daemon, client: httpx.AsyncClient) -> None:
        self.daemon = daemon
        self.client = client

    async def define(self, task_id: str, script: str) -> httpx.Response:
        return await self.client.post("/kapacitor/v1/tasks", json={
            "id": task_id, "type": "stream", "status": "enabled", "script": script,
            "dbrps": [{"db": "db", "rp": "autogen"}]})

    async def write(self, body: str) -> None:
        response = await self.client.post("/write?db=db&rp=autogen", content=body)
        assert response.status_code == 204, response.text

    async def out(self, task_id: str) -> Any:
        """The field ``v`` of the last point the task's httpOut holds (None: none yet)."""
        response = await self.client.get(f"/kapacitor/v1/tasks/{task_id}/out")
        assert response.status_code == 200, response.text
        series = response.json().get("series") or []
        if not series:
            return None
        columns, values = series[0]["columns"], series[0]["values"][-1]
        return dict(zip(columns, values, strict=True)).get("v")

    async def wait_out(self, task_id: str, expected: Any) -> None:
        with trio.fail_after(10):
            while await self.out(task_id) != expected:
                await trio.sleep(0.02)


@pytest.fixture
async def two(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[tuple[Running, Running]]:
    # Neither InfluxDB answers: only what each daemon configured and remembers matters.
    a = make_daemon(tmp_path / "a", {
        "stats": {"timing-sample-rate": 1.0, "timing-movavg-size": 5},
        "influxdb": [{"name": "first", "urls": [f"http://127.0.0.1:{free_port()}"],
                      "subscription-mode": "server"}]},
        disable=("exec",))
    b = make_daemon(tmp_path / "b", {
        "stats": {"enabled": False},
        "influxdb": [{"name": "second", "urls": [f"http://127.0.0.1:{free_port()}"]}]})
    running = []
    for daemon in (a, b):
        host, port = await nursery.start(daemon.run)
        client = httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10)
        running.append(Running(daemon, client))
    yield running[0], running[1]
    for run in running:
        await run.client.aclose()
        run.daemon.stop()


async def test_node_timing_is_each_daemons_own(two: tuple[Running, Running]) -> None:
    a, b = two
    script = "stream|from().measurement('m')|httpOut('out')"
    for run in (a, b):
        response = await run.define("t", script)
        assert response.status_code == 200, response.text
    a_nodes = a.daemon.task_master.tasks["t"].nodes
    b_nodes = b.daemon.task_master.tasks["t"].nodes
    # a: every execution timed, mean of the last 5; b ([stats] disabled): none timed
    assert {(n._every, n._timings.maxlen) for n in a_nodes} == {(1, 5)}
    assert {n._every for n in b_nodes} == {1 << 62}
    for run in (a, b):
        await run.write("\n".join(f"m value={i} {i}" for i in range(1, 51)))
        await run.wait_out("t", None)  # httpOut holds the last point (no field v)
    with trio.fail_after(10):
        while a_nodes[-1].collected < 50 or b_nodes[-1].collected < 50:  # noqa: ASYNC110
            await trio.sleep(0.02)
    assert all(n.stats()["avg_exec_time_ns"] > 0 for n in a_nodes[1:])
    assert all(n.stats()["avg_exec_time_ns"] == 0 for n in b_nodes)


async def test_sideload_sources_are_each_daemons_own(two: tuple[Running, Running],
                                                     tmp_path: Path) -> None:
    a, b = two
    directory = tmp_path / "sideload"
    directory.mkdir()
    values = directory / "values.json"
    values.write_text(json.dumps({"v": 1}))
    for run in (a, b):
        response = await run.define("side", SIDELOAD.format(dir=directory))
        assert response.status_code == 200, response.text
        await run.write("m value=1 1")
        await run.wait_out("side", 1.0)
    a_sources, b_sources = a.daemon.task_master.sideloads, b.daemon.task_master.sideloads
    assert set(a_sources.open) == set(b_sources.open) == {str(directory)}
    assert a_sources.open[str(directory)] is not b_sources.open[str(directory)]

    # A reload reads the sources of the daemon asked, and only those.
    values.write_text(json.dumps({"v": 2}))
    response = await a.client.post("/kapacitor/v1/sideload/reload")
    assert response.status_code == 204, response.text
    for run in (a, b):
        await run.write("m value=2 2")
    await a.wait_out("side", 2.0)
    await b.wait_out("side", 1.0)  # b read the file when its task started, not since

    # Deleting a's task forgets a's source; b's stays open and keeps its values.
    response = await a.client.delete("/kapacitor/v1/tasks/side")
    assert response.status_code == 204, response.text
    assert a_sources.open == {} and set(b_sources.open) == {str(directory)}
    await b.write("m value=3 3")
    await b.wait_out("side", 1.0)


async def test_subscription_history_is_each_daemons_own(two: tuple[Running, Running]
                                                        ) -> None:
    a, b = two

    def history(run: Running) -> dict[str, Any]:
        links = run.daemon._section_state["influxdb"]["subscription_links"]
        return {name: state.name for name, state in links.items()}

    a_ids, b_ids = a.daemon, b.daemon
    assert a_ids.cluster_id != b_ids.cluster_id
    assert history(a) == {"first": f"kapacitor-{a_ids.server_id}"}  # server mode
    assert history(b) == {"second": f"kapacitor-{b_ids.cluster_id}"}
    # The first service of each daemon has nothing to compare with.
    assert a.daemon.service("influxdb").previous_links == {}
    assert b.daemon.service("influxdb").previous_links == {}

    # An override re-opens a's service: it compares with a's previous links only.
    response = await a.client.post("/kapacitor/v1/config/influxdb/first", json={
        "set": {"subscription-mode": "cluster"}})
    assert response.status_code == 204, response.text
    previous = a.daemon.service("influxdb").previous_links
    assert {name: state.name for name, state in previous.items()} == {
        "first": f"kapacitor-{a_ids.server_id}"}
    assert history(a) == {"first": f"kapacitor-{a_ids.cluster_id}"}
    assert history(b) == {"second": f"kapacitor-{b_ids.cluster_id}"}
    assert b.daemon.service("influxdb").previous_links == {}


async def test_disabled_handlers_are_each_daemons_own(two: tuple[Running, Running]) -> None:
    a, b = two
    script = ("stream|from().measurement('m')"
              "|alert().crit(lambda: \"value\" > 10).exec('/bin/true')")
    refused = await a.define("alerting", script)
    assert refused.status_code == 400, refused.text
    assert "handler 'exec' is disabled on this server" in refused.json()["error"]
    accepted = await b.define("alerting", script)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["executing"] is True


def test_only_core_services_get_the_core_context(tmp_path: Path) -> None:
    """A plugin's service gets a ServiceContext: the daemon's facts, never the daemon,
    its deny list object, the [http] shared secret or the subscription tokens."""
    daemon = make_daemon(tmp_path, {"http": {"bind-address": "127.0.0.1:0",
                                             "shared-secret": "s3cret"}})
    plugin = daemon._context("slack")
    assert type(plugin) is ServiceContext
    assert not hasattr(plugin, "app") and not hasattr(plugin, "shared_secret")
    core = daemon._context("influxdb")
    assert isinstance(core, CoreServiceContext)
    assert core.shared_secret == "s3cret" and core.deny_list is daemon.blacklist
    # the state a re-opened influxdb service finds is the one its predecessor left
    assert daemon._context("influxdb").state is core.state

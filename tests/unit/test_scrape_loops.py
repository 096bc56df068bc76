"""``[[scraper]]`` elements at work against loopback HTTP servers, outside a daemon: one
loop per discovered target, following the discoverer's updates; the request sent; a
target that times out, answers garbage, answers 404 or is refused by the deny list is
reported down and counted while the others keep being scraped; the blacklist."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from kapa_plugins.discovery.scraper import ScrapeLoops, ScraperConfig, ScraperTestService

from kapa_core.discovery import DiscoveryRegistry, TargetGroup
from kapa_core.errors import KapaError
from kapa_core.inputs import InputContext, Statistics
from kapa_core.logs import Logger
from kapa_core.models.duration import Duration
from kapa_core.models.point import Point
from kapa_core.testing.http import Recorded, RecordingHTTPServer
from tests.integration.pki import self_signed

PAGE = b"# TYPE temp gauge\ntemp{room=\"a\"} 21.5\ntemp{room=\"b\"} NaN\n"
MS = 1_000_000


def slow(request: Recorded) -> tuple[int, dict[str, str], bytes]:
    time.sleep(1.0)
    return 200, {}, PAGE


@pytest.fixture
def servers() -> Iterator[dict[str, RecordingHTTPServer]]:
    made = {"good": RecordingHTTPServer(status=200, body=PAGE),
            "slow": RecordingHTTPServer(respond=slow),
            "garbage": RecordingHTTPServer(status=200, body=b"<html>{{{</html>\n"),
            "missing": RecordingHTTPServer(status=404, body=b"no"),
            "denied": RecordingHTTPServer(status=200, body=PAGE)}
    for server in made.values():
        server.start()
    try:
        yield made
    finally:
        for server in made.values():
            server.close()


def config(**kw: Any) -> ScraperConfig:
    base: dict[str, Any] = dict(
        enabled=True, name="sc", db="db", rp="rp", discoverer_service="static-discovery",
        discoverer_id="x", scrape_interval=Duration(200 * MS),
        scrape_timeout=Duration(150 * MS))
    base.update(kw)
    return ScraperConfig(**base)


class Harness:
    def __init__(self, cfg: ScraperConfig, denied: str = "") -> None:
        self.registry = DiscoveryRegistry()
        self.points: list[Point] = []
        self.statistics = Statistics()
        self.entry = self.registry.open("static-discovery", "x")
        self.denied = denied

        def check(url: str) -> None:
            if denied and denied in url:
                raise KapaError(f"{url} is denied")

        self.context = InputContext("scraper", cfg, Logger("scraper"), self.write,
                                    element=cfg.name, check_outgoing=check,
                                    statistics=self.statistics, discovery=self.registry)
        self.loops = ScrapeLoops(cfg, self.context)

    def write(self, db: str, rp: str, points: list[Point]) -> None:
        assert (db, rp) == ("db", "rp")
        self.points += points

    def publish(self, *groups: TargetGroup) -> None:
        self.registry.update(self.entry, groups, replace=True)

    def stats(self) -> dict[str, Any]:
        (counters,) = [c for c in self.statistics if c.name == "scraper"]
        assert counters.tags == {"name": "sc"}
        return dict(counters.values)

    def up(self, address: str) -> list[float]:
        return [p.fields["value"] for p in self.points  # type: ignore[misc]
                if p.name == "up" and p.tags["instance"] == address]


async def until(probe: Any, seconds: float = 5.0) -> None:
    with trio.fail_after(seconds):
        while not probe():  # noqa: ASYNC110 - polling what the loops publish is the point
            await trio.sleep(0.02)


async def test_targets_scraped_and_failures_reported(servers: dict[str, RecordingHTTPServer]
                                                     ) -> None:
    h = Harness(config(params={"format": ["text"]}), denied=servers["denied"].address)
    h.publish(TargetGroup(tuple(s.address for s in servers.values()), {"site": "lab"}))
    async with trio.open_nursery() as nursery:
        await nursery.start(h.loops.serve)
        await until(lambda: all(len(h.up(s.address)) >= 2 for s in servers.values()))
        nursery.cancel_scope.cancel()
    good = servers["good"].address
    assert set(h.up(good)) == {1.0}
    for name in ("slow", "garbage", "missing", "denied"):
        assert set(h.up(servers[name].address)) == {0.0}, name
    assert servers["denied"].requests == []
    temps = [p for p in h.points if p.name == "temp"]
    assert temps and all(p.tags == {"__name__": "temp", "room": "a", "instance": good,
                                    "site": "lab"} and p.fields == {"value": 21.5}
                         for p in temps)
    assert all(p.time % MS == 0 for p in h.points)
    request = servers["good"].requests[0]
    assert request.path == "/metrics?format=text"
    assert request.headers["accept"] == "text/plain;version=0.0.4"
    assert request.headers["user-agent"] == "Prometheus/"
    assert request.headers["x-prometheus-scrape-timeout-seconds"] == "0.150000"
    assert "authorization" not in request.headers
    stats = h.stats()
    assert stats["targets"] == 5
    assert stats["scrapes"] >= 10 and stats["scrape_errors"] >= 8
    assert stats["scrapes_refused"] >= 2
    assert stats["points_dropped"] >= 2  # the NaN sample of each good scrape
    assert stats["points_tx"] == len(h.points)
    counts = {p.name: p.fields["value"] for p in h.points if p.tags["instance"] == good}
    assert counts["scrape_samples_scraped"] == 2.0
    assert counts["scrape_samples_post_metric_relabeling"] == 2.0


async def test_targets_follow_the_discoverer(servers: dict[str, RecordingHTTPServer]
                                             ) -> None:
    h = Harness(config())
    good, other = servers["good"], servers["denied"]
    async with trio.open_nursery() as nursery:
        await nursery.start(h.loops.serve)
        assert h.stats()["targets"] == 0
        h.publish(TargetGroup((good.address,), {}, "a"))
        await until(lambda: len(good.requests) >= 1)
        h.publish(TargetGroup((other.address,), {}, "b"))
        assert h.stats()["targets"] == 1
        seen = len(good.requests)
        await until(lambda: len(other.requests) >= 2)
        assert len(good.requests) <= seen + 1
        h.registry.close(h.entry)  # the discoverer stops: no targets
        assert h.stats()["targets"] == 0
        nursery.cancel_scope.cancel()


async def test_auth_headers_and_blacklist(servers: dict[str, RecordingHTTPServer]) -> None:
    good, other = servers["good"], servers["denied"]
    basic = Harness(config(username="u", password="p", bearer_token="t",
                           blacklist=[good.address]))
    bearer = Harness(config(bearer_token="tok", name="sc"))
    basic.publish(TargetGroup((good.address,), {}))
    bearer.publish(TargetGroup((other.address,), {}))
    async with trio.open_nursery() as nursery:
        await nursery.start(basic.loops.serve)
        await nursery.start(bearer.loops.serve)
        await until(lambda: len(good.requests) >= 2 and len(other.requests) >= 1)
        nursery.cancel_scope.cancel()
    assert good.requests[0].headers["authorization"] == "Basic dTpw"
    assert other.requests[0].headers["authorization"] == "Bearer tok"
    assert basic.points == []  # the blacklisted instance's points, report ones included
    assert basic.stats()["points_dropped"] >= 2 * 5
    assert basic.stats()["scrapes"] >= 2


async def test_discovered_job_label_that_does_not_decode(
        servers: dict[str, RecordingHTTPServer]) -> None:
    # Kapacitor encodes db|rp|name in the job label: a discovered job label wins over
    # it and the samples cannot be written (Append fails to decode it)
    h = Harness(config())
    h.publish(TargetGroup((servers["good"].address,), {"job": "mine"}))
    async with trio.open_nursery() as nursery:
        await nursery.start(h.loops.serve)
        await until(lambda: h.stats().get("scrapes", 0) >= 1)
        nursery.cancel_scope.cancel()
    assert h.points == []


async def test_service_test_always_succeeds() -> None:
    service = ScraperTestService()
    assert service.test_options() == {"name": ""}
    assert await service.test({"name": "anything"}) is None


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


async def test_refused_connection_is_down() -> None:
    h = Harness(config())
    address = closed_port()
    h.publish(TargetGroup((address,), {}))
    async with trio.open_nursery() as nursery:
        await nursery.start(h.loops.serve)
        await until(lambda: len(h.up(address)) >= 1)
        nursery.cancel_scope.cancel()
    assert h.up(address)[0] == 0.0
    assert h.stats()["scrape_errors"] >= 1


async def test_proxy_url() -> None:
    with RecordingHTTPServer(status=200, body=PAGE) as proxy:
        h = Harness(config(proxy_url=proxy.url))
        h.publish(TargetGroup(("metrics.invalid:9100",), {}))
        async with trio.open_nursery() as nursery:
            await nursery.start(h.loops.serve)
            await until(lambda: len(h.up("metrics.invalid:9100")) >= 1)
            nursery.cancel_scope.cancel()
    # an HTTP proxy gets the target's absolute URL
    assert proxy.requests[0].path == "http://metrics.invalid:9100/metrics"
    assert h.up("metrics.invalid:9100")[0] == 1.0


async def test_https_with_ca_and_server_name(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, cn="metrics.example", san="DNS:metrics.example")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = RecordingHTTPServer(status=200, body=PAGE)
    server.server.socket = context.wrap_socket(server.server.socket, server_side=True)
    with server:
        checked = Harness(config(scheme="https", ssl_ca=str(cert),
                                 ssl_server_name="metrics.example"))
        wrong_name = Harness(config(scheme="https", ssl_ca=str(cert), name="other"))
        skipped = Harness(config(scheme="https", insecure_skip_verify=True, name="skip"))
        for h in (checked, wrong_name, skipped):
            h.publish(TargetGroup((server.address,), {}))
        async with trio.open_nursery() as nursery:
            for h in (checked, wrong_name, skipped):
                await nursery.start(h.loops.serve)
            await until(lambda: all(h.up(server.address) for h in
                                    (checked, wrong_name, skipped)))
            nursery.cancel_scope.cancel()
    assert checked.up(server.address)[0] == 1.0
    assert wrong_name.up(server.address)[0] == 0.0  # the cert is not for 127.0.0.1
    assert skipped.up(server.address)[0] == 1.0

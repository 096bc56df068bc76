"""``[[scraper]]`` through the real daemon: a ``[[static-discovery]]`` names four local
HTTP servers (a good page, one too slow for the scrape timeout, one serving garbage,
one on an address ``-blacklist-cidrs`` refuses); a stream task receives the points.

The good page's points are compared with what kapacitord 1.5.7 made of the same page
(tests/unit/test_scrape_format.py KAPACITOR_POINTS; ``python -m
tests.integration.test_scraper --kapacitord BIN`` prints them again from a real
Kapacitor). Also: statistics in /debug/vars, the discovery endpoint, service tests,
config overrides of the scraper and of its discoverer re-binding live, and
file-discovery re-read when its file changes.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kapa_core.testing import DaemonProcess, wait_until
from kapa_core.testing.http import Recorded, RecordingHTTPServer
from tests.unit.test_scrape_format import GROUP_LABELS, PAGE, kapacitor_points

pytestmark = pytest.mark.integration

API = "/kapacitor/v1"
DENIED_HOST = "127.0.0.2"  # refused by -blacklist-cidrs below


def slow(request: Recorded) -> tuple[int, dict[str, str], bytes]:
    time.sleep(2.0)
    return 200, {}, PAGE.encode()


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, RecordingHTTPServer]]:
    made = {"good": RecordingHTTPServer(status=200, body=PAGE.encode(),
                                        headers={"Content-Type": "text/plain; version=0.0.4"}),
            "slow": RecordingHTTPServer(respond=slow),
            "garbage": RecordingHTTPServer(status=200, body=b"<html>\n{{ oops\n"),
            "denied": RecordingHTTPServer(DENIED_HOST, status=200, body=PAGE.encode()),
            "sink": RecordingHTTPServer(status=204)}
    try:
        for server in made.values():
            server.start()
        yield made
    finally:
        for server in made.values():
            server.close()


def scraper(name: str, discoverer: str, service: str = "static-discovery",
            **kw: Any) -> dict[str, Any]:
    return {"enabled": True, "name": name, "discoverer-id": discoverer,
            "discoverer-service": service, "db": "prom", "rp": "autogen",
            "scrape-interval": "1s", "scrape-timeout": "500ms", **kw}


def define_post(daemon: DaemonProcess, task_id: str, url: str, where: str = "") -> None:
    script = f'dbrp "prom"."autogen"\nstream|from(){where}|httpPost(\'{url}\')'
    response = httpx.post(daemon.url + API + "/tasks", json={
        "id": task_id, "type": "stream", "script": script, "status": "enabled"})
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def daemon(servers: dict[str, RecordingHTTPServer]) -> Iterator[DaemonProcess]:
    targets = [servers[n].address for n in ("good", "slow", "garbage", "denied")]
    config = {"static-discovery": [{"enabled": True, "id": "local", "targets": targets,
                                    "labels": GROUP_LABELS}],
              "scraper": [scraper("myscraper", "local")],
              "stats": {"enabled": True, "stats-interval": "1s"}}
    with DaemonProcess(config, args=["-blacklist-cidrs", f"{DENIED_HOST}/32"]) as process:
        define_post(process, "all", servers["sink"].url + "/")
        script = ('dbrp "_kapacitor"."autogen"\n'
                  "stream|from().measurement('scraper').groupBy(*)|httpOut('out')")
        response = httpx.post(process.url + API + "/tasks", json={
            "id": "stats", "type": "stream", "script": script, "status": "enabled"})
        assert response.status_code == 200, response.text
        yield process


def posted(sink: RecordingHTTPServer) -> list[tuple[str, dict[str, str], Any, str]]:
    out = []
    for request in list(sink.requests):
        series = request.json()["series"][0]
        when, value = series["values"][0]
        out.append((series["name"], series["tags"], value, when))
    return out


def one_scrape(points: list[tuple[str, dict[str, str], Any, str]], instance: str
               ) -> list[tuple[str, dict[str, str], Any, str]]:
    """The points of the first complete scrape of ``instance``, shaped as
    KAPACITOR_POINTS (times: "own" for the page's own timestamps)."""
    mine = [p for p in points if p[1].get("instance") == instance]
    ups = [p[3] for p in mine if p[0] == "up"]
    assert ups, f"no scrape of {instance} yet"
    at = ups[0]
    out = []
    for name, tags, value, when in mine:
        if when == at or when.startswith("2014-"):
            out.append((name, tags, None if name == "scrape_duration_seconds" else value,
                        "scrape" if when == at else "own"))
    return sorted({json.dumps(p, sort_keys=True): p for p in out}.values(),
                  key=lambda p: (p[0], sorted(p[1].items())))


def test_points_equal_what_kapacitor_made(daemon: DaemonProcess,
                                          servers: dict[str, RecordingHTTPServer]) -> None:
    good = servers["good"].address
    wait_until(lambda: sum(1 for p in posted(servers["sink"])
                           if p[0] == "up" and p[1]["instance"] == good) >= 2,
               what="two scrapes of the good page")
    got = one_scrape(posted(servers["sink"]), good)
    expected = sorted((tuple(p) for p in kapacitor_points(good)),
                      key=lambda p: (p[0], sorted(p[1].items())))
    # +Inf is a point too (Kapacitor's httpPost cannot post it; kapa-core's posts null)
    assert [p for p in got if p[0] == "inf_metric"] == [
        ("inf_metric", {"__name__": "inf_metric", "env": "", "instance": good,
                        "team": "ops"}, None, "scrape")]
    assert [p for p in got if p[0] != "inf_metric"] == expected
    request = servers["good"].requests[0]
    assert (request.path, request.headers["accept"], request.headers["user-agent"]) == (
        "/metrics", "text/plain;version=0.0.4", "Prometheus/")
    assert request.headers["x-prometheus-scrape-timeout-seconds"] == "0.500000"


def test_failing_targets_are_down_logged_and_counted(
        daemon: DaemonProcess, servers: dict[str, RecordingHTTPServer]) -> None:
    bad = {n: servers[n].address for n in ("slow", "garbage", "denied")}

    def ups() -> dict[str, set[float]]:
        out: dict[str, set[float]] = {}
        for name, tags, value, _ in posted(servers["sink"]):
            if name == "up":
                out.setdefault(tags["instance"], set()).add(value)
        return out

    got = wait_until(ups, until=lambda u: all(a in u for a in bad.values()),
                     what="up samples of every target")
    assert got[servers["good"].address] == {1}
    for address in bad.values():
        assert got[address] == {0}, address
    assert servers["denied"].requests == []
    log = daemon.log()
    for address, reason in ((bad["slow"], "timeout after 0.5s"),
                            (bad["garbage"], "cannot parse the page"),
                            (bad["denied"], "refused")):
        assert any('msg="scrape failed"' in line and "scraper=myscraper" in line
                   and f"target=http://{address}/metrics" in line and reason in line
                   for line in log.splitlines()), (address, reason)
    # rate-limited: one line per target and reason however many scrapes failed
    assert sum(1 for line in log.splitlines()
               if 'msg="scrape failed"' in line and bad["garbage"] in line) == 1


def scraper_stats(daemon: DaemonProcess) -> dict[str, dict[str, Any]]:
    stats = httpx.get(daemon.url + API + "/debug/vars").json()["kapacitor"]
    return {s["tags"]["name"]: s for s in stats.values() if s["name"] == "scraper"}


def test_statistics(daemon: DaemonProcess) -> None:
    stat = wait_until(lambda: scraper_stats(daemon)["myscraper"],
                      until=lambda s: s["values"].get("scrapes", 0) >= 8,
                      what="scraper statistics")
    assert set(stat["tags"]) == {"name", "host", "cluster_id", "server_id"}
    values = stat["values"]
    assert values["targets"] == 4
    assert values["scrape_errors"] >= 5 and values["scrapes_refused"] >= 1
    assert values["samples"] >= 24 and values["points_tx"] >= 27
    assert values["points_dropped"] >= 1  # the NaN sample
    # the same statistic in the _kapacitor stream
    published = wait_until(
        lambda: httpx.get(daemon.url + API + "/tasks/stats/out").json().get("series"),
        what="the scraper statistic in _kapacitor")
    assert published[0]["tags"]["name"] == "myscraper"
    assert {"targets", "scrapes", "scrape_errors", "samples", "points_tx"} <= set(
        published[0]["columns"])


def test_discovery_endpoint_and_service_tests(daemon: DaemonProcess,
                                              servers: dict[str, RecordingHTTPServer]
                                              ) -> None:
    shown = httpx.get(daemon.url + API + "/discovery/static-discovery/local").json()
    assert shown["groups"] == [{"source": "0", "labels": {"env": "", "team": "ops"},
                                "targets": [servers[n].address for n in
                                            ("good", "slow", "garbage", "denied")]}]
    listed = httpx.get(daemon.url + API + "/service-tests").json()["services"]
    options = {s["name"]: s["options"] for s in listed}
    # as kapacitord 1.5.7 lists them
    assert options["scraper"] == {"name": ""}
    assert options["static-discovery"] == {"id": ""}
    assert options["file-discovery"] == {"id": ""}
    answers = [httpx.post(daemon.url + API + "/service-tests/" + name, json=body).json()
               for name, body in (("scraper", {"name": "nope"}),
                                  ("static-discovery", {"id": "local"}),
                                  ("static-discovery", {"id": "x"}))]
    # what kapacitord 1.5.7 answered to the same three tests
    assert answers == [{"success": True, "message": ""}, {"success": True, "message": ""},
                       {"success": False,
                        "message": 'discoverer "x" is not enabled or does not exist'}]


def count(server: RecordingHTTPServer) -> int:
    return len(server.requests)


def test_overrides_rebind_live() -> None:
    a, b, c = (RecordingHTTPServer(status=200, body=b"m 1\n") for _ in range(3))
    with a, b, c:
        config = {"static-discovery": [{"enabled": True, "id": "one", "targets": [a.address]},
                                       {"enabled": True, "id": "two", "targets": [b.address]}],
                  "scraper": [scraper("s", "one")]}
        with DaemonProcess(config) as daemon:
            wait_until(lambda: count(a) >= 1, what="a scrape of the first target")
            # the scraper is pointed at the other discoverer
            response = httpx.post(daemon.url + API + "/config/scraper/s",
                                  json={"set": {"discoverer-id": "two"}})
            assert response.status_code == 204, response.text
            wait_until(lambda: count(b) >= 1, what="a scrape of the second target")
            before = count(a)
            time.sleep(1.5)
            assert count(a) == before
            # the discoverer it follows is overridden under it: it follows
            response = httpx.post(daemon.url + API + "/config/static-discovery/two",
                                  json={"set": {"targets": [c.address]}})
            assert response.status_code == 204, response.text
            wait_until(lambda: count(c) >= 1, what="a scrape of the third target")
            before = count(b)
            time.sleep(1.5)
            assert count(b) == before
            # a scraper added, then removed
            response = httpx.post(daemon.url + API + "/config/scraper",
                                  json={"add": scraper("added", "one")})
            assert response.status_code == 204, response.text
            wait_until(lambda: "added" in scraper_stats(daemon) and count(a) > before,
                       what="the added scraper at work")
            response = httpx.post(daemon.url + API + "/config/scraper",
                                  json={"remove": ["added"]})
            assert response.status_code == 204, response.text
            assert "added" not in scraper_stats(daemon)
            before = count(a)
            time.sleep(1.5)
            assert count(a) == before
            assert scraper_stats(daemon)["s"]["values"]["targets"] == 1


def test_file_discovery_reread_when_the_file_changes(tmp_path: Path) -> None:
    a, b = (RecordingHTTPServer(status=200, body=b"m 1\n") for _ in range(2))
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps([{"targets": [a.address], "labels": {"zone": "z1"}}]))
    with a, b, RecordingHTTPServer(status=204) as sink:
        config = {"file-discovery": [{"enabled": True, "id": "files",
                                      "files": [str(tmp_path / "*.json")]}],
                  "scraper": [scraper("f", "files", "file-discovery")]}
        with DaemonProcess(config) as daemon:
            define_post(daemon, "m", sink.url + "/", ".measurement('m')")
            wait_until(lambda: posted(sink), what="a point from the file's target")
            name, tags, value, _ = posted(sink)[0]
            assert (name, tags, value) == ("m", {"__name__": "m", "instance": a.address,
                                                 "zone": "z1"}, 1)
            shown = httpx.get(daemon.url + API + "/discovery/file-discovery/files").json()
            assert shown["groups"] == [{"source": f"{targets}:0", "targets": [a.address],
                                        "labels": {"__meta_filepath": str(targets),
                                                   "zone": "z1"}}]
            tmp = tmp_path / "new.tmp"
            tmp.write_text(json.dumps([{"targets": [b.address]}]))
            tmp.replace(targets)
            wait_until(lambda: count(b) >= 1, timeout=10, what="the new target scraped")
            before = count(a)
            time.sleep(1.5)
            assert count(a) == before


# -- taking the expected points from the real Kapacitor --------------------------------
def take_from_kapacitor(binary: str) -> list[Any]:
    from tests.compat.oracle import Kapacitor

    with RecordingHTTPServer(status=200, body=PAGE.encode()) as page, \
            RecordingHTTPServer(status=204) as sink:
        labels = "".join(f'    {k} = "{v}"\n' for k, v in GROUP_LABELS.items())
        extra = (f'[[static-discovery]]\n  enabled = true\n  id = "local"\n'
                 f'  targets = ["{page.address}"]\n  [static-discovery.labels]\n{labels}'
                 '[[scraper]]\n  enabled = true\n  name = "myscraper"\n  type = "prometheus"\n'
                 '  discoverer-id = "local"\n  discoverer-service = "static-discovery"\n'
                 '  db = "prom"\n  rp = "autogen"\n  scheme = "http"\n'
                 '  metrics-path = "/metrics"\n  scrape-interval = "1s"\n'
                 '  scrape-timeout = "1s"\n')
        server = Kapacitor(binary, extra_conf=extra)
        try:
            script = f'dbrp "prom"."autogen"\nstream|from()|httpPost(\'{sink.url}/\')'
            httpx.post(server.url + API + "/tasks", json={
                "id": "t", "type": "stream", "script": script, "status": "enabled"})
            time.sleep(3.5)
        finally:
            server.close()
        points = one_scrape(posted(sink), page.address)
    return [(n, {k: "{instance}" if k == "instance" else v for k, v in t.items()}, v, w)
            for n, t, v, w in points]


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--kapacitord":
        sys.exit("usage: python -m tests.integration.test_scraper --kapacitord BIN")
    for point in take_from_kapacitor(sys.argv[2]):
        print(f"    {tuple(point)!r},")


def test_blacklisted_instance_is_scraped_but_not_written() -> None:
    # kapacitord 1.5.7 with the same two scrapers: the blacklisted target was requested
    # every interval and none of its points (report points included) reached the task
    a, b = (RecordingHTTPServer(status=200, body=b"m 1\n") for _ in range(2))
    with a, b, RecordingHTTPServer(status=204) as sink:
        config = {"static-discovery": [{"enabled": True, "id": "bl", "targets": [a.address]},
                                       {"enabled": True, "id": "ok", "targets": [b.address]}],
                  "scraper": [scraper("bl", "bl", blacklist=[a.address]), scraper("ok", "ok")]}
        with DaemonProcess(config) as daemon:
            define_post(daemon, "all", sink.url + "/")
            wait_until(lambda: count(a) >= 2 and sum(1 for p in posted(sink) if p[0] == "up")
                       >= 2, what="two scrapes of each target")
            stats = scraper_stats(daemon)["bl"]["values"]
        assert {p[1]["instance"] for p in posted(sink)} == {b.address}
        assert stats["scrapes"] >= 2 and stats["points_dropped"] >= 2 * 5
        assert "points_tx" not in stats

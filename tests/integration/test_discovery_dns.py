"""``[[dns]]`` through the real daemon, against a real DNS server (Debian's dnsmasq on a
free loopback port, named by the kapa-core ``resolvers`` key): what
``GET /kapacitor/v1/discovery`` shows for SRV, A and AAAA elements, records changed
between refreshes, failed lookups, the section's service test and config overrides. As in
Kapacitor, an element runs only while an enabled ``[[scraper]]`` names it: each element
here has one (scraping once an hour, so none of them fetches during the tests, and
``-blacklist-cidrs`` refuses every address outside 127.0.0.0/8 should one do so).

Expected answers were taken from kapacitord 1.5.7. It has no resolver option, so it ran
in a network and mount namespace of its own (``unshare -n -m``) where dnsmasq served the
same records on 127.0.0.1:53 and a bind-mounted /etc/resolv.conf named it; a
``[[scraper]]`` per element scraped a real node exporter, and the ``instance`` tags of
the ``up`` points it wrote are the targets each element discovered (``KAPACITOR_TARGETS``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kapa_core.testing import DaemonProcess, wait_until
from tests.integration.test_scrape_node_exporter import Exporter, check_load, scraper
from tests.unit.test_dns_discovery import Dnsmasq

pytestmark = pytest.mark.integration

API = "/kapacitor/v1"

#: every address range but 127.0.0.0/8: what the discoverers find (192.0.2.x, ::1, a host
#: name the system resolver would answer) is never scraped
NOT_LOOPBACK = ("0.0.0.0/2,64.0.0.0/3,96.0.0.0/4,112.0.0.0/5,120.0.0.0/6,124.0.0.0/7,"
                "126.0.0.0/8,128.0.0.0/1,::/0")
DENY = ["-blacklist-cidrs", NOT_LOOPBACK]


def records(port: int) -> list[str]:
    """The records Kapacitor was given, with the exporter's port (9100 there), and an SRV
    record naming the exporter alone."""
    return [f"--srv-host=_exporter._tcp.example.test,127.0.0.1.,{port}",
            f"--srv-host=_node._tcp.example.test,127.0.0.1.,{port}",
            f"--srv-host=_node._tcp.example.test,node2.example.test.,{port + 1}",
            "--host-record=exporter.example.test,127.0.0.1,::1",
            "--host-record=mapped.example.test,::ffff:127.0.0.1",
            "--cname=alias.example.test,exporter.example.test"]


#: element -> (record type, port, record names), as configured in both daemons
ELEMENTS = {
    "srv": ("SRV", 0, ["_node._tcp.example.test"]),
    "a": ("a", -1, ["exporter.example.test", "alias.example.test"]),
    "aaaa": ("AAAA", -1, ["exporter.example.test", "mapped.example.test"]),
    "bad": ("A", -1, ["nothing.example.test"]),
}

#: the instance tags of the points Kapacitor 1.5.7 scraped through each element, with
#: the exporter on port 9100
KAPACITOR_TARGETS = {
    "srv": ["127.0.0.1:9100", "node2.example.test:9101"],
    "a": ["127.0.0.1:9100"],
    "aaaa": ["127.0.0.1:9100", "[::1]:9100"],
    "bad": [],
}

#: Kapacitor 1.5.7's answers to POST /kapacitor/v1/service-tests/dns
KAPACITOR_SERVICE_TESTS = {
    "": '{"success":false,"message":"discoverer \\"\\" is not enabled or does not exist"}\n',
    "nope": '{"success":false,"message":"discoverer \\"nope\\" is not enabled or does not '
            'exist"}\n',
    "off": '{"success":false,"message":"discoverer \\"off\\" is not enabled or does not '
           'exist"}\n',
    "srv": '{"success":true,"message":""}\n',
    "a": '{"success":true,"message":""}\n',
}
KAPACITOR_TEST_LISTING = {"link": {"rel": "self", "href": "/kapacitor/v1/service-tests/dns"},
                          "name": "dns", "options": {"id": ""}}


def kapacitor_targets(element: str, port: int) -> list[str]:
    return sorted(t.replace(":9100", f":{port}").replace(":9101", f":{port + 1}")
                  for t in KAPACITOR_TARGETS[element])


@pytest.fixture(scope="module")
def node_exporter() -> Iterator[Exporter]:
    """The real node exporter on a free loopback port (load average only)."""
    server = Exporter()
    try:
        yield server.start()
    finally:
        server.close()


@pytest.fixture(scope="module")
def exporter(node_exporter: Exporter) -> int:
    return int(node_exporter.address.rpartition(":")[2])


@pytest.fixture(scope="module")
def dnsmasq(exporter: int) -> Iterator[Dnsmasq]:
    with Dnsmasq(records(exporter)) as server:
        yield server


@pytest.fixture(scope="module")
def changing() -> Iterator[Dnsmasq]:
    """A second server whose records the tests change."""
    with Dnsmasq(["--host-record=web.example.test,192.0.2.1"]) as server:
        yield server


def element(id: str, type: str, port: int, names: list[str], resolver: str,
            **more: Any) -> dict[str, Any]:
    config = {"enabled": True, "id": id, "type": type, "record-names": names,
              "refresh-interval": "300ms", "resolvers": [resolver], **more}
    if port:
        config["port"] = port
    return config


def idle_scraper(id: str) -> dict[str, Any]:
    """A [[scraper]] naming the element ``id``: the daemon runs only named elements."""
    return {"enabled": True, "name": f"dns-{id}", "db": "db", "rp": "autogen",
            "scrape-interval": "1h", "discoverer-service": "dns", "discoverer-id": id}


@pytest.fixture(scope="module")
def daemon(exporter: int, dnsmasq: Dnsmasq, changing: Dnsmasq) -> Iterator[DaemonProcess]:
    elements = [element(id, type, exporter if port < 0 else port, names, dnsmasq.address)
                for id, (type, port, names) in ELEMENTS.items()]
    elements += [
        {"enabled": False, "id": "off", "type": "SRV", "record-names": ["x.test"]},
        element("changing", "A", 80, ["web.example.test"], changing.address),
        element("override", "A", 80, ["exporter.example.test"], dnsmasq.address),
        # enabled, but named by no scraper until test_an_element_runs_once_a_scraper_names_it
        element("lone", "A", 80, ["exporter.example.test"], dnsmasq.address),
    ]
    named = [e["id"] for e in elements if e["id"] != "lone"]  # "off" too: disabled
    config = {"dns": elements, "scraper": [idle_scraper(id) for id in named]}
    with DaemonProcess(config, args=DENY) as process:
        yield process


def discovered(daemon: DaemonProcess, id: str) -> dict[str, Any]:
    response = httpx.get(f"{daemon.url}{API}/discovery/dns/{id}")
    assert response.status_code == 200, response.text
    entry: dict[str, Any] = response.json()
    return entry


def groups(daemon: DaemonProcess, id: str) -> dict[str, tuple[list[str], dict[str, str]]]:
    return {g["source"]: (sorted(g["targets"]), g["labels"])
            for g in discovered(daemon, id)["groups"]}


def targets(daemon: DaemonProcess, id: str) -> list[str]:
    return sorted({t for ts, _ in groups(daemon, id).values() for t in ts})


def test_a_group_per_record_name(daemon: DaemonProcess, exporter: int) -> None:
    for id, (_, _, names) in ELEMENTS.items():
        if id != "bad":
            wait_until(lambda: len(groups(daemon, id)) == len(names), what=f"groups of {id}")
    port = exporter
    assert groups(daemon, "srv") == {"_node._tcp.example.test": (
        [f"127.0.0.1:{port}", f"node2.example.test:{port + 1}"],
        {"__meta_dns_name": "_node._tcp.example.test"})}
    assert groups(daemon, "a") == {
        "exporter.example.test": ([f"127.0.0.1:{port}"],
                                  {"__meta_dns_name": "exporter.example.test"}),
        "alias.example.test": ([f"127.0.0.1:{port}"], {"__meta_dns_name": "alias.example.test"})}
    assert groups(daemon, "aaaa") == {
        "exporter.example.test": ([f"[::1]:{port}"], {"__meta_dns_name": "exporter.example.test"}),
        "mapped.example.test": ([f"127.0.0.1:{port}"], {"__meta_dns_name": "mapped.example.test"})}
    # the targets Kapacitor's scrapers used for the same records
    for id in ELEMENTS:
        assert targets(daemon, id) == kapacitor_targets(id, port), id


def test_a_failed_lookup_is_logged_and_publishes_nothing(daemon: DaemonProcess) -> None:
    daemon.wait_for_log('Error refreshing DNS targets: could not resolve nothing.example.test: '
                        'no server responded')
    entry = discovered(daemon, "bad")
    assert (entry["groups"], entry["updated"]) == ([], None)
    assert "off" not in [e["id"] for e in httpx.get(
        f"{daemon.url}{API}/discovery/dns").json()["discoverers"]]


def test_changed_records_are_picked_up_and_a_failing_name_keeps_its_group(
        daemon: DaemonProcess, changing: Dnsmasq) -> None:
    wait_until(lambda: targets(daemon, "changing"), until=lambda t: t == ["192.0.2.1:80"],
               what="the first record")
    changing.restart(["--host-record=web.example.test,192.0.2.2",
                      "--host-record=web.example.test,2001:db8::2",
                      "--host-record=web.example.test,192.0.2.3"])
    wait_until(lambda: targets(daemon, "changing"),
               until=lambda t: t == ["192.0.2.2:80", "192.0.2.3:80"], what="the new records")
    # As Kapacitor: a name that no longer resolves keeps the targets it had.
    changing.restart([])
    failures = daemon.log().count("could not resolve web.example.test")
    wait_until(lambda: daemon.log().count("could not resolve web.example.test"),
               until=lambda n: n >= failures + 2, what="two failed lookups")
    assert targets(daemon, "changing") == ["192.0.2.2:80", "192.0.2.3:80"]
    changing.restart(["--host-record=web.example.test,192.0.2.4"])
    wait_until(lambda: targets(daemon, "changing"), until=lambda t: t == ["192.0.2.4:80"],
               what="the records back")


def test_service_tests_answer_as_kapacitor(daemon: DaemonProcess) -> None:
    listed = httpx.get(f"{daemon.url}{API}/service-tests").json()["services"]
    assert [s for s in listed if s["name"] == "dns"] == [KAPACITOR_TEST_LISTING]
    for id, expected in KAPACITOR_SERVICE_TESTS.items():
        response = httpx.post(f"{daemon.url}{API}/service-tests/dns", json={"id": id},
                              timeout=40)
        assert (response.status_code, response.text) == (200, expected), id


def test_service_test_of_a_name_that_does_not_resolve_says_why(daemon: DaemonProcess) -> None:
    # Kapacitor waits 30 s and answers 'timeout waiting for discoverer "bad" to return'.
    start = time.monotonic()
    response = httpx.post(f"{daemon.url}{API}/service-tests/dns", json={"id": "bad"},
                          timeout=40)
    assert response.json() == {
        "success": False, "message": 'discoverer "bad" failed: could not resolve '
                                     'nothing.example.test: no server responded'}
    assert time.monotonic() - start < 10


def test_a_config_override_re_binds_the_element(daemon: DaemonProcess, exporter: int) -> None:
    wait_until(lambda: targets(daemon, "override"), until=lambda t: t == ["127.0.0.1:80"],
               what="the element before the override")
    response = httpx.post(f"{daemon.url}{API}/config/dns/override", json={
        "set": {"record-names": ["_node._tcp.example.test"], "type": "SRV"}})
    assert response.status_code == 204, response.text
    wait_until(lambda: groups(daemon, "override"), until=lambda g: list(g) == [
        "_node._tcp.example.test"], what="the overridden element's groups")
    assert targets(daemon, "override") == kapacitor_targets("srv", exporter)
    view = httpx.get(f"{daemon.url}{API}/config/dns/override").json()["options"]
    assert (view["record-names"], view["type"], view["resolvers"]) == (
        ["_node._tcp.example.test"], "SRV", [daemon_resolver(daemon, "override")])
    refused = httpx.post(f"{daemon.url}{API}/config/dns/override",
                         json={"set": {"resolvers": ["dns.example.test"]}})
    assert refused.status_code == 400
    assert "resolvers[0]: invalid resolver 'dns.example.test'" in refused.json()["error"]


def test_an_element_runs_once_a_scraper_names_it(daemon: DaemonProcess) -> None:
    """As Kapacitor: an enabled element no [[scraper]] names makes no lookups and is not
    shown; a scraper naming it, added by a config override, starts it."""
    wait_until(lambda: targets(daemon, "override"), what="the other elements running")
    missing = httpx.get(f"{daemon.url}{API}/discovery/dns/lone")
    assert missing.status_code == 404, missing.text
    listed = httpx.get(f"{daemon.url}{API}/discovery/dns").json()["discoverers"]
    assert "lone" not in [e["id"] for e in listed]
    # its service test runs a discoverer of its own, named or not (as Kapacitor's Test)
    response = httpx.post(f"{daemon.url}{API}/service-tests/dns", json={"id": "lone"})
    assert response.json() == {"success": True, "message": ""}
    started = daemon.log().count('msg="discoverer started"')
    response = httpx.post(f"{daemon.url}{API}/config/scraper", json={"add": idle_scraper("lone")})
    assert response.status_code == 204, response.text
    wait_until(lambda: groups(daemon, "lone"), until=lambda g: g == {
        "exporter.example.test": (["127.0.0.1:80"], {"__meta_dns_name": "exporter.example.test"})},
        what="the named element's groups")
    listed = httpx.get(f"{daemon.url}{API}/discovery/dns").json()["discoverers"]
    assert "lone" in [e["id"] for e in listed]
    # it alone is started; the running elements are left alone
    assert daemon.log().count('msg="discoverer started"') == started + 1


def daemon_resolver(daemon: DaemonProcess, id: str) -> str:
    view = httpx.get(f"{daemon.url}{API}/config/dns/{id}").json()["options"]
    resolvers: list[str] = view["resolvers"]
    return resolvers[0]


def test_the_discovered_exporter_answers(daemon: DaemonProcess, exporter: int) -> None:
    """The SRV target is the node exporter: what a [[scraper]] of "srv" fetches."""
    wait_until(lambda: targets(daemon, "srv"), what="the SRV targets")
    reachable = [t for t in targets(daemon, "srv") if t.startswith("127.0.0.1:")]
    assert reachable == [f"127.0.0.1:{exporter}"]
    page = httpx.get(f"http://{reachable[0]}/metrics").text
    assert "\nnode_load1 " in page


def test_node_load1_through_dns(node_exporter: Exporter, dnsmasq: Dnsmasq) -> None:
    """The issue's end-to-end case: a [[scraper]] finds the node exporter through an SRV
    record; a task receives node_load1 and its values are those the exporter served."""
    config = {"dns": [element("node", "SRV", 0, ["_exporter._tcp.example.test"],
                              dnsmasq.address, **{"refresh-interval": "30s"})],
              "scraper": [scraper("node", "dns")]}
    with DaemonProcess(config, args=DENY) as daemon:
        check_load(daemon, node_exporter)
        assert groups(daemon, "node") == {"_exporter._tcp.example.test": (
            [node_exporter.address], {"__meta_dns_name": "_exporter._tcp.example.test"})}
        assert daemon.stop() == 0


def test_the_deny_list_holds_for_dns_servers(dnsmasq: Dnsmasq) -> None:
    config = {"dns": [element("denied", "A", 80, ["denied.example.test"], dnsmasq.address)],
              "scraper": [idle_scraper("denied")]}
    with DaemonProcess(config, args=["-blacklist-cidrs", "127.0.0.1/32"]) as daemon:
        line = daemon.wait_for_log("DNS resolution failed.")
        assert "server=127.0.0.1" in line and "denied.example.test" in line, line
        daemon.wait_for_log("Error refreshing DNS targets: could not resolve "
                            "denied.example.test: no server responded")
    assert "denied.example.test" not in dnsmasq.log.read_text()  # never asked

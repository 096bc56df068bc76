"""[[ec2]] discovery through the daemon, against a local server answering as EC2's
DescribeInstances (two pages) and the instance metadata service
(tests/integration/fake_aws.py), reached through AWS_ENDPOINT_URL_EC2 and
AWS_EC2_METADATA_SERVICE_ENDPOINT: ``GET /kapacitor/v1/discovery`` shows the instances
with Prometheus' labels, the service test answers as Kapacitor's, a ``[[scraper]]``
scrapes the instances found, credentials come from the instance role when the element
has no keys, and a config override moves the targets. An element runs only while a
``[[scraper]]`` names it: one no scraper names makes no DescribeInstances call until a
config override adds a scraper naming it.

KAPACITOR_1_5_7 below was taken from kapacitord 1.5.7 run on the same config and fake
answers (in a mount namespace whose /etc/hosts sends ec2.us-east-1.amazonaws.com to a
local TLS relay, see fake_aws.py; needs root). Regenerate it with

    python -m tests.integration.test_discovery_ec2 --kapacitord BIN
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kapa_core.testing import DaemonProcess, wait_until
from tests.integration.fake_aws import (
    ACCESS_KEY,
    RELAY_ADDRESS,
    ROLE_KEY,
    ROLE_TOKEN,
    SECRET_KEY,
    FakeAWS,
    TLSRelay,
    describe_instances_xml,
    instance_xml,
    make_certificates,
    namespaced_binary,
)

pytestmark = pytest.mark.integration

API = "/kapacitor/v1"
METRICS = b"# TYPE node_load1 gauge\nnode_load1 0.42\n"
# the keys of an element no scraper names at first
SPARE_KEY, SPARE_SECRET = "AKIDSPAREEXAMPLE", "spare/secret/EXAMPLEKEY"


class Exporters:
    """The same metrics page on 127.0.0.1 and 127.0.0.2 at one free port (the private
    addresses of two instances)."""

    def __init__(self) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(METRICS)))
                self.end_headers()
                self.wfile.write(METRICS)

            def log_message(self, *args: Any) -> None:
                pass

        for _ in range(20):
            first = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            self.port = first.server_address[1]
            try:
                second = http.server.ThreadingHTTPServer(("127.0.0.2", self.port), Handler)
            except OSError:
                first.server_close()
                continue
            break
        else:
            raise RuntimeError("no port free on both 127.0.0.1 and 127.0.0.2")
        self.servers = [first, second]
        for server in self.servers:
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def pages() -> dict[str, str]:
    """Three instances on two pages: two with private addresses on this host, one without
    a private address (not a target)."""
    return {
        "": describe_instances_xml([[
            instance_xml("i-0a1", "127.0.0.1", public_ip="54.1.2.3",
                         public_dns="ec2-54-1-2-3.compute-1.amazonaws.com", vpc="vpc-1",
                         subnets=("subnet-a",),
                         tags=(("Name", "web-1"), ("aws:autoscaling:groupName", "web"))),
            instance_xml("i-0b2", None, state="pending")]], next_token="p2"),
        "p2": describe_instances_xml([[
            instance_xml("i-0c3", "127.0.0.2", state="stopped", itype="m5.large",
                         zone="us-east-1b", tags=(("Name", "web-2"),))]]),
    }


def expected_groups(port: int) -> list[dict[str, Any]]:
    return [
        {"source": "us-east-1:0", "targets": [f"127.0.0.1:{port}"], "labels": {
            "__meta_ec2_availability_zone": "us-east-1a",
            "__meta_ec2_instance_id": "i-0a1",
            "__meta_ec2_instance_state": "running",
            "__meta_ec2_instance_type": "t2.micro",
            "__meta_ec2_private_ip": "127.0.0.1",
            "__meta_ec2_public_dns_name": "ec2-54-1-2-3.compute-1.amazonaws.com",
            "__meta_ec2_public_ip": "54.1.2.3",
            "__meta_ec2_subnet_id": ",subnet-a,",
            "__meta_ec2_tag_Name": "web-1",
            "__meta_ec2_tag_aws_autoscaling_groupName": "web",
            "__meta_ec2_vpc_id": "vpc-1"}},
        {"source": "us-east-1:1", "targets": [f"127.0.0.2:{port}"], "labels": {
            "__meta_ec2_availability_zone": "us-east-1b",
            "__meta_ec2_instance_id": "i-0c3",
            "__meta_ec2_instance_state": "stopped",
            "__meta_ec2_instance_type": "m5.large",
            "__meta_ec2_private_ip": "127.0.0.2",
            "__meta_ec2_tag_Name": "web-2"}}]


# What kapacitord 1.5.7 asked and answered (see the module's docstring).
KAPACITOR_1_5_7: dict[str, Any] = {'lookup': {'requests': ['Action=DescribeInstances NextToken=p2 Version=2016-11-15',
                         'Action=DescribeInstances Version=2016-11-15'],
            'signing': ['content-length;content-type;host;x-amz-date valid=True '
                        'key=AKIDEXAMPLE type=application/x-www-form-urlencoded; '
                        'charset=utf-8']},
 'scraped': ['127.0.0.1:<port>', '127.0.0.2:<port>'],
 'service tests': {'nope': {'message': 'discoverer "nope" is not enabled or does not '
                                       'exist',
                            'success': False},
                   'off': {'message': 'discoverer "off" is not enabled or does not exist',
                           'success': False},
                   'prod': {'message': '', 'success': True}},
 'tag keys': ['__name__', 'instance']}


def first_lookup(fake: FakeAWS) -> dict[str, Any]:
    """The distinct DescribeInstances requests made with the section's keys (lookups may
    run side by side) and how they were signed."""
    with fake.lock:
        requests = [r for r in fake.requests if r.service == "ec2"
                    and r.access_key not in (ROLE_KEY, SPARE_KEY)]
    return {"requests": sorted({" ".join(f"{k}={v}" for k, v in sorted(r.params.items()))
                                for r in requests}),
            "signing": sorted({f"{r.signed_headers} valid={r.valid} key={r.access_key} "
                               f"type={r.content_type}" for r in requests})}


def scraped(url: str, task: str) -> list[str]:
    out = httpx.get(f"{url}{API}/tasks/{task}/out").json()
    return sorted(s.get("tags", {}).get("instance", "") for s in out.get("series") or [])


def scrape_task(url: str) -> None:
    script = "dbrp \"ec2db\".\"autogen\"\nstream|from().measurement('node_load1')" \
        ".groupBy('instance')|httpOut('out')"
    response = httpx.post(url + API + "/tasks", json={
        "id": "load", "type": "stream", "script": script, "status": "enabled"})
    assert response.status_code == 200, response.text


def scraper_element() -> dict[str, Any]:
    return {"enabled": True, "name": "ec2scrape", "db": "ec2db", "rp": "autogen",
            "discoverer-service": "ec2", "discoverer-id": "prod",
            "scrape-interval": "1s", "scrape-timeout": "1s"}


def naming(id: str) -> dict[str, Any]:
    """A scraper that names the element ``id`` only to have it run (scrapes hourly)."""
    return {"enabled": True, "name": f"{id}scrape", "db": f"{id}db", "rp": "autogen",
            "discoverer-service": "ec2", "discoverer-id": id, "scrape-interval": "1h"}


@pytest.fixture(scope="module")
def exporters() -> Iterator[Exporters]:
    server = Exporters()
    yield server
    server.close()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAWS]:
    with FakeAWS(pages=pages()) as server:
        server.secrets[SPARE_KEY] = SPARE_SECRET
        yield server


@pytest.fixture(scope="module")
def daemon(fake: FakeAWS, exporters: Exporters) -> Iterator[DaemonProcess]:
    element = {"enabled": True, "region": "us-east-1", "port": exporters.port,
               "refresh-interval": "1s"}
    config = {"http": {"log-enabled": False},
              "ec2": [{**element, "id": "prod", "access-key": ACCESS_KEY,
                       "secret-key": SECRET_KEY},
                      {**element, "id": "role"},
                      {**element, "id": "off", "enabled": False},
                      {**element, "id": "spare", "access-key": SPARE_KEY,
                       "secret-key": SPARE_SECRET}],
              "scraper": [scraper_element(), naming("role")]}
    with DaemonProcess(config, env=fake.env()) as process:
        scrape_task(process.url)
        yield process
        process.stop()


def shown(daemon: DaemonProcess, id: str) -> list[dict[str, Any]] | None:
    response = httpx.get(f"{daemon.url}{API}/discovery/ec2/{id}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return list(response.json()["groups"])


def test_instances_are_shown_with_prometheus_labels(daemon: DaemonProcess, fake: FakeAWS,
                                                    exporters: Exporters) -> None:
    want = expected_groups(exporters.port)
    wait_until(lambda: shown(daemon, "prod") == want, 20,
               f"ec2/prod groups, have {shown(daemon, 'prod')}")
    assert shown(daemon, "off") is None
    assert first_lookup(fake) == KAPACITOR_1_5_7["lookup"]


def test_instance_role_credentials(daemon: DaemonProcess, fake: FakeAWS,
                                   exporters: Exporters) -> None:
    """An element without keys signs with the role the metadata service hands out
    (IMDSv2), with its session token."""
    wait_until(lambda: shown(daemon, "role") == expected_groups(exporters.port), 20,
               "ec2/role groups")
    with fake.lock:
        by_role = [r for r in fake.requests if r.access_key == ROLE_KEY]
        assert by_role and all(r.valid and r.token == ROLE_TOKEN for r in by_role)
        assert fake.metadata_requests[0] == "PUT /latest/api/token ttl=21600"


def test_service_tests_answer_as_kapacitor(daemon: DaemonProcess) -> None:
    url = f"{daemon.url}{API}/service-tests/ec2"
    for id in ("prod", "off", "nope"):
        answer = httpx.post(url, json={"id": id}, timeout=40)
        assert answer.status_code == 200, answer.text
        assert answer.json() == KAPACITOR_1_5_7["service tests"][id]


def test_scraper_gets_what_the_instances_serve(daemon: DaemonProcess,
                                               exporters: Exporters) -> None:
    want = KAPACITOR_1_5_7["scraped"]
    assert want == sorted(f"127.0.0.{n}:<port>" for n in (1, 2))
    got = lambda: [i.replace(f":{exporters.port}", ":<port>")  # noqa: E731
                   for i in scraped(daemon.url, "load")]
    wait_until(lambda: got() == want, 20, f"both instances scraped, have {got()}")
    out = httpx.get(f"{daemon.url}{API}/tasks/load/out").json()
    for series in out["series"]:
        assert series["values"][0][series["columns"].index("value")] == 0.42
        assert sorted(series.get("tags", {})) == KAPACITOR_1_5_7["tag keys"]


def test_config_override_moves_the_targets(daemon: DaemonProcess,
                                           exporters: Exporters) -> None:
    response = httpx.post(f"{daemon.url}{API}/config/ec2/role", json={"set": {"port": 9200}})
    assert response.status_code == 204, response.text
    moved = expected_groups(exporters.port)
    for group in moved:
        group["targets"] = [t.replace(f":{exporters.port}", ":9200") for t in group["targets"]]
    wait_until(lambda: shown(daemon, "role") == moved, 20, "ec2/role moved to port 9200")
    assert shown(daemon, "prod") == expected_groups(exporters.port)


def test_element_runs_only_while_a_scraper_names_it(daemon: DaemonProcess, fake: FakeAWS,
                                                    exporters: Exporters) -> None:
    """As in Kapacitor, an enabled element no [[scraper]] names looks nothing up (its
    keys sign no request) and is not shown; a scraper added by a config override starts
    it."""
    def by_spare() -> list[Any]:
        with fake.lock:
            return [r for r in fake.requests if r.access_key == SPARE_KEY]

    wait_until(lambda: shown(daemon, "prod") == expected_groups(exporters.port), 20,
               "ec2/prod groups")
    time.sleep(1.5)  # the other elements (refresh-interval 1s) have looked up again
    assert shown(daemon, "spare") is None
    assert by_spare() == []
    response = httpx.post(f"{daemon.url}{API}/config/scraper", json={"add": naming("spare")})
    assert response.status_code == 204, response.text
    wait_until(lambda: shown(daemon, "spare") == expected_groups(exporters.port), 20,
               f"ec2/spare groups, have {shown(daemon, 'spare')}")
    requests = by_spare()
    assert requests and all(r.valid and r.params["Action"] == "DescribeInstances"
                            for r in requests)


def record_kapacitor(binary: str) -> dict[str, Any]:
    """Run kapacitord 1.5.7 with the same [[ec2]] elements and scraper against the fake
    and return what it asked, answered and scraped."""
    from tests.compat.oracle import Kapacitor

    workdir = tempfile.mkdtemp(prefix="ec2-discovery-oracle-")
    ca, cert, key = make_certificates(workdir)
    exporters = Exporters()
    out: dict[str, Any] = {}
    with FakeAWS(pages=pages()) as fake:
        relay = TLSRelay(RELAY_ADDRESS, ("127.0.0.1", fake.http.server_address[1]), cert,
                         key)
        # kapacitord 1.5.7 gives the elements of a config file no defaults (a zero
        # refresh-interval panics its ticker): every key is given
        conf = "".join(f"""
[[ec2]]
  enabled = {str(enabled).lower()}
  id = "{id}"
  region = "us-east-1"
  access-key = "{ACCESS_KEY}"
  secret-key = "{SECRET_KEY}"
  port = {exporters.port}
  refresh-interval = "1s"
""" for id, enabled in (("prod", True), ("off", False))) + """
[[scraper]]
  enabled = true
  name = "ec2scrape"
  discoverer-id = "prod"
  discoverer-service = "ec2"
  db = "ec2db"
  rp = "autogen"
  type = "prometheus"
  scheme = "http"
  metrics-path = "/metrics"
  scrape-interval = "1s"
  scrape-timeout = "1s"
"""
        saved = dict(os.environ)
        os.environ.update({"SSL_CERT_FILE": ca, "AWS_EC2_METADATA_DISABLED": "true"})
        try:
            server = Kapacitor(namespaced_binary(workdir, binary, ca), extra_conf=conf)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        try:
            with fake.lock:
                fake.requests.clear()
            out["service tests"] = {
                id: httpx.post(f"{server.url}{API}/service-tests/ec2", json={"id": id},
                               timeout=60).json() for id in ("prod", "off", "nope")}
            out["lookup"] = first_lookup(fake)
            scrape_task(server.url)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and len(scraped(server.url, "load")) < 2:
                time.sleep(0.2)
            out["scraped"] = [i.replace(f":{exporters.port}", ":<port>")
                              for i in scraped(server.url, "load")]
            series = httpx.get(f"{server.url}{API}/tasks/load/out").json()["series"]
            out["tag keys"] = sorted(series[0].get("tags", {}))
        finally:
            server.close()
            relay.close()
            exporters.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kapacitord", default="/opt/kbin/kapacitord")
    args = parser.parse_args(argv)
    print(json.dumps(record_kapacitor(args.kapacitord), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())


"""``|ec2Autoscale()`` through the daemon against a local server answering as EC2 Auto
Scaling (tests/integration/fake_aws.py): the requests kapa-core makes (Action, Version,
parameters, a valid SigV4 signature), the points it emits, its statistics, the errors it
logs and the tasks it refuses.

The expected data below was taken from the real Kapacitor 1.5.7 (kapacitord) run on the
same scripts, points and fake answers: its AWS SDK cannot be given an endpoint, so it ran
in a mount namespace whose /etc/hosts sends the AWS host names to a local relay that ends
TLS with a certificate of a throw-away CA (SSL_CERT_FILE) and hands the requests to the
fake (fake_aws.py; needs root). Regenerate it with

    python -m tests.integration.test_ec2_autoscale --kapacitord BIN
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pprint import pformat
from typing import Any

import httpx
import pytest

from kapa_core.testing import DaemonProcess, wait_until
from tests.integration.fake_aws import (
    ACCESS_KEY,
    RELAY_ADDRESS,
    SECRET_KEY,
    FakeAWS,
    TLSRelay,
    describe_instances_xml,
    make_certificates,
    namespaced_binary,
)

pytestmark = pytest.mark.integration

DBRP = [{"db": "mydb", "rp": "myrp"}]
GROUPS = {"web": 3, "api": 5, "busy": 4}
FAILING = {"busy": (400, "ScalingActivityInProgress",
                    "Scaling activity 1234 is in progress and blocks this action.")}


@dataclass
class Scenario:
    name: str
    script: str
    points: str = ""
    groups: dict[str, int] = field(default_factory=lambda: dict(GROUPS))


SCENARIOS = [
    # Group names from a tag, renamed in the output; min/max bounds; cooldowns in both
    # directions; a group AWS does not list (capacity 0, then SetDesiredCapacity refused);
    # a group whose scaling activity blocks the change; a point without the tag.
    Scenario("ec2_tag_cooldowns", """
stream
    |from()
        .measurement('load')
        .groupBy('group')
    |ec2Autoscale()
        .cluster('prod')
        .groupNameTag('group')
        .outputGroupNameTag('asg')
        .replicas(lambda: "want")
        .min(2)
        .max(12)
        .increaseCooldown(3s)
        .decreaseCooldown(2s)
    |httpOut('out')
""", """\
load,group=web want=4i 31536000
load,group=api want=7i 31536000
load,group=web want=6i 31536001
load,group=api want=3i 31536001
load,group=missing want=3i 31536002
load,group=busy want=6i 31536002
load,group=web want=20i 31536004
load,group=api want=0i 31536005
load,group=web want=1i 31536006
load,group=web want=3i 31536007
load want=5i 31536008
"""),
    # A fixed group name: no output tag unless asked for; the count computed from a
    # float field. (A point without the field is an error in both, but the expression
    # engine words a missing value its own way: not compared here.)
    Scenario("ec2_fixed_name", """
stream
    |from()
        .measurement('load')
        .groupBy('host')
    |ec2Autoscale()
        .cluster('prod')
        .groupName('web')
        .replicas(lambda: int("cpu" / 10.0))
    |httpOut('out')
""", """\
load,host=h1 cpu=55.0 31536000
load,host=h2 cpu=81.0 31536001
load,host=h1 cpu=7.0 31536003
"""),
    # The group tag names the output tag when outputGroupNameTag is not given.
    Scenario("ec2_tag_default_output", """
stream
    |from()
        .measurement('load')
    |ec2Autoscale()
        .cluster('prod')
        .groupNameTag('group')
        .replicas(lambda: "want")
    |httpOut('out')
""", """\
load,group=api want=6i 31536000
load,group=web want=1i 31536001
"""),
    Scenario("ec2_unknown_cluster", """
stream
    |from()
    |ec2Autoscale()
        .cluster('nope')
        .groupName('web')
        .replicas(lambda: 1)
"""),
    Scenario("ec2_disabled_cluster", """
stream
    |from()
    |ec2Autoscale()
        .cluster('off')
        .groupName('web')
        .replicas(lambda: 1)
"""),
]

# Kapacitor logs "error handling point", kapa-core "error processing data"
_ERR = re.compile(r'\bmsg="(error handling point|error batch handling point|error '
                  r'processing data)".*?\berr=("(?:[^"\\]|\\.)*"|\S+)')


def point_errors(log: str, task: str) -> list[str]:
    """The ``err`` of each "error handling point" log line of ``task``, in order."""
    found = []
    for line in log.splitlines():
        if f"task={task} " not in line and not line.endswith(f"task={task}"):
            continue
        m = _ERR.search(line)
        if m:
            value = m.group(2)
            found.append(json.loads(value, strict=False) if value.startswith('"')
                         else value)
    return found


def _stats(task: dict[str, Any]) -> str:
    stats = (task.get("stats") or {}).get("node-stats") or {}
    for values in stats.values():
        values.pop("avg_exec_time_ns", None)
    return json.dumps(stats, sort_keys=True)


def collect(client: httpx.Client, url: str, s: Scenario, fake: FakeAWS,
            log: Callable[[], str]) -> dict[str, Any]:
    r = client.get(f"{url}/kapacitor/v1/tasks/{s.name}/out")
    task = client.get(f"{url}/kapacitor/v1/tasks/{s.name}").json()
    with fake.lock:
        requests = [r for r in fake.requests if r.service == "autoscaling"]
        signed = sorted({f"{r.signed_headers} valid={r.valid} key={r.access_key} "
                         f"type={r.content_type}" for r in requests})
    return {"httpOut": r.text if r.status_code == 200 else f"status {r.status_code}",
            "stats": _stats(task), "error": task.get("error", ""),
            "requests": [c for c in fake.calls() if c.startswith("autoscaling ")],
            "signing": signed, "groups": dict(fake.groups),
            "point errors": point_errors(log(), s.name)}


def run(url: str, s: Scenario, fake: FakeAWS, log: Callable[[], str],
        expected: dict[str, Any] | None = None, timeout: float = 10.0) -> dict[str, Any]:
    with fake.lock:
        fake.requests.clear()
        fake.groups = dict(s.groups)
        fake.failing = dict(FAILING)
        fake.pages = {"": describe_instances_xml([])}
    with httpx.Client(timeout=30) as client:
        client.delete(f"{url}/kapacitor/v1/tasks/{s.name}")
        try:
            r = client.post(f"{url}/kapacitor/v1/tasks", json={
                "id": s.name, "type": "stream", "status": "enabled", "script": s.script,
                "dbrps": DBRP})
            if r.status_code != 200:
                return {"refused": r.json().get("error", r.text)}
            r = client.post(f"{url}/write", params={"db": "mydb", "rp": "myrp",
                                                     "precision": "s"},
                            content=s.points.encode())
            assert r.status_code == 204, r.text
            deadline = time.monotonic() + timeout
            last, since = collect(client, url, s, fake, log), time.monotonic()
            while time.monotonic() < deadline:
                time.sleep(0.1)
                now = collect(client, url, s, fake, log)
                if expected is not None and now == expected:
                    return now
                if now != last:
                    last, since = now, time.monotonic()
                elif expected is None and time.monotonic() - since >= 1.5:
                    break
            return last
        finally:
            client.delete(f"{url}/kapacitor/v1/tasks/{s.name}")


def kapa_config() -> dict[str, Any]:
    return {"http": {"log-enabled": False}, "logging": {"level": "INFO"},
            "ec2": [{"enabled": True, "id": "prod", "region": "us-east-1",
                     "access-key": ACCESS_KEY, "secret-key": SECRET_KEY},
                    {"enabled": False, "id": "off", "region": "us-east-1"}]}


KAPACITOR_TOML = f"""
[logging]
  level = "INFO"
[[ec2]]
  enabled = true
  id = "prod"
  region = "us-east-1"
  access-key = "{ACCESS_KEY}"
  secret-key = "{SECRET_KEY}"
[[ec2]]
  enabled = false
  id = "off"
  region = "us-east-1"
"""

# Taken from kapacitord 1.5.7 (see the module's docstring).
EXPECTED: dict[str, dict[str, Any]] = {'ec2_disabled_cluster': {'refused': 'cannot use the EC2Autoscale node, could not create ec2 '
                                     'client: service is not enabled'},
 'ec2_fixed_name': {'error': '',
                    'groups': {'api': 5, 'busy': 4, 'web': 1},
                    'httpOut': '{"series":[{"name":"load","tags":{"host":"h1"},"columns":["time","new","old"],"values":[["1971-01-01T00:00:03Z",1,8]]},{"name":"load","tags":{"host":"h2"},"columns":["time","new","old"],"values":[["1971-01-01T00:00:01Z",8,5]]}]}',
                    'point errors': [],
                    'requests': ['autoscaling Action=DescribeAutoScalingGroups '
                                 'AutoScalingGroupNames.member.1=web',
                                 'autoscaling Action=SetDesiredCapacity AutoScalingGroupName=web '
                                 'DesiredCapacity=5 HonorCooldown=false',
                                 'autoscaling Action=SetDesiredCapacity AutoScalingGroupName=web '
                                 'DesiredCapacity=8 HonorCooldown=false',
                                 'autoscaling Action=SetDesiredCapacity AutoScalingGroupName=web '
                                 'DesiredCapacity=1 HonorCooldown=false'],
                    'signing': ['content-length;content-type;host;x-amz-date valid=True '
                                'key=AKIDEXAMPLE type=application/x-www-form-urlencoded; '
                                'charset=utf-8'],
                    'stats': '{"ec2_autoscale2": {"collected": 3, "cooldown_drops": 0, '
                             '"decrease_events": 1, "emitted": 3, "errors": 0, "increase_events": '
                             '2, "working_cardinality": 2}, "from1": {"collected": 3, "emitted": '
                             '3, "errors": 0, "working_cardinality": 0}, "http_out3": '
                             '{"collected": 3, "emitted": 0, "errors": 0, "working_cardinality": '
                             '2}, "stream0": {"collected": 3, "emitted": 3, "errors": 0, '
                             '"working_cardinality": 0}}'},
 'ec2_tag_cooldowns': {'error': '',
                       'groups': {'api': 2, 'busy': 4, 'web': 3},
                       'httpOut': '{"series":[{"name":"load","tags":{"asg":"web","group":"web"},"columns":["time","new","old"],"values":[["1971-01-01T00:00:07Z",3,2]]},{"name":"load","tags":{"asg":"api","group":"api"},"columns":["time","new","old"],"values":[["1971-01-01T00:00:05Z",2,3]]}]}',
                       'point errors': ['failed to apply scaling event: failed to set new replica '
                                        'count for "missing": Failed to set desired capacity '
                                        'ValidationError: AutoScalingGroup name not found - null\n'
                                        '\tstatus code: 400, request id: as-err-1: '
                                        'ValidationError: AutoScalingGroup name not found - null\n'
                                        '\tstatus code: 400, request id: as-err-1',
                                        'failed to apply scaling event: failed to set new replica '
                                        'count for "busy": Failed to set desired capacity '
                                        '"ScalingActivityInProgress": ScalingActivityInProgress: '
                                        'Scaling activity 1234 is in progress and blocks this '
                                        'action.\n'
                                        '\tstatus code: 400, request id: as-err-1',
                                        'could not determine the name of the resource'],
                       'requests': ['autoscaling Action=DescribeAutoScalingGroups '
                                    'AutoScalingGroupNames.member.1=web',
                                    'autoscaling Action=SetDesiredCapacity '
                                    'AutoScalingGroupName=web DesiredCapacity=4 '
                                    'HonorCooldown=false',
                                    'autoscaling Action=DescribeAutoScalingGroups '
                                    'AutoScalingGroupNames.member.1=api',
                                    'autoscaling Action=SetDesiredCapacity '
                                    'AutoScalingGroupName=api DesiredCapacity=7 '
                                    'HonorCooldown=false',
                                    'autoscaling Action=SetDesiredCapacity '
                                    'AutoScalingGroupName=api DesiredCapacity=3 '
                                    'HonorCooldown=false',
                                    'autoscaling Action=DescribeAutoScalingGroups '
                                    'AutoScalingGroupNames.member.1=missing',
                                    'autoscaling Action=SetDesiredCapacity '
                                    'AutoScalingGroupName=missing DesiredCapacity=3 '
                                    'HonorCooldown=false',
                                    'autoscaling Action=DescribeAutoScalingGroups '
                                    'AutoScalingGroupNames.member.1=busy',
                                    'autoscaling Action=SetDesiredCapacity '
                                    'AutoScalingGroupName=busy DesiredCapacity=6 '
                                    'HonorCooldown=false',
                                    'autoscaling Action=SetDesiredCapacity '
                                    'AutoScalingGroupName=web DesiredCapacity=12 '
                                    'HonorCooldown=false',
                                    'autoscaling Action=SetDesiredCapacity '
                                    'AutoScalingGroupName=api DesiredCapacity=2 '
                                    'HonorCooldown=false',
                                    'autoscaling Action=SetDesiredCapacity '
                                    'AutoScalingGroupName=web DesiredCapacity=2 '
                                    'HonorCooldown=false',
                                    'autoscaling Action=SetDesiredCapacity '
                                    'AutoScalingGroupName=web DesiredCapacity=3 '
                                    'HonorCooldown=false'],
                       'signing': ['content-length;content-type;host;x-amz-date valid=True '
                                   'key=AKIDEXAMPLE type=application/x-www-form-urlencoded; '
                                   'charset=utf-8'],
                       'stats': '{"ec2_autoscale2": {"collected": 11, "cooldown_drops": 1, '
                                '"decrease_events": 3, "emitted": 7, "errors": 3, '
                                '"increase_events": 4, "working_cardinality": 5}, "from1": '
                                '{"collected": 11, "emitted": 11, "errors": 0, '
                                '"working_cardinality": 0}, "http_out3": {"collected": 7, '
                                '"emitted": 0, "errors": 0, "working_cardinality": 2}, "stream0": '
                                '{"collected": 11, "emitted": 11, "errors": 0, '
                                '"working_cardinality": 0}}'},
 'ec2_tag_default_output': {'error': '',
                            'groups': {'api': 6, 'busy': 4, 'web': 1},
                            'httpOut': '{"series":[{"name":"load","tags":{"group":"web"},"columns":["time","new","old"],"values":[["1971-01-01T00:00:01Z",1,3]]}]}',
                            'point errors': [],
                            'requests': ['autoscaling Action=DescribeAutoScalingGroups '
                                         'AutoScalingGroupNames.member.1=api',
                                         'autoscaling Action=SetDesiredCapacity '
                                         'AutoScalingGroupName=api DesiredCapacity=6 '
                                         'HonorCooldown=false',
                                         'autoscaling Action=DescribeAutoScalingGroups '
                                         'AutoScalingGroupNames.member.1=web',
                                         'autoscaling Action=SetDesiredCapacity '
                                         'AutoScalingGroupName=web DesiredCapacity=1 '
                                         'HonorCooldown=false'],
                            'signing': ['content-length;content-type;host;x-amz-date valid=True '
                                        'key=AKIDEXAMPLE type=application/x-www-form-urlencoded; '
                                        'charset=utf-8'],
                            'stats': '{"ec2_autoscale2": {"collected": 2, "cooldown_drops": 0, '
                                     '"decrease_events": 1, "emitted": 2, "errors": 0, '
                                     '"increase_events": 1, "working_cardinality": 1}, "from1": '
                                     '{"collected": 2, "emitted": 2, "errors": 0, '
                                     '"working_cardinality": 0}, "http_out3": {"collected": 2, '
                                     '"emitted": 0, "errors": 0, "working_cardinality": 1}, '
                                     '"stream0": {"collected": 2, "emitted": 2, "errors": 0, '
                                     '"working_cardinality": 0}}'},
 'ec2_unknown_cluster': {'refused': 'cannot use the EC2Autoscale node, could not create ec2 '
                                    'client: unknown ec2 region "nope", cannot get client'}}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAWS]:
    with FakeAWS() as server:
        yield server


@pytest.fixture(scope="module")
def daemon(fake: FakeAWS) -> Iterator[DaemonProcess]:
    env = {**fake.env(), "AWS_EC2_METADATA_DISABLED": "true"}
    with DaemonProcess(kapa_config(), env=env) as d:
        yield d


def test_element_for_autoscale_only_makes_no_discovery_calls(daemon: DaemonProcess,
                                                             fake: FakeAWS) -> None:
    """The [[ec2]] element no [[scraper]] names serves ec2Autoscale only: as in Kapacitor
    no discoverer runs for it, so no DescribeInstances is asked and GET
    /kapacitor/v1/discovery does not show it (the first lookup of a running discoverer
    would be made at once)."""
    time.sleep(1.0)
    with fake.lock:
        assert [r.params.get("Action") for r in fake.requests if r.service == "ec2"] == []
    assert httpx.get(f"{daemon.url}/kapacitor/v1/discovery/ec2/prod").status_code == 404


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_ec2_autoscale_like_kapacitor(daemon: DaemonProcess, fake: FakeAWS,
                                      scenario: Scenario) -> None:
    expected = EXPECTED[scenario.name]
    got = run(daemon.url, scenario, fake, daemon.log, expected)
    assert got == expected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kapacitord", default="/opt/kbin/kapacitord")
    args = parser.parse_args(argv)
    from tests.compat.oracle import Kapacitor

    workdir = tempfile.mkdtemp(prefix="ec2-oracle-")
    ca, cert, key = make_certificates(workdir)
    expected: dict[str, Any] = {}
    with FakeAWS() as fake:
        relay = TLSRelay(RELAY_ADDRESS, ("127.0.0.1", fake.http.server_address[1]), cert,
                         key)
        saved = dict(os.environ)
        os.environ.update({"SSL_CERT_FILE": ca, "AWS_EC2_METADATA_DISABLED": "true"})
        try:
            server = Kapacitor(namespaced_binary(workdir, args.kapacitord, ca),
                               extra_conf=KAPACITOR_TOML.replace(
                                   "[logging]\n  level = \"INFO\"\n", ""))
        finally:
            os.environ.clear()
            os.environ.update(saved)
        log_path = os.path.join(server.dir, "kapacitor.log")

        def log() -> str:
            with open(log_path, encoding="utf-8", errors="replace") as f:
                return f.read()

        try:
            for s in SCENARIOS:
                expected[s.name] = run(server.url, s, fake, log)
        finally:
            server.close()
            relay.close()
        print("# Taken from kapacitord 1.5.7 (see the module's docstring).")
        print("EXPECTED: dict[str, dict[str, Any]] = " + pformat(expected, width=100))
        with DaemonProcess(kapa_config(), env={**fake.env(),
                                               "AWS_EC2_METADATA_DISABLED": "true"}) as d:
            for s in SCENARIOS:
                got = run(d.url, s, fake, d.log, expected[s.name], timeout=5)
                if got != expected[s.name]:
                    print(f"kapa-core differs on {s.name}:\n{pformat(got, width=100)}",
                          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())


def test_running_task_follows_new_keys(daemon: DaemonProcess, fake: FakeAWS) -> None:
    """A config override of the element's keys reaches running ec2Autoscale tasks (a
    kapa-core difference: Kapacitor 1.5.7's client keeps the keys it started with)."""
    with fake.lock:
        fake.requests.clear()
        fake.groups = {"web": 3}
        fake.secrets["AKIDSECOND"] = "second/secret"
    url = daemon.url
    script = SCENARIOS[2].script
    with httpx.Client(base_url=url, timeout=30) as c:
        c.delete("/kapacitor/v1/tasks/keys")
        try:
            r = c.post("/kapacitor/v1/tasks", json={"id": "keys", "type": "stream",
                                                    "status": "enabled", "script": script,
                                                    "dbrps": DBRP})
            assert r.status_code == 200, r.text
            c.post("/write?db=mydb&rp=myrp&precision=s",
                   content=b"load,group=web want=4i 31536000").raise_for_status()
            wait_until(lambda: fake.groups["web"] == 4, 10, "the first change")
            r = c.post("/kapacitor/v1/config/ec2/prod", json={
                "set": {"access-key": "AKIDSECOND", "secret-key": "second/secret"}})
            assert r.status_code == 204, r.text
            c.post("/write?db=mydb&rp=myrp&precision=s",
                   content=b"load,group=web want=6i 31536001").raise_for_status()
            wait_until(lambda: fake.groups["web"] == 6, 10, "the second change")
        finally:
            c.delete("/kapacitor/v1/tasks/keys")
            c.post("/kapacitor/v1/config/ec2/prod", json={
                "set": {"access-key": ACCESS_KEY, "secret-key": SECRET_KEY}})
    with fake.lock:
        used = [(r.params["Action"], r.access_key, r.valid) for r in fake.requests
                if r.service == "autoscaling"]
    assert used == [("DescribeAutoScalingGroups", ACCESS_KEY, True),
                    ("SetDesiredCapacity", ACCESS_KEY, True),
                    ("SetDesiredCapacity", "AKIDSECOND", True)]

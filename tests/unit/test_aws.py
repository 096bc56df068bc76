"""kapa_core.aws: SigV4 against AWS's published examples, the credential chain, the
endpoints, and the EC2 / Auto Scaling clients and the [[ec2]] discoverer against a local
server answering as those APIs document (tests/integration/fake_aws.py)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from kapa_plugins.discovery.ec2 import (
    EC2Config,
    EC2Discoverer,
    kapa_config_sections,
    sanitize_label_name,
)

from kapa_core.aws import (
    AutoScalingClient,
    AWSError,
    CredentialChain,
    Credentials,
    EC2Client,
    endpoint,
    sign,
    signing_key,
)
from kapa_core.cloud import CloudError
from kapa_core.discovery import DiscoveryContext, DiscoveryRegistry
from kapa_core.errors import KapaError
from kapa_core.logs import Logger
from kapa_core.services import ServiceContext
from tests.integration.fake_aws import (
    ACCESS_KEY,
    IMDS_TOKEN,
    ROLE_KEY,
    ROLE_SECRET,
    ROLE_TOKEN,
    SECRET_KEY,
    FakeAWS,
    describe_instances_xml,
    instance_xml,
)

# -- Signature Version 4: the examples AWS publishes with their inputs and signatures --

EXAMPLE = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
AT = datetime.datetime(2015, 8, 30, 12, 36, tzinfo=datetime.UTC)


@pytest.mark.parametrize(("url", "service", "headers", "signed", "signature"), [
    # the signature test suite's get-vanilla
    ("https://example.amazonaws.com/", "service", {}, "host;x-amz-date",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    # get-vanilla-query-order-key-case: parameters sorted before signing
    ("https://example.amazonaws.com/?Param2=value2&Param1=value1", "service", {},
     "host;x-amz-date", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
    # the general reference's IAM ListUsers example
    ("https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08", "iam",
     {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
     "content-type;host;x-amz-date",
     "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"),
])
def test_sigv4_published_examples(url: str, service: str, headers: dict[str, str],
                                  signed: str, signature: str) -> None:
    out = sign("GET", url, headers, b"", EXAMPLE, "us-east-1", service, AT)
    assert out["X-Amz-Date"] == "20150830T123600Z"
    assert out["Authorization"] == (
        f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/{service}/"
        f"aws4_request, SignedHeaders={signed}, Signature={signature}")


def test_sigv4_signing_key_and_s3_get_object_example() -> None:
    assert signing_key(EXAMPLE.secret_key, "20150830", "us-east-1", "iam").hex() == \
        "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
    # Amazon S3's header-signing example (GET /test.txt with a Range)
    creds = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    out = sign("GET", "https://examplebucket.s3.amazonaws.com/test.txt", {
        "Range": "bytes=0-9", "x-amz-content-sha256":
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}, b"", creds,
        "us-east-1", "s3", datetime.datetime(2013, 5, 24, tzinfo=datetime.UTC))
    assert out["Authorization"].endswith(
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")


def test_sigv4_session_token_is_sent_and_signed() -> None:
    out = sign("POST", "http://127.0.0.1:8080/", {}, b"x", Credentials("a", "b", "tok"),
               "eu-west-1", "ec2", AT)
    assert out["X-Amz-Security-Token"] == "tok"
    assert out["Host"] == "127.0.0.1:8080"
    assert "SignedHeaders=host;x-amz-date;x-amz-security-token," in out["Authorization"]


# -- endpoints ---------------------------------------------------------------------------

def test_endpoints_and_their_overrides() -> None:
    assert endpoint("ec2", "us-east-1", {}) == "https://ec2.us-east-1.amazonaws.com"
    assert endpoint("autoscaling", "cn-north-1", {}) == \
        "https://autoscaling.cn-north-1.amazonaws.com.cn"
    env = {"AWS_ENDPOINT_URL": "http://all:1/", "AWS_ENDPOINT_URL_EC2": "http://ec2:2"}
    assert endpoint("ec2", "us-east-1", env) == "http://ec2:2"
    assert endpoint("autoscaling", "us-east-1", env) == "http://all:1"
    env["AWS_ENDPOINT_URL_AUTO_SCALING"] = "http://as:3"
    assert endpoint("autoscaling", "us-east-1", env) == "http://as:3"
    env["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"] = "true"
    assert endpoint("ec2", "us-east-1", env) == "https://ec2.us-east-1.amazonaws.com"


# -- credentials -------------------------------------------------------------------------

@pytest.fixture
def fake() -> Iterator[FakeAWS]:
    with FakeAWS() as server:
        yield server


async def _creds(chain: CredentialChain) -> Credentials:
    async with httpx.AsyncClient() as http:
        return await chain.get(http)


async def test_chain_prefers_the_sections_keys(fake: FakeAWS) -> None:
    chain = CredentialChain("k", "s", env={"AWS_ACCESS_KEY_ID": "e", "AWS_SECRET_ACCESS_KEY":
                                           "f", **fake.env()})
    assert await _creds(chain) == Credentials("k", "s")
    assert fake.metadata_requests == []


async def test_chain_environment(fake: FakeAWS) -> None:
    env = {"AWS_ACCESS_KEY_ID": "e", "AWS_SECRET_ACCESS_KEY": "f", "AWS_SESSION_TOKEN": "t"}
    assert await _creds(CredentialChain(env=env)) == Credentials("e", "f", "t")
    # the older names, as the SDK reads them
    assert await _creds(CredentialChain(env={"AWS_ACCESS_KEY": "o", "AWS_SECRET_KEY": "p"})
                        ) == Credentials("o", "p")


async def test_chain_shared_credentials_file(tmp_path: Path, fake: FakeAWS) -> None:
    path = tmp_path / "credentials"
    path.write_text("[default]\naws_access_key_id = d1\naws_secret_access_key = d2\n\n"
                    "[ops]\naws_access_key_id=o1\naws_secret_access_key=o2\n"
                    "aws_session_token=o3\n")
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(path), **fake.env()}
    assert await _creds(CredentialChain(env=env)) == Credentials("d1", "d2")
    assert await _creds(CredentialChain(profile="ops", env=env)) == Credentials("o1", "o2", "o3")
    assert await _creds(CredentialChain(env={**env, "AWS_PROFILE": "ops"})) == \
        Credentials("o1", "o2", "o3")
    # HOME's ~/.aws/credentials when no file is named
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "credentials").write_text(
        "[default]\naws_access_key_id=h1\naws_secret_access_key=h2\n")
    assert await _creds(CredentialChain(env={"HOME": str(tmp_path), **fake.env()})) == \
        Credentials("h1", "h2")
    # a profile the file lacks: on to the instance role
    got = await _creds(CredentialChain(profile="nope", env=env))
    assert got.access_key == ROLE_KEY


async def test_chain_instance_role_imdsv2(fake: FakeAWS) -> None:
    chain = CredentialChain(env=fake.env())
    got = await _creds(chain)
    assert (got.access_key, got.secret_key, got.token) == (ROLE_KEY, ROLE_SECRET, ROLE_TOKEN)
    assert fake.metadata_requests == [
        "PUT /latest/api/token ttl=21600",
        f"GET /latest/meta-data/iam/security-credentials/ token={IMDS_TOKEN}",
        f"GET /latest/meta-data/iam/security-credentials/kapa-role token={IMDS_TOKEN}"]
    await _creds(chain)  # kept until shortly before they expire
    assert len(fake.metadata_requests) == 3


async def test_chain_instance_role_imdsv1_fallback(fake: FakeAWS) -> None:
    fake.imdsv2 = False
    got = await _creds(CredentialChain(env=fake.env()))
    assert got.access_key == ROLE_KEY
    assert fake.metadata_requests[1:] == [
        "GET /latest/meta-data/iam/security-credentials/ token=",
        "GET /latest/meta-data/iam/security-credentials/kapa-role token="]


async def test_chain_without_credentials(fake: FakeAWS) -> None:
    env = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:1"}
    with pytest.raises(AWSError) as info:
        await _creds(CredentialChain(env=env))
    assert str(info.value) == (
        "NoCredentialProviders: no valid providers in chain. Deprecated.\n\t"
        "For verbose messaging see aws.Config.CredentialsChainVerboseErrors")
    with pytest.raises(AWSError):
        await _creds(CredentialChain(env={"AWS_EC2_METADATA_DISABLED": "true",
                                          **fake.env()}))
    assert fake.metadata_requests == []


# -- EC2 ---------------------------------------------------------------------------------

def two_pages() -> dict[str, str]:
    return {
        "": describe_instances_xml([[
            instance_xml("i-1", "10.0.0.1", public_ip="54.1.1.1",
                         public_dns="ec2-54-1-1-1.compute-1.amazonaws.com", vpc="vpc-9",
                         subnets=("subnet-a", "subnet-b", "subnet-a"),
                         tags=(("Name", "web"), ("aws:team-id", "ops"))),
            instance_xml("i-2", None, state="pending")]], next_token="page2"),
        "page2": describe_instances_xml([[
            instance_xml("i-3", "10.0.0.3", state="stopped", itype="m5.large",
                         zone="us-east-1b")]]),
    }


@dataclass(frozen=True)
class Element:
    region: str = "us-east-1"
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    profile: str = ""


async def test_describe_instances_every_page_signed(fake: FakeAWS) -> None:
    fake.pages = two_pages()
    async with httpx.AsyncClient() as http:
        client = EC2Client(Element(), http, env=fake.env())
        found = await client.describe_instances()
    assert [i.id for i in found] == ["i-1", "i-2", "i-3"]
    assert found[0].subnets == ("subnet-a", "subnet-b")
    assert found[0].tags == (("Name", "web"), ("aws:team-id", "ops"))
    assert found[1].private_ip is None and found[1].public_ip is None
    assert fake.calls() == ["ec2 Action=DescribeInstances",
                            "ec2 Action=DescribeInstances NextToken=page2"]
    for r in fake.requests:
        assert r.valid and r.access_key == ACCESS_KEY and r.path == "/"
        assert r.params["Version"] == "2016-11-15"
        assert r.content_type == "application/x-www-form-urlencoded; charset=utf-8"
        assert r.signed_headers == "content-length;content-type;host;x-amz-date"


async def test_refused_request_as_the_sdk_words_it(fake: FakeAWS) -> None:
    async with httpx.AsyncClient() as http:
        client = EC2Client(Element(secret_key="wrong"), http, env=fake.env())
        with pytest.raises(AWSError) as info:
            await client.describe_instances()
    assert str(info.value) == (
        "AuthFailure: The request signature we calculated does not match the signature "
        "you provided.\n\tstatus code: 401, request id: ec2-err-1")


async def test_instance_role_credentials_sign_with_their_token(fake: FakeAWS) -> None:
    fake.pages = two_pages()
    async with httpx.AsyncClient() as http:
        client = EC2Client(Element(access_key="", secret_key=""), http, env=fake.env())
        await client.describe_instances()
    assert all(r.valid and r.access_key == ROLE_KEY and r.token == ROLE_TOKEN
               and r.signed_headers == "content-length;content-type;host;x-amz-date;x-amz-security-token"
               for r in fake.requests)


async def test_deny_list_refusal_is_a_failed_request(fake: FakeAWS) -> None:
    def deny(url: str) -> None:
        raise KapaError(f"outgoing connection to {url} denied")

    async with httpx.AsyncClient() as http:
        client = EC2Client(Element(), http, env=fake.env(), check_outgoing=deny)
        with pytest.raises(AWSError) as info:
            await client.describe_instances()
    assert str(info.value) == ("RequestError: send request failed\ncaused by: outgoing "
                               f"connection to {fake.url}/ denied")
    assert fake.requests == []


# -- Auto Scaling ------------------------------------------------------------------------

async def test_autoscaling_group_capacity_and_set(fake: FakeAWS) -> None:
    fake.groups = {"web": 3}
    fake.failing = {"busy": (400, "ScalingActivityInProgress", "activity in progress")}
    async with httpx.AsyncClient() as http:
        client = AutoScalingClient(Element(), http, env=fake.env())
        assert await client.replicas("web") == 3
        assert await client.replicas("nope") == 0  # no such group: 0, as Kapacitor
        await client.set_replicas("web", 5)
        with pytest.raises(CloudError) as info:
            await client.set_replicas("busy", 2)
        assert str(info.value) == (
            'Failed to set desired capacity "ScalingActivityInProgress": '
            "ScalingActivityInProgress: activity in progress\n\t"
            "status code: 400, request id: as-err-1")
        with pytest.raises(CloudError) as info:
            await client.set_replicas("nope", 2)
        error = ("ValidationError: AutoScalingGroup name not found - null\n\t"
                 "status code: 400, request id: as-err-1")
        assert str(info.value) == f"Failed to set desired capacity {error}: {error}"
    assert fake.groups["web"] == 5
    assert fake.calls() == [
        "autoscaling Action=DescribeAutoScalingGroups AutoScalingGroupNames.member.1=web",
        "autoscaling Action=DescribeAutoScalingGroups AutoScalingGroupNames.member.1=nope",
        "autoscaling Action=SetDesiredCapacity AutoScalingGroupName=web DesiredCapacity=5 "
        "HonorCooldown=false",
        "autoscaling Action=SetDesiredCapacity AutoScalingGroupName=busy DesiredCapacity=2 "
        "HonorCooldown=false",
        "autoscaling Action=SetDesiredCapacity AutoScalingGroupName=nope DesiredCapacity=2 "
        "HonorCooldown=false"]
    assert all(r.valid and r.params["Version"] == "2011-01-01" for r in fake.requests)


async def test_autoscaling_describe_error_wording(fake: FakeAWS) -> None:
    async with httpx.AsyncClient() as http:
        client = AutoScalingClient(Element(secret_key="bad"), http, env=fake.env())
        with pytest.raises(CloudError) as info:
            await client.replicas("web")
    error = ("SignatureDoesNotMatch: The request signature we calculated does not match "
             "the signature you provided.\n\tstatus code: 403, request id: as-err-1")
    assert str(info.value) == ('failed to get ec2 autoscaleGroup for "web": failed to '
                               f"create GET request for {error}: {error}")


async def test_server_errors_are_retried(fake: FakeAWS) -> None:
    fake.groups = {"web": 1}
    fake.failing = {"web": (503, "ServiceUnavailable", "try later")}
    async with httpx.AsyncClient() as http:
        client = AutoScalingClient(Element(), http, env=fake.env())
        with pytest.raises(CloudError, match="ServiceUnavailable: try later"):
            await client.set_replicas("web", 2)
    assert len(fake.requests) == 4  # the SDK's three retries


# -- the [[ec2]] discoverer --------------------------------------------------------------

def test_label_names_are_sanitized() -> None:
    assert sanitize_label_name("aws:cloudformation:stack-name") == \
        "aws_cloudformation_stack_name"


async def test_discoverer_publishes_prometheus_labels(fake: FakeAWS,
                                                      monkeypatch: Any) -> None:
    for k, v in fake.env().items():
        monkeypatch.setenv(k, v)
    fake.pages = two_pages()
    registry = DiscoveryRegistry()
    element = EC2Config(enabled=True, id="prod", region="us-east-1", access_key=ACCESS_KEY,
                        secret_key=SECRET_KEY, port=9100)
    context = DiscoveryContext("ec2", element, Logger("t"), id="prod", registry=registry)
    context.open()

    async with trio.open_nursery() as nursery:
        await nursery.start(EC2Discoverer(element, context).serve)
        with trio.fail_after(5):
            while not context.groups():
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    await context.clients.aclose()
    groups = [g.to_json() for g in context.groups()]
    assert groups == [
        {"source": "us-east-1:0", "targets": ["10.0.0.1:9100"], "labels": {
            "__meta_ec2_availability_zone": "us-east-1a",
            "__meta_ec2_instance_id": "i-1",
            "__meta_ec2_instance_state": "running",
            "__meta_ec2_instance_type": "t2.micro",
            "__meta_ec2_private_ip": "10.0.0.1",
            "__meta_ec2_public_dns_name": "ec2-54-1-1-1.compute-1.amazonaws.com",
            "__meta_ec2_public_ip": "54.1.1.1",
            "__meta_ec2_subnet_id": ",subnet-a,subnet-b,",
            "__meta_ec2_tag_Name": "web",
            "__meta_ec2_tag_aws_team_id": "ops",
            "__meta_ec2_vpc_id": "vpc-9"}},
        {"source": "us-east-1:1", "targets": ["10.0.0.3:9100"], "labels": {
            "__meta_ec2_availability_zone": "us-east-1b",
            "__meta_ec2_instance_id": "i-3",
            "__meta_ec2_instance_state": "stopped",
            "__meta_ec2_instance_type": "m5.large",
            "__meta_ec2_private_ip": "10.0.0.3"}}]


def _service(*elements: EC2Config) -> Any:
    section = kapa_config_sections()[0]
    context = ServiceContext("ec2", tuple(elements), None, Logger("t"),
                             lambda db, rp, points: None)
    return section.service(context)


async def test_service_test(fake: FakeAWS, monkeypatch: Any) -> None:
    for k, v in fake.env().items():
        monkeypatch.setenv(k, v)
    fake.pages = two_pages()
    svc = _service(EC2Config(enabled=True, id="prod", region="us-east-1",
                             access_key=ACCESS_KEY, secret_key=SECRET_KEY),
                   EC2Config(enabled=False, id="off", region="us-east-1"))
    assert svc.test_options() == {"id": ""}
    await svc.test({"id": "prod"}, timeout=10)
    assert fake.calls()[0] == "ec2 Action=DescribeInstances"
    for id in ("off", "nope"):
        with pytest.raises(KapaError, match=f'discoverer "{id}" is not enabled or does '
                                            "not exist"):
            await svc.test({"id": id})
    # a failing lookup never answers: Kapacitor's timeout
    bad = _service(EC2Config(enabled=True, id="bad", region="us-east-1",
                             access_key=ACCESS_KEY, secret_key="wrong"))
    with pytest.raises(KapaError, match='timeout waiting for discoverer "bad" to return'):
        await bad.test({"id": "bad"}, timeout=1)

"""[[gce]] discovery against a local server answering as Google's APIs document: the
metadata server's token endpoint, an OAuth 2.0 token endpoint (refresh-token and signed
JWT grants) and the Compute Engine ``instances.list`` method in two pages. Checked: the
requests made (paths, query strings, ``Metadata-Flavor``, form fields, the JWT and its
signature, ``Authorization: Bearer``), instances -> groups and labels as Prometheus'
gce discoverer makes them, credentials search and its failures, token reuse, a failed
refresh keeping the previous targets, the section's service test.

``FakeGoogle`` also serves tests/integration/test_discovery_cloud_vms.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import trio
from kapa_plugins.discovery import gce
from kapa_plugins.discovery.gce import GCEConfig, GCEDiscoverer, instance_groups
from kapa_plugins.discovery.oauth import RSAKey, TokenError, find_google_credentials

from kapa_core.discovery import (
    DiscoveryContext,
    DiscoveryRegistry,
    DiscoveryTestService,
    TargetGroup,
)
from kapa_core.errors import KapaError
from kapa_core.httpclients import HTTPClients
from kapa_core.logs import Logger
from kapa_core.services import ServiceContext
from kapa_core.testing.http import Answer, Recorded, RecordingHTTPServer

# A throw-away 1024-bit test key (openssl genpkey), PKCS#8.
TEST_KEY_PKCS8 = """-----BEGIN PRIVATE KEY-----
MIICdwIBADANBgkqhkiG9w0BAQEFAASCAmEwggJdAgEAAoGBAPQDBhAkgg7ahk4v
KZKo+d0PopAI/mQscxBRCZD3JTFT/AzS4PAh8OzCWndqcPq453qKrIbC1drjEWR1
J66jsUGRdcgyEHJ2vtoX4nWh1Y+BmyrUx65qWgmWniBo++3eojuWEnAc3UK/bGR0
v3iZbxGk854CabVLsLb4FkRXSG4HAgMBAAECgYAPHdDWVyynduozFcDhkQ5Jn5pW
ifgYhJhsPlj1XhozwBwxPy8oMTIXuMKZ+0Ichi/w635cqt1MvhxpuMhIjWOBqWQg
+BxTxAKxxtEDH7h1hJoyXcHwc4MAfGPWoQubQA1riLdqbLbi9clqaCju50hGJfVz
Y/1AbZAKtASgXlnbAQJBAP7gggth5BPiH5JNP0kzO4NDaG8awzBHJNyhgroPGVkj
fHiwzP69Th4HTpIvsdpWtG2pRbykUTsgaQ7AmJDtrOcCQQD1FkKa3z3oYclOrQzv
vPwnuW6qAcbQ7xQufY+A4XY2wt8C9wDvITy408vi2v76Km77ilKiCrljg2ytmf9S
svHhAkAUnKtnqD79rKfI+R5JGS+S6fykH5HxcY91mEouKdJu9wO17vZlE4Ihw42D
HQBRG/nzdGEDZHZ9RZ25Z7Hu5om5AkEAyopq4LI85x5ozqwUVMtJV0rXOYfeViw9
8W2yej/ZAchppHmcPAKru9LMW92/ed43eYkGYQOb0bF6zrzFVAKuAQJBAOLABJ+s
Zw9j7AYdjL7ef7dt3U/TeoHjLiqR6Y46y1EfvOgD25q7znT57MNRSMVhMqJDXn7C
xn12d4RB20hk/js=
-----END PRIVATE KEY-----
"""
#: what ``openssl dgst -sha256 -sign`` gives with that key for b"kapa-core signs this"
OPENSSL_SIGNATURE = (
    "FX1TK0qddpkgZfvFTSZEdIdrC0ze2HFrjQU3MNJtonge3f3+PTXg4l2Vji/gK5Suuh4iV5vaSLShxDkW6oRRLc"
    "6kFSH7egSkuZT/1k3BIILqlUMHKAAPkwtkxG69crjOhAUyWYfFJ+KHuepbwZkUfg9LSye5ksWKdFc5F/luv6Q=")

ZONE_URL = "https://www.googleapis.com/compute/v1/projects/acme/zones/europe-west1-b"
NET_URL = "https://www.googleapis.com/compute/v1/projects/acme/global/networks/default"
SUBNET_URL = ("https://www.googleapis.com/compute/v1/projects/acme/regions/europe-west1/"
              "subnetworks/default")
#: instances.list in two pages (the second asked with pageToken=page-2)
PAGE_1 = {"kind": "compute#instanceList", "id": "projects/acme/zones/europe-west1-b/instances",
          "items": [
              {"kind": "compute#instance", "name": "web-1", "zone": ZONE_URL,
               "status": "RUNNING",
               "tags": {"items": ["http-server", "prod"], "fingerprint": "x"},
               "metadata": {"items": [{"key": "team-name", "value": "ops"},
                                      {"key": "empty"}]},
               "networkInterfaces": [
                   {"network": NET_URL, "subnetwork": SUBNET_URL, "networkIP": "10.132.0.2",
                    "name": "nic0",
                    "accessConfigs": [{"type": "ONE_TO_ONE_NAT", "name": "External NAT",
                                       "natIP": "35.195.1.2"}]},
                   {"network": NET_URL, "networkIP": "10.200.0.9"}]},
              {"kind": "compute#instance", "name": "no-network", "zone": ZONE_URL,
               "status": "TERMINATED", "networkInterfaces": []}],
          "nextPageToken": "page-2"}
PAGE_2 = {"kind": "compute#instanceList",
          "items": [{"kind": "compute#instance", "name": "db-1", "zone": ZONE_URL,
                     "status": "STOPPING",
                     "networkInterfaces": [{"network": NET_URL, "networkIP": "10.132.0.3",
                                            "accessConfigs": [{"type": "OTHER",
                                                               "natIP": "35.1.1.1"}]}]}]}
WEB_1 = {
    "__meta_gce_project": "acme", "__meta_gce_zone": ZONE_URL,
    "__meta_gce_instance_name": "web-1", "__meta_gce_instance_status": "RUNNING",
    "__meta_gce_network": NET_URL, "__meta_gce_subnetwork": SUBNET_URL,
    "__meta_gce_private_ip": "10.132.0.2", "__meta_gce_public_ip": "35.195.1.2",
    "__meta_gce_tags": ",http-server,prod,", "__meta_gce_metadata_team_name": "ops"}
DB_1 = {
    "__meta_gce_project": "acme", "__meta_gce_zone": ZONE_URL,
    "__meta_gce_instance_name": "db-1", "__meta_gce_instance_status": "STOPPING",
    "__meta_gce_network": NET_URL, "__meta_gce_subnetwork": "",
    "__meta_gce_private_ip": "10.132.0.3"}
EXPECTED = [
    TargetGroup(("10.132.0.2:9100",), WEB_1, "GCE_acme_europe-west1-b/web-1"),
    TargetGroup(("10.132.0.3:9100",), DB_1, "GCE_acme_europe-west1-b/db-1"),
]


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_rs256(jwt: str, key: RSAKey) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of ``jwt`` once its RS256 signature checks out with the public
    half of ``key``."""
    head, claims, signature = jwt.split(".")
    size = (key.n.bit_length() + 7) // 8
    encoded = pow(int.from_bytes(b64url_decode(signature), "big"), key.e, key.n).to_bytes(
        size, "big")
    digest = hashlib.sha256(f"{head}.{claims}".encode()).digest()
    assert encoded.startswith(b"\x00\x01\xff") and encoded.endswith(
        bytes.fromhex("3031300d060960864801650304020105000420") + digest), "bad signature"
    return json.loads(b64url_decode(head)), json.loads(b64url_decode(claims))


class FakeGoogle(RecordingHTTPServer):
    """The metadata server, a token endpoint (``/token``) and the Compute Engine API
    (``/compute/v1/``) on one loopback port. Tokens handed out are ``tok-1``,
    ``tok-2``...; the API takes any of them. ``failing`` makes the API answer 500."""

    PROJECT, ZONE = "acme", "europe-west1-b"

    def __init__(self) -> None:
        self.issued: list[str] = []
        self.failing = False
        #: instances.list pages by zone, then by pageToken
        self.zones: dict[str, dict[str, Any]] = {self.ZONE: {"": PAGE_1, "page-2": PAGE_2}}
        super().__init__(respond=self.answer)

    @property
    def compute_base(self) -> str:
        return self.url + "/compute/v1/"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment pointing a discoverer here, with the metadata server as its
        credentials unless ``extra`` says otherwise."""
        return {"HOME": "/nonexistent", "GCE_METADATA_HOST": self.address,
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE": self.compute_base, **extra}

    def _token(self) -> dict[str, Any]:
        self.issued.append(f"tok-{len(self.issued) + 1}")
        return {"access_token": self.issued[-1], "expires_in": 3599, "token_type": "Bearer"}

    def answer(self, request: Recorded) -> Answer:
        def reply(status: int, body: Any) -> Answer:
            return status, {"Content-Type": "application/json"}, json.dumps(body).encode()

        if request.route == "/computeMetadata/v1/instance/service-accounts/default/token":
            if request.headers.get("metadata-flavor") != "Google":
                return reply(403, "Missing Metadata-Flavor:Google header")
            return reply(200, self._token())
        if request.route == "/token" and request.method == "POST":
            return reply(200, self._token())
        parts = request.route.split("/")  # /compute/v1/projects/<p>/zones/<z>/instances
        if parts[:5] == ["", "compute", "v1", "projects", self.PROJECT] and \
                parts[5:6] == ["zones"] and parts[7:] == ["instances"] and \
                parts[6] in self.zones and request.method == "GET":
            if self.failing:
                return reply(500, {"error": {"code": 500, "message": "backend error",
                                             "errors": [{"reason": "backendError"}]}})
            if request.headers.get("authorization") not in {f"Bearer {t}" for t in self.issued}:
                return reply(401, {"error": {"code": 401, "message": "Invalid Credentials",
                                             "errors": [{"reason": "authError"}]}})
            page = self.zones[parts[6]].get(request.query.get("pageToken", [""])[0])
            if page is None:
                return reply(400, {"error": {"code": 400, "message": "bad page token"}})
            return reply(200, page)
        return reply(404, {"error": {"code": 404, "message": f"no {request.route}"}})

    def api_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.route.startswith("/compute/")]


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    with FakeGoogle() as fake:
        yield fake


def make_context(config: GCEConfig, check: Any = None) -> tuple[DiscoveryContext, list[Any]]:
    updates: list[Any] = []
    registry = DiscoveryRegistry()
    registry.subscribe(lambda service, id, groups: updates.append(groups))
    context = DiscoveryContext("gce", config, Logger("gce"), id=config.id, clients=HTTPClients(),
                               registry=registry, **({"check_outgoing": check} if check else {}))
    context.open()
    return context, updates


def element(**kw: Any) -> GCEConfig:
    base: dict[str, Any] = {"enabled": True, "id": "g", "project": "acme",
                            "zone": "europe-west1-b", "port": 9100}
    return GCEConfig(**{**base, **kw})


async def wait_for(updates: list[Any], count: int, timeout: float = 10) -> None:
    with trio.fail_after(timeout):
        while len(updates) < count:
            await trio.sleep(0.01)


async def run_until(discoverer: GCEDiscoverer, updates: list[Any], count: int) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(discoverer.serve)
        await wait_for(updates, count)
        nursery.cancel_scope.cancel()
    await discoverer.context.clients.aclose()


# -- instances -> groups ------------------------------------------------------------------
def test_instances_become_one_group_each_with_prometheus_labels() -> None:
    groups = instance_groups([*PAGE_1["items"], *PAGE_2["items"]], element())  # type: ignore[list-item]
    assert groups == EXPECTED


def test_tags_use_the_separator_around_and_between() -> None:
    instance = {"name": "x", "tags": {"items": ["a", "b"]},
                "networkInterfaces": [{"networkIP": "10.0.0.1"}]}
    groups = instance_groups([instance], element(tag_separator="|", port=80))
    assert groups[0].labels["__meta_gce_tags"] == "|a|b|"
    assert groups[0].targets == ("10.0.0.1:80",)
    assert groups[0].source == "GCE_acme_europe-west1-b/x"


# -- the discoverer against the fake ----------------------------------------------------
async def test_metadata_token_then_two_pages_with_filter(google: FakeGoogle) -> None:
    config = element(filter='status = "RUNNING"')
    context, updates = make_context(config)
    await run_until(GCEDiscoverer(config, context, env=google.env()), updates, 1)
    assert list(updates[0]) == EXPECTED
    token, first, second = google.requests
    assert token.method == "GET" and token.headers["metadata-flavor"] == "Google"
    assert token.path == "/computeMetadata/v1/instance/service-accounts/default/token"
    assert first.path == ("/compute/v1/projects/acme/zones/europe-west1-b/instances"
                          "?alt=json&filter=status+%3D+%22RUNNING%22")
    assert second.query == {"alt": ["json"], "filter": ['status = "RUNNING"'],
                            "pageToken": ["page-2"]}
    assert first.headers["authorization"] == second.headers["authorization"] == "Bearer tok-1"


async def test_no_filter_no_filter_parameter(google: FakeGoogle) -> None:
    context, updates = make_context(element())
    await run_until(GCEDiscoverer(element(), context, env=google.env()), updates, 1)
    assert google.api_requests()[0].query == {"alt": ["json"]}


async def test_token_reused_across_refreshes(google: FakeGoogle) -> None:
    config = element(refresh_interval=50_000_000)
    context, updates = make_context(config)
    await run_until(GCEDiscoverer(config, context, env=google.env()), updates, 3)
    assert google.issued == ["tok-1"]
    assert len(google.api_requests()) >= 6


async def test_authorized_user_file_refresh_token_grant(google: FakeGoogle,
                                                        tmp_path: Path) -> None:
    path = tmp_path / "adc.json"
    path.write_text(json.dumps({"type": "authorized_user", "client_id": "cid.apps",
                                "client_secret": "s3cret", "refresh_token": "1//rt",
                                "token_uri": google.url + "/token"}))
    env = google.env(GOOGLE_APPLICATION_CREDENTIALS=str(path))
    context, updates = make_context(element())
    await run_until(GCEDiscoverer(element(), context, env=env), updates, 1)
    token = google.requests[0]
    assert (token.method, token.path) == ("POST", "/token")
    assert token.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(token.text()) == {"client_id": ["cid.apps"], "client_secret": ["s3cret"],
                                      "grant_type": ["refresh_token"],
                                      "refresh_token": ["1//rt"]}
    assert google.api_requests()[0].headers["authorization"] == "Bearer tok-1"
    assert list(updates[0]) == EXPECTED


async def test_gcloud_well_known_file_is_found(google: FakeGoogle, tmp_path: Path) -> None:
    (tmp_path / ".config" / "gcloud").mkdir(parents=True)
    (tmp_path / ".config" / "gcloud" / "application_default_credentials.json").write_text(
        json.dumps({"type": "authorized_user", "client_id": "c", "client_secret": "s",
                    "refresh_token": "r", "token_uri": google.url + "/token"}))
    env = google.env(HOME=str(tmp_path))
    del env["GCE_METADATA_HOST"]
    context, updates = make_context(element())
    await run_until(GCEDiscoverer(element(), context, env=env), updates, 1)
    assert google.requests[0].path == "/token"


async def test_service_account_file_signed_jwt_grant(google: FakeGoogle, tmp_path: Path) -> None:
    path = tmp_path / "sa.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "acme", "private_key_id": "k-1",
        "private_key": TEST_KEY_PKCS8, "client_email": "sd@acme.iam.gserviceaccount.com",
        "client_id": "123", "token_uri": google.url + "/token"}))
    env = google.env(GOOGLE_APPLICATION_CREDENTIALS=str(path))
    context, updates = make_context(element())
    before = int(time.time())
    await run_until(GCEDiscoverer(element(), context, env=env), updates, 1)
    token = google.requests[0]
    form = parse_qs(token.text())
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    header, claims = verify_rs256(form["assertion"][0], RSAKey.from_pem(TEST_KEY_PKCS8))
    assert header == {"alg": "RS256", "typ": "JWT", "kid": "k-1"}
    assert claims["iss"] == "sd@acme.iam.gserviceaccount.com"
    assert claims["scope"] == "https://www.googleapis.com/auth/compute.readonly"
    assert claims["aud"] == google.url + "/token"
    assert before - 11 <= claims["iat"] <= before and claims["exp"] == claims["iat"] + 3600
    assert list(updates[0]) == EXPECTED


def test_rs256_signature_equals_openssl() -> None:
    pkcs8 = RSAKey.from_pem(TEST_KEY_PKCS8)
    signature = base64.b64encode(pkcs8.sign_sha256(b"kapa-core signs this")).decode()
    assert signature == OPENSSL_SIGNATURE
    with pytest.raises(ValueError, match="no PEM block"):
        RSAKey.from_pem("not a key")


async def test_no_credentials_anywhere(tmp_path: Path) -> None:
    refused: list[str] = []

    def check(url: str) -> None:  # the deny list refuses the metadata probe
        refused.append(url)
        raise KapaError("denied")

    async with trio.open_nursery():
        with pytest.raises(TokenError, match=r"^google: could not find default credentials\. "
                           r"See https://developers\.google\.com/accounts/docs/"
                           r"application-default-credentials for more information\.$"):
            await find_google_credentials(HTTPClients().get(), check, {"HOME": str(tmp_path)})
    assert refused == ["http://169.254.169.254"]


@pytest.mark.parametrize(("content", "reason"), [
    (None, "open {path}: no such file or directory"),
    ("{}", "missing 'type' field in credentials"),
    ('{"type": "external_account"}', 'unknown credential type: "external_account"'),
    ('{"type": "service_account", "private_key": "x"}', "no PEM block"),
])
async def test_unusable_credentials_file(tmp_path: Path, content: str | None,
                                         reason: str) -> None:
    path = tmp_path / "c.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TokenError) as caught:
        await find_google_credentials(HTTPClients().get(), lambda url: None,
                                      {"GOOGLE_APPLICATION_CREDENTIALS": str(path)})
    assert str(caught.value).startswith("google: error getting credentials using "
                                        "GOOGLE_APPLICATION_CREDENTIALS environment variable: ")
    assert reason.format(path=path) in str(caught.value)


async def test_missing_credentials_stop_the_discoverer(tmp_path: Path) -> None:
    context, updates = make_context(element())
    env = {"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "none.json")}
    with pytest.raises(KapaError, match="error setting up communication with GCE service: "
                       "google: error getting credentials"):
        await GCEDiscoverer(element(), context, env=env).serve()
    assert updates == []


async def test_failed_refresh_is_logged_and_keeps_targets(google: FakeGoogle,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    config = element(refresh_interval=50_000_000)
    context, updates = make_context(config)
    discoverer = GCEDiscoverer(config, context, env=google.env())
    caplog.set_level(logging.ERROR)
    async with trio.open_nursery() as nursery:
        await nursery.start(discoverer.serve)
        await wait_for(updates, 1)
        google.failing = True
        seen = len(google.api_requests())
        with trio.fail_after(10):
            while len(google.api_requests()) < seen + 2:
                await trio.sleep(0.01)
        assert list(context.groups()) == EXPECTED
        failed = len(updates)
        google.failing = False
        await wait_for(updates, failed + 1)
        nursery.cancel_scope.cancel()
    await context.clients.aclose()
    errors = [r for r in caplog.records if r.getMessage() == "gce discovery refresh failed"]
    assert errors and errors[0].kv["err"] == (  # type: ignore[attr-defined]
        "error retrieving refresh targets from gce: googleapi: Error 500: backend error, "
        "backendError")


async def test_api_refusal_worded_as_googleapi(google: FakeGoogle) -> None:
    google.zones[google.ZONE] = {}
    context, _ = make_context(element())
    discoverer = GCEDiscoverer(element(), context, env=google.env())
    discoverer.credentials = await find_google_credentials(
        context.http_client(), context.check_outgoing, google.env())
    with pytest.raises(gce.GCEError, match="^error retrieving refresh targets from gce: "
                       "googleapi: Error 400: bad page token$"):
        await discoverer.refresh()
    await context.clients.aclose()


async def test_deny_list_is_asked_before_each_request(google: FakeGoogle) -> None:
    asked: list[str] = []
    context, updates = make_context(element(), check=asked.append)
    await run_until(GCEDiscoverer(element(), context, env=google.env()), updates, 1)
    assert asked == [
        f"http://{google.address}/computeMetadata/v1/instance/service-accounts/default/token",
        f"{google.url}/compute/v1/projects/acme/zones/europe-west1-b/instances?alt=json",
        f"{google.url}/compute/v1/projects/acme/zones/europe-west1-b/instances?alt=json"
        "&pageToken=page-2"]


# -- the section's service test ---------------------------------------------------------
def service(elements: tuple[GCEConfig, ...]) -> DiscoveryTestService:
    context = ServiceContext(section="gce", config=elements, root=None, logger=Logger("gce"),
                             write_points=lambda db, rp, points: None)
    made = gce.kapa_config_sections()[0].service
    assert made is not None
    return made(context)  # type: ignore[no-any-return]


async def test_service_test_unknown_and_good(google: FakeGoogle,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in google.env().items():
        monkeypatch.setenv(name, value)
    tester = service((element(id="off", enabled=False), element(id="g")))
    assert tester.test_options() == {"id": ""}
    with pytest.raises(KapaError, match='^discoverer "off" is not enabled or does not exist$'):
        await tester.test({"id": "off"})
    await tester.test({"id": "g"}, timeout=10)
    assert len(google.api_requests()) == 2


# -- the same requests as Kapacitor 1.5.7 -------------------------------------------------
#: What kapacitord 1.5.7 sent for a [[gce]] service test (id "vms", project "acme", zone
#: europe-west1-b, filter 'status = "RUNNING"') against FakeGoogle: the metadata server
#: through GCE_METADATA_HOST, the API through an intercepting HTTPS proxy; recorded with
#: ``python -m tests.integration.test_discovery_cloud_vms /opt/kbin/kapacitord``.
KAPACITOR_1_5_7 = {
    "metadata": [
        {"method": "GET", "path": "/computeMetadata/v1/project/project-id",
         "metadata-flavor": "Google"},
        {"method": "GET", "path": "/computeMetadata/v1/instance/service-accounts/default/token",
         "metadata-flavor": "Google"}],
    "api": [
        {"method": "GET", "url": "https://www.googleapis.com/compute/v1/projects/acme/zones/"
         "europe-west1-b/instances?alt=json&filter=status+%3D+%22RUNNING%22",
         "authorization": "Bearer tok-1"},
        {"method": "GET", "url": "https://www.googleapis.com/compute/v1/projects/acme/zones/"
         "europe-west1-b/instances?alt=json&filter=status+%3D+%22RUNNING%22&pageToken=page-2",
         "authorization": "Bearer tok-1"}],
    "service_test": {"success": True, "message": ""},
    #: its answer for an element when GOOGLE_APPLICATION_CREDENTIALS names no file
    "service_test_missing_file": {
        "success": False, "message": "error setting up communication with GCE service: "
        "google: error getting credentials using GOOGLE_APPLICATION_CREDENTIALS environment "
        "variable: open /nonexistent/adc.json: no such file or directory"},
}


async def test_requests_equal_kapacitors(google: FakeGoogle) -> None:
    config = element(id="vms", filter='status = "RUNNING"')
    context, updates = make_context(config)
    await run_until(GCEDiscoverer(config, context, env=google.env()), updates, 1)
    metadata = [{"method": r.method, "path": r.path,
                 "metadata-flavor": r.headers.get("metadata-flavor")}
                for r in google.requests if r.route.startswith("/computeMetadata/")]
    api = [{"method": r.method, "url": "https://www.googleapis.com" + r.path,
            **{name: r.headers[name] for name in ("authorization", "content-type")
               if name in r.headers}} for r in google.api_requests()]
    assert api == KAPACITOR_1_5_7["api"]
    # Go's credentials search also reads the project id, which nothing uses
    assert metadata == KAPACITOR_1_5_7["metadata"][1:]


async def test_service_test_without_credentials_answers_as_kapacitor(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/adc.json")
    with pytest.raises(KapaError) as caught:
        await service((element(id="vms"),)).test({"id": "vms"}, timeout=10)
    assert str(caught.value) == KAPACITOR_1_5_7["service_test_missing_file"]["message"]


async def test_garbled_instance_list_is_a_failed_refresh(google: FakeGoogle) -> None:
    google.zones[google.ZONE] = {"": {"items": [{"name": "x", "networkInterfaces": 3}]}}
    context, _ = make_context(element())
    discoverer = GCEDiscoverer(element(), context, env=google.env())
    discoverer.credentials = await find_google_credentials(
        context.http_client(), context.check_outgoing, google.env())
    with pytest.raises(gce.GCEError, match="^error retrieving refresh targets from gce: "):
        await discoverer.refresh()
    await context.clients.aclose()

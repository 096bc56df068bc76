"""[[azure]] discovery against a local server answering as Azure documents its v1 token
endpoint (client credentials) and the resource manager's virtualMachines list (two pages
by nextLink) and networkInterfaces get. Checked: the requests made (paths, api-versions,
form fields, ``Authorization: Bearer``), machines -> groups and labels as Prometheus'
azure discoverer makes them (deallocated machines left out, secondary interfaces passed
over), token reuse, an all-or-nothing refresh whose failure keeps the previous targets,
the section's service test.

``FakeAzure`` also serves tests/integration/test_discovery_cloud_vms.py.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
import trio
from kapa_plugins.discovery import azure
from kapa_plugins.discovery.azure import AzureConfig, AzureDiscoverer, Resource, interface_address

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

SUB = "0b1f6471-1bf0-4dda-aec3-111122223333"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
VM_PATH = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"
NIC_PATH = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/networkInterfaces/{name}"


def vm(name: str, rg: str, nics: list[str], tags: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": VM_PATH.format(sub=SUB, rg=rg, name=name), "name": name,
            "type": "Microsoft.Compute/virtualMachines", "location": "westeurope",
            **({"tags": tags} if tags is not None else {}),
            "properties": {"vmId": "x", "networkProfile": {"networkInterfaces": [
                {"id": NIC_PATH.format(sub=SUB, rg=rg, name=nic),
                 "properties": {"primary": i == 0}} for i, nic in enumerate(nics)]}}}


def nic(primary: bool | None, ips: list[str | None]) -> dict[str, Any]:
    properties: dict[str, Any] = {"ipConfigurations": [
        {"name": f"ipconfig{i}", "properties": {
            **({"privateIPAddress": ip} if ip is not None else {}),
            "privateIPAllocationMethod": "Dynamic"}} for i, ip in enumerate(ips)]}
    if primary is not None:
        properties["primary"] = primary
    return {"name": "nic", "properties": properties}


WEB = vm("Web-1", "RG-Web", ["Web-1-NIC"], tags={"env-name": "prod", "team": "ops",
                                                   "nothing": None})
STOPPED = vm("old-1", "rg-web", ["old-1-nic"])
MULTI = vm("db-1", "rg-db", ["db-1-back", "db-1-front"])
#: by lower-cased resource group and interface name, as the discoverer asks for them
NICS = {("rg-web", "web-1-nic"): nic(True, ["10.1.0.4", "10.1.0.5"]),
        ("rg-web", "old-1-nic"): nic(None, []),
        ("rg-db", "db-1-back"): nic(False, ["10.2.0.9"]),
        ("rg-db", "db-1-front"): nic(True, ["10.2.0.4"])}
EXPECTED = [
    TargetGroup(("10.1.0.4:9100",), {
        "__meta_azure_machine_id": WEB["id"], "__meta_azure_machine_name": "Web-1",
        "__meta_azure_machine_location": "westeurope",
        "__meta_azure_machine_resource_group": "rg-web",
        "__meta_azure_machine_private_ip": "10.1.0.4",
        "__meta_azure_machine_tag_env_name": "prod", "__meta_azure_machine_tag_team": "ops"},
        WEB["id"]),
    TargetGroup(("10.2.0.4:9100",), {
        "__meta_azure_machine_id": MULTI["id"], "__meta_azure_machine_name": "db-1",
        "__meta_azure_machine_location": "westeurope",
        "__meta_azure_machine_resource_group": "rg-db",
        "__meta_azure_machine_private_ip": "10.2.0.4"}, MULTI["id"]),
]


class FakeAzure(RecordingHTTPServer):
    """Azure AD's v1 token endpoint and the resource manager on one loopback port.
    Tokens are ``eyJ-1``, ``eyJ-2``...; the resource manager takes any of them.
    ``failing_nic`` makes that interface's get answer 500."""

    CLIENT_ID, SECRET = "3e1c7a2f-app", "s3cr3t~value"

    def __init__(self) -> None:
        self.issued: list[str] = []
        self.token_lifetime = 3600
        self.failing_nic = ""
        #: pages of virtual machines by subscription
        self.subscriptions = {SUB: [[WEB, STOPPED], [MULTI]]}
        self.nics = dict(NICS)
        super().__init__(respond=self.answer)

    def env(self) -> dict[str, str]:
        return {"AZURE_AUTHORITY_HOST": self.url + "/",
                "AZURE_RESOURCE_MANAGER_URL": self.url + "/arm"}

    def config(self, **kw: Any) -> AzureConfig:
        base: dict[str, Any] = {"enabled": True, "id": "az", "subscription_id": SUB,
                                "tenant_id": TENANT, "client_id": self.CLIENT_ID,
                                "client_secret": self.SECRET, "port": 9100}
        return AzureConfig(**{**base, **kw})

    def answer(self, request: Recorded) -> Answer:
        def reply(status: int, body: Any) -> Answer:
            return status, {"Content-Type": "application/json"}, json.dumps(body).encode()

        if request.route == f"/{TENANT}/oauth2/token" and request.method == "POST":
            form = parse_qs(request.text())
            if form.get("client_secret") != [self.SECRET]:
                return reply(401, {"error": "invalid_client"})
            self.issued.append(f"eyJ-{len(self.issued) + 1}")
            return reply(200, {"token_type": "Bearer", "expires_in": str(self.token_lifetime),
                               "expires_on": str(int(time.time()) + self.token_lifetime),
                               "resource": form["resource"][0],
                               "access_token": self.issued[-1]})
        if not request.route.startswith("/arm/"):
            return reply(404, {"error": {"code": "NotFound", "message": request.route}})
        if request.headers.get("authorization") not in {f"Bearer {t}" for t in self.issued}:
            return reply(401, {"error": {"code": "InvalidAuthenticationToken",
                                         "message": "The access token is invalid."}})
        route = request.route.removeprefix("/arm")
        parts = route.split("/")
        if len(parts) == 6 and parts[3:] == ["providers", "Microsoft.Compute",
                                             "virtualMachines"] and \
                parts[2] in self.subscriptions:
            pages = self.subscriptions[parts[2]]
            page = int(request.query.get("$skiptoken", ["0"])[0])
            body: dict[str, Any] = {"value": pages[page]}
            if page + 1 < len(pages):
                body["nextLink"] = (f"{self.url}/arm{route}?api-version=2016-03-30"
                                    f"&%24skiptoken={page + 1}")
            return reply(200, body)
        if len(parts) == 9 and parts[5:8] == ["providers", "Microsoft.Network",
                                              "networkInterfaces"]:
            if parts[8] == self.failing_nic:
                return reply(500, {"error": {"code": "InternalServerError",
                                             "message": "try later"}})
            found = self.nics.get((parts[4], parts[8]))
            if found is not None:
                return reply(200, found)
        return reply(404, {"error": {"code": "ResourceNotFound", "message": route}})

    def arm_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.route.startswith("/arm/")]


@pytest.fixture
def fake() -> Iterator[FakeAzure]:
    with FakeAzure() as server:
        yield server


def make_context(config: AzureConfig, check: Any = None) -> tuple[DiscoveryContext, list[Any]]:
    updates: list[Any] = []
    registry = DiscoveryRegistry()
    registry.subscribe(lambda service, id, groups: updates.append(groups))
    context = DiscoveryContext("azure", config, Logger("azure"), id=config.id,
                               clients=HTTPClients(), registry=registry,
                               **({"check_outgoing": check} if check else {}))
    context.open()
    return context, updates


async def wait_for(updates: list[Any], count: int, timeout: float = 10) -> None:
    with trio.fail_after(timeout):
        while len(updates) < count:
            await trio.sleep(0.01)


async def run_until(discoverer: AzureDiscoverer, updates: list[Any], count: int) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(discoverer.serve)
        await wait_for(updates, count)
        nursery.cancel_scope.cancel()
    await discoverer.context.clients.aclose()


# -- pieces -----------------------------------------------------------------------------
def test_resource_ids_lower_cased_and_checked() -> None:
    assert Resource.from_id(WEB["id"]) == Resource("web-1", "rg-web")
    with pytest.raises(KapaError, match="^invalid ID '/subscriptions/x'. Refusing to "
                       "create azureResource$"):
        Resource.from_id("/subscriptions/x")


def test_interface_decisions() -> None:
    assert interface_address(nic(True, ["10.0.0.1"]), "m") == "10.0.0.1"
    assert interface_address(nic(None, ["10.0.0.1"]), "m") == "skip"
    assert interface_address(nic(False, ["10.0.0.1"]), "m") == "next"
    assert interface_address(nic(True, []), "m") == "next"
    with pytest.raises(KapaError, match="^unable to find a private IP for VM m$"):
        interface_address(nic(True, [None, "10.0.0.2"]), "m")


# -- the discoverer against the fake ----------------------------------------------------
async def test_token_machines_in_two_pages_and_interfaces(fake: FakeAzure) -> None:
    context, updates = make_context(fake.config())
    await run_until(AzureDiscoverer(fake.config(), context, env=fake.env()), updates, 1)
    assert list(updates[0]) == EXPECTED
    token = fake.requests[0]
    assert (token.method, token.path) == ("POST", f"/{TENANT}/oauth2/token?api-version=1.0")
    assert token.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(token.text()) == {
        "client_id": [fake.CLIENT_ID], "client_secret": [fake.SECRET],
        "grant_type": ["client_credentials"], "resource": [fake.url + "/arm/"]}
    arm = fake.arm_requests()
    assert len(fake.requests) == 1 + len(arm)
    assert [r.path for r in arm[:2]] == [
        f"/arm/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachines"
        "?api-version=2016-03-30",
        f"/arm/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachines"
        "?api-version=2016-03-30&%24skiptoken=1"]
    nic_base = f"/arm/subscriptions/{SUB}/resourceGroups/"
    assert sorted(r.path for r in arm[2:]) == [
        f"{nic_base}rg-db/providers/Microsoft.Network/networkInterfaces/db-1-back"
        "?api-version=2016-09-01",
        f"{nic_base}rg-db/providers/Microsoft.Network/networkInterfaces/db-1-front"
        "?api-version=2016-09-01",
        f"{nic_base}rg-web/providers/Microsoft.Network/networkInterfaces/old-1-nic"
        "?api-version=2016-09-01",
        f"{nic_base}rg-web/providers/Microsoft.Network/networkInterfaces/web-1-nic"
        "?api-version=2016-09-01"]
    assert {r.headers["authorization"] for r in arm} == {"Bearer eyJ-1"}


async def test_token_reused_until_close_to_expiry(fake: FakeAzure) -> None:
    config = fake.config(refresh_interval=50_000_000)
    context, updates = make_context(config)
    await run_until(AzureDiscoverer(config, context, env=fake.env()), updates, 3)
    assert fake.issued == ["eyJ-1"]
    fake.token_lifetime = 2  # shorter than go-autorest's 5 minute refresh margin: kept
    context, updates = make_context(config)  # for half its life, fetched once at a time
    first = AzureDiscoverer(config, context, env=fake.env())
    await run_until(first, updates, 1)
    assert fake.issued == ["eyJ-1", "eyJ-2"]
    await trio.sleep(1.1)
    context, updates = make_context(config)
    later = AzureDiscoverer(config, context, env=fake.env())
    later.credentials = first.credentials
    await run_until(later, updates, 1)
    assert fake.issued == ["eyJ-1", "eyJ-2", "eyJ-3"]


async def test_failed_interface_fails_the_refresh_and_keeps_targets(
        fake: FakeAzure, caplog: pytest.LogCaptureFixture) -> None:
    config = fake.config(refresh_interval=50_000_000)
    context, updates = make_context(config)
    caplog.set_level(logging.ERROR)
    async with trio.open_nursery() as nursery:
        await nursery.start(AzureDiscoverer(config, context, env=fake.env()).serve)
        await wait_for(updates, 1)
        fake.failing_nic = "db-1-front"
        seen = len(fake.arm_requests())
        with trio.fail_after(10):
            while len(fake.arm_requests()) < seen + 12:  # two failed refreshes or more
                await trio.sleep(0.01)
        assert len(updates) <= 2 and list(context.groups()) == EXPECTED
        failed = len(updates)
        fake.subscriptions[SUB] = [[WEB]]
        fake.failing_nic = ""
        await wait_for(updates, failed + 1)
        # a refresh that had listed the machines before the change may still publish
        # both; the next ones publish the new list
        with trio.fail_after(10):
            while list(context.groups()) != EXPECTED[:1]:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    await context.clients.aclose()
    errors = [r.kv["err"] for r in caplog.records  # type: ignore[attr-defined]
              if r.getMessage() == "unable to refresh during Azure discovery"]
    assert errors and errors[0] == (
        "unable to complete Azure service discovery: network.InterfacesClient#Get: Failure "
        "responding to request: StatusCode=500 -- Original Error: autorest/azure: Service "
        'returned an error. Status=500 Code="InternalServerError" Message="try later"')


async def test_bad_secret_is_a_failed_refresh(fake: FakeAzure,
                                              caplog: pytest.LogCaptureFixture) -> None:
    config = fake.config(client_secret="wrong")
    context, updates = make_context(config)
    caplog.set_level(logging.ERROR)
    discoverer = AzureDiscoverer(config, context, env=fake.env())
    with pytest.raises(KapaError, match="^could not list virtual machines: "
                       "azure.ServicePrincipalToken#Refresh: Failure handling response to "
                       "Service Principal 3e1c7a2f-app request: StatusCode=401"):
        await discoverer.refresh()
    assert fake.arm_requests() == []
    await context.clients.aclose()


async def test_deny_list_is_asked_before_each_request(fake: FakeAzure) -> None:
    asked: list[str] = []
    fake.subscriptions[SUB] = [[WEB]]
    context, updates = make_context(fake.config(), check=asked.append)
    await run_until(AzureDiscoverer(fake.config(), context, env=fake.env()), updates, 1)
    assert asked == [
        f"{fake.url}/{TENANT}/oauth2/token?api-version=1.0",
        f"{fake.url}/arm/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachines"
        "?api-version=2016-03-30",
        f"{fake.url}/arm/subscriptions/{SUB}/resourceGroups/rg-web/providers/"
        "Microsoft.Network/networkInterfaces/web-1-nic?api-version=2016-09-01"]


def test_public_cloud_endpoints_by_default() -> None:
    context, _ = make_context(AzureConfig(enabled=True, id="a", subscription_id="s b",
                                          tenant_id="t"))
    discoverer = AzureDiscoverer(context.config, context, env={})
    assert discoverer.credentials.token_url == \
        "https://login.microsoftonline.com/t/oauth2/token?api-version=1.0"
    assert discoverer.credentials.resource == "https://management.azure.com/"
    assert discoverer.machines_url() == (
        "https://management.azure.com/subscriptions/s%20b/providers/Microsoft.Compute/"
        "virtualMachines?api-version=2016-03-30")


# -- the section's service test ---------------------------------------------------------
def service(elements: tuple[AzureConfig, ...]) -> DiscoveryTestService:
    context = ServiceContext(section="azure", config=elements, root=None,
                             logger=Logger("azure"), write_points=lambda db, rp, points: None)
    made = azure.kapa_config_sections()[0].service
    assert made is not None
    return made(context)  # type: ignore[no-any-return]


async def test_service_test_unknown_and_good(fake: FakeAzure,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in fake.env().items():
        monkeypatch.setenv(name, value)
    tester = service((fake.config(id="off", enabled=False), fake.config()))
    assert tester.test_options() == {"id": ""}
    with pytest.raises(KapaError, match='^discoverer "nope" is not enabled or does not exist$'):
        await tester.test({"id": "nope"})
    await tester.test({"id": "az"}, timeout=10)
    assert fake.issued == ["eyJ-1"]


# -- the same requests as Kapacitor 1.5.7 -------------------------------------------------
#: What kapacitord 1.5.7 sent for an [[azure]] service test (id "vms", FakeAzure's
#: subscription, tenant, client and secret) against FakeAzure through an intercepting
#: HTTPS proxy, recorded with ``python -m tests.integration.test_discovery_cloud_vms
#: /opt/kbin/kapacitord`` (interfaces are read concurrently: their order varies).
KAPACITOR_1_5_7 = {
    "requests": [
        {"method": "POST", "url": f"https://login.microsoftonline.com/{TENANT}/oauth2/token"
         "?api-version=1.0", "content-type": "application/x-www-form-urlencoded",
         "form": {"client_id": "3e1c7a2f-app", "client_secret": "s3cr3t~value",
                  "grant_type": "client_credentials",
                  "resource": "https://management.azure.com/"}},
        {"method": "GET", "url": f"https://management.azure.com/subscriptions/{SUB}/providers/"
         "Microsoft.Compute/virtualMachines?api-version=2016-03-30",
         "authorization": "Bearer eyJ-1"},
        {"method": "GET", "url": f"https://management.azure.com/subscriptions/{SUB}/providers/"
         "Microsoft.Compute/virtualMachines?api-version=2016-03-30&%24skiptoken=1",
         "authorization": "Bearer eyJ-1", "content-type": "application/json"},
        {"method": "GET", "url": f"https://management.azure.com/subscriptions/{SUB}/"
         "resourceGroups/rg-db/providers/Microsoft.Network/networkInterfaces/db-1-back"
         "?api-version=2016-09-01", "authorization": "Bearer eyJ-1"},
        {"method": "GET", "url": f"https://management.azure.com/subscriptions/{SUB}/"
         "resourceGroups/rg-web/providers/Microsoft.Network/networkInterfaces/web-1-nic"
         "?api-version=2016-09-01", "authorization": "Bearer eyJ-1"},
        {"method": "GET", "url": f"https://management.azure.com/subscriptions/{SUB}/"
         "resourceGroups/rg-web/providers/Microsoft.Network/networkInterfaces/old-1-nic"
         "?api-version=2016-09-01", "authorization": "Bearer eyJ-1"},
        {"method": "GET", "url": f"https://management.azure.com/subscriptions/{SUB}/"
         "resourceGroups/rg-db/providers/Microsoft.Network/networkInterfaces/db-1-front"
         "?api-version=2016-09-01", "authorization": "Bearer eyJ-1"}],
    "service_test": {"success": True, "message": ""},
}


async def test_requests_equal_kapacitors(fake: FakeAzure) -> None:
    context, updates = make_context(fake.config(id="vms"))
    await run_until(AzureDiscoverer(fake.config(id="vms"), context, env=fake.env()), updates, 1)
    arm = fake.url + "/arm/"

    def seen(r: Recorded) -> dict[str, Any]:
        host = "https://management.azure.com" if r.route.startswith("/arm/") else \
            "https://login.microsoftonline.com"
        out = {"method": r.method, "url": host + r.path.removeprefix("/arm"),
               **{name: r.headers[name] for name in ("authorization", "content-type")
                  if name in r.headers}}
        if r.body:
            out["form"] = {k: v[0].replace(arm, "https://management.azure.com/")
                           for k, v in parse_qs(r.text()).items()}
        return out

    ours = [seen(r) for r in fake.requests]
    theirs = KAPACITOR_1_5_7["requests"]
    assert ours[:3] == theirs[:3]
    assert sorted(ours[3:], key=str) == sorted(theirs[3:], key=str)  # type: ignore[arg-type]
    back, front = (ours.index(r) for r in theirs[3::3])
    assert back < front  # a machine's interfaces in turn


async def test_machine_without_primary_interface_is_left_out(fake: FakeAzure) -> None:
    """kapacitord 1.5.7 never finishes such a refresh (its service test times out);
    kapa-core publishes the other machines."""
    fake.subscriptions[SUB] = [[vm("lone", "rg-x", ["lone-nic"]), WEB]]
    fake.nics[("rg-x", "lone-nic")] = nic(False, ["10.9.9.9"])
    context, updates = make_context(fake.config())
    await run_until(AzureDiscoverer(fake.config(), context, env=fake.env()), updates, 1)
    assert list(updates[0]) == EXPECTED[:1]


async def test_garbled_machine_is_a_failed_refresh(fake: FakeAzure) -> None:
    fake.subscriptions[SUB] = [[{**WEB, "tags": ["not", "a", "map"]}]]
    context, _ = make_context(fake.config())
    discoverer = AzureDiscoverer(fake.config(), context, env=fake.env())
    with pytest.raises(KapaError, match="^unable to complete Azure service discovery: "):
        await discoverer.refresh()
    await context.clients.aclose()

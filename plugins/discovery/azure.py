"""azure: the [[azure]] section, discovering Azure virtual machines.

Each element is named by its ``id``, which a ``[[scraper]]`` names in ``discoverer-id``.
As Prometheus' azure discoverer that Kapacitor 1.5.7 runs, once at start and then every
``refresh-interval`` it

1. gets a token for the service principal (``tenant-id``, ``client-id``,
   ``client-secret``; plugins/discovery/oauth.py), kept until shortly before it expires;
2. lists the subscription's machines, ``GET <arm>/subscriptions/<subscription-id>/
   providers/Microsoft.Compute/virtualMachines?api-version=2016-03-30``, following
   ``nextLink``;
3. reads each machine's network interfaces in turn, ``GET <arm>/subscriptions/
   <subscription-id>/resourceGroups/<group>/providers/Microsoft.Network/
   networkInterfaces/<name>?api-version=2016-09-01`` (group and name lower-cased from the
   interface's id, as Prometheus does), until the primary one: its first IP
   configuration's private address is the target ``<ip>:<port>``.

Labels: ``__meta_azure_machine_id``, ``_machine_name``, ``_machine_location``,
``_machine_resource_group`` (lower case), ``_machine_private_ip`` and
``_machine_tag_<key>`` (key with characters outside [a-zA-Z0-9_] made "_"). A machine
whose first interface has no ``primary`` flag is deallocated and left out. A refresh is
all or nothing: any failure is logged and the previous targets stay.

Prometheus publishes one group without a name; kapa-core's groups share their labels,
so each machine is a group named by its id, and each refresh replaces them all.

kapa-core additions: ``AZURE_AUTHORITY_HOST`` (azure-identity's variable) moves the token
endpoint from ``https://login.microsoftonline.com/``, ``AZURE_RESOURCE_MANAGER_URL``
the resource manager from ``https://management.azure.com/`` (also the token's
``resource``). Where Prometheus would wait forever (a machine whose interfaces have no
primary one with an IP configuration), kapa-core leaves that machine out; a failed
refresh's log names the reason (Prometheus' says ``<nil>``).
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from kapa_core.plugin_api import (
    ConfigError,
    DiscoveryContext,
    DiscoveryKind,
    Duration,
    KapaError,
    Section,
    TargetGroup,
    discovery_test_service,
    hookimpl,
    setting,
    unique_elements,
)

from .oauth import AZURE_AUTHORITY, AZURE_RESOURCE_MANAGER, AzureCredentials, join_url
from .prometheus_sd import join_host_port, refresh_every, sanitize_label_name

#: the api-versions of the azure-sdk-for-go clients Prometheus' discoverer uses
COMPUTE_API_VERSION = "2016-03-30"
NETWORK_API_VERSION = "2016-09-01"
AUTHORITY_ENV = "AZURE_AUTHORITY_HOST"
RESOURCE_MANAGER_ENV = "AZURE_RESOURCE_MANAGER_URL"
#: what an answer of an unexpected shape raises while it is read
GARBLED = (TypeError, AttributeError, ValueError, KeyError)
LABEL = "__meta_azure_machine_"
#: network interfaces read at once during a refresh
CONCURRENT_REQUESTS = 8


@dataclass(frozen=True, kw_only=True)
class AzureConfig:
    enabled: bool = False
    id: str = setting("", doc="Names the element; a scraper's discoverer-id.")
    port: int = setting(80, doc="Port added to each machine's private IP.")
    subscription_id: str = setting("", doc="Subscription whose virtual machines are listed.")
    tenant_id: str = setting("", doc="Azure AD tenant (directory) of the service principal.")
    client_id: str = setting("", doc="Application (client) id of the service principal.")
    client_secret: str = setting("", redact=True, doc="Secret of the service principal.")
    refresh_interval: Duration = setting(Duration(300 * 1_000_000_000),
                                         doc="How often the machines are listed.")

    def validate(self) -> None:
        if not self.enabled:
            return
        if not self.id:
            raise ConfigError("id", "must be set when enabled = true")
        if self.refresh_interval <= 0:
            raise ConfigError("refresh-interval", "must be greater than 0")


class AzureError(KapaError):
    """Azure refused or garbled an answer, or a resource id is not one."""


@dataclass(frozen=True)
class Resource:
    """Name and resource group of a resource id, lower-cased as Prometheus does."""

    name: str
    resource_group: str

    @classmethod
    def from_id(cls, id: str) -> Resource:
        # /subscriptions/<sub>/resourceGroups/<group>/providers/<provider>/<type>/<name>
        parts = id.split("/")
        if len(parts) != 9:
            raise AzureError(f"invalid ID '{id}'. Refusing to create azureResource")
        return cls(parts[8].lower(), parts[4].lower())


def _path(value: str) -> str:
    """go-autorest's path escaping (query escaping, with %20 for spaces)."""
    return urllib.parse.quote_plus(value).replace("+", "%20")


def _api_error(client: str, response: httpx.Response) -> AzureError:
    """Worded as go-autorest does."""
    status = response.status_code
    try:
        error = response.json()["error"]
        detail = (f'autorest/azure: Service returned an error. Status={status} '
                  f'Code="{error.get("code", "")}" Message="{error.get("message", "")}"')
    except (ValueError, KeyError, TypeError, AttributeError):
        detail = response.content[:4096].decode("utf-8", "replace")
    return AzureError(f"{client}: Failure responding to request: StatusCode={status} -- "
                      f"Original Error: {detail}")


def machine_labels(vm: Mapping[str, Any]) -> dict[str, str]:
    """The labels a machine has before its network interface is read."""
    vm_id = str(vm.get("id") or "")
    resource = Resource.from_id(vm_id)
    labels = {
        LABEL + "id": vm_id,
        LABEL + "name": str(vm.get("name") or ""),
        LABEL + "location": str(vm.get("location") or ""),
        LABEL + "resource_group": resource.resource_group,
    }
    for key, value in (vm.get("tags") or {}).items():
        if value is not None:
            labels[LABEL + "tag_" + sanitize_label_name(str(key))] = str(value)
    return labels


def interface_ids(vm: Mapping[str, Any]) -> list[str]:
    profile = ((vm.get("properties") or {}).get("networkProfile") or {})
    return [str((nic or {}).get("id") or "") for nic in profile.get("networkInterfaces") or []]


class Decision:
    """What one network interface says about its machine."""

    SKIP = "skip"  # deallocated: leave the machine out
    NEXT = "next"  # not the primary interface: read the next one


def interface_address(nic: Mapping[str, Any], vm_name: str) -> str:
    """The private IP of a primary interface, Decision.SKIP for a deallocated machine,
    Decision.NEXT for a secondary interface (or a primary one without configurations);
    AzureError when the primary interface's first configuration has no private IP."""
    properties = nic.get("properties") or {}
    primary = properties.get("primary")
    if primary is None:
        return Decision.SKIP
    if not primary:
        return Decision.NEXT
    for config in properties.get("ipConfigurations") or []:
        address = ((config or {}).get("properties") or {}).get("privateIPAddress")
        if address is not None:
            return str(address)
        raise AzureError(f"unable to find a private IP for VM {vm_name}")
    return Decision.NEXT


class AzureDiscoverer:
    """Lists the subscription's machines every refresh-interval and publishes them."""

    def __init__(self, config: AzureConfig, context: DiscoveryContext, *,
                 env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.context = context
        env = os.environ if env is None else env
        self.resource_manager = env.get(RESOURCE_MANAGER_ENV) or AZURE_RESOURCE_MANAGER
        if not self.resource_manager.endswith("/"):
            self.resource_manager += "/"
        self.credentials = AzureCredentials(
            config.tenant_id, config.client_id, config.client_secret,
            authority=env.get(AUTHORITY_ENV) or AZURE_AUTHORITY,
            resource=self.resource_manager)

    async def _get(self, url: str, client_name: str, *, json_type: bool = False) -> Any:
        client, check = self.context.http_client(), self.context.check_outgoing
        token = await self.credentials.token(client, check)
        check(url)
        headers = {"Authorization": f"Bearer {token}"}
        if json_type:  # as go-autorest asks for a next page
            headers["Content-Type"] = "application/json"
        response = await client.get(url, headers=headers)
        if response.status_code != 200:
            raise _api_error(client_name, response)
        try:
            return response.json()
        except ValueError as exc:
            raise AzureError(f"{client_name}: Failure responding to request: {exc}") \
                from None

    def machines_url(self) -> str:
        return join_url(self.resource_manager,
                        f"subscriptions/{_path(self.config.subscription_id)}/providers/"
                        f"Microsoft.Compute/virtualMachines?api-version={COMPUTE_API_VERSION}")

    def interface_url(self, resource: Resource) -> str:
        return join_url(self.resource_manager,
                        f"subscriptions/{_path(self.config.subscription_id)}/resourceGroups/"
                        f"{_path(resource.resource_group)}/providers/Microsoft.Network/"
                        f"networkInterfaces/{_path(resource.name)}"
                        f"?api-version={NETWORK_API_VERSION}")

    async def machines(self) -> list[Mapping[str, Any]]:
        found: list[Mapping[str, Any]] = []
        url, next_page = self.machines_url(), False
        while url:
            page = await self._get(url, "compute.VirtualMachinesClient#ListAll",
                                   json_type=next_page)
            next_page = True
            if not isinstance(page, Mapping):
                raise AzureError("compute.VirtualMachinesClient#ListAll: not a list result")
            found.extend(vm for vm in page.get("value") or [] if isinstance(vm, Mapping))
            url = str(page.get("nextLink") or "")
        return found

    async def machine_target(self, vm: Mapping[str, Any]) -> TargetGroup | None:
        labels = machine_labels(vm)
        name = labels[LABEL + "name"]
        for nic_id in interface_ids(vm):
            resource = Resource.from_id(nic_id)
            try:
                nic = await self._get(self.interface_url(resource),
                                      "network.InterfacesClient#Get")
            except AzureError as exc:
                self.context.log.error("unable to get network interface",
                                       interface=resource.name, err=str(exc))
                raise
            found = interface_address(nic if isinstance(nic, Mapping) else {}, name)
            if found == Decision.SKIP:
                self.context.log.debug("virtual machine is deallocated, skipping", vm=name)
                return None
            if found != Decision.NEXT:
                labels[LABEL + "private_ip"] = found
                return TargetGroup((join_host_port(found, self.config.port),), labels,
                                   source=labels[LABEL + "id"])
        self.context.log.debug("virtual machine has no primary interface with an IP "
                               "configuration, skipping", vm=name)
        return None

    async def refresh(self) -> list[TargetGroup]:
        try:
            machines = await self.machines()
        except (KapaError, httpx.HTTPError, OSError, *GARBLED) as exc:
            raise AzureError(f"could not list virtual machines: {exc}") from None
        self.context.log.debug("found virtual machines during Azure discovery",
                               count=len(machines))
        results: list[TargetGroup | None] = [None] * len(machines)
        failures: list[BaseException] = []
        limiter = trio.CapacityLimiter(CONCURRENT_REQUESTS)

        async def one(index: int, vm: Mapping[str, Any]) -> None:
            async with limiter:
                try:
                    results[index] = await self.machine_target(vm)
                except (KapaError, httpx.HTTPError, OSError, *GARBLED) as exc:
                    failures.append(exc)

        async with trio.open_nursery() as nursery:
            for index, vm in enumerate(machines):
                nursery.start_soon(one, index, vm)
        if failures:
            raise AzureError(f"unable to complete Azure service discovery: {failures[0]}")
        return [group for group in results if group is not None]

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await refresh_every(self.context, self.refresh, self.config.refresh_interval / 1e9,
                            "unable to refresh during Azure discovery", (AzureError,))


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [
        Section(
            name="azure",
            schema=AzureConfig,
            multiple=True,
            element_key="id",
            check=unique_elements("id"),
            service=discovery_test_service(AzureDiscoverer),
            doc="Discover Azure virtual machines.",
        )
    ]


@hookimpl
def kapa_discovery_kinds() -> list[DiscoveryKind]:
    return [DiscoveryKind(name="azure", section="azure", factory=AzureDiscoverer,
                          doc="Azure virtual machines of a subscription.")]

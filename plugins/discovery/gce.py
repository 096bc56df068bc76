"""gce: the [[gce]] section, discovering Google Compute Engine instances.

Each element is named by its ``id``, which a ``[[scraper]]`` names in ``discoverer-id``.
As Prometheus' gce discoverer that Kapacitor 1.5.7 runs, every ``refresh-interval`` (and
once at start) it lists the instances of ``project`` in ``zone`` through the Compute
Engine API (``GET <base>/<project>/zones/<zone>/instances?alt=json&filter=...``, page by
page with ``pageToken``) and publishes one target per instance that has a network
interface: ``<first interface's networkIP>:<port>`` with the labels

    __meta_gce_project, __meta_gce_zone (the zone's URL), __meta_gce_instance_name,
    __meta_gce_instance_status, __meta_gce_network, __meta_gce_subnetwork (URLs),
    __meta_gce_private_ip, __meta_gce_public_ip (only with a ONE_TO_ONE_NAT access
    config), __meta_gce_tags (",a,b," with tag-separator), __meta_gce_metadata_<key>
    (key with characters outside [a-zA-Z0-9_] made "_").

Prometheus puts all of them in one group named ``GCE_<project>_<zone>``; kapa-core's
groups share their labels, so each instance is a group of its own named
``GCE_<project>_<zone>/<instance name>``, and each refresh replaces them all. A refresh
that fails is logged and the previous targets stay, as in Prometheus.

Credentials: Google's application default credentials (plugins/discovery/oauth.py); none
found stops the element with Go's message, as Kapacitor never starts it. The API base
``https://www.googleapis.com/compute/v1/projects/`` can be moved with gcloud's
``CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE`` (the URL up to ``/compute/v1/``; a kapa-core
addition).
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
    DiscoverySetupError,
    Duration,
    KapaError,
    Section,
    TargetGroup,
    discovery_test_service,
    hookimpl,
    setting,
    unique_elements,
)

from .oauth import GoogleCredentials, find_google_credentials
from .prometheus_sd import refresh_every, sanitize_label_name

COMPUTE_BASE = "https://www.googleapis.com/compute/v1/projects/"
#: gcloud's property api_endpoint_overrides/compute as an environment variable
COMPUTE_OVERRIDE_ENV = "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE"
#: what an answer of an unexpected shape raises while it is read
GARBLED = (TypeError, AttributeError, ValueError, KeyError)
LABEL = "__meta_gce_"


@dataclass(frozen=True, kw_only=True)
class GCEConfig:
    enabled: bool = False
    id: str = setting("", doc="Names the element; a scraper's discoverer-id.")
    project: str = setting("", doc="Google Cloud project whose instances are listed.")
    zone: str = setting("", doc="Zone of the instances, e.g. europe-west1-b.")
    filter: str = setting("", doc="Compute Engine API filter expression, e.g. "
                          "'status = \"RUNNING\"'; empty: every instance.")
    refresh_interval: Duration = setting(Duration(60 * 1_000_000_000),
                                         doc="How often the instances are listed.")
    port: int = setting(80, doc="Port added to each instance's private IP.")
    tag_separator: str = setting(",", doc="Joins (and surrounds) the network tags in "
                                 "__meta_gce_tags.")

    def validate(self) -> None:
        if not self.enabled:
            return
        if not self.id:
            raise ConfigError("id", "must be set when enabled = true")
        if self.refresh_interval <= 0:
            raise ConfigError("refresh-interval", "must be greater than 0")


class GCEError(KapaError):
    """The Compute Engine API refused or garbled an answer."""


def compute_base(env: Mapping[str, str]) -> str:
    override = env.get(COMPUTE_OVERRIDE_ENV, "")
    if override:
        return override.rstrip("/") + "/projects/"
    return COMPUTE_BASE


def _api_error(response: httpx.Response) -> GCEError:
    """Worded as google.golang.org/api's googleapi.Error."""
    try:
        error = response.json()["error"]
        message = f"googleapi: Error {int(error.get('code') or response.status_code)}: " \
                  f"{error.get('message', '')}"
        reasons = [e.get("reason", "") for e in error.get("errors") or []
                   if isinstance(e, dict) and e.get("reason")]
        return GCEError(message + (", " + ", ".join(reasons) if reasons else ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        body = response.content[:4096].decode("utf-8", "replace")
        return GCEError(f"googleapi: got HTTP response code {response.status_code} "
                        f"with body: {body}")


def instance_target(instance: Mapping[str, Any], project: str, port: int,
                    tag_separator: str) -> tuple[str, dict[str, str]] | None:
    """(target, labels) of one instance of an InstanceList, as Prometheus makes them;
    None for an instance without network interfaces."""
    interfaces = instance.get("networkInterfaces") or []
    if not interfaces:
        return None
    primary = interfaces[0] or {}
    labels = {
        LABEL + "project": project,
        LABEL + "zone": str(instance.get("zone") or ""),
        LABEL + "instance_name": str(instance.get("name") or ""),
        LABEL + "instance_status": str(instance.get("status") or ""),
        LABEL + "network": str(primary.get("network") or ""),
        LABEL + "subnetwork": str(primary.get("subnetwork") or ""),
        LABEL + "private_ip": str(primary.get("networkIP") or ""),
    }
    tags = (instance.get("tags") or {}).get("items") or []
    if tags:
        # Surrounded by the separator too, so that a pattern need not mind positions.
        labels[LABEL + "tags"] = tag_separator + tag_separator.join(
            str(t) for t in tags) + tag_separator
    for item in (instance.get("metadata") or {}).get("items") or []:
        if not isinstance(item, Mapping) or item.get("value") is None:
            continue
        labels[LABEL + "metadata_" + sanitize_label_name(str(item.get("key") or ""))] = \
            str(item["value"])
    access = primary.get("accessConfigs") or []
    if access and (access[0] or {}).get("type") == "ONE_TO_ONE_NAT":
        labels[LABEL + "public_ip"] = str(access[0].get("natIP") or "")
    return f"{labels[LABEL + 'private_ip']}:{port}", labels


def instance_groups(instances: list[Mapping[str, Any]], config: GCEConfig) -> list[TargetGroup]:
    """One group per instance with an interface, named ``GCE_<project>_<zone>/<name>``."""
    groups = []
    source = f"GCE_{config.project}_{config.zone}"
    for instance in instances:
        found = instance_target(instance, config.project, config.port, config.tag_separator)
        if found is not None:
            target, labels = found
            groups.append(TargetGroup((target,), labels,
                                      source=f"{source}/{instance.get('name') or ''}"))
    return groups


class GCEDiscoverer:
    """Lists the zone's instances every refresh-interval and publishes them."""

    def __init__(self, config: GCEConfig, context: DiscoveryContext, *,
                 env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.context = context
        self.env = dict(os.environ if env is None else env)
        self.credentials: GoogleCredentials | None = None

    def _client(self) -> httpx.AsyncClient:
        return self.context.http_client()

    def list_url(self, page_token: str = "") -> str:
        config = self.config
        query = {"alt": "json"}
        if config.filter:
            query["filter"] = config.filter
        if page_token:
            query["pageToken"] = page_token
        path = (f"{urllib.parse.quote(config.project, safe='')}/zones/"
                f"{urllib.parse.quote(config.zone, safe='')}/instances")
        return compute_base(self.env) + path + "?" + urllib.parse.urlencode(query)

    async def instances(self) -> list[Mapping[str, Any]]:
        """Every page of the zone's instance list."""
        assert self.credentials is not None
        client, check = self._client(), self.context.check_outgoing
        found: list[Mapping[str, Any]] = []
        page_token = ""
        while True:
            token = await self.credentials.token(client, check)
            url = self.list_url(page_token)
            check(url)
            response = await client.get(url, headers={"Authorization": f"Bearer {token}"})
            if not 200 <= response.status_code <= 299:
                raise _api_error(response)
            try:
                page = response.json()
                items = page.get("items") or []
                found.extend(item for item in items if isinstance(item, Mapping))
                page_token = str(page.get("nextPageToken") or "")
            except (ValueError, AttributeError, TypeError) as exc:
                raise GCEError(f"invalid instance list: {exc}") from None
            if not page_token:
                return found

    async def refresh(self) -> list[TargetGroup]:
        try:
            return instance_groups(await self.instances(), self.config)
        except (KapaError, httpx.HTTPError, OSError, *GARBLED) as exc:
            raise GCEError(f"error retrieving refresh targets from gce: {exc}") from None

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            self.credentials = await find_google_credentials(
                self._client(), self.context.check_outgoing, self.env)
        except KapaError as exc:
            raise DiscoverySetupError("error setting up communication with GCE service: "
                                      f"{exc}") from None
        self.context.log.debug("gce discovery credentials", origin=self.credentials.origin,
                               kind=self.credentials.kind)
        await refresh_every(self.context, self.refresh, self.config.refresh_interval / 1e9,
                            "gce discovery refresh failed", (GCEError,))


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [
        Section(
            name="gce",
            schema=GCEConfig,
            multiple=True,
            element_key="id",
            check=unique_elements("id"),
            service=discovery_test_service(GCEDiscoverer),
            doc="Discover Google Compute Engine instances.",
        )
    ]


@hookimpl
def kapa_discovery_kinds() -> list[DiscoveryKind]:
    return [DiscoveryKind(name="gce", section="gce", factory=GCEDiscoverer,
                          doc="Google Compute Engine instances of a project's zone.")]

"""kubernetes: the [[kubernetes]] section,
discovering Kubernetes API servers (k8sAutoscale and discovery).

Each element is named by its ``id``, which a ``[[scraper]]`` names in ``discoverer-id``
and a ``k8sAutoscale`` node in ``.cluster()``. The section's service offers Kapacitor's
service test (``GET /api`` on the element's API servers); every enabled element also runs
a discoverer of the nodes, pods, services or endpoints its ``resource`` names
(:mod:`kapa_plugins.discovery.kubernetes_discovery`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from kapa_core.plugin_api import (
    CloudError,
    ConfigError,
    DiscoveryKind,
    K8sClient,
    Section,
    ServiceContext,
    find_cluster,
    hookimpl,
    require_choice,
    setting,
    unique_elements,
)

from .kubernetes_discovery import discoverer


@dataclass(frozen=True, kw_only=True)
class KubernetesConfig:
    enabled: bool = False
    id: str = ""
    in_cluster: bool = False
    api_servers: list[str] = setting([])
    token: str = setting("", redact=True)
    ca_path: str = ""
    namespace: str = ""
    resource: str = setting("", doc="node, pod, service or endpoint, for discovery.")

    def validate(self) -> None:
        if not self.enabled:
            return
        require_choice(self.resource, "resource", ("", "node", "pod", "service", "endpoint"))
        if self.in_cluster and (self.api_servers or self.token or self.ca_path or
                                self.namespace):
            raise ConfigError("in-cluster", "cannot be combined with api-servers, token, "
                              "ca-path or namespace")
        if not self.in_cluster and not self.api_servers:
            raise ConfigError(
                "api-servers", "must list at least one API server unless in-cluster = true"
            )


def _check_ids(elements: tuple[KubernetesConfig, ...]) -> None:
    # As Kapacitor: one element may leave its id empty (the cluster a k8sAutoscale with
    # no .cluster() uses); with several, each needs one, all different.
    if len(elements) > 1:
        for i, element in enumerate(elements):
            if not element.id:
                raise ConfigError(f"[{i}].id", "must not be empty")
    unique_elements("id")(elements)


class KubernetesService:
    """Offers ``/kapacitor/v1/service-tests/kubernetes`` as Kapacitor does."""

    def __init__(self, context: ServiceContext) -> None:
        self.elements: tuple[KubernetesConfig, ...] = context.config
        # As Kapacitor, every element's client is made when the service starts: an
        # in-cluster element without its service account (or an unreadable ca-path)
        # stops the daemon.
        for element in self.elements:
            try:
                K8sClient(element)
            except CloudError as exc:
                raise CloudError(f"kubernetes service: failed to create k8s client config: "
                                 f"{exc}") from None

    async def serve(self, *,
                    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()

    def test_options(self) -> dict[str, Any]:
        return {"id": ""}

    async def test(self, options: dict[str, Any]) -> None:
        cluster = str(options.get("id") or "")
        if not any(e.id == cluster for e in self.elements):
            raise CloudError("unknown kubernetes cluster "
                             f"{json.dumps(cluster, ensure_ascii=False)}")
        try:
            client = K8sClient(find_cluster(self.elements, cluster, "kubernetes"))
        except CloudError as exc:
            raise CloudError(f"failed to get client: {exc}") from None
        async with httpx.AsyncClient(timeout=30, verify=client.verify) as http:
            client.http = http
            try:
                await client.versions()
            except CloudError as exc:
                raise CloudError(f"failed to query server versions: {exc}") from None


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [
        Section(
            name="kubernetes",
            schema=KubernetesConfig,
            multiple=True,
            element_key="id",
            check=_check_ids,
            service=KubernetesService,
            doc="Discover Kubernetes API servers (k8sAutoscale and discovery).",
        )
    ]


@hookimpl
def kapa_discovery_kinds() -> list[DiscoveryKind]:
    return [DiscoveryKind(name="kubernetes", section="kubernetes", factory=discoverer,
                          doc="Kubernetes nodes, pods, services or endpoints, listed and "
                              "watched.")]

"""swarm: the [[swarm]] section, discovering Docker Swarm managers (swarmAutoscale).

Each element is named by its ``id``, which a ``swarmAutoscale`` node names in
``.cluster()``. The section's service offers Kapacitor's service test (``GET /info`` on
the element's servers must give a server version).
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
    Section,
    ServiceContext,
    SwarmClient,
    find_cluster,
    hookimpl,
    setting,
    unique_elements,
)


@dataclass(frozen=True, kw_only=True)
class SwarmConfig:
    enabled: bool = False
    id: str = ""
    servers: list[str] = setting([])
    ssl_ca: str = ""
    ssl_cert: str = ""
    ssl_key: str = ""
    insecure_skip_verify: bool = False

    def validate(self) -> None:
        if not self.enabled:
            return
        if not self.servers:
            raise ConfigError("servers", "must list at least one Swarm server")


class SwarmService:
    """Offers ``/kapacitor/v1/service-tests/swarm`` as Kapacitor does."""

    def __init__(self, context: ServiceContext) -> None:
        self.elements: tuple[SwarmConfig, ...] = context.config
        # As Kapacitor, every element's client is made when the service starts: TLS
        # files that cannot be loaded stop the daemon.
        for element in self.elements:
            try:
                SwarmClient(element)
            except CloudError as exc:
                raise CloudError("docker swarm service: failed to create cluster for "
                                 f"{json.dumps(element.id)}: failed to create swarm client "
                                 f"config: {exc}") from None

    async def serve(self, *,
                    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()

    def test_options(self) -> dict[str, Any]:
        return {"id": ""}

    async def test(self, options: dict[str, Any]) -> None:
        cluster = str(options.get("id") or "")
        if not any(e.id == cluster for e in self.elements):
            raise CloudError(f"unknown swarm cluster {json.dumps(cluster, ensure_ascii=False)}")
        try:
            client = SwarmClient(find_cluster(self.elements, cluster, "swarm"))
        except CloudError as exc:
            raise CloudError(f"failed to get client: {exc}") from None
        async with httpx.AsyncClient(timeout=30, verify=client.verify) as http:
            client.http = http
            try:
                version = await client.version()
            except CloudError as exc:
                raise CloudError(f"failed to query server version: {exc}") from None
        if not version:
            raise CloudError("got empty version from server")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [
        Section(
            name="swarm",
            schema=SwarmConfig,
            multiple=True,
            element_key="id",
            check=unique_elements("id"),
            service=SwarmService,
            doc="Discover Docker Swarm managers (swarmAutoscale).",
        )
    ]

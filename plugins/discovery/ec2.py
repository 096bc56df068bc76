"""ec2: the [[ec2]] section, discovering AWS EC2 instances (also used by ec2Autoscale).

Each element is named by its ``id``, which a ``[[scraper]]`` names in ``discoverer-id``.
Configuration only for now: the discovery service arrives with the scraping work. The
section's service answers Kapacitor's service test for an unknown or disabled element.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import trio

from kapa_core.plugin_api import (
    ConfigError,
    Duration,
    KapaError,
    Section,
    ServiceContext,
    hookimpl,
    setting,
    unique_elements,
)


@dataclass(frozen=True, kw_only=True)
class EC2Config:
    enabled: bool = False
    id: str = ""
    region: str = ""
    access_key: str = ""
    secret_key: str = setting("", redact=True)
    profile: str = ""
    refresh_interval: Duration = Duration(60 * 1_000_000_000)
    port: int = 80

    def validate(self) -> None:
        if not self.enabled:
            return
        if not self.id:
            raise ConfigError("id", "must be set when enabled = true")
        if not self.region:
            raise ConfigError("region", "must be set")


class EC2Service:
    """Offers ``/kapacitor/v1/service-tests/ec2`` (options ``id``) as Kapacitor lists it."""

    def __init__(self, context: ServiceContext) -> None:
        self.elements: tuple[EC2Config, ...] = context.config

    async def serve(self, *,
                    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()

    def test_options(self) -> dict[str, Any]:
        return {"id": ""}

    async def test(self, options: dict[str, Any]) -> None:
        cluster = str(options.get("id") or "")
        if not any(e.id == cluster and e.enabled for e in self.elements):
            raise KapaError(f"discoverer {json.dumps(cluster, ensure_ascii=False)} is not "
                            "enabled or does not exist")
        raise KapaError("EC2 discovery is not available in kapa-core yet")


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [
        Section(
            name="ec2",
            schema=EC2Config,
            multiple=True,
            element_key="id",
            check=unique_elements("id"),
            service=EC2Service,
            doc="Discover AWS EC2 instances (also used by ec2Autoscale).",
        )
    ]

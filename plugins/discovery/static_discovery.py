"""static-discovery: the [[static-discovery]] section, discovering a fixed list of targets.

Each enabled element publishes one target group, its ``targets`` with its ``labels``,
under the source ``"0"`` (the name Prometheus' static provider gives its first group).
A ``[[scraper]]`` names the element by its ``id`` in ``discoverer-id``. A config override
of the section re-creates the changed elements, which publish their new list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import trio

from kapa_core.plugin_api import (
    ConfigError,
    DiscoveryContext,
    DiscoveryKind,
    Section,
    TargetGroup,
    discovery_test_service,
    hookimpl,
    setting,
    unique_elements,
)


@dataclass(frozen=True, kw_only=True)
class StaticDiscoveryConfig:
    enabled: bool = False
    id: str = ""
    targets: list[str] = setting([], doc="host:port targets.")
    labels: dict[str, str] = setting({})

    def validate(self) -> None:
        if not self.enabled:
            return
        if not self.id:
            raise ConfigError("id", "must be set when enabled = true")


class StaticDiscoverer:
    """Publishes the element's one group, then waits to be cancelled."""

    def __init__(self, config: StaticDiscoveryConfig, context: DiscoveryContext) -> None:
        self.config = config
        self.context = context

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        config = self.config
        group = TargetGroup(tuple(config.targets), dict(config.labels), source="0")
        self.context.update([group], replace=True)
        task_status.started()
        await trio.sleep_forever()


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [
        Section(
            name="static-discovery",
            schema=StaticDiscoveryConfig,
            multiple=True,
            element_key="id",
            check=unique_elements("id"),
            service=discovery_test_service(StaticDiscoverer),
            doc="Discover a fixed list of targets.",
        )
    ]


@hookimpl
def kapa_discovery_kinds() -> list[DiscoveryKind]:
    return [DiscoveryKind(name="static-discovery", section="static-discovery",
                          factory=StaticDiscoverer, doc="A fixed list of targets.")]

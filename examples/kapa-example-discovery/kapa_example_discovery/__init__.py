"""An example kapa-core discovery plugin: ``[[example-discovery]]`` elements list fixed targets.

Each enabled element publishes one target group: its ``targets`` with its ``labels``,
named by the source ``example-discovery/<id>``. A ``[[scraper]]`` element names it with
``discoverer-service = "example-discovery"`` and ``discoverer-id = "<id>"`` (the daemon
runs only the elements a scraper names);
``GET /kapacitor/v1/discovery`` shows what it publishes. A config override of the
section re-creates the discoverers, which publish the new list.

Everything it needs from kapa-core comes from ``kapa_core.plugin_api``; the package is
found through its ``kapa_core.plugins`` entry point once it is pip-installed.
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
    hookimpl,
    setting,
    unique_elements,
)

__version__ = "1.0.0"


@dataclass(frozen=True, kw_only=True)
class ExampleDiscoveryConfig:
    """One ``[[example-discovery]]`` element."""

    enabled: bool = False
    id: str = setting("", doc="Names the element; a scraper's discoverer-id.")
    targets: list[str] = setting([], doc="host:port targets.")
    labels: dict[str, str] = setting({}, doc="Labels of every target.")

    def validate(self) -> None:
        if not self.enabled:
            return
        if not self.id:
            raise ConfigError("id", "must be set when enabled = true")
        for i, target in enumerate(self.targets):
            host, sep, port = target.rpartition(":")
            if not host or not sep or not port.isdigit():
                raise ConfigError(f"targets[{i}]", f"invalid target {target!r} "
                                  "(expected host:port)")


class ExampleDiscoverer:
    """Publishes the element's fixed group once, then waits to be cancelled."""

    def __init__(self, config: ExampleDiscoveryConfig, context: DiscoveryContext) -> None:
        self.config = config
        self.context = context

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        config = self.config
        self.context.update([TargetGroup(tuple(config.targets), config.labels,
                                         source=f"example-discovery/{config.id}")])
        self.context.log.info("example discovery published", targets=len(config.targets))
        task_status.started()
        await trio.sleep_forever()


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="example-discovery", schema=ExampleDiscoveryConfig, multiple=True,
                    element_key="id", check=unique_elements("id"),
                    doc="Fixed scrape targets (package kapa-example-discovery).")]


@hookimpl
def kapa_discovery_kinds() -> list[DiscoveryKind]:
    return [DiscoveryKind(name="example-discovery", section="example-discovery",
                          factory=ExampleDiscoverer, doc="A fixed list of targets.")]

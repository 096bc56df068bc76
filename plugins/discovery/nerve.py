"""nerve: the [[nerve]] section, discovering Airbnb Nerve registrations in ZooKeeper.

Each enabled element watches the ZooKeeper trees at its ``paths`` on its ``servers``
(see :mod:`kapa_plugins.discovery.zookeeper`) and publishes one target group per node
whose data is a nerve registration, named by the node's path::

    {"host": "10.0.0.1", "port": 9100, "name": "web-1"}

The target is ``host:port``, with the labels Prometheus' nerve discovery (vendored by
Kapacitor 1.5.7) sets: ``__meta_nerve_path``, ``__meta_nerve_endpoint_host``,
``__meta_nerve_endpoint_port`` and ``__meta_nerve_endpoint_name``. The data is decoded
as Go decodes it into that struct (see :func:`parse_member`). A ``[[scraper]]`` names
the element with ``discoverer-service = "nerve"`` and ``discoverer-id``.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapa_core.plugin_api import (
    ConfigError,
    DiscoveryContext,
    DiscoveryKind,
    Duration,
    Section,
    discovery_test_service,
    hookimpl,
    setting,
    unique_elements,
)

from .prometheus_sd import join_host_port
from .zookeeper import ZooKeeperDiscoverer, decode_member

PREFIX = "__meta_nerve_"
#: Prometheus' nerveMember struct: field name -> kind
MEMBER = {"host": "string", "port": "int", "name": "string"}


@dataclass(frozen=True, kw_only=True)
class NerveConfig:
    enabled: bool = False
    id: str = setting("", doc="Names the element; a scraper's discoverer-id.")
    servers: list[str] = setting([], doc="ZooKeeper servers (host:port; port 2181 when "
                                 "left out).")
    paths: list[str] = setting([], doc="ZooKeeper paths whose trees are watched; each "
                               "must begin with '/'.")
    timeout: Duration = setting(Duration(10 * 1_000_000_000),
                                doc="ZooKeeper session timeout.")

    def validate(self) -> None:
        for i, path in enumerate(self.paths):
            if not path.startswith("/"):
                raise ConfigError(f"paths[{i}]", "nerve discovery paths must begin with "
                                  f"'/': {path}")
        if not self.enabled:
            return
        if not self.id:
            raise ConfigError("id", "must be set when enabled = true")
        if not self.servers:
            raise ConfigError("servers", "must list at least one ZooKeeper server")


def parse_member(data: bytes, path: str) -> tuple[str, dict[str, str]]:
    """A nerve node's target and labels (Prometheus' parseNerveMember);
    :class:`~kapa_plugins.discovery.zookeeper.GoJSONError` when Go would fail."""
    member = decode_member(data, MEMBER, f"nerve member {path!r}")
    labels = {PREFIX + "path": path,
              PREFIX + "endpoint_host": member["host"],
              PREFIX + "endpoint_port": str(member["port"]),
              PREFIX + "endpoint_name": member["name"]}
    return join_host_port(member["host"], member["port"]), labels


def discoverer(config: NerveConfig, context: DiscoveryContext) -> ZooKeeperDiscoverer:
    return ZooKeeperDiscoverer(config, context, parse_member)


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [
        Section(
            name="nerve",
            schema=NerveConfig,
            multiple=True,
            element_key="id",
            check=unique_elements("id"),
            service=discovery_test_service(discoverer),
            doc="Discover Airbnb Nerve registrations in ZooKeeper.",
        )
    ]


@hookimpl
def kapa_discovery_kinds() -> list[DiscoveryKind]:
    return [DiscoveryKind(name="nerve", section="nerve", factory=discoverer,
                          doc="Airbnb Nerve registrations in ZooKeeper.")]

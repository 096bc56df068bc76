"""serverset: the [[serverset]] section, discovering Twitter Serversets in ZooKeeper.

Each enabled element watches the ZooKeeper trees at its ``paths`` on its ``servers``
(see :mod:`kapa_plugins.discovery.zookeeper`) and publishes one target group per node
whose data is a serverset member, named by the node's path::

    {"serviceEndpoint": {"host": "10.0.0.1", "port": 9100},
     "additionalEndpoints": {"http": {"host": "10.0.0.1", "port": 8080}},
     "status": "ALIVE", "shard": 0}

The target is the service endpoint, with the labels Prometheus' serverset discovery
(vendored by Kapacitor 1.5.7) sets: ``__meta_serverset_path``,
``__meta_serverset_endpoint_host``, ``__meta_serverset_endpoint_port``,
``__meta_serverset_endpoint_host_<name>`` and ``__meta_serverset_endpoint_port_<name>``
per additional endpoint (the name with every character but ``[a-zA-Z0-9_]`` made
``_``), ``__meta_serverset_status`` and ``__meta_serverset_shard``. The data is decoded
as Go decodes it into that struct (see :func:`parse_member`). A ``[[scraper]]`` names
the element with ``discoverer-service = "serverset"`` and ``discoverer-id``.
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

from .prometheus_sd import join_host_port, sanitize_label_name
from .zookeeper import (
    ZooKeeperDiscoverer,
    decode_member,
)

PREFIX = "__meta_serverset_"
ENDPOINT = {"host": "string", "port": "int"}
#: Prometheus' serversetMember struct: field name -> kind
MEMBER = {"serviceEndpoint": ENDPOINT, "additionalEndpoints": ("map", ENDPOINT),
          "status": "string", "shard": "int"}


@dataclass(frozen=True, kw_only=True)
class ServersetConfig:
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
                raise ConfigError(f"paths[{i}]", "serverset discovery config paths must "
                                  f"begin with '/': {path}")
        if not self.enabled:
            return
        if not self.id:
            raise ConfigError("id", "must be set when enabled = true")
        if not self.servers:
            raise ConfigError("servers", "must list at least one ZooKeeper server")


def parse_member(data: bytes, path: str) -> tuple[str, dict[str, str]]:
    """A serverset member node's target and labels (Prometheus' parseServersetMember);
    :class:`~kapa_plugins.discovery.zookeeper.GoJSONError` when Go would fail."""
    member = decode_member(data, MEMBER, f"serverset member {path!r}")
    endpoint = member["serviceEndpoint"]
    labels = {PREFIX + "path": path,
              PREFIX + "endpoint_host": endpoint["host"],
              PREFIX + "endpoint_port": str(endpoint["port"])}
    for name, extra in (member["additionalEndpoints"] or {}).items():
        clean = sanitize_label_name(name)
        labels[f"{PREFIX}endpoint_host_{clean}"] = extra["host"]
        labels[f"{PREFIX}endpoint_port_{clean}"] = str(extra["port"])
    labels[PREFIX + "status"] = member["status"]
    labels[PREFIX + "shard"] = str(member["shard"])
    return join_host_port(endpoint["host"], endpoint["port"]), labels


def discoverer(config: ServersetConfig, context: DiscoveryContext) -> ZooKeeperDiscoverer:
    return ZooKeeperDiscoverer(config, context, parse_member)


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [
        Section(
            name="serverset",
            schema=ServersetConfig,
            multiple=True,
            element_key="id",
            check=unique_elements("id"),
            service=discovery_test_service(discoverer),
            doc="Discover Twitter Serversets in ZooKeeper.",
        )
    ]


@hookimpl
def kapa_discovery_kinds() -> list[DiscoveryKind]:
    return [DiscoveryKind(name="serverset", section="serverset", factory=discoverer,
                          doc="Twitter serverset members registered in ZooKeeper.")]

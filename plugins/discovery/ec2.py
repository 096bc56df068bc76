"""ec2: the [[ec2]] section, discovering AWS EC2 instances (also used by ec2Autoscale).

Each enabled element asks EC2 for its region's instances (``DescribeInstances``, every
page) at once and then every ``refresh-interval``, as Kapacitor 1.5.7's discoverer
(Prometheus's EC2 service discovery) does: every instance with a private IP address is a
target ``<private ip>:<port>``, whatever its state, with Prometheus's ``__meta_ec2_*``
labels. A failed lookup is logged and the last targets stay.

Credentials and the endpoint are found as kapa_core.aws describes (the element's keys,
else the AWS SDK's chain; ``AWS_ENDPOINT_URL_EC2`` names another endpoint). The
section's service test is Kapacitor's: it runs a discoverer for the element named by
``id`` and waits for its first answer. ``|ec2Autoscale()`` finds its element here by
``id`` (its ``cluster``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import trio

from kapa_core.plugin_api import (
    AWSError,
    CloudError,
    ConfigError,
    DiscoveryContext,
    DiscoveryKind,
    Duration,
    EC2Client,
    Instance,
    Section,
    TargetGroup,
    discovery_test_service,
    hookimpl,
    setting,
    unique_elements,
)

from .prometheus_sd import join_host_port, refresh_every, sanitize_label_name

META = "__meta_ec2_"
#: the shortest refresh interval (Kapacitor's discoverer panics on zero or less)
MIN_REFRESH = 1.0


@dataclass(frozen=True, kw_only=True)
class EC2Config:
    enabled: bool = False
    id: str = setting("", doc="Names the element; a scraper's discoverer-id and an "
                      "ec2Autoscale node's cluster.")
    region: str = setting("", doc="AWS region whose instances are listed, e.g. us-east-1.")
    access_key: str = setting("", doc="AWS access key id; empty (with secret-key): the "
                              "AWS SDK's credential chain.")
    secret_key: str = setting("", redact=True, doc="Secret of the access key.")
    profile: str = setting("", doc="Shared credentials file profile used without keys; "
                           "empty: $AWS_PROFILE, else default.")
    refresh_interval: Duration = setting(Duration(60 * 1_000_000_000),
                                         doc="How often the instances are listed.")
    port: int = setting(80, doc="Port added to each instance's private IP.")

    def validate(self) -> None:
        if not self.enabled:
            return
        if not self.id:
            raise ConfigError("id", "must be set when enabled = true")
        if not self.region:
            raise ConfigError("region", "must be set")




def instance_labels(inst: Instance) -> dict[str, str]:
    """The labels Prometheus's EC2 discovery gives an instance."""
    labels = {META + "instance_id": inst.id, META + "private_ip": inst.private_ip or ""}
    if inst.public_ip is not None:
        labels[META + "public_ip"] = inst.public_ip
        labels[META + "public_dns_name"] = inst.public_dns or ""
    labels[META + "availability_zone"] = inst.availability_zone or ""
    labels[META + "instance_state"] = inst.state or ""
    labels[META + "instance_type"] = inst.type or ""
    if inst.vpc_id is not None:
        labels[META + "vpc_id"] = inst.vpc_id
        labels[META + "subnet_id"] = "," + ",".join(inst.subnets) + ","
    for key, value in inst.tags:
        labels[META + "tag_" + sanitize_label_name(key)] = value
    return labels


def target_groups(region: str, port: int, instances: list[Instance]) -> list[TargetGroup]:
    """One group per instance with a private IP (its labels are its own), named
    ``<region>:<n>``; Prometheus makes them one group named by the region."""
    groups: list[TargetGroup] = []
    for inst in instances:
        if inst.private_ip is None:
            continue
        groups.append(TargetGroup((join_host_port(inst.private_ip, port),),
                                  instance_labels(inst), source=f"{region}:{len(groups)}"))
    return groups


class EC2Discoverer:
    """One ``[[ec2]]`` element: the region's instances every ``refresh-interval``."""

    def __init__(self, config: EC2Config, context: DiscoveryContext) -> None:
        self.config = config
        self.context = context
        self.client = EC2Client(config, check_outgoing=context.check_outgoing)
        self.client.http = context.http_client(self.client.tls)

    async def refresh(self) -> list[TargetGroup]:
        try:
            instances = await self.client.describe_instances()
        except AWSError as exc:
            raise CloudError(f"could not describe instances: {exc}") from None
        return target_groups(self.config.region, self.config.port, instances)

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await refresh_every(self.context, self.refresh,
                            max(self.config.refresh_interval / 1e9, MIN_REFRESH),
                            "ec2 discovery failed", (CloudError,))


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [
        Section(
            name="ec2",
            schema=EC2Config,
            multiple=True,
            element_key="id",
            check=unique_elements("id"),
            service=discovery_test_service(EC2Discoverer),
            doc="Discover AWS EC2 instances (also used by ec2Autoscale).",
        )
    ]


@hookimpl
def kapa_discovery_kinds() -> list[DiscoveryKind]:
    return [DiscoveryKind(name="ec2", section="ec2", factory=EC2Discoverer,
                          doc="AWS EC2 instances of a region (DescribeInstances).")]

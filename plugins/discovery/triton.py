"""triton: the [[triton]] section, discovering Joyent Triton containers.

Each enabled element asks the Triton discovery service (Triton's cmon) for
``GET https://<endpoint>:<port>/v<version>/discover`` at once and then every
``refresh-interval``, presenting the client certificate of ``ssl-cert``/``ssl-key`` and
trusting ``ssl-ca``, as the Prometheus Triton discovery Kapacitor 1.5.7 vendors does.
The answer ``{"containers": [{"vm_uuid": ..., "vm_alias": ..., "vm_brand": ...,
"vm_image_uuid": ..., "server_uuid": ...}, ...]}`` gives one target per container,
``<vm_uuid>.<dns-suffix>:<port>``, with the labels ``__meta_triton_machine_id``
(vm_uuid), ``__meta_triton_machine_alias``, ``__meta_triton_machine_brand``,
``__meta_triton_machine_image`` (vm_image_uuid) and ``__meta_triton_server_id``
(server_uuid). ``account`` is not sent (neither does the vendored code).

Groups: Prometheus makes one group (source = the discovery URL) whose targets carry
their own labels; kapa-core's groups share their labels, so each container is a group of
its own named ``<discovery URL>:<index>``. A failed refresh is logged and keeps the
previous groups. A non-2xx answer is an error in kapa-core (Kapacitor decodes whatever
body comes back).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import trio

from kapa_core.plugin_api import (
    TLS,
    ConfigError,
    DiscoveryContext,
    DiscoveryKind,
    Duration,
    Section,
    TargetGroup,
    discovery_test_service,
    hookimpl,
    unique_elements,
)

from .prometheus_sd import describe as _describe
from .prometheus_sd import get_json, go_field, refresh_every

META = "__meta_triton_"
#: label name -> the container field it comes from
LABELS = {"machine_id": "vm_uuid", "machine_alias": "vm_alias", "machine_brand": "vm_brand",
          "machine_image": "vm_image_uuid", "server_id": "server_uuid"}


@dataclass(frozen=True, kw_only=True)
class TritonConfig:
    enabled: bool = False
    id: str = ""
    account: str = ""
    dns_suffix: str = ""
    endpoint: str = ""
    port: int = 9163
    refresh_interval: Duration = Duration(60 * 1_000_000_000)
    version: int = 1
    ssl_ca: str = ""
    ssl_cert: str = ""
    ssl_key: str = ""
    ssl_server_name: str = ""
    insecure_skip_verify: bool = False

    def validate(self) -> None:
        if not self.enabled:
            return
        if not self.id:
            raise ConfigError("id", "must be set when enabled = true")
        for key in ("account", "dns_suffix", "endpoint"):
            if not getattr(self, key):
                raise ConfigError(key.replace("_", "-"), "must be set")


class TritonError(Exception):
    """An answer that cannot be turned into containers."""



def describe(exc: BaseException) -> str:
    """A failure as a log line shows it (see ``prometheus_sd.describe``)."""
    return _describe(exc, TritonError)


def discovery_url(config: TritonConfig) -> str:
    return f"https://{config.endpoint}:{config.port}/v{config.version}/discover"


def container_groups(body: Any, config: TritonConfig) -> list[TargetGroup]:
    """The groups of a ``/discover`` answer (decoded JSON); TritonError when its shape
    is not the one the vendored discovery decodes."""
    if body is None:
        return []
    if not isinstance(body, dict):
        raise TritonError(f"expected an object, got {type(body).__name__}")
    containers = go_field(body, "containers")
    if containers is None:
        return []
    if not isinstance(containers, list):
        raise TritonError(f"containers: expected an array, got {type(containers).__name__}")
    source = discovery_url(config)
    groups: list[TargetGroup] = []
    for index, container in enumerate(containers):
        if container is None:
            container = {}
        if not isinstance(container, dict):
            raise TritonError(f"containers[{index}]: expected an object, got "
                              f"{type(container).__name__}")
        labels: dict[str, str] = {}
        for label, key in LABELS.items():
            value = go_field(container, key)
            if value is not None and not isinstance(value, str):
                raise TritonError(f"containers[{index}].{key}: expected a string, got "
                                  f"{type(value).__name__}")
            labels[META + label] = value or ""
        target = f"{labels[META + 'machine_id']}.{config.dns_suffix}:{config.port}"
        groups.append(TargetGroup((target,), labels, source=f"{source}:{index}"))
    return groups


class TritonDiscoverer:
    """One ``[[triton]]`` element: asks for the containers every ``refresh-interval``."""

    def __init__(self, config: TritonConfig, context: DiscoveryContext) -> None:
        self.config = config
        self.context = context
        self.tls = TLS.of(config)

    async def refresh(self) -> list[TargetGroup]:
        """One lookup; raises on failure."""
        config = self.config
        url = discovery_url(config)
        self.context.check_outgoing(url)
        body = await get_json(self.context.http_client(self.tls), url, TritonError,
                              server_name=config.ssl_server_name,
                              not_json="an error occurred unmarshaling the discovery "
                                       "response json")
        return container_groups(body, config)

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await refresh_every(self.context, self.refresh,
                            int(self.config.refresh_interval) / 1e9 or 60.0,
                            "refreshing Triton targets failed", text=describe)


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [
        Section(
            name="triton",
            schema=TritonConfig,
            multiple=True,
            element_key="id",
            check=unique_elements("id"),
            service=discovery_test_service(TritonDiscoverer),
            doc="Discover Joyent Triton containers.",
        )
    ]


@hookimpl
def kapa_discovery_kinds() -> list[DiscoveryKind]:
    return [DiscoveryKind(name="triton", section="triton", factory=TritonDiscoverer,
                          doc="Joyent Triton containers through the cmon discovery API.")]

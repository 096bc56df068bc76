"""marathon: the [[marathon]] section, discovering Marathon applications.

Each enabled element asks one of its ``servers`` (picked at random each time, as
Prometheus does) for ``GET <server>/v2/apps/?embed=apps.tasks`` every
``refresh-interval`` and turns every app into targets, as the Prometheus Marathon
discovery Kapacitor 1.5.7 vendors does:

- one target per task and task port: ``<task host>:<port>``;
- labels ``__meta_marathon_app`` (the app id), ``__meta_marathon_image`` (its Docker
  image), ``__meta_marathon_app_label_<name>`` per app label, and per target
  ``__meta_marathon_task`` (the task id), ``__meta_marathon_port_definition_label_<name>``
  (labels of the app's port definition at the port's index) and
  ``__meta_marathon_port_mapping_label_<name>`` (labels of the Docker port mapping at
  that index); label names are sanitized as Prometheus does (``[^a-zA-Z0-9_]`` -> ``_``).

``bearer-token`` is sent as ``Authorization: token=<token>``, the DC/OS form the vendored
code uses (not ``Bearer``). ``timeout`` bounds each request; the TLS keys apply to HTTPS
servers.

Groups: Prometheus makes one group per app (source = the app id) whose targets carry
their own labels; kapa-core's groups share their labels, so each target is a group of
its own named ``<app id>:<index>`` (index of the target in the app, from 0) carrying
the app's and the target's labels. A failed refresh (unreachable server, non-2xx
answer, undecodable JSON) is logged and keeps the previous groups until the next one.

Differences from Kapacitor (deliberate, documented): the first request is made at once
(Prometheus' vendored discovery first waits one ``refresh-interval``), and a non-2xx
answer is an error (Kapacitor decodes whatever body comes back, so an error page
written as JSON drops every target).
"""

from __future__ import annotations

import random
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
    setting,
    unique_elements,
)

from .prometheus_sd import describe as _describe
from .prometheus_sd import get_json, go_field, join_host_port, refresh_every, sanitize_label_name

#: the path and query every request asks for (as the vendored discovery)
APPS_PATH = "/v2/apps/?embed=apps.tasks"
META = "__meta_marathon_"


@dataclass(frozen=True, kw_only=True)
class MarathonConfig:
    enabled: bool = False
    id: str = ""
    servers: list[str] = setting([])
    timeout: Duration = Duration(30 * 1_000_000_000)
    refresh_interval: Duration = Duration(30 * 1_000_000_000)
    bearer_token: str = setting("", redact=True)
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
        if not self.servers:
            raise ConfigError("servers", "must list at least one Marathon server")


class MarathonError(Exception):
    """An answer that cannot be turned into apps."""



def describe(exc: BaseException) -> str:
    """A failure as a log line shows it (see ``prometheus_sd.describe``)."""
    return _describe(exc, MarathonError)


def _object(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MarathonError(f"{what}: expected an object, got {type(value).__name__}")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise MarathonError(f"{what}: expected an array, got {type(value).__name__}")
    return value


def _string(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MarathonError(f"{what}: expected a string, got {type(value).__name__}")
    return value


def _labels(value: Any, what: str) -> dict[str, str]:
    return {str(k): _string(v, f"{what}.{k}") for k, v in _object(value, what).items()}


def _port(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) \
            or not 0 <= value <= 0xFFFFFFFF:
        raise MarathonError(f"{what}: {value!r} is not a port number")
    return int(value)


def app_groups(body: Any) -> list[TargetGroup]:
    """The groups of a ``/v2/apps`` answer (decoded JSON); MarathonError when its shape
    is not the one the vendored discovery decodes."""
    document = _object(body, "answer")
    groups: list[TargetGroup] = []
    for n, raw_app in enumerate(_list(go_field(document, "apps"), "apps")):
        where = f"apps[{n}]"
        app = _object(raw_app, where)
        app_id = _string(go_field(app, "id"), f"{where}.id")
        container = _object(go_field(app, "container"), f"{where}.container")
        docker = _object(go_field(container, "docker"), f"{where}.container.docker")
        image = _string(go_field(docker, "image"), f"{where}.container.docker.image")
        mappings = [_labels(go_field(_object(m, f"{where}.portMappings[{i}]"), "labels"),
                            f"{where}.portMappings[{i}].labels")
                    for i, m in enumerate(_list(go_field(docker, "portMappings"),
                                                f"{where}.container.docker.portMappings"))]
        definitions = [_labels(go_field(_object(d, f"{where}.portDefinitions[{i}]"),
                                        "labels"), f"{where}.portDefinitions[{i}].labels")
                       for i, d in enumerate(_list(go_field(app, "portDefinitions"),
                                                   f"{where}.portDefinitions"))]
        common = {f"{META}app": app_id, f"{META}image": image}
        for name, value in _labels(go_field(app, "labels"), f"{where}.labels").items():
            common[f"{META}app_label_{sanitize_label_name(name)}"] = value
        index = 0
        for t, raw_task in enumerate(_list(go_field(app, "tasks"), f"{where}.tasks")):
            task = _object(raw_task, f"{where}.tasks[{t}]")
            task_id = _string(go_field(task, "id"), f"{where}.tasks[{t}].id")
            host = _string(go_field(task, "host"), f"{where}.tasks[{t}].host")
            ports = [_port(p, f"{where}.tasks[{t}].ports[{i}]")
                     for i, p in enumerate(_list(go_field(task, "ports"),
                                                 f"{where}.tasks[{t}].ports"))]
            for i, port in enumerate(ports):
                labels = dict(common)
                labels[f"{META}task"] = task_id
                if i < len(definitions):
                    for name, value in definitions[i].items():
                        labels[f"{META}port_definition_label_{sanitize_label_name(name)}"] = value
                if i < len(mappings):
                    for name, value in mappings[i].items():
                        labels[f"{META}port_mapping_label_{sanitize_label_name(name)}"] = value
                groups.append(TargetGroup((join_host_port(host, port),), labels,
                                          source=f"{app_id}:{index}"))
                index += 1
    return groups


def apps_url(server: str) -> str:
    """The URL asked of ``server`` (joined as the vendored code does: no slash added)."""
    return f"{server}{APPS_PATH}"


class MarathonDiscoverer:
    """One ``[[marathon]]`` element: polls the apps every ``refresh-interval``."""

    def __init__(self, config: MarathonConfig, context: DiscoveryContext) -> None:
        self.config = config
        self.context = context
        self.tls = TLS.of(config)

    async def refresh(self) -> list[TargetGroup]:
        """One lookup: the groups of a random server's answer; raises on failure."""
        config = self.config
        url = apps_url(random.choice(config.servers))
        self.context.check_outgoing(url)
        headers = {"Authorization": f"token={config.bearer_token}"} \
            if config.bearer_token else {}
        client = self.context.http_client(self.tls, int(config.timeout) / 1e9)
        body = await get_json(client, url, MarathonError, headers=headers,
                              server_name=config.ssl_server_name)
        return app_groups(body)

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await refresh_every(self.context, self.refresh,
                            int(self.config.refresh_interval) / 1e9 or 30.0,
                            "error while updating Marathon services", text=describe)


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [
        Section(
            name="marathon",
            schema=MarathonConfig,
            multiple=True,
            element_key="id",
            check=unique_elements("id"),
            service=discovery_test_service(MarathonDiscoverer),
            doc="Discover Marathon applications.",
        )
    ]


@hookimpl
def kapa_discovery_kinds() -> list[DiscoveryKind]:
    return [DiscoveryKind(name="marathon", section="marathon", factory=MarathonDiscoverer,
                          doc="Marathon apps' tasks, one target per task port.")]

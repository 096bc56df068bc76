"""consul: the [[consul]] section, discovering Consul catalog services.

Each enabled element follows the Consul catalog as the Prometheus Consul discovery
Kapacitor 1.5.7 vendors does, with Consul's blocking queries (no polling interval):

- ``GET /v1/catalog/services?wait=30000ms`` lists the services, then again with
  ``index=<X-Consul-Index of the last answer>``, which Consul holds until the catalog
  changes or the wait elapses;
- when ``datacenter`` is empty, ``GET /v1/agent/self`` names it (``Config.Datacenter``);
- every listed service (only those in ``services`` when that list is not empty) is
  watched the same way with ``GET /v1/catalog/service/<name>``; a service that leaves
  the list loses its targets.

Every request carries ``dc=<datacenter>`` when it is configured, the token as
``X-Consul-Token``, and basic auth from ``username``/``password`` (sent even when both
are empty, as the vendored client does). ``address`` may start with ``http://`` or
``https://`` (which selects HTTPS), as Consul's client allows.

Each catalog entry of a service is a target ``<ServiceAddress, else Address>:<ServicePort>``
with the labels ``__meta_consul_service``, ``__meta_consul_dc``, ``__meta_consul_address``
(the node's address), ``__meta_consul_node``, ``__meta_consul_tags`` (the service tags
joined with ``tag-separator``, with one more separator before and after),
``__meta_consul_service_address``, ``__meta_consul_service_port`` and
``__meta_consul_service_id``.

Groups: Prometheus makes one group per service (source = the service name) whose
targets carry their own labels; kapa-core's groups share their labels, so each catalog
entry is a group of its own named ``<service>:<index>``. A failed request is logged and
retried after 15 s (as Prometheus); the service keeps its previous targets meanwhile.

Difference from Kapacitor: the section's TLS keys (``ssl-ca``, ``ssl-cert``, ``ssl-key``,
``ssl-server-name``, ``insecure-skip-verify``) are used. In Kapacitor 1.5.7 the vendored
Consul client replaces the TLS settings Prometheus gives it with its own, taken from
Consul's environment variables (``CONSUL_CACERT``...), so these keys have no effect.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from kapa_core.plugin_api import (
    TLS,
    ConfigError,
    DiscoveryContext,
    DiscoveryKind,
    Section,
    TargetGroup,
    discovery_test_service,
    hookimpl,
    require_choice,
    setting,
    unique_elements,
)

from .prometheus_sd import describe as _describe
from .prometheus_sd import go_field, join_host_port

#: how long Consul may hold a blocking query, sent as ``wait`` (Prometheus' watchTimeout)
WATCH_TIMEOUT = 30.0
#: the pause after a failed request (Prometheus' retryInterval)
RETRY_INTERVAL = 15.0
#: how long a request may take beyond the wait before it is given up
REQUEST_MARGIN = 15.0
META = "__meta_consul_"


@dataclass(frozen=True, kw_only=True)
class ConsulConfig:
    enabled: bool = False
    id: str = ""
    address: str = "127.0.0.1:8500"
    token: str = setting("", redact=True)
    datacenter: str = ""
    tag_separator: str = ","
    scheme: str = "http"
    username: str = ""
    password: str = setting("", redact=True)
    services: list[str] = setting([])
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
        if not self.address.strip():
            raise ConfigError("address", "must be set")
        require_choice(self.scheme, "scheme", ("http", "https"))
        prefix, sep, _ = self.address.partition("://")
        if sep and prefix not in ("http", "https"):
            raise ConfigError("address", f"unknown protocol scheme {prefix!r} "
                              "(expected http:// or https:// or none)")


class ConsulError(Exception):
    """A Consul answer that cannot be used."""



def describe(exc: BaseException) -> str:
    """A failure as a log line shows it (see ``prometheus_sd.describe``)."""
    return _describe(exc, ConsulError)


def base_url(config: ConsulConfig) -> str:
    """``scheme://address`` as Consul's client makes it: an ``http://`` or ``https://``
    prefix of ``address`` is removed, ``https://`` selecting HTTPS."""
    scheme, address = config.scheme or "http", config.address
    prefix, sep, rest = address.partition("://")
    if sep:
        if prefix == "https":
            scheme = "https"
        elif prefix != "http":
            raise ConsulError(f"Unknown protocol scheme: {prefix}")
        address = rest
    return f"{scheme}://{address}"


def _string(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConsulError(f"{what}: expected a string, got {type(value).__name__}")
    return value


def service_groups(name: str, datacenter: str, separator: str, body: Any
                   ) -> list[TargetGroup]:
    """The groups of a ``/v1/catalog/service/<name>`` answer (decoded JSON)."""
    if body is None:
        return []
    if not isinstance(body, list):
        raise ConsulError(f"catalog service {name}: expected an array, got "
                          f"{type(body).__name__}")
    groups: list[TargetGroup] = []
    for index, entry in enumerate(body):
        where = f"catalog service {name}[{index}]"
        if entry is None:
            entry = {}
        if not isinstance(entry, dict):
            raise ConsulError(f"{where}: expected an object, got {type(entry).__name__}")
        address = _string(go_field(entry, "Address"), f"{where}.Address")
        service_address = _string(go_field(entry, "ServiceAddress"),
                                  f"{where}.ServiceAddress")
        port = go_field(entry, "ServicePort")
        if port is None:
            port = 0
        if isinstance(port, bool) or not isinstance(port, (int, float)) or port != int(port):
            raise ConsulError(f"{where}.ServicePort: {port!r} is not a number")
        port = int(port)
        tags = go_field(entry, "ServiceTags")
        if tags is None:
            tags = []
        if not isinstance(tags, list):
            raise ConsulError(f"{where}.ServiceTags: expected an array")
        tags = [_string(tag, f"{where}.ServiceTags") for tag in tags]
        labels = {
            f"{META}service": name,
            f"{META}dc": datacenter,
            f"{META}address": address,
            f"{META}node": _string(go_field(entry, "Node"), f"{where}.Node"),
            f"{META}tags": separator + separator.join(tags) + separator,
            f"{META}service_address": service_address,
            f"{META}service_port": str(port),
            f"{META}service_id": _string(go_field(entry, "ServiceID"), f"{where}.ServiceID"),
        }
        target = join_host_port(service_address or address, port)
        groups.append(TargetGroup((target,), labels, source=f"{name}:{index}"))
    return groups


async def unchanged(started: float) -> None:
    """After an answer without a new index: a server that does not hold blocking
    queries (or sends no X-Consul-Index) is asked again after a second, not at once."""
    await trio.sleep_until(started + 1.0)


class ConsulDiscoverer:
    """One ``[[consul]]`` element: watches the catalog with blocking queries."""

    def __init__(self, config: ConsulConfig, context: DiscoveryContext) -> None:
        self.config = config
        self.context = context
        self.tls = TLS.of(config)
        self.datacenter = config.datacenter
        #: the groups of every watched service, by service name
        self.found: dict[str, list[TargetGroup]] = {}
        self.watched: dict[str, trio.CancelScope] = {}

    # -- requests -----------------------------------------------------------------------
    async def get(self, path: str, index: int = 0, *, wait: bool = True
                  ) -> tuple[Any, int]:
        """GET ``path`` of the Consul API: its decoded JSON and X-Consul-Index (0 when
        missing or unreadable); raises on failure or a status other than 200."""
        config = self.config
        params: dict[str, str] = {}
        if config.datacenter:
            params["dc"] = config.datacenter
        if index:
            params["index"] = str(index)
        if wait:
            params["wait"] = f"{int(WATCH_TIMEOUT * 1000)}ms"
        url = base_url(config) + path
        if params:
            url += "?" + urllib.parse.urlencode(sorted(params.items()))
        self.context.check_outgoing(url)
        headers = {}
        if config.token:
            headers["X-Consul-Token"] = config.token
        extensions = {"sni_hostname": config.ssl_server_name} \
            if config.ssl_server_name else None
        client = self.context.http_client(self.tls)
        try:
            response = await client.get(
                url, headers=headers, auth=httpx.BasicAuth(config.username, config.password),
                timeout=WATCH_TIMEOUT + REQUEST_MARGIN, extensions=extensions)
        except httpx.HTTPError as exc:
            raise ConsulError(f"GET {url}: {describe(exc)}") from exc
        if response.status_code != 200:
            raise ConsulError(f"Unexpected response code: {response.status_code} "
                              f"({response.text[:200]})")
        try:
            last_index = int(response.headers.get("X-Consul-Index", ""))
        except ValueError:
            last_index = 0
        try:
            body = json.loads(response.content)
        except ValueError as exc:
            raise ConsulError(f"the answer of {path} is not JSON: {exc}") from None
        return body, last_index

    async def fetch_datacenter(self) -> str:
        body, _ = await self.get("/v1/agent/self", wait=False)
        config = go_field(body, "Config") if isinstance(body, dict) else None
        datacenter = go_field(config, "Datacenter") if isinstance(config, dict) else None
        if not isinstance(datacenter, str):
            raise ConsulError("/v1/agent/self names no Config.Datacenter")
        return datacenter

    def should_watch(self, name: str) -> bool:
        return not self.config.services or name in self.config.services

    def publish(self) -> None:
        groups = [g for name in sorted(self.found) for g in self.found[name]]
        self.context.update(groups, replace=True)

    def failed(self, what: str, exc: Exception) -> None:
        self.context.log.error(what, err=describe(exc))

    # -- running ------------------------------------------------------------------------
    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async with trio.open_nursery() as nursery:
            last_index = 0
            while True:
                try:
                    started = trio.current_time()
                    body, index = await self.get("/v1/catalog/services", last_index)
                    if not isinstance(body, dict) and body is not None:
                        raise ConsulError("catalog services: expected an object, got "
                                          f"{type(body).__name__}")
                    services = dict(body or {})
                    if index == last_index:  # the wait elapsed without a change
                        await unchanged(started)
                        continue
                    if not self.datacenter:
                        self.datacenter = await self.fetch_datacenter()
                except Exception as exc:  # logged and retried
                    self.failed("error refreshing service list", exc)
                    await trio.sleep(RETRY_INTERVAL)
                    continue
                last_index = index
                for name in services:
                    if self.should_watch(name) and name not in self.watched:
                        scope = self.watched[name] = trio.CancelScope()
                        nursery.start_soon(self.watch, name, self.datacenter, scope)
                removed = [name for name in self.watched if name not in services]
                for name in removed:
                    self.watched.pop(name).cancel()
                    self.found.pop(name, None)
                if removed or not self.watched:
                    self.publish()

    async def watch(self, name: str, datacenter: str, scope: trio.CancelScope) -> None:
        """Follow one service's catalog entries until ``scope`` is cancelled."""
        path = "/v1/catalog/service/" + urllib.parse.quote(name, safe="$&+,/:;=@")
        separator = self.config.tag_separator
        with scope:
            last_index = 0
            while True:
                try:
                    started = trio.current_time()
                    body, index = await self.get(path, last_index)
                    if index == last_index:
                        await unchanged(started)
                        continue
                    groups = service_groups(name, datacenter, separator, body)
                except Exception as exc:  # logged and retried
                    self.failed(f"error refreshing service {name}", exc)
                    await trio.sleep(RETRY_INTERVAL)
                    continue
                last_index = index
                self.found[name] = groups
                self.publish()


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [
        Section(
            name="consul",
            schema=ConsulConfig,
            multiple=True,
            element_key="id",
            check=unique_elements("id"),
            service=discovery_test_service(ConsulDiscoverer),
            doc="Discover Consul catalog services.",
        )
    ]


@hookimpl
def kapa_discovery_kinds() -> list[DiscoveryKind]:
    return [DiscoveryKind(name="consul", section="consul", factory=ConsulDiscoverer,
                          doc="Consul catalog services, followed with blocking queries.")]

"""The [[influxdb]] service: connect to each enabled cluster, and keep trying.

The daemon never waits for InfluxDB: the service reports ready at once and pings each
cluster in the background with exponential backoff, logging clearly while it cannot
reach one (stream tasks fed by direct writes keep running meanwhile). Past a cluster's
``startup-timeout`` it says so and keeps retrying at the longest interval.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import trio

from kapa_core.errors import KapaError
from kapa_core.influxdb.client import ClusterClient, ConnectionFailed
from kapa_core.influxdb.config import InfluxDBConfig, default_cluster
from kapa_core.influxdb.context import InfluxDBContext
from kapa_core.influxdb.subscriptions import (
    SubscriptionManager,
    remember_links,
    run_subscriptions,
    unlink_removed_clusters,
)
from kapa_core.models.duration import format_go

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 30.0
#: Seconds between two warnings about the same unreachable cluster.
WARN_EVERY = 300.0


@dataclass
class ClusterStatus:
    connected: bool = False
    url: str = ""
    version: str = ""
    last_error: str = ""
    last_attempt: float = 0.0


class InfluxDBService:
    """Opened by the daemon with a ``kapa_core.services.CoreServiceContext``."""

    def __init__(self, ctx: InfluxDBContext) -> None:
        self.elements: tuple[InfluxDBConfig, ...] = ctx.config
        self.log = ctx.logger
        self.blacklist = ctx.deny_list
        # The daemon's [http]: shared-secret signs the JWTs of clusters with
        # http-shared-secret = true; auth-enabled makes subscriptions carry tokens.
        self.shared_secret = ctx.shared_secret
        self.auth_enabled = ctx.daemon.http.auth_enabled
        self._clients: dict[str, ClusterClient] = {}
        self._status: dict[str, ClusterStatus] = {}
        # InfluxDB subscriptions (kapa_core.influxdb.subscriptions): one manager per
        # connected cluster, and what the previous instance of this service linked.
        self.context = ctx
        self.subscriptions: dict[str, SubscriptionManager] = {}
        self.previous_links = remember_links(ctx.state, self.elements,
                                             ctx.daemon.cluster_id, ctx.daemon.server_id)

    def statuses(self) -> dict[str, ClusterStatus]:
        return dict(self._status)

    def client(self, name: str | None = None) -> ClusterClient | None:
        if name is None:
            element = default_cluster(self.elements)
            name = element.name if element else ""
        return self._clients.get(name)

    def test_options(self) -> dict[str, Any]:
        """``/service-tests/influxdb``: which cluster to ping (empty: the default one)."""
        element = default_cluster(self.elements)
        return {"cluster": element.name if element else ""}

    async def test(self, options: dict[str, Any]) -> None:
        name = str(options.get("cluster") or "")
        client = self.client(name or None)
        if client is None:
            raise KapaError(f"InfluxDB cluster {name or '(default)'!r} is not enabled or "
                            "not set up")
        await client.ping()

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        enabled = [e for e in self.elements if e.enabled]
        if not enabled:
            self.log.info("no InfluxDB cluster is enabled; batch tasks and influxDBOut "
                          "cannot be used")
        async with trio.open_nursery() as nursery:
            for element in enabled:
                self._status[element.name] = ClusterStatus()
                nursery.start_soon(self._connect, element)
            task_status.started()
            nursery.start_soon(unlink_removed_clusters, self)
            tokens = self.context.subscription_tokens
            if tokens is not None:
                revoked = await tokens.revoke_other_clusters(e.name for e in enabled)
                if revoked:
                    self.log.info("revoked the subscription tokens of clusters no longer "
                                  "enabled", count=revoked)
            await trio.sleep_forever()

    async def _connect(self, config: InfluxDBConfig) -> None:
        status = self._status[config.name]
        try:
            client = ClusterClient(config, blacklist=self.blacklist,
                                   shared_secret=self.shared_secret)
            await client.__aenter__()
        except ConnectionFailed as exc:
            status.last_error = str(exc)
            self.log.error("cannot set up the InfluxDB client", cluster=config.name,
                           err=str(exc))
            return
        self._clients[config.name] = client
        try:
            await self._ping_until_connected(config, client, status)
            await run_subscriptions(self, config, client)
        finally:
            with trio.CancelScope(shield=True):
                await client.__aexit__(None, None, None)
            self._clients.pop(config.name, None)

    async def _ping_until_connected(self, config: InfluxDBConfig, client: ClusterClient,
                                    status: ClusterStatus) -> None:
        backoff = INITIAL_BACKOFF
        deadline = time.monotonic() + config.startup_timeout / 1e9
        warned_timeout = False
        last_warning = (-WARN_EVERY, "")
        while True:
            status.last_attempt = time.time()
            try:
                result = await client.ping()
            except ConnectionFailed as exc:
                status.connected = False
                status.last_error = str(exc)
                if time.monotonic() > deadline and not warned_timeout:
                    warned_timeout = True
                    self.log.error(
                        "startup-timeout passed without reaching InfluxDB; still retrying",
                        cluster=config.name, startup_timeout=str(config.startup_timeout),
                        retry_every=format_go(int(MAX_BACKOFF * 1e9)))
                # Warn on the first failure, when the reason changes, and then at most
                # every WARN_EVERY seconds; the attempts in between are logged at debug.
                now = time.monotonic()
                log = self.log.debug
                if str(exc) != last_warning[1] or now - last_warning[0] >= WARN_EVERY:
                    log = self.log.warn
                    last_warning = (now, str(exc))
                log("cannot reach InfluxDB; stream tasks keep running, retrying in the "
                    "background", cluster=config.name, url=client.url, err=str(exc),
                    retry_in=format_go(int(backoff * 1e9)))
                await trio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            status.connected = True
            status.url = result.url
            status.version = result.version
            status.last_error = ""
            self.log.info("connected to InfluxDB", cluster=config.name, url=result.url,
                          version=result.version or None)
            return

"""This daemon as a cluster member: the service the daemon opens when ``[cluster]
enabled = true``, before its task master, so tasks find the stream ready.

It connects to the NATS servers (any of ``urls``, with the section's credentials and
TLS), keeps the connection while the daemon runs (the client reconnects by itself), and
opens the cluster router (:mod:`kapa_core.cluster.router`) on it. Connecting fails the
start, as an unreachable InfluxDB does not but a bad listener does: a member that cannot
reach the cluster must not accept writes it could not store.
"""

from __future__ import annotations

import ssl
from typing import Any

import trio

from kapa_core.cluster import ClusterError
from kapa_core.cluster.bridge import NatsBridge
from kapa_core.cluster.router import ClusterRouter
from kapa_core.config.cluster_section import ClusterConfig
from kapa_core.logs import Logger


def tls_context(config: ClusterConfig) -> ssl.SSLContext | None:
    """The client's TLS settings, when the section asks for TLS."""
    if not (config.ssl_ca or config.ssl_cert or config.insecure_skip_verify
            or any(u.startswith(("tls://", "wss://")) for u in config.urls)):
        return None
    context = ssl.create_default_context(cafile=config.ssl_ca or None)
    if config.ssl_cert:
        context.load_cert_chain(config.ssl_cert, config.ssl_key or None)
    if config.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class ClusterMember:
    """``member_id``: the section's ``member-id``, else the daemon's server ID."""

    def __init__(self, config: ClusterConfig, router: ClusterRouter, member_id: str,
                 log: Logger | None = None) -> None:
        self.config = config
        self.router = router
        self.member_id = member_id
        self.log = log or Logger("cluster")
        self.bridge: NatsBridge | None = None

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        config = self.config
        try:
            tls = tls_context(config)
        except (OSError, ssl.SSLError) as exc:
            raise ClusterError(f"[cluster] TLS settings: {exc}") from None
        async with NatsBridge.connect(
                config.urls, name=f"kapa-core {config.name} {self.member_id}",
                user=config.username or None, password=config.password or None,
                token=config.token or None, creds=config.creds_file or None,
                tls=tls) as bridge, trio.open_nursery() as nursery:
            self.bridge = bridge
            await self.router.open(bridge, nursery)
            self.log.info("joined the cluster", cluster=config.name, member=self.member_id,
                          server=bridge.server, stream=self.router.stream)
            task_status.started(self)
            try:
                await trio.sleep_forever()
            finally:
                nursery.cancel_scope.cancel()

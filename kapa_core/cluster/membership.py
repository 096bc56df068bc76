"""Who is alive in the cluster: heartbeats in a key-value bucket with a TTL.

Every ``heartbeat-interval`` a member writes its key (its ID) in ``<cluster>_members``,
with what others need to reach it (its API address, version, start time). The bucket's
TTL is ``member-timeout``: the key of a member silent that long is gone. JetStream 2.9
removes expired keys without telling watchers, so the live list is read again after
each heartbeat (listing the keys of a small bucket is one request); every member sees
the same list up to one interval, and a change is logged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from kapa_core.cluster import ClusterError
from kapa_core.logs import Logger


class Membership:
    def __init__(self, bridge: Any, cluster: str, member_id: str, *, interval: float,
                 timeout: float, replicas: int, info: Callable[[], dict[str, Any]],
                 log: Logger | None = None) -> None:
        self.bridge = bridge
        self.bucket_name = f"{cluster}_members"
        self.member_id = member_id
        self.interval = interval
        self.timeout = timeout
        self.replicas = replicas
        self.info = info
        self.log = log or Logger("cluster")
        self.live: frozenset[str] = frozenset()
        self.bucket: Any = None
        self.started = time.time()

    def alive(self, member_id: str) -> bool:
        return member_id in self.live

    async def open(self) -> None:
        self.bucket = await self.bridge.kv(self.bucket_name, ttl=self.timeout,
                                           replicas=self.replicas)

    async def beat(self) -> None:
        """One heartbeat, then the live list read again."""
        doc = {"id": self.member_id, "started": self.started, **self.info()}
        await self.bucket.put(self.member_id, json.dumps(doc).encode())
        live = frozenset(await self.bucket.keys())
        if live != self.live:
            joined, left = sorted(live - self.live), sorted(self.live - live)
            self.live = live
            self.log.info("cluster members changed", members=len(live),
                          joined=",".join(joined) or None, left=",".join(left) or None)

    async def leave(self) -> None:
        """Remove our key at once (a clean stop): the others move our tasks now rather
        than after the timeout."""
        if self.bucket is not None:
            try:
                await self.bucket.delete(self.member_id)
            except ClusterError as exc:
                self.log.error("cluster: could not say goodbye", err=str(exc))

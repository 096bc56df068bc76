"""This daemon as a cluster member: the service the daemon opens when ``[cluster]
enabled = true``, before its task master, so tasks find the stream ready.

It connects to the NATS servers (any of ``urls``, with the section's credentials and
TLS), keeps the connection while the daemon runs (the client reconnects by itself), and
opens the cluster router (:mod:`kapa_core.cluster.router`) on it. Connecting fails the
start, as an unreachable InfluxDB does not but a bad listener does: a member that cannot
reach the cluster must not accept writes it could not store.

Then it beats (:mod:`.membership`) and, after each heartbeat, places the enabled tasks
(:mod:`.placement`): it runs exactly those it owns, each once it holds its lease
(:mod:`.leases`), so a task never runs on two members at once. On a clean stop it stops
its tasks, frees their leases and removes its heartbeat, so the others take its tasks at
once; killed, its heartbeat expires after ``member-timeout`` and its leases are taken.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import trio

from kapa_core.cluster import ClusterError
from kapa_core.cluster.bridge import NatsBridge
from kapa_core.cluster.catalog import Catalog, HandlerStore, TaskStore, TemplateStore
from kapa_core.cluster.leases import Lease, Leases
from kapa_core.cluster.membership import Membership
from kapa_core.cluster.placement import Member, owner
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


class Tasks(TaskStore, Protocol):
    """The daemon's tasks as placement moves them and the catalog shares them (the task
    service)."""

    on_saved: Callable[[str, dict[str, Any]], Awaitable[None]] | None
    on_deleted: Callable[[str], Awaitable[None]] | None
    cluster: Any

    def enabled(self) -> list[str]: ...

    def running(self, task_id: str) -> bool: ...

    async def start(self, task_id: str) -> None: ...

    async def stop(self, task_id: str) -> None: ...


class ClusterMember:
    """``member_id``: the section's ``member-id``, else the daemon's server ID;
    ``tasks``: set by the daemon once its task service exists; ``info``: what the
    heartbeat tells the others (the API address)."""

    def __init__(self, config: ClusterConfig, router: ClusterRouter, member_id: str,
                 log: Logger | None = None,
                 info: Callable[[], dict[str, Any]] = lambda: {}) -> None:
        self.config = config
        self.router = router
        self.member_id = member_id
        self.log = log or Logger("cluster")
        self.info = info
        self.bridge: NatsBridge | None = None
        self._tasks: Tasks | None = None
        #: the daemon's alert service, set before ``tasks`` (its handlers are shared too)
        self.alerts: HandlerStore | None = None
        self.templates: TemplateStore | None = None
        self.catalog: Catalog | None = None
        self.membership: Membership | None = None
        self.leases: Leases | None = None
        #: the leases this member holds: the tasks it runs
        self.held: dict[str, Lease] = {}
        self._nursery: trio.Nursery | None = None
        router.may_run = self.held.__contains__

    @property
    def tasks(self) -> Tasks | None:
        return self._tasks

    @tasks.setter
    def tasks(self, tasks: Tasks | None) -> None:
        """The daemon's task service, once it exists: shared through the catalog (see
        :meth:`start_sharing`), its tasks placed."""
        self._tasks = tasks
        if tasks is not None and self.catalog is not None and self._nursery is not None:
            tasks.cluster = self
            tasks.on_saved = self.catalog.task_saved
            tasks.on_deleted = self.catalog.task_deleted
            self.catalog.tasks = tasks
            if self.templates is not None:  # templates too
                self.templates.on_change = self.catalog.template_changed
                self.catalog.templates = self.templates
            if self.alerts is not None:  # topic handlers too
                self.alerts.on_change = self.catalog.handler_changed
                self.catalog.handlers = self.alerts

    def start_sharing(self) -> None:
        """Read the catalog and follow it, once everything it shares is wired (the users
        come with the HTTP API)."""
        if self.catalog is not None and self._nursery is not None \
                and self.catalog.tasks is not None:
            self._nursery.start_soon(self.catalog.run)

    async def _hand_over(self) -> None:
        """A clean stop: our tasks stopped, their leases and our heartbeat gone, so the
        others take the tasks at once rather than after ``member-timeout``."""
        for task_id, lease in list(self.held.items()):
            try:
                if self.tasks is not None and self.tasks.running(task_id):
                    await self.tasks.stop(task_id)
                if self.leases is not None:
                    await self.leases.release(lease)
            except ClusterError as exc:
                self.log.error("task lease not freed", task=task_id, err=str(exc))
            self.held.pop(task_id, None)
        if self.membership is not None:
            await self.membership.leave()

    # -- what the API shows (kapa_core.engine.tasks.ClusterView) ------------------------
    def owner_of(self, task_id: str) -> str | None:
        if self.membership is None:
            return None
        found = owner(task_id, [Member(m) for m in self.membership.live])
        return found.id if found else None

    async def api_of(self, task_id: str) -> str | None:
        """The API address of the task's lease holder, from its heartbeat."""
        if self.leases is None or self.membership is None:
            return None
        lease = await self.leases.holder(task_id)
        if lease is None or not self.membership.alive(lease.holder):
            return None
        entry = await self.membership.bucket.get(lease.holder)
        if entry is None:
            return None
        api = json.loads(entry.value).get("api")
        return api if isinstance(api, str) and api else None

    async def peers(self) -> list[str]:
        """The API addresses of the other live members, from their heartbeats."""
        if self.membership is None:
            return []
        out = []
        for member_id in sorted(self.membership.live - {self.member_id}):
            entry = await self.membership.bucket.get(member_id)
            api = json.loads(entry.value).get("api") if entry is not None else None
            if isinstance(api, str) and api:
                out.append(api)
        return out

    async def reconcile(self) -> None:
        """Run the enabled tasks this member owns, and only those: take the lease of a
        task placement gives us (then start it), stop a task it gives another (then free
        its lease), free the leases of tasks no longer enabled."""
        if self.tasks is None or self.membership is None or self.leases is None:
            return
        if self.catalog is not None and not self.catalog.synced.is_set():
            return  # the cluster's tasks are not all known yet
        members = [Member(m) for m in self.membership.live]
        enabled = set(self.tasks.enabled())
        # fencing: a lease another member took (it thought us gone, during a pause of
        # ours longer than member-timeout) means the task runs there now: stop it here
        for task_id, held in list(self.held.items()):
            if not await self.leases.still_held(held):
                self.log.warn("task lease taken by another member; stopping the task here",
                              task=task_id)
                self.held.pop(task_id)
                if self.tasks.running(task_id):
                    await self.tasks.stop(task_id)
        for task_id in sorted(enabled):
            found = owner(task_id, members)
            mine = found is not None and found.id == self.member_id
            if mine and task_id not in self.held:
                taken = await self.leases.acquire(task_id)
                if taken is None:
                    continue  # its former owner still holds it: next time
                self.held[task_id] = taken
                self.log.info("task placed here", task=task_id)
                await self.tasks.start(task_id)
            elif not mine and task_id in self.held:
                self.log.info("task placed on another member", task=task_id,
                              owner=found.id if found else None)
                await self.tasks.stop(task_id)
                await self.leases.release(self.held.pop(task_id))
        for task_id in [t for t in self.held if t not in enabled]:
            if self.tasks.running(task_id):
                await self.tasks.stop(task_id)
            await self.leases.release(self.held.pop(task_id))

    async def _keep_placement(self) -> None:
        """Beat on time whatever placement costs (starting or stopping many tasks takes
        longer than an interval; a late heartbeat would make the others take our tasks),
        and place the tasks after each heartbeat that got through."""
        assert self.membership is not None
        membership = self.membership
        beaten = trio.Event()

        async def beat() -> None:
            nonlocal beaten
            while True:
                try:
                    await membership.beat()
                    beaten.set()
                except ClusterError as exc:
                    self.log.error("cluster heartbeat failed", err=str(exc))
                await trio.sleep(self.config.heartbeat_interval / 1e9)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(beat)
            while True:
                await beaten.wait()
                beaten = trio.Event()
                try:
                    await self.reconcile()
                except ClusterError as exc:
                    self.log.error("cluster placement failed", err=str(exc))

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
            self.membership = Membership(
                bridge, config.name, self.member_id,
                interval=config.heartbeat_interval / 1e9,
                timeout=config.member_timeout / 1e9, replicas=config.replicas,
                info=self.info, log=self.log)
            await self.membership.open()
            self.catalog = Catalog(bridge, config.name, replicas=config.replicas,
                                   log=self.log)
            await self.catalog.open()
            self._nursery = nursery
            leases = await bridge.kv(f"{config.name}_leases", replicas=config.replicas)
            self.leases = Leases(leases, self.member_id, self.membership.alive)
            self.log.info("joined the cluster", cluster=config.name, member=self.member_id,
                          server=bridge.server, stream=self.router.stream)
            nursery.start_soon(self._keep_placement)
            task_status.started(self)
            try:
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await self._hand_over()
                nursery.cancel_scope.cancel()

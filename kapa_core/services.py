"""Service lifecycle: each config section's service runs in its own cancel scope.

A service is any object with ``async serve(*, task_status=trio.TASK_STATUS_IGNORED)``: it
acquires what it needs, calls ``task_status.started()`` once ready, waits to be cancelled
and releases. The runner opens services in order, re-opens one when its section is
overridden, and closes them all in reverse order on shutdown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from kapa_core.auth.subscription_tokens import SubscriptionTokens
from kapa_core.denylist import DenyList
from kapa_core.httpclients import HTTPClients, UsesHTTPClients
from kapa_core.logs import Logger


class Service(Protocol):
    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None: ...


@dataclass(frozen=True)
class HTTPFacts:
    """The ``[http]`` facts a plugin may need: where the API listens and how."""

    bind_address: str = ":9092"
    https_enabled: bool = False
    auth_enabled: bool = False


@dataclass
class DaemonFacts:
    """What a plugin may know about the daemon that runs it, and nothing more.

    ``address`` is the API's bound (host, port), None until the API listens (services
    open before it); :meth:`api_url` builds the URL Kapacitor reports from it.
    """

    hostname: str = "localhost"
    cluster_id: str = ""
    server_id: str = ""
    version: str = ""
    http: HTTPFacts = field(default_factory=HTTPFacts)
    address_of: Callable[[], tuple[str, int] | None] = lambda: None

    @property
    def address(self) -> tuple[str, int] | None:
        return self.address_of()

    def api_url(self, path: str = "/kapacitor/v1") -> str:
        """``<scheme>://<host>:<port><path>`` as Kapacitor's HTTP service reports it (a
        listener on every interface shows as ``[::]``); empty before the API listens."""
        address = self.address
        if not address:
            return ""
        bound_host = self.http.bind_address.rpartition(":")[0].strip("[]")
        host = str(address[0]) if bound_host else "::"
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.http.https_enabled else "http"
        return f"{scheme}://{host}:{address[1]}{path}"


def _allow_all(url: str) -> None:
    """The outgoing-address check of a context made outside a daemon: allows all."""


@dataclass
class ServiceContext(UsesHTTPClients):
    """What a section's service factory receives, and all it may use.

    ``config`` is the section's typed value (one instance, or a tuple for an array
    section); ``root`` holds the root keys (``hostname``, ``data_dir``...);
    ``write_points(db, rp, points)`` feeds points into the stream as ``/write`` does;
    ``check_outgoing(url)`` raises when the deny list (``-blacklist-cidrs``) refuses the
    URL's host; ``daemon`` holds the facts about the daemon a service may need.
    """

    section: str
    config: Any
    root: Any
    logger: Logger
    write_points: Callable[[str, str, list[Any]], None]
    check_outgoing: Callable[[str], None] = _allow_all
    daemon: DaemonFacts = field(default_factory=DaemonFacts)
    clients: HTTPClients = field(default_factory=HTTPClients, repr=False)


@dataclass
class CoreServiceContext(ServiceContext):
    """What the core's own services (``[[influxdb]]``) get beyond a plugin's context;
    the daemon never hands this to a plugin.

    ``deny_list`` is the ``-blacklist-cidrs`` list itself (clients that check each
    resolved address); ``shared_secret`` is ``[http] shared-secret``;
    ``subscription_tokens`` the store of InfluxDB subscription tokens (None outside a
    daemon); ``state`` a mapping the daemon keeps for this section across re-opens (a
    config override re-creates the service with the same mapping).
    """

    deny_list: DenyList | None = None
    shared_secret: str = ""
    subscription_tokens: SubscriptionTokens | None = None
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StartupContext:
    """Passed to ``kapa_startup``/``kapa_shutdown``: the daemon's configuration (the
    typed sections by name, ``config.root`` for the root keys) and its facts."""

    config: Any
    daemon: DaemonFacts = field(default_factory=DaemonFacts)


@dataclass
class _Running:
    name: str
    scope: trio.CancelScope
    stopped: trio.Event = field(default_factory=trio.Event)
    service: Any = None


class ServiceRunner:
    """Opens, re-opens and closes named services inside one nursery."""

    def __init__(self, nursery: trio.Nursery, logger: Logger) -> None:
        self._nursery = nursery
        self._log = logger
        self._running: dict[str, _Running] = {}

    @property
    def names(self) -> list[str]:
        return list(self._running)

    def get(self, name: str) -> Any:
        running = self._running.get(name)
        return running.service if running else None

    async def open(self, name: str, service: Any) -> Any:
        """Start ``service`` under ``name`` and wait until it reports ready.

        Returns whatever the service passed to ``task_status.started()``.
        """
        if name in self._running:
            raise RuntimeError(f"service {name} is already open")
        try:
            return await self._nursery.start(self._supervise, name, service)
        except BaseExceptionGroup as group:
            raise _single(group) from None


    async def _supervise(self, name: str, service: Any, *, task_status: Any) -> None:
        """Run one service; a failure after it reported ready is logged, not fatal."""
        with trio.CancelScope() as scope:
            running = _Running(name, scope, service=service)
            ready = False
            try:
                async with trio.open_nursery() as inner:
                    value = await inner.start(service.serve)
                    self._running[name] = running
                    ready = True
                    task_status.started(value)
            except Exception as exc:  # a running service died: keep the daemon up
                if not ready:
                    raise
                self._log.error("service stopped with an error", name=name,
                                err=f"{type(exc).__name__}: {exc}")
            finally:
                if self._running.get(name) is running:
                    del self._running[name]
                running.stopped.set()

    async def close(self, name: str) -> None:
        running = self._running.get(name)
        if running is None:
            return
        running.scope.cancel()
        await running.stopped.wait()
        self._log.debug("closed service", name=name)

    async def reopen(self, name: str, service: Any) -> Any:
        await self.close(name)
        return await self.open(name, service)

    async def close_all(self) -> None:
        for name in reversed(list(self._running)):
            await self.close(name)


def _single(group: BaseExceptionGroup[Any]) -> BaseException:
    """The one exception inside nested single-member groups, or the group itself."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


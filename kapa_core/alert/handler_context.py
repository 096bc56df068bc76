"""What an alert handler is made with: one :class:`HandlerContext` for every handler kind.

A handler kind's factory is called as ``factory(options, context)`` and returns an object
with ``async handle(event)`` (and optionally ``close()``). The context is all a handler
may use of kapa-core:

- ``kind``: the handler kind's name;
- ``config``: the kind's config section as the daemon has it now (one instance, a tuple
  of elements for a ``[[section]]``, None when the kind has no section);
- ``service``: the section's running service (None when the section has none, or while
  it is being re-opened);
- ``log``: a logger tagged with the handler kind;
- ``daemon``: the facts about the daemon a handler may need (``kapa_core.services``'s
  ``DaemonFacts``: host name, ids, ``[http]`` facts, ``api_url()``);
- ``check_outgoing(url)``: raises when the deny list (``-blacklist-cidrs``) refuses the
  URL's host;
- ``publish(event)``: collect an event into ``event.topic`` (the publish and aggregate
  kinds);
- ``start_soon(fn)``: run ``fn`` in the background while the alert service runs;
- ``http_client(tls, timeout)``: a long-lived ``httpx.AsyncClient`` shared by the
  handlers with the same TLS settings and timeout; the alert service owns and closes it.

A handler is made again exactly when its section's config or running service changes (a
config override of that section), so it may keep what it reads from the context.

The context is generic in the config and service types, so that a plugin can say what it
gets: ``HandlerContext[tuple[SlackConfig, ...], object]`` for a ``[[slack]]`` section,
``HandlerContext[SMTPConfig, object]``, ``HandlerContext[None, None]`` for a kind
without a section, ``HandlerContext[tuple[KafkaConfig, ...], KafkaService]``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

import httpx

from kapa_core.alert.event import Event
from kapa_core.alert.levels import Level
from kapa_core.logs import Logger
from kapa_core.services import DaemonFacts
from kapa_core.tlsconfig import TLS

ConfigT = TypeVar("ConfigT", covariant=True)
ServiceT = TypeVar("ServiceT", covariant=True)


class AlertHost(Protocol):
    """What a handler context uses of the alert service that makes it."""

    def check_outgoing(self, url: str) -> None: ...
    def publish(self, event: Event) -> None: ...
    def topic_level(self, topic: str, event_id: str) -> Level: ...
    def start_soon(self, fn: Callable[[], Awaitable[object]]) -> None: ...
    def http_client(self, tls: TLS, timeout: float) -> httpx.AsyncClient: ...


class Handler(Protocol):
    """What a handler factory returns (``close()`` is optional)."""

    async def handle(self, event: Event) -> None: ...


#: Timeout of a handler's HTTP client when none is given (seconds).
DEFAULT_TIMEOUT = 30.0


class HandlerContext(Generic[ConfigT, ServiceT]):
    """Everything a handler gets from kapa-core (see the module's documentation)."""

    __slots__ = ("_config", "_daemon", "_host", "_kind", "_log", "_service")

    def __init__(self, kind: str, config: ConfigT, service: ServiceT | None, log: Logger,
                 daemon: DaemonFacts, host: AlertHost) -> None:
        self._kind = kind
        self._config = config
        self._service = service
        self._log = log
        self._daemon = daemon
        self._host = host

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def config(self) -> ConfigT:
        return self._config

    @property
    def service(self) -> ServiceT | None:
        return self._service

    @property
    def log(self) -> Logger:
        return self._log

    @property
    def daemon(self) -> DaemonFacts:
        return self._daemon

    def check_outgoing(self, url: str) -> None:
        """Raise (an error naming the host) when the deny list refuses ``url``."""
        self._host.check_outgoing(url)

    def publish(self, event: Event) -> None:
        """Collect ``event`` into ``event.topic``; its previous level is the one that
        topic last recorded for the id, as in Kapacitor."""
        self._host.publish(event.copy(previous_level=self._host.topic_level(
            event.topic, event.id)))

    def start_soon(self, fn: Callable[[], Awaitable[object]]) -> None:
        """Run ``fn`` in the background while the alert service runs (handler timers)."""
        self._host.start_soon(fn)

    def http_client(self, tls: TLS | None = None, timeout: float = 0  # noqa: ASYNC109
                    ) -> httpx.AsyncClient:
        """The shared client for ``tls`` (default: the system's trust store) and
        ``timeout`` in seconds (0: 30 s). Do not close it: the alert service does when
        it stops. Raises ``TLSFileError`` when a TLS file cannot be loaded."""
        return self._host.http_client(tls or TLS(), timeout or DEFAULT_TIMEOUT)

    def __repr__(self) -> str:
        return f"HandlerContext(kind={self._kind!r})"

"""What the ``[[influxdb]]`` service reads of the context the daemon opens it with.

The daemon passes a ``kapa_core.services.CoreServiceContext``; these Protocols name the
part of it this package uses, so the package needs nothing above it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from kapa_core.auth.subscription_tokens import SubscriptionTokens
from kapa_core.denylist import DenyList
from kapa_core.logs import Logger


class HTTPFacts(Protocol):
    @property
    def auth_enabled(self) -> bool: ...


class DaemonFacts(Protocol):
    """The daemon's identity and where its API listens (None until it does)."""

    @property
    def cluster_id(self) -> str: ...
    @property
    def server_id(self) -> str: ...
    @property
    def address(self) -> tuple[str, int] | None: ...
    @property
    def http(self) -> HTTPFacts: ...


class Root(Protocol):
    @property
    def hostname(self) -> str: ...


class InfluxDBContext(Protocol):
    """``config``: the ``[[influxdb]]`` elements; ``state``: kept by the daemon across
    re-opens of the section (what the previous service instance linked)."""

    @property
    def config(self) -> Any: ...
    @property
    def root(self) -> Root | None: ...
    @property
    def logger(self) -> Logger: ...
    @property
    def write_points(self) -> Callable[[str, str, list[Any]], None]: ...
    @property
    def daemon(self) -> DaemonFacts: ...
    @property
    def deny_list(self) -> DenyList | None: ...
    @property
    def shared_secret(self) -> str: ...
    @property
    def subscription_tokens(self) -> SubscriptionTokens | None: ...
    @property
    def state(self) -> dict[str, Any]: ...

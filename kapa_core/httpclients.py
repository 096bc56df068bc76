"""Long-lived outgoing HTTP clients, one per (TLS settings, timeout), shared by what one
owner sends: the alert service's handlers, or a daemon's services, input listeners and
discoverers. Connections are kept alive between requests and each TLS context is built
once; the owner closes them all together.

The clients behave as Go's ``http.Client`` does for Kapacitor: no cookie jar (a cookie a
service sets is never sent back) and no redirects followed.
"""

from __future__ import annotations

from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx

from kapa_core.errors import KapaError
from kapa_core.tlsconfig import TLS

#: Seconds a request may take when the caller gives no timeout.
DEFAULT_TIMEOUT = 30.0


def new_client(tls: TLS, timeout: float) -> httpx.AsyncClient:  # noqa: ASYNC109
    """A client of its own (the caller closes it); TLSFileError when a TLS file cannot
    be loaded."""
    return httpx.AsyncClient(verify=tls.verify(), timeout=timeout,
                             cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])))


class ClientsClosed(KapaError):
    """The owner of the clients has stopped."""


class HTTPClients:
    """Clients made on first use and closed together by :meth:`aclose`."""

    def __init__(self, owner: str = "the daemon") -> None:
        self._clients: dict[tuple[TLS, float], httpx.AsyncClient] = {}
        self._closed = False
        self._owner = owner

    def get(self, tls: TLS | None = None,
            timeout: float = 0.0) -> httpx.AsyncClient:  # noqa: ASYNC109
        """The client for ``tls`` and ``timeout`` (seconds, 0 for the default);
        TLSFileError when a TLS file cannot be loaded (tried again on the next call)."""
        key = (tls or TLS(), timeout or DEFAULT_TIMEOUT)
        client = self._clients.get(key)
        if client is None:
            if self._closed:
                raise ClientsClosed(f"{self._owner} has stopped")
            client = self._clients[key] = new_client(*key)
        return client

    def __len__(self) -> int:
        return len(self._clients)

    async def aclose(self) -> None:
        self._closed = True
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


class UsesHTTPClients:
    """Gives a plugin context (a dataclass with a ``clients`` field) its
    :meth:`http_client`."""

    clients: HTTPClients

    def http_client(self, tls: TLS | None = None,
                    timeout: float = 0.0) -> httpx.AsyncClient:  # noqa: ASYNC109
        """A long-lived HTTP client for ``tls`` settings and ``timeout`` (seconds; 0 for
        30), shared with the daemon's other services and closed when the daemon stops;
        TLSFileError when a TLS file cannot be loaded. Check URLs with the context's
        ``check_outgoing`` before sending."""
        return self.clients.get(tls, timeout)

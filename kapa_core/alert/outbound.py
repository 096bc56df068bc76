"""Outgoing HTTP for alert handlers: one call that checks the deny list, applies the
handler's TLS settings and timeout, and turns every failure into a :class:`HandlerError`
that names the handler and the URL.

Handlers call :func:`send` with their context and the JSON body (or form fields) their
service documents::

    await send(self.context, "pagerduty2", url, json_body={...})

A 2xx answer is returned; anything else (refused, timed out, 4xx, 5xx) raises, so the
topic's handler runner logs it with the alert id and counts it — Kapacitor's handlers do
not retry either, they log and move to the next event.

A handler's requests go through the long-lived clients of :class:`HTTPClients` (one per
TLS settings and timeout, kept by the alert service), so connections are kept alive
between alerts and the TLS context is built once. A section service's test (which has no
handler context) sends through the daemon's clients of its ServiceContext.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from kapa_core.alert.gojson import dumps
from kapa_core.alert.handler_context import DEFAULT_TIMEOUT, HandlerContext
from kapa_core.errors import HandlerError
from kapa_core.httpclients import HTTPClients
from kapa_core.tlsconfig import TLS, TLSFileError

__all__ = ["DEFAULT_TIMEOUT", "HTTPClients", "OutgoingCheck", "send"]


class OutgoingCheck(Protocol):
    """What :func:`send` needs of a caller without a handler context (a section service
    answering a service test): the deny-list check and the long-lived clients of its
    context (``ServiceContext.http_client``)."""

    def check_outgoing(self, url: str) -> None: ...

    def http_client(self, tls: TLS | None = None,
                    timeout: float = 0.0) -> httpx.AsyncClient: ...  # noqa: ASYNC109


async def send(context: HandlerContext[object, object] | OutgoingCheck, handler: str,
               url: str, *, json_body: Any = None, content: bytes | str | None = None,
               form: dict[str, str] | None = None, headers: dict[str, str] | None = None,
               auth: tuple[str, str] | None = None, tls: TLS | None = None,
               timeout: float = 0.0,  # noqa: ASYNC109
               method: str = "POST") -> httpx.Response:
    """Send one request for ``handler``; return the 2xx response or raise HandlerError."""
    if json_body is not None:  # encoded as Go's encoding/json does, as Kapacitor sends it
        content = dumps(json_body)
        headers = {"Content-Type": "application/json", **(headers or {})}
    context.check_outgoing(url)
    tls = tls or TLS()
    timeout = timeout or DEFAULT_TIMEOUT
    try:
        return await _request(context.http_client(tls, timeout), handler, url, method,
                              content, form, headers, auth)
    except TLSFileError as exc:
        raise HandlerError(f"{handler}: ssl-{exc.which}: {exc}") from None


async def _request(client: httpx.AsyncClient, handler: str, url: str, method: str,
                   content: bytes | str | None, form: dict[str, str] | None,
                   headers: dict[str, str] | None, auth: tuple[str, str] | None
                   ) -> httpx.Response:
    try:
        response = await client.request(method, url, content=content, data=form,
                                        headers=headers, auth=auth)
    except httpx.HTTPError as exc:
        raise HandlerError(f"{handler}: {method} {_safe(url)}: "
                           f"{type(exc).__name__}: {exc}") from None
    if response.is_error:
        raise HandlerError(f"{handler}: {_safe(url)} answered HTTP {response.status_code}: "
                           f"{response.text[:300]}")
    return response


def _safe(url: str) -> str:
    """Scheme, host and port only: services put tokens in paths, queries and userinfo."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "<invalid url>"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}"

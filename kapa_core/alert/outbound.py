"""Outgoing HTTP for alert handlers: one call that checks the deny list, applies the
handler's TLS settings and timeout, and turns every failure into a :class:`HandlerError`
that names the handler and the URL.

Handlers call :func:`send` with the JSON body (or form fields) their service documents::

    await send(self.context, "pagerduty2", url, json_body={...})

A 2xx answer is returned; anything else (refused, timed out, 4xx, 5xx) raises, so the
topic's handler runner logs it with the alert id and counts it — Kapacitor's handlers do
not retry either, they log and move to the next event.
"""

from __future__ import annotations

from typing import Any

import httpx

from kapa_core.alert.gojson import dumps
from kapa_core.errors import HandlerError
from kapa_core.tlsconfig import TLS, TLSFileError

DEFAULT_TIMEOUT = 30.0



async def send(context: Any, handler: str, url: str, *, json_body: Any = None,
               content: bytes | str | None = None, form: dict[str, str] | None = None,
               headers: dict[str, str] | None = None, auth: tuple[str, str] | None = None,
               tls: TLS | None = None, timeout: float = 0.0,  # noqa: ASYNC109
               method: str = "POST") -> httpx.Response:
    """Send one request for ``handler``; return the 2xx response or raise HandlerError."""
    if json_body is not None:  # encoded as Go's encoding/json does, as Kapacitor sends it
        content = dumps(json_body)
        headers = {"Content-Type": "application/json", **(headers or {})}
    check = getattr(context, "check_outgoing", None)
    if check is not None:
        check(url)
    try:
        verify = (tls or TLS()).verify()
    except TLSFileError as exc:
        raise HandlerError(f"{handler}: ssl-{exc.which}: {exc}") from None
    async with httpx.AsyncClient(verify=verify, timeout=timeout or DEFAULT_TIMEOUT) as client:
        try:
            response = await client.request(method, url, content=content,
                                            data=form, headers=headers, auth=auth)
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

"""OAuth 2.0 client-credentials tokens (RFC 6749 section 4.4), for Kafka's OAUTHBEARER.

What Kapacitor's ``sasl-oauth-*`` keys configure: a token endpoint (``sasl-oauth-token-url``,
or Azure AD's for ``sasl-oauth-service = "azuread"`` and ``sasl-oauth-tenant-id``), a
client id and secret, scopes and extra form parameters (Auth0 needs ``audience``). The
request is a form POST of ``grant_type=client_credentials`` (+ ``scope``, the
parameters); the client authenticates with HTTP basic auth, or with ``client_id`` and
``client_secret`` in the form for Auth0. For a custom endpoint both are tried, basic auth
first, and the one that worked is kept, as Go's oauth2 package does.

A token is reused until ``expires_in`` minus ``sasl-oauth-token-expiry-margin``; without
``expires_in`` it is kept. Fetch errors name the endpoint (never the secret) and what it
answered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qs, quote

import httpx
import trio

AZURE_AD_TOKEN_URL = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
SERVICES = ("", "custom", "auth0", "azuread")
TIMEOUT = 30.0


class TokenError(Exception):
    """The token endpoint could not be reached or refused the client."""


class ClientCredentials:
    """A cached client-credentials token: ``await source.token()``."""

    def __init__(self, *, token_url: str, client_id: str, client_secret: str,
                 scopes: Sequence[str] = (), params: dict[str, str] | None = None,
                 style: str = "auto", margin: float = 10.0,
                 check_url: Callable[[str], None] | None = None,
                 http_client: Callable[[], httpx.AsyncClient] | None = None) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.scopes = list(scopes)
        self.params = dict(params or {})
        self.style = style  # "auto", "header" or "params"
        self.margin = margin
        self.check_url = check_url
        #: the long-lived client to fetch tokens with (the service's); None: one per fetch
        self.http_client = http_client
        self._token = ""
        self._expires = 0.0  # 0: no expiry given
        self._lock = trio.Lock()
        self.fetched = 0

    @classmethod
    def for_service(cls, service: str, *, token_url: str, tenant: str = "",
                    **kwargs: Any) -> ClientCredentials:
        """The token source Kapacitor builds for ``sasl-oauth-service``."""
        service = service.lower()
        if service == "azuread":
            return cls(token_url=AZURE_AD_TOKEN_URL.format(tenant=quote(tenant, safe="")),
                       style="params", **kwargs)
        return cls(token_url=token_url, style="params" if service == "auth0" else "auto",
                   **kwargs)

    def _valid(self) -> bool:
        return bool(self._token) and (not self._expires
                                      or time.time() < self._expires - self.margin)

    async def token(self) -> str:
        async with self._lock:
            if not self._valid():
                await self._fetch()
            return self._token

    async def _fetch(self) -> None:
        if self.check_url is not None:
            self.check_url(self.token_url)
        styles = ["header", "params"] if self.style == "auto" else [self.style]
        if self.http_client is not None:
            await self._fetch_with(self.http_client(), styles)
            return
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            await self._fetch_with(client, styles)

    async def _fetch_with(self, client: httpx.AsyncClient, styles: list[str]) -> None:
        error: TokenError | None = None
        for style in styles:
            try:
                body = await self._request(client, style)
            except TokenError as exc:
                error = error or exc
                continue
            if self.style == "auto":
                self.style = style
            self._store(body)
            return
        assert error is not None
        raise error

    async def _request(self, client: httpx.AsyncClient, style: str) -> dict[str, Any]:
        form = {"grant_type": "client_credentials"}
        if self.scopes:
            form["scope"] = " ".join(self.scopes)
        form.update(self.params)
        auth: httpx.BasicAuth | None = None
        if style == "params":
            form["client_id"] = self.client_id
            form["client_secret"] = self.client_secret
        else:  # as Go's oauth2 does, the id and secret are URL-encoded first
            auth = httpx.BasicAuth(quote(self.client_id, safe=""),
                                   quote(self.client_secret, safe=""))
        try:
            response = await client.post(
                self.token_url, data=form, headers={"Accept": "application/json"},
                auth=httpx.USE_CLIENT_DEFAULT if auth is None else auth)
        except httpx.HTTPError as exc:
            raise TokenError(f"oauth2: cannot fetch token from {_safe(self.token_url)}: "
                             f"{type(exc).__name__}: {exc}") from None
        body = _parse(response)
        if response.status_code // 100 != 2 or not body.get("access_token"):
            detail = body.get("error_description") or body.get("error") or \
                response.text[:200].strip()
            raise TokenError(f"oauth2: cannot fetch token from {_safe(self.token_url)}: "
                             f"HTTP {response.status_code}: {detail or 'no access_token'}")
        return body

    def _store(self, body: dict[str, Any]) -> None:
        self._token = str(body["access_token"])
        try:
            expires_in = float(body.get("expires_in") or 0)
        except (TypeError, ValueError):
            expires_in = 0.0
        self._expires = time.time() + expires_in if expires_in > 0 else 0.0
        self.fetched += 1


def _parse(response: httpx.Response) -> dict[str, Any]:
    """The token response as JSON or (as some endpoints answer) a URL-encoded form."""
    content_type = response.headers.get("content-type", "")
    if "application/x-www-form-urlencoded" in content_type or \
            "text/plain" in content_type:
        return {k: v[0] for k, v in parse_qs(response.text).items()}
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _safe(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "<invalid url>"
    return f"{parsed.scheme}://{parsed.host}{parsed.path}"

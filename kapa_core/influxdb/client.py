"""The HTTP client of one InfluxDB cluster: credentials, TLS, URL failover, ping.

Later work adds queries, writes and subscriptions on the same ``httpx.AsyncClient``.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from typing import Any

import httpx

from kapa_core.auth import jwt
from kapa_core.denylist import DenyList, OutgoingDenied
from kapa_core.errors import KapaError
from kapa_core.influxdb.config import InfluxDBConfig
from kapa_core.tlsconfig import TLS, TLSFileError


class ConnectionFailed(KapaError):
    """InfluxDB could not be reached or refused us; the message says what to fix."""


@dataclass(frozen=True)
class PingResult:
    url: str
    version: str
    elapsed: float


def tls_context(config: InfluxDBConfig) -> ssl.SSLContext:
    """What httpx's ``verify`` takes for this element's TLS keys."""
    try:
        return TLS.of(config).context()
    except TLSFileError as exc:
        raise ConnectionFailed(f"ssl-{exc.which}: {exc}") from None


def _explain(url: str, exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OutgoingDenied):
            return f"{url}: {cause}"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (f"TLS certificate verification failed for {url}: {cause.verify_message}"
                    " (x509: certificate signed by unknown authority?) — set ssl-ca to the "
                    "CA that signed InfluxDB's certificate, or insecure-skip-verify = true")
        if isinstance(cause, ssl.SSLError):
            return f"TLS error talking to {url}: {cause}"
        cause = cause.__cause__ or cause.__context__
    if "Name or service not known" in text or "nodename nor servname" in text:
        return f"cannot resolve the host of {url}: {text}"
    if "Connection refused" in text or "connect" in text.lower():
        return f"cannot connect to {url}: {text} (is InfluxDB running and the URL right?)"
    return f"request to {url} failed: {text}"


class SharedSecretAuth(httpx.Auth):
    """``Authorization: Bearer <JWT>`` for ``http-shared-secret = true``, as Kapacitor
    sends it: HS512, claims ``username`` and ``exp``, signed with ``[http] shared-secret``
    (InfluxDB checks it against its own ``[http] shared-secret``). A token lives
    ``TOKEN_LIFETIME`` seconds and is replaced once half of that has passed."""

    TOKEN_LIFETIME = 60.0

    def __init__(self, username: str, secret: str) -> None:
        self.username = username
        self.secret = secret
        self._token = ""
        self._renew_at = 0.0

    def token(self) -> str:
        now = time.time()
        if not self._token or now >= self._renew_at:
            self._token = jwt.encode({"username": self.username,
                                      "exp": int(now + self.TOKEN_LIFETIME)},
                                     self.secret, "HS512")
            self._renew_at = now + self.TOKEN_LIFETIME / 2
        return self._token

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        yield request


class ClusterClient:
    """Async context manager owning the HTTP client of one [[influxdb]] element.

    Credentials, as Kapacitor chooses them: ``http-shared-secret = true`` -> a JWT signed
    with ``[http] shared-secret`` (``shared_secret``) naming ``username``; else
    ``username``/``password`` -> basic auth; else ``token`` -> ``Authorization: Token``.
    """

    def __init__(self, config: InfluxDBConfig, *, blacklist: Any = None,
                 shared_secret: str = "") -> None:
        self.config = config
        self.shared_secret = shared_secret
        if blacklist is not None and not isinstance(blacklist, DenyList):
            blacklist = DenyList(blacklist)  # a plain sequence of networks
        self.blacklist: DenyList | None = blacklist
        self._index = 0
        self.http: httpx.AsyncClient | None = None

    @property
    def url(self) -> str:
        return self.config.urls[self._index % len(self.config.urls)].rstrip("/")

    async def __aenter__(self) -> ClusterClient:
        headers = {"User-Agent": USER_AGENT}
        auth: httpx.Auth | None = None
        if self.config.http_shared_secret:
            if not self.shared_secret:
                raise ConnectionFailed("http-shared-secret = true needs [http] shared-secret "
                                       "(the secret InfluxDB's [http] shared-secret is set to)")
            auth = SharedSecretAuth(self.config.username, self.shared_secret)
        elif self.config.username or self.config.password:
            auth = httpx.BasicAuth(self.config.username, self.config.password)
        elif self.config.token:
            headers["Authorization"] = f"Token {self.config.token}"
        timeout = self.config.timeout / 1e9 if self.config.timeout else None
        hooks = {"request": [self._check_target]} if self.blacklist else {}
        self.http = httpx.AsyncClient(auth=auth, headers=headers, timeout=timeout,
                                      verify=tls_context(self.config), event_hooks=hooks)
        return self

    async def _check_target(self, request: httpx.Request) -> None:
        """Refuse every request (ping, query, write) to a -blacklist-cidrs address."""
        assert self.blacklist is not None
        try:
            await self.blacklist.check_host(request.url.host, request.url.port or 0)
        except OSError as exc:  # OutgoingDenied, or the name does not resolve
            raise httpx.ConnectError(str(exc), request=request) from exc

    async def __aexit__(self, *exc: object) -> None:
        if self.http is not None:
            await self.http.aclose()
            self.http = None

    def next_url(self) -> None:
        """Move on to the next of the cluster's URLs (after a transport failure)."""
        self._index += 1

    async def ping(self) -> PingResult:
        """GET /ping on the current URL, moving to the next URL when it fails."""
        assert self.http is not None, "use ClusterClient as an async context manager"
        url = self.url
        started = time.monotonic()
        try:
            response = await self.http.get(url + "/ping")
        except httpx.HTTPError as exc:
            self.next_url()
            raise ConnectionFailed(_explain(url, exc)) from None
        if response.status_code == 401:
            what = ("the shared secret and username" if self.config.http_shared_secret
                    else "username/password (or token)")
            raise ConnectionFailed(f"{url}: authorization failed: check {what}")
        if response.status_code not in (200, 204):
            self.next_url()
            raise ConnectionFailed(f"{url}/ping answered HTTP {response.status_code}")
        version = response.headers.get("X-Influxdb-Version", "")
        return PingResult(url, version, time.monotonic() - started)


#: What Kapacitor 1.5.7's InfluxDB client calls itself.
USER_AGENT = "KapacitorInfluxDBClient"


def quote_ident(name: str) -> str:
    """An InfluxQL double-quoted identifier."""
    escaped = name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def quote_string(text: str) -> str:
    """An InfluxQL single-quoted string literal."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


def error_text(response: httpx.Response) -> str:
    """The error InfluxDB put in a failed answer (1.x ``error``, 2.x ``message``)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:512] or f"HTTP {response.status_code}"
    if isinstance(body, dict) and body.get("error"):
        return str(body["error"])
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return response.text.strip()[:512]

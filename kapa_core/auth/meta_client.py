"""The HTTP client of an InfluxDB Enterprise meta node, as the ``[auth]`` meta keys set it up.

Three questions are asked, all with ``GET``:

    /user?name=<u>                 the user document: bcrypt ``hash`` and ``permissions``
    /authorized?name=&password=    whether a password is right (users without a ``hash``,
                                   e.g. when Enterprise delegates to LDAP)
    /role                          every role, its ``permissions`` and member ``users``

The first two are what Kapacitor asks; kapa-core adds the third so that permissions
granted through a role (the seed's second way) count too.

Requests carry HTTP basic auth with ``meta-username``/``meta-password``, or, when
``meta-internal-shared-secret`` is set (it wins), a JWT signed with it (HS512, claims
``username`` and ``exp`` five minutes ahead). ``307``/``308`` redirects (a follower pointing
at the lead meta node) are followed up to five times with the credentials re-applied.
Connection failures and ``5xx`` answers are retried with a growing pause for up to
``timeout`` seconds; TLS failures (e.g. a certificate that cannot be verified) and
``4xx`` answers are not. Proxy environment variables are ignored, as in Kapacitor.
"""

from __future__ import annotations

import base64
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urljoin, urlsplit

import httpx
import trio

from kapa_core.auth import jwt
from kapa_core.config.core_sections import AuthConfig
from kapa_core.errors import ConfigError, KapaError
from kapa_core.tlsconfig import TLS, TLSFileError

USER_AGENT = "InfluxDB Cluster Client"
DEFAULT_TIMEOUT = 10.0
MAX_REDIRECTS = 5
TOKEN_LIFETIME = 300  # seconds a meta-internal-shared-secret token stays valid
_REDIRECTS = (307, 308)


class MetaError(KapaError):
    """The meta API could not be asked, or refused; the message says what to fix."""


@dataclass(frozen=True)
class MetaUser:
    """A user document from ``GET /user``: permissions are ``{scope: [name, ...]}`` where
    the scope ``""`` means every database."""

    name: str
    hash: str = ""
    permissions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class MetaRole:
    """A role document from ``GET /role``."""

    name: str
    permissions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    users: tuple[str, ...] = ()


def peer_token(secret: str, now: float | None = None) -> str:
    """The JWT a meta node accepts from its peers: HS512, an empty ``username`` (as
    Kapacitor signs it) and ``exp`` five minutes ahead."""
    issued = time.time() if now is None else now
    return jwt.encode({"exp": int(issued) + TOKEN_LIFETIME, "username": ""}, secret, "HS512")


def _base_url(config: AuthConfig) -> str:
    """``meta-addr`` is ``host:port``; the scheme comes from ``meta-use-tls``. Surrounding
    spaces are ignored and an explicit ``http://``/``https://`` prefix is honoured."""
    addr = config.meta_addr.strip().rstrip("/")
    if "://" in addr:
        parts = urlsplit(addr)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError("auth.meta-addr", f"invalid address {config.meta_addr!r} "
                              "(expected host:port)")
        return f"{parts.scheme}://{parts.netloc}"
    if not addr or any(c in addr for c in "/?# "):
        raise ConfigError("auth.meta-addr", f"invalid address {config.meta_addr!r} "
                          "(expected host:port)")
    return ("https://" if config.meta_use_tls else "http://") + addr


def _tls_context(config: AuthConfig) -> ssl.SSLContext:
    """Trust ``meta-ca`` (else the system store), present ``meta-cert``/``meta-key`` when
    set; ``meta-insecure-skip-verify`` turns verification off."""
    if config.meta_key and not config.meta_cert:
        raise ConfigError("auth.meta-key", "set meta-cert too (the certificate of this key)")
    tls = TLS(config.meta_ca, config.meta_cert, config.meta_key,
              config.meta_insecure_skip_verify)
    try:
        return tls.context()
    except TLSFileError as exc:
        raise ConfigError(f"auth.meta-{exc.which}", str(exc)) from None


@dataclass(frozen=True)
class MetaConnection:
    """Where the meta node is and how to talk to it, checked once at startup."""

    base_url: str
    tls: ssl.SSLContext  # also used when a plain-HTTP node redirects to HTTPS
    username: str = ""
    password: str = ""
    shared_secret: str = ""

    @classmethod
    def from_config(cls, config: AuthConfig) -> MetaConnection:
        """Raises ConfigError naming the ``[auth]`` key that is wrong."""
        return cls(_base_url(config), _tls_context(config), config.meta_username,
                   config.meta_password, config.meta_internal_shared_secret)

    def headers(self) -> dict[str, str]:
        """Fresh request headers (a JWT expires, so it is signed per request)."""
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if self.shared_secret:
            headers["Authorization"] = "Bearer " + peer_token(self.shared_secret)
        elif self.username:
            raw = f"{self.username}:{self.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
        return headers

    @property
    def credentials_hint(self) -> str:
        if self.shared_secret:
            return "check [auth] meta-internal-shared-secret"
        if self.username:
            return "check [auth] meta-username and meta-password"
        return "the meta node requires credentials: set [auth] meta-username and meta-password"


def _explain(url: str, exc: BaseException) -> tuple[str, bool]:
    """A readable message for a failed request, and whether retrying is pointless."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (f"TLS certificate verification failed for {url}: {cause.verify_message} "
                    "- set [auth] meta-ca to the CA that signed the meta node's certificate, "
                    "or meta-insecure-skip-verify = true", True)
        if isinstance(cause, ssl.SSLError):
            reason = str(cause.reason or cause)
            hint = ""
            if "WRONG_VERSION" in reason or "HTTP_REQUEST" in reason:
                hint = " (does the meta node serve HTTPS? check [auth] meta-use-tls)"
            elif "CERTIFICATE" in reason or "UNKNOWN_CA" in reason:
                hint = (" (the meta node wants a client certificate it trusts: check "
                        "[auth] meta-cert and meta-key)")
            return f"TLS error talking to {url}: {reason}{hint}", True
        cause = cause.__cause__ or cause.__context__
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return (f"cannot connect to {url}: {text} (is the meta node running and "
                "[auth] meta-addr right?)", False)
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer from {url}: {text}", False
    return f"request to {url} failed: {text}", False


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200]
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return cast(str, body["error"])
    return response.text.strip()[:200]


def _permissions(raw: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, Mapping):
        return {}
    return {str(scope): tuple(str(p) for p in names)
            for scope, names in raw.items() if isinstance(names, list)}


class MetaClient:
    """One conversation with the meta node: ``async with MetaClient(conn) as meta:``."""

    def __init__(self, connection: MetaConnection, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.connection = connection
        self.timeout = timeout
        self._http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> MetaClient:
        self._http = httpx.AsyncClient(verify=self.connection.tls, timeout=self.timeout,
                                       follow_redirects=False, trust_env=False)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def user(self, name: str) -> MetaUser | None:
        """The user called ``name``, or None when the meta node does not know it."""
        response = await self._get("/user", {"name": name})
        if response.status_code == 404:
            return None
        body = self._json(response, "/user")
        users = body.get("users") if isinstance(body, dict) else None
        for raw in users if isinstance(users, list) else ():
            # An exact match only: a meta node that ignored ?name= lists every user.
            if isinstance(raw, dict) and raw.get("name") == name:
                hash_ = raw.get("hash")
                return MetaUser(name, hash_ if isinstance(hash_, str) else "",
                                _permissions(raw.get("permissions")))
        return None

    async def roles(self) -> list[MetaRole]:
        """Every role (``{}`` when there is none)."""
        response = await self._get("/role", {})
        if response.status_code == 404:
            return []
        body = self._json(response, "/role")
        roles = body.get("roles") if isinstance(body, dict) else None
        out = []
        for raw in roles if isinstance(roles, list) else ():
            if isinstance(raw, dict) and isinstance(raw.get("name"), str):
                users = raw.get("users")
                out.append(MetaRole(raw["name"], _permissions(raw.get("permissions")),
                                    tuple(str(u) for u in users)
                                    if isinstance(users, list) else ()))
        return out

    async def check_password(self, name: str, password: str) -> bool:
        """Whether the meta node accepts ``password`` for ``name`` (any 4xx means no)."""
        response = await self._get("/authorized", {
            "name": name, "password": password,
            "permission": "NoPermissions", "resource": "_"})
        if response.status_code == 200:
            return True
        self._raise_for_status(response, "/authorized", refused_ok=True)
        return False

    def _json(self, response: httpx.Response, path: str) -> Any:
        self._raise_for_status(response, path)
        try:
            return response.json()
        except ValueError:
            raise MetaError(f"{self.connection.base_url}{path} answered something that is "
                            f"not JSON: {response.text[:100]!r}") from None

    def _raise_for_status(self, response: httpx.Response, path: str,
                          refused_ok: bool = False) -> None:
        code = response.status_code
        if code < 300 or (refused_ok and 400 <= code < 500):
            return
        where = f"{self.connection.base_url}{path}"
        text = _error_text(response)
        if code in (401, 403):
            raise MetaError(f"the meta node refused Kapacitor's credentials ({where} answered "
                            f"HTTP {code}: {text}) - {self.connection.credentials_hint}")
        hint = ""
        if "HTTPS server" in text:
            hint = " (the meta node serves HTTPS: set [auth] meta-use-tls = true)"
        raise MetaError(f"{where} answered HTTP {code}: {text}{hint}")

    async def _get(self, path: str, params: Mapping[str, str]) -> httpx.Response:
        """GET with redirects followed and transient failures retried until ``timeout``."""
        assert self._http is not None, "use MetaClient as an async context manager"
        url = self.connection.base_url + path
        pause = 0.01
        problem = "no attempt finished"
        with trio.move_on_after(self.timeout):
            while True:
                try:
                    response = await self._follow(url, params)
                except httpx.HTTPError as exc:
                    problem, fatal = _explain(url, exc)
                    if fatal:
                        raise MetaError(problem) from None
                else:
                    if response.status_code < 500:
                        return response
                    problem = f"{url} answered HTTP {response.status_code}: " + _error_text(
                        response)
                await trio.sleep(pause)
                pause = min(pause * 2, self.timeout / 3)
        raise MetaError(f"gave up after {self.timeout:g}s: {problem}")

    async def _follow(self, url: str, params: Mapping[str, str]) -> httpx.Response:
        assert self._http is not None
        query: Mapping[str, str] | None = params
        for _ in range(MAX_REDIRECTS + 1):
            response = await self._http.get(url, params=query,
                                            headers=self.connection.headers())
            location = response.headers.get("Location")
            if response.status_code not in _REDIRECTS or not location:
                return response
            url = urljoin(url, location)
            if urlsplit(url).scheme not in ("http", "https"):
                raise MetaError(f"the meta node redirected to {location!r}")
            # Keep the question when the lead node's address comes without one.
            query = None if urlsplit(url).query else params
        raise MetaError(f"{self.connection.base_url}: more than {MAX_REDIRECTS} redirects")

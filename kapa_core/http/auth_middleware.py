"""The authentication and authorization middleware (``[http] auth-enabled = true``).

Every request needs credentials (see :mod:`kapa_core.auth.credentials`), as in
Kapacitor: the ping endpoint and unknown paths too. Only CORS preflight ``OPTIONS``
requests, which the server answers before any middleware, and, with ``[http]
pprof-enabled = true``, ``/kapacitor/v1/debug/vars`` and ``/kapacitor/v1/debug/pprof/...``
are open, and so are ``GET`` requests for the web console's static files under
``/console/`` (:mod:`kapa_core.http.console_api`); ``/kapacitor/v1/me`` asked without
any credentials answers that nobody is logged in. A request with a method the API does not serve gets the plain 404.

Username and password are offered to each authenticator in turn (the internal users
first, then e.g. the InfluxDB Enterprise meta API); the first :class:`Principal` wins.
A bearer token must be an HMAC JWT signed with ``[http] shared-secret`` with a positive
``exp`` and a ``username`` claim; the user it names is looked up with the
authenticators' optional ``async lookup(username)``. Bearer tokens are refused outright
while the shared secret is empty, since anyone could then sign one.

Failures answer as Kapacitor does, with compact JSON and no ``WWW-Authenticate`` header:
401 ``unable to parse authentication credentials``, ``username required``,
``authorization failed``, ``invalid token: ...``, ``invalid subscription token`` (user
``~subscriber``, see :mod:`.subscription_tokens`); 403 ``user <u> does not have "<read|
write|delete>" privilege for API endpoint "<path>"`` (see :mod:`.permissions`). The
authenticated name goes into the access log (``username=``) and the principal into
``request.context["principal"]`` for handlers.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence

from kapa_core.auth import jwt
from kapa_core.auth.credentials import (
    BEARER,
    SUBSCRIPTION,
    SUBSCRIPTION_USER,
    CredentialsError,
    parse_credentials,
)
from kapa_core.auth.permissions import METHOD_PRIVILEGES, api_path, authorize, go_quote
from kapa_core.auth.principal import Authenticator, Principal
from kapa_core.auth.subscription_tokens import SubscriptionTokens
from kapa_core.http.console_api import ME_PATH, is_console_path
from kapa_core.http.messages import JSON_TYPE, Request, Response, without_surrogates
from kapa_core.logs import Logger

PPROF_PREFIX = "/kapacitor/v1/debug/pprof"
VARS_PATH = "/kapacitor/v1/debug/vars"


def _offers_credentials(request: Request) -> bool:
    return (request.header("authorization") is not None or "u" in request.query
            or "p" in request.query)


class AuthFailed(Exception):
    """Authentication failed; ``str(exc)`` is the 401 message."""


def error_response(status: int, message: str) -> Response:
    """``{"error":"..."}`` byte for byte as Go's encoder writes it (compact, HTML-safe)."""
    text = json.dumps({"error": message}, ensure_ascii=False, separators=(",", ":"))
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return Response(status, [("content-type", JSON_TYPE)],
                    without_surrogates(text).encode("utf-8"))


class AuthMiddleware:
    """``await AuthMiddleware(authenticators, ...)(request, call_next)``."""

    def __init__(self, authenticators: Sequence[Authenticator], *, shared_secret: str = "",
                 pprof_enabled: bool = False, log: Logger | None = None,
                 subscription_tokens: SubscriptionTokens | None = None) -> None:
        self.authenticators = list(authenticators)
        self.subscription_tokens = subscription_tokens
        self.shared_secret = shared_secret
        self.pprof_enabled = pprof_enabled
        self.log = log or Logger("auth")
        self.failures = 0  # Kapacitor's httpd ``auth_fail`` statistic

    def bypass(self, request: Request) -> bool:
        """The console's static files (no data in them; the page must load to show its
        login form), and the profiling endpoints left open by ``[http] pprof-enabled``."""
        if request.method in ("GET", "HEAD") and is_console_path(request.path):
            return True
        if not self.pprof_enabled or request.method != "GET":
            return False
        path = api_path(request.path)
        return path in (VARS_PATH, PPROF_PREFIX) or path.startswith(PPROF_PREFIX + "/")

    async def __call__(self, request: Request,
                       call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.method not in METHOD_PRIVILEGES:
            return Response.error(404, "Not Found")
        if self.bypass(request):
            return await call_next(request)
        if api_path(request.path) == ME_PATH and not _offers_credentials(request):
            # the console asks who it is before it has asked for a password: "nobody",
            # rather than a 401 (which a browser logs as a failed load)
            request.context["anonymous"] = True
            return await call_next(request)
        try:
            principal = await self.authenticate(request)
        except AuthFailed as exc:
            self.failures += 1
            return error_response(401, str(exc))
        request.context["username"] = principal.name
        request.context["principal"] = principal
        denied = authorize(principal, request.method, request.path)
        if denied is not None:
            self.log.info("request refused: missing privilege", user=principal.name,
                          method=request.method, path=request.path,
                          request_id=request.request_id)
            return error_response(403, denied)
        return await call_next(request)

    # -- authentication ---------------------------------------------------------------
    async def authenticate(self, request: Request) -> Principal:
        try:
            creds = parse_credentials(request)
        except CredentialsError as exc:
            self.log.debug("request without credentials", client=request.client[0],
                           path=request.path, request_id=request.request_id)
            raise AuthFailed(str(exc)) from None
        if creds.method == BEARER:
            return await self._bearer(request, creds.token)
        if creds.method == SUBSCRIPTION:
            principal = (None if self.subscription_tokens is None
                         else self.subscription_tokens.lookup(creds.token))
            if principal is None:
                self._failed(request, SUBSCRIPTION_USER, "unknown subscription token")
                raise AuthFailed("invalid subscription token")
            return principal
        if not creds.username:
            raise AuthFailed("username required")
        for authenticator in self.authenticators:
            try:
                principal = await authenticator.authenticate(creds.username, creds.password)
            except Exception as exc:  # one failing backend must not open or crash the API
                self.log.error("authenticator failed", authenticator=type(authenticator)
                               .__name__, user=creds.username, err=str(exc))
                continue
            if principal is not None:
                return principal
        self._failed(request, creds.username, "wrong username or password")
        raise AuthFailed("authorization failed")

    async def _bearer(self, request: Request, token: str) -> Principal:
        if not self.shared_secret:
            self._failed(request, "", "bearer token while [http] shared-secret is empty")
            raise AuthFailed("invalid token: bearer tokens are not accepted: "
                             "[http] shared-secret is not set")
        try:
            claims = jwt.decode(token, self.shared_secret)
        except jwt.JWTError as exc:
            self._failed(request, "", f"invalid token: {exc}")
            raise AuthFailed(f"invalid token: {exc}") from None
        try:
            username = jwt.token_username(claims)
        except jwt.JWTError as exc:
            self._failed(request, "", str(exc))
            raise AuthFailed(str(exc)) from None
        for authenticator in self.authenticators:
            lookup = getattr(authenticator, "lookup", None)
            if lookup is None:
                continue
            try:
                principal: Principal | None = await lookup(username)
            except Exception as exc:
                self.log.error("user lookup failed", authenticator=type(authenticator)
                               .__name__, user=username, err=str(exc))
                continue
            if principal is not None:
                return principal
        self._failed(request, username, "token names an unknown user")
        raise AuthFailed(f"retrieving user {go_quote(username)} from store: no user exists")

    def _failed(self, request: Request, username: str, reason: str) -> None:
        self.log.warn("authentication failed", user=username or None,
                      client=request.client[0], reason=reason, path=request.path,
                      request_id=request.request_id)

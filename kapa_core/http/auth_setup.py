"""Wiring of ``[auth]`` and ``[http] auth-enabled`` into the daemon's HTTP server.

``[auth] enabled = true`` turns on the user store and its API (``/kapacitor/v1/users``,
absent otherwise, as in Kapacitor); ``[http] auth-enabled = true`` makes every request
authenticate. Users can be created while authentication is still off, which is how the
first admin user is made:

1. ``[auth] enabled = true``, ``[http] auth-enabled = false``: start, then
   ``POST /kapacitor/v1/users {"name": "admin", "password": "...", "type": "admin"}``;
2. ``[http] auth-enabled = true``: restart; the admin creates the other users.

Kapacitor accepts any credentials when ``[http] auth-enabled`` is on without a user
backend; kapa-core refuses to start instead, since no request could be checked.
"""

from __future__ import annotations

from collections.abc import Callable

from kapa_core.auth.internal import InternalAuthenticator
from kapa_core.auth.meta import MetaAuthenticator
from kapa_core.auth.principal import Authenticator
from kapa_core.auth.subscription_tokens import SubscriptionTokens
from kapa_core.auth.users import UserStore
from kapa_core.config.loader import Config
from kapa_core.errors import ConfigError
from kapa_core.http.auth_middleware import AuthMiddleware
from kapa_core.http.router import Router
from kapa_core.http.server import Middleware
from kapa_core.http.users_api import UsersAPI
from kapa_core.logs import Logger
from kapa_core.storage import USERS, Store


def authenticators(config: Config, users: UserStore | None) -> list[Authenticator]:
    """The user backends, asked in this order."""
    auth = config["auth"]
    out: list[Authenticator] = []
    if users is not None:
        out.append(InternalAuthenticator(users, auth.cache_expiration / 1e9))
    if auth.meta_addr.strip():
        out.append(MetaAuthenticator(auth))  # ConfigError for bad meta TLS keys
    return out


def check_config(config: Config) -> None:
    """Refuse ``[http] auth-enabled`` with no user backend to check requests against."""
    if config["http"].auth_enabled and not config["auth"].enabled:
        raise ConfigError("http.auth-enabled", "authentication needs a user backend: set "
                          "[auth] enabled = true (then create an admin user with "
                          "auth-enabled = false, see POST /kapacitor/v1/users)")


def install(router: Router, config: Config, store: Store, log: Logger | None = None,
            subscription_tokens: SubscriptionTokens | None = None,
            on_users: Callable[[UserStore], None] | None = None) -> list[Middleware]:
    """Register the users API (``[auth] enabled``) on ``router``; the middleware the
    server must run (empty unless ``[http] auth-enabled``). ``subscription_tokens`` are
    the tokens granted to InfluxDB subscriptions (user ``~subscriber``)."""
    log = log or Logger("auth")
    auth, http = config["auth"], config["http"]
    users: UserStore | None = None
    if auth.enabled:
        users = UserStore(store, auth.bcrypt_cost)
        UsersAPI(users).register(router)
        if on_users is not None:  # a cluster member shares them (kapa_core.cluster.catalog)
            on_users(users)
    backends = authenticators(config, users)
    if not http.auth_enabled:
        if auth.enabled:
            log.info("users can be managed, but requests are not authenticated until "
                     "[http] auth-enabled = true")
        return []
    if not backends:
        check_config(config)
        raise ConfigError("http.auth-enabled", "no user backend is configured")
    if auth.enabled and store.count(USERS) == 0 and not auth.meta_addr:
        log.warn("authentication is required but no user exists: every request will be "
                 "refused; start once with [http] auth-enabled = false and create an admin "
                 "user (POST /kapacitor/v1/users)")
    log.info("authentication enabled", backends=",".join(type(b).__name__ for b in backends),
             bearer_tokens="enabled" if http.shared_secret else "disabled")
    return [AuthMiddleware(backends, shared_secret=http.shared_secret,
                           pprof_enabled=http.pprof_enabled, log=log,
                           subscription_tokens=subscription_tokens)]

"""Users and permissions kept by InfluxDB Enterprise: the ``[auth] meta-addr`` authenticator.

For credentials it has not seen (or no longer trusts) the authenticator asks the meta API
for the user document (``GET /user?name=``) and the roles (``GET /role``), checks the
password against the document's bcrypt hash (or, for users without a hash, asks
``GET /authorized``), and caches the result for ``[auth] cache-expiration``. Within that
time the same username and password are answered from memory, with no meta-API request;
a different password for a cached user is checked against the cached hash first and, if it
does not match, against a fresh user document (the password may have changed in
Enterprise). ``cache-expiration = "0s"`` turns the cache off. Unknown users, wrong
passwords and meta-API failures all give None; failures are logged with what to fix.
``lookup(username)`` serves bearer tokens (``[http] shared-secret``): the user document
without a password check, cached the same way.

Enterprise permissions map to Kapacitor's the way Kapacitor maps them, in any scope:

    KapacitorAPI        -> api          (every endpoint except /config and the write check)
    KapacitorConfigAPI  -> config_api   (/config)
    WriteData           -> write_points (only when granted in scope "", i.e. every
                                         database: a Principal carries no database list)

Other Enterprise permissions (ReadData, ViewAdmin, ...) grant nothing in Kapacitor, and
meta users are never Kapacitor admins, whatever they may do in Enterprise. Permissions of
every role listing the user are added to the user's own.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import bcrypt
import trio

from kapa_core.auth.meta_client import (
    DEFAULT_TIMEOUT,
    MetaClient,
    MetaConnection,
    MetaError,
    MetaUser,
)
from kapa_core.auth.principal import Principal
from kapa_core.config.core_sections import AuthConfig
from kapa_core.logs import Logger

_BY_NAME = {"KapacitorAPI": "api", "KapacitorConfigAPI": "config_api"}
_WRITE_DATA = ("WriteData", "9")  # the meta node also accepts the number


def kapacitor_permissions(scoped: Mapping[str, Iterable[str]]) -> frozenset[str]:
    """Kapacitor permission names for Enterprise ``{scope: [permission, ...]}``."""
    out: set[str] = set()
    for scope, names in scoped.items():
        for name in names:
            if name in _BY_NAME:
                out.add(_BY_NAME[name])
            elif name in _WRITE_DATA and scope == "":
                out.add("write_points")
    return frozenset(out)


@dataclass
class _Entry:
    """A cached user: who it is, its hash, and a salted SHA-256 of the last password that
    was verified (so a repeat costs no bcrypt)."""

    principal: Principal
    hash: bytes
    expires: float
    salt: bytes = b""
    digest: bytes = b""

    def remember(self, password: str) -> None:
        self.salt = os.urandom(32)
        self.digest = hashlib.sha256(self.salt + password.encode()).digest()

    def recalls(self, password: str) -> bool:
        if not self.digest:
            return False
        candidate = hashlib.sha256(self.salt + password.encode()).digest()
        return hmac.compare_digest(candidate, self.digest)


def _bcrypt_matches(hashed: bytes, password: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode(), hashed)
    except ValueError:  # not a bcrypt hash, or a password bcrypt cannot take (> 72 bytes)
        return False


class _KeyedLocks:
    """One lock per username, dropped when nobody holds or waits for it: concurrent
    requests for one user make one meta-API lookup, other users are not held up."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[trio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, count = self._locks.get(key, (None, 0))
        lock = lock or trio.Lock()
        self._locks[key] = (lock, count + 1)
        try:
            async with lock:
                yield
        finally:
            lock, count = self._locks[key]
            if count <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, count - 1)


class MetaAuthenticator:
    """The Authenticator for ``[auth] meta-addr``; raises ConfigError for bad TLS keys."""

    def __init__(self, config: AuthConfig, *, logger: Logger | None = None,
                 timeout: float = DEFAULT_TIMEOUT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.connection = MetaConnection.from_config(config)
        self.expiration = int(config.cache_expiration) / 1e9
        self.timeout = timeout
        self.log = logger or Logger("auth")
        self._clock = clock
        self._cache: dict[str, _Entry] = {}
        self._locks = _KeyedLocks()

    async def authenticate(self, username: str, password: str) -> Principal | None:
        if not username:
            return None
        async with self._locks.hold(username):
            cached = await self._from_cache(username, password)
            if cached is not None:
                return cached
            return await self._from_meta(username, password)

    async def _from_cache(self, username: str, password: str) -> Principal | None:
        entry = self._cache.get(username)
        if entry is None:
            return None
        if self._clock() >= entry.expires:
            del self._cache[username]
            return None
        if entry.recalls(password):
            return entry.principal
        if entry.hash:
            if await trio.to_thread.run_sync(_bcrypt_matches, entry.hash, password):
                entry.remember(password)
                return entry.principal
        del self._cache[username]  # maybe changed in Enterprise: ask the meta node again
        return None

    async def lookup(self, username: str) -> Principal | None:
        """The user a bearer token (``[http] shared-secret``) names, as the meta API
        describes it; no password is involved. Cached like a login."""
        if not username:
            return None
        async with self._locks.hold(username):
            entry = self._cache.get(username)
            if entry is not None and self._clock() < entry.expires:
                return entry.principal
            return await self._from_meta(username, None)

    async def _from_meta(self, username: str, password: str | None) -> Principal | None:
        """Ask the meta node; ``password`` None skips the password check."""
        try:
            async with MetaClient(self.connection, timeout=self.timeout) as meta:
                user = await meta.user(username)
                if user is None:
                    self.log.debug("user unknown to the InfluxDB Enterprise meta API",
                                   user=username)
                    return None
                if password is not None and not await self._password_ok(meta, user,
                                                                          password):
                    self.log.debug("wrong password for InfluxDB Enterprise user",
                                   user=username)
                    return None
                principal, complete = await self._principal(meta, user)
        except MetaError as exc:
            self.log.error("cannot authenticate with the InfluxDB Enterprise meta API",
                           user=username, err=str(exc))
            return None
        if complete and self.expiration > 0:
            self._prune()
            entry = _Entry(principal, user.hash.encode(), self._clock() + self.expiration)
            if password is not None:
                entry.remember(password)
            self._cache[username] = entry
        return principal

    @staticmethod
    async def _password_ok(meta: MetaClient, user: MetaUser, password: str) -> bool:
        if user.hash:
            return await trio.to_thread.run_sync(_bcrypt_matches, user.hash.encode(),
                                                 password)
        return await meta.check_password(user.name, password)

    async def _principal(self, meta: MetaClient, user: MetaUser) -> tuple[Principal, bool]:
        """The user's Principal, and False when its roles could not be read (it is then
        built from the user's own permissions and not cached)."""
        scoped: dict[str, list[str]] = {s: list(p) for s, p in user.permissions.items()}
        complete = True
        try:
            for role in await meta.roles():
                if user.name in role.users:
                    for scope, names in role.permissions.items():
                        scoped.setdefault(scope, []).extend(names)
        except MetaError as exc:
            complete = False
            self.log.warn("cannot read InfluxDB Enterprise roles; using the user's own "
                          "permissions", user=user.name, err=str(exc))
        return Principal(user.name, False, kapacitor_permissions(scoped)), complete

    def _prune(self) -> None:
        now = self._clock()
        for name in [n for n, e in self._cache.items() if now >= e.expires]:
            del self._cache[name]

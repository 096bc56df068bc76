"""The authenticator for users stored by kapa-core itself (``/kapacitor/v1/users``)."""

from __future__ import annotations

from kapa_core.auth.cache import CredentialCache
from kapa_core.auth.principal import Principal
from kapa_core.auth.users import UserStore


class InternalAuthenticator:
    """Checks a password against the stored bcrypt hash, through a
    :class:`CredentialCache` so repeated requests skip bcrypt."""

    def __init__(self, users: UserStore, cache_ttl: float = 600.0) -> None:
        self.users = users
        self.cache = CredentialCache(cache_ttl)
        self._changes = 0
        users.listeners.append(self._changed)

    def _changed(self, username: str) -> None:
        self._changes += 1
        self.cache.forget(username)

    async def authenticate(self, username: str, password: str) -> Principal | None:
        cached = self.cache.check(username, password)
        if cached is not None:
            return cached
        changes = self._changes
        user = await self.users.get(username)
        if user is None:
            await self.users.spend_check(password)
            return None
        if not await self.users.check_password(user.hash, password):
            self.cache.forget(username)
            return None
        principal = user.principal()
        if changes == self._changes:  # not cached if a user changed during the check
            self.cache.put(username, password, principal)
        return principal

    async def lookup(self, username: str) -> Principal | None:
        """The user named by a verified bearer token (no password to check)."""
        user = await self.users.get(username)
        return None if user is None else user.principal()

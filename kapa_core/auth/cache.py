"""A cache of recent successful logins, so a client sending its password with every
request does not pay a bcrypt check (tens of milliseconds at the default cost) each time.

As in Kapacitor, what is kept is not the password but a random 32-byte salt and the
SHA-256 of salt + password; an entry is trusted until ``ttl`` seconds after the bcrypt
check that created it (``[auth] cache-expiration``; 0 disables the cache). A password
that does not match the entry falls through to a full bcrypt check, and changing or
deleting a user forgets its entry at once.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from kapa_core.auth.principal import Principal

SALT_BYTES = 32


@dataclass(frozen=True)
class _Entry:
    salt: bytes
    digest: bytes
    expires: float
    principal: Principal


def _digest(salt: bytes, password: str) -> bytes:
    return hashlib.sha256(salt + password.encode("utf-8")).digest()


class CredentialCache:
    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[str, _Entry] = {}

    def check(self, username: str, password: str) -> Principal | None:
        """The cached principal when ``password`` is the one checked for ``username``
        less than ``ttl`` seconds ago."""
        entry = self._entries.get(username)
        if entry is None:
            return None
        if self.clock() >= entry.expires:
            del self._entries[username]
            return None
        if hmac.compare_digest(_digest(entry.salt, password), entry.digest):
            return entry.principal
        return None

    def put(self, username: str, password: str, principal: Principal) -> None:
        if self.ttl <= 0:
            return
        salt = os.urandom(SALT_BYTES)
        self._entries[username] = _Entry(salt, _digest(salt, password),
                                         self.clock() + self.ttl, principal)

    def forget(self, username: str) -> None:
        self._entries.pop(username, None)

    def __len__(self) -> int:
        return len(self._entries)

"""Kapacitor's internal users, kept in the SQLite store (bucket ``users``).

A user is a name, an admin flag, a set of permissions (``api``, ``config_api``,
``write_points``; ``all`` is stored as the three) and a bcrypt hash of the password:
the password itself is never stored, logged or returned. Hashing and checking run in
worker threads, at most ``BCRYPT_THREADS`` at a time, so a burst of logins never stalls
the event loop nor takes every core.

Names follow Kapacitor's rule: letters, digits, ``-``, ``.``, ``_`` and ``@``. The names
``.`` and ``..`` are refused as well, since they cannot be used in a URL path.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import bcrypt
import trio

from kapa_core.auth.principal import Principal
from kapa_core.errors import APIError
from kapa_core.glob import compile_glob
from kapa_core.storage import USERS, Store

BASE = "/kapacitor/v1/users"
USER_FIELDS = ("link", "name", "type", "permissions")
#: Permissions a user can hold, in the order Kapacitor lists them.
GRANTS = ("api", "config_api", "write_points")
BCRYPT_THREADS = 2
MAX_PASSWORD_BYTES = 72  # bcrypt ignores (this library refuses) anything longer
_DIGITS = frozenset("0123456789")
_PUNCTUATION = frozenset("-._@")


class NoUserExists(Exception):
    """The named user is not in the store."""

    def __str__(self) -> str:
        return "no user exists"


def valid_username(name: str) -> bool:
    """Letters (any script), ASCII digits, ``-``, ``.``, ``_`` and ``@``; not ``.``/``..``."""
    return bool(name) and name not in (".", "..") and all(
        ch.isalpha() or ch in _DIGITS or ch in _PUNCTUATION for ch in name)


def parse_permissions(values: Any) -> frozenset[str]:
    """Kapacitor permission names to the stored set (``all`` -> every grant)."""
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise APIError(400, "invalid JSON: permissions must be a list of strings")
    out: set[str] = set()
    for value in values:
        name = value.lower()
        if name == "none":
            continue
        if name == "all":
            out.update(GRANTS)
        elif name in GRANTS:
            out.add(name)
        else:
            raise APIError(400, f'invalid permissions: unknown permission "{value}" '
                           "(expected none, api, config_api, write_points or all)")
    return frozenset(out)


def permission_names(granted: Iterable[str]) -> list[str]:
    """The stored set as Kapacitor shows it: ``["all"]`` when complete, else in order."""
    have = set(granted)
    if have >= set(GRANTS):
        return ["all"]
    return [name for name in GRANTS if name in have]


@dataclass(frozen=True)
class User:
    name: str
    admin: bool
    hash: str
    permissions: frozenset[str] = frozenset()

    def principal(self) -> Principal:
        return Principal(self.name, self.admin, self.permissions)

    def view(self, fields: Iterable[str] = USER_FIELDS) -> dict[str, Any]:
        """The API's user object (never the hash)."""
        values = {"link": {"rel": "self", "href": f"{BASE}/{self.name}"},
                  "name": self.name, "type": "admin" if self.admin else "normal",
                  "permissions": permission_names(self.permissions)}
        return {f: values[f] for f in USER_FIELDS if f in set(fields)}

    def encode(self) -> dict[str, Any]:
        return {"name": self.name, "admin": self.admin, "hash": self.hash,
                "permissions": sorted(self.permissions)}

    @classmethod
    def decode(cls, raw: dict[str, Any]) -> User:
        return cls(str(raw["name"]), bool(raw.get("admin")), str(raw["hash"]),
                   frozenset(p for p in raw.get("permissions", ()) if p in GRANTS))


class UserStore:
    """Users in the SQLite store; ``listeners`` are told the name of every user changed."""

    def __init__(self, store: Store, bcrypt_cost: int = 10) -> None:
        self.store = store
        self.bcrypt_cost = bcrypt_cost
        self.listeners: list[Callable[[str], None]] = []
        self._limiter = trio.CapacityLimiter(BCRYPT_THREADS)
        self._lock = trio.Lock()
        self._dummy_hash: bytes | None = None
        store.register_store(USERS)

    # -- passwords --------------------------------------------------------------------
    async def hash_password(self, password: str) -> str:
        data = password.encode("utf-8")
        if len(data) > MAX_PASSWORD_BYTES:
            raise APIError(400, f"password must be at most {MAX_PASSWORD_BYTES} bytes "
                           "(a bcrypt limit)")
        cost = self.bcrypt_cost
        try:
            hashed = await trio.to_thread.run_sync(
                lambda: bcrypt.hashpw(data, bcrypt.gensalt(cost)), limiter=self._limiter)
        except ValueError as exc:
            raise APIError(400, f"hashing password: {exc}") from None
        return hashed.decode("ascii")

    async def check_password(self, hashed: str, password: str) -> bool:
        """bcrypt's verdict; False for a password bcrypt cannot take."""
        data = password.encode("utf-8")
        if len(data) > MAX_PASSWORD_BYTES:
            return False

        def check() -> bool:
            try:
                return bcrypt.checkpw(data, hashed.encode("ascii"))
            except ValueError:
                return False
        return await trio.to_thread.run_sync(check, limiter=self._limiter)

    async def spend_check(self, password: str) -> None:
        """As long as a real check, for an unknown user: the answer time does not tell
        whether a name exists."""
        if self._dummy_hash is None:
            cost = self.bcrypt_cost
            self._dummy_hash = await trio.to_thread.run_sync(
                lambda: bcrypt.hashpw(b"kapa-core unknown user", bcrypt.gensalt(cost)),
                limiter=self._limiter)
        await self.check_password(self._dummy_hash.decode("ascii"), password)

    # -- records ----------------------------------------------------------------------
    async def get(self, name: str) -> User | None:
        raw = await self.store.aget_json(USERS, name)
        return None if raw is None else User.decode(raw)

    async def count(self) -> int:
        return await trio.to_thread.run_sync(self.store.count, USERS)

    async def list(self, pattern: str = "", offset: int = 0, limit: int = 100) -> list[User]:
        """Users whose name matches the glob ``pattern`` (all when empty), by name."""
        matches = compile_glob(pattern) if pattern else None
        rows = await self.store.aitems_json(USERS)
        users = [User.decode(raw) for name, raw in rows if matches is None or matches(name)]
        return users[offset:offset + limit]

    async def create(self, name: str, password: str, admin: bool,
                     permissions: frozenset[str]) -> User:
        hashed = await self.hash_password(password)
        async with self._lock:
            if await self.get(name) is not None:
                raise APIError(400, "failed to create user: user already exists")
            user = User(name, admin, hashed, permissions)
            await self.store.aput_json(USERS, name, user.encode())
        self._changed(name)
        return user

    async def update(self, name: str, *, password: str = "", admin: bool | None = None,
                     permissions: frozenset[str] | None = None) -> User:
        """Change what is given: a new password, the type (an admin loses its
        permissions, as in Kapacitor), the permissions."""
        hashed = await self.hash_password(password) if password else None
        async with self._lock:
            user = await self.get(name)
            if user is None:
                raise NoUserExists
            new_permissions = user.permissions if permissions is None else permissions
            new_admin = user.admin if admin is None else admin
            if admin:
                new_permissions = frozenset()
            user = User(name, new_admin, hashed or user.hash, new_permissions)
            await self.store.aput_json(USERS, name, user.encode())
        self._changed(name)
        return user

    async def delete(self, name: str) -> None:
        async with self._lock:
            await self.store.adelete(USERS, name)
        self._changed(name)

    def _changed(self, name: str) -> None:
        for listener in self.listeners:
            listener(name)

    # -- a cluster's catalog (kapa_core.cluster.catalog) ----------------------------------
    def local_users(self) -> dict[str, dict[str, Any]]:
        return {name: raw for name, raw in self.store.items_json(USERS)}

    async def apply_remote_user(self, name: str, data: dict[str, Any] | None) -> None:
        """Take a user as another member wrote it (None: deleted); the caches that know
        the user forget it (the listeners), the catalog's own among them, which finds
        the user as the bucket has it and writes nothing."""
        async with self._lock:
            if data is None:
                await self.store.adelete(USERS, name)
            else:
                await self.store.aput_json(USERS, name, data)
        self._changed(name)


def parse_limit(request_value: str, name: str, default: int) -> int:
    """An ``offset``/``limit`` query value, with Kapacitor's error text."""
    if request_value == "":
        return default
    try:
        value = int(request_value, 10)
    except ValueError:
        raise APIError(400, f"invalid {name} parameter {json.dumps(request_value)} must be "
                       f"an integer: strconv.ParseInt: parsing {json.dumps(request_value)}: "
                       "invalid syntax") from None
    if value < 0:
        raise APIError(400, f"invalid {name} parameter {json.dumps(request_value)} must not "
                       "be negative")
    return value

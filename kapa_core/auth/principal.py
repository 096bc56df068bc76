"""Who a request is: what every authenticator (internal users, the InfluxDB Enterprise
meta API) returns and what the authorization check reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

#: Kapacitor's permission names (``/kapacitor/v1/users`` ``permissions``)
PERMISSIONS = ("none", "api", "config_api", "write_points", "all")


@dataclass(frozen=True)
class Principal:
    """An authenticated user: ``admin`` users may do everything; others need the
    permission the endpoint maps to (``api``, ``config_api``, ``write_points``; ``all``
    grants every one). ``databases``, when set, are the only databases the principal
    may write points into (an InfluxDB subscription token is made for one)."""

    name: str
    admin: bool = False
    permissions: frozenset[str] = frozenset()
    databases: frozenset[str] | None = None

    def may_write(self, db: str) -> bool:
        return self.databases is None or db in self.databases

    def allows(self, permission: str) -> bool:
        return self.admin or "all" in self.permissions or permission in self.permissions


class Authenticator(Protocol):
    """Checks a username and password; None when this authenticator does not know the
    user or the password is wrong (the next authenticator is then asked)."""

    async def authenticate(self, username: str, password: str) -> Principal | None: ...

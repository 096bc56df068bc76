"""Subscription tokens: how InfluxDB authenticates when it pushes writes to kapa-core.

With ``[http] auth-enabled`` every request needs credentials, InfluxDB's subscription
writes included. As Kapacitor does, each http/https subscription gets its own random
token, carried in the destination URL as the password of the pseudo-user
``~subscriber``::

    http://~subscriber:<token>@kapacitor-host:9092

InfluxDB turns the URL's credentials into basic auth on every write. A token grants
exactly one thing: writing points into the database it was made for (``/write``, and
``/ping``); any other request with it is refused.

Tokens have Kapacitor's form, base64url (no padding) of ``<cluster name>;<64 random
bytes>``, so the cluster a token was made for can be read from it. The store keeps only
the SHA-256 of each token with its cluster, database and retention policy; the tokens
themselves live only in InfluxDB's subscription destinations. The subscription manager
grants a token when it creates a subscription and revokes, at every link, the tokens of
its cluster that no subscription destination carries any more (a dropped subscription,
``auth-enabled`` switched off, a database dropped).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from kapa_core.auth.credentials import SUBSCRIPTION_USER
from kapa_core.auth.principal import Principal
from kapa_core.storage import SUBSCRIPTION_TOKENS, Store

__all__ = ["SUBSCRIPTION_USER", "Grant", "SubscriptionTokens", "make_token", "token_cluster"]
#: Random bytes in a token (as Kapacitor).
TOKEN_BYTES = 64
DELIMITER = b";"


def make_token(cluster: str) -> str:
    """A new token for ``cluster``: base64url of ``<cluster>;<random bytes>``."""
    raw = cluster.encode() + DELIMITER + secrets.token_bytes(TOKEN_BYTES)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def token_cluster(token: str) -> str | None:
    """The cluster name a token was made for; None when it is not a token of this form."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    cluster, sep, rest = raw.partition(DELIMITER)
    if not sep or not cluster or not rest:
        return None
    try:
        return cluster.decode()
    except UnicodeDecodeError:
        return None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Grant:
    """What one token allows: writes into ``db`` (made for ``db``.``rp`` of ``cluster``)."""

    cluster: str
    db: str
    rp: str

    def principal(self) -> Principal:
        return Principal(SUBSCRIPTION_USER, permissions=frozenset({"write_points"}),
                         databases=frozenset({self.db}))


class SubscriptionTokens:
    """The granted tokens: in the store, and in memory for the per-request check."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.register_store(SUBSCRIPTION_TOKENS)
        self._grants: dict[str, Grant] = {}
        for digest, raw in store.items_json(SUBSCRIPTION_TOKENS):
            if isinstance(raw, dict):
                self._grants[digest] = Grant(str(raw.get("cluster", "")),
                                             str(raw.get("db", "")), str(raw.get("rp", "")))

    def __len__(self) -> int:
        return len(self._grants)

    def lookup(self, token: str) -> Principal | None:
        """Who a request presenting ``token`` is; None for an unknown token."""
        grant = self._grants.get(_digest(token))
        return None if grant is None else grant.principal()

    def granted(self, token: str) -> bool:
        return _digest(token) in self._grants

    async def grant(self, token: str, db: str, rp: str) -> None:
        cluster = token_cluster(token)
        if cluster is None:
            raise ValueError("not a subscription token")
        digest = _digest(token)
        grant = Grant(cluster, db, rp)
        await self.store.aput_json(SUBSCRIPTION_TOKENS, digest,
                                   {"cluster": cluster, "db": db, "rp": rp})
        self._grants[digest] = grant

    async def revoke(self, tokens: Iterable[str]) -> int:
        """Revoke the given tokens (unknown ones are ignored); how many were revoked."""
        return await self._drop({_digest(t) for t in tokens} & self._grants.keys())

    async def revoke_other_clusters(self, clusters: Iterable[str]) -> int:
        """Revoke the tokens of every cluster not in ``clusters`` (removed or disabled)."""
        keep = set(clusters)
        return await self._drop({d for d, g in self._grants.items() if g.cluster not in keep})

    async def revoke_unused(self, cluster: str, in_use: Iterable[str]) -> int:
        """Revoke the tokens of ``cluster`` not in ``in_use``; how many were revoked."""
        keep = {_digest(t) for t in in_use}
        return await self._drop({d for d, g in self._grants.items()
                                 if g.cluster == cluster and d not in keep})

    async def _drop(self, digests: set[str]) -> int:
        for digest in digests:
            del self._grants[digest]
            await self.store.adelete(SUBSCRIPTION_TOKENS, digest)
        return len(digests)

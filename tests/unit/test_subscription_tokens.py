"""Subscription tokens: their form, what they grant, and that only digests are stored."""

from __future__ import annotations

import base64

from kapa_core.auth.subscription_tokens import (
    SUBSCRIPTION_USER,
    SubscriptionTokens,
    make_token,
    token_cluster,
)
from kapa_core.storage import SUBSCRIPTION_TOKENS, Store


def test_token_form_is_kapacitors() -> None:
    token = make_token("default")
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert raw.startswith(b"default;") and len(raw) == len(b"default;") + 64
    assert "=" not in token and "+" not in token and "/" not in token
    assert token_cluster(token) == "default"
    assert make_token("default") != token
    for bad in ("", "x" * 40, "!!!", base64.urlsafe_b64encode(b";abc").decode(),
                base64.urlsafe_b64encode(b"abc").decode()):
        assert token_cluster(bad) is None


async def test_grant_lookup_revoke_and_persistence(tmp_path) -> None:
    path = str(tmp_path / "kapacitor.db")
    store = Store(path)
    tokens = SubscriptionTokens(store)
    a, b, c = make_token("default"), make_token("default"), make_token("other")
    await tokens.grant(a, "telegraf", "autogen")
    await tokens.grant(b, "db2", "rp")
    await tokens.grant(c, "telegraf", "autogen")
    principal = tokens.lookup(a)
    assert principal is not None and principal.name == SUBSCRIPTION_USER
    assert principal.may_write("telegraf") and not principal.may_write("db2")
    assert principal.allows("write_points") and not principal.allows("api")
    assert tokens.lookup(make_token("default")) is None
    # Only digests are stored, never the token.
    stored = store.items(SUBSCRIPTION_TOKENS)
    assert len(stored) == 3
    assert not any(a in key or a.encode() in value for key, value in stored)
    store.close()

    again = SubscriptionTokens(Store(path))
    assert again.lookup(b) is not None and again.lookup(b).may_write("db2")
    # Revoking the cluster's unused tokens leaves other clusters' alone.
    assert await again.revoke_unused("default", [a]) == 1
    assert again.lookup(b) is None and again.granted(a) and again.granted(c)
    assert await again.revoke([a, a, make_token("x")]) == 1
    assert len(again) == 1 and again.granted(c)
    again.store.close()

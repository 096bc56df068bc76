"""Which live member owns each task: rendezvous (highest random weight) hashing.

Every member computes the same answer from the same list of live members, with no
message exchanged: a task goes to the member whose hash of ``(member, task)`` is the
highest. When a member leaves, only its own tasks move (each to the member that was
second for it); when one joins, it takes about ``1/(n+1)`` of the tasks, from all the
others alike. A member's ``weight`` (default 1) scales its share, for members of
unequal size (docs/cluster.md, "Placement").

The hash is BLAKE2b of the two IDs, so placement does not depend on Python's
per-process string hashing nor on the platform, and any member of any version agrees.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_SCALE = float(1 << 64)


@dataclass(frozen=True)
class Member:
    """A live member as placement sees it."""

    id: str
    weight: float = 1.0


def score(member: Member, key: str) -> float:
    """The member's bid for ``key``: a uniform draw in (0, 1) from the two IDs, turned
    into a weighted score (``-weight / ln(u)``, so shares follow the weights)."""
    digest = hashlib.blake2b(f"{member.id}\0{key}".encode(), digest_size=8).digest()
    u = (int.from_bytes(digest, "big") + 0.5) / _SCALE  # never 0 nor 1
    return -member.weight / math.log(u)


def owner(key: str, members: Iterable[Member]) -> Member | None:
    """The member that owns ``key`` (a task ID, a topic), None when no member is live.
    Ties (impossible in practice) go to the smaller member ID."""
    best: Member | None = None
    best_score = -1.0
    for member in members:
        if member.weight <= 0:
            continue
        s = score(member, key)
        if s > best_score or (s == best_score and best is not None and member.id < best.id):
            best, best_score = member, s
    return best


def assign(keys: Iterable[str], members: Iterable[Member]) -> dict[str, str | None]:
    """Each key's owner's ID."""
    live = list(members)
    return {key: (found.id if (found := owner(key, live)) else None) for key in keys}


def moves(before: Mapping[str, str | None], after: Mapping[str, str | None]
          ) -> dict[str, tuple[str | None, str | None]]:
    """The keys whose owner changed between two assignments: key -> (old, new)."""
    return {key: (before.get(key), new) for key, new in after.items()
            if before.get(key) != new}

"""Who runs a task right now: one lease per task, in a key-value bucket.

Placement (:mod:`kapa_core.cluster.placement`) says who *should* own a task; the lease
says who *does*, so a task never runs on two members at once, even while members
disagree for a moment about who is alive (docs/cluster.md, "Handover"):

- a member takes a free lease with a create (only if the key is absent), or the lease of
  a member that is no longer alive with an update conditioned on the revision it read;
- it gives its lease up with a delete conditioned on its own revision, after its last
  checkpoint;
- every checkpoint is written with the lease's revision checked: a member whose lease
  was taken (it was cut off long enough to be thought dead) learns it there and stops.

The bucket is reached through the small :class:`Bucket` protocol, which the NATS bridge's
key-value buckets (:class:`kapa_core.cluster.bridge.KvBucket`) provide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from kapa_core.cluster import ConflictError


class Entry(Protocol):
    @property
    def value(self) -> bytes: ...

    @property
    def revision(self) -> int: ...


class Bucket(Protocol):
    async def get(self, key: str) -> Entry | None: ...

    async def create(self, key: str, value: bytes) -> int:
        """Write ``key`` only if absent; ConflictError otherwise. The new revision."""

    async def update(self, key: str, value: bytes, last_revision: int) -> int:
        """Write ``key`` only if its revision is still ``last_revision``; ConflictError
        otherwise. The new revision."""

    async def delete(self, key: str, last_revision: int | None = None) -> None:
        """Remove ``key`` (only if at ``last_revision`` when given; ConflictError
        otherwise)."""


@dataclass(frozen=True)
class Lease:
    task_id: str
    holder: str
    revision: int


class Leases:
    """This member's side of the leases: ``alive(member_id)`` says whether a member is
    in the members bucket now."""

    def __init__(self, bucket: Bucket, member_id: str, alive: Callable[[str], bool]) -> None:
        self.bucket = bucket
        self.member_id = member_id
        self.alive = alive

    @staticmethod
    def key(task_id: str) -> str:
        return f"task.{task_id}"

    async def holder(self, task_id: str) -> Lease | None:
        entry = await self.bucket.get(self.key(task_id))
        if entry is None or not entry.value:
            return None
        return Lease(task_id, entry.value.decode(), entry.revision)

    async def acquire(self, task_id: str) -> Lease | None:
        """Take the task's lease: ours already, free, or held by a member that is gone.
        None while a live member holds it (it is handing over; try again later)."""
        me = self.member_id.encode()
        current = await self.bucket.get(self.key(task_id))
        try:
            if current is None or not current.value:
                revision = (await self.bucket.create(self.key(task_id), me)
                            if current is None else
                            await self.bucket.update(self.key(task_id), me, current.revision))
                return Lease(task_id, self.member_id, revision)
            holder = current.value.decode()
            if holder == self.member_id:
                return Lease(task_id, holder, current.revision)
            if self.alive(holder):
                return None
            revision = await self.bucket.update(self.key(task_id), me, current.revision)
            return Lease(task_id, self.member_id, revision)
        except ConflictError:
            return None  # another member moved first: it holds the lease now

    async def release(self, lease: Lease) -> bool:
        """Give the lease up; False when it was no longer ours."""
        try:
            await self.bucket.delete(self.key(lease.task_id), lease.revision)
        except ConflictError:
            return False
        return True

    async def still_held(self, lease: Lease) -> bool:
        """Whether ``lease`` is still ours, at its revision (checked before a checkpoint)."""
        current = await self.holder(lease.task_id)
        return current is not None and current == lease

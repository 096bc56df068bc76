"""Task leases: one holder at a time, taken over only from a member that is gone, given
up only by its holder. The bucket here keeps a revision per key as JetStream's
key-value buckets do (the integration tests run the same class on a real one)."""

from __future__ import annotations

from dataclasses import dataclass

import trio

from kapa_core.cluster import ConflictError
from kapa_core.cluster.leases import Lease, Leases


@dataclass(frozen=True)
class Entry:
    value: bytes
    revision: int


class MemoryBucket:
    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.revision = 0

    def _write(self, key: str, value: bytes) -> int:
        self.revision += 1
        self.entries[key] = Entry(value, self.revision)
        return self.revision

    async def get(self, key: str) -> Entry | None:
        entry = self.entries.get(key)
        await trio.sleep(0)  # others run between a read and the write that follows it
        return entry

    async def create(self, key: str, value: bytes) -> int:
        if key in self.entries and self.entries[key].value:
            raise ConflictError(key)
        return self._write(key, value)

    async def update(self, key: str, value: bytes, last_revision: int) -> int:
        current = self.entries.get(key)
        if current is None or current.revision != last_revision:
            raise ConflictError(key)
        return self._write(key, value)

    async def delete(self, key: str, last_revision: int | None = None) -> None:
        current = self.entries.get(key)
        if last_revision is not None and (current is None or current.revision != last_revision):
            raise ConflictError(key)
        self._write(key, b"")  # a delete marker, as JetStream keeps one


async def test_one_holder_at_a_time() -> None:
    bucket = MemoryBucket()
    live = {"a", "b"}
    a, b = Leases(bucket, "a", live.__contains__), Leases(bucket, "b", live.__contains__)
    lease = await a.acquire("cpu")
    assert lease is not None and lease.holder == "a"
    assert await b.acquire("cpu") is None  # a is alive and holds it
    assert await a.acquire("cpu") == lease  # taking it again changes nothing
    assert await a.still_held(lease)


async def test_taken_over_from_a_member_that_is_gone_and_the_old_holder_learns_it() -> None:
    bucket = MemoryBucket()
    live = {"a", "b"}
    a, b = Leases(bucket, "a", live.__contains__), Leases(bucket, "b", live.__contains__)
    old = await a.acquire("cpu")
    assert old is not None
    live.discard("a")  # its heartbeat expired
    new = await b.acquire("cpu")
    assert new is not None and new.holder == "b" and new.revision > old.revision
    assert not await a.still_held(old)  # its next checkpoint would stop it
    assert not await a.release(old)  # and it cannot free b's lease
    assert await b.still_held(new)


async def test_released_then_free_for_the_next() -> None:
    bucket = MemoryBucket()
    a, b = Leases(bucket, "a", lambda m: True), Leases(bucket, "b", lambda m: True)
    lease = await a.acquire("cpu")
    assert lease is not None and await a.release(lease)
    assert await a.holder("cpu") is None
    taken = await b.acquire("cpu")
    assert taken is not None and taken.holder == "b"


async def test_racing_members_get_one_lease() -> None:
    bucket = MemoryBucket()
    members = [Leases(bucket, f"m{n}", lambda m: m != "gone") for n in range(5)]
    await bucket.create("task.cpu", b"gone")
    won: list[Lease | None] = []

    async def take(leases: Leases) -> None:
        await trio.sleep(0)
        won.append(await leases.acquire("cpu"))

    async with trio.open_nursery() as nursery:
        for leases in members:
            nursery.start_soon(take, leases)
    holders = [lease for lease in won if lease is not None]
    assert len(holders) == 1
    assert (await members[0].holder("cpu")) == holders[0]

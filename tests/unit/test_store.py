"""The SQLite store: round trips, transactions, async twins, crash safety."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest
import trio

from kapa_core.errors import StorageError
from kapa_core.storage import OVERRIDES, TASKS, Store


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "sub" / "kapacitor.db"))
    yield s
    s.close()


def test_round_trip_and_listing(store: Store) -> None:
    store.put(TASKS, "b", b"2")
    store.put(TASKS, "a", b"1")
    store.put(TASKS, "ab", b"3")
    store.put(OVERRIDES, "a", b"other")
    assert store.get(TASKS, "a") == b"1"
    assert store.get(TASKS, "zz") is None
    assert store.items(TASKS) == [("a", b"1"), ("ab", b"3"), ("b", b"2")]
    assert store.items(TASKS, prefix="a") == [("a", b"1"), ("ab", b"3")]
    assert store.count(TASKS) == 3
    assert store.delete(TASKS, "a") is True
    assert store.delete(TASKS, "a") is False
    assert set(store.stores()) == {TASKS, OVERRIDES}


def test_json_and_msgpack(store: Store) -> None:
    store.put_json(TASKS, "t", {"id": "t", "vars": {"x": 1}, "ü": "ß"})
    assert store.get_json(TASKS, "t") == {"id": "t", "vars": {"x": 1}, "ü": "ß"}
    store.put_msgpack("state", "n", {"count": 3, "blob": b"\x00\x01"})
    assert store.get_msgpack("state", "n") == {"count": 3, "blob": b"\x00\x01"}


def test_transaction_rolls_back_on_error(store: Store) -> None:
    store.put(TASKS, "keep", b"1")
    def abort() -> None:
        with store.transaction():
            store.put(TASKS, "lost", b"2")
            store.delete(TASKS, "keep")
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        abort()
    assert store.get(TASKS, "lost") is None
    assert store.get(TASKS, "keep") == b"1"


def test_wal_mode(store: Store) -> None:
    assert store.journal_mode() == "wal"


async def test_async_twins_and_concurrent_writers(store: Store) -> None:
    async def writer(n: int) -> None:
        for i in range(20):
            await store.aput_json(TASKS, f"{n}-{i}", {"n": n, "i": i})

    async with trio.open_nursery() as nursery:
        for n in range(5):
            nursery.start_soon(writer, n)
    assert store.count(TASKS) == 100
    assert await store.aget_json(TASKS, "3-7") == {"n": 3, "i": 7}
    assert len(await store.aitems_json(TASKS, "4-")) == 20
    assert await store.adelete(TASKS, "4-0")


def test_not_a_sqlite_file(tmp_path) -> None:
    path = tmp_path / "kapacitor.db"
    path.write_bytes(b"\x00" * 4096 + b"bolt db pages" * 100)
    with pytest.raises(StorageError, match=r"not a SQLite database.*boltdb"):
        Store(str(path))


def test_backup_and_rebuild(store: Store, tmp_path) -> None:
    store.put(TASKS, "t", b"x")
    store.rebuild(TASKS)
    store.backup(str(tmp_path / "copy.db"))
    copy = Store(str(tmp_path / "copy.db"))
    assert copy.get(TASKS, "t") == b"x"
    copy.integrity_check()
    copy.close()


def test_acknowledged_writes_survive_kill_9(tmp_path) -> None:
    path = tmp_path / "crash.db"
    script = textwrap.dedent(f"""
        import sys
        from kapa_core.storage import Store
        store = Store({str(path)!r})
        for i in range(100000):
            store.put("acked", f"key-{{i:06d}}", b"v" * 100)
            print(f"key-{{i:06d}}", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    acknowledged = []
    assert proc.stdout is not None
    for line in proc.stdout:
        acknowledged.append(line.strip())
        if len(acknowledged) == 300:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(10)
    for line in proc.stdout:  # anything printed before the kill landed is acknowledged too
        acknowledged.append(line.strip())
    store = Store(str(path))
    stored = set(store.keys("acked"))
    store.close()
    assert set(acknowledged) <= stored
    assert len(acknowledged) >= 300

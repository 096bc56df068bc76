"""The store: Kapacitor's named BoltDB "stores", kept in one SQLite file.

One table ``kv(store, key, value)``; WAL journal with ``synchronous=FULL``, so a write
that returned is on disk and survives a ``kill -9`` or a power loss. The sync methods are
for startup and tests; trio code uses the ``a``-prefixed twins, which run the call in a
worker thread because an fsync can take milliseconds.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import msgpack  # type: ignore[import-untyped]  # msgpack ships no types
import trio

from kapa_core.errors import StorageError

SCHEMA_VERSION = 1
T = TypeVar("T")


class Store:
    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._registered: set[str] = set()
        self._depth = 0
        parent = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(parent, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                       timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, "
                             "value TEXT)")
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                             (str(SCHEMA_VERSION),))
            self._db.execute("CREATE TABLE IF NOT EXISTS kv (store TEXT NOT NULL, key TEXT "
                             "NOT NULL, value BLOB NOT NULL, PRIMARY KEY (store, key)) "
                             "WITHOUT ROWID")
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc) or "file is encrypted" in str(exc):
                raise StorageError(
                    f"{path} is not a SQLite database (an old Kapacitor BoltDB file?): move "
                    "it away or set [storage] boltdb to another path") from None
            raise StorageError(f"cannot open storage {path}: {exc}") from None
        except OSError as exc:
            raise StorageError(f"cannot create storage directory {parent}: {exc}") from None

    # -- plumbing ---------------------------------------------------------------------
    def _run(self, what: str, store: str, key: str, fn: Callable[[], T]) -> T:
        with self._lock:
            try:
                return fn()
            except sqlite3.Error as exc:
                where = f" {store}/{key}" if key else (f" {store}" if store else "")
                raise StorageError(f"storage {what}{where} failed: {exc}") from None

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """Several operations applied atomically (nested use joins the outer one)."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self
            except BaseException:
                self._depth -= 1
                if outer:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._db.execute("COMMIT")

    def register_store(self, name: str) -> None:
        self._registered.add(name)

    # -- sync API ---------------------------------------------------------------------
    def get(self, store: str, key: str) -> bytes | None:
        def op() -> bytes | None:
            row = self._db.execute("SELECT value FROM kv WHERE store=? AND key=?",
                                   (store, key)).fetchone()
            return bytes(row[0]) if row else None
        return self._run("read", store, key, op)

    def put(self, store: str, key: str, value: bytes) -> None:
        self._run("write", store, key, lambda: self._db.execute(
            "INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (store, key, value)))

    def delete(self, store: str, key: str) -> bool:
        return self._run("delete", store, key, lambda: self._db.execute(
            "DELETE FROM kv WHERE store=? AND key=?", (store, key)).rowcount > 0)

    def items(self, store: str, prefix: str = "") -> list[tuple[str, bytes]]:
        def op() -> list[tuple[str, bytes]]:
            rows = self._db.execute(
                "SELECT key, value FROM kv WHERE store=? AND substr(key, 1, ?)=? ORDER BY key",
                (store, len(prefix), prefix)).fetchall()
            return [(k, bytes(v)) for k, v in rows]
        return self._run("list", store, "", op)

    def keys(self, store: str) -> list[str]:
        return [k for k, _ in self.items(store)]

    def count(self, store: str) -> int:
        return int(self._run("count", store, "", lambda: self._db.execute(
            "SELECT count(*) FROM kv WHERE store=?", (store,)).fetchone()[0]))

    def stores(self) -> list[str]:
        names = self._run("list stores", "", "", lambda: [r[0] for r in self._db.execute(
            "SELECT DISTINCT store FROM kv").fetchall()])
        return sorted(set(names) | self._registered)

    def rebuild(self, store: str) -> None:
        """Re-write every row of ``store`` (the storage API's ``rebuild`` action)."""
        with self.transaction():
            for key, value in self.items(store):
                self.put(store, key, value)

    def backup(self, dest_path: str) -> None:
        """A consistent copy of the whole database at ``dest_path``."""
        def op() -> None:
            target = sqlite3.connect(dest_path)
            try:
                self._db.backup(target)
            finally:
                target.close()
        self._run("backup", "", "", op)

    def integrity_check(self) -> None:
        result = self._run("integrity check", "", "", lambda: self._db.execute(
            "PRAGMA quick_check").fetchone()[0])
        if result != "ok":
            raise StorageError(f"storage {self.path} is damaged: {result}")

    def journal_mode(self) -> str:
        return str(self._run("read", "", "", lambda: self._db.execute(
            "PRAGMA journal_mode").fetchone()[0]))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- encodings --------------------------------------------------------------------
    def get_json(self, store: str, key: str) -> Any:
        raw = self.get(store, key)
        return None if raw is None else json.loads(raw)

    def put_json(self, store: str, key: str, obj: Any) -> None:
        self.put(store, key, json.dumps(obj, separators=(",", ":"),
                                        ensure_ascii=False).encode())

    def items_json(self, store: str, prefix: str = "") -> list[tuple[str, Any]]:
        return [(k, json.loads(v)) for k, v in self.items(store, prefix)]

    def get_msgpack(self, store: str, key: str) -> Any:
        raw = self.get(store, key)
        return None if raw is None else msgpack.unpackb(raw, raw=False)

    def put_msgpack(self, store: str, key: str, obj: Any) -> None:
        self.put(store, key, msgpack.packb(obj, use_bin_type=True))

    # -- async twins ------------------------------------------------------------------
    async def aget(self, store: str, key: str) -> bytes | None:
        return await trio.to_thread.run_sync(self.get, store, key)

    async def aput(self, store: str, key: str, value: bytes) -> None:
        await trio.to_thread.run_sync(self.put, store, key, value)

    async def adelete(self, store: str, key: str) -> bool:
        return await trio.to_thread.run_sync(self.delete, store, key)

    async def aitems(self, store: str, prefix: str = "") -> list[tuple[str, bytes]]:
        return await trio.to_thread.run_sync(self.items, store, prefix)

    async def aget_json(self, store: str, key: str) -> Any:
        return await trio.to_thread.run_sync(self.get_json, store, key)

    async def aput_json(self, store: str, key: str, obj: Any) -> None:
        await trio.to_thread.run_sync(self.put_json, store, key, obj)

    async def aitems_json(self, store: str, prefix: str = "") -> list[tuple[str, Any]]:
        return await trio.to_thread.run_sync(self.items_json, store, prefix)

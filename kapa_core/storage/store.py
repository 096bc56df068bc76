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
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar
from urllib.parse import quote

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
        """Re-write every row of ``store`` in one transaction, then rebuild the table's
        index from the rows (the storage API's ``rebuild`` action)."""
        with self.transaction():
            for key, value in self.items(store):
                self.put(store, key, value)
        self._run("rebuild", store, "", lambda: self._db.execute("REINDEX kv"))

    def backup(self, dest_path: str) -> None:
        """A consistent copy of the whole database at ``dest_path``."""
        self.backup_to(dest_path)

    def backup_to(self, dest_path: str) -> int:
        """A consistent, self-contained copy of the whole database at ``dest_path``
        (replaced if it exists); returns its size in bytes.

        SQLite's online backup API copies every page in one step while the store's lock
        keeps this process's writers out, so the copy is one point in time even while
        the API goes on writing. The copy uses a rollback journal (no ``-wal`` file
        beside it): it is one file, ready for ``kapa-core restore`` or to be used as
        ``[storage] boltdb`` directly."""
        def op() -> int:
            for suffix in ("", "-journal", "-wal", "-shm"):
                with suppress(FileNotFoundError):
                    os.unlink(dest_path + suffix)
            target = sqlite3.connect(dest_path, isolation_level=None)
            try:
                self._db.backup(target)
                target.execute("PRAGMA journal_mode=DELETE")
            finally:
                target.close()
            return os.path.getsize(dest_path)
        return self._run("backup", "", "", op)

    def backup_bytes(self) -> bytes:
        """The bytes of a :meth:`backup_to` copy (what ``GET /storage/backup`` sends)."""
        with tempfile.TemporaryDirectory(prefix="kapa-backup-") as tmp:
            path = os.path.join(tmp, "kapacitor.db")
            self.backup_to(path)
            with open(path, "rb") as f:
                return f.read()

    async def abackup_bytes(self) -> bytes:
        return await trio.to_thread.run_sync(self.backup_bytes)

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


def check_backup(path: str) -> None:
    """Refuse ``path`` unless it is an intact kapa-core store: a SQLite database that
    passes ``PRAGMA integrity_check`` and has kapa-core's ``meta`` and ``kv`` tables."""
    if not os.path.isfile(path):
        raise StorageError(f"{path}: no such file")
    try:
        db = sqlite3.connect(f"file:{quote(os.path.abspath(path))}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: cannot open: {exc}") from None
    try:
        result = db.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            raise StorageError(f"{path} is damaged: {result}")
        tables = {r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type='table'").fetchall()}
        if not {"meta", "kv"} <= tables:
            raise StorageError(f"{path} is a SQLite database but not a kapa-core store "
                               "(no meta and kv tables)")
        row = db.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()
        if row is None or str(row[0]) != str(SCHEMA_VERSION):
            raise StorageError(f"{path} has storage schema version "
                               f"{row[0] if row else 'none'}; this kapa-core reads "
                               f"version {SCHEMA_VERSION}")
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"{path} is not a SQLite database ({exc})") from None
    finally:
        db.close()


def restore(backup_path: str, dest_path: str) -> None:
    """Replace the store at ``dest_path`` with the backup at ``backup_path``.

    The backup is checked first (:func:`check_backup`). A store that a running daemon
    has open is refused: the daemon keeps it in WAL mode, and leaving WAL mode needs
    the only connection, so SQLite answers "database is locked" while another process
    holds it. The copy goes through SQLite's backup API, then the store is put back in
    WAL mode as the daemon opens it."""
    check_backup(backup_path)
    parent = os.path.dirname(os.path.abspath(dest_path))
    try:
        os.makedirs(parent, exist_ok=True)
        target = sqlite3.connect(dest_path, timeout=0, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise StorageError(f"cannot open {dest_path}: {exc}") from None
    try:
        try:
            target.execute("PRAGMA journal_mode=DELETE")
            target.execute("BEGIN EXCLUSIVE")
            target.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise StorageError(f"{dest_path} is in use (is kapa-core running?): stop "
                                   "the daemon before restoring") from None
            raise StorageError(f"cannot restore into {dest_path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"{dest_path} exists and is not a SQLite database ({exc}): "
                               "move it away first") from None
        source = sqlite3.connect(f"file:{quote(os.path.abspath(backup_path))}?mode=ro",
                                 uri=True)
        try:
            source.backup(target)
        except sqlite3.Error as exc:
            raise StorageError(f"restore into {dest_path} failed: {exc}") from None
        finally:
            source.close()
        target.execute("PRAGMA journal_mode=WAL")
    finally:
        target.close()

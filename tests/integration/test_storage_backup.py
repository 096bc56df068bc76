"""/kapacitor/v1/storage: backup under load, restore into a new daemon, stores, rebuild."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from kapa_core.testing import DaemonProcess, wait_until

KAPACITOR_CLIENT = "/opt/kbin/kapacitor"
# users are kept only with [auth] enabled; the API itself stays open (http auth off)
CONF = {"auth": {"enabled": True, "bcrypt-cost": 4}}
STORES = "/kapacitor/v1/storage/stores"

# kapacitord 1.5.7's answers (taken from the real daemon).
KAPACITOR_STORE_NAMES = ["overrides", "load", "handler-specs", "topic-states", "tasks",
                         "recordings", "replays"]
KAPACITOR_ANSWERS = [
    # (store, body) -> (status, JSON body or None for no body)
    ("tasks", '{"action":"rebuild"}', 204, None),
    ("nope", '{"action":"rebuild"}', 404, {"error": 'unknown storage "nope"'}),
    ("tasks", '{"action":"x"}', 400,
     {"error": "failed to unmarshal storage action unknown StorageAction x"}),
    ("tasks", "garbage", 400, {"error": "failed to unmarshal storage action invalid "
                                        "character 'g' looking for beginning of value"}),
    ("tasks", "[1", 400, None),  # Go's text for other JSON errors differs: status checked
    ("tasks", "{}", 400, {"error": 'unkown storage action "unknown StorageAction 0"'}),
]

SCRIPT = 'stream\n    |from()\n        .measurement(\'{m}\')\n    |alert()\n        .crit(lambda: "value" > {n})\n'
TEMPLATE = 'var m string\nstream\n    |from()\n        .measurement(m)\n    |log()\n'


def listings(url: str) -> dict[str, object]:
    """Everything a backup must bring back, as the API lists it."""
    c = httpx.Client(base_url=url, timeout=30)
    v1 = "/kapacitor/v1"
    fields = [("fields", f) for f in ("script", "type", "dbrps", "status")]
    r = c.get(v1 + "/tasks", params=[*fields, ("limit", "1000")])
    assert r.status_code == 200, r.text
    tasks = r.json()["tasks"]
    templates = c.get(v1 + "/templates", params={"limit": "1000"}).json()["templates"]
    handlers = c.get(v1 + "/alerts/topics/ops/handlers").json()["handlers"]
    users = c.get(v1 + "/users").json()["users"]
    config = c.get(v1 + "/config/smtp").json()
    recordings = c.get(v1 + "/recordings").json()["recordings"]
    for t in templates:
        t.pop("modified", None)
    return {"tasks": sorted(tasks, key=lambda t: t["id"]),
            "templates": sorted(templates, key=lambda t: t["id"]),
            "handlers": handlers, "users": users, "config": config,
            "recordings": recordings}


def write_load(url: str, stop: threading.Event, counts: dict[str, int]) -> None:
    """Tasks, templates, topic handlers and users created until ``stop`` is set."""
    c = httpx.Client(base_url=url + "/kapacitor/v1", timeout=30)
    n = 0
    while not stop.is_set() and n < 400:
        assert c.post("/tasks", json={"id": f"t{n}", "type": "stream",
                                      "dbrps": [{"db": "db", "rp": "rp"}],
                                      "script": SCRIPT.format(m=f"m{n}", n=n)}
                      ).status_code == 200
        assert c.post("/templates", json={"id": f"tpl{n}", "type": "stream",
                                          "script": TEMPLATE}).status_code == 200
        assert c.post("/alerts/topics/ops/handlers", json={
            "id": f"h{n}", "kind": "log", "options": {"path": f"/tmp/h{n}.log"}}
                      ).status_code == 200
        assert c.post("/users", json={"name": f"u{n}", "password": "pw",
                                      "permissions": ["api"]}).status_code == 200
        n += 1
        counts["written"] = n


@pytest.fixture()
def daemon():
    with DaemonProcess(CONF) as d:
        yield d


def test_stores_list_as_kapacitor(daemon) -> None:
    r = httpx.get(daemon.url + STORES)
    assert r.status_code == 200
    assert r.json() == {
        "link": {"rel": "self", "href": STORES},
        "storage": [{"link": {"rel": "self", "href": f"{STORES}/{name}"}, "name": name}
                    for name in KAPACITOR_STORE_NAMES]}


@pytest.mark.parametrize("store,body,status,expected", KAPACITOR_ANSWERS)
def test_store_actions_as_kapacitor(daemon, store, body, status, expected) -> None:
    r = httpx.post(f"{daemon.url}{STORES}/{store}", content=body)
    assert r.status_code == status, r.text
    if status == 204:
        assert r.content == b""
    elif expected is not None:
        assert r.json() == expected
    else:
        assert r.json()["error"].startswith("failed to unmarshal storage action ")


def test_rebuild_keeps_every_store_intact(daemon) -> None:
    c = httpx.Client(base_url=daemon.url + "/kapacitor/v1", timeout=30)
    assert c.post("/tasks", json={"id": "a", "type": "stream", "dbrps": [
        {"db": "db", "rp": "rp"}], "script": SCRIPT.format(m="m", n=1)}).status_code == 200
    assert c.post("/templates", json={"id": "tp", "type": "stream",
                                      "script": TEMPLATE}).status_code == 200
    before = listings(daemon.url)
    for name in KAPACITOR_STORE_NAMES:
        r = c.post(f"/storage/stores/{name}", json={"action": "rebuild"})
        assert r.status_code == 204, (name, r.text)
    assert listings(daemon.url) == before


def test_backup_under_load_restores_everything(tmp_path) -> None:
    with DaemonProcess(CONF) as first:
        url = first.url
        c = httpx.Client(base_url=url + "/kapacitor/v1", timeout=30)
        assert c.post("/config/smtp/", json={"set": {"port": 2525}}
                       ).status_code == 204
        stop, counts = threading.Event(), {}
        writer = threading.Thread(target=write_load, args=(url, stop, counts))
        writer.start()
        try:
            # the snapshots are taken once the load is under way (a loaded machine may
            # run five backups before the writer's first round)
            wait_until(lambda: counts.get("written", 0) > 0 or not writer.is_alive(),
                       what="the writer's first round")
            backups = []
            while len(backups) < 5 and writer.is_alive():
                r = c.get("/storage/backup")
                assert r.status_code == 200
                assert r.headers["content-type"] == "application/octet-stream"
                assert r.headers["content-disposition"] == 'attachment; filename="kapacitor.db"'
                assert int(r.headers["content-length"]) == len(r.content)
                backups.append(r.content)
        finally:
            stop.set()
            writer.join(60)
        assert counts.get("written", 0) > 0
        # each snapshot taken under load is a whole, intact database
        for i, data in enumerate(backups):
            path = tmp_path / f"mid{i}.db"
            path.write_bytes(data)
            db = sqlite3.connect(path)
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            # a task's handler, template and user were written one after another:
            # a consistent snapshot never has more users than tasks
            n_tasks = db.execute("SELECT count(*) FROM kv WHERE store='tasks'").fetchone()[0]
            n_users = db.execute("SELECT count(*) FROM kv WHERE store='users'").fetchone()[0]
            assert n_users <= n_tasks
            db.close()
        final = c.get("/storage/backup").content
        expected = listings(url)
    backup = tmp_path / "final.db"
    backup.write_bytes(final)

    second_dir = tmp_path / "restored"
    conf = tmp_path / "restore.conf"
    conf.write_text(f'data_dir = "{second_dir}"\n')
    run = subprocess.run([sys.executable, "-m", "kapa_core.cli.daemon", "restore",
                          "-config", str(conf), str(backup)],
                         capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in os.environ.items()
                              if not k.startswith("KAPACITOR_")})
    assert run.returncode == 0, run.stderr
    assert (second_dir / "kapacitor.db").exists()
    with DaemonProcess(CONF, data_dir=str(second_dir)) as second:
        got = listings(second.url)
    assert got == expected
    assert len(got["tasks"]) == counts["written"]  # type: ignore[arg-type]
    assert got["config"]["elements"][0]["options"]["port"] == 2525


def test_restore_refuses_bad_files_and_a_running_daemon(tmp_path) -> None:
    def restore(conf: Path, file: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kapa_core.cli.daemon", "restore",
                               "-config", str(conf), str(file)],
                              capture_output=True, text=True, timeout=60)

    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE x (y)").connection.commit()
    conf = tmp_path / "k.conf"
    conf.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    assert "not a SQLite database" in restore(conf, junk).stderr
    assert "not a kapa-core store" in restore(conf, other).stderr
    assert "no such file" in restore(conf, tmp_path / "absent.db").stderr

    with DaemonProcess() as running:
        backup = tmp_path / "b.db"
        backup.write_bytes(httpx.get(running.url + "/kapacitor/v1/storage/backup").content)
        conf.write_text(f'data_dir = "{running.data_dir}"\n')
        run = restore(conf, backup)
        assert run.returncode == 1
        assert "in use" in run.stderr


def test_restore_help() -> None:
    run = subprocess.run([sys.executable, "-m", "kapa_core.cli.daemon", "restore", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0
    assert "FILE" in run.stdout and "-config" in run.stdout


@pytest.mark.skipif(not os.access(KAPACITOR_CLIENT, os.X_OK),
                    reason=f"the real client {KAPACITOR_CLIENT} is not installed")
def test_real_kapacitor_backup_client(daemon, tmp_path) -> None:
    assert httpx.post(daemon.url + "/kapacitor/v1/tasks", json={
        "id": "kept", "type": "stream", "dbrps": [{"db": "db", "rp": "rp"}],
        "script": SCRIPT.format(m="m", n=1)}).status_code == 200
    out = tmp_path / "kapacitor-backup.db"
    run = subprocess.run([KAPACITOR_CLIENT, "-url", daemon.url, "backup", str(out)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr + run.stdout
    db = sqlite3.connect(out)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT count(*) FROM kv WHERE store='tasks' AND key LIKE '%kept%'"
                      ).fetchone()[0] >= 1
    db.close()


def test_store_snapshots_are_consistent_while_transactions_commit(tmp_path) -> None:
    """Each transaction writes a pair of rows; a snapshot has both or neither."""
    from kapa_core.storage import Store, check_backup, restore

    store = Store(str(tmp_path / "live.db"))
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set() and n < 5000:
            with store.transaction():
                store.put("tasks", f"a{n:05d}", b"x" * 200)
                store.put("templates", f"b{n:05d}", b"y" * 200)
            n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        sizes = []
        for i in range(10):
            path = str(tmp_path / f"snap{i}.db")
            sizes.append(store.backup_to(path))
            check_backup(path)
            assert not os.path.exists(path + "-wal")
            copy = Store(path)
            assert copy.count("tasks") == copy.count("templates")
            copy.close()
    finally:
        stop.set()
        thread.join(60)
    assert sizes[-1] >= sizes[0] > 0
    data = store.backup_bytes()
    assert data.startswith(b"SQLite format 3\x00")

    # restore into a path holding another store replaces it whole
    (tmp_path / "b.db").write_bytes(data)
    old = Store(str(tmp_path / "old.db"))
    old.put("tasks", "gone", b"1")
    old.close()
    restore(str(tmp_path / "b.db"), str(tmp_path / "old.db"))
    restored = Store(str(tmp_path / "old.db"))
    assert restored.get("tasks", "gone") is None
    assert restored.count("tasks") == store.count("tasks")
    assert restored.journal_mode() == "wal"
    restored.close()
    store.close()

"""Three kapa-core members on one JetStream: each task runs on exactly the member
placement names, a write to any member reaches it, and when its member is killed with
SIGKILL the task moves to another within a bounded time and no acknowledged point of it
is lost."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from kapa_core.cluster.bridge import NatsBridge
from kapa_core.cluster.placement import Member, owner
from kapa_core.testing import DaemonProcess, wait_until
from kapa_core.testing.nats import NatsServer

pytestmark = pytest.mark.integration

MEMBERS = ("alpha", "bravo", "charlie")
TIMEOUT = 1.5  # member-timeout, seconds


def tasks_spread_over(members: tuple[str, ...], per_member: int) -> list[str]:
    """Task IDs placement gives ``per_member`` of to each member."""
    chosen: dict[str, list[str]] = defaultdict(list)
    n = 0
    while any(len(chosen[m]) < per_member for m in members):
        task_id = f"task{n}"
        n += 1
        found = owner(task_id, [Member(m) for m in members])
        assert found is not None
        if len(chosen[found.id]) < per_member:
            chosen[found.id].append(task_id)
    return sorted(t for ids in chosen.values() for t in ids)


class Recorder(BaseHTTPRequestHandler):
    """Keeps what each task's httpPost sent, by path (the task's ID)."""

    received: dict[str, list[int]] = defaultdict(list)
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        doc = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.lock:
            for row in doc["series"][0]["values"]:
                self.received[self.path.strip("/")].append(int(row[1]))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, dict[str, list[int]]]]:
    Recorder.received = defaultdict(list)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", Recorder.received
    finally:
        server.shutdown()


def start_member(nats: NatsServer, member_id: str, data_dir: Path,
                 timeout: float = TIMEOUT) -> DaemonProcess:
    return DaemonProcess({"cluster": {
        "enabled": True, "urls": [nats.url], "name": "spread", "member-id": member_id,
        "heartbeat-interval": "300ms", "member-timeout": f"{timeout}s"}},
        data_dir=str(data_dir / member_id)).start()


def executing_on(members: dict[str, DaemonProcess], task_id: str) -> list[str]:
    return sorted(name for name, daemon in members.items() if daemon.proc is not None
                  and daemon.proc.poll() is None and httpx.get(
                      f"{daemon.url}/kapacitor/v1/tasks/{task_id}").json()["executing"])


def received_values(received: dict[str, list[int]], task_id: str) -> set[int]:
    with Recorder.lock:
        return set(received[task_id])


def test_tasks_spread_move_and_lose_nothing(tmp_path: Path,
                                            recorder: tuple[str, dict[str, list[int]]]
                                            ) -> None:
    url, received = recorder
    task_ids = tasks_spread_over(MEMBERS, 2)
    with NatsServer(store_dir=tmp_path / "nats") as nats:
        members = {m: start_member(nats, m, tmp_path) for m in MEMBERS}
        try:
            # defined through one member: the catalog tells the others
            for n, task_id in enumerate(task_ids):
                daemon = members[MEMBERS[n % 3]]
                answer = httpx.post(f"{daemon.url}/kapacitor/v1/tasks", json={
                    "id": task_id, "type": "stream", "status": "enabled",
                    "dbrps": [{"db": "db", "rp": "rp"}],
                    "script": f"stream\n    |from()\n        .measurement('{task_id}')\n"
                              f"    |httpPost('{url}/{task_id}')\n"})
                assert answer.status_code == 200, answer.text
            for daemon in members.values():
                wait_until(lambda d=daemon: sorted(t["id"] for t in httpx.get(
                    f"{d.url}/kapacitor/v1/tasks").json()["tasks"]),
                    until=lambda ids: ids == task_ids, what="every member knows every task")
            expected = {t: owner(t, [Member(m) for m in MEMBERS]).id  # type: ignore[union-attr]  # noqa: E501
                        for t in task_ids}
            for task_id in task_ids:
                wait_until(lambda t=task_id: executing_on(members, t),
                           until=lambda on, t=task_id: on == [expected[t]], timeout=20,
                           what=f"{task_id} running on {expected[task_id]} only")

            # writes through any member reach the owner of each task, once
            acknowledged: dict[str, list[int]] = defaultdict(list)
            names = list(MEMBERS)
            for n in range(60):
                daemon = members[names[n % 3]]
                body = "\n".join(f"{t} v={n}i {n + 1}" for t in task_ids)
                assert httpx.post(f"{daemon.url}/write", params={
                    "db": "db", "rp": "rp", "precision": "s"}, content=body).status_code == 204
                for t in task_ids:
                    acknowledged[t].append(n)
            for t in task_ids:
                wait_until(lambda t=t: received_values(received, t),
                           until=lambda got, t=t: got == set(acknowledged[t]), timeout=20,
                           what=f"{t} got every point")
                with Recorder.lock:
                    assert sorted(received[t]) == acknowledged[t]  # each once

            # kill the owner of a task: its tasks move, nothing acknowledged is lost
            victim = expected[task_ids[0]]
            moved = [t for t in task_ids if expected[t] == victim]
            members[victim].kill()
            killed_at = time.monotonic()
            survivors = {m: d for m, d in members.items() if m != victim}
            left = [Member(m) for m in survivors]
            for t in moved:
                new_owner = owner(t, left)
                assert new_owner is not None
                wait_until(lambda t=t: executing_on(survivors, t),
                           until=lambda on, who=new_owner.id: on == [who], timeout=30,
                           what=f"{t} moved to {new_owner.id}")
            took = time.monotonic() - killed_at
            assert took < TIMEOUT + 10, f"the tasks took {took:.1f}s to move"
            names = list(survivors)
            for n in range(60, 120):
                daemon = survivors[names[n % 2]]
                body = "\n".join(f"{t} v={n}i {n + 1}" for t in task_ids)
                if httpx.post(f"{daemon.url}/write", params={
                        "db": "db", "rp": "rp", "precision": "s"},
                        content=body).status_code == 204:
                    for t in task_ids:
                        acknowledged[t].append(n)
            for t in task_ids:
                wait_until(lambda t=t: set(acknowledged[t]) - received_values(received, t),
                           until=lambda missing: not missing, timeout=30,
                           what=f"every acknowledged point of {t} posted")
        finally:
            for daemon in members.values():
                daemon.close()


def test_changes_through_one_member_are_seen_by_all(tmp_path: Path) -> None:
    with NatsServer(store_dir=tmp_path / "nats") as nats:
        members = {m: start_member(nats, m, tmp_path) for m in MEMBERS[:2]}
        try:
            a, b = members["alpha"], members["bravo"]
            script = "stream\n    |from()\n        .measurement('m')\n    |httpOut('out')\n"
            assert httpx.post(f"{a.url}/kapacitor/v1/tasks", json={
                "id": "shared", "type": "stream", "status": "enabled", "script": script,
                "dbrps": [{"db": "db", "rp": "rp"}]}).status_code == 200
            seen = wait_until(lambda: httpx.get(f"{b.url}/kapacitor/v1/tasks/shared"),
                              until=lambda r: r.status_code == 200, what="bravo knows it")
            assert seen.json()["script"] == script
            running = wait_until(lambda: executing_on(members, "shared"),
                                 until=lambda on: len(on) == 1, what="it runs on one member")
            # every member names the same owner, and serves its httpOut (the owner's)
            owners = {m: httpx.get(f"{d.url}/kapacitor/v1/tasks/shared").json()["owner"]
                      for m, d in members.items()}
            assert set(owners.values()) == set(running)
            for daemon in members.values():
                assert httpx.post(f"{daemon.url}/write", params={"db": "db", "rp": "rp"},
                                  content="m v=7i 1000000000").status_code == 204
            for daemon in members.values():
                out = wait_until(lambda d=daemon: httpx.get(
                    f"{d.url}/kapacitor/v1/tasks/shared/out"),
                    until=lambda r: r.status_code == 200 and r.json().get("series"),
                    what="httpOut through any member")
                assert out.json()["series"][0]["values"] == [["1970-01-01T00:00:01Z", 7]]
            # a new script through the member the task does not run on: the owner
            # runs it at once
            other = next(m for m in members if m not in running)
            changed = script.replace("httpOut('out')", "httpOut('out2')")
            assert httpx.patch(f"{members[other].url}/kapacitor/v1/tasks/shared",
                               json={"script": changed}).status_code == 200
            owner_url = members[running[0]].url
            wait_until(lambda: httpx.get(f"{owner_url}/kapacitor/v1/tasks/shared/out2"),
                       until=lambda r: r.status_code == 200,
                       what="the owner runs the new script (its endpoint out2)")
            assert httpx.get(f"{owner_url}/kapacitor/v1/tasks/shared").json()["script"] == \
                changed
            # disabled through bravo: stopped wherever it ran
            assert httpx.patch(f"{b.url}/kapacitor/v1/tasks/shared",
                               json={"status": "disabled"}).status_code == 200
            wait_until(lambda: executing_on(members, "shared"), until=lambda on: on == [],
                       what="it stops everywhere")
            assert httpx.get(f"{a.url}/kapacitor/v1/tasks/shared").json()["status"] == \
                "disabled"
            # a template made through alpha is on bravo, and goes when deleted there
            assert httpx.post(f"{a.url}/kapacitor/v1/templates", json={
                "id": "tpl", "type": "stream", "script": script}).status_code == 200
            wait_until(lambda: httpx.get(f"{b.url}/kapacitor/v1/templates/tpl").status_code,
                       until=lambda status: status == 200, what="bravo knows the template")
            assert httpx.delete(f"{b.url}/kapacitor/v1/templates/tpl").status_code == 204
            wait_until(lambda: httpx.get(f"{a.url}/kapacitor/v1/templates/tpl").status_code,
                       until=lambda status: status == 404, what="alpha forgets the template")
            # deleted through bravo: gone from alpha too
            assert httpx.delete(f"{b.url}/kapacitor/v1/tasks/shared").status_code == 204
            wait_until(lambda: httpx.get(f"{a.url}/kapacitor/v1/tasks/shared").status_code,
                       until=lambda status: status == 404, what="alpha forgets it")
        finally:
            for daemon in members.values():
                daemon.close()


def test_a_handler_defined_anywhere_fires_once_and_every_member_lists_the_topic(tmp_path: Path) -> None:
    with NatsServer(store_dir=tmp_path / "nats") as nats:
        members = {m: start_member(nats, m, tmp_path) for m in MEMBERS}
        try:
            log = tmp_path / "alerts.log"
            script = ("stream\n    |from()\n        .measurement('load')\n    |alert()\n"
                      "        .crit(lambda: \"v\" > 10)\n        .topic('load')\n")
            a = members["alpha"]
            assert httpx.post(f"{a.url}/kapacitor/v1/tasks", json={
                "id": "load", "type": "stream", "status": "enabled", "script": script,
                "dbrps": [{"db": "db", "rp": "rp"}]}).status_code == 200
            runs_on = wait_until(lambda: executing_on(members, "load"),
                                 until=lambda on: len(on) == 1, what="it runs somewhere")
            # the topic's handler, defined through a member the task does not run on
            other = members[next(m for m in MEMBERS if m not in runs_on)]
            assert httpx.post(f"{other.url}/kapacitor/v1/alerts/topics/load/handlers", json={
                "id": "to-log", "kind": "log", "options": {"path": str(log)}}
            ).status_code == 200
            for daemon in members.values():
                wait_until(lambda d=daemon: httpx.get(
                    f"{d.url}/kapacitor/v1/alerts/topics/load/handlers/to-log").status_code,
                    until=lambda status: status == 200, what="every member has the handler")
            for n, daemon in enumerate(members.values()):  # through every member
                assert httpx.post(f"{daemon.url}/write", params={
                    "db": "db", "rp": "rp", "precision": "s"},
                    content=f"load v={20 + n} {n + 1}").status_code == 204
            wait_until(lambda: log.read_text().count("\n") if log.exists() else 0,
                       until=lambda lines: lines >= 3, what="the alerts logged")
            time.sleep(1.0)  # were they fired by several members, the others would be in
            times = [json.loads(line)["time"] for line in log.read_text().splitlines()]
            assert sorted(times) == [f"1970-01-01T00:00:0{n}Z" for n in (1, 2, 3)]
            for name, daemon in members.items():
                topics = httpx.get(f"{daemon.url}/kapacitor/v1/alerts/topics").json()["topics"]
                # collected on the task's member; an empty topic on the others (the
                # handler defined there)
                assert [(t["id"], t["level"], t["collected"]) for t in topics] == [
                    ("load", "CRITICAL", 3)], (name, runs_on)
                events = httpx.get(
                    f"{daemon.url}/kapacitor/v1/alerts/topics/load/events").json()["events"]
                assert [e["state"]["level"] for e in events] == ["CRITICAL"], name
        finally:
            for daemon in members.values():
                daemon.close()


def test_a_member_stopped_cleanly_hands_its_tasks_over_at_once(tmp_path: Path) -> None:
    with NatsServer(store_dir=tmp_path / "nats") as nats:
        members = {m: start_member(nats, m, tmp_path, timeout=8.0) for m in MEMBERS[:2]}
        try:
            task_ids = tasks_spread_over(MEMBERS[:2], 1)
            a = members["alpha"]
            for task_id in task_ids:
                assert httpx.post(f"{a.url}/kapacitor/v1/tasks", json={
                    "id": task_id, "type": "stream", "status": "enabled",
                    "dbrps": [{"db": "db", "rp": "rp"}],
                    "script": "stream\n    |from()\n    |httpOut('out')\n"}).status_code == 200
            on_bravo = [t for t in task_ids
                        if owner(t, [Member(m) for m in MEMBERS[:2]]).id == "bravo"]  # type: ignore[union-attr]  # noqa: E501
            for t in task_ids:
                wait_until(lambda t=t: executing_on(members, t), until=lambda on: len(on) == 1,
                           what=f"{t} running")
            assert members["bravo"].stop() == 0  # SIGTERM: a clean stop
            stopped_at = time.monotonic()
            alive = {"alpha": a}
            for t in on_bravo:
                wait_until(lambda t=t: executing_on(alive, t), until=lambda on: on == ["alpha"],
                           timeout=8, what=f"{t} taken over by alpha")
            took = time.monotonic() - stopped_at
            assert took < 4.0, f"{took:.1f}s: the member-timeout (8s) was waited for"
            assert "cluster: could not say goodbye" not in members["bravo"].log()
        finally:
            for daemon in members.values():
                daemon.close()


def test_a_user_made_through_one_member_is_on_all(tmp_path: Path) -> None:
    auth = {"enabled": True, "bcrypt-cost": 4, "meta-addr": ""}
    with NatsServer(store_dir=tmp_path / "nats") as nats:
        config = {"cluster": {"enabled": True, "urls": [nats.url], "name": "users",
                              "heartbeat-interval": "300ms", "member-timeout": "1.5s"},
                  "auth": auth}
        members = [DaemonProcess(config, data_dir=str(tmp_path / name)).start()
                   for name in ("alpha", "bravo")]
        try:
            a, b = members
            assert httpx.post(f"{a.url}/kapacitor/v1/users", json={
                "name": "ops", "password": "pw-1", "permissions": ["api"]}).status_code == 200
            seen = wait_until(lambda: httpx.get(f"{b.url}/kapacitor/v1/users/ops"),
                              until=lambda r: r.status_code == 200, what="bravo has the user")
            assert seen.json()["permissions"] == ["api"]
            assert httpx.patch(f"{b.url}/kapacitor/v1/users/ops",
                               json={"permissions": ["config_api"]}).status_code == 200
            wait_until(lambda: httpx.get(f"{a.url}/kapacitor/v1/users/ops").json(),
                       until=lambda u: u.get("permissions") == ["config_api"],
                       what="alpha has the change")
            assert httpx.delete(f"{b.url}/kapacitor/v1/users/ops").status_code == 204
            wait_until(lambda: httpx.get(f"{a.url}/kapacitor/v1/users/ops").status_code,
                       until=lambda status: status == 404, what="alpha forgets the user")
        finally:
            for daemon in members:
                daemon.close()


def test_a_member_whose_lease_was_taken_stops_the_task(tmp_path: Path) -> None:
    """Fencing: a member paused past member-timeout finds its lease taken and stops the
    task (here the lease is taken by hand); the task then goes where placement says."""
    with NatsServer(store_dir=tmp_path / "nats") as nats:
        alpha = start_member(nats, "alpha", tmp_path, timeout=8.0)
        try:
            assert httpx.post(f"{alpha.url}/kapacitor/v1/tasks", json={
                "id": "fenced", "type": "stream", "status": "enabled",
                "dbrps": [{"db": "db", "rp": "rp"}],
                "script": "stream\n    |from()\n    |httpOut('out')\n"}).status_code == 200
            wait_until(lambda: executing_on({"alpha": alpha}, "fenced"),
                       until=lambda on: on == ["alpha"], what="fenced running")

            async def take_the_lease() -> None:
                async with NatsBridge.connect([nats.url], name="intruder") as bridge:
                    leases = await bridge.kv("spread_leases")
                    await leases.put("task.fenced", b"intruder")

            trio.run(take_the_lease)
            alpha.wait_for_text("task lease taken by another member", timeout=10)
            # the intruder is no member: placement gives the task back to alpha
            alpha.wait_for_text('msg="task placed here" service=cluster task=fenced',
                                count=2, timeout=10)
            wait_until(lambda: executing_on({"alpha": alpha}, "fenced"),
                       until=lambda on: on == ["alpha"], what="fenced running again")
        finally:
            alpha.close()

"""Alerting through the real daemon: alert node rules, events JSON, topics and handlers."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from kapa_core.testing import DaemonProcess, wait_until
from tests.integration.test_tasks import define, write

pytestmark = pytest.mark.integration
API = "/kapacitor/v1"


@pytest.fixture(scope="module")
def daemon():
    with DaemonProcess({"http": {"log-enabled": False}}) as d:
        yield d


def wait_for(predicate, timeout: float = 20.0):
    """Poll ``predicate`` until it is truthy; its last value once ``timeout`` has passed
    (callers assert on it with their own message; ``wait_until`` raises instead)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


def log_lines(path: Path, count: int) -> list[dict]:
    """The JSON events of the alert log ``path`` once it holds ``count`` lines."""
    def read():
        return path.read_text().splitlines() if path.exists() else []
    lines = wait_until(read, what=f"{count} lines in {path}",
                       until=lambda lines: len(lines) >= count)
    return [json.loads(line) for line in lines]


def node_stats(daemon: DaemonProcess, task_id: str, node: str,
               expected: dict[str, Any]) -> dict[str, Any]:
    """The node's statistics once they include ``expected``; fails with the last ones."""
    return wait_until(
        lambda: httpx.get(f"{daemon.url}{API}/tasks/{task_id}").json()["stats"][
            "node-stats"][node], what=f"{node} statistics {expected}",
        until=lambda stats: all(stats.get(k) == v for k, v in expected.items()))


def test_levels_state_changes_and_event_json(daemon, tmp_path) -> None:
    log = tmp_path / "alerts.log"
    task_id = define(daemon, f"""
stream|from().measurement('cpu').groupBy('host')
  |alert()
    .warn(lambda: "usage" > 70)
    .crit(lambda: "usage" > 90)
    .stateChangesOnly()
    .message('{{{{ .ID }}}} is {{{{ .Level }}}} at {{{{ index .Fields "usage" }}}}')
    .log('{log}')
""")
    write(daemon, """
cpu,host=a usage=50 1
cpu,host=a usage=75 2
cpu,host=a usage=80 3
cpu,host=a usage=95 4
cpu,host=a usage=10 5
""")
    events = log_lines(log, 3)
    assert [e["level"] for e in events] == ["WARNING", "CRITICAL", "OK"]
    first = events[0]
    assert list(first) == ["id", "message", "details", "time", "duration", "level", "data",
                           "previousLevel", "recoverable"]
    assert first["id"] == "cpu:host=a"
    assert first["message"] == "cpu:host=a is WARNING at 75"
    assert first["time"] == "1970-01-01T00:00:02Z" and first["duration"] == 0
    assert first["previousLevel"] == "OK" and first["recoverable"] is True
    assert first["data"] == {"series": [{"name": "cpu", "tags": {"host": "a"},
                                         "columns": ["time", "usage"],
                                         "values": [["1970-01-01T00:00:02Z", 75]]}]}
    details = json.loads(first["details"].replace("&#34;", '"').replace("&#43;", "+"))
    assert details["ID"] == "cpu:host=a" and details["TaskName"] == task_id
    assert details["Level"] == "WARNING" and details["Fields"] == {"usage": 75}
    assert events[1]["previousLevel"] == "WARNING" and events[1]["duration"] == 2 * 10**9
    assert events[2]["level"] == "OK" and events[2]["duration"] == 3 * 10**9
    raw = log.read_text().splitlines()[0]
    assert '"duration":0,' in raw and '"values":[["1970-01-01T00:00:02Z",75]]' in raw
    node_stats(daemon, task_id, "alert2", {"alerts_triggered": 3, "warns_triggered": 1,
                                           "crits_triggered": 1, "oks_triggered": 1})
    topic = f"main:{task_id}:alert2"
    topics = httpx.get(f"{daemon.url}{API}/alerts/topics").json()["topics"]
    assert any(t["id"] == topic for t in topics)
    events_api = wait_until(
        lambda: httpx.get(f"{daemon.url}{API}/alerts/topics/{topic}/events").json(),
        what=f"the OK event on {topic}",
        until=lambda body: body["events"][0]["state"]["level"] == "OK")
    assert events_api["events"][0]["id"] == "cpu:host=a"
    assert events_api["events"][0]["state"]["level"] == "OK"
    assert events_api["events"][0]["state"]["duration"] == "3s"
    httpx.delete(f"{daemon.url}{API}/tasks/{task_id}")
    assert httpx.get(f"{daemon.url}{API}/alerts/topics/{topic}").status_code == 404


def test_topic_handler_specs_with_match_and_tcp(daemon, tmp_path) -> None:
    import socket
    import threading

    received: list[bytes] = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
                received.append(data)
    threading.Thread(target=accept, daemon=True).start()
    try:
        base = f"{daemon.url}{API}/alerts/topics/ops/handlers"
        bad = httpx.post(base, json={"id": "x", "kind": "nope"})
        assert (bad.status_code, bad.json()["error"]) == (  # Kapacitor's words (its 500)
            400, 'failed to create handler: unsupported action kind "nope"')
        # An address is only dialled when an alert is sent: Kapacitor 1.5.7 takes this
        # handler (checked), and so does kapa-core.
        taken = httpx.post(base, json={"id": "nohost", "kind": "tcp",
                                       "options": {"address": "nohost"}})
        assert taken.status_code == 200, taken.text
        assert httpx.delete(f"{base}/nohost").status_code == 204
        bad = httpx.post(base, json={"id": "x", "kind": "tcp", "match": "level() >",
                                     "options": {"address": f"127.0.0.1:{port}"}})
        assert bad.status_code == 400 and "match" in bad.json()["error"]
        created = httpx.post(base, json={"id": "crit-only", "kind": "tcp",
                                         "match": "level() == CRITICAL AND \"host\" == 'b'",
                                         "options": {"address": f"127.0.0.1:{port}"}})
        assert created.status_code == 200, created.text
        assert created.json()["link"]["href"] == f"{API}/alerts/topics/ops/handlers/crit-only"
        listed = httpx.get(base).json()
        assert [h["id"] for h in listed["handlers"]] == ["crit-only"]
        task_id = define(daemon, """
stream|from().measurement('disk').groupBy('host')
  |alert().warn(lambda: "used" > 80).crit(lambda: "used" > 90).topic('ops')
""")
        write(daemon, "disk,host=a used=95 1\ndisk,host=b used=85 2\ndisk,host=b used=99 3\n")
        wait_until(lambda: len(received) >= 1, what="an event on the TCP receiver")
        time.sleep(0.3)  # after the last event arrived: nothing else follows
        assert len(received) == 1
        event = json.loads(received[0])
        assert event["id"] == "disk:host=b" and event["level"] == "CRITICAL"
        topic = wait_until(lambda: httpx.get(f"{daemon.url}{API}/alerts/topics/ops").json(),
                           what="3 events collected on topic ops",
                           until=lambda body: body["collected"] == 3)
        assert topic["level"] == "CRITICAL"
        patched = httpx.patch(f"{base}/crit-only", json=[
            {"op": "replace", "path": "/match", "value": "changed()"}])
        assert patched.status_code == 200 and patched.json()["match"] == "changed()"
        assert httpx.delete(f"{base}/crit-only").status_code == 204
        assert httpx.get(f"{base}/crit-only").status_code == 404
        assert httpx.get(f"{daemon.url}{API}/alerts/topics/none").status_code == 404
        httpx.delete(f"{daemon.url}{API}/tasks/{task_id}")
    finally:
        server.close()


def test_exec_handler_and_annotations(daemon, tmp_path) -> None:
    out = tmp_path / "exec.out"
    script = tmp_path / "handler.sh"
    script.write_text(f"#!/bin/sh\ncat >> {out}\necho >> {out}\n")
    script.chmod(0o755)
    task_id = define(daemon, f"""
stream|from().measurement('mem')
  |alert().crit(lambda: "v" > 1).levelTag('level').idField('alert_id')
    .durationField('dur').exec('{script}')
  |httpOut('out')
""")
    write(daemon, "mem v=5 1\n")
    lines = wait_for(lambda: out.exists() and out.read_text().strip().splitlines())
    assert json.loads(lines[0])["id"] == "mem:nil"
    expected = {"series": [{"name": "mem", "tags": {"level": "CRITICAL"},
                            "columns": ["time", "alert_id", "dur", "v"],
                            "values": [["1970-01-01T00:00:01Z", "mem:nil", 0, 5.0]]}]}
    got = wait_for(lambda: httpx.get(f"{daemon.url}{API}/tasks/{task_id}/out").json()
                   == expected and expected)
    assert got == expected
    httpx.delete(f"{daemon.url}{API}/tasks/{task_id}")


def test_bad_templates_and_disabled_fields_are_refused(daemon) -> None:
    # As in Kapacitor, templates are parsed when the task starts: a disabled task may hold
    # a bad one, enabling it is refused with the parser's message.
    script = "stream|from()|alert().message('{{ .ID ').crit(lambda: TRUE)"
    response = httpx.post(f"{daemon.url}{API}/tasks", json={
        "id": "badtpl", "dbrps": [{"db": "db", "rp": "rp"}], "script": script})
    assert response.status_code == 200
    response = httpx.patch(f"{daemon.url}{API}/tasks/badtpl", json={"status": "enabled"})
    assert response.status_code != 200
    assert "template: message:1: unclosed action" in response.json()["error"]
    httpx.delete(f"{daemon.url}{API}/tasks/badtpl")
    response = httpx.post(f"{daemon.url}{API}/tasks", json={
        "id": "badopt", "dbrps": [{"db": "db", "rp": "rp"}], "status": "disabled",
        "script": "stream|from()|alert().crit(lambda: TRUE).snmpTrap('')"})
    assert response.status_code == 400
    assert "you must supply a trap Oid" in response.json()["error"]
    assert httpx.get(f"{daemon.url}{API}/tasks/badopt").status_code == 404


def test_deadman_fires_on_wall_clock_throughput(daemon, tmp_path) -> None:
    log = tmp_path / "deadman.log"
    task_id = define(daemon, f"""
stream|from().measurement('dm')
  |deadman(0.5, 1s)
    .log('{log}')
""")
    events = log_lines(log, 1)
    assert events, "no deadman event within the timeout"
    event = events[0]
    assert event["level"] == "CRITICAL"
    assert event["id"] == f"nil:from1 for task '{task_id}'"
    assert event["message"] == f"nil:from1 for task '{task_id}' is dead: 0.000 points/1s."
    httpx.delete(f"{daemon.url}{API}/tasks/{task_id}")


def test_publish_and_aggregate_topic_actions(daemon, tmp_path) -> None:
    topics = f"{daemon.url}{API}/alerts/topics"
    fanned, summary = tmp_path / "fanned.log", tmp_path / "summary.log"
    bad = httpx.post(f"{topics}/src/handlers", json={"id": "a", "kind": "aggregate",
                                                      "options": {"topic": "x"}})
    assert bad.status_code == 400 and "interval" in bad.json()["error"]
    bad = httpx.post(f"{topics}/src/handlers", json={"id": "p", "kind": "publish",
                                                      "options": {}})
    assert bad.status_code == 400 and "topics" in bad.json()["error"]
    for topic, body in [
        ("src", {"id": "fan", "kind": "publish", "options": {"topics": ["copy"]}}),
        ("copy", {"id": "log", "kind": "log", "options": {"path": str(fanned)}}),
        ("copy", {"id": "agg", "kind": "aggregate", "options": {
            "id": "summary", "interval": 500_000_000, "topic": "sums",
            "message": "{{ .Count }} events in {{ .Interval }}"}}),
        ("sums", {"id": "log", "kind": "log", "options": {"path": str(summary)}}),
    ]:
        created = httpx.post(f"{topics}/{topic}/handlers", json=body)
        assert created.status_code == 200, created.text
    task_id = define(daemon, """
stream|from().measurement('pub').groupBy('host')
  |alert().warn(lambda: "v" > 1).crit(lambda: "v" > 2).message('{{ .ID }} {{ .Level }}')
    .topic('src')
""")
    write(daemon, "pub,host=a v=2 10\npub,host=b v=3 20\n")
    copies = log_lines(fanned, 2)
    assert sorted((e["id"], e["level"]) for e in copies) == [
        ("pub:host=a", "WARNING"), ("pub:host=b", "CRITICAL")]
    [agg] = log_lines(summary, 1)
    assert agg["id"] == "summary" and agg["message"] == "2 events in 500ms"
    assert agg["level"] == "CRITICAL"
    assert agg["time"] == "1970-01-01T00:00:20Z"
    assert sorted(agg["details"].split("\n")) == ["pub:host=a WARNING",
                                                   "pub:host=b CRITICAL"]
    assert sorted(s["tags"]["host"] for s in agg["data"]["series"]) == ["a", "b"]
    wait_until(lambda: sorted(e["id"] for e in httpx.get(f"{topics}/copy/events").json()[
        "events"]), what="both events on topic copy",
        until=lambda ids: ids == ["pub:host=a", "pub:host=b"])
    time.sleep(1.2)  # no new events: the aggregate stays quiet
    assert len(summary.read_text().splitlines()) == 1
    assert httpx.delete(f"{topics}/copy/handlers/agg").status_code == 204
    httpx.delete(f"{daemon.url}{API}/tasks/{task_id}")


def test_global_deadman_watches_every_task_source() -> None:
    config = {"http": {"log-enabled": False}, "logging": {"level": "DEBUG"},
              "deadman": {"global": True, "interval": "1s", "threshold": 0.5}}
    with DaemonProcess(config) as daemon:
        task_id = define(daemon, "stream|from().measurement('quiet')|httpOut('o')")
        dot = httpx.get(f"{daemon.url}{API}/tasks/{task_id}").json()["dot"]
        assert "stats3 -> derivative4" in dot and "derivative4 -> alert5" in dot
        daemon.wait_for_text(f"id=\"nil:stream0 for task '{task_id}'\"")
        daemon.wait_for_text("is dead: 0.000 points/1s.")

        def crits() -> int:
            dot = httpx.get(f"{daemon.url}{API}/tasks/{task_id}").json()["dot"]
            line = next(x for x in dot.splitlines() if x.startswith("alert5 ["))
            return int(line.split('crits_triggered="')[1].split('"')[0])
        wait_until(crits, what="alert5 crits_triggered >= 1", until=lambda n: n >= 1)

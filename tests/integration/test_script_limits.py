"""TICKscript limits through the real daemon: ``[task] max-script-size`` and ``max-nodes``.

An 18 MB script of three million chained ``|log()`` nodes used to cost 150 s and 4 GB
before its 400; it is now refused before it is lexed (size) or as soon as the lexer has
seen one node too many (nodes), and the daemon keeps answering.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kapa_core.testing import DaemonProcess

pytestmark = pytest.mark.integration

HEAD = 'dbrp "db"."rp"\nstream|from()'
HUGE = HEAD + "|log()" * 3_000_000  # 18 MB, three million nodes
#: Time a refusal may take, the 18 MB upload and JSON decoding included.
FAST_S = 10.0


@pytest.fixture(scope="module")
def daemon() -> Iterator[DaemonProcess]:
    with DaemonProcess({"http": {"log-enabled": False}}) as d:
        yield d


def post(daemon: DaemonProcess, path: str, body: dict) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.post(daemon.url + path, json=body, timeout=120)
    return response, time.monotonic() - started


def alive(daemon: DaemonProcess) -> bool:
    return httpx.get(daemon.url + "/kapacitor/v1/ping", timeout=5).status_code == 204


def test_an_18_mb_script_is_refused_by_size_at_once(daemon) -> None:
    response, elapsed = post(daemon, "/kapacitor/v1/tasks", {
        "id": "huge", "type": "stream", "script": HUGE, "status": "enabled"})
    assert response.status_code == 400
    assert response.json()["error"] == ("invalid TICKscript: script too large: "
                                        f"{len(HUGE)} bytes, more than [task] "
                                        "max-script-size = 1048576")
    assert elapsed < FAST_S, elapsed
    assert alive(daemon)
    assert httpx.get(daemon.url + "/kapacitor/v1/tasks/huge").status_code == 404


def test_a_template_over_the_size_limit_is_refused(daemon) -> None:
    script = "stream|from()" + "\n// padding" * 100_000  # 1.1 MB, mostly comments
    response, elapsed = post(daemon, "/kapacitor/v1/templates", {
        "id": "huge", "type": "stream", "script": script})
    assert response.status_code == 400
    assert "more than [task] max-script-size = 1048576" in response.json()["error"]
    assert elapsed < FAST_S and alive(daemon)


def test_size_counts_utf8_bytes(daemon) -> None:
    script = HEAD + "|log().prefix('" + "é" * 600_000 + "')"  # 600k chars, 1.2 MB
    response, _ = post(daemon, "/kapacitor/v1/tasks", {"id": "utf8", "script": script})
    assert response.status_code == 400
    assert f"{len(script.encode())} bytes" in response.json()["error"]


def test_too_many_nodes_are_refused_with_the_key_named(daemon) -> None:
    script = HEAD + "|log()" * 10_000  # 10,002 nodes with stream and from
    response, elapsed = post(daemon, "/kapacitor/v1/tasks", {
        "id": "many", "type": "stream", "script": script, "status": "enabled"})
    assert response.status_code == 400
    assert response.json()["error"] == ("invalid TICKscript: line 2 char 60002: too many "
                                        "nodes: more than [task] max-nodes = 10000")
    assert elapsed < FAST_S and alive(daemon)


def test_a_long_chain_within_the_limits_runs(daemon) -> None:
    # 9,000 nodes in one chain: no recursion anywhere (it used to fail "nested too
    # deeply" from ~500 nodes on).
    script = HEAD + "|log().level('DEBUG')" * 4_000 + "|httpOut('out')" + "|log()" * 4_998
    response, _ = post(daemon, "/kapacitor/v1/tasks", {
        "id": "long", "type": "stream", "script": script, "status": "enabled"})
    assert response.status_code == 200, response.text[:300]
    task = httpx.get(daemon.url + "/kapacitor/v1/tasks/long", timeout=60).json()
    assert task["executing"] and task["script"].count("\n    |log()") == 8_998
    assert task["dot"].count("->") >= 9_000
    assert httpx.delete(daemon.url + "/kapacitor/v1/tasks/long").status_code == 204
    assert alive(daemon)


def test_deadman_nodes_count_too() -> None:
    # |deadman() makes three nodes (stats, derivative, alert): 2 + 3 > 4.
    with DaemonProcess({"task": {"max-nodes": 4}}) as d:
        response, _ = post(d, "/kapacitor/v1/tasks", {
            "id": "dm", "script": HEAD + "|deadman(1.0, 10s)"})
        assert response.status_code == 400
        assert response.json()["error"] == ("invalid TICKscript: line 2 char 15: too many "
                                            "nodes: more than [task] max-nodes = 4")
        response, _ = post(d, "/kapacitor/v1/tasks", {"id": "ok", "script": HEAD + "|log()"})
        assert response.status_code == 200


def test_without_a_size_limit_three_million_nodes_still_fail_fast() -> None:
    with DaemonProcess({"http": {"log-enabled": False},
                        "task": {"max-script-size": 0}}) as d:
        response, elapsed = post(d, "/kapacitor/v1/tasks", {
            "id": "huge", "type": "stream", "script": HUGE, "status": "enabled"})
        assert response.status_code == 400
        assert response.json()["error"].endswith("too many nodes: more than [task] "
                                                 "max-nodes = 10000")
        assert elapsed < FAST_S, elapsed
        assert alive(d)


def test_the_load_directory_respects_the_limits(tmp_path: Path) -> None:
    load = tmp_path / "load"
    (load / "tasks").mkdir(parents=True)
    (load / "tasks" / "small.tick").write_text(HEAD + "|log()\n")
    (load / "tasks" / "big.tick").write_text(HEAD + "|log()" + "\n// pad" * 1_000)
    (load / "tasks" / "many.tick").write_text(HEAD + "|log()" * 50)
    (load / "tasks" / "latin1.tick").write_bytes(b"// caf\xe9\n" + HEAD.encode())
    config = {"load": {"enabled": True, "dir": str(load)},
              "task": {"max-script-size": 4_000, "max-nodes": 20}}
    with DaemonProcess(config) as d:
        tasks = httpx.get(d.url + "/kapacitor/v1/tasks").json()["tasks"]
        assert [t["id"] for t in tasks] == ["small"]
        d.wait_for_log(r'msg="failed to load file" .*big\.tick.*script too large: \d+ '
                       r"bytes, more than \[task\] max-script-size = 4000")
        d.wait_for_log(r'msg="failed to load file" .*many\.tick.*too many nodes: more '
                       r"than \[task\] max-nodes = 20")
        d.wait_for_log(r'msg="failed to load file" .*latin1\.tick')


def test_negative_limits_are_a_config_error() -> None:
    with pytest.raises(RuntimeError, match=r"task\.max-nodes: must not be negative"):
        DaemonProcess({"task": {"max-nodes": -1}}, ready_timeout=20).start()

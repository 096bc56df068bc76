"""A pip-installed input listener package (examples/kapa-example-input) run by the daemon.

Lines sent over a real TCP socket reach a task; the listener's statistics are published;
a config override re-opens it on a new port (and a failing one answers 500 while the
daemon stays up); a port in use stops startup naming the element; shutdown closes it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from kapa_core.testing import DaemonProcess, run_cli, wait_until

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kapa-example-input"
SCRIPT = """
dbrp "lines"."autogen"
stream|from().measurement('cpu').groupBy('host')|httpOut('out')
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The example package really pip-installed into its own directory (offline: pip
    builds it with setuptools from the local wheel index)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--disable-pip-version-check", "--target", str(target), str(EXAMPLE)],
                   check=True, capture_output=True)
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send(port: int, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(data)


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def element(port: int, **extra) -> dict:
    return {"enabled": True, "name": "a", "bind-address": f"127.0.0.1:{port}",
            "database": "lines", "retention-policy": "autogen", "precision": "s", **extra}


def series(daemon: DaemonProcess, task: str = "in") -> list:
    response = httpx.get(f"{daemon.url}/kapacitor/v1/tasks/{task}/out")
    return response.json().get("series") or [] if response.status_code == 200 else []


def define(daemon: DaemonProcess) -> None:
    response = httpx.post(daemon.url + "/kapacitor/v1/tasks", json={
        "id": "in", "type": "stream", "script": SCRIPT, "status": "enabled"})
    assert response.status_code == 200, response.text


def listener_stats(daemon: DaemonProcess) -> dict:
    stats = httpx.get(daemon.url + "/kapacitor/v1/debug/vars").json()["kapacitor"]
    return {s["tags"]["bind"]: s for s in stats.values() if s["name"] == "example_input"}


def test_installed_package_is_listed_with_its_hooks(site: Path) -> None:
    out = run_cli("plugins", env={"PYTHONPATH": str(site)}).stdout
    line = next(line for line in out.splitlines() if line.strip().startswith("example-input "))
    assert "kapa-example-input 1.0.0" in line
    assert "kapa_config_sections, kapa_input_listeners" in out


def test_lines_over_tcp_reach_a_task_and_overrides_move_the_listener(site: Path) -> None:
    port = free_port()
    config = {"example-input": [element(port), element(free_port(), name="off",
                                                       enabled=False)],
              "stats": {"enabled": True, "stats-interval": "1s"}}
    with DaemonProcess(config, env={"PYTHONPATH": str(site)}) as daemon:
        daemon.wait_for_log(r'msg="input listener started" service=example-input '
                            r'section=example-input element="example-input\[0\] \(a\)"')
        assert 'element="example-input[1]' not in daemon.log()  # disabled: not started
        define(daemon)
        send(port, b"cpu,host=a v=1 10\ncpu,host=b v=2 20\nnot line protocol\n"
                   b"cpu,host=a v=3 30")  # the last line ends with the connection
        wait_until(lambda: len(series(daemon)) == 2, what="two series from the listener")
        assert sorted((s["tags"]["host"], s["values"]) for s in series(daemon)) == [
            ("a", [["1970-01-01T00:00:30Z", 3.0]]), ("b", [["1970-01-01T00:00:20Z", 2.0]])]
        stats = wait_until(lambda: listener_stats(daemon).get(f"127.0.0.1:{port}", {}).get(
            "values", {}).get("points_received") == 3 and listener_stats(daemon),
            what="listener statistics")
        stat = stats[f"127.0.0.1:{port}"]
        assert stat["values"]["bad_lines"] == 1 and stat["values"]["bytes_received"] > 0
        assert set(stat["tags"]) == {"name", "bind", "host", "cluster_id", "server_id"}
        ingress = httpx.get(daemon.url + "/kapacitor/v1/debug/vars").json()["kapacitor"]
        assert ingress["ingress:lines:autogen:cpu"]["values"]["points_received"] == 3
        # the same statistic in the _kapacitor stats stream
        response = httpx.post(daemon.url + "/kapacitor/v1/tasks", json={
            "id": "stats", "type": "stream", "status": "enabled", "script":
            'dbrp "_kapacitor"."autogen"\n'
            "stream|from().measurement('example_input')|httpOut('out')"})
        assert response.status_code == 200, response.text
        [stat_series] = wait_until(lambda: series(daemon, "stats"), what="stats points")
        assert stat_series["tags"]["bind"] == f"127.0.0.1:{port}"
        row = dict(zip(stat_series["columns"], stat_series["values"][0], strict=True))
        assert (row["points_received"], row["bad_lines"]) == (3, 1)

        # An override re-opens the listener on its new address, and only it.
        new_port = free_port()
        response = httpx.post(daemon.url + "/kapacitor/v1/config/example-input/a",
                              json={"set": {"bind-address": f"127.0.0.1:{new_port}"}})
        assert response.status_code == 204, response.text
        assert refused(port)
        send(new_port, b"cpu,host=c v=4 40\n")
        wait_until(lambda: len(series(daemon)) == 3, what="a point through the new port")
        assert set(listener_stats(daemon)) == {f"127.0.0.1:{new_port}"}  # old one withdrawn
        assert daemon.log().count('msg="example input closed"') == 1

        # A port in use: the API answers 500 naming the element; the daemon stays up.
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = taken.getsockname()[1]
            response = httpx.post(daemon.url + "/kapacitor/v1/config/example-input/a",
                                  json={"set": {"bind-address": f"127.0.0.1:{busy}"}})
            assert response.status_code == 500
            error = response.json()["error"]
            assert "failed to update service example-input" in error
            assert "example-input[0] (a)" in error and "OSError" in error
            assert httpx.get(daemon.url + "/kapacitor/v1/ping").status_code == 204
            daemon.wait_for_log(r'lvl=error msg="input listener failed to start" '
                                r'service=example-input section=example-input')
        response = httpx.post(daemon.url + "/kapacitor/v1/config/example-input/a",
                              json={"set": {"bind-address": f"127.0.0.1:{new_port}"}})
        assert response.status_code == 204, response.text
        send(new_port, b"cpu,host=d v=5 50\n")
        wait_until(lambda: len(series(daemon)) == 4, what="a point after the repair")
        assert daemon.stop() == 0
    assert refused(new_port)  # closing the daemon closed the listener


def test_a_port_in_use_stops_startup_naming_the_element(site: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        daemon = DaemonProcess({"example-input": [element(port)]},
                               env={"PYTHONPATH": str(site)}, ready_timeout=20)
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="did not become ready") as raised:
            daemon.start()
        daemon.close()
        assert time.monotonic() - started < 15  # it exits, it does not hang
    log = str(raised.value)
    assert "error: input listener example-input[0] (a): OSError" in log
    assert "kapa-core ready" not in log

"""Third-party plugins: a pip-installed handler package and a plugin that fails to load."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest

from kapa_core.testing import DaemonProcess, run_cli

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kapa-example-handler"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The example package really pip-installed into its own directory."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--disable-pip-version-check", "--target", str(target), str(EXAMPLE)],
                   check=True, capture_output=True)
    return target


@pytest.fixture
def broken_site(tmp_path) -> Path:
    """An installed distribution whose plugin module raises at import."""
    (tmp_path / "kapa_broken_plugin.py").write_text("raise RuntimeError('missing licence')\n")
    dist = tmp_path / "kapa_broken_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: kapa-broken-plugin\n"
                                   "Version: 0.1\n")
    (dist / "entry_points.txt").write_text("[kapa_core.plugins]\nbroken = kapa_broken_plugin\n")
    return tmp_path


def test_without_the_package_there_is_no_example_section() -> None:
    assert "example" not in tomllib.loads(run_cli("config").stdout)


def test_installed_package_is_listed_with_version_and_hooks(site: Path) -> None:
    out = run_cli("plugins", env={"PYTHONPATH": str(site)}).stdout
    line = next(line for line in out.splitlines() if line.strip().startswith("example "))
    assert "kapa-example-handler 1.0.0" in line
    assert "kapa_config_sections, kapa_handler_kinds" in out


def test_installed_package_section_in_config_output(site: Path) -> None:
    result = run_cli("config", env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    example = tomllib.loads(result.stdout)["example"]
    assert example == {"enabled": False, "url": "", "token": "", "timeout": "10s"}


def test_installed_package_section_api_and_service_lifecycle(site: Path) -> None:
    with DaemonProcess(env={"PYTHONPATH": str(site)}) as daemon:
        daemon.wait_for_log(r'msg="example service opened" service=example')
        element = httpx.get(daemon.url + "/kapacitor/v1/config/example/").json()
        assert element["options"]["timeout"] == "10s"
        assert element["redacted"] == ["token"]
        listing = httpx.get(daemon.url + "/kapacitor/v1/config").json()["sections"]
        assert "example" in listing
        # An override re-opens the example service only.
        response = httpx.post(daemon.url + "/kapacitor/v1/config/example/",
                              json={"set": {"enabled": True, "url": "http://127.0.0.1:1/x",
                                            "token": "secret-token"}})
        assert response.status_code == 204, response.text
        daemon.wait_for_log(r'msg="example service opened" .*enabled=True')
        log = daemon.log()
        assert log.count('msg="example service closed"') == 1
        assert log.count("restarting service") == 1
        assert "secret-token" not in log
        bad = httpx.post(daemon.url + "/kapacitor/v1/config/example/",
                         json={"set": {"url": "ftp://nope"}})
        assert bad.status_code == 400 and "example.url" in bad.json()["error"]
        assert daemon.stop() == 0
        assert daemon.log().count('msg="example service closed"') == 2


def test_installed_handler_from_tickscript_and_topic_handler(site: Path) -> None:
    from kapa_core.testing import RecordingHTTPServer as HTTPRecorder
    from tests.integration.test_alerts import wait_for
    from tests.integration.test_tasks import define, write

    recorder = HTTPRecorder(status=200).start()
    try:
        config = {"example": {"enabled": True, "url": recorder.url + "/events",
                              "token": "tkn"}, "http": {"log-enabled": False}}
        with DaemonProcess(config, env={"PYTHONPATH": str(site)}) as daemon:
            bad = httpx.post(daemon.url + "/kapacitor/v1/alerts/topics/t/handlers",
                             json={"id": "x", "kind": "example", "options": {"loud": 1}})
            assert bad.status_code == 400 and "loud" in bad.json()["error"]
            created = httpx.post(daemon.url + "/kapacitor/v1/alerts/topics/ex/handlers",
                                 json={"id": "ex", "kind": "example"})
            assert created.status_code == 200, created.text
            define(daemon, """
stream|from().measurement('plug')
  |alert().crit(lambda: "v" > 1).id('plug-alert').example().severity('page')
  |alert().warn(lambda: "v" > 1).id('plug-topic').topic('ex')
""")
            write(daemon, "plug v=5 1\n")
            assert wait_for(lambda: len(recorder.requests) >= 2)
        bodies = {b["id"]: b for b in (json.loads(r.body) for r in recorder.requests)}
        assert bodies["plug-alert"]["severity"] == "page"
        assert bodies["plug-alert"]["level"] == "CRITICAL"
        assert bodies["plug-topic"]["severity"] == "warning"
        assert {r.path for r in recorder.requests} == {"/events"}
        assert recorder.requests[0].headers["authorization"] == "Bearer tkn"
    finally:
        recorder.close()


def test_broken_plugin_is_reported_and_daemon_runs(broken_site: Path) -> None:
    env = {"PYTHONPATH": str(broken_site)}
    out = run_cli("plugins", env=env).stdout
    assert "Plugins that failed to load:" in out
    assert "broken" in out and "RuntimeError: missing licence" in out
    with DaemonProcess(env=env) as daemon:
        assert httpx.get(daemon.url + "/kapacitor/v1/ping").status_code == 204
        daemon.wait_for_text("plugin broken (kapa_broken_plugin) failed to load")

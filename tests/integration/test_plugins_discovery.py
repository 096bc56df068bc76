"""A pip-installed discovery package (examples/kapa-example-discovery) run by the daemon.

``GET /kapacitor/v1/discovery`` shows the groups each enabled element a ``[[scraper]]``
names publishes; config overrides (set, add, remove) re-create the discoverers and change
what is shown.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from kapa_core.testing import DaemonProcess, run_cli

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kapa-example-discovery"
BASE = "/kapacitor/v1/discovery"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The example package really pip-installed into its own directory."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--disable-pip-version-check", "--target", str(target), str(EXAMPLE)],
                   check=True, capture_output=True)
    return target


def shown(daemon: DaemonProcess) -> dict[str, list]:
    body = httpx.get(daemon.url + BASE).json()
    return {(e["service"], e["id"]): [(g["source"], g["targets"], g["labels"])
                                      for g in e["groups"]]
            for e in body["discoverers"]}


def test_installed_package_is_listed_with_its_hooks(site: Path) -> None:
    out = run_cli("plugins", env={"PYTHONPATH": str(site)}).stdout
    line = next(line for line in out.splitlines()
                if line.strip().startswith("example-discovery "))
    assert "kapa-example-discovery 1.0.0" in line
    assert "kapa_config_sections, kapa_discovery_kinds" in out


def scraper(id: str) -> dict[str, object]:
    return {"enabled": True, "name": id, "db": "db", "rp": "rp", "scrape-interval": "1h",
            "discoverer-service": "example-discovery", "discoverer-id": id}


def test_groups_are_shown_and_follow_config_overrides(site: Path) -> None:
    config = {"scraper": [scraper("web"), scraper("off"), scraper("db")],
              "example-discovery": [
        {"enabled": True, "id": "web", "targets": ["127.0.0.1:1", "127.0.0.1:2"],
         "labels": {"team": "ops"}},
        {"enabled": False, "id": "off", "targets": ["127.0.0.1:3"]}]}
    with DaemonProcess(config, env={"PYTHONPATH": str(site)}) as daemon:
        assert shown(daemon) == {("example-discovery", "web"): [
            ("example-discovery/web", ["127.0.0.1:1", "127.0.0.1:2"], {"team": "ops"})]}
        one = httpx.get(daemon.url + BASE + "/example-discovery/web").json()
        assert one["updated"].endswith("Z") and one["id"] == "web"
        missing = httpx.get(daemon.url + BASE + "/example-discovery/off")
        assert missing.status_code == 404 and "off" in missing.json()["error"]
        assert httpx.get(daemon.url + BASE + "/nothing").json() == {"discoverers": []}

        # set: the element's discoverer is re-created with the new targets
        response = httpx.post(daemon.url + "/kapacitor/v1/config/example-discovery/web",
                              json={"set": {"targets": ["127.0.0.1:4"]}})
        assert response.status_code == 204, response.text
        assert shown(daemon)[("example-discovery", "web")] == [
            ("example-discovery/web", ["127.0.0.1:4"], {"team": "ops"})]
        # enabling the disabled element and adding one start their discoverers
        response = httpx.post(daemon.url + "/kapacitor/v1/config/example-discovery/off",
                              json={"set": {"enabled": True}})
        assert response.status_code == 204, response.text
        response = httpx.post(daemon.url + "/kapacitor/v1/config/example-discovery",
                              json={"add": {"id": "db", "enabled": True,
                                            "targets": ["127.0.0.1:5"]}})
        assert response.status_code == 204, response.text
        assert sorted(shown(daemon)) == [("example-discovery", "db"),
                                         ("example-discovery", "off"),
                                         ("example-discovery", "web")]
        # a bad value changes nothing
        bad = httpx.post(daemon.url + "/kapacitor/v1/config/example-discovery/db",
                         json={"set": {"targets": ["no-port"]}})
        assert bad.status_code == 400 and "targets[0]" in bad.json()["error"]
        assert shown(daemon)[("example-discovery", "db")][0][1] == ["127.0.0.1:5"]
        # remove: its entry goes
        response = httpx.post(daemon.url + "/kapacitor/v1/config/example-discovery",
                              json={"remove": ["db"]})
        assert response.status_code == 204, response.text
        assert sorted(shown(daemon)) == [("example-discovery", "off"),
                                         ("example-discovery", "web")]
        # an element no scraper names does not run
        response = httpx.post(daemon.url + "/kapacitor/v1/config/example-discovery",
                              json={"add": {"id": "lone", "enabled": True,
                                            "targets": ["127.0.0.1:6"]}})
        assert response.status_code == 204, response.text
        assert ("example-discovery", "lone") not in shown(daemon)
        # until one does
        response = httpx.post(daemon.url + "/kapacitor/v1/config/scraper",
                              json={"add": scraper("lone")})
        assert response.status_code == 204, response.text
        assert ("example-discovery", "lone") in shown(daemon)
        assert daemon.stop() == 0
        # only the elements an override changes or adds are (re)started: web at start,
        # web again, off, db; removing db restarts nothing; lone once named
        assert daemon.log().count('msg="discoverer started"') == 1 + 1 + 1 + 1 + 0 + 1

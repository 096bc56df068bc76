"""Secrets (every ``setting(..., redact=True)`` key) never leave kapa-core in clear text.

Table-driven over every redacted key of every section the installed plugins register:
each gets a unique secret, set in the file, by environment variable and by a config
override, and the secret must then appear in no API response, no daemon log line and no
``kapa-core config`` output, while the API still says the key is set. Two overrides are
also proved to be stored and applied: an InfluxDB password against an auth-enabled
influxd, and an ``[[httppost]]`` basic-auth password seen by a recording server.
"""

from __future__ import annotations

import base64
import dataclasses
import secrets
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from kapa_core.config.schema import Key, Section, keys_of
from kapa_core.plugins import load_plugins
from kapa_core.storage import OVERRIDES, Store
from kapa_core.testing import DaemonProcess, run_cli, to_toml
from kapa_core.testing import RecordingHTTPServer as HTTPRecorder
from tests.integration.influxd import InfluxD

pytestmark = pytest.mark.integration

CONFIG = "/kapacitor/v1/config"
SECTIONS: dict[str, Section] = {s.name: s for s in load_plugins().ordered_sections()
                                if s.name}
#: (section, key) for every redacted key of every section.
REDACTED: list[tuple[Section, Key]] = [(s, k) for s in SECTIONS.values()
                                       for k in keys_of(s.schema) if k.redact]
ELEMENT = "e1"
#: Keys some array sections require even in a disabled element.
REQUIRED = {"scraper": {"db": "telegraf", "rp": "autogen"}}


def test_the_table_is_not_empty() -> None:
    names = {(s.name, k.name) for s, k in REDACTED}
    assert {("influxdb", "password"), ("smtp", "password"), ("http", "shared-secret"),
            ("httppost", "basic-auth"), ("kafka", "sasl-password")} <= names


@contextmanager
def running(daemon: DaemonProcess) -> Iterator[DaemonProcess]:
    """Run ``daemon`` for a while, keeping its data directory for a restart."""
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.kill()


def make_secret(section: Section, key: Key) -> str:
    return f"S3CR3T-{section.name}-{key.name}-{secrets.token_hex(6)}"


def secret_value(key: Key, secret: str) -> Any:
    """A value of the key's type that carries ``secret`` (maps and tables too)."""
    if dataclasses.is_dataclass(key.type):
        return {k.name: f"{secret}-{k.name}" for k in keys_of(key.type)}
    if getattr(key.type, "__origin__", None) is dict:
        return {"entry": secret}
    return secret


def secrets_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in secrets_in(v)]
    return [value] if isinstance(value, str) and value.startswith("S3CR3T-") else []


def element_of(section: Section) -> dict[str, Any]:
    """A minimal disabled element of an array section, named ELEMENT."""
    named = {section.element_key: ELEMENT} if section.element_key else {}
    return {**named, **REQUIRED.get(section.name, {})}


@pytest.fixture(scope="module")
def table() -> dict[tuple[str, str], Any]:
    """(section, key) -> value holding a fresh secret, for every redacted key."""
    return {(s.name, k.name): secret_value(k, make_secret(s, k)) for s, k in REDACTED}


def file_config(values: dict[tuple[str, str], Any] | None) -> dict[str, Any]:
    """A test configuration with one element in every array section (with ``values``)."""
    config: dict[str, Any] = {}
    for section in SECTIONS.values():
        own = {key: v for (name, key), v in (values or {}).items() if name == section.name}
        if section.multiple:
            config[section.name] = [{**element_of(section), **own}]
        elif own:
            config[section.name] = own
    config["influxdb"] = [{**config["influxdb"][0], "enabled": False}]
    return config


def all_secrets(values: dict[tuple[str, str], Any]) -> list[str]:
    return [s for v in values.values() for s in secrets_in(v)]


def assert_nowhere(text: str, values: dict[tuple[str, str], Any], where: str) -> None:
    leaked = [s for s in all_secrets(values) if s in text]
    assert not leaked, f"{len(leaked)} secret(s) in {where}: {leaked[:3]}"


def api_views(daemon: DaemonProcess) -> Iterator[tuple[str, str]]:
    """(url, body) of every read-only endpoint that shows configuration or services."""
    with httpx.Client(base_url=daemon.url, timeout=10) as client:
        paths = [CONFIG, "/kapacitor/v1/service-tests", "/kapacitor/v1/debug/vars",
                 "/kapacitor/v1/:routes", "/kapacitor/v1/alerts/topics"]
        overview = client.get(CONFIG).json()["sections"]
        for name, section in overview.items():
            paths.append(f"{CONFIG}/{name}")
            paths += [e["link"]["href"] for e in section["elements"]]
        for test in client.get("/kapacitor/v1/service-tests").json()["services"]:
            paths.append(test["link"]["href"])
        for path in paths:
            response = client.get(path)
            assert response.status_code == 200, (path, response.text)
            yield path, response.text


def element_view(daemon: DaemonProcess, section: Section) -> dict[str, Any]:
    path = f"{CONFIG}/{section.name}/{ELEMENT if section.multiple else ''}"
    response = httpx.get(daemon.url + path)
    assert response.status_code == 200, (path, response.text)
    return response.json()


def assert_shown_as_set(daemon: DaemonProcess) -> int:
    """Every redacted key of every overridable section reads ``true``; how many."""
    checked = 0
    for section, key in REDACTED:
        if not section.overridable:
            continue
        view = element_view(daemon, section)
        assert view["options"][key.name] is True, (section.name, key.name, view)
        assert key.name in view["redacted"]
        checked += 1
    return checked


# -- the file, the environment and `kapa-core config` -------------------------------------

def env_for(values: dict[tuple[str, str], Any]) -> dict[str, str]:
    """KAPACITOR_* variables for the plain string keys (array sections: element 0)."""
    env = {}
    for section, key in REDACTED:
        value = values[(section.name, key.name)]
        if not isinstance(value, str):
            continue
        name = section.name.upper().replace("-", "_")
        name += "_0" if section.multiple else ""
        env[f"KAPACITOR_{name}_{key.name.upper().replace('-', '_')}"] = value + "-env"
    return env


def test_kapa_core_config_prints_no_secret(tmp_path: Path, table) -> None:
    path = tmp_path / "kapacitor.conf"
    path.write_text(to_toml({"data_dir": str(tmp_path / "d"), **file_config(table)}))
    env = env_for(table)
    for extra in ({}, env):
        result = run_cli("config", "-config", str(path), env=extra)
        assert result.returncode == 0, result.stderr
        assert_nowhere(result.stdout + result.stderr, table, "kapa-core config")
        assert_nowhere(result.stdout + result.stderr,
                       {k: v for k, v in enumerate(extra.values())}, "kapa-core config")
        assert result.stdout.count("(redacted: set)") == len(REDACTED)
        tomllib.loads(result.stdout)  # still valid TOML


def test_secrets_from_file_and_environment_stay_hidden(table) -> None:
    env = env_for(table)
    with DaemonProcess(file_config(table), env=env) as daemon:
        checked = assert_shown_as_set(daemon)
        assert checked == sum(1 for s, _ in REDACTED if s.overridable)
        seen = 0
        for path, body in api_views(daemon):
            assert_nowhere(body, table, path)
            assert_nowhere(body, dict(enumerate(env.values())), path)
            seen += 1
        assert seen > len(SECTIONS) // 2
        daemon.stop()
        assert_nowhere(daemon.log(), table, "the daemon log")
        assert_nowhere(daemon.log(), dict(enumerate(env.values())), "the daemon log")


# -- overrides over the API -----------------------------------------------------------------

def test_every_redacted_key_set_by_override_is_stored_and_shown_only_as_set(table) -> None:
    first = DaemonProcess(file_config(None))
    try:
        with running(first):
            overridable = [(s, k) for s, k in REDACTED if s.overridable]
            for section, key in overridable:
                response = httpx.post(
                    f"{first.url}{CONFIG}/{section.name}/"
                    f"{ELEMENT if section.multiple else ''}",
                    json={"set": {key.name: table[(section.name, key.name)]}})
                assert response.status_code == 204, (section.name, key.name, response.text)
            assert assert_shown_as_set(first) == len(overridable)
            for path, body in api_views(first):
                assert_nowhere(body, table, path)
            refused = httpx.post(f"{first.url}{CONFIG}/http/",
                                 json={"set": {"shared-secret": "S3CR3T-not-overridable"}})
            assert refused.status_code == 403
            assert "S3CR3T" not in refused.text
            first.stop()
            assert_nowhere(first.log(), table, "the daemon log")
        # Stored: the overrides are in the store as given (as Kapacitor keeps them) ...
        store = Store(str(Path(first.data_dir) / "kapacitor.db"))
        try:
            stored = " ".join(str(v) for _, v in store.items_json(OVERRIDES))
        finally:
            store.close()
        for section, key in overridable:
            for secret in secrets_in(table[(section.name, key.name)]):
                assert secret in stored
        # ... and re-applied after a restart, still hidden.
        with DaemonProcess(file_config(None), data_dir=first.data_dir) as second:
            assert assert_shown_as_set(second) == len(overridable)
            for path, body in api_views(second):
                assert_nowhere(body, table, path)
            second.stop()
            assert_nowhere(second.log(), table, "the restarted daemon log")
    finally:
        first.close()


def test_refused_overrides_do_not_echo_the_secret(table) -> None:
    with DaemonProcess(file_config(None)) as daemon:
        tried = 0
        for section, key in REDACTED:
            if not section.overridable:
                continue
            url = f"{daemon.url}{CONFIG}/{section.name}/{ELEMENT if section.multiple else ''}"
            secret = secrets_in(table[(section.name, key.name)])[0]
            bodies = [{"set": {key.name: [secret]}}]  # the wrong type
            if "url" in key.name:  # not a URL, refused by the section's validation
                bodies.append({"set": {"enabled": True, key.name: secret}})
            for body in bodies:
                response = httpx.post(url, json=body)
                assert response.status_code == 400, (section.name, key.name, response.text)
                assert secret not in response.text, response.text
                assert "(redacted" in response.json()["error"]
                tried += 1
        assert tried > len(REDACTED) // 2
        daemon.stop()
        assert_nowhere(daemon.log(), table, "the daemon log")


def test_influxdb_password_override_is_applied() -> None:
    password = "S3CR3T-" + secrets.token_hex(8)
    with InfluxD(auth=True) as influx:
        influx.create_admin("admin", password)
        config = {"influxdb": [{"enabled": True, "urls": [influx.url], "username": "admin",
                                "startup-timeout": "1s"}]}
        first = DaemonProcess(config)
        try:
            with running(first):
                first.wait_for_log(r"authorization failed")
                url = f"{first.url}{CONFIG}/influxdb/default"
                assert httpx.post(url, json={"set": {"password": password}}
                                  ).status_code == 204
                first.wait_for_log(r'msg="connected to InfluxDB"', timeout=20)
                view = httpx.get(url).json()
                assert view["options"]["password"] is True
                assert password not in httpx.get(first.url + CONFIG).text
                result = httpx.post(first.url + "/kapacitor/v1/service-tests/influxdb",
                                    json={}).json()
                assert result["success"] is True, result
                first.stop()
                assert password not in first.log()
            with DaemonProcess(config, data_dir=first.data_dir) as second:  # stored
                second.wait_for_log(r'msg="connected to InfluxDB"', timeout=20)
                assert "authorization failed" not in second.log()
                second.stop()
                assert password not in second.log()
        finally:
            first.close()


def test_httppost_basic_auth_override_is_applied() -> None:
    password = "S3CR3T-" + secrets.token_hex(8)
    with HTTPRecorder() as recorder, DaemonProcess(
            {"httppost": [{"endpoint": "rec", "url": recorder.url + "/hook"}]}) as daemon:
        url = f"{daemon.url}{CONFIG}/httppost/rec"
        response = httpx.post(url, json={"set": {"basic-auth": {"username": "kapa",
                                                                "password": password}}})
        assert response.status_code == 204, response.text
        assert httpx.get(url).json()["options"]["basic-auth"] is True
        result = httpx.post(daemon.url + "/kapacitor/v1/service-tests/httppost",
                            json={"endpoint": "rec"}).json()
        assert result["success"] is True, result
        (request,) = recorder.requests
        expected = base64.b64encode(f"kapa:{password}".encode()).decode()
        assert request.headers["authorization"] == f"Basic {expected}"
        daemon.stop()
        assert password not in daemon.log()

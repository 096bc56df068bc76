"""Connecting to a real InfluxDB: ping, credentials, TLS, outages, live config overrides."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio

from kapa_core.influxdb import service as influx_service
from kapa_core.influxdb.client import ClusterClient, ConnectionFailed
from kapa_core.influxdb.config import InfluxDBConfig
from kapa_core.influxdb.service import InfluxDBService
from kapa_core.logs import Logger
from kapa_core.services import CoreServiceContext
from kapa_core.testing import DaemonProcess
from tests.integration.influxd import InfluxD, free_port
from tests.integration.pki import ca_and_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def influx():
    with InfluxD() as server:
        yield server


@pytest.fixture(scope="module")
def influx_auth():
    with InfluxD(auth=True) as server:
        server.create_admin("admin", "changeit")
        yield server


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it."""
    return ca_and_server(tmp_path_factory.mktemp("pki"))


async def ping(config: InfluxDBConfig) -> str:
    async with ClusterClient(config) as client:
        return (await client.ping()).version


async def test_ping_reports_version(influx) -> None:
    version = await ping(InfluxDBConfig(urls=[influx.url]))
    assert version.startswith("1.")


async def test_credentials(influx_auth) -> None:
    ok = InfluxDBConfig(urls=[influx_auth.url], username="admin", password="changeit")
    assert await ping(ok)
    # /ping does not check credentials on InfluxDB 1.x; a query does.
    bad = InfluxDBConfig(urls=[influx_auth.url], username="admin", password="wrong")
    async with ClusterClient(bad) as client:
        response = await client.http.get(influx_auth.url + "/query",
                                          params={"q": "SHOW DATABASES"})
        assert response.status_code == 401
    async with ClusterClient(ok) as client:
        response = await client.http.get(influx_auth.url + "/query",
                                          params={"q": "SHOW DATABASES"})
        assert response.status_code == 200


async def test_connection_refused_message() -> None:
    config = InfluxDBConfig(urls=[f"http://127.0.0.1:{free_port()}"])
    with pytest.raises(ConnectionFailed, match=r"cannot connect to http://127\.0\.0\.1"):
        await ping(config)


async def test_https_verification(tls_files) -> None:
    ca, cert, key = tls_files
    with InfluxD(https_cert=str(cert), https_key=str(key)) as influx:
        with pytest.raises(ConnectionFailed, match=r"x509: certificate signed by unknown "
                           r"authority"):
            await ping(InfluxDBConfig(urls=[influx.url]))
        assert await ping(InfluxDBConfig(urls=[influx.url], insecure_skip_verify=True))
        assert await ping(InfluxDBConfig(urls=[influx.url], ssl_ca=str(ca)))


async def test_service_starts_without_influxdb_then_connects(monkeypatch) -> None:
    monkeypatch.setattr(influx_service, "INITIAL_BACKOFF", 0.2)
    monkeypatch.setattr(influx_service, "MAX_BACKOFF", 0.5)
    influx = InfluxD()
    try:
        config = InfluxDBConfig(urls=[influx.url])
        ctx = CoreServiceContext(section="influxdb", config=(config,), root=None,
                                 logger=Logger("influxdb"), write_points=lambda *a: None)
        service = InfluxDBService(ctx)
        async with trio.open_nursery() as nursery:
            with trio.fail_after(10):  # a wait for InfluxDB would never end
                await nursery.start(service.serve)  # ready at once, InfluxDB is down
            with trio.move_on_after(20):  # the first attempt fails, however long it takes
                while "cannot connect" not in service.statuses()["default"].last_error:  # noqa: ASYNC110 - polling the public status is the point
                    await trio.sleep(0.05)
            status = service.statuses()["default"]
            assert not status.connected and "cannot connect" in status.last_error, status
            await trio.to_thread.run_sync(influx.start)
            with trio.fail_after(20):
                while not service.statuses()["default"].connected:  # noqa: ASYNC110 - polling the public status is the point
                    await trio.sleep(0.1)
            assert service.client() is not None
            nursery.cancel_scope.cancel()
    finally:
        influx.close()


def test_daemon_runs_without_influxdb_and_override_of_urls_applies_live(influx) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    with DaemonProcess({"influxdb": [{"enabled": True, "urls": [down]}]}) as daemon:
        daemon.wait_for_log(r"cannot reach InfluxDB; stream tasks keep running")
        assert httpx.post(daemon.url + "/write?db=x", content=b"m v=1").status_code == 204
        response = httpx.post(daemon.url + "/kapacitor/v1/config/influxdb/",
                              json={"set": {"urls": [influx.url]}})
        assert response.status_code == 204, response.text
        daemon.wait_for_log(r"configuration override applied, restarting service.*"
                            r"section=influxdb")
        line = daemon.wait_for_log(r'msg="connected to InfluxDB"')
        assert influx.url in line
        element = httpx.get(daemon.url + "/kapacitor/v1/config/influxdb/default").json()
        assert element["options"]["urls"] == [influx.url]


def test_daemon_connects_with_credentials_from_environment(influx_auth) -> None:
    env = {"KAPACITOR_INFLUXDB_0_URLS_0": influx_auth.url,
           "KAPACITOR_INFLUXDB_0_USERNAME": "admin",
           "KAPACITOR_INFLUXDB_0_PASSWORD": "changeit"}
    with DaemonProcess({"influxdb": [{"enabled": True}]}, env=env) as daemon:
        daemon.wait_for_log(r'msg="connected to InfluxDB" .*cluster=default')
        assert "changeit" not in daemon.log()


def test_repeated_failures_warn_once_then_log_at_debug() -> None:
    down = f"http://127.0.0.1:{free_port()}"
    with DaemonProcess({"influxdb": [{"enabled": True, "urls": [down]}]}) as daemon:
        daemon.wait_for_log(r"lvl=debug msg=\"cannot reach InfluxDB")
        warnings = [line for line in daemon.log().splitlines()
                    if "cannot reach InfluxDB" in line and "lvl=warn" in line]
        assert len(warnings) == 1


def test_http_shared_secret_signs_a_jwt_influxdb_accepts() -> None:
    """http-shared-secret = true: no password, a token signed with [http] shared-secret."""
    secret = "a-secret-both-sides-know"
    with InfluxD(auth=True, shared_secret=secret) as influx:
        influx.create_admin("admin", "changeit")
        influx.query('CREATE DATABASE "jwtdb"', auth=("admin", "changeit"))
        element = {"enabled": True, "urls": [influx.url], "username": "admin",
                   "http-shared-secret": True, "kapacitor-hostname": "127.0.0.1",
                   "subscriptions": {"jwtdb": ["autogen"]}}
        with DaemonProcess({"http": {"shared-secret": secret},
                            "influxdb": [element]}) as daemon:
            # Creating a subscription needs an admin: only the signed token names one.
            daemon.wait_for_log(r'msg="created subscription" .*db=jwtdb', timeout=20)
            subs = influx.query("SHOW SUBSCRIPTIONS", auth=("admin", "changeit"))
            assert "jwtdb" in str(subs)
        with DaemonProcess({"http": {"shared-secret": "another secret"},
                            "influxdb": [element]}) as daemon:
            line = daemon.wait_for_log(r'msg="failed to link subscriptions', timeout=20)
            assert "signature is invalid" in line or "authorization failed" in line, line
            assert "another secret" not in daemon.log()
        # Without [http] shared-secret there is nothing to sign with: said clearly.
        with DaemonProcess({"influxdb": [element]}) as daemon:
            line = daemon.wait_for_log(r"needs \[http\] shared-secret", timeout=20)
            assert "cluster=default" in line
        # And no username: refused at start.
        refused = DaemonProcess({"http": {"shared-secret": secret},
                                 "influxdb": [{**element, "username": ""}]})
        try:
            with pytest.raises(RuntimeError, match="http-shared-secret"):
                refused.start()
        finally:
            refused.close()

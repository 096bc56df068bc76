"""InfluxDB subscriptions against a real influxd: kapa-core subscribes, InfluxDB pushes
every write to it (http, https or udp) and stream tasks see the points."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from kapa_core.influxdb.client import quote_ident, quote_string
from kapa_core.testing import DaemonProcess
from tests.integration.influxd import InfluxD, free_port
from tests.integration.pki import self_signed

pytestmark = pytest.mark.integration

SCRIPT = """stream|from().measurement('cpu').groupBy('host')
  |window().period(10s).every(10s)
  |httpOut('out')"""
LINES = "cpu,host=a v=1 0\ncpu,host=a v=2 3\ncpu,host=a v=3 7\ncpu,host=a v=4 10"
EXPECTED = {"series": [{"name": "cpu", "tags": {"host": "a"}, "columns": ["time", "v"],
                        "values": [["1970-01-01T00:00:00Z", 1.0],
                                   ["1970-01-01T00:00:03Z", 2.0],
                                   ["1970-01-01T00:00:07Z", 3.0]]}]}


# -- helpers ------------------------------------------------------------------------------
def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something truthy (InfluxDB pushes asynchronously).

    The deadline is generous for a loaded machine: it only matters when the check fails."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.05)


def subscriptions(influx: InfluxD) -> set[tuple[str, str, str, str, tuple[str, ...]]]:
    """(db, rp, name, mode, destinations) of every subscription."""
    out = set()
    for series in influx.query("SHOW SUBSCRIPTIONS")["results"][0].get("series", []):
        for rp, name, mode, destinations in series.get("values", []):
            out.add((series["name"], rp, name, mode, tuple(destinations)))
    return out


def named(influx: InfluxD, name: str) -> dict[tuple[str, str], tuple[str, tuple[str, ...]]]:
    """{(db, rp): (mode, destinations)} of the subscriptions called ``name``."""
    return {(db, rp): (mode, dest) for db, rp, n, mode, dest in subscriptions(influx)
            if n == name}


def drop_named(influx: InfluxD, name: str) -> None:
    for db, rp in named(influx, name):
        influx.query(f"DROP SUBSCRIPTION {quote_ident(name)} ON "
                     f"{quote_ident(db)}.{quote_ident(rp)}")


def ids(daemon: DaemonProcess) -> tuple[str, str]:
    body = httpx.get(daemon.url + "/kapacitor/v1/debug/vars", verify=False).json()
    return body["cluster_id"], body["server_id"]


def port(daemon: DaemonProcess) -> int:
    return int(daemon.url.rsplit(":", 1)[1])


def config(influx: InfluxD, **element: Any) -> dict[str, Any]:
    return {"http": {"log-enabled": False},
            "influxdb": [{"enabled": True, "urls": [influx.url],
                          "subscriptions-sync-interval": "1s",
                          "kapacitor-hostname": "127.0.0.1", **element}]}


def define(daemon: DaemonProcess, task_id: str, db: str, rp: str) -> None:
    body = {"id": task_id, "type": "stream", "dbrps": [{"db": db, "rp": rp}],
            "script": SCRIPT, "status": "enabled"}
    response = httpx.post(daemon.url + "/kapacitor/v1/tasks", json=body, verify=False)
    assert response.status_code == 200, response.text


def output(daemon: DaemonProcess, task_id: str) -> Any:
    response = httpx.get(f"{daemon.url}/kapacitor/v1/tasks/{task_id}/out", verify=False)
    return response.json() if response.status_code == 200 else None


def write_influx(influx: InfluxD, db: str, rp: str, lines: str) -> None:
    response = httpx.post(f"{influx.url}/write", params={"db": db, "rp": rp,
                                                        "precision": "s"},
                          content=lines.encode(), auth=influx_auth(influx), verify=False)
    assert response.status_code == 204, response.text


def influx_auth(influx: InfluxD) -> tuple[str, str] | None:
    return ("admin", "changeit") if influx.auth else None


def assert_task_gets_influx_writes(daemon: DaemonProcess, influx: InfluxD, task_id: str,
                                   db: str, rp: str) -> None:
    define(daemon, task_id, db, rp)
    write_influx(influx, db, rp, LINES)
    wait_for(lambda: output(daemon, task_id) == EXPECTED, what="points pushed by InfluxDB")


def override(daemon: DaemonProcess, **values: Any) -> None:
    response = httpx.post(daemon.url + "/kapacitor/v1/config/influxdb/default",
                          json={"set": values}, verify=False)
    assert response.status_code == 204, response.text


def link(daemon: DaemonProcess) -> httpx.Response:
    return httpx.post(daemon.url + "/kapacitor/v1/subscriptions", verify=False)


# -- fixtures -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def influx() -> Iterator[InfluxD]:
    with InfluxD() as server:
        server.query('CREATE DATABASE "db" WITH NAME "rp"')
        server.query('CREATE DATABASE "_kapacitor"')
        server.query('CREATE DATABASE "udpdb" WITH NAME "rp"')
        server.query('CREATE RETENTION POLICY "other" ON "udpdb" DURATION 1h REPLICATION 1')
        yield server


@pytest.fixture(scope="module")
def http_daemon(influx: InfluxD) -> Iterator[DaemonProcess]:
    # A subscription with the name Kapacitor used before 1.0, with a dead destination.
    influx.query('CREATE DATABASE "legacy"')
    influx.query("CREATE SUBSCRIPTION \"kapacitor\" ON \"legacy\".\"autogen\" "
                 "DESTINATIONS ANY 'http://127.0.0.1:1'")
    with DaemonProcess(config(influx)) as daemon:
        name = "kapacitor-" + ids(daemon)[0]
        try:
            yield daemon
        finally:
            daemon.stop()
            drop_named(influx, name)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("pki"))


# -- http ---------------------------------------------------------------------------------
def test_http_subscription_is_named_as_kapacitor_and_feeds_a_stream_task(
        influx: InfluxD, http_daemon: DaemonProcess) -> None:
    cluster_id, _ = ids(http_daemon)
    name = f"kapacitor-{cluster_id}"
    destination = f"http://127.0.0.1:{port(http_daemon)}"
    wanted = {("db", "rp"), ("udpdb", "rp"), ("udpdb", "other")}  # created one by one
    ours = wait_for(lambda: wanted <= set(named(influx, name)) and named(influx, name),
                    what="the subscriptions on every db/rp")
    assert ours[("db", "rp")] == ("ANY", (destination,))
    # _kapacitor.autogen is excluded by default; every other db/rp is subscribed.
    assert ("_kapacitor", "autogen") not in ours
    assert ("udpdb", "rp") in ours and ("udpdb", "other") in ours
    http_daemon.wait_for_log(r'msg="created subscription" .*db=db rp=rp name=' + name)
    assert_task_gets_influx_writes(http_daemon, influx, "http_task", "db", "rp")


def test_database_created_later_is_subscribed_within_the_sync_interval(
        influx: InfluxD, http_daemon: DaemonProcess) -> None:
    name = "kapacitor-" + ids(http_daemon)[0]
    wait_for(lambda: ("db", "rp") in named(influx, name), what="the first link")
    influx.query('CREATE DATABASE "late" WITH NAME "fresh"')
    # Only the periodic sync (1s here) subscribes it; the default interval is 1m.
    wait_for(lambda: ("late", "fresh") in named(influx, name),
             what="late.fresh to be subscribed")
    assert_task_gets_influx_writes(http_daemon, influx, "late_task", "late", "fresh")


def test_stale_subscription_of_this_instance_is_replaced(
        influx: InfluxD, http_daemon: DaemonProcess) -> None:
    name = "kapacitor-" + ids(http_daemon)[0]
    good = ("ANY", (f"http://127.0.0.1:{port(http_daemon)}",))
    influx.query('CREATE DATABASE "stale"')
    wait_for(lambda: named(influx, name).get(("stale", "autogen")) == good,
             what="stale.autogen to be subscribed")
    # Same name, wrong port (as if http-port had changed since it was created). The 1s
    # sync runs meanwhile: it may recreate the good one between the two statements, and
    # then the CREATE fails and is tried again; once it succeeds the sync must replace it.
    def replace_with_a_bad_one() -> bool:
        results = influx.query(
            f"DROP SUBSCRIPTION {quote_ident(name)} ON \"stale\".\"autogen\"; "
            f"CREATE SUBSCRIPTION {quote_ident(name)} ON \"stale\".\"autogen\" "
            f"DESTINATIONS ALL {quote_string('http://127.0.0.1:1')}")["results"]
        return len(results) == 2 and "error" not in results[1]

    wait_for(replace_with_a_bad_one, what="the bad subscription to be created")
    http_daemon.wait_for_log(r'msg="dropped subscription" .*db=stale rp=autogen .*'
                             r'destinations=http://127.0.0.1:1 reason=".*HTTP port')
    wait_for(lambda: named(influx, name).get(("stale", "autogen")) == good,
             what="the stale subscription to be replaced")


def test_legacy_subscription_name_is_migrated(
        influx: InfluxD, http_daemon: DaemonProcess) -> None:
    name = "kapacitor-" + ids(http_daemon)[0]
    good = ("ANY", (f"http://127.0.0.1:{port(http_daemon)}",))
    wait_for(lambda: named(influx, name).get(("legacy", "autogen")) == good,
             what="the legacy subscription to be recreated under the current name")
    assert not named(influx, "kapacitor")
    http_daemon.wait_for_log(r'msg="dropped subscription" .*db=legacy rp=autogen '
                             r'name=kapacitor ')


# -- udp, subscriptions and excluded-subscriptions, restart ---------------------------------
def test_udp_subscription_selection_and_restart(influx: InfluxD) -> None:
    element = {"subscription-protocol": "udp", "udp-bind": "127.0.0.1",
               "udp-read-buffer": 262144,
               "subscriptions": {"udpdb": ["rp", "other"], "db": ["nope"]},
               "excluded-subscriptions": {"udpdb": ["other"]}}
    first = DaemonProcess(config(influx, **element))
    name = ""
    try:
        first.start()
        name = "kapacitor-" + ids(first)[0]
        wait_for(lambda: named(influx, name), what="the udp subscription")
        # Once the next sync starts, the one that subscribed it is over: nothing else is.
        syncs = first.log().count('msg="linking subscriptions"')
        first.wait_for_text('msg="linking subscriptions"', count=syncs + 1)
        ours = named(influx, name)
        assert set(ours) == {("udpdb", "rp")}  # listed and not excluded
        mode, (destination,) = ours[("udpdb", "rp")]
        match = re.fullmatch(r"udp://127\.0\.0\.1:(\d+)", destination)
        assert mode == "ANY" and match, destination
        first.wait_for_log(r'msg="started UDP listener" .*db=udpdb rp=rp '
                           rf"bind=127\.0\.0\.1:{match.group(1)}")
        assert_task_gets_influx_writes(first, influx, "udp_task", "udpdb", "rp")
        assert first.stop() == 0
        # Kept on shutdown, as Kapacitor keeps it: InfluxDB resumes sending on restart.
        assert named(influx, name) == ours
        with DaemonProcess(config(influx, **element), data_dir=first.data_dir) as second:
            assert "kapacitor-" + ids(second)[0] == name
            second.wait_for_log(rf"started UDP listener.*bind=127\.0\.0\.1:{match.group(1)}")
            write_influx(influx, "udpdb", "rp", "cpu,host=a v=5 20\ncpu,host=a v=6 30")
            expected = {"series": [{"name": "cpu", "tags": {"host": "a"},
                                    "columns": ["time", "v"],
                                    "values": [["1970-01-01T00:00:20Z", 5.0]]}]}
            wait_for(lambda: output(second, "udp_task") == expected,
                     what="points over the reopened UDP listener")
            assert named(influx, name) == ours
    finally:
        first.close()
        if name:
            drop_named(influx, name)


# -- disable-subscriptions, the link API and runtime changes ------------------------------
def test_disabled_then_linked_by_api_then_mode_switch_and_disable_at_runtime(
        influx: InfluxD) -> None:
    # A long sync interval: only the startup link and the API link anything here.
    cfg = config(influx, **{"disable-subscriptions": True,
                            "subscriptions-sync-interval": "1h"})
    with DaemonProcess(cfg) as daemon:
        cluster_id, server_id = ids(daemon)
        by_cluster, by_server = f"kapacitor-{cluster_id}", f"kapacitor-{server_id}"
        try:
            daemon.wait_for_log(r'msg="connected to InfluxDB"')
            wait_for(lambda: link(daemon).status_code == 204, what="the link API")
            time.sleep(0.5)
            assert not named(influx, by_cluster) and not named(influx, by_server)

            override(daemon, **{"disable-subscriptions": False})
            # Nothing was subscribed before this override: the log up to its line says so.
            daemon.wait_for_log(r"configuration override applied.*section=influxdb")
            before = daemon.log().partition("configuration override applied")[0]
            assert "created subscription" not in before
            wait_for(lambda: ("db", "rp") in named(influx, by_cluster),
                     what="subscriptions once enabled")

            influx.query('CREATE DATABASE "apidb"')
            assert ("apidb", "autogen") not in named(influx, by_cluster)
            assert link(daemon).status_code == 204
            assert named(influx, by_cluster)[("apidb", "autogen")] == (
                "ANY", (f"http://127.0.0.1:{port(daemon)}",))

            override(daemon, **{"subscription-mode": "server"})
            wait_for(lambda: not named(influx, by_cluster) and
                     ("apidb", "autogen") in named(influx, by_server),
                     what="cluster-named subscriptions replaced by server-named ones")

            override(daemon, **{"disable-subscriptions": True})
            wait_for(lambda: not named(influx, by_server),
                     what="subscriptions dropped once disabled")
            assert link(daemon).status_code == 204
            assert not named(influx, by_server) and not named(influx, by_cluster)
        finally:
            drop_named(influx, by_cluster)
            drop_named(influx, by_server)


# -- failures: no privileges, InfluxDB down; subscription-path ----------------------------
def test_failures_are_logged_and_retried_and_subscription_path_prefixes_write() -> None:
    with InfluxD(auth=True) as influx:
        influx.create_admin("admin", "changeit")
        admin = ("admin", "changeit")
        influx.query('CREATE DATABASE "db" WITH NAME "rp"', auth=admin)
        influx.query("CREATE USER \"reader\" WITH PASSWORD 'pw'", auth=admin)
        influx.query('GRANT ALL ON "db" TO "reader"', auth=admin)
        cfg = config(influx, username="reader", password="pw",
                     **{"subscription-path": "/kapacitor/v1"})
        with DaemonProcess(cfg) as daemon:
            line = daemon.wait_for_log(r'lvl=error msg="failed to link subscriptions')
            assert "SHOW SUBSCRIPTIONS" in line and "admin privilege" in line
            daemon.wait_for_log(r'lvl=debug msg="failed to link subscriptions')
            errors = [x for x in daemon.log().splitlines()
                      if 'lvl=error msg="failed to link subscriptions' in x]
            assert len(errors) == 1  # the same failure again is logged at debug
            ping = httpx.get(daemon.url + "/kapacitor/v1/ping")
            assert ping.status_code == 204
            failed = link(daemon)
            assert failed.status_code == 500
            assert failed.json()["error"].startswith(
                "failed to link subscriptions: linking cluster default: SHOW SUBSCRIPTIONS")

            influx.query('GRANT ALL PRIVILEGES TO "reader"', auth=admin)
            name = "kapacitor-" + ids(daemon)[0]

            def ours() -> dict[tuple[str, str], Any]:
                return {(db, rp): v for (db, rp), v in named_auth(influx, name).items()}

            wait_for(lambda: ours().get(("db", "rp")), what="the retried link")
            assert ours()[("db", "rp")] == (
                "ANY", (f"http://127.0.0.1:{port(daemon)}/kapacitor/v1",))
            daemon.wait_for_log(r'msg="linked subscriptions again"')
            # InfluxDB posts to <destination>/write: /kapacitor/v1/write here.
            assert_task_gets_influx_writes(daemon, influx, "path_task", "db", "rp")

            influx.stop()
            daemon.wait_for_log(r'lvl=error msg="failed to link subscriptions.*cannot reach')
            influx.start()
            daemon.wait_for_text('msg="linked subscriptions again"', count=2)


def named_auth(influx: InfluxD, name: str) -> dict[tuple[str, str], Any]:
    body = influx.query("SHOW SUBSCRIPTIONS", auth=("admin", "changeit"))
    out = {}
    for series in body["results"][0].get("series", []):
        for rp, n, mode, destinations in series.get("values", []):
            if n == name:
                out[(series["name"], rp)] = (mode, tuple(destinations))
    return out


# -- https --------------------------------------------------------------------------------
def test_https_subscription_to_kapa_core_serving_https(
        influx: InfluxD, tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    cfg = config(influx, **{"subscription-protocol": "https",
                            "subscriptions": {"db": ["rp"]}})
    cfg["http"] = {**cfg["http"], "https-enabled": True, "https-certificate": str(cert),
                   "https-private-key": str(key)}
    with DaemonProcess(cfg) as daemon:
        assert daemon.url.startswith("https://")
        name = "kapacitor-" + ids(daemon)[0]
        try:
            wait_for(lambda: named(influx, name), what="the https subscription")
            assert named(influx, name) == {
                ("db", "rp"): ("ANY", (f"https://127.0.0.1:{port(daemon)}",))}
            # influxd runs with [subscriber] insecure-skip-verify = true.
            assert_task_gets_influx_writes(daemon, influx, "https_task", "db", "rp")
        finally:
            drop_named(influx, name)


# -- [http] auth-enabled: subscription tokens ---------------------------------------------
def tokens_of(subs: dict[tuple[str, str], Any]) -> dict[tuple[str, str], str | None]:
    return {key: urlsplit(dest[0]).password for key, (_, dest) in subs.items()}


def test_auth_enabled_gives_each_subscription_a_token_of_its_own(
        influx: InfluxD, tmp_path: Path) -> None:
    influx.query('CREATE DATABASE "tokdb" WITH NAME "rp"')
    influx.query('CREATE DATABASE "tokdb2" WITH NAME "rp"')
    data_dir = str(tmp_path / "data")
    api_port = free_port()  # the same port across restarts: destinations stay valid
    plain = config(influx, subscriptions={"tokdb": ["rp"], "tokdb2": ["rp"]})
    plain["http"] = {"log-enabled": False, "bind-address": f"127.0.0.1:{api_port}"}
    plain["auth"] = {"enabled": True, "bcrypt-cost": 4}
    secured = {**plain, "http": {**plain["http"], "auth-enabled": True}}
    admin = ("admin", "s3cret")
    keys = {("tokdb", "rp"), ("tokdb2", "rp")}

    def carry_tokens(name: str) -> Any:
        subs = named(influx, name)
        return set(subs) == keys and all(tokens_of(subs).values()) and subs

    # 1. Authentication off: the first admin is created, destinations carry nothing.
    with DaemonProcess(plain, data_dir=data_dir) as daemon:
        name = "kapacitor-" + ids(daemon)[0]
        assert httpx.post(daemon.url + "/kapacitor/v1/users", json={
            "name": admin[0], "password": admin[1], "type": "admin"}).status_code == 200
        subs = wait_for(lambda: set(named(influx, name)) == keys and named(influx, name))
        assert set(tokens_of(subs).values()) == {None}
    try:
        # 2. Authentication on: each subscription is recreated with its own token.
        with DaemonProcess(secured, data_dir=data_dir) as daemon:
            subs = wait_for(lambda: carry_tokens(name), what="destinations with tokens")
            tokens = tokens_of(subs)
            assert len(set(tokens.values())) == 2
            for (_, dest) in subs.values():
                assert dest[0].startswith("http://~subscriber:")
                assert dest[0].endswith(f"@127.0.0.1:{api_port}")
            # InfluxDB's writes get through, into a task defined by the admin.
            body = {"id": "tok_task", "type": "stream", "dbrps": [{"db": "tokdb", "rp": "rp"}],
                    "script": SCRIPT, "status": "enabled"}
            assert httpx.post(daemon.url + "/kapacitor/v1/tasks", json=body,
                              auth=admin).status_code == 200
            write_influx(influx, "tokdb", "rp", LINES)
            out = f"{daemon.url}/kapacitor/v1/tasks/tok_task/out"
            wait_for(lambda: httpx.get(out, auth=admin).json() == EXPECTED,
                     what="points pushed by InfluxDB with its token")
            # A token writes into its own database only, and reaches nothing else.
            token = tokens[("tokdb", "rp")]
            assert token is not None
            sub_auth = ("~subscriber", token)
            other = httpx.post(daemon.url + "/write", params={"db": "tokdb2", "rp": "rp"},
                               content=b"cpu v=1", auth=sub_auth)
            assert other.status_code == 401
            assert other.json() == {"error": '"~subscriber" user is not authorized to '
                                             'write to database "tokdb2"'}
            own = httpx.post(daemon.url + "/write", params={"db": "tokdb", "rp": "rp"},
                             content=b"cpu v=1", auth=sub_auth)
            assert own.status_code == 204
            assert httpx.get(daemon.url + "/kapacitor/v1/ping", auth=sub_auth
                             ).status_code == 204
            tasks = httpx.get(daemon.url + "/kapacitor/v1/tasks", auth=sub_auth)
            assert tasks.status_code == 403
            made_up = httpx.post(daemon.url + "/write", params={"db": "tokdb"},
                                 content=b"cpu v=1", auth=("~subscriber", "x" * 40))
            assert (made_up.status_code, made_up.json()) == (
                401, {"error": "invalid subscription token"})
            # Tokens never reach the log.
            daemon.wait_for_log(r'msg="created subscription" .*destinations=http://'
                                r'~subscriber:\*\*\*@', count=2)
            log = daemon.log()
            assert not any(t in log for t in tokens.values() if t)

        # 3. A restart keeps the subscriptions and their tokens.
        with DaemonProcess(secured, data_dir=data_dir) as daemon:
            wait_for(lambda: httpx.post(daemon.url + "/kapacitor/v1/subscriptions",
                                        auth=admin).status_code == 204,
                     what="a link once connected to InfluxDB")
            assert tokens_of(named(influx, name)) == tokens
            assert httpx.post(daemon.url + "/write", params={"db": "tokdb", "rp": "rp"},
                              content=b"cpu v=1", auth=sub_auth).status_code == 204

        # 4. Authentication off: plain destinations again, every token revoked ...
        with DaemonProcess(plain, data_dir=data_dir) as daemon:
            wait_for(lambda: set(tokens_of(named(influx, name)).values()) == {None},
                     what="destinations without tokens")
            daemon.wait_for_log(r'msg="revoked subscription tokens no longer used" '
                                r'.*count=2')
        # ... so that they are refused once authentication is back on.
        with DaemonProcess({**secured, "influxdb": [{"enabled": False}]},
                           data_dir=data_dir) as daemon:
            refused = httpx.post(daemon.url + "/write", params={"db": "tokdb", "rp": "rp"},
                                 content=b"cpu v=1", auth=sub_auth)
            assert refused.status_code == 401
    finally:
        drop_named(influx, name)


def test_links_move_to_the_next_url_when_the_current_one_is_down() -> None:
    """Two URLs for one cluster (two servers here): when the one in use stops, the next
    link goes to the other and subscribes there."""
    with InfluxD() as first, InfluxD() as second:
        for server in (first, second):
            server.query('CREATE DATABASE "fail" WITH NAME "rp"')
        element = config(first, urls=[first.url, second.url],
                         subscriptions={"fail": ["rp"]})
        with DaemonProcess(element) as daemon:
            name = "kapacitor-" + ids(daemon)[0]
            wait_for(lambda: ("fail", "rp") in named(first, name), what="link on the first")
            assert ("fail", "rp") not in named(second, name)
            first.stop()
            wait_for(lambda: ("fail", "rp") in named(second, name),
                     what="link on the second URL")
            daemon.wait_for_text("cannot reach " + first.url)

"""The ``[collectd]`` listener through the real daemon, fed by the real collectd daemon
(Debian's collectd-core, started by the test with the network plugin pointed at the
listener) and by packets built here: points named and tagged as Kapacitor names them
reach tasks as a ``/write`` would, with the ``collectd`` statistics in
``/kapacitor/v1/debug/vars`` and ``_kapacitor``; truncated, oversized and garbage
datagrams and types types.db lacks are counted and logged while the API and another
listener keep answering; signed data is checked against an auth-file; a port in use or
a missing types.db stops startup naming the section; shutdown closes the socket."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from kapa_plugins.inputs import collectd_protocol as cp

from kapa_core.testing import DaemonProcess, wait_until

pytestmark = pytest.mark.integration

API = "/kapacitor/v1"
COLLECTD = shutil.which("collectd") or "/usr/sbin/collectd"
TYPES_DB = "/usr/share/collectd/types.db"
HOSTNAME = "kapatest"
#: collectd's network plugin sends a packet once it is full: with these four plugins at
#: a 1 s interval that is about every second.
PLUGINS = ("cpu", "memory", "load", "interface")

needs_collectd = pytest.mark.skipif(
    not (os.access(COLLECTD, os.X_OK) and os.path.exists(TYPES_DB)),
    reason="collectd is not installed (scripts/test installs collectd-core)")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def send(port: int, *datagrams: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for data in datagrams:
            s.sendto(data, ("127.0.0.1", port))


def define(daemon: DaemonProcess, task_id: str, measurement: str, db: str = "collectd"
           ) -> None:
    script = (f'dbrp "{db}"."autogen"\nstream|from().measurement(\'{measurement}\')'
              ".groupBy(*)|httpOut('out')")
    response = httpx.post(daemon.url + API + "/tasks", json={
        "id": task_id, "type": "stream", "script": script, "status": "enabled"})
    assert response.status_code == 200, response.text


def series(daemon: DaemonProcess, task_id: str) -> list[dict]:
    out = httpx.get(f"{daemon.url}{API}/tasks/{task_id}/out").json()
    return list(out.get("series") or [])


def statistics(daemon: DaemonProcess, name: str = "collectd") -> dict[str, dict]:
    stats = httpx.get(daemon.url + API + "/debug/vars").json()["kapacitor"]
    return {s["tags"].get("bind", ""): s["values"] for s in stats.values()
            if s["name"] == name}


def collectd_config(directory: Path, port: int, *, plugins: tuple[str, ...],
                    server_options: str = "") -> Path:
    loads = "\n".join(f"LoadPlugin {p}" for p in plugins)
    text = f"""\
Hostname "{HOSTNAME}"
FQDNLookup false
Interval 1
BaseDir "{directory}"
PIDFile "{directory}/collectd.pid"
TypesDB "{TYPES_DB}"
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File STDOUT
</Plugin>
{loads}
LoadPlugin network
<Plugin interface>
  Interface "lo"
</Plugin>
<Plugin network>
  <Server "127.0.0.1" "{port}">
{server_options}
  </Server>
</Plugin>
"""
    path = directory / "collectd.conf"
    path.write_text(text, encoding="utf-8")
    return path


class Collectd:
    """The real collectd in the foreground, stopped (killed if need be) on close."""

    def __init__(self, directory: Path, port: int, *, plugins: tuple[str, ...],
                 server_options: str = "") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        config = collectd_config(directory, port, plugins=plugins,
                                 server_options=server_options)
        self.proc = subprocess.Popen([COLLECTD, "-C", str(config), "-f"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def close(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out.decode(errors="replace")


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return {"collectd": free_udp_port(), "udp": free_udp_port()}


@pytest.fixture(scope="module")
def typesdb(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A directory of types.db files: the package's, one of our own, one broken."""
    directory = tmp_path_factory.mktemp("typesdb")
    if os.path.exists(TYPES_DB):
        shutil.copy(TYPES_DB, directory / "types.db")
    (directory / "custom").mkdir()
    (directory / "custom" / "my.db").write_text(
        "# a type of our own\nmyset  a:GAUGE:U:U, b:COUNTER:0:U\n"
        "mykinds g:GAUGE:U:U c:COUNTER:0:U d:DERIVE:U:U ab:ABSOLUTE:0:U\n")
    (directory / "broken.db").write_text("only_a_name\n")
    return str(directory)


@pytest.fixture(scope="module")
def daemon(ports: dict[str, int], typesdb: str) -> Iterator[DaemonProcess]:
    config = {
        "collectd": {"enabled": True, "bind-address": f"127.0.0.1:{ports['collectd']}",
                     "retention-policy": "autogen", "typesdb": typesdb,
                     "batch-size": 50, "batch-timeout": "100ms"},
        "udp": [{"enabled": True, "bind-address": f"127.0.0.1:{ports['udp']}",
                 "database": "udpdb", "retention-policy": "autogen"}],
        "stats": {"enabled": True, "stats-interval": "1s"},
    }
    with DaemonProcess(config) as process:
        process.wait_for_log(r'msg="started listening on UDP" .*address=127.0.0.1:'
                             f"{ports['collectd']}")
        yield process


def instances(found: list[dict], tag: str) -> set[str]:
    return {s["tags"].get(tag, "") for s in found}


def complete(got: dict[str, list[dict]]) -> bool:
    """Every plugin has sent the series checked below (they come in several packets)."""
    return (bool(got["load"]) and {"used", "free"} <= instances(got["memory"], "type_instance")
            and {"user", "system", "idle"} <= instances(got["cpu"], "type_instance")
            and {"if_octets", "if_packets"} <= instances(got["interface"], "type"))


@needs_collectd
def test_the_real_collectd_feeds_tasks(daemon: DaemonProcess, ports: dict[str, int],
                                       tmp_path: Path) -> None:
    wanted = {"load": "load_shortterm", "memory": "memory_value", "cpu": "cpu_value",
              "interface": "interface_rx"}
    for task_id, measurement in wanted.items():
        define(daemon, task_id, measurement)
    define(daemon, "stats", "collectd", db="_kapacitor")
    started = time.time()
    collectd = Collectd(tmp_path / "collectd", ports["collectd"],
                        plugins=PLUGINS)
    try:
        got = wait_until(lambda: {t: series(daemon, t) for t in wanted},
                         until=complete, what="points of every plugin")
    finally:
        output = collectd.close()
    assert "Initialization complete" in output, output

    for task_id, measurement in wanted.items():
        for s in got[task_id]:
            assert s["name"] == measurement
            assert s["columns"] == ["time", "value"]
            (stamp, value), = s["values"]
            assert isinstance(value, float | int) and not isinstance(value, bool)
            when = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
            assert started - 5 < when < time.time() + 1, stamp
            # collectd's high-resolution time, rounded to the microsecond
            assert len(stamp.rstrip("Z").partition(".")[2]) <= 6, stamp
    assert [s["tags"] for s in got["load"]] == [{"host": HOSTNAME, "type": "load"}]
    memory = {s["tags"]["type_instance"] for s in got["memory"]}
    assert {"used", "free"} <= memory
    assert all(s["tags"].keys() == {"host", "type", "type_instance"}
               and s["tags"]["type"] == "memory" for s in got["memory"])
    assert memory <= {"used", "buffered", "cached", "free", "slab_recl", "slab_unrecl"}
    cpu = got["cpu"]
    assert {s["tags"]["type_instance"] for s in cpu} <= {
        "user", "system", "wait", "nice", "interrupt", "softirq", "steal", "idle"}
    assert all(s["tags"].keys() == {"host", "instance", "type", "type_instance"}
               and s["tags"]["instance"].isdigit() and s["tags"]["type"] == "cpu"
               and s["tags"]["host"] == HOSTNAME for s in cpu)
    assert {s["tags"]["type"] for s in got["interface"]} <= {
        "if_octets", "if_packets", "if_errors", "if_dropped"}
    assert all(s["tags"] == {"host": HOSTNAME, "instance": "lo", "type": s["tags"]["type"]}
               for s in got["interface"])
    # a derive counter arrives as a float, as in Kapacitor
    assert all(isinstance(s["values"][0][1], float) for s in got["load"])

    stats = statistics(daemon)[f"127.0.0.1:{ports['collectd']}"]
    assert stats["pointsRx"] > 0 and stats["bytesRx"] > 1000
    assert stats["batchesTx"] > 0 and stats["pointsTx"] > 0
    ingress = httpx.get(daemon.url + API + "/debug/vars").json()["kapacitor"]
    assert ingress["ingress:collectd:autogen:load_shortterm"]["values"][
        "points_received"] >= 1
    # and the same statistic in the _kapacitor stream
    published = wait_until(lambda: series(daemon, "stats"), what="_kapacitor collectd")
    assert published[0]["tags"]["bind"] == f"127.0.0.1:{ports['collectd']}"
    assert {"pointsRx", "bytesRx", "pointsParseFail", "readFail", "batchesTx", "pointsTx",
            "batchesTxFail", "droppedPointsInvalid"} <= set(published[0]["columns"])


def handmade(host: str) -> bytes:
    """A datagram with every kind of part, two value sets, hr and plain times."""
    hr = (1700000000 << 30) | (1 << 29)  # 1700000000.5 s
    return b"".join([
        cp.encode_string(cp.PART_HOST, host),
        cp.encode_number(cp.PART_TIME_HR, hr),
        cp.encode_number(cp.PART_INTERVAL_HR, 10 << 30),
        cp.encode_string(cp.PART_PLUGIN, "myplug"),
        cp.encode_string(cp.PART_PLUGIN_INSTANCE, "inst"),
        cp.encode_string(cp.PART_TYPE, "myset"),
        cp.encode_string(cp.PART_TYPE_INSTANCE, "ti"),
        cp.encode_values([(cp.GAUGE, 1.5), (cp.COUNTER, 7)]),
        cp.encode_string(cp.PART_MESSAGE, "a notification, ignored"),
        cp.encode_number(cp.PART_SEVERITY, 4),
        bytes([0x7F, 0x00, 0x00, 0x08, 1, 2, 3, 4]),  # unknown part type: skipped
        cp.encode_number(cp.PART_TIME, 1700000100),
        cp.encode_number(cp.PART_TIME_HR, 0),
        cp.encode_number(cp.PART_INTERVAL, 10),
        cp.encode_string(cp.PART_PLUGIN_INSTANCE, ""),
        cp.encode_string(cp.PART_TYPE, "mykinds"),
        cp.encode_string(cp.PART_TYPE_INSTANCE, ""),
        cp.encode_values([(cp.GAUGE, -0.25), (cp.COUNTER, 2 ** 64 - 1),
                          (cp.DERIVE, -42), (cp.ABSOLUTE, 3)]),
    ])


def test_exact_points_from_a_handmade_packet(daemon: DaemonProcess,
                                             ports: dict[str, int]) -> None:
    names = ["myplug_a", "myplug_b", "myplug_g", "myplug_c", "myplug_d", "myplug_ab"]
    for name in names:
        define(daemon, f"hand_{name}", name)
    send(ports["collectd"], handmade("handmade"))
    got = wait_until(lambda: {n: series(daemon, f"hand_{n}") for n in names},
                     until=lambda s: all(s.values()), what="the handmade points")
    first = {"host": "handmade", "instance": "inst", "type": "myset", "type_instance": "ti"}
    second = {"host": "handmade", "type": "mykinds"}
    assert got == {
        "myplug_a": [{"name": "myplug_a", "tags": first, "columns": ["time", "value"],
                      "values": [["2023-11-14T22:13:20.5Z", 1.5]]}],
        "myplug_b": [{"name": "myplug_b", "tags": first, "columns": ["time", "value"],
                      "values": [["2023-11-14T22:13:20.5Z", 7.0]]}],
        "myplug_g": [{"name": "myplug_g", "tags": second, "columns": ["time", "value"],
                      "values": [["2023-11-14T22:15:00Z", -0.25]]}],
        "myplug_c": [{"name": "myplug_c", "tags": second, "columns": ["time", "value"],
                      "values": [["2023-11-14T22:15:00Z", 18446744073709552000]]}],  # Go JSON
        "myplug_d": [{"name": "myplug_d", "tags": second, "columns": ["time", "value"],
                      "values": [["2023-11-14T22:15:00Z", -42.0]]}],
        "myplug_ab": [{"name": "myplug_ab", "tags": second, "columns": ["time", "value"],
                       "values": [["2023-11-14T22:15:00Z", 3.0]]}],
    }


def oracle_packets() -> list[bytes]:
    """The packets whose points Kapacitor 1.5.7 gave in ``KAPACITOR``."""
    text, number, values = cp.encode_string, cp.encode_number, cp.encode_values
    base = (text(cp.PART_HOST, "h1") + number(cp.PART_TIME_HR, (1700000000 << 30) | (1 << 29))
            + number(cp.PART_INTERVAL_HR, 10 << 30))
    return [
        base + text(cp.PART_PLUGIN, "load") + text(cp.PART_TYPE, "load")
        + values([(cp.GAUGE, 0.5), (cp.GAUGE, 0.25), (cp.GAUGE, 0.125)]),
        text(cp.PART_HOST, "h2") + number(cp.PART_TIME, 1700000001)
        + text(cp.PART_PLUGIN, "memory") + text(cp.PART_TYPE, "memory")
        + text(cp.PART_TYPE_INSTANCE, "used") + values([(cp.GAUGE, 123.0)]),
        base + text(cp.PART_PLUGIN, "interface") + text(cp.PART_PLUGIN_INSTANCE, "eth0")
        + text(cp.PART_TYPE, "if_octets") + values([(cp.DERIVE, -5), (cp.DERIVE, 7)]),
        base + text(cp.PART_PLUGIN, "cpu") + text(cp.PART_PLUGIN_INSTANCE, "3")
        + text(cp.PART_TYPE, "cpu") + text(cp.PART_TYPE_INSTANCE, "idle")
        + values([(cp.COUNTER, 2**63 + 5)]),
        cp.sign(base + text(cp.PART_PLUGIN, "signed") + text(cp.PART_TYPE, "memory")
                + values([(cp.GAUGE, 1.0)]), "u", "p"),
    ] + [text(cp.PART_HOST, f"f{frac}") + number(cp.PART_TIME_HR, (1700000000 << 30) | frac)
         + text(cp.PART_PLUGIN, "memory") + text(cp.PART_TYPE, "memory")
         + values([(cp.GAUGE, float(frac))]) for frac in (0, 1 << 28, (1 << 30) - 1)]


#: What tasks (``from().measurement(m).groupBy(*)|httpOut``) of Kapacitor 1.5.7 showed
#: for ``oracle_packets()`` ([tags, [time, value]] per series), recorded from it.
KAPACITOR = {
    "load_shortterm": [[{"host": "h1", "type": "load"},
                        ["2023-11-14T22:13:20.576461Z", 0.5]]],
    "load_midterm": [[{"host": "h1", "type": "load"}, ["2023-11-14T22:13:20.576461Z", 0.25]]],
    "load_longterm": [[{"host": "h1", "type": "load"},
                       ["2023-11-14T22:13:20.576461Z", 0.125]]],
    "memory_value": [
        [{"host": "f0", "type": "memory"}, ["2023-11-14T22:13:20Z", 0]],
        [{"host": "f1073741823", "type": "memory"},
         ["2023-11-14T22:13:21.152922Z", 1073741823]],
        [{"host": "f268435456", "type": "memory"}, ["2023-11-14T22:13:20.28823Z", 268435456]],
        [{"host": "h2", "type": "memory", "type_instance": "used"},
         ["2023-11-14T22:13:21Z", 123]]],
    "interface_rx": [[{"host": "h1", "instance": "eth0", "type": "if_octets"},
                      ["2023-11-14T22:13:20.576461Z", -5]]],
    "interface_tx": [[{"host": "h1", "instance": "eth0", "type": "if_octets"},
                      ["2023-11-14T22:13:20.576461Z", 7]]],
    "cpu_value": [[{"host": "h1", "instance": "3", "type": "cpu", "type_instance": "idle"},
                   ["2023-11-14T22:13:20.576461Z", 9223372036854776000]]],
    "signed_value": [],
}
#: kapa-core converts high-resolution times exactly (docs/inputs.md): Kapacitor's time
#: on the left, the packet's on the right.
EXACT_TIMES = {"2023-11-14T22:13:20.576461Z": "2023-11-14T22:13:20.5Z",
               "2023-11-14T22:13:20.28823Z": "2023-11-14T22:13:20.25Z",
               "2023-11-14T22:13:21.152922Z": "2023-11-14T22:13:21Z"}


@needs_collectd
def test_the_points_kapacitor_gives(daemon: DaemonProcess, ports: dict[str, int]) -> None:
    for measurement in KAPACITOR:
        define(daemon, f"oracle_{measurement}", measurement)
    for data in oracle_packets():
        send(ports["collectd"], data)

    def seen() -> dict[str, list]:
        return {m: sorted(([s["tags"], s["values"][0]] for s in series(daemon, f"oracle_{m}")
                           if s["tags"]["host"] != HOSTNAME), key=json.dumps)
                for m in KAPACITOR}

    expected = {m: [[tags, [EXACT_TIMES.get(t, t), v]] for tags, (t, v) in got]
                for m, got in KAPACITOR.items()}
    # a signature is skipped at security-level none (Kapacitor drops signed datagrams)
    expected["signed_value"] = [[{"host": "h1", "type": "memory"},
                                 ["2023-11-14T22:13:20.5Z", 1]]]
    assert wait_until(seen, until=lambda s: s == expected, timeout=10,
                      what="the points Kapacitor gives") == expected


def test_bad_datagrams_are_counted_and_nothing_stalls(daemon: DaemonProcess,
                                                      ports: dict[str, int]) -> None:
    port = ports["collectd"]
    bind = f"127.0.0.1:{port}"
    define(daemon, "after_bad", "myplug_g")
    define(daemon, "udp_during", "during", db="udpdb")
    before = statistics(daemon)[bind]
    good = handmade("after")
    unknown_type = (cp.encode_string(cp.PART_HOST, "x")
                    + cp.encode_string(cp.PART_PLUGIN, "p")
                    + cp.encode_string(cp.PART_TYPE, "no_such_type")
                    + cp.encode_values([(cp.GAUGE, 1.0), (cp.GAUGE, 2.0)]))
    bad = [
        good[:-5],                            # truncated in its last part
        b"\x00",                              # shorter than a part header
        b"\xff" * 60000,                      # oversized garbage
        bytes(range(256)) * 5,                # garbage
        cp.encode_values([(9, 1.0)]),         # unknown value kind
        unknown_type,                         # a type types.db lacks
    ]
    # Once each, counted exactly: five datagrams fail, two values are dropped.
    for data in bad:
        send(port, data)
        time.sleep(0.01)
    wait_until(lambda: statistics(daemon)[bind], what="the bad datagrams counted",
               until=lambda s: s["pointsParseFail"] == before["pointsParseFail"] + 5
               and s["droppedPointsInvalid"] == before["droppedPointsInvalid"] + 2
               and s["bytesRx"] > before["bytesRx"] + 60000)
    # Then a flood of them while the API and the [[udp]] listener are used.
    stop = threading.Event()
    answers: list[int] = []

    def flood() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            while not stop.is_set():
                for data in bad:
                    s.sendto(data, ("127.0.0.1", port))
                time.sleep(0.001)

    thread = threading.Thread(target=flood, daemon=True)
    thread.start()
    try:
        for i in range(20):
            answers.append(httpx.get(daemon.url + API + "/ping", timeout=5).status_code)
            send(ports["udp"], b"during,host=u value=%d %d" % (i, i + 1))
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join()
    assert answers == [204] * 20
    wait_until(lambda: series(daemon, "udp_during"), what="the udp listener's points")
    send(port, good)
    got = wait_until(lambda: [s for s in series(daemon, "after_bad")
                              if s["tags"]["host"] == "after"], what="a good packet after")
    assert got[0]["values"] == [["2023-11-14T22:15:00Z", -0.25]]
    stats = statistics(daemon)[bind]
    # (the socket may drop some of the flood: at least a few rounds were read)
    assert stats["pointsParseFail"] - before["pointsParseFail"] >= 5 * 3
    assert stats["droppedPointsInvalid"] - before["droppedPointsInvalid"] >= 2 * 3
    log = daemon.log()
    assert 'msg="failed to parse collectd packet"' in log
    assert "type 'no_such_type' is not in types.db" in log
    # rate-limited: hundreds of failures, one line each (the next would come 10 s later)
    assert log.count('msg="failed to parse collectd packet"') == 1
    assert log.count('msg="dropped invalid collectd values"') == 1
    # the broken file of the types.db directory was skipped with a warning
    assert "skipped a types.db file" in log and "broken.db:1" in log


@needs_collectd
def test_signed_data_from_the_real_collectd(tmp_path: Path) -> None:
    port = free_udp_port()
    auth = tmp_path / "auth"
    auth.write_text("# collectd users\nalice: s3cret\nbob: other\n")
    config = {"collectd": {"enabled": True, "bind-address": f"127.0.0.1:{port}",
                           "retention-policy": "autogen", "batch-size": 1,
                           "security-level": "sign", "auth-file": str(auth)}}
    with DaemonProcess(config) as daemon:
        daemon.wait_for_log("started listening on UDP")
        define(daemon, "signed", "load_shortterm")
        collectd = Collectd(tmp_path / "collectd", port, plugins=PLUGINS, server_options=(
            '    SecurityLevel Sign\n    Username "alice"\n    Password "s3cret"'))
        try:
            got = wait_until(lambda: series(daemon, "signed"), what="signed points")
        finally:
            collectd.close()
        assert got[0]["tags"] == {"host": HOSTNAME, "type": "load"}
        bind = f"127.0.0.1:{port}"
        fails = statistics(daemon)[bind]["pointsParseFail"]
        define(daemon, "refused", "myplug_g")
        payload = handmade("unsigned")
        send(port, payload, cp.sign(payload, "bob", "wrong"), cp.sign(payload, "eve", "x"))
        wait_until(lambda: statistics(daemon)[bind]["pointsParseFail"] >= fails + 3,
                   what="three refused datagrams")
        # one line for the three (rate-limited): the first reason
        assert "unsigned values refused (security-level is sign)" in daemon.log()
        assert series(daemon, "refused") == []


def test_startup_failures_name_the_section_and_shutdown_closes_the_socket(
        tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        # (a daemon that fails exits at once: the long timeout only covers a slow start)
        daemon = DaemonProcess({"collectd": {"enabled": True, "bind-address":
                                             f"127.0.0.1:{port}", "typesdb": str(tmp_path)}},
                               ready_timeout=60)
        with pytest.raises(RuntimeError, match="did not become ready") as raised:
            daemon.start()
        daemon.close()
    assert "input listener collectd" in str(raised.value)
    assert "in use" in str(raised.value)

    missing = str(tmp_path / "nothing-here")
    daemon = DaemonProcess({"collectd": {"enabled": True, "bind-address": "127.0.0.1:0",
                                         "typesdb": missing}}, ready_timeout=60)
    with pytest.raises(RuntimeError, match="did not become ready") as raised:
        daemon.start()
    daemon.close()
    assert "collectd" in str(raised.value) and "nothing-here" in str(raised.value)

    port = free_udp_port()
    with DaemonProcess({"collectd": {"enabled": True, "bind-address": f"127.0.0.1:{port}",
                                     "typesdb": str(tmp_path)}}) as daemon:
        daemon.wait_for_log("started listening on UDP")
        assert daemon.stop() == 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(("127.0.0.1", port))  # free again

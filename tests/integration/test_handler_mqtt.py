"""The mqtt handler against a real mosquitto broker.

A module-scoped daemon talks to two brokers (one anonymous, one with a password file)
and to a port where nothing listens; its tests subscribe with a small blocking client
built on ``mqtt_wire`` and check topics rendered from templates, payloads, QoS 1 and 2,
retained messages, the topic-handler kind, refused options, refused logins and a broker
that is down. The service-level tests drive ``MQTTService`` directly under trio:
reconnecting after a broker restart, keep-alive pings and DISCONNECT, TLS.
"""

from __future__ import annotations

import itertools
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import trio
from kapa_plugins.handlers import mqtt
from kapa_plugins.handlers import mqtt_wire as wire

from kapa_core.plugin_api import HandlerError
from kapa_core.testing import DaemonProcess
from tests.integration.influxd import free_port
from tests.integration.test_alerts import wait_for
from tests.integration.test_tasks import define, write

pytestmark = pytest.mark.integration

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
API = "/kapacitor/v1"

if not Path(MOSQUITTO).exists():  # pragma: no cover - the broker is a test requirement
    pytest.skip("mosquitto is not installed", allow_module_level=True)


# -- a real broker ------------------------------------------------------------------------
class Mosquitto:
    """mosquitto on a free 127.0.0.1 port, logging everything to a file."""

    def __init__(self, directory: Path, *, users: dict[str, str] | None = None,
                 tls: dict[str, str] | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.dir = directory
        self.port = free_port()
        self.tls_port = free_port() if tls else 0
        self.log_path = directory / "mosquitto.log"
        lines = [f"listener {self.port} 127.0.0.1", "persistence false",
                 f"log_dest file {self.log_path}", "log_type all",
                 "user root"]  # only read when run as root: stay root, keep the temp dir
        if users:
            if MOSQUITTO_PASSWD is None:
                pytest.skip("mosquitto_passwd is not installed")
            password_file = directory / "passwords"
            for index, (user, password) in enumerate(users.items()):
                flags = ["-b", "-c"] if index == 0 else ["-b"]
                subprocess.run([MOSQUITTO_PASSWD, *flags, str(password_file), user, password],
                               check=True, capture_output=True, timeout=10)
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        if tls:
            lines += [f"listener {self.tls_port} 127.0.0.1", f"cafile {tls['ca']}",
                      f"certfile {tls['cert']}", f"keyfile {tls['key']}"]
        self.config_path = directory / "mosquitto.conf"
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Mosquitto:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.config_path)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}:\n"
                                   f"{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8") if self.log_path.exists() else ""

    def connections(self, client_prefix: str) -> int:
        """How many sessions clients whose id starts with ``client_prefix`` opened."""
        return len(re.findall(rf"New client connected from \S+ as {re.escape(client_prefix)}",
                              self.log()))


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[Mosquitto] = []

    def make(name: str = "broker", **kwargs: Any) -> Mosquitto:
        broker = Mosquitto(tmp_path / name, **kwargs)
        started.append(broker)
        return broker.start()

    yield make
    for broker in started:
        broker.stop()


# -- a subscriber -------------------------------------------------------------------------
_subscriber_ids = itertools.count(1)


class Subscriber:
    """A blocking MQTT client on a thread: subscribes to one filter and records messages.

    It completes the QoS 1 (PUBACK) and QoS 2 (PUBREC, PUBREL/PUBCOMP) handshakes, so the
    broker delivers with the publisher's QoS (the subscription asks for up to ``qos``).
    """

    def __init__(self, port: int, topic: str, *, qos: int = 2, username: str = "",
                 password: str = "") -> None:
        self.messages: list[wire.Message] = []
        self._reader = wire.PacketReader()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            self.sock.sendall(wire.connect(f"test-sub-{next(_subscriber_ids)}",
                                           username=username, password=password))
            _, code = wire.parse_connack(self._packet())
            assert code == 0, f"subscriber refused: {wire.CONNACK_REASONS.get(code)}"
            self.sock.sendall(wire.subscribe(1, [(topic, qos)]))
            packet_id, granted = wire.parse_suback(self._packet())
            assert (packet_id, granted) == (1, [qos])
        except BaseException:
            self.sock.close()
            raise
        self.sock.settimeout(0.1)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _packet(self) -> wire.Packet:
        while True:
            packet = self._reader.next()
            if packet is not None:
                return packet
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the broker closed the subscriber's connection")
            self._reader.feed(data)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                packet = self._packet()
            except TimeoutError:
                continue
            except OSError:
                return
            if packet.type == wire.PUBLISH:
                message = wire.parse_publish(packet)
                if message.qos == 1:
                    self.sock.sendall(wire.ack(wire.PUBACK, message.packet_id))
                elif message.qos == 2:
                    self.sock.sendall(wire.ack(wire.PUBREC, message.packet_id))
                with self._lock:
                    self.messages.append(message)
            elif packet.type == wire.PUBREL:
                self.sock.sendall(wire.ack(wire.PUBCOMP, wire.parse_packet_id(packet)))

    def received(self) -> list[wire.Message]:
        with self._lock:
            return list(self.messages)

    def wait(self, count: int, timeout: float = 5.0) -> list[wire.Message]:
        """The first ``count`` messages; fails when fewer arrive within ``timeout``."""
        got = wait_for(lambda: len(self.received()) >= count, timeout)
        assert got, f"expected {count} message(s), got {self.received()}"
        return self.received()[:count]

    async def await_messages(self, count: int) -> list[wire.Message]:
        """:meth:`wait` from trio code (on a worker thread, not blocking the loop)."""
        return await trio.to_thread.run_sync(self.wait, count)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        with suppress(OSError):
            self.sock.sendall(wire.DISCONNECT_PACKET)
        self.sock.close()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the daemon shared by the handler tests -----------------------------------------------
@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    base = tmp_path_factory.mktemp("mqtt")
    anon = Mosquitto(base / "anon")
    auth = Mosquitto(base / "auth", users={"alice": "secret"})
    daemon = None
    try:
        anon.start()
        auth.start()
        down = free_port()  # nothing listens there
        config = {"http": {"log-enabled": False}, "mqtt": [
            {"enabled": True, "name": "local", "default": True,
             "url": f"tcp://127.0.0.1:{anon.port}"},
            {"enabled": True, "name": "down", "url": f"tcp://127.0.0.1:{down}"},
            {"enabled": True, "name": "auth-ok", "url": f"mqtt://127.0.0.1:{auth.port}",
             "client-id": "kapa-auth-ok", "username": "alice", "password": "secret"},
            {"enabled": True, "name": "auth-bad", "url": f"tcp://127.0.0.1:{auth.port}",
             "client-id": "kapa-auth-bad", "username": "alice", "password": "wrong"},
            {"enabled": False, "name": "off", "url": f"tcp://127.0.0.1:{anon.port}"},
        ]}
        daemon = DaemonProcess(config).start()
        yield SimpleNamespace(daemon=daemon, anon=anon, auth=auth, down=down)
    finally:
        if daemon is not None:
            daemon.close()
        anon.stop()
        auth.stop()


def test_tickscript_template_topic_payload_qos_and_retained(env: SimpleNamespace) -> None:
    daemon = env.daemon
    with Subscriber(env.anon.port, "alerts/#") as sub:
        task = define(daemon, """
stream|from().measurement('mq1')
  |alert().crit(lambda: "v" > 1).message('{{ .Name }} is {{ .Level }} v={{ index .Fields "v" }}')
    .mqtt('alerts/{{ .TaskName }}/{{ .Level }}').qos(1)
    .mqtt('alerts/{{ .TaskName }}/q2/{{ .Level }}').brokerName('local').qos(2).retained(TRUE)
""")
        write(daemon, "mq1 v=5 1\nmq1 v=0 2\n")
        live = sub.wait(4)
    assert sorted((m.topic, m.payload, m.qos) for m in live) == sorted([
        (f"alerts/{task}/CRITICAL", b"mq1 is CRITICAL v=5", 1),
        (f"alerts/{task}/OK", b"mq1 is OK v=0", 1),
        (f"alerts/{task}/q2/CRITICAL", b"mq1 is CRITICAL v=5", 2),
        (f"alerts/{task}/q2/OK", b"mq1 is OK v=0", 2),
    ])
    # Only the .retained() handler's messages wait for a subscriber that comes later.
    with Subscriber(env.anon.port, f"alerts/{task}/#") as late:
        kept = late.wait(2)
        time.sleep(0.3)
        assert len(late.received()) == 2
    assert sorted((m.topic, m.payload, m.retain) for m in kept) == [
        (f"alerts/{task}/q2/CRITICAL", b"mq1 is CRITICAL v=5", True),
        (f"alerts/{task}/q2/OK", b"mq1 is OK v=0", True),
    ]
    # Every alert went over the one session the service keeps with the broker.
    assert env.anon.connections("local") == 1
    assert "alert handler failed" not in "\n".join(
        line for line in daemon.log().splitlines() if "mq1" in line or task in line)


def test_topic_handler_kind_via_the_api(env: SimpleNamespace) -> None:
    daemon = env.daemon
    base = f"{daemon.url}{API}/alerts/topics/mqttops/handlers"
    created = httpx.post(base, json={"id": "to-mqtt", "kind": "mqtt", "options": {
        "broker-name": "local", "topic": "ops/{{ .ID }}/{{ .Level }}", "qos": 2,
        "retained": True}})
    assert created.status_code == 200, created.text
    shown = httpx.get(f"{base}/to-mqtt").json()
    assert shown["kind"] == "mqtt"
    assert shown["options"]["topic"] == "ops/{{ .ID }}/{{ .Level }}"
    with Subscriber(env.anon.port, "ops/#") as sub:
        define(daemon, """
stream|from().measurement('mq2')
  |alert().id('disk-{{ index .Tags "host" }}').crit(lambda: "v" > 1)
    .message('disk full on {{ index .Tags "host" }}').topic('mqttops')
""")
        write(daemon, "mq2,host=h1 v=5 1\n")
        [message] = sub.wait(1)
    assert (message.topic, message.payload, message.qos) == (
        "ops/disk-h1/CRITICAL", b"disk full on h1", 2)
    with Subscriber(env.anon.port, "ops/#") as late:
        [kept] = late.wait(1)
    assert kept.retain and kept.topic == "ops/disk-h1/CRITICAL"


@pytest.mark.parametrize(("options", "complaint"), [
    ({"topic": "a/b", "qos": 3}, "QoS 3"),
    ({"topic": "a/b", "qos": -1}, "QoS -1"),
    ({"topic": "a/{{ .Level"}, "topic"),
    ({"qos": 1}, "topic is required"),
    ({"topic": "a/b", "brokerName": "local", "retain": True}, "unknown option"),
])
def test_bad_topic_handler_options_are_refused(env: SimpleNamespace, options: dict,
                                               complaint: str) -> None:
    response = httpx.post(f"{env.daemon.url}{API}/alerts/topics/bad/handlers",
                          json={"id": "bad", "kind": "mqtt", "options": options})
    assert response.status_code == 400
    assert complaint in response.json()["error"]


@pytest.mark.parametrize(("chain", "complaint"), [
    (".mqtt('a/b').qos(3)", "QoS 3"),
    (".mqtt('a/{{ if }}')", "topic"),
])
def test_bad_tickscript_options_are_refused(env: SimpleNamespace, chain: str,
                                            complaint: str) -> None:
    response = httpx.post(f"{env.daemon.url}{API}/tasks", json={
        "id": "bad-mqtt", "type": "stream", "dbrps": [{"db": "db", "rp": "rp"}],
        "script": f"stream|from().measurement('x')|alert().crit(lambda: TRUE){chain}"})
    assert response.status_code == 400
    assert complaint in response.json()["error"]


def test_login_refused_by_the_broker_is_logged(env: SimpleNamespace) -> None:
    daemon = env.daemon
    with Subscriber(env.auth.port, "secure/#", username="alice", password="secret") as sub:
        define(daemon, """
stream|from().measurement('mq3')
  |alert().crit(lambda: "v" > 1).message('secured {{ .Level }}')
    .mqtt('secure/wrong').brokerName('auth-bad').qos(1)
    .mqtt('secure/{{ .Level }}').brokerName('auth-ok').qos(1)
""")
        write(daemon, "mq3 v=5 1\n")
        [message] = sub.wait(1)
        time.sleep(0.3)
        assert len(sub.received()) == 1  # nothing came through the refused login
    assert (message.topic, message.payload) == ("secure/CRITICAL", b"secured CRITICAL")
    line = daemon.wait_for_log(r"alert handler failed.*broker 'auth-bad'")
    assert "not authorized" in line
    assert env.auth.connections("kapa-auth-ok") == 1


def test_unknown_and_disabled_brokers_fail_with_their_name(env: SimpleNamespace) -> None:
    daemon = env.daemon
    define(daemon, """
stream|from().measurement('mq5')
  |alert().crit(lambda: "v" > 1).mqtt('x/y').brokerName('nope').mqtt('x/z').brokerName('off')
""")
    write(daemon, "mq5 v=5 1\n")
    unknown = daemon.wait_for_log(r"alert handler failed.*unknown broker 'nope'")
    assert "kind=mqtt" in unknown
    daemon.wait_for_log(r"alert handler failed.*broker 'off' is not enabled")


def test_broker_down_is_logged_and_the_task_goes_on(env: SimpleNamespace) -> None:
    daemon = env.daemon
    task = define(daemon, """
stream|from().measurement('mq4')
  |alert().crit(lambda: "v" > 1).mqtt('x/y').brokerName('down').qos(1)
  |httpOut('out')
""")
    write(daemon, "mq4 v=5 1\nmq4 v=7 2\n")
    line = daemon.wait_for_log(r"alert handler failed.*broker 'down'")
    assert f"127.0.0.1:{env.down}" in line

    def latest() -> float | None:
        body = httpx.get(f"{daemon.url}{API}/tasks/{task}/out").json()
        series = body.get("series") or []
        return series[0]["values"][-1][-1] if series else None

    assert wait_for(lambda: latest() == 7.0)


def test_config_override_then_shutdown_disconnects(broker_factory: Any) -> None:
    broker = broker_factory()
    config = {"http": {"log-enabled": False}, "mqtt": [
        {"enabled": True, "name": "live", "client-id": "kapa-override",
         "url": f"tcp://127.0.0.1:{free_port()}"}]}
    with DaemonProcess(config) as daemon:
        define(daemon, """
stream|from().measurement('ov')|alert().crit(lambda: "v" > 1).message('ov {{ .Level }}')
  .mqtt('ov/{{ .Level }}').qos(1)
""")
        write(daemon, "ov v=5 1\n")
        daemon.wait_for_log(r"alert handler failed.*broker 'live'")
        response = httpx.post(f"{daemon.url}{API}/config/mqtt/live",
                              json={"set": {"url": f"tcp://127.0.0.1:{broker.port}"}})
        assert response.status_code == 204, response.text
        with Subscriber(broker.port, "ov/#") as sub:
            write(daemon, "ov v=0 2\n")
            sub.wait(1)
            write(daemon, "ov v=9 3\n")
            got = sub.wait(2)
        assert [(m.topic, m.payload) for m in got] == [("ov/OK", b"ov OK"),
                                                       ("ov/CRITICAL", b"ov CRITICAL")]
        assert broker.connections("kapa-override") == 1
        assert "Received DISCONNECT from kapa-override" not in broker.log()
        assert daemon.stop() == 0
    assert "Received DISCONNECT from kapa-override" in broker.log()


# -- the service under trio --------------------------------------------------------------
class RecordingLog:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def _record(self, msg: str, **kv: Any) -> None:
        self.lines.append((msg, kv))

    debug = info = warn = error = _record


def element(name: str, url: str, **kwargs: Any) -> mqtt.MQTTConfig:
    return mqtt.MQTTConfig(enabled=True, name=name, url=url, **kwargs)


@asynccontextmanager
async def running(*elements: mqtt.MQTTConfig, log: RecordingLog | None = None
                  ) -> AsyncIterator[mqtt.MQTTService]:
    service = mqtt.MQTTService(elements, log or RecordingLog())
    async with trio.open_nursery() as nursery:
        await nursery.start(service.serve)
        yield service
        nursery.cancel_scope.cancel()


async def test_reconnects_after_a_broker_restart(broker_factory: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mqtt, "PROBE_AFTER", 0.0)
    broker = broker_factory()
    url = f"tcp://127.0.0.1:{broker.port}"
    async with running(element("b", url)) as service:
        await service.publish("", "r/1", b"one", 1, False)
        broker.restart()
        with Subscriber(broker.port, "r/#") as sub:
            # QoS 1 finds the old session dead when the PUBACK does not come: retried.
            await service.publish("b", "r/2", b"two", 1, False)
            broker.restart()
        with Subscriber(broker.port, "r/#") as sub2:
            # QoS 0 would vanish into the dead session: the ping before it notices.
            await service.publish("b", "r/3", b"three", 0, False)
            await service.publish("b", "r/4", b"four", 0, False)
            got = await sub2.await_messages(2)
    assert [(m.topic, m.payload) for m in sub.received()] == [("r/2", b"two")]
    assert [(m.topic, m.payload, m.qos) for m in got] == [("r/3", b"three", 0),
                                                          ("r/4", b"four", 0)]
    assert broker.connections("b") == 3


async def test_keepalive_pings_then_disconnect_on_close(broker_factory: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mqtt, "KEEPALIVE", 1)
    broker = broker_factory()
    log = RecordingLog()
    async with running(element("b", f"tcp://127.0.0.1:{broker.port}",
                               client_id="kapa-keepalive"), log=log) as service:
        await service.publish("b", "k/1", b"one", 1, False)
        # Idle beyond 1.5 keep-alives: the broker would drop a session that stayed silent.
        await trio.sleep(2.2)
        await service.publish("b", "k/2", b"two", 2, False)
        assert "Received PINGREQ from kapa-keepalive" in broker.log()
        assert "Received DISCONNECT from kapa-keepalive" not in broker.log()
    assert broker.connections("kapa-keepalive") == 1
    assert "has exceeded timeout" not in broker.log()
    assert wait_for(lambda: "Received DISCONNECT from kapa-keepalive" in broker.log())
    assert [kv["client_id"] for msg, kv in log.lines
            if msg == "connected to MQTT broker"] == ["kapa-keepalive"]


def make_certificates(directory: Path) -> dict[str, str]:
    """A throw-away CA and a server certificate for 127.0.0.1 (openssl CLI)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, csr = directory / "server.pem", directory / "server.key", directory / "server.csr"
    extensions = directory / "san.cnf"
    extensions.write_text("subjectAltName=IP:127.0.0.1\n", encoding="utf-8")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for args in (
        ["req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2",
         "-subj", "/CN=kapa-test-ca"],
        ["req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "2", "-extfile", extensions],
    ):
        subprocess.run([openssl, *map(str, args)], check=True, capture_output=True,
                       timeout=30)
    return {"ca": str(ca), "cert": str(cert), "key": str(key)}


async def test_tls_brokers(broker_factory: Any, tmp_path: Path) -> None:
    tls = make_certificates(tmp_path)
    broker = broker_factory("tls", tls=tls)
    address = f"127.0.0.1:{broker.tls_port}"
    elements = (element("verified", f"ssl://{address}", ssl_ca=tls["ca"]),
                element("skip", f"tls://{address}", insecure_skip_verify=True),
                element("untrusted", f"mqtts://{address}"),
                element("plain", f"tcp://{address}"))
    with Subscriber(broker.port, "tls/#") as sub:
        async with running(*elements) as service:
            await service.publish("verified", "tls/verified", b"one", 1, False)
            await service.publish("skip", "tls/skip", b"two", 2, False)
            with pytest.raises(HandlerError, match=r"broker 'untrusted'.*certificate verify"):
                await service.publish("untrusted", "tls/untrusted", b"three", 1, False)
            with trio.fail_after(15), pytest.raises(HandlerError, match="broker 'plain'"):
                await service.publish("plain", "tls/plain", b"four", 1, False)
            got = await sub.await_messages(2)
    assert sorted((m.topic, m.payload) for m in got) == [("tls/skip", b"two"),
                                                         ("tls/verified", b"one")]


def test_wire_encoding() -> None:
    for length, encoded in [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"),
                            (16_383, b"\xff\x7f"), (16_384, b"\x80\x80\x01"),
                            (268_435_455, b"\xff\xff\xff\x7f")]:
        assert wire.encode_length(length) == encoded
    with pytest.raises(wire.MQTTError):
        wire.encode_length(268_435_456)
    # CONNECT as in MQTT 3.1.1 section 3.1: protocol "MQTT" level 4, clean session.
    assert wire.connect("a", keepalive=30) == (
        b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x1e\x00\x01a")
    assert wire.connect("a", username="u", password="p")[9] == 0xC2
    assert wire.ack(wire.PUBREL, 7) == b"\x62\x02\x00\x07"
    # A packet split across reads comes out whole, once.
    payload = b"x" * 200
    data = wire.publish("t/1", payload, qos=2, retain=True, packet_id=513)
    reader = wire.PacketReader()
    packets = []
    for byte in data + wire.PINGREQ_PACKET:
        reader.feed(bytes([byte]))
        packet = reader.next()
        if packet is not None:
            packets.append(packet)
    assert [p.type for p in packets] == [wire.PUBLISH, wire.PINGREQ]
    assert wire.parse_publish(packets[0]) == wire.Message("t/1", payload, 2, True, False, 513)
    for bad in ("", "a/+", "a/#", "a\x00b"):
        with pytest.raises(wire.MQTTError):
            wire.check_topic_name(bad)
    with pytest.raises(wire.MQTTError):
        wire.publish("t", b"", qos=1)  # QoS 1 needs a packet id

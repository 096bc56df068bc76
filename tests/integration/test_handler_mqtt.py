"""The mqtt handler against a real mosquitto broker.

A module-scoped daemon talks to two brokers (one anonymous, one with a password file)
and to a port where nothing listens; its tests subscribe with a paho-mqtt client on its
own network thread and check topics rendered from templates, payloads, QoS 1 and 2,
retained messages, the topic-handler kind, refused options, refused logins and a broker
that is down. The service-level tests drive ``MQTTService`` directly under trio:
reconnecting after a broker restart, keep-alive pings and DISCONNECT, TLS, the service
test, shutdown while a publish waits, and that publishing leaves the trio loop free.

MQTT over WebSocket goes through :class:`WebSocketBridge`, a server written with the
independent ``websockets`` library in front of a real mosquitto (Debian's is built
without WebSocket listeners): ws:// and wss:// from TICKscript and the service, a
refused upgrade, a dropped WebSocket, fragmented frames and pings.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
import trio
from kapa_plugins.handlers import mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve
from websockets.typing import Subprotocol

from kapa_core.denylist import DenyList
from kapa_core.logs import Logger
from kapa_core.plugin_api import Event, EventState, HandlerContext, HandlerError, Level
from kapa_core.services import DaemonFacts
from kapa_core.testing import DaemonProcess, wait_until
from tests.integration.influxd import free_port
from tests.integration.pki import ca_and_server
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
            if tls.get("require_certificate"):
                lines.append("require_certificate true")
        self.config_path = directory / "mosquitto.conf"
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Mosquitto:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.config_path)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
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
    """An MQTT client on paho's network thread: subscribes to one filter and records
    messages. paho completes the QoS 1 and 2 handshakes, so the broker delivers with the
    publisher's QoS (the subscription asks for up to ``qos``)."""

    def __init__(self, port: int, topic: str, *, qos: int = 2, username: str = "",
                 password: str = "") -> None:
        self.messages: list[paho.MQTTMessage] = []
        self._lock = threading.Lock()
        connected = threading.Event()
        subscribed = threading.Event()
        answers: list[Any] = []
        client = paho.Client(CallbackAPIVersion.VERSION2,
                             client_id=f"test-sub-{next(_subscriber_ids)}",
                             protocol=MQTTProtocolVersion.MQTTv311)
        if username or password:
            client.username_pw_set(username, password or None)

        def on_connect(_c: Any, _u: Any, _f: Any, code: Any, _p: Any) -> None:
            answers.append(code)
            connected.set()

        def on_subscribe(_c: Any, _u: Any, _mid: int, codes: list[Any], _p: Any) -> None:
            answers.extend(codes)
            subscribed.set()

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = self._record
        self.client = client
        client.connect("127.0.0.1", port, keepalive=60)
        client.loop_start()
        try:
            assert connected.wait(10), "the subscriber got no CONNACK"
            assert not answers[0].is_failure, f"subscriber refused: {answers[0]}"
            client.subscribe(topic, qos)
            assert subscribed.wait(10), "the subscriber got no SUBACK"
            assert answers[1].value == qos, f"granted {answers[1]}"
        except BaseException:
            self.close()
            raise

    def _record(self, _client: Any, _userdata: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def received(self) -> list[paho.MQTTMessage]:
        with self._lock:
            return list(self.messages)

    def wait(self, count: int, timeout: float = 20.0) -> list[paho.MQTTMessage]:
        """The first ``count`` messages; fails when fewer arrive within ``timeout``."""
        got = wait_for(lambda: len(self.received()) >= count, timeout)
        assert got, f"expected {count} message(s), got {self.received()}"
        return self.received()[:count]

    async def await_messages(self, count: int) -> list[paho.MQTTMessage]:
        """:meth:`wait` from trio code (on a worker thread, not blocking the loop)."""
        return await trio.to_thread.run_sync(self.wait, count)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

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


def assert_no_handler_failed(daemon: DaemonProcess, task: str, measurement: str,
                             broker_port: int, topics: str, handlers: int) -> None:
    """No mqtt handler of ``task`` failed on the alerts raised so far.

    A failure is logged after the messages went out (a missing acknowledgement), so the
    log is read once it must hold it: each handler handles its events in turn, so once a
    further alert ("v=9") has come out of all ``handlers``, the earlier ones are done;
    a task started after that logs a line behind any failure.
    """
    with Subscriber(broker_port, topics) as sub:
        write(daemon, f"{measurement} v=9 3\n")
        assert wait_for(lambda: sum(b"v=9" in m.payload for m in sub.received()) >= handlers,
                        20), f"expected {handlers} v=9 message(s), got {sub.received()}"
    marker = define(daemon, "stream|from().measurement('marker')")
    daemon.wait_for_log(rf'msg="started task" .*task={marker}(\s|$)')
    httpx.delete(f"{daemon.url}{API}/tasks/{marker}")
    assert "alert handler failed" not in "\n".join(
        line for line in daemon.log().splitlines() if measurement in line or task in line)


def latest_output(daemon: DaemonProcess, task: str) -> float | None:
    """The last value of the task's httpOut('out'), None before it has any."""
    body = httpx.get(f"{daemon.url}{API}/tasks/{task}/out").json()
    series = body.get("series") or []
    return series[0]["values"][-1][-1] if series else None


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
    assert_no_handler_failed(daemon, task, "mq1", env.anon.port, f"alerts/{task}/#", 2)
    # Every alert went over the one session the service keeps with the broker.
    assert env.anon.connections("local") == 1


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
def test_bad_topic_handler_options_are_refused(env: SimpleNamespace,
                                               options: dict[str, Any],
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
    assert wait_for(lambda: latest_output(daemon, task) == 7.0)


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
    # The broker logs the DISCONNECT when it handles it, maybe after the daemon has exited.
    wait_until(broker.log, what="the broker logging the DISCONNECT",
               until=lambda log: "Received DISCONNECT from kapa-override" in log)


def test_daemon_reconnects_after_the_broker_restarts(broker_factory: Any) -> None:
    broker = broker_factory()
    config = {"http": {"log-enabled": False}, "mqtt": [
        {"enabled": True, "name": "b", "client-id": "kapa-restart",
         "url": f"tcp://127.0.0.1:{broker.port}"}]}
    with DaemonProcess(config) as daemon:
        task = define(daemon, """
stream|from().measurement('rs')|alert().crit(lambda: "v" > 1).message('rs {{ .Level }}')
  .mqtt('rs/q1/{{ .Level }}').qos(1)
  .mqtt('rs/q2/{{ .Level }}').qos(2)
""")
        with Subscriber(broker.port, "rs/#") as sub:
            write(daemon, "rs v=5 1\n")
            first = sub.wait(2)
        broker.restart()
        with Subscriber(broker.port, "rs/#") as sub:
            write(daemon, "rs v=0 2\n")
            second = sub.wait(2)
            time.sleep(0.3)
            assert len(sub.received()) == 2
    assert sorted((m.topic, m.payload) for m in first) == [
        ("rs/q1/CRITICAL", b"rs CRITICAL"), ("rs/q2/CRITICAL", b"rs CRITICAL")]
    assert sorted((m.topic, m.payload) for m in second) == [
        ("rs/q1/OK", b"rs OK"), ("rs/q2/OK", b"rs OK")]
    assert broker.connections("kapa-restart") == 2  # one session before the restart, one after
    assert "alert handler failed" not in "\n".join(
        line for line in daemon.log().splitlines() if task in line)


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
    monkeypatch.setattr(mqtt.broker, "PROBE_AFTER", 0.0)
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


class AlertHost:
    """The alert service's side of a HandlerContext: the deny list, nothing else."""

    def __init__(self, deny: DenyList) -> None:
        self.deny = deny

    def check_outgoing(self, url: str) -> None:
        self.deny.check_url(url)

    def publish(self, event: Event) -> None:
        raise AssertionError("the mqtt handler publishes no events")

    def topic_level(self, topic: str, event_id: str) -> Level:
        return Level.OK

    def start_soon(self, fn: Any) -> None:
        raise AssertionError("the mqtt handler starts no tasks")

    def http_client(self, tls: Any, timeout: float) -> Any:  # noqa: ASYNC109
        raise AssertionError("the mqtt handler uses no HTTP client")


async def test_without_a_running_service_an_event_gets_a_session_of_its_own(
        broker_factory: Any) -> None:
    """While [[mqtt]] is re-opened the context has no service: the handler publishes on a
    session made from the context's config, logger and deny list, then disconnects it."""
    broker = broker_factory()
    url = f"tcp://127.0.0.1:{broker.port}"
    config = (element("solo", url, client_id="kapa-solo"),)
    options = mqtt.MQTTOptions(broker_name="solo", topic="solo/{{ .ID }}", qos=1)
    event = Event(topic="t", state=EventState(id="cpu", message="hot", details="", time=1,
                                              duration=0, level=Level.CRITICAL))
    open_list = DenyList([])
    handler = mqtt.MQTTHandler(options, HandlerContext(
        "mqtt", config, None, Logger("mqtt"), DaemonFacts(), AlertHost(open_list)))
    with Subscriber(broker.port, "solo/#") as sub:
        await handler.handle(event)
        got = await sub.await_messages(1)
    assert [(m.topic, m.payload, m.qos) for m in got] == [("solo/cpu", b"hot", 1)]
    await trio.to_thread.run_sync(lambda: wait_until(
        broker.log, what="the broker logging the DISCONNECT",
        until=lambda log: "Received DISCONNECT from kapa-solo" in log))
    denied = DenyList([ipaddress.ip_network("127.0.0.0/8")])
    handler = mqtt.MQTTHandler(options, HandlerContext(
        "mqtt", config, None, Logger("mqtt"), DaemonFacts(), AlertHost(denied)))
    with pytest.raises(HandlerError, match=r"mqtt: .*127\.0\.0\.1.*not allowed"):
        await handler.handle(event)
    assert denied.outgoing_refused == 1
    assert broker.connections("kapa-solo") == 1


async def test_keepalive_pings_then_disconnect_on_close(broker_factory: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # Pinged after 1-2 s idle; the broker gives up on a session silent for 3 s.
    monkeypatch.setattr(mqtt.broker, "KEEPALIVE", 2)
    broker = broker_factory()
    log = RecordingLog()
    async with running(element("b", f"tcp://127.0.0.1:{broker.port}",
                               client_id="kapa-keepalive"), log=log) as service:
        await service.publish("b", "k/1", b"one", 1, False)
        # Idle beyond 1.5 keep-alives: the broker would drop a session that stayed silent.
        await trio.sleep(3.5)
        await service.publish("b", "k/2", b"two", 2, False)
        await trio.to_thread.run_sync(lambda: wait_until(
            broker.log, what="the broker logging a PINGREQ",
            until=lambda log: "Received PINGREQ from kapa-keepalive" in log))
        assert "Received DISCONNECT from kapa-keepalive" not in broker.log()
    assert broker.connections("kapa-keepalive") == 1
    assert "has exceeded timeout" not in broker.log()
    assert wait_for(lambda: "Received DISCONNECT from kapa-keepalive" in broker.log())
    assert [kv["client_id"] for msg, kv in log.lines
            if msg == "connected to MQTT broker"] == ["kapa-keepalive"]


def make_certificates(directory: Path) -> dict[str, str]:
    """A throw-away CA and a P-256 server certificate for 127.0.0.1, as
    ``Mosquitto(tls=...)`` takes them."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    ca, cert, key = ca_and_server(directory, key="ec")
    return {"ca": str(ca), "cert": str(cert), "key": str(key)}


async def publish_past_tls_checks(broker_port: int, prefix: str,
                                  elements: tuple[mqtt.MQTTConfig, ...],
                                  no_tls: str) -> list[paho.MQTTMessage]:
    """Publish to ``prefix``/<broker name> through each of ``elements``: 'verified' and
    'skip' deliver, 'untrusted' fails certificate verification, ``no_tls`` (whose far end
    does not speak TLS) fails. Returns the two messages the broker got."""
    with Subscriber(broker_port, f"{prefix}/#") as sub:
        async with running(*elements) as service:
            await service.publish("verified", f"{prefix}/verified", b"one", 1, False)
            await service.publish("skip", f"{prefix}/skip", b"two", 2, False)
            with pytest.raises(HandlerError, match=r"broker 'untrusted'.*certificate verify"):
                await service.publish("untrusted", f"{prefix}/untrusted", b"three", 1, False)
            with trio.fail_after(15), pytest.raises(HandlerError, match=f"broker '{no_tls}'"):
                await service.publish(no_tls, f"{prefix}/{no_tls}", b"four", 1, False)
            return await sub.await_messages(2)


async def test_tls_brokers(broker_factory: Any, tmp_path: Path) -> None:
    tls = make_certificates(tmp_path)
    broker = broker_factory("tls", tls=tls)
    address = f"127.0.0.1:{broker.tls_port}"
    elements = (element("verified", f"ssl://{address}", ssl_ca=tls["ca"]),
                element("skip", f"tls://{address}", insecure_skip_verify=True),
                element("untrusted", f"mqtts://{address}"),
                element("plain", f"tcp://{address}"))
    got = await publish_past_tls_checks(broker.port, "tls", elements, no_tls="plain")
    assert sorted((m.topic, m.payload) for m in got) == [("tls/skip", b"two"),
                                                         ("tls/verified", b"one")]


def client_certificate(directory: Path) -> tuple[str, str]:
    """A client certificate signed by the CA ``make_certificates`` left in ``directory``:
    (certificate, key)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory,
                       timeout=30)

    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", "/CN=kapa-client", "-keyout", "client.key", "-out", "client.csr")
    openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", "client.pem")
    return str(directory / "client.pem"), str(directory / "client.key")


async def test_tls_client_certificate(broker_factory: Any, tmp_path: Path) -> None:
    """ssl-cert and ssl-key are presented to a broker that requires a client
    certificate; without them, or with a file that is not there, the publish fails."""
    tls = make_certificates(tmp_path)
    cert, key = client_certificate(tmp_path)
    broker = broker_factory("mtls", tls={**tls, "require_certificate": "yes"})
    url = f"ssl://127.0.0.1:{broker.tls_port}"
    elements = (element("mine", url, ssl_ca=tls["ca"], ssl_cert=cert, ssl_key=key,
                        client_id="kapa-mtls"),
                element("anonymous", url, ssl_ca=tls["ca"]),
                element("missing", url, ssl_ca=tls["ca"], ssl_cert=f"{cert}.gone",
                        ssl_key=key))
    with Subscriber(broker.port, "mtls/#") as sub:
        async with running(*elements) as service:
            await service.publish("mine", "mtls/1", b"one", 2, False)
            with trio.fail_after(15), pytest.raises(HandlerError,
                                                    match="broker 'anonymous'"):
                await service.publish("anonymous", "mtls/2", b"two", 1, False)
            with pytest.raises(HandlerError, match=r"broker 'missing'.*ssl-cert"):
                await service.publish("missing", "mtls/3", b"three", 1, False)
            [got] = await sub.await_messages(1)
    assert (got.topic, got.payload, got.qos) == ("mtls/1", b"one", 2)
    assert broker.connections("kapa-mtls") == 1


def test_service_test_publishes_as_kapacitor_does(env: SimpleNamespace) -> None:
    """``/service-tests/mqtt`` has Kapacitor's options (QoS by name, the message sent as
    it is) and answers with its messages (checked against kapacitord)."""
    url = f"{env.daemon.url}{API}/service-tests/mqtt"
    assert httpx.get(url).json()["options"] == {
        "broker-name": "local", "topic": "", "message": "test MQTT message",
        "qos": "at-most-once", "retained": False}

    def run(**options: Any) -> dict[str, Any]:
        response = httpx.post(url, json=options, timeout=60)
        assert response.status_code == 200, response.text
        return dict(response.json())

    with Subscriber(env.anon.port, "st/#") as sub:
        assert run(topic="st/{{ .ID }}") == {"success": True, "message": ""}
        assert run(topic="st/2", message="two", qos="exactly-one", retained=True,
                   **{"broker-name": "local"}) == {"success": True, "message": ""}
        got = sub.wait(2)
    assert [(m.topic, m.payload, m.qos) for m in got] == [
        ("st/{{ .ID }}", b"test MQTT message", 0), ("st/2", b"two", 2)]
    assert run(topic="st/3", **{"broker-name": "auth-ok"}, qos="at-least-once") == {
        "success": True, "message": ""}
    refused: dict[str, dict[str, Any]] = {
        "missing MQTT topic": {},
        'unknown MQTT broker "nope"': {"topic": "t", "broker-name": "nope"},
        'unknown MQTT broker "off"': {"topic": "t", "broker-name": "off"},
        "failed to decode JSON body:invalid QoS": {"topic": "t", "qos": "exactly-once"},
        "failed to decode JSON body:json: cannot unmarshal number into Go struct field "
        "testOptions.qos of type mqtt.QoSLevel": {"topic": "t", "qos": 1},
    }
    for message, options in refused.items():
        assert run(**options) == {"success": False, "message": message}, options
    down = run(topic="t", **{"broker-name": "down"})
    assert not down["success"] and f"127.0.0.1:{env.down}" in down["message"]
    bad_login = run(topic="t", **{"broker-name": "auth-bad"})
    assert not bad_login["success"] and "not authorized" in bad_login["message"]


async def test_a_silent_broker_leaves_the_event_loop_free_and_close_is_prompt(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """paho blocks on a worker thread: trio keeps running while a publish waits for a
    broker that accepts TCP but never answers, and closing the service does not wait
    longer than CLOSE_TIMEOUT for a publish in progress."""
    monkeypatch.setattr(mqtt.broker, "CONNECT_TIMEOUT", 3.0)
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        service = mqtt.MQTTService((element("s", url),), RecordingLog())
        ticks = 0
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                async def tick() -> None:
                    nonlocal ticks
                    while True:
                        await trio.sleep(0.05)
                        ticks += 1

                nursery.start_soon(tick)
                started = trio.current_time()
                with pytest.raises(HandlerError, match="broker 's'.*no CONNACK"):
                    await service.publish("s", "q/1", b"one", 1, False)
                assert trio.current_time() - started >= 2.5
                assert ticks >= 30  # the loop ran all along
                # A second publish waits again; the service's close ends it at once.
                failures: list[BaseException] = []

                async def publish() -> None:
                    try:
                        await service.publish("s", "q/2", b"two", 1, False)
                    except HandlerError as exc:
                        failures.append(exc)

                nursery.start_soon(publish)
                await trio.sleep(0.5)
                closing = trio.current_time()
                await service.close()
                assert trio.current_time() - closing < mqtt.CLOSE_TIMEOUT + 1
                while not failures:  # the waiting publish still ends by its own deadline
                    await trio.sleep(0.05)
                nursery.cancel_scope.cancel()
        assert "no CONNACK" in str(failures[0])


# -- MQTT over WebSocket ------------------------------------------------------------------
class WebSocketBridge:
    """MQTT over WebSocket in front of mosquitto, written with the ``websockets`` library.

    A server on 127.0.0.1 that accepts only the subprotocol ``mqtt`` on ``path`` (HTTP
    404 for any other path) and, for each WebSocket, opens a TCP connection to the broker
    and pumps bytes both ways (binary messages <-> TCP bytes) until either side closes.
    With ``fragment`` the broker's bytes go out as fragmented messages of one byte per
    frame; with ``ping`` each message is preceded by a ping whose pong is recorded. It
    records every upgrade request (path and offered subprotocols), the subprotocol
    negotiated on each connection, and counts connections.
    """

    def __init__(self, broker_port: int, *, path: str = "/mqtt", port: int = 0,
                 tls: ssl.SSLContext | None = None, fragment: bool = False,
                 ping: bool = False) -> None:
        self.broker_port = broker_port
        self.path = path
        self.port = port
        self.tls = tls
        self.fragment = fragment
        self.ping = ping
        self.requests: list[tuple[str, str | None]] = []  # (path, Sec-WebSocket-Protocol)
        self.subprotocols: list[str | None] = []
        self.connections = 0
        self.pongs: list[threading.Event] = []
        self._lock = threading.Lock()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> WebSocketBridge:
        self._server = serve(self._handle, "127.0.0.1", self.port, ssl=self.tls,
                             subprotocols=[Subprotocol("mqtt")], process_request=self._check,
                             compression=None, ping_interval=None, close_timeout=1,
                             open_timeout=3)
        self.port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listening socket and every connection; wait for the handlers."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def restart(self) -> None:
        """Stop, then listen again on the same port."""
        self.stop()
        self.start()

    def drop(self) -> None:
        """Close every open WebSocket from the server side (close frame, then TCP)."""
        assert self._server is not None
        for connection in self._server.connections:
            connection.close()

    def __enter__(self) -> WebSocketBridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}"

    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        with self._lock:
            self.requests.append((request.path,
                                  request.headers.get("Sec-WebSocket-Protocol")))
        if request.path.partition("?")[0] != self.path:
            return connection.respond(404, "no MQTT here\n")
        return None

    def _handle(self, ws: ServerConnection) -> None:
        with self._lock:
            self.connections += 1
            self.subprotocols.append(ws.subprotocol)
        try:
            tcp = socket.create_connection(("127.0.0.1", self.broker_port), timeout=5)
        except OSError:
            ws.close(1011, "broker unreachable")
            return
        tcp.settimeout(None)
        pump = threading.Thread(target=self._to_client, args=(tcp, ws), daemon=True)
        pump.start()
        try:
            for message in ws:
                if isinstance(message, str):
                    break  # MQTT section 6: text frames end the connection
                tcp.sendall(message)
        except (ConnectionClosed, OSError):
            pass
        finally:
            with suppress(OSError):
                tcp.shutdown(socket.SHUT_RDWR)
            pump.join(5)
            tcp.close()
            ws.close()

    def _to_client(self, tcp: socket.socket, ws: ServerConnection) -> None:
        while True:
            try:
                data = tcp.recv(65536)
            except OSError:
                break
            if not data:
                break
            try:
                if self.ping:
                    pong = ws.ping()
                    with self._lock:
                        self.pongs.append(pong)
                ws.send([data[i:i + 1] for i in range(len(data))] if self.fragment else data)
            except ConnectionClosed:
                break
        ws.close()


@pytest.fixture
def bridge_factory() -> Iterator[Any]:
    """Start WebSocketBridges; all of them are stopped at the end, failed or not."""
    started: list[WebSocketBridge] = []

    def make(broker_port: int, **kwargs: Any) -> WebSocketBridge:
        bridge = WebSocketBridge(broker_port, **kwargs)
        started.append(bridge)
        return bridge.start()

    yield make
    for bridge in started:
        bridge.stop()


@pytest.fixture(scope="module")
def ws_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """A daemon whose [[mqtt]] brokers are reached through WebSocket bridges."""
    broker = Mosquitto(tmp_path_factory.mktemp("mqtt-ws") / "broker")
    bridges: list[WebSocketBridge] = []
    daemon = None
    try:
        broker.start()
        for path in ("/mqtt", "/custom", "/mqtt"):
            bridges.append(WebSocketBridge(broker.port, path=path))
            bridges[-1].start()
        plain, custom, refusing = bridges
        config = {"http": {"log-enabled": False}, "mqtt": [
            {"enabled": True, "name": "ws", "client-id": "kapa-ws", "url": plain.url},
            {"enabled": True, "name": "ws-custom", "client-id": "kapa-ws-custom",
             "url": f"{custom.url}/custom?client=kapa"},
            {"enabled": True, "name": "ws-missing", "client-id": "kapa-ws-missing",
             "url": f"{refusing.url}/nope"},
        ]}
        daemon = DaemonProcess(config).start()
        yield SimpleNamespace(daemon=daemon, broker=broker, plain=plain, custom=custom,
                              refusing=refusing)
    finally:
        if daemon is not None:
            daemon.close()
        for bridge in bridges:
            bridge.stop()
        broker.stop()


def test_websocket_tickscript_publishes_through_the_bridge(ws_env: SimpleNamespace) -> None:
    daemon = ws_env.daemon
    with Subscriber(ws_env.broker.port, "ws/#") as sub:
        task = define(daemon, """
stream|from().measurement('ws1')
  |alert().crit(lambda: "v" > 1).message('ws1 is {{ .Level }} v={{ index .Fields "v" }}')
    .mqtt('ws/{{ .TaskName }}/q1/{{ .Level }}').brokerName('ws').qos(1)
    .mqtt('ws/{{ .TaskName }}/q0/{{ .Level }}').brokerName('ws')
""")
        write(daemon, "ws1 v=5 1\nws1 v=0 2\n")
        got = sub.wait(4)
        time.sleep(0.3)
        assert len(sub.received()) == 4
    assert sorted((m.topic, m.payload, m.qos) for m in got) == sorted([
        (f"ws/{task}/q1/CRITICAL", b"ws1 is CRITICAL v=5", 1),
        (f"ws/{task}/q1/OK", b"ws1 is OK v=0", 1),
        (f"ws/{task}/q0/CRITICAL", b"ws1 is CRITICAL v=5", 0),
        (f"ws/{task}/q0/OK", b"ws1 is OK v=0", 0),
    ])
    assert_no_handler_failed(daemon, task, "ws1", ws_env.broker.port, "ws/#", 2)
    bridge = ws_env.plain
    # paho's default path, the MQTT subprotocol, and one session for every alert.
    assert bridge.requests == [("/mqtt", "mqtt")]
    assert bridge.subprotocols == ["mqtt"]
    assert bridge.connections == 1
    assert re.findall(r"New client connected from \S+ as (kapa-ws\S*)",
                      ws_env.broker.log()).count("kapa-ws") == 1


def test_websocket_url_path_and_query_are_used_as_given(ws_env: SimpleNamespace) -> None:
    daemon = ws_env.daemon
    with Subscriber(ws_env.broker.port, "wsc/#") as sub:
        define(daemon, """
stream|from().measurement('ws2')
  |alert().crit(lambda: "v" > 1).message('custom {{ .Level }}')
    .mqtt('wsc/{{ .Level }}').brokerName('ws-custom').qos(2)
""")
        write(daemon, "ws2 v=5 1\n")
        [message] = sub.wait(1)
    assert (message.topic, message.payload, message.qos) == ("wsc/CRITICAL",
                                                             b"custom CRITICAL", 2)
    assert ws_env.custom.requests == [("/custom?client=kapa", "mqtt")]
    assert ws_env.custom.subprotocols == ["mqtt"]
    assert ws_env.broker.connections("kapa-ws-custom") == 1


def test_websocket_upgrade_refused_is_logged_and_the_task_goes_on(
        ws_env: SimpleNamespace) -> None:
    daemon = ws_env.daemon
    with Subscriber(ws_env.broker.port, "wsm/#") as sub:
        task = define(daemon, """
stream|from().measurement('ws3')
  |alert().crit(lambda: "v" > 1).mqtt('wsm/{{ .Level }}').brokerName('ws-missing').qos(1)
  |httpOut('out')
""")
        write(daemon, "ws3 v=5 1\nws3 v=7 2\n")
        line = daemon.wait_for_log(r"alert handler failed.*broker 'ws-missing'")
        time.sleep(0.3)
        assert sub.received() == []
    # paho reports a refused upgrade without its HTTP status.
    assert "WebSocket handshake" in line and "not upgraded" in line
    assert f"127.0.0.1:{ws_env.refusing.port}" in line
    assert ("/nope", "mqtt") in ws_env.refusing.requests
    assert ws_env.refusing.connections == 0
    assert ws_env.broker.connections("kapa-ws-missing") == 0
    assert wait_for(lambda: latest_output(daemon, task) == 7.0)


async def test_websocket_reconnects_after_the_bridge_drops(
        broker_factory: Any, bridge_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mqtt.broker, "PROBE_AFTER", 0.0)
    broker = broker_factory()
    bridge = bridge_factory(broker.port)
    async with running(element("w", bridge.url, client_id="kapa-ws-re")) as service:
        await service.publish("w", "wr/1", b"one", 1, False)
        # The server closes the WebSocket (close frame, then TCP) while the session idles.
        await trio.to_thread.run_sync(bridge.drop)
        with Subscriber(broker.port, "wr/#") as sub:
            # QoS 1 finds the session gone when the PUBACK does not come: retried.
            await service.publish("w", "wr/2", b"two", 1, False)
            # A new bridge on the same port; QoS 0 notices by the ping before it.
            await trio.to_thread.run_sync(bridge.restart)
            await service.publish("w", "wr/3", b"three", 0, False)
            got = await sub.await_messages(2)
    assert [(m.topic, m.payload, m.qos) for m in got] == [("wr/2", b"two", 1),
                                                          ("wr/3", b"three", 0)]
    assert bridge.connections == 3
    assert broker.connections("kapa-ws-re") == 3


async def test_websocket_fragmented_frames_and_pings(broker_factory: Any,
                                                     bridge_factory: Any) -> None:
    broker = broker_factory()
    bridge = bridge_factory(broker.port, fragment=True, ping=True)
    with Subscriber(broker.port, "wf/#") as sub:
        async with running(element("f", f"{bridge.url}/mqtt")) as service:
            await service.publish("f", "wf/1", b"one", 1, False)
            await service.publish("f", "wf/2", b"two", 2, True)
            got = await sub.await_messages(2)
    assert [(m.topic, m.payload, m.qos) for m in got] == [("wf/1", b"one", 1),
                                                          ("wf/2", b"two", 2)]
    # CONNACK, PUBACK, PUBREC, PUBCOMP: each came after a ping the client answered.
    assert len(bridge.pongs) >= 4
    assert all(pong.wait(5) for pong in bridge.pongs)
    assert bridge.connections == 1


async def test_wss_brokers(broker_factory: Any, bridge_factory: Any, tmp_path: Path) -> None:
    tls = make_certificates(tmp_path)
    broker = broker_factory()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls["cert"], tls["key"])
    bridge = bridge_factory(broker.port, tls=context)
    plain = bridge_factory(broker.port)
    elements = (element("verified", bridge.url, ssl_ca=tls["ca"]),
                element("skip", f"{bridge.url}/mqtt", insecure_skip_verify=True),
                element("untrusted", bridge.url),
                element("no-tls", f"wss://127.0.0.1:{plain.port}", ssl_ca=tls["ca"]))
    got = await publish_past_tls_checks(broker.port, "wss", elements, no_tls="no-tls")
    assert sorted((m.topic, m.payload) for m in got) == [("wss/skip", b"two"),
                                                         ("wss/verified", b"one")]
    assert bridge.requests == [("/mqtt", "mqtt"), ("/mqtt", "mqtt")]
    assert bridge.subprotocols == ["mqtt", "mqtt"]
    assert plain.connections == 0


async def test_websocket_url_is_checked_against_the_deny_list(bridge_factory: Any) -> None:
    bridge = bridge_factory(free_port())
    denied = DenyList([ipaddress.ip_network("127.0.0.0/8")])
    service = mqtt.MQTTService((element("w", bridge.url),), RecordingLog(), denied.check_url)
    with pytest.raises(HandlerError, match=r"127\.0\.0\.1.*not allowed"):
        await service.publish("w", "d/1", b"one", 0, False)
    await service.close()
    assert bridge.requests == []
    assert denied.outgoing_refused == 1


def test_websocket_broker_addresses() -> None:
    def address(url: str) -> mqtt.BrokerAddress:
        return mqtt.broker_address(element("a", url))

    assert address("ws://h") == mqtt.BrokerAddress("h", 80, False, "/mqtt")
    assert address("wss://h") == mqtt.BrokerAddress("h", 443, True, "/mqtt")
    assert address("WS://h:9001/") == mqtt.BrokerAddress("h", 9001, False, "/")
    assert address("wss://h:8443/a b?x=1&y") == mqtt.BrokerAddress(
        "h", 8443, True, "/a%20b?x=1&y")
    assert address("tcp://h").websocket_path is None
    with pytest.raises(HandlerError, match="no host"):
        address("ws:///mqtt")

"""The kafka handler against a protocol-level Kafka broker (tests/integration/kafka_receiver).

The receiver parses ApiVersions, Metadata v1 and Produce v3 requests itself, checks every
RecordBatch's CRC-32C with its own bitwise code and records what was stored, so these
tests see exactly what a broker would.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import ssl
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs

import httpx
import pytest
import trio
from kapa_plugins.handlers import kafka
from kapa_plugins.handlers.kafka import wire

from kapa_core.logs import Logger
from kapa_core.plugin_api import Event, EventState, HandlerContext, HandlerError, Level
from kapa_core.services import DaemonFacts
from kapa_core.testing import DaemonProcess, ServedHTTP, wait_until
from tests.integration.influxd import free_port
from tests.integration.kafka_receiver import KafkaReceiver, crc32c_bitwise, parse_record_set
from tests.integration.pki import ca_and_server
from tests.integration.test_alerts import wait_for
from tests.integration.test_tasks import define, write

pytestmark = pytest.mark.integration

API = "/kapacitor/v1"
HOSTS = [f"h{i}" for i in range(6)]


def crc32_partition(key: bytes, partitions: int) -> int:
    """Kapacitor's default: the IEEE CRC-32 of the key modulo the partition count."""
    return binascii.crc32(key) % partitions




# -- units: checksums, hashes, the record batch -----------------------------------------

def test_crc32c_known_vectors() -> None:
    assert wire.crc32c(b"123456789") == 0xE3069283
    assert wire.crc32c(b"") == 0
    # RFC 3720 (iSCSI) B.4 test patterns
    assert wire.crc32c(bytes(32)) == 0x8A9136AA
    assert wire.crc32c(b"\xff" * 32) == 0x62A8AB43
    assert wire.crc32c(bytes(range(32))) == 0x46DD794E
    data = os.urandom(300)
    assert wire.crc32c(data) == crc32c_bitwise(data)
    assert wire.crc32c(data[100:], wire.crc32c(data[:100])) == wire.crc32c(data)


def test_partition_hashes_match_reference_values() -> None:
    # Kafka's own murmur2 test cases (clients UtilsTest), as signed Java ints
    for text, expected in [(b"21", -973932308), (b"foobar", -790332482),
                           (b"a-little-bit-long-string", -985981536),
                           (b"a-little-bit-longer-string", -1486304829),
                           (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
                           (b"abc", 479470107)]:
        assert wire.murmur2(text) == expected & 0xFFFFFFFF, text
    assert (wire.fnv1a(b""), wire.fnv1a(b"a"), wire.fnv1a(b"foobar")) == (
        0x811C9DC5, 0xE40C292C, 0xBF9CF968)
    assert (wire.murmur3(b""), wire.murmur3(b"hello")) == (0, 0x248BFA47)
    assert wire.murmur3(b"The quick brown fox jumps over the lazy dog") == 0x2E4FF723
    for key in (b"cpu/h0", b"x", b"serverA:cpu=cpu-total"):
        assert wire.partition_for("", key, [0, 1, 2]) == crc32_partition(key, 3)
        assert wire.partition_for("crc32c", key, [2, 0, 1]) == crc32_partition(key, 3)
        assert wire.partition_for("murmur2", key, [0, 1, 2, 3, 4]) == (
            wire.murmur2(key) & 0x7FFFFFFF) % 5
    # fnv-1a as sarama: Go's int32(hash) % n (truncated, sign of the dividend), negated
    # when negative. fnv1a(b"a") is above 2**31, so negative as an int32.
    go_remainder = int(math.fmod(0xE40C292C - (1 << 32), 7))
    assert go_remainder < 0
    assert wire.partition_for("fnv-1a", b"a", [0, 1, 2, 3, 4, 5, 6]) == -go_remainder


def test_record_batch_parses_back_with_an_independent_reader() -> None:
    messages = [wire.Message(b"id-1", b'{"a":1}\n', 1_700_000_000_000),
                wire.Message(None, b"", 1_700_000_000_005, (("h", b"v"), ("n", None))),
                wire.Message(b"k" * 200, b"v" * 5000, 1_700_000_000_002)]
    batch = wire.record_batch(messages)
    assert parse_record_set(batch) == [
        (b"id-1", b'{"a":1}\n', [], 1_700_000_000_000),
        (None, b"", [("h", b"v"), ("n", None)], 1_700_000_000_005),
        (b"k" * 200, b"v" * 5000, [], 1_700_000_000_002)]
    corrupt = bytearray(batch)
    corrupt[-1] ^= 0x01
    with pytest.raises(Exception, match="CRC-32C mismatch"):
        parse_record_set(bytes(corrupt))


@pytest.mark.parametrize(("metadata", "produce", "used"), [
    # Kapacitor 1.5.7's kafka-go: Metadata v1, Produce v7 or else v3 (checked against
    # kapacitord with a broker offering v0-v8: it used Metadata v1 and Produce v7)
    ((1, 1), (3, 3), (1, 3)),        # Kafka 0.11
    ((0, 5), (0, 5), (1, 3)),        # Kafka 1.0
    ((0, 8), (0, 8), (1, 7)),        # Kafka 2.x
    # otherwise the highest Metadata both sides know
    ((2, 7), (3, 6), (7, 3)),        # (kafka-go: the highest of v3 and v7 offered)
    ((4, 12), (3, 11), (8, 7)),      # Kafka 4: Metadata below v4 is gone
])
def test_the_client_speaks_kapacitors_versions_or_the_highest_both_know(metadata, produce,
                                                                        used) -> None:
    async def deliver(address: str) -> dict[int, wire.KafkaError]:
        client = wire.KafkaClient(wire.ClientConfig(brokers=(address,), client_id="v"))
        try:
            meta = await client.metadata("t")
            assert sorted(meta.partitions) == [0, 1, 2]
            batch = wire.record_batch([wire.Message(b"k", b"v", 1_700_000_000_000)])
            return await client.produce("t", {1: batch, 2: batch})
        finally:
            await client.aclose()

    with KafkaReceiver(metadata_versions=metadata, produce_versions=produce) as broker:
        assert trio.run(deliver, broker.address) == {}
    assert broker.failures == []
    assert [(r.partition, r.key, r.value) for r in broker.records] == [
        (1, b"k", b"v"), (2, b"k", b"v")]
    assert {(k, v) for k, v, _ in broker.requests} == {(18, 0), (3, used[0]), (0, used[1])}


def test_a_broker_without_a_common_version_is_refused_clearly() -> None:
    async def metadata(address: str) -> None:
        client = wire.KafkaClient(wire.ClientConfig(brokers=(address,)))
        try:
            await client.metadata("t")
        finally:
            await client.aclose()

    with KafkaReceiver(metadata_versions=(9, 12)) as broker, pytest.raises(
            wire.KafkaError, match=r"speaks Metadata v9-v12, none of v1-v8"):
        trio.run(metadata, broker.address)


# -- through the daemon ------------------------------------------------------------------

def kafka_config(*clusters: dict) -> dict:
    return {"kafka": list(clusters), "http": {"log-enabled": False}}


def alert_to_kafka(daemon: DaemonProcess, measurement: str, alert_id: str,
                   topics: dict[str, str]) -> str:
    """Define a task: an alert with id ``alert_id``, CRITICAL when ``measurement``'s v > 1,
    with a kafka handler for each cluster: topic of ``topics``."""
    handlers = "".join(f"\n    .kafka().cluster('{cluster}').kafkaTopic('{topic}')"
                       for cluster, topic in topics.items())
    return define(daemon, f"""
stream|from().measurement('{measurement}')
  |alert().id('{alert_id}').crit(lambda: "v" > 1){handlers}
""")


def crit_then_ok(daemon: DaemonProcess, measurement: str) -> None:
    lines = []
    for t, v in ((1, 5), (2, 6), (3, 0)):
        lines += [f"{measurement},host={h} v={v} {t}" for h in HOSTS]
    write(daemon, "\n".join(lines))


def test_alerts_reach_the_partition_their_id_hashes_to() -> None:
    with KafkaReceiver(partitions=3) as broker, DaemonProcess(kafka_config(
            {"enabled": True, "id": "c", "brokers": [broker.address]})) as daemon:
        value = "{{ index (index (index .Data.Series 0).Values 0) 1 }}"
        define(daemon, """
stream|from().measurement('cpu').groupBy('host')
  |alert().id('cpu/{{ index .Tags "host" }}').message('{{ .ID }} is {{ .Level }}')
    .crit(lambda: "v" > 1)
    .kafka().cluster('c').kafkaTopic('alerts')
    .kafka().cluster('c').kafkaTopic('templated')
      .template('{{ .ID }} went {{ .PreviousLevel }}->{{ .Level }} v=VALUE')
      .partitionHashAlgorithm('murmur2')
    .kafka().cluster('c').kafkaTopic('spread').disablePartitionById()
""".replace("VALUE", value))
        crit_then_ok(daemon, "cpu")
        total = 3 * len(HOSTS)
        assert wait_for(lambda: all(len(broker.topic_records(t)) >= total
                                    for t in ("alerts", "templated", "spread")), 20)
    assert broker.failures == []

    records = broker.topic_records("alerts")
    assert len(records) == total
    levels: dict[str, list[str]] = {}
    for r in records:
        assert r.key is not None and r.value is not None
        alert = json.loads(r.value)
        key = r.key.decode()
        assert alert["id"] == key
        assert alert["message"] == f"{key} is {alert['level']}"
        assert r.value.endswith(b"}\n")  # Go's json.Encoder ends each value with a newline
        assert r.headers == []
        levels.setdefault(key, []).append(alert["level"])
    assert levels == {f"cpu/{h}": ["CRITICAL", "CRITICAL", "OK"] for h in HOSTS}
    # Kapacitor 1.5.7 (kafka-go's LeastBytes): each message goes to the partition that
    # has had the fewest bytes, so no partition is ahead by more than one message.
    sent = [sum(len(r.key or b"") + len(r.value or b"") for r in records if r.partition == p)
            for p in range(3)]
    assert max(sent) - min(sent) <= max(len(r.key or b"") + len(r.value or b"")
                                        for r in records), sent
    assert len({r.partition for r in records}) == 3

    templated = broker.topic_records("templated")
    by_key: dict[bytes, list[str]] = {}
    for r in templated:
        assert r.key is not None and r.value is not None
        assert r.partition == (wire.murmur2(r.key) & 0x7FFFFFFF) % 3
        by_key.setdefault(r.key, []).append(r.value.decode())
    assert by_key[b"cpu/h3"] == ["cpu/h3 went OK->CRITICAL v=5",
                                 "cpu/h3 went CRITICAL->CRITICAL v=6",
                                 "cpu/h3 went CRITICAL->OK v=0"]

    spread = broker.topic_records("spread")
    counts = [sum(1 for r in spread if r.partition == p) for p in range(3)]
    assert counts == [total // 3] * 3  # taken in turn, not by ID

    produce = broker.produce_requests
    # acks=-1 and the timeout less kafka-go's one-second round trip, as Kapacitor 1.5.7
    assert produce and all(p["acks"] == -1 and p["timeout_ms"] == 9_000 for p in produce)
    assert all(p["transactional_id"] is None for p in produce)
    kinds = {(key, version) for key, version, _ in broker.requests}
    assert kinds == {(18, 0), (3, 1), (0, 3)}
    # kafka-go's client ID, as Kapacitor 1.5.7 sends it (checked against kapacitord)
    assert {client for _, _, client in broker.requests} == {kafka.CLIENT_ID}
    assert kafka.CLIENT_ID.startswith("kapacitord@")


def test_topic_handlers_of_kind_kafka_share_a_batching_writer() -> None:
    # Three handlers of one topic write to one Kafka topic: while the (slow) broker is
    # busy with one Produce request, their messages queue and go together, 2 at most.
    with KafkaReceiver(partitions=5, produce_delay=0.05) as broker, DaemonProcess(
            kafka_config({"enabled": True, "id": "main", "brokers": [broker.address],
                          "batch-size": 2})) as daemon:
        handlers = f"{daemon.url}{API}/alerts/topics/ops/handlers"
        bad = httpx.post(handlers, json={"id": "k", "kind": "kafka", "options": {
            "cluster": "main", "topic": "t", "partitionAlgorithm": "sha1"}})
        assert bad.status_code == 400 and "invalid partition algorithm" in bad.text
        for handler_id in ("k1", "k2", "k3"):
            created = httpx.post(handlers, json={"id": handler_id, "kind": "kafka",
                                                 "options": {
                "cluster": "main", "topic": "from-topic", "template": "{{ .Message }}!",
                "partitionAlgorithm": "fnv-1a"}})
            assert created.status_code == 200, created.text
            assert created.json()["options"]["partitionAlgorithm"] == "fnv-1a"
        define(daemon, """
stream|from().measurement('mem').groupBy('host')
  |alert().id('mem:{{ index .Tags "host" }}').message('{{ .ID }} {{ .Level }}')
    .crit(lambda: "v" > 1).topic('ops')
""")
        crit_then_ok(daemon, "mem")
        total = 3 * 3 * len(HOSTS)
        assert wait_for(lambda: len(broker.topic_records("from-topic")) >= total, 20)
    assert broker.failures == []
    records = broker.topic_records("from-topic")
    assert len(records) == total
    for r in records:
        assert r.key is not None and r.value is not None
        assert r.value.decode() in (f"{r.key.decode()} CRITICAL!", f"{r.key.decode()} OK!")
        assert r.partition == wire.partition_for("fnv-1a", r.key, range(5))
    sizes = [p["records"] for p in broker.produce_requests]
    assert max(sizes) == 2  # batched, never past batch-size
    assert sum(sizes) == total


def test_broker_errors_and_a_dead_broker_are_logged_and_the_task_goes_on() -> None:
    dead = f"127.0.0.1:{free_port()}"
    with KafkaReceiver(produce_error=87) as broker, DaemonProcess(kafka_config(
            {"enabled": True, "id": "refusing", "brokers": [broker.address]},
            {"enabled": True, "id": "dead", "brokers": [dead], "timeout": "2s"},
            {"enabled": False, "id": "off", "brokers": [broker.address]})) as daemon:
        task_id = define(daemon, """
stream|from().measurement('f')
  |alert().crit(lambda: "v" > 1)
    .kafka().cluster('refusing').kafkaTopic('t')
    .kafka().cluster('dead').kafkaTopic('t')
    .kafka().cluster('off').kafkaTopic('t')
  |httpOut('out')
""")
        write(daemon, "f v=5 1\nf v=0 2\nf v=9 3\n")
        daemon.wait_for_log(r"alert handler failed.*INVALID_RECORD \(87\)")
        daemon.wait_for_log(r"alert handler failed.*cannot connect to broker " + dead)
        daemon.wait_for_log(r"alert handler failed.*cluster 'off' is not enabled")
        wait_until(lambda: len(broker.produce_requests) >= 3, what="3 Produce requests")
        wait_until(lambda: httpx.get(f"{daemon.url}{API}/tasks/{task_id}/out").json(),
                   what="the last point on httpOut",
                   until=lambda out: out["series"][0]["values"][0][1] == 9.0)
        # every alert, not only the first
        daemon.wait_for_log(r"alert handler failed.*INVALID_RECORD", count=3)
    assert broker.records == []
    assert broker.failures == []


async def test_while_the_service_is_reopened_an_alert_fails_clearly() -> None:
    """A HandlerContext without a running [[kafka]] service (it is being re-opened)."""
    context = HandlerContext("kafka", (kafka.KafkaConfig(enabled=True),), None,
                             Logger("kafka"), DaemonFacts(), SimpleNamespace())
    handler = kafka.KafkaHandler(kafka.KafkaOptions(topic="alerts"), context)
    event = Event(topic="t", state=EventState(id="cpu", message="hot", details="", time=1,
                                              duration=0, level=Level.CRITICAL))
    with pytest.raises(HandlerError, match="^kafka: the kafka service is not running$"):
        await handler.handle(event)


def test_an_unknown_cluster_refuses_the_task() -> None:
    # As Kapacitor: a cluster no [[kafka]] element names refuses the task's start; a
    # disabled element is a cluster (its sends fail, as the test above shows).
    with DaemonProcess(kafka_config(
            {"enabled": False, "id": "off", "brokers": ["127.0.0.1:9"]})) as daemon:
        for cluster, status in (("off", 200), ("missing", 400)):
            response = httpx.post(daemon.url + f"{API}/tasks", json={
                "id": f"k{cluster}", "dbrps": [{"db": "db", "rp": "rp"}],
                "status": "enabled", "script": "stream|from()|alert()"
                f".crit(lambda: TRUE).kafka().cluster('{cluster}').kafkaTopic('t')"})
            assert response.status_code == status, response.text
        assert response.json()["error"] == \
            'failed to create kafka handler: unknown cluster "missing"'


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A CA and a certificate for 127.0.0.1 signed by it."""
    return ca_and_server(tmp_path_factory.mktemp("kafka-pki"))


def test_tls_and_sasl(tls_files) -> None:
    ca, cert, key = tls_files
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    common = {"enabled": True, "use-ssl": True, "ssl-ca": str(ca)}
    with KafkaReceiver(sasl=("kapa", "s3cret"), ssl_context=server_tls) as broker:
        config = kafka_config(
            {**common, "id": "v1", "brokers": [broker.address], "sasl-username": "kapa",
             "sasl-password": "s3cret"},
            {**common, "id": "v0", "brokers": [broker.address], "sasl-username": "kapa",
             "sasl-password": "s3cret", "sasl-version": "0", "sasl-mechanism": "PLAIN"},
            {**common, "id": "sha256", "brokers": [broker.address], "sasl-username": "kapa",
             "sasl-password": "s3cret", "sasl-mechanism": "SCRAM-SHA-256"},
            {**common, "id": "sha512", "brokers": [broker.address], "sasl-username": "kapa",
             "sasl-password": "s3cret", "sasl-mechanism": "SCRAM-SHA-512"},
            {**common, "id": "oauth", "brokers": [broker.address],
             "sasl-mechanism": "OAUTHBEARER", "sasl-access-token": "s3cret",
             "sasl_extensions": {"traceid": "x1"}},
            {**common, "id": "wrong", "brokers": [broker.address], "sasl-username": "kapa",
             "sasl-password": "nope"},
            {**common, "id": "wrong-scram", "brokers": [broker.address],
             "sasl-username": "kapa", "sasl-password": "nope",
             "sasl-mechanism": "SCRAM-SHA-512"},
            {"enabled": True, "id": "untrusted", "use-ssl": True,
             "brokers": [broker.address], "sasl-username": "kapa", "sasl-password": "s3cret"})
        with DaemonProcess(config) as daemon:
            alert_to_kafka(daemon, "s", "secure", {
                "v1": "one", "v0": "zero", "sha256": "sha256", "sha512": "sha512",
                "oauth": "oauth", "wrong": "never", "wrong-scram": "never",
                "untrusted": "never"})
            write(daemon, "s v=5 1\n")
            good = ("one", "zero", "sha256", "sha512", "oauth")
            assert wait_for(lambda: all(broker.topic_records(t) for t in good), 20)
            daemon.wait_for_log(r"cluster 'wrong',.*SASL_AUTHENTICATION_FAILED \(58\)")
            daemon.wait_for_log(r"cluster 'wrong-scram',.*SASL_AUTHENTICATION_FAILED \(58\)")
            daemon.wait_for_log(r"alert handler failed.*TLS handshake with broker .* failed")
    for topic in good:
        (record,) = broker.topic_records(topic)
        assert record.key == b"secure"
        assert json.loads(record.value or b"")["level"] == "CRITICAL"
        assert record.partition == 0  # a writer's first message: the first partition
    assert broker.topic_records("never") == []
    assert broker.authenticated.count("kapa") >= 4
    assert broker.oauth_extensions and all(e == {"traceid": "x1"}
                                           for e in broker.oauth_extensions)
    handshakes = {version for key, version, _ in broker.requests if key == 17}
    assert handshakes == {0, 1}
    assert broker.failures == []


def test_a_config_override_moves_the_cluster_to_new_brokers() -> None:
    with KafkaReceiver() as first, KafkaReceiver() as second, DaemonProcess(kafka_config(
            {"enabled": True, "id": "c", "brokers": [first.address]})) as daemon:
        alert_to_kafka(daemon, "m", "moving", {"c": "t"})
        write(daemon, "m v=5 1\n")
        assert wait_for(lambda: first.topic_records("t"), 20)
        response = httpx.post(f"{daemon.url}{API}/config/kafka/c",
                              json={"set": {"brokers": [second.address]}})
        assert response.status_code == 204, response.text
        write(daemon, "m v=6 2\n")
        assert wait_for(lambda: second.topic_records("t"), 20)
        response = httpx.post(f"{daemon.url}{API}/config/kafka/c",
                              json={"set": {"enabled": False}})
        assert response.status_code == 204, response.text
        write(daemon, "m v=7 3\n")
        daemon.wait_for_log(r"alert handler failed.*cluster 'c' is not enabled")
    assert [json.loads(r.value or b"")["level"] for r in first.topic_records("t")] == [
        "CRITICAL"]
    assert len(second.topic_records("t")) == 1


class TokenEndpoint(ServedHTTP):
    """A local OAuth 2.0 token endpoint (RFC 6749 4.4) at ``url``: checks the client's
    credentials as the client-credentials grant sends them, and records every request."""

    def __init__(self, *, accept_basic: bool = True, expires_in: int = 3600) -> None:
        self.requests: list[dict] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                auth = self.headers.get("Authorization", "")
                endpoint.requests.append({"path": self.path, "form": form, "auth": auth,
                                          "type": self.headers.get("Content-Type", "")})
                basic = "Basic " + base64.b64encode(b"kapa-client:s%2Fecret").decode()
                ok = form.get("grant_type") == "client_credentials" and (
                    (accept_basic and auth == basic) or
                    (form.get("client_id"), form.get("client_secret")) ==
                    ("kapa-client", "s/ecret"))
                status, body = (200, {"access_token": f"tok-{len(endpoint.requests)}",
                                      "token_type": "Bearer", "expires_in": expires_in}) \
                    if ok else (401, {"error": "invalid_client"})
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(Handler)
        self.url += "/oauth/token"


def test_oauthbearer_token_fetched_with_client_credentials() -> None:
    """Custom endpoint (basic auth, tried first), Auth0 (credentials and audience in the
    form); the fetched token is what the broker receives; a refused client is logged."""
    with TokenEndpoint() as custom, TokenEndpoint(accept_basic=False) as auth0, \
            TokenEndpoint() as other:
        with KafkaReceiver(sasl=("unused", "tok-1")) as broker:
            oauth = {"enabled": True, "brokers": [broker.address],
                     "sasl-mechanism": "OAUTHBEARER", "sasl-oauth-client-id": "kapa-client",
                     "sasl-oauth-client-secret": "s/ecret"}
            config = kafka_config(
                {**oauth, "id": "custom", "sasl-oauth-token-url": custom.url,
                 "sasl-oauth-scopes": ["kafka", "write"],
                 "sasl-oauth-parameters": {"resource": "r1"}},
                {**oauth, "id": "auth0", "sasl-oauth-service": "auth0",
                 "sasl-oauth-token-url": auth0.url,
                 "sasl-oauth-parameters": {"audience": "https://kafka"}},
                {**oauth, "id": "refused", "sasl-oauth-token-url": other.url,
                 "sasl-oauth-client-secret": "wrong"})
            with DaemonProcess(config) as daemon:
                alert_to_kafka(daemon, "o", "oauth",
                               {"custom": "custom", "auth0": "auth0", "refused": "never"})
                write(daemon, "o v=5 1\n")
                assert wait_for(lambda: broker.topic_records("custom")
                                and broker.topic_records("auth0"), 20)
                line = daemon.wait_for_log(r"alert handler failed.*cluster 'refused'")
                assert "HTTP 401: invalid_client" in line
                assert "wrong" not in daemon.log() and "s/ecret" not in daemon.log()
        assert broker.topic_records("never") == []
        # The custom endpoint got basic auth at once; Auth0 the credentials in the form.
        first = custom.requests[0]
        assert first["form"] == {"grant_type": "client_credentials", "scope": "kafka write",
                                 "resource": "r1"}
        assert first["type"] == "application/x-www-form-urlencoded"
        assert len(custom.requests) == 1  # the token is reused for later connections
        sent = auth0.requests
        assert len(sent) == 1 and sent[0]["form"] == {"grant_type": "client_credentials",
                                            "audience": "https://kafka",
                                            "client_id": "kapa-client",
                                            "client_secret": "s/ecret"}
        assert sent[0]["auth"] == ""


@pytest.mark.parametrize(("extra", "message"), [
    ({}, "sasl-oauth-client-id and sasl-oauth-client-secret are required"),
    ({"sasl-oauth-client-id": "i", "sasl-oauth-client-secret": "s"},
     "required for the custom service"),
    ({"sasl-oauth-client-id": "i", "sasl-oauth-client-secret": "s",
      "sasl-oauth-service": "auth0", "sasl-oauth-token-url": "http://x/t"},
     "audience parameter is required"),
    ({"sasl-oauth-client-id": "i", "sasl-oauth-client-secret": "s",
      "sasl-oauth-service": "azuread"}, "sasl-oauth-tenant-id"),
    ({"sasl-oauth-client-id": "i", "sasl-oauth-client-secret": "s",
      "sasl-oauth-service": "okta", "sasl-oauth-token-url": "http://x/t"}, "not supported"),
    ({"sasl-access-token": "t", "sasl-oauth-token-url": "http://x/t"}, "cannot be set with"),
], ids=["no-client", "no-url", "auth0-audience", "azure-tenant", "unknown", "both"])
def test_oauthbearer_settings_are_checked_at_start(extra: dict, message: str) -> None:
    config = kafka_config({"enabled": True, "brokers": ["127.0.0.1:1"],
                           "sasl-mechanism": "OAUTHBEARER", **extra})
    daemon = DaemonProcess(config)
    try:
        with pytest.raises(RuntimeError, match=message):
            daemon.start()
    finally:
        daemon.close()

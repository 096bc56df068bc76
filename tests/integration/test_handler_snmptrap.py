"""The snmptrap handler: BER encodings on known bytes, and traps through the real daemon
caught by a local UDP receiver that decodes them with its own small BER decoder."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import trio
from kapa_plugins.handlers import snmp_ber as ber
from kapa_plugins.handlers import snmptrap

from kapa_core.alert.event import Event, EventState
from kapa_core.alert.levels import Level
from kapa_core.errors import ConfigError, HandlerError
from kapa_core.testing import DaemonProcess
from tests.integration.test_tasks import define, write

pytestmark = pytest.mark.integration

API = "/kapacitor/v1"


# -- an independent BER decoder ---------------------------------------------------------------
@dataclass
class Element:
    tag: int
    raw: bytes  # the contents octets

    def children(self) -> list[Element]:
        out, pos = [], 0
        while pos < len(self.raw):
            child, pos = read_element(self.raw, pos)
            out.append(child)
        return out


def read_element(data: bytes, pos: int) -> tuple[Element, int]:
    """One TLV at ``pos``: (element, position after it); checks every length."""
    tag = data[pos]
    first = data[pos + 1]
    pos += 2
    if first & 0x80:
        count = first & 0x7F
        assert 1 <= count <= 4, f"unsupported length-of-length {count}"
        size = int.from_bytes(data[pos:pos + count], "big")
        assert size >= 128, "long form used for a short length"
        pos += count
    else:
        size = first
    assert pos + size <= len(data), "element runs past the end of the datagram"
    return Element(tag, data[pos:pos + size]), pos + size


def decode_oid(raw: bytes) -> str:
    subids, current = [], 0
    for octet in raw:
        current = (current << 7) | (octet & 0x7F)
        if not octet & 0x80:
            subids.append(current)
            current = 0
    assert current == 0, "OID ends inside a sub-identifier"
    first = subids[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(n) for n in head + subids[1:])


def decode_value(element: Element) -> Any:
    tag, raw = element.tag, element.raw
    if tag == 0x02:
        return int.from_bytes(raw, "big", signed=True)
    if tag in (0x41, 0x42, 0x43, 0x46):
        return int.from_bytes(raw, "big", signed=False)
    if tag == 0x04:
        return raw
    if tag == 0x05:
        assert raw == b""
        return None
    if tag == 0x06:
        return decode_oid(raw)
    if tag == 0x40:
        assert len(raw) == 4
        return ".".join(str(b) for b in raw)
    raise AssertionError(f"unexpected tag {tag:#x}")


@dataclass
class Trap:
    version: int
    community: bytes
    pdu_tag: int
    request_id: int
    error_status: int
    error_index: int
    varbinds: list[tuple[str, int, Any]]  # (oid, tag, decoded value)


def decode_trap(datagram: bytes) -> Trap:
    message, end = read_element(datagram, 0)
    assert end == len(datagram) and message.tag == 0x30
    version, community, pdu = message.children()
    assert version.tag == 0x02 and community.tag == 0x04
    request_id, status, index, bindings = pdu.children()
    assert bindings.tag == 0x30
    varbinds = []
    for binding in bindings.children():
        assert binding.tag == 0x30
        name, value = binding.children()
        assert name.tag == 0x06
        varbinds.append((decode_oid(name.raw), value.tag, decode_value(value)))
    return Trap(decode_value(version), community.raw, pdu.tag, decode_value(request_id),
                decode_value(status), decode_value(index), varbinds)


# -- encoder on known byte strings ------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [
    (0, "020100"), (127, "02017f"), (128, "02020080"), (256, "02020100"),
    (-1, "0201ff"), (-128, "020180"), (-129, "0202ff7f"),
    (2**31 - 1, "02047fffffff"), (-(2**31), "020480000000"),
])
def test_integer_twos_complement(value: int, expected: str) -> None:
    assert ber.integer(value).hex() == expected


def test_oid_base128_arcs() -> None:
    assert ber.oid("1.3.6.1.4.1.2680.1.2.7.3.2.0").hex() == \
        "060d2b060104019478010207030200"
    assert ber.oid("2.999.3").hex() == "0603883703"
    assert ber.oid(".1.3.6.1").hex() == "06032b0601"
    assert ber.oid("1.3.4294967295").hex() == "06062b8fffffff7f"


@pytest.mark.parametrize("text", ["", "1", "1.3.", "1..3", "a.b", "3.1", "1.40",
                                  "1.3.4294967296", "1.3.-1", " 1.3"])
def test_bad_oids_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid OID"):
        ber.oid(text)


def test_lengths_short_and_long_form() -> None:
    assert ber.length(0).hex() == "00"
    assert ber.length(127).hex() == "7f"
    assert ber.length(128).hex() == "8180"
    assert ber.length(255).hex() == "81ff"
    assert ber.length(256).hex() == "820100"
    encoded = ber.octet_string(b"z" * 300)
    assert encoded[:4].hex() == "0482012c" and len(encoded) == 304


def test_application_types() -> None:
    assert ber.gauge32(2**32 - 1).hex() == "420500ffffffff"
    assert ber.counter32(128).hex() == "41020080"
    assert ber.timeticks(1000).hex() == "430203e8"
    assert ber.counter64(2**64 - 1).hex() == "460900" + "ff" * 8
    assert ber.ip_address("192.168.1.1").hex() == "4004c0a80101"
    assert ber.null().hex() == "0500"
    with pytest.raises(ValueError, match="Gauge32 must be between 0 and 4294967295"):
        ber.gauge32(2**32)
    with pytest.raises(ValueError, match="TimeTicks must be between"):
        ber.timeticks(-1)
    with pytest.raises(ValueError, match="not an IPv4 address"):
        ber.ip_address("300.1.1.1")


def test_whole_trap_message() -> None:
    message = ber.trap_v2c("public", 1, [
        ber.varbind(ber.SYS_UPTIME_0, ber.timeticks(1000)),
        ber.varbind(ber.SNMP_TRAP_OID_0, ber.oid("1.3.6.1.4.1.1"))])
    assert message.hex() == (
        "303e" "020101" "04067075626c6963" "a731" "020101" "020100" "020100"
        "3026" "300e" "06082b06010201010300" "430203e8"
        "3014" "060a2b060106030101040100" "06062b0601040101")


# -- handler options and value conversion, in process -----------------------------------------
def options(trap_oid: str = "1.3.6.1.4.1.1", *data: tuple[str, str, str]
            ) -> snmptrap.SNMPTrapOptions:
    built = snmptrap.SNMPTrapOptions(
        trap_oid=trap_oid, data_list=tuple(snmptrap.SNMPData(*d) for d in data))
    built.validate()
    return built


def event(message: str = "hello") -> Event:
    return Event("t", EventState("cpu:nil", message, "", 0, 0, Level.CRITICAL),
                 fields={"v": 5})


@pytest.mark.parametrize(("data", "path"), [
    (("1.3.6.1.2", "z", "x"), "data-list[0].type"),
    (("1.3.6.1.2", "u", "1"), "data-list[0].type"),  # Kapacitor takes c, i, n, s, t only
    (("1.3.6.1.2", "s", "{{ .Message "), "data-list[0].value"),
])
def test_bad_data_bindings_name_the_option(data, path) -> None:
    with pytest.raises(ConfigError) as caught:
        options("1.3.6.1.4.1.1", data)
    assert caught.value.path == path


def test_missing_trap_oid_names_the_option() -> None:
    with pytest.raises(ConfigError) as caught:
        options("")
    assert caught.value.path == "trap-oid"


def test_unusable_oids_fail_the_event_not_the_definition() -> None:
    # As in Kapacitor 1.5.7 (checked): the OIDs are read when a trap is sent.
    for trap, data in (("1.3.6.x", "1.3.6.1.9"), ("1.3.6.1", "3.1"), ("1.3.6.1", "1.40.2")):
        handler = snmptrap.SNMPTrapHandler(options(trap, (data, "s", "x")),
                                           SimpleNamespace(config=None))
        with pytest.raises(HandlerError, match=r"snmptrap: (trap|data) invalid OID"):
            handler.message(event(), "c")


@pytest.mark.parametrize(("letter", "value"), [
    # (Kapacitor 1.5.7 wraps i 2147483648, c -1 and t 4294967296 around, as kapa-core
    # does now; only what Go's ParseInt refuses fails: checked against kapacitord)
    ("i", "9223372036854775808"), ("i", "5.5"), ("i", " 5"), ("c", "1e3"), ("t", "٣"),
])
def test_unusable_values_fail_the_event(letter: str, value: str) -> None:
    handler = snmptrap.SNMPTrapHandler(options("1.3.6.1.4.1.1", ("1.3.6.1.9", letter, value)),
                                       SimpleNamespace(config=None))
    with pytest.raises(HandlerError, match=r"snmptrap: data 1\.3\.6\.1\.9"):
        handler.message(event(), "c")


def test_retries_repeat_only_failed_sends(monkeypatch) -> None:
    calls: list[bytes] = []
    failing = {"first": 0}  # how many of the next sends fail

    async def flaky(host: str, port: int, datagram: bytes) -> None:
        calls.append(datagram)
        if len(calls) <= failing["first"]:
            raise OSError("network is unreachable")

    monkeypatch.setattr(snmptrap, "_send", flaky)
    config = snmptrap.SNMPTrapConfig(enabled=True, addr="127.0.0.1:9", retries=2)
    handler = snmptrap.SNMPTrapHandler(options(), SimpleNamespace(config=config))
    for failures, attempts in ((0, 1), (2, 3)):
        calls.clear()
        failing["first"] = failures
        trio.run(handler.handle, event())
        assert len(calls) == attempts
    calls.clear()
    failing["first"] = 3
    with pytest.raises(HandlerError, match="network is unreachable"):
        trio.run(handler.handle, event())
    assert len(calls) == 3


# -- through the real daemon --------------------------------------------------------------------
@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock
    finally:
        sock.close()


def receive(sock: socket.socket, timeout: float = 10.0) -> Trap:
    sock.settimeout(timeout)
    datagram, _ = sock.recvfrom(65535)
    return decode_trap(datagram)


def nothing_received(sock: socket.socket, timeout: float = 0.5) -> bool:
    sock.settimeout(timeout)
    try:
        sock.recvfrom(65535)
    except TimeoutError:
        return True
    return False


def config_for(sock: socket.socket, enabled: bool = True) -> dict[str, Any]:
    return {"snmptrap": {"enabled": enabled, "community": "public",
                         "addr": f"127.0.0.1:{sock.getsockname()[1]}"},
            "http": {"log-enabled": False}}


def assert_header(trap: Trap, trap_oid: str) -> None:
    assert trap.version == 1  # SNMPv2c
    assert trap.community == b"public"
    assert trap.pdu_tag == 0xA7
    assert 0 <= trap.request_id < 2**31
    assert (trap.error_status, trap.error_index) == (0, 0)
    (uptime_oid, uptime_tag, uptime), (trap_oid_oid, trap_oid_tag, value) = trap.varbinds[:2]
    assert (uptime_oid, uptime_tag) == ("1.3.6.1.2.1.1.3.0", 0x43)
    assert 0 <= uptime < 2**32
    assert (trap_oid_oid, trap_oid_tag, value) == ("1.3.6.1.6.3.1.1.4.1.0", 0x06, trap_oid)


def test_trap_from_a_task_with_every_type(receiver) -> None:
    with DaemonProcess(config_for(receiver)) as daemon:
        define(daemon, """
stream|from().measurement('cpu')
  |alert().crit(lambda: "v" > 1).id('cpu-alert').message('{{ .ID }} is {{ .Level }}')
    .snmpTrap('1.3.6.1.4.1.1')
      .data('1.3.6.1.4.1.1.1', 's', '{{ .Level }}')
      .data('1.3.6.1.4.1.1.2', 's', '{{ .Message }}')
      .data('1.3.6.1.4.1.1.3', 'i', '-129')
      .data('1.3.6.1.4.1.1.4', 'c', '{{ index .Fields "v" }}')
      .data('1.3.6.1.4.1.1.5', 't', '4200')
      .data('1.3.6.1.4.1.1.11', 'n', '')
""")
        write(daemon, "cpu v=7i 1\n")
        trap = receive(receiver)
    assert_header(trap, "1.3.6.1.4.1.1")
    assert trap.varbinds[2:] == [
        ("1.3.6.1.4.1.1.1", 0x04, b"CRITICAL"),
        ("1.3.6.1.4.1.1.2", 0x04, b"cpu-alert is CRITICAL"),
        ("1.3.6.1.4.1.1.3", 0x02, -129),
        ("1.3.6.1.4.1.1.4", 0x46, 7),
        ("1.3.6.1.4.1.1.5", 0x43, 4200),
        ("1.3.6.1.4.1.1.11", 0x05, None),
    ]


def test_topic_handler_kind(receiver) -> None:
    with DaemonProcess(config_for(receiver)) as daemon:
        base = f"{daemon.url}{API}/alerts/topics/snmp/handlers"
        spec = {"id": "trap", "kind": "snmptrap", "options": {
            "trap-oid": "1.3.6.1.4.1.99",
            "data-list": [{"oid": "1.3.6.1.4.1.99.1", "type": "s", "value": "{{ .ID }}"},
                          {"oid": "1.3.6.1.4.1.99.2", "type": "i",
                           "value": "{{ if eq .Level \"CRITICAL\" }}2{{ else }}0{{ end }}"}]}}
        created = httpx.post(base, json=spec)
        assert created.status_code == 200, created.text
        shown = httpx.get(f"{base}/trap").json()
        assert shown["options"]["data-list"][0] == spec["options"]["data-list"][0]
        define(daemon, """
stream|from().measurement('disk').groupBy('host')
  |alert().crit(lambda: "used" > 90).topic('snmp')
""")
        write(daemon, "disk,host=a used=95 1\n")
        trap = receive(receiver)
    assert_header(trap, "1.3.6.1.4.1.99")
    assert trap.varbinds[2:] == [("1.3.6.1.4.1.99.1", 0x04, b"disk:host=a"),
                                 ("1.3.6.1.4.1.99.2", 0x02, 2)]


def test_bad_definitions_are_refused(receiver) -> None:
    with DaemonProcess(config_for(receiver)) as daemon:
        body = {"id": "bad", "type": "stream", "dbrps": [{"db": "db", "rp": "rp"}],
                "status": "enabled"}
        script = """
stream|from().measurement('cpu')|alert().crit(lambda: "v" > 1)
  .snmpTrap('{trap}').data('1.3.6.1.4.1.1.1', '{letter}', 'x')
"""
        bad = httpx.post(f"{daemon.url}{API}/tasks", json={
            **body, "script": script.format(trap="1.3.6.1.4.1.1", letter="z")})
        assert bad.status_code == 400
        assert "data-list[0].type" in bad.text
        assert 'unsupported data type \\"z\\" for data entry \\"1.3.6.1.4.1.1.1\\"' in bad.text
        # An unusable trap OID is read only when a trap is sent (Kapacitor 1.5.7 too).
        accepted = httpx.post(f"{daemon.url}{API}/tasks", json={
            **body, "script": script.format(trap="1.3.six", letter="s")})
        assert accepted.status_code == 200, accepted.text
        bad = httpx.post(f"{daemon.url}{API}/alerts/topics/snmp/handlers", json={
            "id": "x", "kind": "snmptrap", "options": {
                "trap-oid": "1.3.6.1", "data-list": [{"oid": "1.3.6.1.1", "type": "q"}]}})
        assert bad.status_code == 400
        assert "data-list[0].type" in bad.text and 'unsupported data type \\"q\\"' in bad.text


def test_disabled_section_fails_the_event(receiver) -> None:
    with DaemonProcess(config_for(receiver, enabled=False)) as daemon:
        define(daemon, """
stream|from().measurement('cpu')|alert().crit(lambda: "v" > 1)
  .snmpTrap('1.3.6.1.4.1.1').data('1.3.6.1.4.1.1.1', 's', 'x')
""")
        write(daemon, "cpu v=5 1\n")
        daemon.wait_for_log(r"alert handler failed.*\[snmptrap\] section is not enabled")
    assert nothing_received(receiver)

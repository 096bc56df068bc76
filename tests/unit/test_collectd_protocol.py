"""collectd's binary protocol read into points, from packets built byte by byte here
after the protocol description (collectd's network.c and its wiki page "Binary
protocol"), not with the module's own encoders; types.db files, auth files and
signatures; and the listener's batching over a real socket."""

from __future__ import annotations

import hashlib
import hmac
import math
import socket
import struct
from pathlib import Path

import pytest
import trio
from kapa_plugins.inputs.collectd import CollectdConfig, CollectdListener
from kapa_plugins.inputs.collectd_protocol import (
    Parser,
    TypesDBError,
    hr_to_ns,
    load_types_db,
    parse_types_db,
    read_auth_file,
)

from kapa_core.inputs import InputContext
from kapa_core.logs import Logger
from kapa_core.models.duration import Duration
from kapa_core.models.point import Point

TYPES = parse_types_db("""
# comment
load        shortterm:GAUGE:0:5000, midterm:GAUGE:0:5000, longterm:GAUGE:0:5000
memory      value:GAUGE:0:281474976710656
if_octets\trx:DERIVE:0:U,tx:DERIVE:0:U
kinds       c:COUNTER:0:U g:gauge:U:U d:Derive:U:U a:ABSOLUTE:0:U
""")


def part(kind: int, body: bytes) -> bytes:
    return struct.pack(">HH", kind, 4 + len(body)) + body


def string(kind: int, text: str) -> bytes:
    return part(kind, text.encode() + b"\x00")


def number(kind: int, value: int) -> bytes:
    return part(kind, struct.pack(">Q", value))


HOST, TIME, PLUGIN, PLUGIN_INSTANCE, TYPE, TYPE_INSTANCE, VALUES, INTERVAL, TIME_HR, \
    INTERVAL_HR = range(10)
MESSAGE, SEVERITY, SIGNATURE, ENCRYPTION = 0x100, 0x101, 0x200, 0x210


def values(*items: tuple[int, bytes]) -> bytes:
    """A values part: (kind, 8 encoded bytes) pairs."""
    return part(VALUES, struct.pack(">H", len(items)) + bytes(k for k, _ in items)
                + b"".join(v for _, v in items))


def gauge(x: float) -> tuple[int, bytes]:
    return 1, struct.pack("<d", x)  # gauges are little-endian doubles


def counter(x: int) -> tuple[int, bytes]:
    return 0, struct.pack(">Q", x)


def derive(x: int) -> tuple[int, bytes]:
    return 2, struct.pack(">q", x)


def absolute(x: int) -> tuple[int, bytes]:
    return 3, struct.pack(">Q", x)


T0 = 1700000000 * 10**9


def test_every_part_kind_and_two_value_sets() -> None:
    packet = b"".join([
        string(HOST, "web1"),
        number(TIME_HR, (1700000000 << 30) | (1 << 29)),  # .5 s
        number(INTERVAL_HR, 10 << 30),
        string(PLUGIN, "load"),
        string(PLUGIN_INSTANCE, ""),
        string(TYPE, "load"),
        string(TYPE_INSTANCE, ""),
        values(gauge(0.5), gauge(0.25), gauge(0.125)),
        string(MESSAGE, "notification text"),
        number(SEVERITY, 2),
        part(0x0042, b"\x01\x02\x03"),  # unknown part type: skipped
        string(PLUGIN, "interface"),
        string(PLUGIN_INSTANCE, "eth0"),
        string(TYPE, "if_octets"),
        string(TYPE_INSTANCE, "x"),
        values(derive(-5), derive(7)),
    ])
    parsed = Parser(TYPES).parse(packet)
    assert (parsed.error, parsed.invalid) == ("", 0)
    web = {"host": "web1", "type": "load"}
    eth = {"host": "web1", "instance": "eth0", "type": "if_octets", "type_instance": "x"}
    t = T0 + 500_000_000
    assert parsed.points == [
        Point("load_shortterm", web, {"value": 0.5}, t),
        Point("load_midterm", web, {"value": 0.25}, t),
        Point("load_longterm", web, {"value": 0.125}, t),
        Point("interface_rx", eth, {"value": -5.0}, t),
        Point("interface_tx", eth, {"value": 7.0}, t),
    ]
    assert list(parsed.points[3].tags) == ["host", "instance", "type", "type_instance"]
    # every point has its own tags
    parsed.points[0].tags["x"] = "y"
    assert "x" not in parsed.points[1].tags


def test_value_kinds_and_plain_time() -> None:
    packet = (string(HOST, "h") + number(TIME, 1700000000) + number(INTERVAL, 10)
              + string(PLUGIN, "p") + string(TYPE, "kinds")
              + values(counter(2**64 - 1), gauge(-1.5), derive(-2**63), absolute(3)))
    points = Parser(TYPES).parse(packet).points
    assert [(p.name, p.fields["value"], p.time) for p in points] == [
        ("p_c", float(2**64 - 1), T0), ("p_g", -1.5, T0), ("p_d", float(-2**63), T0),
        ("p_a", 3.0, T0)]
    assert all(type(p.fields["value"]) is float for p in points)


def test_high_resolution_times() -> None:
    assert hr_to_ns(1 << 30) == 10**9
    assert hr_to_ns((5 << 30) | (1 << 28)) == 5_250_000_000
    assert hr_to_ns((1 << 30) - 1) == 10**9  # rounded to the microsecond
    assert hr_to_ns(1) == 0
    assert hr_to_ns(1 << 20) % 1000 == 0
    # hr preferred to the plain time whatever their order, as Kapacitor does
    packet = (number(TIME_HR, 3 << 30) + number(TIME, 9) + string(PLUGIN, "m")
              + string(TYPE, "memory") + values(gauge(1.0)))
    assert Parser(TYPES).parse(packet).points[0].time == 3 * 10**9


def test_a_truncated_packet_keeps_the_points_before_the_broken_part() -> None:
    good = string(HOST, "h") + string(PLUGIN, "m") + string(TYPE, "memory")
    first = good + values(gauge(1.0))
    packet = first + values(gauge(2.0))
    for cut in range(len(first) + 1, len(packet)):
        parsed = Parser(TYPES).parse(packet[:cut])
        assert parsed.error, cut
        assert [p.fields["value"] for p in parsed.points] == [1.0], cut
    parsed = Parser(TYPES).parse(packet[:len(good) + 7])  # inside the first values part
    assert parsed.points == [] and "truncated" in parsed.error


@pytest.mark.parametrize("data, words", [
    (b"\x00", "truncated part header"),
    (b"\x00\x00\x00\x03abc", "invalid length 3"),
    (b"\x00\x00\x00\x04", "invalid length 4"),
    (number(TIME, 1)[:-2] + b"", "truncated"),
    (part(TIME, b"\x00\x01"), "time part at byte 0 holds 2 bytes, expected 8"),
    (part(VALUES, b"\x00\x02\x01\x01" + b"\x00" * 8), "too few for 2 values"),
    (part(VALUES, b"\x00"), "truncated values part"),
    (string(TYPE, "memory") + values((7, b"\x00" * 8)), "unknown value type 7"),
])
def test_malformed_packets_say_why(data: bytes, words: str) -> None:
    parsed = Parser(TYPES).parse(data)
    assert words in parsed.error
    assert parsed.points == []


def test_garbage_never_raises() -> None:
    parser = Parser(TYPES)
    seed = 12345
    for size in range(0, 3000, 7):
        data = bytearray()
        for _ in range(size):
            seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
            data.append(seed >> 16 & 0xFF)
        parser.parse(bytes(data))  # no exception whatever the bytes


def test_values_that_cannot_be_points_are_counted() -> None:
    parser = Parser(TYPES)
    unknown = string(PLUGIN, "p") + string(TYPE, "nosuch") + values(gauge(1), gauge(2))
    parsed = parser.parse(unknown)
    assert (parsed.points, parsed.invalid, parsed.error) == ([], 2, "")
    assert parsed.invalid_reason == "type 'nosuch' is not in types.db"
    fewer = string(PLUGIN, "p") + string(TYPE, "memory") + values(gauge(1), gauge(2))
    parsed = parser.parse(fewer)
    assert parsed.invalid == 2 and "has 1 data sources in types.db" in parsed.invalid_reason
    # more data sources than values: the first names, as Kapacitor takes them
    more = string(PLUGIN, "p") + string(TYPE, "load") + values(gauge(1))
    assert [p.name for p in parser.parse(more).points] == ["p_shortterm"]
    nan = string(PLUGIN, "m") + string(TYPE, "load") + values(
        gauge(math.nan), gauge(math.inf), gauge(2.0))
    parsed = parser.parse(nan)
    assert [p.fields["value"] for p in parsed.points] == [math.inf, 2.0]
    assert parsed.invalid == 1 and "NaN" in parsed.invalid_reason
    late = number(TIME, 2**62) + string(PLUGIN, "m") + string(TYPE, "memory") + values(
        gauge(1))
    parsed = parser.parse(late)
    assert parsed.invalid == 1 and "out of range" in parsed.invalid_reason


def signed(payload: bytes, user: str, password: str) -> bytes:
    name = user.encode()
    digest = hmac.new(password.encode(), name + payload, hashlib.sha256).digest()
    return part(SIGNATURE, digest + name) + payload


def test_signatures() -> None:
    payload = string(HOST, "h") + string(PLUGIN, "m") + string(TYPE, "memory") + values(
        gauge(4.0))
    none = Parser(TYPES)
    assert [p.fields["value"] for p in none.parse(signed(payload, "u", "p")).points] == [4.0]
    sign = Parser(TYPES, "sign", {"alice": "secret"})
    good = sign.parse(signed(payload, "alice", "secret"))
    assert (good.error, len(good.points)) == ("", 1)
    for data, words in [
        (payload, "1 unsigned values refused"),
        (signed(payload, "alice", "wrong"), "signature of user 'alice' does not match"),
        (signed(payload, "mallory", "secret"), "signature by unknown user 'mallory'"),
        (signed(payload, "alice", "secret")[:-1] + b"\x01", "does not match"),  # altered
        (part(SIGNATURE, b"short"), "too short"),
    ]:
        parsed = sign.parse(data)
        assert words in parsed.error and parsed.points == [], words
    with pytest.raises(ValueError, match="encrypt"):
        Parser(TYPES, "encrypt")


def test_an_encrypted_part_is_skipped_and_counted() -> None:
    data = part(ENCRYPTION, b"\x00\x01u" + b"\x00" * 40) + string(PLUGIN, "m") + string(
        TYPE, "memory") + values(gauge(1.0))
    parsed = Parser(TYPES).parse(data)
    assert "encrypted" in parsed.error and len(parsed.points) == 1


def test_types_db_files_and_directories(tmp_path: Path) -> None:
    assert TYPES["if_octets"] == ("rx", "tx")
    assert TYPES["kinds"] == ("c", "g", "d", "a")
    for text, words in [("lonely\n", ":1: a data set needs a name"),
                        ("\n\nt v:GAUGE:0\n", ":3: data source 'v:GAUGE:0'"),
                        ("t v:STRING:0:U\n", "invalid data-source type 'STRING'")]:
        with pytest.raises(TypesDBError, match=words):
            parse_types_db(text, "f.db")
    (tmp_path / "a.db").write_text("one v:GAUGE:U:U\ntwo x:GAUGE:U:U\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.db").write_text("two y:GAUGE:U:U, z:GAUGE:U:U\n")
    (tmp_path / "bad.db").write_text("broken\n")
    warnings: list[str] = []
    types = load_types_db(str(tmp_path), warnings.append)
    assert types == {"one": ("v",), "two": ("y", "z")}  # the later file wins
    assert len(warnings) == 1 and "bad.db:1" in warnings[0]
    assert load_types_db(str(tmp_path / "a.db"))["one"] == ("v",)
    with pytest.raises(TypesDBError, match="bad.db:1"):
        load_types_db(str(tmp_path / "bad.db"))
    with pytest.raises(TypesDBError, match="no such file"):
        load_types_db(str(tmp_path / "missing"))


def test_auth_files(tmp_path: Path) -> None:
    path = tmp_path / "auth"
    path.write_text("# users\nalice: secret\n\n  bob:other  \ncarol:  with space\n")
    assert read_auth_file(str(path)) == {"alice": "secret", "bob": "other",
                                         "carol": "with space"}
    path.write_text("alice secret\n")
    with pytest.raises(ValueError, match="auth:1: expected 'user: password'"):
        read_auth_file(str(path))


def test_config_checks() -> None:
    from kapa_core.errors import ConfigError
    with pytest.raises(ConfigError, match="encrypt is not supported"):
        CollectdConfig(security_level="encrypt").validate()
    with pytest.raises(ConfigError, match="invalid value 'high'"):
        CollectdConfig(security_level="high").validate()
    with pytest.raises(ConfigError, match="must be set when security-level is sign"):
        CollectdConfig(enabled=True, security_level="sign").validate()
    CollectdConfig(enabled=True, bind_address="").validate()  # empty: the default


async def test_batches_are_written_when_full_or_timed_out(tmp_path: Path) -> None:
    types = tmp_path / "types.db"
    types.write_text("load shortterm:GAUGE:0:U, midterm:GAUGE:0:U, longterm:GAUGE:0:U\n")
    writes: list[tuple[str, str, int, float]] = []

    def write_points(db: str, rp: str, points: list[Point]) -> None:
        writes.append((db, rp, len(points), trio.current_time()))

    config = CollectdConfig(enabled=True, bind_address="127.0.0.1:0", database="",
                            typesdb=str(types), batch_size=4,
                            batch_timeout=Duration(200_000_000))
    context = InputContext(section="collectd", config=config, log=Logger("collectd"),
                           write_points=write_points)
    listener = CollectdListener(config, context)
    packet = (string(HOST, "h") + number(TIME, 1) + string(PLUGIN, "load")
              + string(TYPE, "load") + values(gauge(1), gauge(2), gauge(3)))
    async with trio.open_nursery() as nursery:
        address = await nursery.start(listener.serve)
        host, port = address.rsplit(":", 1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            start = trio.current_time()
            s.sendto(packet, (host, int(port)))
            s.sendto(packet, (host, int(port)))  # 6 points: one batch of 4 at once
            with trio.fail_after(5):
                while len(writes) < 2:
                    await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    (db, rp, first, at_first), (_, _, second, at_second) = writes
    assert (db, rp, first, second) == ("collectd", "", 4, 2)  # empty database: default
    assert at_first - start < 1.0
    assert 0.18 <= at_second - at_first < 2.0  # the rest waited for the batch timeout
    values_ = listener.stats.values
    assert (values_["pointsRx"], values_["pointsTx"], values_["batchesTx"]) == (6, 6, 2)
    assert values_["pointsParseFail"] == 0 and values_["bytesRx"] == 2 * len(packet)
    context.close()

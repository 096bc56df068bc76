"""The [[dns]] discoverer: config checks, resolv.conf and search lists as Go's miekg/dns
reads them, answers turned into targets as Prometheus does, and lookups against a real
DNS server (Debian's dnsmasq on a free loopback port; those tests are marked
integration)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import dns.rrset
import pytest
import trio
from kapa_plugins.discovery.dns import (
    ClientConfig,
    DNSConfig,
    DNSDiscoverer,
    LookupFailed,
    answer_targets,
    parse_resolver,
    read_resolv_conf,
)

from kapa_core.discovery import DiscoveryContext, DiscoveryRegistry, TargetGroup
from kapa_core.errors import ConfigError, KapaError
from kapa_core.logs import Logger
from kapa_core.plugins import load_plugins

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"


def free_port() -> int:
    """A loopback port free for both UDP and TCP (dnsmasq listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port: int = udp.getsockname()[1]
            with socket.socket() as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


class Dnsmasq:
    """dnsmasq answering only from its options (``--srv-host=...``, ``--host-record=...``)
    on 127.0.0.1:``port``; ``restart(options)`` keeps the port."""

    def __init__(self, options: Sequence[str], port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="dnsmasq-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(self.dir, "log")
        self.start(options)

    def start(self, options: Sequence[str]) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [DNSMASQ, "--no-daemon", f"--port={self.port}", "--listen-address=127.0.0.1",
                 "--bind-interfaces", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                 f"--pid-file={self.dir}/pid", "--log-queries", *options],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        query = dns.message.make_query("ready.invalid.", "A")
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dnsmasq exited: {self.log.read_text()}")
            try:
                dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.2)
                return
            except (OSError, dns.exception.Timeout):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"dnsmasq does not answer: {self.log.read_text()}")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, options: Sequence[str]) -> None:
        self.stop()
        self.start(options)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> Dnsmasq:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


RECORDS = [
    "--srv-host=_node._tcp.example.test,node1.example.test,9100,10,5",
    "--srv-host=_node._tcp.example.test,node2.example.test.,9200,20,5",
    "--host-record=node1.example.test,127.0.0.1,::1",
    "--host-record=node2.example.test,192.0.2.7,2001:db8::7",
    "--host-record=mapped.example.test,::ffff:192.0.2.9",
    "--cname=alias.example.test,node2.example.test",
]


@pytest.fixture(scope="module")
def dnsmasq() -> Iterator[Dnsmasq]:
    with Dnsmasq(RECORDS) as server:
        yield server


def element(**kw: Any) -> DNSConfig:
    raw = {"enabled": True, "id": "d", **kw}
    built = load_plugins().sections["dns"].build([raw])
    config: DNSConfig = built[0]
    return config


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, object]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda msg, **kv: self.lines.append((level, msg, kv))

    def with_(self, **kv: object) -> Log:
        return self


def context(config: DNSConfig, log: Any = None, **kw: Any) -> DiscoveryContext:
    ctx = DiscoveryContext("dns", config, log or Logger("dns"), id=config.id,
                           registry=DiscoveryRegistry(), **kw)
    ctx.open()
    return ctx


def groups(ctx: DiscoveryContext) -> dict[str, tuple[tuple[str, ...], dict[str, str]]]:
    return {g.source: (g.targets, dict(g.labels)) for g in ctx.groups()}


# -- config ----------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ({"record-names": ["x"], "type": "A"}, "dns[0].port: must be set for A records"),
    ({"record-names": ["x"], "type": "aaaa"}, "dns[0].port: must be set for AAAA records"),
    ({"record-names": ["x"], "type": "A", "port": 70000},
     "dns[0].port: invalid port 70000 (expected 1 to 65535)"),
    ({"record-names": ["x"], "type": "MX"}, "dns[0].type: invalid value 'MX'"),
    ({"record-names": []}, "dns[0].record-names: must list at least one name"),
    ({"record-names": ["ok", ""]}, "dns[0].record-names[1]: invalid DNS name ''"),
    ({"record-names": ["a" * 64 + ".test"]}, "dns[0].record-names[0]: invalid DNS name"),
    ({"record-names": ["x"], "refresh-interval": "0s"},
     "dns[0].refresh-interval: must be greater than 0"),
    ({"record-names": ["x"], "resolvers": ["127.0.0.1:5353", "dns.example.com"]},
     "dns[0].resolvers[1]: invalid resolver 'dns.example.com'"),
    ({"record-names": ["x"], "resolvers": ["127.0.0.1:0"]},
     "dns[0].resolvers[0]: invalid resolver '127.0.0.1:0'"),
    ({"record-names": ["x"], "resolvers": ["::1:53"]}, None),
])
def test_config_checks(raw: dict[str, Any], expected: str | None) -> None:
    section = load_plugins().sections["dns"]
    elements = [{"enabled": True, "id": "d", **raw}]
    if expected is None:
        section.build(elements)
        return
    with pytest.raises(ConfigError) as err:
        section.build(elements)
    assert expected in str(err.value)


def test_config_defaults_and_case() -> None:
    config = element(**{"record-names": ["a.test"], "type": "a", "port": 80})
    assert (config.type, config.port, config.resolvers) == ("a", 80, [])
    assert config.refresh_interval == 30_000_000_000
    assert DNSDiscoverer(config, context(config)).qtype == dns.rdatatype.A
    # a disabled element is not checked (as every kapa-core discovery section)
    load_plugins().sections["dns"].build([{"type": "MX"}])


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1", ("127.0.0.1", 53)), ("127.0.0.1:5353", ("127.0.0.1", 5353)),
    ("[::1]:5353", ("::1", 5353)), ("::1", ("::1", 53)), ("[2001:db8::1]", ("2001:db8::1", 53)),
    (" 10.0.0.2:53 ", ("10.0.0.2", 53)),
])
def test_parse_resolver(text: str, expected: tuple[str, int]) -> None:
    assert parse_resolver(text) == expected


@pytest.mark.parametrize("text", ["", "host:53", "127.0.0.1:", "127.0.0.1:x", "[::1",
                                  "[::1]5353", "127.0.0.1:65536", "1.2.3.4.5"])
def test_parse_resolver_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_resolver(text)


# -- resolv.conf and name lists (miekg/dns ClientConfigFromFile, NameList) --------------

def test_read_resolv_conf(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text("# comment\nnameserver 10.0.0.53\nsearch a.test b.test\n"
                    "nameserver 10.0.0.54 extra\nnameserver\noptions rotate ndots:3 timeout:1\n")
    conf = read_resolv_conf(str(path))
    assert conf == ClientConfig((("10.0.0.53", 53), ("10.0.0.54", 53)), ("a.test", "b.test"), 3)
    path.write_text("search a.test b.test\ndomain c.test\noptions ndots:0\n")
    assert read_resolv_conf(str(path)) == ClientConfig((), ("c.test",), 1)
    path.write_text("domain\n")
    assert read_resolv_conf(str(path)).search == ()
    with pytest.raises(OSError):
        read_resolv_conf(str(tmp_path / "missing"))


@pytest.mark.parametrize(("name", "ndots", "expected"), [
    ("node.example.test.", 1, ["node.example.test."]),
    ("node.example", 1, ["node.example.", "node.example.a.test.", "node.example.b.test."]),
    ("node", 1, ["node.a.test.", "node.b.test.", "node."]),
    ("node.example", 2, ["node.example.a.test.", "node.example.b.test.", "node.example."]),
    ("a\\.b", 1, ["a\\.b.a.test.", "a\\.b.b.test.", "a\\.b."]),
])
def test_name_list(name: str, ndots: int, expected: list[str]) -> None:
    assert ClientConfig((), ("a.test", "b.test"), ndots).names(name) == expected


def test_name_list_without_search_is_the_absolute_name() -> None:
    assert ClientConfig((("127.0.0.1", 53),)).names("node") == ["node."]


# -- answers to targets ----------------------------------------------------------------

def answer(qname: str, qtype: str, *records: str) -> dns.message.Message:
    query = dns.message.make_query(qname, qtype)
    response = dns.message.make_response(query)
    for record in records:
        owner, rtype, data = record.split(" ", 2)
        response.answer.append(dns.rrset.from_text(owner, 60, "IN", rtype, data))
    return response


def test_srv_targets_lose_their_final_dots() -> None:
    response = answer("_x._tcp.test.", "SRV", "_x._tcp.test. SRV 10 5 9100 node1.test.",
                      "_x._tcp.test. SRV 20 5 9200 node2.test.", "_x._tcp.test. SRV 0 0 80 .")
    assert answer_targets(response, 0) == ["node1.test:9100", "node2.test:9200", ":80"]


def test_address_targets_take_the_port() -> None:
    response = answer("h.test.", "A", "h.test. A 192.0.2.1", "h.test. A 192.0.2.2")
    assert answer_targets(response, 8080) == ["192.0.2.1:8080", "192.0.2.2:8080"]
    response = answer("h.test.", "AAAA", "h.test. AAAA 2001:DB8:0:0:0:0:0:1",
                      "h.test. AAAA ::ffff:192.0.2.9", "h.test. AAAA 2001:db8:0:1:0:0:0:1")
    assert answer_targets(response, 9100) == ["[2001:db8::1]:9100", "192.0.2.9:9100",
                                              "[2001:db8:0:1::1]:9100"]


def test_other_records_are_skipped_with_a_warning() -> None:
    response = answer("alias.test.", "A", "alias.test. CNAME h.test.", "h.test. A 192.0.2.1")
    warned: list[str] = []
    assert answer_targets(response, 80, warned.append) == ["192.0.2.1:80"]
    assert warned == ["alias.test.\t60\tIN\tCNAME\th.test."]


# -- lookups against dnsmasq -----------------------------------------------------------

async def run_once(config: DNSConfig, ctx: DiscoveryContext, **kw: Any) -> list[str]:
    discoverer = DNSDiscoverer(config, ctx, **kw)
    async with trio.open_nursery() as nursery:
        await nursery.start(discoverer.serve)
        with trio.fail_after(10):
            while not ctx.registry.get("dns", config.id).updated_ns:  # type: ignore[union-attr]
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    return [t for g in ctx.groups() for t in g.targets]


@pytest.mark.integration
async def test_srv_a_and_aaaa_groups(dnsmasq: Dnsmasq) -> None:
    srv = element(**{"record-names": ["_node._tcp.example.test"], "resolvers": [dnsmasq.address]})
    ctx = context(srv)
    found = await run_once(srv, ctx)
    assert sorted(found) == ["node1.example.test:9100", "node2.example.test:9200"]
    assert groups(ctx) == {"_node._tcp.example.test": (
        tuple(found), {"__meta_dns_name": "_node._tcp.example.test"})}

    a = element(**{"record-names": ["node2.example.test", "alias.example.test."],
                   "type": "A", "port": 9100, "resolvers": [dnsmasq.address]})
    ctx = context(a)
    discoverer = DNSDiscoverer(a, ctx)
    await discoverer.refresh_all()
    assert groups(ctx) == {
        "node2.example.test": (("192.0.2.7:9100",), {"__meta_dns_name": "node2.example.test"}),
        "alias.example.test.": (("192.0.2.7:9100",), {"__meta_dns_name": "alias.example.test."})}

    aaaa = element(**{"record-names": ["node1.example.test", "node2.example.test",
                                       "mapped.example.test"],
                      "type": "AAAA", "port": 9100, "resolvers": [dnsmasq.address]})
    ctx = context(aaaa)
    await DNSDiscoverer(aaaa, ctx).refresh_all()
    assert {s: g[0] for s, g in groups(ctx).items()} == {
        "node1.example.test": ("[::1]:9100",), "node2.example.test": ("[2001:db8::7]:9100",),
        "mapped.example.test": ("192.0.2.9:9100",)}


@pytest.mark.integration
async def test_failed_lookup_keeps_the_previous_group(dnsmasq: Dnsmasq) -> None:
    config = element(**{"record-names": ["node1.example.test", "gone.example.test"],
                        "type": "A", "port": 80, "resolvers": [dnsmasq.address]})
    log = Log()
    ctx = context(config, log)
    previous = TargetGroup(("192.0.2.99:80",), {"__meta_dns_name": "gone.example.test"},
                           "gone.example.test")
    ctx.update([previous])
    errors = await DNSDiscoverer(config, ctx).refresh_all()
    assert errors == ["could not resolve gone.example.test: no server responded"]
    assert groups(ctx)["gone.example.test"] == (("192.0.2.99:80",),
                                                {"__meta_dns_name": "gone.example.test"})
    assert groups(ctx)["node1.example.test"][0] == ("127.0.0.1:80",)
    assert ("error", f"Error refreshing DNS targets: {errors[0]}",
            {"name": "gone.example.test"}) in log.lines


@pytest.mark.integration
async def test_servers_are_asked_in_turn(dnsmasq: Dnsmasq) -> None:
    dead = free_port()  # nothing listens: the first server times out
    config = element(**{"record-names": ["node1.example.test"], "type": "A", "port": 80,
                        "resolvers": [f"127.0.0.1:{dead}", dnsmasq.address]})
    log = Log()
    ctx = context(config, log)
    await DNSDiscoverer(config, ctx, timeout=0.3).refresh_all()
    assert groups(ctx)["node1.example.test"][0] == ("127.0.0.1:80",)
    assert [(kv["server"], kv["name"]) for level, msg, kv in log.lines
            if msg == "DNS resolution failed."] == [("127.0.0.1", "node1.example.test")]


@pytest.mark.integration
async def test_search_list_names_are_asked_in_order(dnsmasq: Dnsmasq) -> None:
    config = element(**{"record-names": ["node1"], "type": "A", "port": 80})
    ctx = context(config)
    discoverer = DNSDiscoverer(config, ctx)
    asked: list[str] = []
    exchange = discoverer.exchange

    async def recording(qname: str, host: str, port: int) -> dns.message.Message:
        asked.append(qname)
        return await exchange(qname, host, port)

    discoverer.exchange = recording  # type: ignore[method-assign]
    discoverer.client_config = lambda: ClientConfig(  # type: ignore[method-assign]
        (("127.0.0.1", dnsmasq.port),), ("none.test", "example.test", "other.test"))
    await discoverer.refresh_all()
    assert asked == ["node1.none.test.", "node1.example.test."]
    assert groups(ctx) == {"node1": (("127.0.0.1:80",), {"__meta_dns_name": "node1"})}


@pytest.mark.integration
async def test_system_resolver_config_is_read_at_each_lookup(tmp_path: Path) -> None:
    config = element(**{"record-names": ["x.test"], "type": "A", "port": 80})
    log = Log()
    ctx = context(config, log)
    discoverer = DNSDiscoverer(config, ctx, resolv_conf=str(tmp_path / "resolv.conf"))
    errors = await discoverer.refresh_all()
    assert errors == ["could not load resolv.conf: No such file or directory"]
    (tmp_path / "resolv.conf").write_text("search example.test\n")
    assert await discoverer.refresh_all() == ["could not resolve x.test: no server responded"]


@pytest.mark.integration
async def test_truncated_answers_are_asked_again_with_edns_then_tcp(
        monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, str, bool]] = []

    def recording(how: str) -> Any:
        send = getattr(dns.asyncquery, how)

        async def query(q: dns.message.Message, *args: Any, **kw: Any) -> dns.message.Message:
            asked.append((str(q.question[0].name), how, q.edns >= 0))
            return await send(q, *args, **kw)

        return query

    monkeypatch.setattr(dns.asyncquery, "udp", recording("udp"))
    monkeypatch.setattr(dns.asyncquery, "tcp", recording("tcp"))
    many = [f"--host-record=big.example.test,10.0.{i // 250}.{i % 250 + 1}" for i in range(300)]
    some = [f"--host-record=some.example.test,10.1.0.{i + 1}" for i in range(40)]
    with Dnsmasq([*many, *some]) as server:
        config = element(**{"record-names": ["big.example.test", "some.example.test"],
                            "type": "A", "port": 80, "resolvers": [server.address]})
        ctx = context(config)
        assert await DNSDiscoverer(config, ctx).refresh_all() == []
        found = groups(ctx)
        assert len(found["big.example.test"][0]) == 300
        assert len(found["some.example.test"][0]) == 40
        assert "10.0.1.1:80" in found["big.example.test"][0]
    assert sorted(asked) == [
        ("big.example.test.", "tcp", True), ("big.example.test.", "udp", False),
        ("big.example.test.", "udp", True), ("some.example.test.", "udp", False),
        ("some.example.test.", "udp", True)]


@pytest.mark.integration
async def test_denied_servers_are_not_asked(dnsmasq: Dnsmasq) -> None:
    config = element(**{"record-names": ["node1.example.test"], "type": "A", "port": 80,
                        "resolvers": [dnsmasq.address]})
    checked: list[str] = []

    def deny(url: str) -> None:
        checked.append(url)
        raise KapaError(f"{url}: denied")

    log = Log()
    ctx = context(config, log, check_outgoing=deny)
    assert await DNSDiscoverer(config, ctx).refresh_all() == [
        "could not resolve node1.example.test: no server responded"]
    assert checked == [f"dns://{dnsmasq.address}"]
    assert ctx.groups() == ()
    assert any(kv.get("reason") == f"dns://{dnsmasq.address}: denied" for _, _, kv in log.lines)


@pytest.mark.integration
async def test_every_refresh_interval_looks_again() -> None:
    with Dnsmasq(["--host-record=h.example.test,192.0.2.1"]) as server:
        config = element(**{"record-names": ["h.example.test"], "type": "A", "port": 80,
                            "refresh-interval": "200ms", "resolvers": [server.address]})
        ctx = context(config)
        async with trio.open_nursery() as nursery:
            await nursery.start(DNSDiscoverer(config, ctx).serve)
            with trio.fail_after(10):
                while not ctx.groups():
                    await trio.sleep(0.02)
                assert ctx.groups()[0].targets == ("192.0.2.1:80",)
                await trio.to_thread.run_sync(server.restart, [
                    "--host-record=h.example.test,192.0.2.2",
                    "--host-record=h.example.test,192.0.2.3"])
                while ctx.groups()[0].targets != ("192.0.2.2:80", "192.0.2.3:80"):
                    await trio.sleep(0.02)
            nursery.cancel_scope.cancel()


@pytest.mark.integration
async def test_the_service_test_discoverer_reports_why_nothing_resolved(
        dnsmasq: Dnsmasq) -> None:
    config = element(**{"record-names": ["nothing.example.test"], "resolvers": [dnsmasq.address]})
    discoverer = DNSDiscoverer(config, context(config), report_failure=True)
    with trio.fail_after(10), pytest.raises(LookupFailed) as err:
        await discoverer.serve()
    assert str(err.value) == "could not resolve nothing.example.test: no server responded"


@pytest.mark.integration
async def test_stopping_cancels_a_lookup_at_once() -> None:
    config = element(**{"record-names": ["x.test"], "resolvers": [f"127.0.0.1:{free_port()}"]})
    ctx = context(config)
    start = time.monotonic()
    async with trio.open_nursery() as nursery:
        await nursery.start(DNSDiscoverer(config, ctx, timeout=30).serve)
        await trio.sleep(0.2)
        nursery.cancel_scope.cancel()
    assert time.monotonic() - start < 2


def test_dnsmasq_is_installed() -> None:
    assert os.access(DNSMASQ, os.X_OK), "Debian's dnsmasq (dnsmasq-base) is needed"

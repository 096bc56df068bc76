"""dns: the [[dns]] section, discovering DNS SRV, A and AAAA records.

Each enabled element looks up every name of ``record-names`` at once when it starts and
then every ``refresh-interval``, as Prometheus's DNS service discovery that Kapacitor
1.5.7 runs (its ``discovery/dns``):

- one target group per name, its ``source`` the name as configured and its label
  ``__meta_dns_name`` the same name;
- SRV records give ``<target>:<port>`` (the final dots of the target removed), A and AAAA
  records ``<address>:<port>`` with the element's ``port`` (IPv6 addresses in brackets,
  IPv4-mapped ones written as IPv4 as Go does);
- each lookup asks the servers in turn, and for each server the names the search list
  makes of the name (``ndots``, ``search``/``domain`` of resolv.conf, as Go's miekg/dns),
  and takes the first answer holding records; a truncated answer is asked again with
  EDNS0 and then over TCP;
- a lookup that finds no records anywhere (no server answered, or every answer was empty,
  NXDOMAIN included) is a failure: it is logged and the name keeps its previous group
  (Prometheus's ``could not resolve <name>: no server responded``).

kapa-core additions:

- ``resolvers``: the DNS servers to ask, ``host:port`` (IP addresses; port 53 when left
  out). Empty (the default) reads ``/etc/resolv.conf`` at each lookup, as Kapacitor.
  With resolvers the names are asked as given (absolute names, no search list).
- The deny list (``-blacklist-cidrs``) holds for DNS servers too: a listed server is not
  asked (logged like a server that does not answer).
- The section's service test answers at once with the reason when not one name could be
  resolved, where Kapacitor waits 30 s and reports a timeout.
- Config checks Kapacitor lacks: ``refresh-interval`` must be positive (Kapacitor
  panics), ``port`` of A/AAAA elements must be a TCP port, ``record-names`` must hold
  valid DNS names. ``type`` is case-insensitive as in Kapacitor.
- A server that fails to answer is logged (``DNS resolution failed.``) and the next one
  asked; kapacitord 1.5.7 crashes there (a nil pointer in its logging of that warning).

Lookups use dnspython's asynchronous queries on its trio backend rather than blocking
queries in worker threads: a lookup is cancelled at once when the element stops (a config
override, shutdown) instead of leaving a thread waiting out its timeout, and the
message-level API (``dns.asyncquery``) lets us follow Prometheus's order of servers and
names and its truncation fallbacks, which ``dns.resolver``'s stub resolver does
differently (caching, NXDOMAIN handling, retries).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dns.asyncbackend
import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import trio

from kapa_core.plugin_api import (
    ConfigError,
    DiscoveryContext,
    DiscoveryKind,
    Duration,
    KapaError,
    Section,
    TargetGroup,
    discovery_test_service,
    hookimpl,
    setting,
    unique_elements,
)

from .prometheus_sd import join_host_port

RESOLV_CONF = "/etc/resolv.conf"

#: the label naming the record name a target came from (Prometheus's)
NAME_LABEL = "__meta_dns_name"

#: seconds an exchange with one server may take (miekg/dns's dial/read/write timeout)
QUERY_TIMEOUT = 2.0

#: the EDNS0 payload size asked for after a truncated answer (miekg/dns DefaultMsgSize)
EDNS_PAYLOAD = 4096

TYPES = {"SRV": dns.rdatatype.SRV, "A": dns.rdatatype.A, "AAAA": dns.rdatatype.AAAA}


def parse_resolver(text: str) -> tuple[str, int]:
    """``host:port`` (or a bare address, port 53) to (address, port); ValueError if not
    an IP address with an optional port 1-65535. IPv6 with a port is ``[addr]:port``."""
    text = text.strip()
    host, port = text, "53"
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(text)
        if rest:
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(text) from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(text)
    return str(address), int(port)


@dataclass(frozen=True, kw_only=True)
class DNSConfig:
    enabled: bool = False
    id: str = ""
    record_names: list[str] = setting([])
    refresh_interval: Duration = Duration(30 * 1_000_000_000)
    type: str = setting("SRV", doc="SRV, A or AAAA.")
    port: int = setting(0, doc="Needed for A and AAAA records.")
    resolvers: list[str] = setting(
        [], doc="kapa-core: DNS servers to ask (host:port); empty: /etc/resolv.conf.")

    def validate(self) -> None:
        if not self.enabled:
            return
        if not self.id:
            raise ConfigError("id", "must be set when enabled = true")
        if self.type.upper() not in TYPES:
            raise ConfigError("type", f"invalid value {self.type!r} (expected one of "
                              "'SRV', 'A', 'AAAA')")
        if not self.record_names:
            raise ConfigError("record-names", "must list at least one name")
        for i, name in enumerate(self.record_names):
            try:
                if not name:
                    raise ValueError("empty name")
                dns.name.from_text(name)
            except (ValueError, dns.exception.DNSException) as exc:
                raise ConfigError(f"record-names[{i}]",
                                  f"invalid DNS name {name!r}: {exc}") from None
        if self.type.upper() != "SRV":
            if self.port == 0:
                raise ConfigError("port", f"must be set for {self.type.upper()} records")
            if not 0 < self.port < 65536:
                raise ConfigError("port", f"invalid port {self.port} (expected 1 to 65535)")
        if self.refresh_interval <= 0:
            raise ConfigError("refresh-interval", "must be greater than 0")
        for i, resolver in enumerate(self.resolvers):
            try:
                parse_resolver(resolver)
            except ValueError:
                raise ConfigError(f"resolvers[{i}]", f"invalid resolver {resolver!r} "
                                  "(expected an IP address with an optional port, e.g. "
                                  "192.0.2.53, 127.0.0.1:5353 or [::1]:5353)") from None


# -- name lists (resolv.conf) ----------------------------------------------------------

@dataclass(frozen=True)
class ClientConfig:
    """The servers and search rules of a lookup (resolv.conf's, or ``resolvers``)."""

    servers: tuple[tuple[str, int], ...]
    search: tuple[str, ...] = ()
    ndots: int = 1

    def names(self, name: str) -> list[str]:
        """The absolute names to ask for ``name``, in order (miekg/dns NameList)."""
        if name.endswith(".") and not name.endswith("\\."):
            return [name]
        enough_dots = count_labels(name) > self.ndots
        absolute = name + "."
        names = [absolute] if enough_dots else []
        names += [fqdn(absolute + suffix) for suffix in self.search]
        if not enough_dots:
            names.append(absolute)
        return names


def fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def count_labels(name: str) -> int:
    """Labels of ``name`` (escaped dots do not split); 0 for the root."""
    labels, escaped, current = 0, False, False
    for char in name:
        if escaped:
            escaped, current = False, True
        elif char == "\\":
            escaped, current = True, True
        elif char == ".":
            labels += current
            current = False
        else:
            current = True
    return labels + current


def read_resolv_conf(path: str = RESOLV_CONF) -> ClientConfig:
    """resolv.conf(5) as miekg/dns reads it: ``nameserver``, ``search``/``domain`` (the
    last one wins) and ``options ndots:n``; port 53. Raises OSError."""
    servers: list[tuple[str, int]] = []
    search: list[str] = []
    ndots = 1
    with open(path, encoding="utf-8", errors="replace") as file:
        for line in file:
            fields = line.split()
            if not fields:
                continue
            if fields[0] == "nameserver" and len(fields) > 1:
                servers.append((fields[1], 53))
            elif fields[0] == "domain":
                search = fields[1:2]
            elif fields[0] == "search":
                search = fields[1:]
            elif fields[0] == "options":
                for option in fields[1:]:
                    if option.startswith("ndots:"):
                        value = option[6:]
                        ndots = max(int(value) if value.isdigit() else 0, 1)
    return ClientConfig(tuple(servers), tuple(search), ndots)


# -- answers to targets ----------------------------------------------------------------

def ip_text(address: str) -> str:
    """An address as Go's net.IP.String writes it (IPv4-mapped IPv6 as IPv4)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return ip.compressed


def answer_targets(response: dns.message.Message, port: int,
                   warn: Callable[[str], None] | None = None) -> list[str]:
    """The targets of an answer's records, in order; other records are skipped (and
    ``warn(record_text)`` called, the record as miekg/dns writes it), as Prometheus
    does."""
    targets: list[str] = []
    for rrset in response.answer:
        for rdata in rrset:
            if rdata.rdtype == dns.rdatatype.SRV:
                host = rdata.target.to_text().rstrip(".")
                targets.append(join_host_port(host, rdata.port))
            elif rdata.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                targets.append(join_host_port(ip_text(rdata.address), port))
            elif warn is not None:
                warn(f"{rrset.name}\t{rrset.ttl}\t{dns.rdataclass.to_text(rrset.rdclass)}\t"
                     f"{dns.rdatatype.to_text(rdata.rdtype)}\t{rdata.to_text()}")
    return targets


class LookupFailed(KapaError):
    """No server had records for a name."""


# -- the discoverer --------------------------------------------------------------------

@dataclass
class DNSDiscoverer:
    """Looks up an element's names every refresh-interval and publishes their groups.

    ``report_failure``: raise when the first round resolves no name at all (the service
    test's discoverer: it then answers with the reason instead of timing out).
    """

    config: DNSConfig
    context: DiscoveryContext
    report_failure: bool = False
    resolv_conf: str = RESOLV_CONF
    timeout: float = QUERY_TIMEOUT
    _backend: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.qtype = TYPES[self.config.type.upper()]
        self.resolvers = tuple(parse_resolver(r) for r in self.config.resolvers)

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self._backend = dns.asyncbackend.get_backend("trio")
        task_status.started()
        interval = self.config.refresh_interval / 1e9
        deadline = trio.current_time()
        first = True
        while True:
            errors = await self.refresh_all()
            if first and self.report_failure and len(errors) == len(self.config.record_names):
                raise LookupFailed(errors[0])
            first = False
            # Go's ticker: every interval from the start; a round longer than the
            # interval is followed by the next one at once.
            deadline = max(deadline + interval, trio.current_time())
            await trio.sleep_until(deadline)

    async def refresh_all(self) -> list[str]:
        """Look up every name at once; each publishes its group when it has it. Returns
        the failures' messages."""
        errors: list[str] = []

        async def one(name: str) -> None:
            try:
                await self.refresh(name)
            except LookupFailed as exc:
                errors.append(str(exc))
                self.context.log.error(f"Error refreshing DNS targets: {exc}", name=name)

        async with trio.open_nursery() as nursery:
            for name in self.config.record_names:
                nursery.start_soon(one, name)
        return errors

    async def refresh(self, name: str) -> TargetGroup:
        response = await self.lookup_all(name)
        targets = answer_targets(response, self.config.port, lambda record: self.context.log.warn(
            f"{json.dumps(record)} is not a valid SRV record", name=name))
        group = TargetGroup(tuple(targets), {NAME_LABEL: name}, source=name)
        self.context.update([group])
        return group

    def client_config(self) -> ClientConfig:
        if self.resolvers:
            return ClientConfig(self.resolvers)
        try:
            return read_resolv_conf(self.resolv_conf)
        except OSError as exc:
            raise LookupFailed(f"could not load resolv.conf: {exc.strerror or exc}") from None

    async def lookup_all(self, name: str) -> dns.message.Message:
        """The first answer holding records, asking each server for each search name."""
        conf = self.client_config()
        try:
            names = conf.names(name)
        except Exception as exc:  # pragma: no cover - names are checked by validate()
            raise LookupFailed(f"could not resolve {name}: {exc}") from None
        for host, port in conf.servers:
            for qname in names:
                try:
                    self.context.check_outgoing(f"dns://{join_host_port(host, port)}")
                    response = await self.exchange(qname, host, port)
                except (OSError, KapaError, EOFError, ValueError,
                        dns.exception.DNSException) as exc:
                    self.context.log.warn("DNS resolution failed.", server=host, name=name,
                                          reason=str(exc) or type(exc).__name__)
                    continue
                if response.answer:
                    return response
        raise LookupFailed(f"could not resolve {name}: no server responded")

    async def exchange(self, qname: str, host: str, port: int) -> dns.message.Message:
        """One question to one server: UDP; truncated: UDP with EDNS0; truncated again:
        TCP (as Prometheus)."""
        query = dns.message.make_query(qname, self.qtype, use_edns=False)
        response = await dns.asyncquery.udp(query, host, timeout=self.timeout, port=port,
                                            backend=self._backend)
        if not response.flags & dns.flags.TC:
            return response
        query = dns.message.make_query(qname, self.qtype, use_edns=0, payload=EDNS_PAYLOAD)
        response = await dns.asyncquery.udp(query, host, timeout=self.timeout, port=port,
                                            backend=self._backend)
        if not response.flags & dns.flags.TC:
            return response
        return await dns.asyncquery.tcp(query, host, timeout=self.timeout, port=port,
                                        backend=self._backend)


def service_test_discoverer(config: DNSConfig, context: DiscoveryContext) -> DNSDiscoverer:
    """The service test's discoverer: fails with the reason when nothing resolves."""
    return DNSDiscoverer(config, context, report_failure=True)


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [
        Section(
            name="dns",
            schema=DNSConfig,
            multiple=True,
            element_key="id",
            check=unique_elements("id"),
            service=discovery_test_service(service_test_discoverer),
            doc="Discover DNS SRV, A and AAAA records.",
        )
    ]


@hookimpl
def kapa_discovery_kinds() -> list[DiscoveryKind]:
    return [DiscoveryKind(name="dns", section="dns", factory=DNSDiscoverer,
                          doc="DNS SRV, A and AAAA records of record-names.")]


__all__: Sequence[str] = ["DNSConfig", "DNSDiscoverer", "ClientConfig", "read_resolv_conf",
                          "answer_targets", "parse_resolver"]

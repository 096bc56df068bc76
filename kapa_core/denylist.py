"""The ``-blacklist-cidrs`` deny list: address ranges kapa-core refuses to talk to.

One :class:`DenyList` serves both directions:

* outgoing — kapa-core never connects to an address in a listed range. Callers check a
  URL early with :meth:`DenyList.check_url` (literal addresses, a clear error naming the
  range), and :meth:`DenyList.install` guards every trio connection of the daemon: host
  names are resolved and refused when *any* of their addresses is listed (so a name
  cannot smuggle a private address in), and every ``connect()``/``sendto()`` of an
  internet socket checks the address it really uses (alert handlers, ``httpPost``, the
  InfluxDB client, MQTT, Kafka, TCP, Sensu, SNMP traps, third-party plugins alike);
* incoming — :mod:`kapa_core.http.deny` answers API requests from a listed client
  address with 403.

IPv4-mapped IPv6 addresses (``::ffff:10.0.0.1``) are matched as the IPv4 address they
carry, and IPv6 zone ids (``fe80::1%eth0``) are ignored, so neither form slips through.
An unspecified address (``0.0.0.0/8``, ``::``) is where Linux connects to the local host,
so it is refused whenever the loopback address is (``http://0:9092/`` reaches a listener
on 127.0.0.1); and after every connect the peer actually reached is checked again.
Every refusal is logged with its reason and counted (:meth:`DenyList.statistics`).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Iterator
from typing import Any, Literal
from urllib.parse import urlsplit

import trio

from kapa_core.errors import KapaError
from kapa_core.logs import Logger
from kapa_core.perdaemon import PerDaemon

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_INET = (socket.AF_INET, socket.AF_INET6)
#: A ``getaddrinfo`` result: family, type, protocol, canonical name, socket address.
AddrInfo = (tuple[Literal[socket.AddressFamily.AF_INET], socket.SocketKind, int, str,
                  tuple[str, int]]
            | tuple[Literal[socket.AddressFamily.AF_INET6], socket.SocketKind, int, str,
                    tuple[str, int, int, int] | tuple[int, bytes]])
#: addresses a connect() sends to the local host: "this network" and IPv6 unspecified
_THIS_HOST = (ipaddress.ip_network("0.0.0.0/8"), ipaddress.ip_network("::/128"))
_LOOPBACK = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


class OutgoingDenied(KapaError, OSError):
    """A connection to an address in a ``-blacklist-cidrs`` range was refused.

    It is an :class:`OSError` too, so network code treats it as a failed connection.
    """

    def __init__(self, address: Address, network: Network, host: str = "") -> None:
        shown = f"{host} ({address})" if host and host != str(address) else str(address)
        message = f"connections to {shown} are not allowed (-blacklist-cidrs {network})"
        KapaError.__init__(self, message)
        self.address = address
        self.network = network
        self.host = host

    def __str__(self) -> str:
        return str(self.args[0])


def parse_address(text: str | bytes) -> Address | None:
    """``text`` as an IP address (zone id dropped, IPv4-mapped unwrapped), else None."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    text = text.strip().strip("[]").partition("%")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


#: The deny list of the daemon this code runs for (see :meth:`DenyList.install`).
_CURRENT: PerDaemon[DenyList | None] = PerDaemon("kapa_deny_list", None)


class DenyList:
    """The parsed ranges plus the refusal counters; iterating yields the networks."""

    def __init__(self, networks: Iterable[Network] = (), log: Logger | None = None) -> None:
        self.networks: tuple[Network, ...] = tuple(networks)
        self.log = log or Logger("denylist")
        self.outgoing_refused = 0
        self.incoming_refused = 0

    def __iter__(self) -> Iterator[Network]:
        return iter(self.networks)

    def __len__(self) -> int:
        return len(self.networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __repr__(self) -> str:
        return f"DenyList({', '.join(map(str, self.networks))})"

    # -- matching ----------------------------------------------------------------------
    def match(self, address: str | bytes | Address) -> Network | None:
        """The listed range holding ``address``, or None (also for a non-address)."""
        if not isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
            parsed = parse_address(address)
            if parsed is None:
                return None
            address = parsed
        elif isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        candidates: tuple[Address, ...] = (address,)
        if any(address.version == local.version and address in local for local in _THIS_HOST):
            candidates += _LOOPBACK
        for candidate in candidates:
            for network in self.networks:
                if candidate.version == network.version and candidate in network:
                    return network
        return None

    def statistics(self) -> dict[str, int]:
        return {"outgoing_refused": self.outgoing_refused,
                "incoming_refused": self.incoming_refused}

    # -- outgoing ----------------------------------------------------------------------
    def refuse(self, address: Address, network: Network, host: str = "",
               via: str = "") -> OutgoingDenied:
        """Count and log one refused outgoing connection; the error to raise."""
        self.outgoing_refused += 1
        error = OutgoingDenied(address, network, host)
        self.log.warn("outgoing connection refused", host=host or str(address),
                      addr=str(address), range=str(network), via=via or None)
        return error

    def check_address(self, address: str | bytes | Address, *, host: str = "",
                      via: str = "") -> None:
        """Raise :class:`OutgoingDenied` when ``address`` is in a listed range."""
        if not self.networks:
            return
        parsed = (address if isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address)
                  else parse_address(address))
        if parsed is None:
            return
        network = self.match(parsed)
        if network is not None:
            raise self.refuse(parsed, network, host, via)

    def check_url(self, url: str) -> None:
        """Refuse ``url`` when its host is a literal address in a listed range.

        A host name passes here: it is resolved when the connection is made and refused
        then if any of its addresses is listed (see :meth:`install`); use
        :meth:`check_host` to resolve it now.
        """
        if not self.networks:
            return
        try:
            host = urlsplit(url if "//" in url else f"//{url}").hostname or ""
        except ValueError:
            return
        if host and parse_address(host) is None:
            # Legacy numeric forms the resolver accepts too: 2130706433, 0x7f000001, 127.1
            try:
                infos = socket.getaddrinfo(host, None, 0, socket.SOCK_STREAM, 0,
                                           socket.AI_NUMERICHOST)
            except (OSError, UnicodeError):
                return  # a host name: checked when it is resolved
            self.check_infos(host, infos)
            return
        self.check_address(host, via="url")

    def check_infos(self, host: str, infos: Iterable[AddrInfo]) -> None:
        """Refuse ``host`` when any ``getaddrinfo`` result is listed."""
        for family, _type, _proto, _name, sockaddr in infos:
            if family in _INET:
                self.check_address(str(sockaddr[0]), host=host, via="resolve")

    async def check_host(self, host: str, port: int = 0) -> None:
        """Resolve ``host`` (without blocking trio) and refuse it like a connection."""
        if not self.networks or not host:
            return
        if parse_address(host) is not None:
            self.check_address(host)
            return
        infos = await trio.to_thread.run_sync(socket.getaddrinfo, host, port, 0,
                                              socket.SOCK_STREAM, abandon_on_cancel=True)
        self.check_infos(host, infos)

    def check_host_blocking(self, host: str, port: int = 0) -> None:
        """:meth:`check_host` for code running in a worker thread (e.g. ``smtplib``)."""
        if not self.networks or not host:
            return
        if parse_address(host) is not None:
            self.check_address(host)
            return
        self.check_infos(host, socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM))

    def install(self) -> bool:
        """Guard every trio connection made from here on by this task and the tasks and
        threads it starts; False if nothing to do.

        Must be called inside ``trio.run``. trio's hooks are per run, so they look the
        list up in a context variable: two daemons in one run each keep their own list,
        and one without a list is not guarded by the other's.
        """
        if not self.networks:
            return False
        _CURRENT.install(self)
        trio.socket.set_custom_hostname_resolver(DenyingResolver())
        factory = guarded_socket_factory()
        if factory is not None:
            trio.socket.set_custom_socket_factory(factory)
        else:  # pragma: no cover - depends on trio internals
            self.log.warn("literal addresses are checked by their callers only: this trio "
                          "version offers no socket class to guard")
        return True


class DenyingResolver(trio.abc.HostnameResolver):
    """``getaddrinfo`` in a worker thread, refusing names with an address the current
    deny list holds.

    Lookups for listening (``AI_PASSIVE``: the daemon's own listeners) are not checked.
    """

    async def getaddrinfo(self, host: bytes | None, port: bytes | str | int | None,
                          family: int = 0, type: int = 0, proto: int = 0,
                          flags: int = 0) -> list[AddrInfo]:
        infos = await trio.to_thread.run_sync(socket.getaddrinfo, host, port, family, type,
                                              proto, flags, abandon_on_cancel=True)
        denylist = _CURRENT.current()
        if denylist is not None and host is not None and not flags & socket.AI_PASSIVE:
            name = host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)
            denylist.check_infos(name, infos)
        return infos

    async def getnameinfo(self, sockaddr: tuple[str, int] | tuple[str, int, int, int],
                          flags: int) -> tuple[str, str]:
        return await trio.to_thread.run_sync(socket.getnameinfo, sockaddr, flags,
                                             abandon_on_cancel=True)


def guarded_socket_factory() -> trio.abc.SocketFactory | None:
    """A socket factory whose internet sockets refuse to connect or send to an address
    the current deny list holds; None when trio's socket class cannot be extended."""
    import trio._socket as trio_socket

    base = getattr(trio_socket, "_SocketType", None)
    if base is None:  # pragma: no cover - depends on trio internals
        return None

    # mypy cannot check a base class found at run time (trio's private socket class)
    class GuardedSocket(base):  # type: ignore[misc, valid-type]
        """A trio socket checking the peer address of every connect and sendto."""

        def _guard(self, address: Any) -> None:
            denylist = _CURRENT.current()
            if (denylist is not None and self.family in _INET
                    and isinstance(address, tuple) and address):
                denylist.check_address(str(address[0]), via="connect")

        async def connect(self, address: Any) -> None:
            self._guard(address)
            await super().connect(address)
            denylist = _CURRENT.current()
            if denylist is not None and self.family in _INET:
                # the peer really reached, whatever the address said
                try:
                    peer = self.getpeername()
                except OSError:
                    return
                try:
                    denylist.check_address(str(peer[0]), via="connect")
                except OutgoingDenied:
                    self.close()
                    raise

        async def sendto(self, *args: Any) -> int:
            self._guard(args[-1])
            return int(await super().sendto(*args))

    class Factory(trio.abc.SocketFactory):
        def socket(self, family: int | None = None, type: int | None = None,
                   proto: int | None = None) -> trio.socket.SocketType:
            sock = socket.socket(socket.AF_INET if family is None else family,
                                 socket.SOCK_STREAM if type is None else type,
                                 proto or 0)
            return GuardedSocket(sock)

    return Factory()

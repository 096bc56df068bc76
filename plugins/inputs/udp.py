"""UDP: ``[[udp]]`` listeners of InfluxDB line protocol, one or more lines per datagram.

Each enabled element binds its ``bind-address`` and writes what it receives into
``database``.``retention-policy`` exactly as a ``/write`` of the same lines would
(tasks, ``ingress`` statistics). As in Kapacitor each listener publishes the statistic
``udp`` (tag ``bind``, the bound address) with ``bytes_rx``, ``points_rx``,
``points_tx``, ``points_parse_fail`` (datagrams with a bad line), ``read_fail`` and
``tx_fail``.

kapa-core additions: ``precision`` (the unit of the timestamps, as InfluxDB's UDP
input reads it); a datagram with a bad line still delivers its good lines (Kapacitor
drops the whole datagram). Datagrams waiting in the socket are read together, up to
``buffer`` of them, and written as one batch.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from typing import Any

import trio
import trio.lowlevel

from kapa_core.plugin_api import (
    ConfigError,
    InputContext,
    InputListener,
    Section,
    hookimpl,
    parse_line_protocol,
    require_choice,
    setting,
)

from .netinput import RateLimitedLog, bound_name, udp_socket

#: The largest datagram read (Kapacitor's UDPPacketSize).
PACKET_SIZE = 65536
PRECISIONS = ("", "n", "ns", "u", "us", "ms", "s", "m", "h")


@dataclass(frozen=True, kw_only=True)
class UDPConfig:
    enabled: bool = False
    bind_address: str = ""
    database: str = ""
    retention_policy: str = ""
    buffer: int = setting(1000, doc="Datagrams read and written together at most.")
    read_buffer: int = setting(0, doc="The socket's receive buffer in bytes (0: the "
                               "system's default).")
    precision: str = setting("", doc="kapa-core: the unit of the timestamps (n, u, ms, "
                             "s, m or h; empty: nanoseconds).")

    def validate(self) -> None:
        require_choice(self.precision, "precision", PRECISIONS)
        if self.buffer < 0 or self.read_buffer < 0:
            raise ConfigError("buffer", "must not be negative")
        if not self.enabled:
            return
        if ":" not in self.bind_address:
            raise ConfigError("bind-address", f"invalid address {self.bind_address!r} "
                              "(expected host:port)")
        if not self.database:
            raise ConfigError("database", "must be set when enabled = true")


class UDPListener:
    def __init__(self, config: UDPConfig, context: InputContext) -> None:
        self.config = config
        self.context = context
        self.log = context.log
        self.parse_failed = RateLimitedLog(context.log, "failed to parse points")
        self.read_failed = RateLimitedLog(context.log, "failed to read UDP message")

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        config = self.config
        # A failure here (address in use...) reaches the daemon before started(): at
        # start it stops the daemon naming this element, as Kapacitor's Open does.
        sock = udp_socket(config.bind_address, "", config.read_buffer)
        try:
            self.address = bound_name(sock)
            self.stats = self.context.statistic("udp", {"bind": self.address})
            self.log.info("started listening on UDP", address=self.address)
            task_status.started(self.address)
            await self._receive(sock)
        finally:
            sock.close()
            self.log.info("closed service")

    async def _receive(self, sock: socket.socket) -> None:
        stats = self.stats
        limit = max(self.config.buffer, 1)
        buf = bytearray(PACKET_SIZE)
        view = memoryview(buf)
        while True:
            await trio.lowlevel.wait_readable(sock)
            datagrams: list[bytes] = []
            size = 0
            while len(datagrams) < limit:
                try:
                    n = sock.recv_into(buf)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno in (errno.EBADF, errno.ENOTSOCK):
                        raise
                    stats.add("read_fail")
                    self.read_failed(err=str(exc))
                    break
                size += n
                datagrams.append(bytes(view[:n]))
            if not datagrams:
                continue
            stats.add("bytes_rx", size)
            self._write(datagrams)
            await trio.lowlevel.checkpoint()  # others run between bursts

    def _write(self, datagrams: list[bytes]) -> None:
        config = self.config
        stats = self.stats
        # Lines of different datagrams must not run together.
        body = b"\n".join(datagrams)
        result = parse_line_protocol(body, precision=config.precision or "n",
                                     database=config.database,
                                     retention_policy=config.retention_policy,
                                     max_errors=1)
        if result.bad_lines:
            failed = len(datagrams) if len(datagrams) == 1 else \
                self._failed_datagrams(datagrams)
            stats.add("points_parse_fail", failed)
            first = result.errors[0] if result.errors else None
            self.parse_failed(err=str(first) if first else "bad line",
                              bad_lines=result.bad_lines)
        points = result.points
        if not points:
            return
        stats.add("points_rx", len(points))
        try:
            self.context.write_points(config.database, config.retention_policy, points)
        except Exception as exc:  # a write the stream refuses: counted, not fatal
            stats.add("tx_fail")
            self.log.error("failed to write points to database", database=config.database,
                           err=str(exc) or type(exc).__name__)
            return
        stats.add("points_tx", len(points))

    def _failed_datagrams(self, datagrams: list[bytes]) -> int:
        """How many of ``datagrams`` hold a bad line (only counted when some do)."""
        precision = self.config.precision or "n"
        return sum(1 for d in datagrams
                   if parse_line_protocol(d, precision=precision, max_errors=0).bad_lines)


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="udp", schema=UDPConfig, multiple=True, element_key="bind-address",
                    doc="Receive line protocol over UDP.")]


@hookimpl
def kapa_input_listeners() -> list[InputListener]:
    return [InputListener(name="udp", section="udp", factory=UDPListener,
                          doc="InfluxDB line protocol in UDP datagrams.")]

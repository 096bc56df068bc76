"""A UDP socket that feeds line protocol into the stream of one database/retention policy.

What an InfluxDB ``udp://`` subscription sends to: every datagram holds one or more lines
of line protocol (nanosecond timestamps). As in Kapacitor's UDP service (itself InfluxDB's
UDP service):

- datagrams go from the socket into a queue of ``buffer`` packets; when the parser falls
  behind, new datagrams are dropped and counted instead of blocking the socket reader;
- a datagram with any malformed line is dropped whole, logged and counted;
- the points of a good datagram are written to ``database``/``retention_policy``.

``read_buffer`` (bytes, 0 = the OS default) sets the socket's receive buffer.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from kapa_core.logs import Logger
from kapa_core.models import lineprotocol

#: Largest datagram read; InfluxDB never sends more in one UDP packet.
MAX_DATAGRAM = 64 * 1024


@dataclass
class UDPStats:
    packets_received: int = 0
    packets_dropped: int = 0
    points_received: int = 0
    parse_failures: int = 0
    write_failures: int = 0


class UDPListener:
    """Bound by :meth:`open`, served in the nursery given there, stopped by :meth:`close`."""

    def __init__(self, database: str, retention_policy: str, *, host: str, port: int,
                 buffer: int, read_buffer: int,
                 write_points: Callable[[str, str, list[Any]], None], log: Logger) -> None:
        self.database = database
        self.retention_policy = retention_policy
        self.host = host
        self.port = port
        self.buffer = max(1, buffer)
        self.read_buffer = read_buffer
        self.write_points = write_points
        self.log = log
        self.stats = UDPStats()
        self._scope = trio.CancelScope()

    @property
    def bind(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    async def open(self, nursery: trio.Nursery) -> int:
        """Bind the socket (``port`` 0 picks a free one) and start serving; returns the port.

        Raises ``OSError`` when the address cannot be bound.
        """
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = trio.socket.socket(family, socket.SOCK_DGRAM)
        try:
            if self.read_buffer > 0:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.read_buffer)
            await sock.bind((self.host, self.port))
        except BaseException:
            sock.close()
            raise
        self.port = int(sock.getsockname()[1])
        nursery.start_soon(self._serve, sock)
        return self.port

    def close(self) -> None:
        self._scope.cancel()

    async def _serve(self, sock: trio.socket.SocketType) -> None:
        send, receive = trio.open_memory_channel[bytes](self.buffer)
        with self._scope, sock:
            self.log.info("started UDP listener", db=self.database, rp=self.retention_policy,
                          bind=self.bind)
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._parse, receive)
                    while True:
                        data = await sock.recv(MAX_DATAGRAM)
                        self.stats.packets_received += 1
                        try:
                            send.send_nowait(data)
                        except trio.WouldBlock:
                            self.stats.packets_dropped += 1
            finally:
                self.log.info("stopped UDP listener", db=self.database,
                              rp=self.retention_policy, bind=self.bind)

    async def _parse(self, receive: trio.MemoryReceiveChannel[bytes]) -> None:
        async for data in receive:
            result = lineprotocol.parse(data, precision="n", database=self.database,
                                        retention_policy=self.retention_policy)
            if result.errors:
                self.stats.parse_failures += 1
                self.log.info("failed to parse points", db=self.database,
                              rp=self.retention_policy, err=str(result.errors[0]))
                continue
            self.stats.points_received += len(result.points)
            try:
                self.write_points(self.database, self.retention_policy, result.points)
            except Exception as exc:  # the stream must never take the listener down
                self.stats.write_failures += 1
                self.log.error("failed to write points", db=self.database,
                               rp=self.retention_policy, err=f"{type(exc).__name__}: {exc}")

"""Graphite: ``[[graphite]]`` listeners of the Graphite plaintext protocol, TCP or UDP.

Each enabled element listens on ``bind-address`` (``protocol`` tcp or udp) for lines
``<path> <value> [<timestamp>]`` and writes one point per line into
``database``.``retention-policy``, as a ``/write`` of the same points would (tasks,
``ingress`` statistics). ``templates``, ``separator`` and ``tags`` map a path to the
measurement, tags and field as InfluxDB's graphite input does (see
:mod:`.graphite_templates`).

Statistics: Kapacitor 1.5.7 publishes none for this listener. kapa-core publishes
InfluxDB's: ``graphite`` with the tags ``proto`` and ``bind`` (the bound address) and
the fields ``pointsRx`` (lines read), ``bytesRx``, ``pointsParseFail``,
``pointsNaNFail`` (NaN values, dropped without a log line as InfluxDB does),
``batchesTx``, ``pointsTx``, ``batchesTxFail``, ``connsActive``, ``connsHandled``; and
``linesTooLong`` and ``connsRefused`` for its own limits (see :mod:`.netinput`).

Points are written as soon as a read from the socket has been parsed, at most
``batch-size`` per write; ``batch-pending`` and ``batch-timeout`` are accepted and not
needed. ``consistency-level`` is accepted and unused, as in Kapacitor.
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
    Duration,
    InputContext,
    InputListener,
    Point,
    Section,
    hookimpl,
    setting,
)

from .graphite_templates import (
    DEFAULT_SEPARATOR,
    GraphiteError,
    GraphiteParser,
    UnsupportedValue,
    tag_pairs,
    validate,
)
from .netinput import (
    READ_SIZE,
    LineBuffer,
    RateLimitedLog,
    bound_name,
    open_tcp,
    peer_name,
    serve_tcp,
    udp_socket,
)

DEFAULT_BIND = ":2003"
DEFAULT_DATABASE = "graphite"
#: The largest datagram read (InfluxDB's udpBufferSize).
UDP_PACKET = 65536
#: Datagrams waiting in the socket read together before one write.
UDP_BURST = 1000


@dataclass(frozen=True, kw_only=True)
class GraphiteConfig:
    enabled: bool = False
    bind_address: str = ":2003"
    database: str = "graphite"
    retention_policy: str = ""
    protocol: str = setting("tcp", doc="tcp or udp.")
    batch_size: int = 5000
    batch_pending: int = 10
    batch_timeout: Duration = Duration(1_000_000_000)
    consistency_level: str = "one"
    templates: list[str] = setting([], doc="[filter] <template> [tag=value,...] lines.")
    tags: list[str] = setting([], doc="Tags added to every point (tag=value).")
    separator: str = setting(".", doc="Joins the parts of a measurement, tag or field.")
    udp_read_buffer: int = setting(0, doc="The UDP socket's receive buffer in bytes.")

    def validate(self) -> None:
        if self.protocol.lower() not in ("", "tcp", "udp"):
            raise ConfigError("protocol", f"unrecognized Graphite input protocol "
                              f"{self.protocol}")
        if self.udp_read_buffer < 0:
            raise ConfigError("udp-read-buffer", "must not be negative")
        for key, templates, tags in (("templates", self.templates, ()),
                                     ("tags", (), self.tags)):
            try:
                validate(templates, tags)
            except ValueError as exc:
                raise ConfigError(key, str(exc)) from None
        address = self.bind_address or DEFAULT_BIND
        if self.enabled and ":" not in address:
            raise ConfigError("bind-address", f"invalid address {address!r} "
                              "(expected host:port)")


class GraphiteListener:
    def __init__(self, config: GraphiteConfig, context: InputContext) -> None:
        self.config = config
        self.context = context
        self.log = context.log
        self.protocol = (config.protocol or "tcp").lower()
        self.database = config.database or DEFAULT_DATABASE
        self.retention_policy = config.retention_policy
        self.batch_size = config.batch_size if config.batch_size > 0 else 5000
        self.parser = GraphiteParser(config.templates,
                                     separator=config.separator or DEFAULT_SEPARATOR,
                                     tags=tag_pairs(config.tags))
        self.parse_failed = RateLimitedLog(context.log, "unable to parse line")
        self.too_long = RateLimitedLog(context.log, "line too long, dropped")
        self.write_failed = RateLimitedLog(context.log, "failed to write point batch to "
                                           "database")
        self.client_failed = RateLimitedLog(context.log, "connection failed")
        self.refused = RateLimitedLog(context.log, "too many connections, closing a "
                                      "new one")
        self.accept_failed = RateLimitedLog(context.log, "error accepting TCP connection")
        self.read_failed = RateLimitedLog(context.log, "failed to read UDP message")

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        config = self.config
        # Binding fails (address in use...) before started(): at start the daemon
        # stops naming this element, as Kapacitor's Open does.
        if self.protocol == "udp":
            sock = udp_socket(config.bind_address, DEFAULT_BIND, config.udp_read_buffer)
            try:
                self._started(bound_name(sock), task_status)
                await self._receive_udp(sock)
            finally:
                sock.close()
                self.log.info("closed service")
            return
        listeners = await open_tcp(config.bind_address, DEFAULT_BIND)
        try:
            self._started(bound_name(listeners[0].socket), task_status)
        except BaseException:
            for listener in listeners:
                listener.socket.close()
            raise
        try:
            await serve_tcp(listeners, self._client, refused=self._refused,
                            accept_failed=lambda err: self.accept_failed(err=err),
                            failed=self._client_failed)
        finally:
            self.log.info("closed service")

    def _started(self, address: str, task_status: Any) -> None:
        self.address = address
        self.stats = stats = self.context.statistic(
            "graphite", {"proto": self.protocol, "bind": address})
        for name in ("pointsRx", "bytesRx", "pointsParseFail", "pointsNaNFail",
                     "batchesTx", "pointsTx", "batchesTxFail", "connsActive",
                     "connsHandled", "linesTooLong", "connsRefused"):
            stats.set(name, 0)
        self.log.info("started graphite service", protocol=self.protocol.upper(),
                      address=address, batch_size=self.batch_size)
        task_status.started(address)

    def _client_failed(self, exc: BaseException) -> None:
        self.client_failed(err=f"{type(exc).__name__}: {exc}")

    def _refused(self) -> None:
        self.stats.add("connsRefused")
        self.refused()

    # -- TCP ---------------------------------------------------------------------------
    async def _client(self, stream: trio.SocketStream) -> None:
        stats = self.stats
        stats.add("connsActive")
        stats.add("connsHandled")
        lines = LineBuffer()
        try:
            while True:
                data = await stream.receive_some(READ_SIZE)
                if not data:
                    break  # a last line without a newline is dropped, as InfluxDB does
                stats.add("bytesRx", len(data))
                block, dropped = lines.feed(data)
                if dropped:
                    stats.add("linesTooLong", dropped)
                    stats.add("pointsParseFail", dropped)
                    self.too_long(client=peer_name(stream), limit=lines.limit)
                if block:
                    self._handle(block.decode("utf-8", "replace").split("\n"))
        finally:
            stats.add("connsActive", -1)

    # -- UDP ---------------------------------------------------------------------------
    async def _receive_udp(self, sock: socket.socket) -> None:
        stats = self.stats
        buf = bytearray(UDP_PACKET)
        view = memoryview(buf)
        while True:
            await trio.lowlevel.wait_readable(sock)
            lines: list[str] = []
            size = 0
            for _ in range(UDP_BURST):
                try:
                    n = sock.recv_into(buf)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno in (errno.EBADF, errno.ENOTSOCK):
                        raise
                    self.read_failed(err=str(exc))
                    break
                size += n
                lines.extend(str(view[:n], "utf-8", "replace").split("\n"))
            if size:
                stats.add("bytesRx", size)
            if lines:
                try:
                    self._handle(lines)
                except Exception as exc:  # one datagram never stops the listener
                    self._client_failed(exc)
            await trio.lowlevel.checkpoint()  # others run between bursts

    # -- both --------------------------------------------------------------------------
    def _handle(self, lines: list[str]) -> None:
        stats = self.stats
        stats.add("pointsRx", len(lines))
        parse = self.parser.parse
        database, rp = self.database, self.retention_policy
        points: list[Point] = []
        for line in lines:
            line = line.strip()
            if not line:
                continue
            try:
                name, tags, fields, stamp = parse(line)
            except UnsupportedValue as exc:
                if exc.value != exc.value:  # NaN: dropped without a word, as InfluxDB
                    stats.add("pointsNaNFail")
                    continue
                stats.add("pointsParseFail")
                self.parse_failed(line=line[:200], err=str(exc))
                continue
            except GraphiteError as exc:
                stats.add("pointsParseFail")
                self.parse_failed(line=line[:200], err=str(exc))
                continue
            points.append(Point(name, tags, fields, stamp, database, rp))
        size = self.batch_size
        for start in range(0, len(points), size):
            batch = points[start:start + size]
            try:
                self.context.write_points(database, rp, batch)
            except Exception as exc:  # refused by the stream: counted, never fatal
                stats.add("batchesTxFail")
                self.write_failed(database=database, err=str(exc) or type(exc).__name__)
                continue
            stats.add("batchesTx")
            stats.add("pointsTx", len(batch))


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="graphite", schema=GraphiteConfig, multiple=True,
                    element_key="bind-address",
                    doc="Receive Graphite plaintext metrics.")]


@hookimpl
def kapa_input_listeners() -> list[InputListener]:
    return [InputListener(name="graphite", section="graphite", factory=GraphiteListener,
                          doc="Graphite plaintext lines over TCP or UDP.")]

"""collectd: the ``[collectd]`` listener of collectd's binary network protocol over UDP.

Datagrams are read with :mod:`kapa_plugins.inputs.collectd_protocol` into points named
as Kapacitor 1.5.7 names them (``<plugin>_<data source>``, field ``value``, tags
``host``, ``instance``, ``type``, ``type_instance``) and written into ``database``.
``retention-policy`` as a ``/write`` of the same points would (tasks, ``ingress``
statistics), in batches: a batch is written when it holds ``batch-size`` points or when
its first point has waited ``batch-timeout``, as InfluxDB's point batcher does. Writes
are synchronous, so no batch ever waits behind another and ``batch-pending`` has
nothing to bound (the key is accepted).

Statistics (a kapa-core addition, Kapacitor publishes none for collectd): ``collectd``
with the tag ``bind`` and InfluxDB's fields ``pointsRx``, ``bytesRx``,
``pointsParseFail`` (datagrams not read to their end), ``readFail``, ``batchesTx``,
``pointsTx``, ``batchesTxFail`` and ``droppedPointsInvalid`` (values dropped: NaN, a
type types.db lacks, a time out of range).

Different from Kapacitor on purpose: datagrams up to 64 KiB are read (Kapacitor cuts
them at 1452 bytes); the points before a broken part are kept (Kapacitor drops the
datagram); a value whose type types.db lacks is dropped and counted (Kapacitor names it
``<plugin>_``); high-resolution times are converted exactly (Kapacitor's conversion puts
them up to 0.153 s late); signatures are skipped at ``security-level = "none"`` and
checked at ``"sign"`` (Kapacitor drops every signed datagram and has no such keys).
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass, replace
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
    require_choice,
    setting,
)

from .collectd_protocol import (
    SECURITY_LEVELS,
    Parsed,
    Parser,
    TypesDBError,
    load_types_db,
    read_auth_file,
)
from .netinput import RateLimitedLog, bound_name, udp_socket

#: The largest datagram read (a UDP payload's limit; collectd's MaxPacketSize at most).
PACKET_SIZE = 65536
#: Datagrams read from the socket in one go at most (about 6,000 points of collectd's
#: 1452-byte packets: 20 ms or so before other tasks run again).
BURST = 100
STATISTICS = ("pointsRx", "bytesRx", "pointsParseFail", "readFail", "batchesTx",
              "pointsTx", "batchesTxFail", "droppedPointsInvalid")


@dataclass(frozen=True, kw_only=True)
class CollectdConfig:
    enabled: bool = False
    bind_address: str = ":25826"
    database: str = "collectd"
    retention_policy: str = ""
    batch_size: int = setting(5000, doc="Points written together at most.")
    batch_pending: int = setting(10, doc="Accepted for compatibility (writes never wait).")
    batch_timeout: Duration = setting(Duration(10_000_000_000), doc="The longest a point "
                                      "waits for its batch to fill.")
    read_buffer: int = setting(0, doc="The socket's receive buffer in bytes (0: the "
                               "system's default).")
    typesdb: str = setting("/usr/share/collectd/types.db", doc="A types.db file or a "
                           "directory of them.")
    security_level: str = setting("none", doc="kapa-core: none or sign (only data "
                                  "signed by a user of auth-file).")
    auth_file: str = setting("", doc="kapa-core: collectd's AuthFile ('user: password' "
                             "lines) for security-level sign.")

    def validate(self) -> None:
        require_choice(self.security_level, "security-level", SECURITY_LEVELS)
        if self.security_level == "encrypt":
            raise ConfigError("security-level", "encrypt is not supported: decrypting "
                              "collectd's AES-256 parts needs a cipher library kapa-core "
                              "does not ship; use sign, or none behind a trusted network")
        if self.batch_size < 0 or self.batch_pending < 0:
            raise ConfigError("batch-size", "must not be negative")
        if self.read_buffer < 0:
            raise ConfigError("read-buffer", "must not be negative")
        if not self.enabled:
            return
        if self.bind_address and ":" not in self.bind_address:
            raise ConfigError("bind-address", f"invalid address {self.bind_address!r} "
                              "(expected host:port)")
        if self.security_level == "sign" and not self.auth_file:
            raise ConfigError("auth-file", "must be set when security-level is sign")


class CollectdListener:
    def __init__(self, config: CollectdConfig, context: InputContext) -> None:
        # Empty keys mean their defaults, as InfluxDB's WithDefaults reads them.
        default = CollectdConfig()
        self.config = config = replace(
            config, bind_address=config.bind_address or default.bind_address,
            database=config.database or default.database,
            typesdb=config.typesdb or default.typesdb)
        self.context = context
        self.log = context.log
        self.batch: list[Point] = []
        self.deadline = float("inf")  # when the pending batch must be written
        self.parse_failed = RateLimitedLog(context.log, "failed to parse collectd packet")
        self.invalid = RateLimitedLog(context.log, "dropped invalid collectd values")
        self.read_failed = RateLimitedLog(context.log, "failed to read UDP message")
        self.write_failed = RateLimitedLog(context.log,
                                           "failed to write point batch to database")

    def _load(self) -> Parser:
        config = self.config
        self.log.info("loading types.db", path=config.typesdb)
        try:
            types = load_types_db(config.typesdb, lambda message: self.log.warn(
                "skipped a types.db file", err=message))
        except TypesDBError as exc:
            raise ConfigError("typesdb", str(exc)) from None
        passwords = None
        if config.security_level == "sign":
            try:
                passwords = read_auth_file(config.auth_file)
            except ValueError as exc:
                raise ConfigError("auth-file", str(exc)) from None
        return Parser(types, config.security_level, passwords)

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        config = self.config
        # Failures here (types.db, auth-file, address in use...) reach the daemon before
        # started(): at start they stop it naming the section, as Kapacitor's Open does.
        self.parser = self._load()
        sock = udp_socket(config.bind_address, "", config.read_buffer)
        try:
            self.address = bound_name(sock)
            self.stats = self.context.statistic("collectd", {"bind": self.address})
            for name in STATISTICS:  # InfluxDB publishes every field from the start
                self.stats.set(name, 0)
            self.log.info("started listening on UDP", address=self.address,
                          types=len(self.parser.types))
            task_status.started(self.address)
            try:
                await self._receive(sock)
            finally:
                self._flush()
        finally:
            sock.close()
            self.log.info("closed service")

    async def _receive(self, sock: socket.socket) -> None:
        stats = self.stats
        buf = bytearray(PACKET_SIZE)
        view = memoryview(buf)
        parse = self.parser.parse
        batch_size = self.config.batch_size or 5000
        timeout = (self.config.batch_timeout or 10_000_000_000) / 1e9
        while True:
            with trio.move_on_at(self.deadline):
                await trio.lowlevel.wait_readable(sock)
            for _ in range(BURST):
                try:
                    n = sock.recv_into(buf)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno in (errno.EBADF, errno.ENOTSOCK):
                        raise
                    stats.add("readFail")
                    self.read_failed(err=str(exc))
                    break
                stats.add("bytesRx", n)
                try:
                    parsed = parse(bytes(view[:n]))
                except Exception as exc:  # a parser bug must not stop the listener
                    parsed = Parsed(error=f"{type(exc).__name__}: {exc}")
                if parsed.error:
                    stats.add("pointsParseFail")
                    self.parse_failed(err=parsed.error, bytes=n)
                if parsed.invalid:
                    stats.add("droppedPointsInvalid", parsed.invalid)
                    self.invalid(err=parsed.invalid_reason, dropped=parsed.invalid)
                points = parsed.points
                if not points:
                    continue
                stats.add("pointsRx", len(points))
                if not self.batch:
                    self.deadline = trio.current_time() + timeout
                self.batch.extend(points)
                while len(self.batch) >= batch_size:
                    full, self.batch = self.batch[:batch_size], self.batch[batch_size:]
                    self._write(full)
                    self.deadline = trio.current_time() + timeout if self.batch \
                        else float("inf")
            if self.batch and trio.current_time() >= self.deadline:
                self._flush()
            await trio.lowlevel.checkpoint()  # others run between bursts

    def _flush(self) -> None:
        batch, self.batch = self.batch, []
        self.deadline = float("inf")
        if batch:
            self._write(batch)

    def _write(self, points: list[Point]) -> None:
        config = self.config
        stats = self.stats
        try:
            self.context.write_points(config.database, config.retention_policy, points)
        except Exception as exc:  # a write the stream refuses: counted, not fatal
            stats.add("batchesTxFail")
            self.write_failed(database=config.database, err=str(exc) or type(exc).__name__)
            return
        stats.add("batchesTx")
        stats.add("pointsTx", len(points))


@hookimpl
def kapa_config_sections() -> list[Section]:
    return [Section(name="collectd", schema=CollectdConfig,
                    doc="Receive collectd metrics.")]


@hookimpl
def kapa_input_listeners() -> list[InputListener]:
    return [InputListener(name="collectd", section="collectd", factory=CollectdListener,
                          doc="collectd's binary network protocol over UDP.")]

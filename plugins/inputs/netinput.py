"""Pieces shared by the input listeners (``[[udp]]``, ``[collectd]``, ``[opentsdb]``,
``[[graphite]]``).

* :class:`RateLimitedLog`: one log line per kind of error every ``LOG_EVERY`` seconds.
* :func:`parse_address`: a ``host:port`` bind address (empty host: all interfaces).
* :class:`LineBuffer`: splits what a TCP client sends into whole lines, with a bound on
  the length of one line, so a client that sends 100 MB without a newline costs
  ``MAX_LINE`` bytes of memory, not 100 MB.
* :func:`open_tcp` and :func:`serve_tcp`: a TCP listener and its accept loop, one trio
  task per client, at most ``MAX_CONNECTIONS`` clients at a time.
* :func:`go_float` and :func:`go_int`: numbers read as Go's ``strconv`` reads them (the
  listeners' behaviour comes from InfluxDB's Go services).
"""

from __future__ import annotations

import errno
import math
import re
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

#: Errors of one kind are logged at most once per this many seconds.
LOG_EVERY = 10.0
#: The longest line a TCP listener accepts, in bytes (longer lines are dropped and
#: counted; the rest of the connection is read on).
MAX_LINE = 65536
#: Bytes read from a connection at a time.
READ_SIZE = 65536
#: Clients served at the same time by one TCP listener; a client beyond that is
#: disconnected at once and counted.
MAX_CONNECTIONS = 4096

_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_HEX_FLOAT = re.compile(r"[+-]?0[xX]([0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+",
                        re.ASCII)
_FLOAT_WORDS = {"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity",
                "nan", "+nan", "-nan"}


class RateLimitedLog:
    """Logs an error at most once per ``LOG_EVERY`` seconds, with the number of errors
    not logged in between (``suppressed``)."""

    def __init__(self, log: Any, message: str, level: str = "error") -> None:
        self.emit = getattr(log, level)
        self.message = message
        self.last = -LOG_EVERY
        self.skipped = 0

    def __call__(self, **fields: Any) -> None:
        now = time.monotonic()
        if now - self.last < LOG_EVERY:
            self.skipped += 1
            return
        self.emit(self.message, **fields, suppressed=self.skipped or None)
        self.last, self.skipped = now, 0


def parse_address(address: str, default: str) -> tuple[str | None, int]:
    """(host or None for all interfaces, port) of a ``host:port`` bind address; an
    empty address is ``default`` (as InfluxDB's services fill in their defaults)."""
    address = address or default
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise OSError(f"invalid bind-address {address!r} (expected host:port)")
    return host.strip("[]") or None, int(port)


def udp_socket(address: str, default: str, read_buffer: int = 0) -> socket.socket:
    """A bound, non-blocking UDP socket (OSError when the address is taken)."""
    host, port = parse_address(address, default)
    family = socket.AF_INET6 if host and ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if read_buffer:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, read_buffer)
            except OSError as exc:
                raise OSError(f"unable to set UDP read buffer to {read_buffer}: {exc}") \
                    from exc
        sock.bind((host or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def bound_name(sock: Any) -> str:
    """``host:port`` a socket is bound to."""
    bound = sock.getsockname()
    host = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    return f"{host}:{bound[1]}"


def peer_name(stream: trio.abc.Stream) -> str:
    """The client's address of a (possibly TLS-wrapped) socket stream."""
    while not isinstance(stream, trio.SocketStream):
        inner = getattr(stream, "transport_stream", None)
        if inner is None:
            return "?"
        stream = inner
    try:
        peer = stream.socket.getpeername()
    except OSError:
        return "?"
    return f"{peer[0]}:{peer[1]}"


async def open_tcp(address: str, default: str) -> list[trio.SocketListener]:
    """Listen on ``address`` (OSError when it is taken, before anything is served)."""
    host, port = parse_address(address, default)
    return await trio.open_tcp_listeners(port, host=host)


async def serve_tcp(listeners: list[trio.SocketListener],
                    handler: Callable[[trio.SocketStream], Awaitable[None]],
                    *, refused: Callable[[], None], accept_failed: Callable[[str], None],
                    failed: Callable[[BaseException], None],
                    limit: int = MAX_CONNECTIONS) -> None:
    """Accept clients on ``listeners`` until cancelled, each served by ``handler`` in its
    own task (the stream is closed when it returns). Beyond ``limit`` clients at a time
    a new client is closed at once and ``refused()`` is called; when the process runs
    out of file descriptors the accept loop waits a little instead of spinning. An
    error a handler did not expect ends that client only: ``failed(exc)`` is told."""
    active = 0

    async def client(stream: trio.SocketStream) -> None:
        nonlocal active
        try:
            async with stream:
                await handler(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away; the handler counted what it had to
        except Exception as exc:  # one client never stops the listener
            failed(exc)
        finally:
            active -= 1

    async def accept(listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        nonlocal active
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS,
                                     errno.ENOMEM):
                    raise
                accept_failed(str(exc))
                await trio.sleep(0.1)
                continue
            if active >= limit:
                refused()
                stream.socket.close()
                continue
            active += 1
            nursery.start_soon(client, stream)

    try:
        async with trio.open_nursery() as nursery:
            for listener in listeners:
                nursery.start_soon(accept, listener, nursery)
    finally:
        for listener in listeners:
            listener.socket.close()


class LineBuffer:
    """Whole lines out of a byte stream, at most ``limit`` bytes each.

    :meth:`feed` returns the complete lines received so far as one block (without its
    last newline; empty when no line is complete) and how many over-long lines it
    dropped. A line longer than ``limit`` is dropped up to its newline, however long.
    """

    __slots__ = ("limit", "pending", "skipping")

    def __init__(self, limit: int = MAX_LINE) -> None:
        self.limit = limit
        self.pending = b""
        self.skipping = False

    def feed(self, data: bytes | bytearray) -> tuple[bytes, int]:
        dropped = 0
        data = bytes(data)
        if self.skipping:
            newline = data.find(b"\n")
            if newline < 0:
                return b"", 0
            data = data[newline + 1:]
            self.skipping = False
        end = data.rfind(b"\n")
        if end < 0:
            if len(self.pending) + len(data) > self.limit:
                self.pending, self.skipping = b"", True
                return b"", 1
            self.pending += data
            return b"", 0
        if self.pending:
            first = data.find(b"\n")
            if len(self.pending) + first > self.limit:
                data, end = data[first + 1:], end - first - 1
                dropped = 1
                block = data[:end] if end >= 0 else b""
            else:
                block = self.pending + data[:end]
        else:
            block = data[:end]
        rest = data[end + 1:]
        if len(rest) > self.limit:
            rest, self.skipping, dropped = b"", True, dropped + 1
        self.pending = rest
        return block, dropped

    def rest(self) -> bytes:
        """What is left at the end of the stream: a last line without a newline."""
        rest, self.pending = (b"" if self.skipping else self.pending), b""
        return rest


def go_float(text: str) -> float:
    """``text`` read as Go's ``strconv.ParseFloat(text, 64)`` reads it; ValueError with
    Go's message when it cannot."""
    try:
        if not text.isascii():
            raise ValueError
        value = float(text)  # underscores between digits too, as Go since 1.13
    except ValueError:
        if _HEX_FLOAT.fullmatch(text):
            return float.fromhex(text)
        raise ValueError(f'strconv.ParseFloat: parsing "{text}": invalid syntax') from None
    if math.isinf(value) and text.lower() not in _FLOAT_WORDS:
        raise ValueError(f'strconv.ParseFloat: parsing "{text}": value out of range')
    return value


def go_int(text: str) -> int:
    """``text`` read as Go's ``strconv.ParseInt(text, 10, 64)``; ValueError otherwise."""
    if not _INT.fullmatch(text):
        raise ValueError(f'strconv.ParseInt: parsing "{text}": invalid syntax')
    value = int(text)
    if not -(1 << 63) <= value < (1 << 63):
        raise ValueError(f'strconv.ParseInt: parsing "{text}": value out of range')
    return value

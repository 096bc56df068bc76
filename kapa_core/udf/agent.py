"""Write user defined functions in Python: the agent side of the UDF wire protocol.

A UDF is a :class:`Handler` subclass. An :class:`Agent` reads requests from the daemon
(a process UDF's stdin, or one connection of a socket UDF), calls the handler, and writes
its responses back. The names are those of Kapacitor's Python agent, so a UDF written for
Kapacitor runs here after changing its imports to::

    from kapa_core.udf.agent import Agent, Handler, Server, udf_pb2

A process UDF::

    class Double(Handler):
        def __init__(self, agent):
            self._agent = agent
        def info(self):
            response = udf_pb2.Response()
            response.info.wants = udf_pb2.STREAM
            response.info.provides = udf_pb2.STREAM
            return response
        def init(self, init_req):
            response = udf_pb2.Response()
            response.init.success = True
            return response
        def point(self, point):
            response = udf_pb2.Response()
            response.point.CopyFrom(point)
            response.point.fieldsDouble["value"] *= 2
            self._agent.write_response(response)

    agent = Agent()
    agent.handler = Double(agent)
    agent.start()
    agent.wait()

The handler's methods are called from one thread, one at a time. ``info``, ``init``,
``snapshot`` and ``restore`` return their Response (a handler without state may leave
``snapshot`` and ``restore`` out: an empty snapshot is answered); ``begin_batch``, ``point`` and
``end_batch`` send what they produce with ``agent.write_response`` (thread-safe, so a
handler may also write from threads of its own). An exception from the handler ends the
agent after sending an error response: the daemon stops the task with that message.

Output is buffered and flushed whenever the agent has handled every request received so
far (and at once with ``write_response(response, flush=True)``): many points go out in one
write under load, and none waits for a keepalive when data is sparse.

This module needs only the standard library and ``protobuf``: a UDF process can import it
without the daemon's other dependencies.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import threading
import traceback
from typing import IO, Any, Protocol

from kapa_core.udf import udf_pb2
from kapa_core.udf.framing import FrameReader, FramingError, uvarint

logger = logging.getLogger("kapa_core.udf.agent")

_READ_SIZE = 256 * 1024


class Handler:
    """A user defined function: override the methods it needs (see the module doc)."""

    def info(self) -> Any:
        return None

    def init(self, init_req: Any) -> Any:
        return None

    def snapshot(self) -> Any:
        return None

    def restore(self, restore_req: Any) -> Any:
        return None

    def begin_batch(self, begin_req: Any) -> None:
        return None

    def point(self, point: Any) -> None:
        return None

    def end_batch(self, end_req: Any) -> None:
        return None


class EOF(Exception):
    """The daemon closed its side of the connection."""


def _read_some(stream: Any) -> bytes:
    """What is available on ``stream`` (at least one byte unless at its end), waiting
    only when nothing is: ``read1`` of a buffered stream, else ``read``."""
    read1 = getattr(stream, "read1", None)
    if read1 is not None:
        return bytes(read1(_READ_SIZE))
    return bytes(stream.read(_READ_SIZE))


class Agent:
    """Serves one handler over a pair of byte streams (stdin/stdout by default)."""

    def __init__(self, _in: IO[bytes] | None = None, out: IO[bytes] | None = None,
                 handler: Handler | None = None) -> None:
        self._in = _in if _in is not None else sys.stdin.buffer
        self._out = out if out is not None else sys.stdout.buffer
        self.handler = handler
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()
        self._pending = bytearray()

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Start serving in a thread; returns at once."""
        self._thread = threading.Thread(target=self._read_loop, name="udf-agent")
        self._thread.start()

    def wait(self) -> None:
        """Wait until the daemon closes the stream or an error ends the agent."""
        if self._thread is not None:
            self._thread.join()
        for stream in (self._in, self._out):
            with contextlib.suppress(OSError, ValueError):
                stream.close()

    # -- writing -----------------------------------------------------------------------
    def write_response(self, response: Any, flush: bool = False) -> None:
        """Send ``response`` (a ``udf_pb2.Response``) to the daemon. Thread-safe."""
        if response is None:
            raise ValueError("cannot write a None response")
        data = response.SerializeToString()
        with self._write_lock:
            self._pending += uvarint(len(data))
            self._pending += data
            if flush or len(self._pending) >= _READ_SIZE:
                self._flush_locked()

    def flush(self) -> None:
        with self._write_lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if self._pending:
            data, self._pending = bytes(self._pending), bytearray()
            self._out.write(data)
        self._out.flush()

    # -- reading -----------------------------------------------------------------------
    def _read_loop(self) -> None:
        reader = FrameReader()
        request = udf_pb2.Request()
        kind = "unknown"
        try:
            while True:
                data = _read_some(self._in)
                if not data:
                    break
                reader.feed(data)
                for payload in reader.frames():
                    request.ParseFromString(payload)
                    kind = request.WhichOneof("message") or "unknown"
                    self._dispatch(kind, request)
                self.flush()
            if reader.pending:
                raise FramingError("the stream ended inside a message")
        except (BrokenPipeError, ConnectionResetError):
            return  # the daemon went away: nothing left to answer
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            error = f"error processing request of type {kind}: {exc}"
            logger.error(error)
            response = udf_pb2.Response()
            response.error.error = error
            with contextlib.suppress(OSError, ValueError):
                self.write_response(response, flush=True)

    def _dispatch(self, kind: str, request: Any) -> None:
        handler = self.handler
        if handler is None:
            raise RuntimeError("the agent has no handler")
        if kind == "point":
            handler.point(request.point)
        elif kind == "begin":
            handler.begin_batch(request.begin)
        elif kind == "end":
            handler.end_batch(request.end)
        elif kind == "keepalive":
            response = udf_pb2.Response()
            response.keepalive.time = request.keepalive.time
            self.write_response(response)
        elif kind == "info":
            self._answer("info", handler.info())
        elif kind == "init":
            self._answer("init", handler.init(request.init))
        elif kind == "snapshot":
            self._answer("snapshot", handler.snapshot())
        elif kind == "restore":
            self._answer("restore", handler.restore(request.restore))
        else:
            logger.error("received unhandled request %s", kind)

    def _answer(self, kind: str, response: Any) -> None:
        if response is None:
            if kind not in ("snapshot", "restore"):
                raise RuntimeError(f"the handler's {kind} method returned no response")
            # A handler without state need not implement snapshot and restore: it
            # answers an empty snapshot and accepts any (Kapacitor's agent fails the
            # task at the first snapshot instead).
            response = udf_pb2.Response()
            if kind == "snapshot":
                response.snapshot.snapshot = b""
            else:
                response.restore.success = True
        self.write_response(response, flush=True)


class Accepter(Protocol):
    """What a :class:`Server` hands each connection to."""

    def accept(self, conn: Any, addr: Any) -> None: ...


class Server:
    """A socket UDF: listens on a unix socket and gives every connection the daemon makes
    (one per task node, and one to ask for the info) to ``accepter.accept(conn, addr)``
    in a thread of its own; ``conn`` is a file object for reading and writing, ready to
    be both streams of an :class:`Agent`."""

    def __init__(self, socket_path: str, accepter: Accepter) -> None:
        self._socket_path = socket_path
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(socket_path)
        self._accepter = accepter

    def serve(self) -> None:
        """Accept connections until :meth:`stop` (or an interrupt)."""
        self._listener.listen(16)
        try:
            while True:
                conn, addr = self._listener.accept()
                stream = conn.makefile(mode="rwb")
                conn.close()  # the file object keeps the socket open
                threading.Thread(target=self._accepter.accept, args=(stream, addr),
                                 daemon=True).start()
        except (OSError, KeyboardInterrupt):
            pass
        finally:
            self.stop()

    def stop(self) -> None:
        self._listener.close()
        with contextlib.suppress(OSError):
            os.remove(self._socket_path)


__all__ = ["EOF", "Accepter", "Agent", "Handler", "Server", "udf_pb2"]

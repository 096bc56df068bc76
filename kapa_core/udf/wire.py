"""Functions that speak the UDF wire protocol over a byte stream: a process's pipes or a
unix socket. A bridge supplies how to connect (:class:`Connector`); everything else —
the info request, init, restore and snapshot, data in both directions, keepalives and
the watchdog — is here, the same for every transport.

A session is driven with plain synchronous calls by its task node: each call encodes one
request into an outgoing buffer, and a writer task sends the buffer as it fills, many
messages per write. A reader task decodes the responses and hands data on to the node's
output as it arrives. As in Kapacitor, the task starts at once: a function that refuses
its options (``failed to initialize processes <error>``) or its snapshot (``error
restoring snapshot: <error>``) stops the task as soon as it answers.

Errors end the session and stop the task, never the daemon: an error response (its text
alone, as Kapacitor reports it), a malformed frame (``read error: ...``), a stream that
ends, a write that fails, no answer within ``timeout`` (``keepalive timedout, last
keepalive received was: <time>``). The message carries the connection's own account of
what happened (for a process: its exit status and the last lines of its stderr).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import trio
from google.protobuf.message import DecodeError

from kapa_core.logs import Logger
from kapa_core.models.batch import group_id
from kapa_core.models.duration import Duration
from kapa_core.models.point import Point
from kapa_core.udf import (
    BeginBatch,
    EdgeType,
    EndBatch,
    UDFError,
    UDFInfo,
    UDFNodeContext,
    UDFOption,
    ValueType,
)
from kapa_core.udf import udf_pb2 as pb
from kapa_core.udf.framing import FrameReader, FramingError, frame, uvarint

#: Requests buffered for a function that does not read them: past this the task stops
#: (a UDF that stopped reading would otherwise take all memory).
MAX_BUFFERED = 64 * 1024 * 1024
_READ_SIZE = 256 * 1024
_FLUSH_AT = 64 * 1024


class Connection(Protocol):
    """A connection to one running use of a function."""

    async def send_all(self, data: bytes) -> None: ...

    async def receive_some(self, max_bytes: int) -> bytes: ...

    async def send_eof(self) -> None:
        """No more requests: a process's stdin is closed, a socket shut for writing."""

    async def aclose(self, grace: float) -> None:
        """End the connection (a process gets ``grace`` seconds to exit after its
        stdin closed, then is killed), waiting until it is over."""

    def account(self) -> str:
        """What the other side did, for error messages: for a process its exit status
        and the tail of its stderr; "" when there is nothing to add."""


#: Opens a connection; the nursery runs tasks that belong to it (a process's stderr).
Connector = Callable[[trio.Nursery, Logger], Awaitable[Connection]]


# -- conversions -----------------------------------------------------------------------------
# Shared by the wire session and the in-process bridge (kapa_core.udf.inprocess); on the
# hot path of every UDF, so written for speed: empty maps are not copied, and nothing is
# set that is already the message's default.
def _fill_fields(msg: Any, fields: dict[str, Any]) -> None:
    for key, value in fields.items():
        cls = type(value)
        if cls is float:
            msg.fieldsDouble[key] = value
        elif cls is int:
            msg.fieldsInt[key] = value
        elif cls is str:
            msg.fieldsString[key] = value
        elif cls is bool:
            msg.fieldsBool[key] = value
        else:
            raise UDFError(f"field {key!r} has a value of type {cls.__name__} the UDF "
                           "protocol cannot carry")


def _fields(msg: Any) -> dict[str, Any]:
    # Kapacitor merges strings, integers, floats and booleans in this order. (A dict
    # comprehension copies a protobuf map twice as fast as dict() does.)
    fs, fi, fd, fb = msg.fieldsString, msg.fieldsInt, msg.fieldsDouble, msg.fieldsBool
    fields: dict[str, Any]
    if fs:
        fields = {k: fs[k] for k in fs}
        if fi:
            fields.update({k: fi[k] for k in fi})
        if fd:
            fields.update({k: fd[k] for k in fd})
    elif fi:
        fields = {k: fi[k] for k in fi}
        if fd:
            fields.update({k: fd[k] for k in fd})
    else:
        fields = {k: fd[k] for k in fd}
    if fb:
        fields.update({k: fb[k] for k in fb})
    return fields


def fill_point(msg: Any, p: Point) -> None:
    """Set the empty ``udf_pb2.Point`` ``msg`` from ``p``."""
    msg.time = p.time
    msg.name = p.name
    if p.database:
        msg.database = p.database
    if p.retention_policy:
        msg.retentionPolicy = p.retention_policy
    group = p.group
    if group:
        msg.group = group
        # byName, as the group ID says it: grouped by measurement, it starts with the name
        name = p.name
        if name and group.startswith(name) and (len(group) == len(name)
                                                or group[len(name)] == "\n"):
            msg.byName = True
    if p.dims:
        msg.dimensions.extend(p.dims)
    if p.tags:
        msg.tags.update(p.tags)
    _fill_fields(msg, p.fields)


def point_from(msg: Any) -> Point:
    """The Point a ``udf_pb2.Point`` carries (its group rebuilt from its dimensions)."""
    name = msg.name
    tags = msg.tags
    tags = {k: tags[k] for k in tags} if tags else {}
    if msg.dimensions:
        dims = tuple(msg.dimensions)
        group = group_id(name, tags, dims, msg.byName)
    else:
        dims = ()
        group = name if msg.byName else ""
    return Point(name, tags, _fields(msg), msg.time, msg.database, msg.retentionPolicy,
                 group, dims)


def fill_begin(msg: Any, begin: BeginBatch) -> None:
    """Set the empty ``udf_pb2.BeginBatch`` ``msg`` from ``begin``."""
    msg.name = begin.name
    msg.group = begin.group
    if begin.tags:
        msg.tags.update(begin.tags)
    msg.size = begin.size
    msg.byName = begin.by_name


def begin_from(msg: Any) -> BeginBatch:
    return BeginBatch(msg.name, msg.group, dict(msg.tags), (), msg.byName, msg.size)


def fill_end(msg: Any, end: EndBatch) -> None:
    """Set the empty ``udf_pb2.EndBatch`` ``msg`` from ``end``."""
    msg.name = end.name
    msg.group = end.group
    msg.tmax = end.tmax
    if end.tags:
        msg.tags.update(end.tags)
    msg.byName = end.by_name


def end_from(msg: Any, by_name: bool) -> EndBatch:
    """The EndBatch of ``msg``; ``by_name`` is that of the batch's BeginBatch."""
    return EndBatch(msg.name, msg.group, dict(msg.tags), msg.tmax, (), by_name)


def option_values(options: Sequence[UDFOption]) -> list[Any]:
    """The script's option calls as InitRequest options."""
    out = []
    for option in options:
        msg = pb.Option(name=option.name)
        for value in option.values:
            cls = type(value)
            if cls is bool:
                msg.values.add(type=pb.BOOL, boolValue=value)
            elif cls is Duration:
                msg.values.add(type=pb.DURATION, durationValue=int(value))
            elif cls is int:
                msg.values.add(type=pb.INT, intValue=value)
            elif cls is float:
                msg.values.add(type=pb.DOUBLE, doubleValue=value)
            else:
                msg.values.add(type=pb.STRING, stringValue=str(value))
        out.append(msg)
    return out


def info_from(response: Any) -> UDFInfo:
    """A UDFInfo from an InfoResponse; unknown enum numbers are a UDFError."""
    try:
        return UDFInfo(wants=EdgeType(response.wants), provides=EdgeType(response.provides),
                       options={name: tuple(ValueType(t) for t in option.valueTypes)
                                for name, option in response.options.items()})
    except ValueError as exc:
        raise UDFError(f"invalid info response: {exc}") from None


def _go_time(ns: int) -> str:
    """A time as Go's ``time.Time.String()`` writes it (UTC)."""
    seconds, frac = divmod(ns, 1_000_000_000)
    stamp = (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)).strftime(
        "%Y-%m-%d %H:%M:%S")
    fraction = f".{frac:09d}".rstrip("0") if frac else ""
    return f"{stamp}{fraction} +0000 UTC"


# -- a session -------------------------------------------------------------------------------
class _Answer:
    """One management request waiting for its response."""

    __slots__ = ("event", "response")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.response: Any = None


class WireSession:
    """One use of a function by one task node, over one connection."""

    def __init__(self, name: str, connect: Connector, timeout: float,
                 options: Sequence[UDFOption], context: UDFNodeContext) -> None:
        self.name = name
        self._connect = connect
        self._timeout = timeout
        self._context = context
        self._output = context.output
        self._log = context.logger
        self._buffer = bytearray()
        self._wake = trio.Event()
        self._closed = False
        self._error = ""
        self._failed = trio.Event()
        self._last_response = time.time_ns()
        self._snapshots: deque[_Answer] = deque()
        self._with_account = True  # the connection's account is added to the error
        self._batch: Any = None  # the BeginBatch a response opened
        request = pb.Request()
        request.init.options.extend(option_values(options))
        request.init.taskID = context.task_id
        request.init.nodeID = context.node_id
        self._send(request)
        context.start_soon(self._run)

    # -- requests in (synchronous, from the node) ---------------------------------------
    def _send(self, request: Any) -> None:
        # Once per point: the frame header of a small message is one byte, and the
        # writer is woken only when it sleeps.
        if self._error:
            raise UDFError(self._error)
        data = request.SerializeToString()
        buffer = self._buffer
        size = len(data)
        if size < 0x80:
            buffer.append(size)
        else:
            buffer += uvarint(size)
        buffer += data
        if len(buffer) > MAX_BUFFERED:
            self._fail(f"the UDF is not reading its input: more than {MAX_BUFFERED} bytes "
                       "of requests are waiting")
            raise UDFError(self._error)
        wake = self._wake
        if not wake.is_set():
            wake.set()


    def point(self, p: Point) -> None:
        request = pb.Request()
        fill_point(request.point, p)
        self._send(request)

    def begin_batch(self, begin: BeginBatch) -> None:
        request = pb.Request()
        fill_begin(request.begin, begin)
        self._send(request)

    def end_batch(self, end: EndBatch) -> None:
        request = pb.Request()
        fill_end(request.end, end)
        self._send(request)

    def restore(self, data: bytes) -> None:
        request = pb.Request()
        request.restore.snapshot = data
        self._send(request)

    async def snapshot(self) -> bytes:
        request = pb.Request()
        request.snapshot.SetInParent()
        answer = _Answer()
        self._snapshots.append(answer)
        self._send(request)
        response = await self._await(answer, "snapshot")
        return bytes(response.snapshot)

    async def _await(self, answer: _Answer, kind: str) -> Any:
        async with trio.open_nursery() as nursery:
            async def failed() -> None:
                await self._failed.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(failed)
            await answer.event.wait()
            nursery.cancel_scope.cancel()
        if answer.response is None:
            raise UDFError(self._error or f"no answer to the {kind} request")
        return answer.response

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    # -- the connection --------------------------------------------------------------------
    def _fail(self, message: str) -> None:
        if not self._error:
            self._error = message
            self._failed.set()

    async def _run(self) -> None:
        connection: Connection | None = None
        try:
            async with trio.open_nursery() as nursery:
                connection = await self._connect(nursery, self._log)
                try:
                    async with trio.open_nursery() as io:
                        io.start_soon(self._writer, connection, io)
                        io.start_soon(self._reader, connection, io)
                        if self._timeout < math.inf:
                            io.start_soon(self._keepalive, io)
                        await self._failed.wait()
                        io.cancel_scope.cancel()
                finally:
                    with trio.CancelScope(shield=True):
                        await connection.aclose(grace=0.0 if self._error else 2.0)
                    nursery.cancel_scope.cancel()
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._fail(f"{self.name}: {exc}")
        if self._error and not self._closed:
            account = connection.account() if connection is not None and \
                self._with_account else ""
            raise UDFError(self._error + (f" ({account})" if account else ""))

    async def _writer(self, connection: Connection, io: trio.Nursery) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                while self._buffer:
                    data, self._buffer = bytes(self._buffer), bytearray()
                    await connection.send_all(data)
                if self._closed:
                    with contextlib.suppress(OSError, trio.BrokenResourceError,
                                             trio.ClosedResourceError):
                        await connection.send_eof()
                    return
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            if not self._closed:
                self._fail(f"write error: {exc}")

    async def _reader(self, connection: Connection, io: trio.Nursery) -> None:
        reader = FrameReader()
        response = pb.Response()
        try:
            while True:
                data = await connection.receive_some(_READ_SIZE)
                if not data:
                    if reader.pending:
                        raise FramingError("the stream ended inside a message")
                    break
                self._last_response = time.time_ns()
                reader.feed(data)
                output, handle = self._output, self._handle
                for payload in reader.frames():
                    response.ParseFromString(payload)
                    if response.WhichOneof("message") == "point":  # the usual one
                        output.point(point_from(response.point))
                    else:
                        handle(response)
        except FramingError as exc:
            self._fail(f"read error: {exc}")
            return
        except DecodeError as exc:
            self._fail(f"read error: {exc}")
            return
        except UDFError as exc:
            self._fail(str(exc))
            return
        if self._closed:
            self._failed.set()  # all answered: the session is over
        else:
            self._fail("the UDF closed its output")

    async def _keepalive(self, io: trio.Nursery) -> None:
        interval = self._timeout / 2
        while True:
            await trio.sleep(interval)
            silent = (time.time_ns() - self._last_response) / 1e9
            if silent >= self._timeout:
                self._fail("keepalive timedout, last keepalive received was: "
                           + _go_time(self._last_response))
                return
            if not self._closed:
                request = pb.Request()
                request.keepalive.time = time.time_ns()
                self._send(request)

    def _handle(self, response: Any) -> None:
        kind = response.WhichOneof("message")
        if kind == "point":
            self._output.point(point_from(response.point))
        elif kind == "begin":
            begin = response.begin
            self._batch = pb.BeginBatch()
            self._batch.CopyFrom(begin)
            self._output.begin_batch(begin_from(begin))
        elif kind == "end":
            end = response.end
            if self._batch is None:
                raise UDFError("the UDF ended a batch it did not begin")
            by_name = self._batch.byName
            self._batch = None
            self._output.end_batch(end_from(end, by_name))
        elif kind == "error":
            self._log.error("received error message", err=response.error.error)
            self._with_account = False
            raise UDFError(response.error.error)
        elif kind == "keepalive":
            pass
        elif kind == "init":
            if not response.init.success:  # Kapacitor's words
                self._with_account = False
                raise UDFError(f"failed to initialize processes {response.init.error}")
        elif kind == "restore":
            if not response.restore.success:
                self._with_account = False
                raise UDFError(f"error restoring snapshot: {response.restore.error}")
        elif kind == "snapshot":
            if not self._snapshots:
                self._log.error("received message without requesting it",
                                err="did not expect a snapshot response")
                return
            answer = self._snapshots.popleft()
            answer.response = pb.SnapshotResponse()
            answer.response.CopyFrom(response.snapshot)
            answer.event.set()
        elif kind == "info":
            self._log.error("received message without requesting it",
                            err="did not expect an info response")
        else:
            raise UDFError(f"unexpected response message {kind}")


class WireFunction:
    """A function reached through ``connect``: asked for its info on a connection of its
    own, then one connection per task node."""

    def __init__(self, name: str, connect: Connector, timeout: Duration | int,
                 logger: Logger) -> None:
        self.name = name
        self._connect = connect
        self.timeout = int(timeout) / 1e9 if timeout and int(timeout) > 0 else math.inf
        self._log = logger

    async def info(self) -> UDFInfo:
        result: UDFInfo | None = None
        error: UDFError | None = None
        async with trio.open_nursery() as nursery:
            try:
                connection = await self._connect(nursery, self._log)
            except OSError as exc:
                error = UDFError(f"cannot start the UDF: {exc}")
                nursery.cancel_scope.cancel()
            else:
                try:
                    with trio.fail_after(self.timeout):
                        result = await self._ask_info(connection)
                except trio.TooSlowError:
                    error = UDFError("no answer to the info request within the timeout")
                except (UDFError, FramingError, DecodeError) as exc:
                    error = exc if isinstance(exc, UDFError) else UDFError(
                        f"read error: {exc}")
                except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    error = UDFError(f"the UDF went away: {exc}")
                finally:
                    with trio.CancelScope(shield=True):
                        with contextlib.suppress(OSError, trio.BrokenResourceError,
                                                 trio.ClosedResourceError):
                            await connection.send_eof()
                        await connection.aclose(grace=1.0)
                    nursery.cancel_scope.cancel()
                if error is not None:
                    account = connection.account()
                    if account:
                        error = UDFError(f"{error} ({account})")
        if error is not None:
            raise error
        assert result is not None
        return result

    async def _ask_info(self, connection: Connection) -> UDFInfo:
        request = pb.Request()
        request.info.SetInParent()
        await connection.send_all(frame(request.SerializeToString()))
        reader = FrameReader()
        while True:
            data = await connection.receive_some(_READ_SIZE)
            if not data:
                raise UDFError("the UDF closed its output before answering the info "
                               "request")
            reader.feed(data)
            for payload in reader.frames():
                response = pb.Response()
                response.ParseFromString(payload)
                kind = response.WhichOneof("message")
                if kind == "info":
                    return info_from(response.info)
                if kind == "error":
                    raise UDFError(response.error.error)
                if kind != "keepalive":
                    raise UDFError(f"expected an info response, got {kind}")

    def open(self, options: Sequence[UDFOption], context: UDFNodeContext) -> WireSession:
        return WireSession(self.name, self._connect, self.timeout, options, context)


__all__ = ["MAX_BUFFERED", "Connection", "Connector", "WireFunction", "WireSession",
           "begin_from", "end_from", "fill_begin", "fill_end", "fill_point", "info_from",
           "option_values", "point_from"]

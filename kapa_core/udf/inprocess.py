"""In-process Python UDFs: a UDF handler class run inside the daemon.

The class is the very handler a user runs as a process or socket UDF — a
:class:`kapa_core.udf.agent.Handler` with ``info``, ``init``, ``snapshot``, ``restore``,
``begin_batch``, ``point`` and ``end_batch`` taking and returning ``udf_pb2`` messages —
unchanged. Instead of an agent reading frames from a pipe, each ``@name()`` node of a
task gets its own handler, constructed as ``Class(agent)`` with an
:class:`InProcessAgent`, and the node calls it synchronously like any other node:

* at open, ``init`` with the script's options (``udf_pb2.InitRequest``, as a process
  gets it); a refusal stops the task with Kapacitor's words, ``failed to initialize
  processes <error>``; then ``restore`` when the node has a saved snapshot (a refusal:
  ``error restoring snapshot: <error>``);
* per point, ``point(msg)`` with a fresh ``udf_pb2.Point`` (a handler may keep it);
  batches as ``begin_batch``, ``point``..., ``end_batch``;
* what the handler passes to ``agent.write_response(response)`` goes straight to the
  node's children: a point, begin or end Response is turned into a kapa-core point or
  batch without being serialised; an ``error`` Response stops the task with its text;
* ``snapshot`` when the task's state is saved.

An exception from a handler method stops the task as the process agent reports it:
``error processing request of type <kind>: <exception>`` (logged with where it was
raised). ``write_response`` is thread-safe, as the process agent's is: called from a
thread of the handler's own, it waits until the task's thread has handed the response
on (the task's nodes are not thread-safe); after the task stopped, such responses are
dropped. Handler calls are not time-limited (there is no keepalive): a handler that
blocks holds its task up.

Functions come from ``[udf.functions.<name>] python = "package.module:Class"`` (the
``udf-python`` bridge plugin) or from a plugin that registers a class with
:func:`python_udf`.
"""

from __future__ import annotations

import importlib
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import trio
import trio.lowlevel

from kapa_core.logs import Logger
from kapa_core.models.point import Point
from kapa_core.udf import (
    BeginBatch,
    EndBatch,
    UDFBridge,
    UDFContext,
    UDFError,
    UDFInfo,
    UDFNodeContext,
    UDFOption,
)
from kapa_core.udf import udf_pb2 as pb
from kapa_core.udf.wire import (
    begin_from,
    end_from,
    fill_begin,
    fill_end,
    fill_point,
    info_from,
    option_values,
    point_from,
)

#: What a handler's code may raise without stopping more than its task: any exception,
#: and ``sys.exit()`` (ported code may call it; it must not end the daemon).
_HANDLER_ERRORS = (Exception, SystemExit)


def _text(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"the handler called sys.exit({exc.code!r})"
    return str(exc)


def load_handler_class(path: str) -> type:
    """The class ``package.module:Class`` names (``Class`` may be dotted: an attribute
    path inside the module); a UDFError saying what is wrong otherwise."""
    module_name, colon, attribute = path.partition(":")
    if not colon or not module_name or not attribute:
        raise UDFError(f"python = {path!r}: must be written \"package.module:Class\"")
    try:
        target: Any = importlib.import_module(module_name)
    except _HANDLER_ERRORS as exc:  # ImportError, or what the module raises
        raise UDFError(f"python = {path!r}: cannot import {module_name}: "
                       f"{type(exc).__name__}: {_text(exc)}") from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise UDFError(f"python = {path!r}: {module_name} has no {attribute}") from None
    if not isinstance(target, type):
        raise UDFError(f"python = {path!r}: {attribute} is a {type(target).__name__}, "
                       "not a class")
    return target


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""


class InProcessAgent:
    """The agent an in-process handler is constructed with: it offers what the process
    agent offers a handler, ``write_response(response, flush=False)`` and ``flush()``.

    ``write_response`` hands ``response`` (a ``udf_pb2.Response``) to the node: a point,
    begin or end goes on to the node's children at once; ``flush`` changes nothing here.
    (It is the session's own method, bound: one call less per point.)
    """

    __slots__ = ("write_response",)

    def __init__(self, session: InProcessSession | None) -> None:
        self.write_response: Callable[..., None] = (
            session.respond if session is not None else _no_session)

    def flush(self) -> None:
        """Nothing to flush: responses are handed on when written."""


def _no_session(response: Any, flush: bool = False) -> None:
    raise UDFError("write_response called outside of a task (while asked for the "
                   "function's info)")


def _check_response(kind: str, response: Any) -> Any:
    if response is None:
        raise RuntimeError(f"the handler's {kind} method returned no response")
    if not isinstance(response, pb.Response):
        raise RuntimeError(f"the handler's {kind} method returned a "
                           f"{type(response).__name__}, not a Response of "
                           "kapa_core.udf.agent.udf_pb2")
    return response


class InProcessSession:
    """One handler serving one task node."""

    def __init__(self, name: str, handler_class: type, options: Sequence[UDFOption],
                 context: UDFNodeContext) -> None:
        self.name = name
        self._context = context
        self._output = context.output
        self._log = context.logger
        self._error = ""
        self._closed = False
        self._batch_by_name: bool | None = None  # the batch the handler began, if any
        self._asked = ""  # the management request being answered
        self._answer: Any = None
        # Responses written from other threads are handed to this one through trio.
        self._thread = threading.get_ident()
        try:
            self._token: trio.lowlevel.TrioToken | None = trio.lowlevel.current_trio_token()
        except RuntimeError:  # not opened under trio (a test calling it directly)
            self._token = None
        self.agent = InProcessAgent(self)
        self.handler: Any = None
        try:
            self.handler = handler_class(self.agent)
        except _HANDLER_ERRORS as exc:
            self._fail_later(self._exception("init", exc))
            return
        request = pb.InitRequest(taskID=context.task_id, nodeID=context.node_id)
        request.options.extend(option_values(options))
        init = self._ask("init", self.handler.init, request)
        if init is not None and not init.success:
            self._fail_later(f"failed to initialize processes {init.error}")

    # -- errors -------------------------------------------------------------------------
    def _exception(self, kind: str, exc: BaseException) -> str:
        """The message of an exception raised by the handler, logged."""
        message = f"error processing request of type {kind}: {_text(exc)}"
        self._log.error("UDF handler failed", err=message, where=_where(exc) or None)
        return message

    def _broken(self, message: str) -> UDFError:
        """The session is over: every further call raises the first error."""
        if not self._error:
            self._error = message
        return UDFError(self._error)

    def _fail_later(self, message: str) -> None:
        """Stop the task with ``message`` from the node's own task (outside a data call:
        the task is starting)."""
        if self._error:
            return
        self._error = message

        async def stop() -> None:
            raise UDFError(message)

        self._context.start_soon(stop)

    def _ask(self, kind: str, method: Any, *args: Any) -> Any:
        """Call a management method of the handler and route its Response; the answer of
        ``kind`` it holds, or None when the session failed."""
        self._asked, self._answer = kind, None
        try:
            self.respond(_check_response(kind, method(*args)))
        except UDFError as exc:
            self._fail_later(str(exc))
            return None
        except _HANDLER_ERRORS as exc:
            self._fail_later(self._exception(kind, exc))
            return None
        finally:
            self._asked = ""
        if self._answer is None:
            self._fail_later(f"the handler answered the {kind} request with no {kind} "
                             "response")
        return self._answer

    # -- data in (from the node) --------------------------------------------------------
    def point(self, p: Point) -> None:
        if self._error:
            raise UDFError(self._error)
        msg = pb.Point()
        fill_point(msg, p)
        try:
            self.handler.point(msg)
        except UDFError as exc:
            raise self._broken(str(exc)) from None
        except _HANDLER_ERRORS as exc:
            raise self._broken(self._exception("point", exc)) from None

    def begin_batch(self, begin: BeginBatch) -> None:
        if self._error:
            raise UDFError(self._error)
        msg = pb.BeginBatch()
        fill_begin(msg, begin)
        try:
            self.handler.begin_batch(msg)
        except UDFError as exc:
            raise self._broken(str(exc)) from None
        except _HANDLER_ERRORS as exc:
            raise self._broken(self._exception("begin", exc)) from None

    def end_batch(self, end: EndBatch) -> None:
        if self._error:
            raise UDFError(self._error)
        msg = pb.EndBatch()
        fill_end(msg, end)
        try:
            self.handler.end_batch(msg)
        except UDFError as exc:
            raise self._broken(str(exc)) from None
        except _HANDLER_ERRORS as exc:
            raise self._broken(self._exception("end", exc)) from None

    # -- state ----------------------------------------------------------------------------
    def restore(self, data: bytes) -> None:
        if self._error or self.handler is None:
            return
        restore = self._ask("restore", self.handler.restore, pb.RestoreRequest(snapshot=data))
        if restore is not None and not restore.success:
            self._fail_later(f"error restoring snapshot: {restore.error}")

    async def snapshot(self) -> bytes:
        if self._error or self.handler is None:
            raise UDFError(self._error or "the UDF handler does not exist")
        self._asked, self._answer = "snapshot", None
        try:
            self.respond(_check_response("snapshot", self.handler.snapshot()))
        except UDFError as exc:
            raise self._broken(str(exc)) from None
        except _HANDLER_ERRORS as exc:
            raise self._broken(self._exception("snapshot", exc)) from None
        finally:
            self._asked = ""
        if self._answer is None:
            raise UDFError("the handler answered the snapshot request with no snapshot "
                           "response")
        return bytes(self._answer.snapshot)

    def close(self) -> None:
        self._closed = True

    # -- responses (from the handler) -----------------------------------------------------
    def respond(self, response: Any, flush: bool = False) -> None:
        """What the handler wrote (``agent.write_response``): data goes on to the node's
        output."""
        if response is None:
            raise ValueError("cannot write a None response")
        if threading.get_ident() != self._thread:
            self._respond_from_thread(response)
            return
        kind = response.WhichOneof("message")
        if kind == "point":
            self._output.point(point_from(response.point))
        elif kind == "begin":
            self._batch_by_name = response.begin.byName
            self._output.begin_batch(begin_from(response.begin))
        elif kind == "end":
            by_name = self._batch_by_name
            if by_name is None:
                raise UDFError("the UDF ended a batch it did not begin")
            self._batch_by_name = None
            self._output.end_batch(end_from(response.end, by_name))
        elif kind == "error":
            self._log.error("received error message", err=response.error.error)
            raise UDFError(response.error.error)
        elif kind == "keepalive":
            pass
        elif kind in ("init", "restore", "snapshot", "info"):
            if kind != self._asked:
                self._log.error("received message without requesting it",
                                err=f"did not expect a {kind} response")
                return
            self._answer = getattr(response, kind)
        else:
            raise UDFError(f"unexpected response message {kind}")

    def _respond_from_thread(self, response: Any) -> None:
        """A response written by a thread of the handler: handed on by the task's thread
        (waiting for it); a failure stops the task."""
        if self._token is None:
            raise RuntimeError("write_response called from another thread, and this "
                               "session runs outside trio")

        def hand_on() -> None:
            if self._closed or self._error:
                return  # the task stopped: nothing takes the response any more
            try:
                self.respond(response)
            except UDFError as exc:
                self._fail_later(str(exc))
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # a downstream node stopping the task as well
                self._fail_later(str(exc) or type(exc).__name__)

        trio.from_thread.run_sync(hand_on, trio_token=self._token)


class InProcessFunction:
    """A handler class run in the daemon: a new handler per task node."""

    def __init__(self, name: str, handler_class: type, logger: Logger) -> None:
        self.name = name
        self.handler_class = handler_class
        self._log = logger

    async def info(self) -> UDFInfo:
        """The handler's answer to ``info()``, from a handler made for the question."""
        try:
            handler = self.handler_class(InProcessAgent(None))
            response = _check_response("info", handler.info())
        except _HANDLER_ERRORS as exc:
            raise UDFError(f"error processing request of type info: {_text(exc)}") from None
        kind = response.WhichOneof("message")
        if kind == "error":
            raise UDFError(response.error.error)
        if kind != "info":
            raise UDFError(f"expected an info response, got {kind}")
        return info_from(response.info)

    def open(self, options: Sequence[UDFOption], context: UDFNodeContext) -> InProcessSession:
        return InProcessSession(self.name, self.handler_class, options, context)


def python_udf(name: str, handler_class: type, doc: str = "") -> UDFBridge:
    """A UDF bridge named ``name`` running ``handler_class`` in the daemon, for the
    functions configured with ``bridge = "<name>"``; return it from the
    ``kapa_udf_bridges`` hook. ``handler_class`` is constructed as ``Class(agent)``, with
    the Handler API of ``kapa_core.udf.agent``."""
    if not isinstance(handler_class, type):
        raise TypeError(f"python_udf({name!r}, ...) takes a class, not "
                        f"{type(handler_class).__name__}")

    def factory(function: str, config: Any, context: UDFContext) -> InProcessFunction:
        return InProcessFunction(function, handler_class, context.logger)

    return UDFBridge(name=name, factory=factory,
                     doc=doc or f"Runs {handler_class.__module__}."
                                f"{handler_class.__qualname__} in the daemon.")


__all__ = ["InProcessAgent", "InProcessFunction", "InProcessSession", "load_handler_class",
           "python_udf"]

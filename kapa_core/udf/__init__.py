"""User defined functions: the contract a UDF bridge implements, and one daemon's functions.

A UDF is used in TICKscript as ``node@name().option(...)`` and configured as
``[udf.functions.<name>]``. A *UDF bridge* (:class:`UDFBridge`, registered with the
``kapa_udf_bridges`` hook) knows one way to run functions: a process speaking
Kapacitor's wire protocol, a unix socket, a Python class inside the daemon... At start
the daemon hands each configured function to the first bridge whose
``selects(function_config)`` is true (or to the bridge its ``bridge`` key names), and
the bridge's ``factory(name, function_config, context)`` returns a :class:`UDFFunction`.

* :meth:`UDFFunction.info` says what the function wants and provides (stream or batch)
  and which options it takes with their value types: TICKscript is checked against it.
  It is asked once, at start; a function that fails or does not answer within its
  ``timeout`` is logged and left out, the daemon keeps running.
* :meth:`UDFFunction.open` is called once per UDF node of each task that starts, with
  the options the script set and a :class:`UDFNodeContext`; it returns a
  :class:`UDFSession`.

A session is driven by the engine with plain synchronous calls, as every node is: a
stream is ``point(p)`` per point; a batch is ``begin_batch``, ``point`` per point,
``end_batch``. What the function produces goes to ``context.output`` in the same shape,
whenever it is ready: during the call (an in-process function) or later, from a trio
task the session started with ``context.start_soon`` (a process or a socket, whose
replies arrive asynchronously). A :class:`UDFError` raised by a session call or by such a
task stops the task with its message; any other exception from a data call counts as an
error of the node (logged, the task goes on), as for every other node.

State: ``restore(data)`` is called right after ``open`` and before any data, when the
node has a saved snapshot; an asynchronous session queues it in order. ``snapshot()`` is
awaited (a process must be asked) and returns opaque bytes.

The value types and edge types keep the numbers of Kapacitor's ``udf.proto``, so a wire
bridge can map them one to one. Nothing here imports the pipeline or the engine: the
TICKscript evaluator (``pipeline/``) and the UDF node (``engine/``) build on it.

The package also holds the wire protocol (``udf.proto``, its generated ``udf_pb2``,
``framing``) and the agent UDF programs are written with (``agent``); importing those
needs only the standard library and ``protobuf``, so this module imports nothing else
at its top either.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from kapa_core.errors import KapaError
from kapa_core.logs import Logger
from kapa_core.models.duration import Duration
from kapa_core.models.point import Point
from kapa_core.perdaemon import PerDaemon


class UDFError(KapaError):
    """A UDF failed: raised by a session (or a task it started), it stops the task."""


class EdgeType(enum.IntEnum):
    """What a UDF wants or provides (Kapacitor's ``agent.EdgeType`` numbers)."""

    STREAM = 0
    BATCH = 1


class ValueType(enum.IntEnum):
    """The type of one option argument (Kapacitor's ``agent.ValueType`` numbers)."""

    BOOL = 0
    INT = 1
    DOUBLE = 2
    STRING = 3
    DURATION = 4


#: An option argument as a session receives it (``DURATION`` values are Durations).
OptionValue = bool | int | float | str | Duration


def value_type(value: object) -> ValueType | None:
    """The ValueType of a TICKscript value, None for a value no option can take (a
    lambda, a regex, a list, ``*``)."""
    cls = type(value)
    if cls is bool:
        return ValueType.BOOL
    if cls is Duration:
        return ValueType.DURATION
    if cls is int:
        return ValueType.INT
    if cls is float:
        return ValueType.DOUBLE
    if cls is str:
        return ValueType.STRING
    return None


@dataclass(frozen=True)
class UDFInfo:
    """A function's answer to the info request.

    ``options`` maps each option name to the types of its arguments, in order:
    ``{"factor": (ValueType.DOUBLE,)}`` allows ``.factor(2.0)``.
    """

    wants: EdgeType
    provides: EdgeType
    options: Mapping[str, tuple[ValueType, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.wants, EdgeType) or not isinstance(self.provides, EdgeType):
            raise UDFError(f"wants and provides must be EdgeType values, got "
                           f"{self.wants!r} and {self.provides!r}")
        for name, types in self.options.items():
            if not isinstance(name, str) or not name:
                raise UDFError(f"option names must be non-empty strings, got {name!r}")
            if not isinstance(types, tuple) or not all(isinstance(t, ValueType)
                                                      for t in types):
                raise UDFError(f"option {name}: the value types must be a tuple of "
                               f"ValueType, got {types!r}")


@dataclass(frozen=True)
class UDFOption:
    """One option call of the script (``.factor(2.0)``), in script order; an option
    called twice appears twice, as in Kapacitor's InitRequest."""

    name: str
    values: tuple[OptionValue, ...]


@dataclass(frozen=True)
class BeginBatch:
    """The start of one batch (Kapacitor's ``BeginBatch``; ``dims`` are the group-by
    tag names, ``size`` the number of points, 0 when not known)."""

    name: str
    group: str
    tags: Mapping[str, str]
    dims: tuple[str, ...] = ()
    by_name: bool = False
    size: int = 0


@dataclass(frozen=True)
class EndBatch:
    """The end of one batch; ``tmax`` is the batch's time (ns)."""

    name: str
    group: str
    tags: Mapping[str, str]
    tmax: int
    dims: tuple[str, ...] = ()
    by_name: bool = False


class UDFOutput(Protocol):
    """Where a session sends what its function produces: points (of a stream, or of the
    current batch between ``begin_batch`` and ``end_batch``)."""

    def point(self, p: Point) -> None: ...

    def begin_batch(self, begin: BeginBatch) -> None: ...

    def end_batch(self, end: EndBatch) -> None: ...


def _no_tasks(fn: Callable[[], Awaitable[None]]) -> None:
    raise UDFError("this UDF node cannot start tasks (no task runs it)")


@dataclass
class UDFNodeContext:
    """What a session gets from the task node that opened it, and all it may use.

    ``node_id`` is the node's name (``scale2``); ``start_soon(fn)`` runs ``await fn()``
    in a trio task for as long as the task runs (cancelled when it stops; a UDFError
    it raises stops the task).
    """

    task_id: str
    node_id: str
    logger: Logger
    output: UDFOutput
    start_soon: Callable[[Callable[[], Awaitable[None]]], None] = _no_tasks


@runtime_checkable
class UDFSession(Protocol):
    """One running use of a function by one task node (see the module docstring)."""

    def point(self, p: Point) -> None: ...

    def begin_batch(self, begin: BeginBatch) -> None: ...

    def end_batch(self, end: EndBatch) -> None: ...

    async def snapshot(self) -> bytes: ...

    def restore(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class UDFFunction(Protocol):
    """A configured function, as its bridge made it."""

    async def info(self) -> UDFInfo: ...

    def open(self, options: Sequence[UDFOption], context: UDFNodeContext) -> UDFSession: ...


@dataclass(frozen=True)
class UDFContext:
    """What a bridge's ``factory`` gets besides the function's name and config section."""

    name: str
    config: Any
    logger: Logger


def _selects_none(config: Any) -> bool:
    return False


@dataclass(frozen=True, kw_only=True)
class UDFBridge:
    """A way to run user defined functions, registered with ``kapa_udf_bridges``.

    ``factory(name, function_config, context)`` returns the :class:`UDFFunction` for
    ``[udf.functions.<name>]``; it is given the functions whose ``bridge`` key names this
    bridge, or, without that key, for which ``selects(function_config)`` is true (the
    first bridge that selects a function runs it).
    """

    name: str
    factory: Callable[[str, Any, UDFContext], UDFFunction]
    selects: Callable[[Any], bool] = _selects_none
    doc: str = ""


@dataclass(frozen=True)
class Available:
    """A function that answered its info request: usable in TICKscript."""

    name: str
    bridge: str
    function: UDFFunction
    info: UDFInfo


@dataclass
class UDFFunctions:
    """One daemon's available functions, by name. A config override of ``[udf]``
    replaces ``functions`` in place: tasks started afterwards use the new ones, running
    tasks keep the sessions they opened."""

    functions: Mapping[str, Available] = field(default_factory=dict)

    def get(self, name: str) -> Available | None:
        return self.functions.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.functions

    def names(self) -> list[str]:
        return sorted(self.functions)


#: Nothing installed: no function is known.
NONE = UDFFunctions()
_CURRENT = PerDaemon("kapa_udf_functions", NONE)
#: The functions of the daemon (or tool) this code runs under.
current = _CURRENT.current
#: Make functions current in this context and the tasks and threads it starts.
install = _CURRENT.install
#: Functions current for a ``with`` block only.
using = _CURRENT.using


def pick_bridge(bridges: Mapping[str, UDFBridge], config: Any) -> UDFBridge | None:
    """The bridge that runs a function: the one its ``bridge`` key names (a kapa-core
    key), else the first, in registration order, whose ``selects(config)`` is true."""
    named = getattr(config, "bridge", "")
    if named:
        return bridges.get(named)
    for bridge in bridges.values():
        if bridge.selects(config):
            return bridge
    return None


def _timeout_seconds(config: Any) -> float:
    timeout = getattr(config, "timeout", 0)
    return timeout / 1e9 if timeout and timeout > 0 else math.inf


async def load_functions(bridges: Mapping[str, UDFBridge], functions: Mapping[str, Any],
                         log: Logger) -> UDFFunctions:
    """Ask every configured function for its info, through its bridge.

    ``functions`` is ``[udf.functions]`` (name -> section value). A function no bridge
    runs, whose bridge fails, or which does not answer within its ``timeout`` is logged
    and left out: the daemon keeps running without it.
    """
    import trio  # here, not at the top: the agent in this package needs only protobuf

    available: dict[str, Available] = {}
    for name in sorted(functions):
        config = functions[name]
        bridge = pick_bridge(bridges, config)
        if bridge is None:
            named = getattr(config, "bridge", "")
            why = (f"no UDF bridge named {named!r} is installed" if named else
                   "no installed UDF bridge runs it (process and socket UDFs are not "
                   "supported yet)")
            log.error("UDF left out", udf=name, err=why,
                      bridges=",".join(bridges) or None)
            continue
        try:
            function = bridge.factory(name, config, UDFContext(name, config,
                                                               log.with_(udf=name)))
        except Exception as exc:  # the bridge refuses the section (a bad python path...)
            log.error("UDF left out", udf=name, bridge=bridge.name,
                      err=str(exc) or type(exc).__name__)
            continue
        try:
            with trio.fail_after(_timeout_seconds(config)):
                info = await function.info()
            if not isinstance(info, UDFInfo):
                raise UDFError(f"info() returned {type(info).__name__}, not UDFInfo")
        except trio.TooSlowError:
            log.error("UDF left out", udf=name, bridge=bridge.name,
                      err="no answer to the info request within the timeout")
            continue
        except Exception as exc:  # a broken function must not stop the daemon
            log.error("UDF left out", udf=name, bridge=bridge.name,
                      err=f"info request failed: {str(exc) or type(exc).__name__}")
            continue
        available[name] = Available(name, bridge.name, function, info)
        log.info("UDF available", udf=name, bridge=bridge.name,
                 wants=info.wants.name.lower(), provides=info.provides.name.lower(),
                 options=",".join(sorted(info.options)) or None)
    return UDFFunctions(available)


__all__ = [
    "NONE",
    "Available",
    "BeginBatch",
    "EdgeType",
    "EndBatch",
    "OptionValue",
    "UDFBridge",
    "UDFContext",
    "UDFError",
    "UDFFunction",
    "UDFFunctions",
    "UDFInfo",
    "UDFNodeContext",
    "UDFOption",
    "UDFOutput",
    "UDFSession",
    "ValueType",
    "current",
    "install",
    "load_functions",
    "pick_bridge",
    "using",
    "value_type",
]

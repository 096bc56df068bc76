"""In-process UDF sessions called directly: examples/udf/moving_avg.py's handler class,
snapshot and restore, refusals, responses handed on without serialising, and the
``python_udf`` helper a plugin registers a handler class with."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from kapa_core.logs import Logger
from kapa_core.models.point import Point
from kapa_core.udf import (
    BeginBatch,
    EdgeType,
    EndBatch,
    UDFError,
    UDFNodeContext,
    UDFOption,
    ValueType,
    load_functions,
)
from kapa_core.udf.agent import Handler, udf_pb2
from kapa_core.udf.inprocess import (
    InProcessFunction,
    InProcessSession,
    load_handler_class,
    python_udf,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "udf"
OPTIONS = [UDFOption("field", ("value",)), UDFOption("size", (2,)), UDFOption("as", ("avg",))]


class Output:
    def __init__(self) -> None:
        self.points: list[Point] = []
        self.events: list[Any] = []

    def point(self, p: Point) -> None:
        self.points.append(p)
        self.events.append(p)

    def begin_batch(self, begin: BeginBatch) -> None:
        self.events.append(begin)

    def end_batch(self, end: EndBatch) -> None:
        self.events.append(end)


class Node:
    """What a task node gives a session: an output and a place for its tasks."""

    def __init__(self) -> None:
        self.output = Output()
        self.started: list[Callable[[], Awaitable[None]]] = []
        self.context = UDFNodeContext("task", "movingAvg2", Logger("test"), self.output,
                                      self.started.append)

    async def stopped_with(self) -> str:
        """The message the session's own task stops the task with."""
        assert len(self.started) == 1
        with pytest.raises(UDFError) as info:
            await self.started[0]()
        return str(info.value)


@pytest.fixture
def moving_average(monkeypatch: pytest.MonkeyPatch) -> type:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return load_handler_class("moving_avg:MovingAverage")


def point(value: float, t: int, host: str = "a") -> Point:
    return Point("cpu", {"host": host}, {"value": value}, t, "db", "rp", f"host={host}",
                 ("host",))


async def test_info_comes_from_the_handler(moving_average: type) -> None:
    info = await InProcessFunction("movingAvg", moving_average, Logger("test")).info()
    assert (info.wants, info.provides) == (EdgeType.STREAM, EdgeType.STREAM)
    assert dict(info.options) == {"field": (ValueType.STRING,), "size": (ValueType.INT,),
                                  "as": (ValueType.STRING,)}


def test_points_go_through_the_handler_and_out_as_points(moving_average: type) -> None:
    node = Node()
    session = InProcessFunction("movingAvg", moving_average, Logger("test")).open(
        OPTIONS, node.context)
    for t, value in enumerate([1.0, 3.0, 8.0]):
        session.point(point(value, t))
    assert [p.fields for p in node.output.points] == [{"avg": 1.0}, {"avg": 2.0},
                                                      {"avg": 5.5}]
    last = node.output.points[-1]
    assert (last.name, last.tags, last.time, last.database, last.retention_policy,
            last.group, last.dims) == ("cpu", {"host": "a"}, 2, "db", "rp", "host=a",
                                       ("host",))
    assert node.started == []  # init succeeded: nothing to stop


async def test_snapshot_and_restore_carry_the_windows_over(moving_average: type) -> None:
    function = InProcessFunction("movingAvg", moving_average, Logger("test"))
    first = Node()
    session = function.open(OPTIONS, first.context)
    session.point(point(10.0, 1))
    session.point(point(20.0, 2, host="b"))
    data = await session.snapshot()
    session.close()

    second = Node()
    restored = function.open(OPTIONS, second.context)
    restored.restore(data)
    restored.point(point(30.0, 3))
    restored.point(point(40.0, 4, host="b"))
    assert [p.fields["avg"] for p in second.output.points] == [20.0, 30.0]

    fresh = Node()
    unrestored = function.open(OPTIONS, fresh.context)
    unrestored.point(point(30.0, 3))
    assert fresh.output.points[0].fields["avg"] == 30.0


async def test_a_refused_restore_stops_the_task(moving_average: type) -> None:
    node = Node()
    session = InProcessFunction("movingAvg", moving_average, Logger("test")).open(
        OPTIONS, node.context)
    session.restore(b"not json")
    assert (await node.stopped_with()).startswith(
        "error restoring snapshot: cannot restore the snapshot: ")
    with pytest.raises(UDFError, match="error restoring snapshot"):
        session.point(point(1.0, 1))


async def test_refused_options_stop_the_task_with_kapacitors_words(
        moving_average: type) -> None:
    node = Node()
    session = InProcessFunction("movingAvg", moving_average, Logger("test")).open(
        [UDFOption("field", ("value",))], node.context)
    assert await node.stopped_with() == "failed to initialize processes must supply " \
                                        "window size"
    with pytest.raises(UDFError, match="failed to initialize processes"):
        session.point(point(1.0, 1))


class Echo(Handler):
    """Sends every point back, and counts them in its snapshot; misbehaves on request."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.count = 0
        self.kept: list[Any] = []

    def info(self) -> Any:
        response = udf_pb2.Response()
        response.info.wants = response.info.provides = udf_pb2.BATCH
        return response

    def init(self, init_req: Any) -> Any:
        response = udf_pb2.Response()
        response.init.success = True
        return response

    def snapshot(self) -> Any:
        response = udf_pb2.Response()
        response.snapshot.snapshot = str(self.count).encode()
        return response

    def begin_batch(self, begin_req: Any) -> None:
        response = udf_pb2.Response()
        response.begin.CopyFrom(begin_req)
        self.agent.write_response(response)

    def point(self, point: Any) -> None:
        if point.name == "raise":
            raise KeyError("no such thing")
        self.kept.append(point)
        self.count += 1
        response = udf_pb2.Response()
        response.point.CopyFrom(point)
        self.agent.write_response(response)

    def end_batch(self, end_req: Any) -> None:
        response = udf_pb2.Response()
        response.end.CopyFrom(end_req)
        self.agent.write_response(response, flush=True)


async def test_batches_keep_their_shape_and_kept_points_stay_intact() -> None:
    node = Node()
    session = InProcessFunction("echo", Echo, Logger("test")).open([], node.context)
    tags = {"host": "a"}
    session.begin_batch(BeginBatch("cpu", "host=a", tags, ("host",), True, 2))
    session.point(point(1.0, 1))
    session.point(point(2.0, 2))
    session.end_batch(EndBatch("cpu", "host=a", tags, 2, ("host",), True))
    begin, p1, p2, end = node.output.events
    assert (begin.name, begin.group, dict(begin.tags), begin.by_name, begin.size) == \
        ("cpu", "host=a", tags, True, 2)
    assert [p1.fields, p2.fields] == [{"value": 1.0}, {"value": 2.0}]
    assert (end.tmax, end.by_name) == (2, True)
    handler = session.handler
    assert [p.fieldsDouble["value"] for p in handler.kept] == [1.0, 2.0]
    assert await session.snapshot() == b"2"


def test_an_exception_from_the_handler_ends_the_session_with_the_agents_words() -> None:
    node = Node()
    session = InProcessFunction("echo", Echo, Logger("test")).open([], node.context)
    bad = Point("raise", {}, {"value": 1.0}, 1)
    with pytest.raises(UDFError) as info:
        session.point(bad)
    assert str(info.value) == "error processing request of type point: 'no such thing'"
    with pytest.raises(UDFError, match="no such thing"):  # and stays over
        session.point(point(1.0, 2))


def test_an_error_response_ends_the_session_with_its_text() -> None:
    node = Node()
    session: InProcessSession = InProcessFunction("echo", Echo, Logger("test")).open(
        [], node.context)
    response = udf_pb2.Response()
    response.error.error = "the function gave up"
    with pytest.raises(UDFError, match="^the function gave up$"):
        session.agent.write_response(response)


def test_an_end_without_a_begin_is_an_error() -> None:
    node = Node()
    session = InProcessFunction("echo", Echo, Logger("test")).open([], node.context)
    response = udf_pb2.Response()
    response.end.name = "cpu"
    with pytest.raises(UDFError, match="ended a batch it did not begin"):
        session.agent.write_response(response)


async def test_a_constructor_that_raises_stops_the_task() -> None:
    class Broken(Echo):
        def __init__(self, agent: Any) -> None:
            raise RuntimeError("no database")

    node = Node()
    InProcessFunction("broken", Broken, Logger("test")).open([], node.context)
    assert await node.stopped_with() == "error processing request of type init: " \
                                        "no database"


@pytest.mark.parametrize(("path", "message"), [
    ("nodots", "must be written"),
    (":Class", "must be written"),
    ("no_such_module_here:X", "cannot import no_such_module_here: ModuleNotFoundError"),
    ("kapa_core.udf.agent:Nothing", "kapa_core.udf.agent has no Nothing"),
    ("kapa_core.udf.agent:logger", "logger is a Logger, not a class"),
])
def test_bad_paths_say_what_is_wrong(path: str, message: str) -> None:
    with pytest.raises(UDFError, match=message):
        load_handler_class(path)


def test_a_dotted_attribute_path_finds_a_nested_class() -> None:
    assert load_handler_class("kapa_core.udf.agent:Agent.__class__") is type


async def test_a_plugin_registers_a_handler_class_with_python_udf(
        moving_average: type) -> None:
    class Config:
        bridge = "averages"
        timeout = 0

    bridge = python_udf("averages", moving_average)
    assert bridge.name == "averages" and "moving_avg.MovingAverage" in bridge.doc
    functions = await load_functions({"averages": bridge}, {"avg": Config()},
                                     Logger("test"))
    available = functions.get("avg")
    assert available is not None and available.bridge == "averages"
    node = Node()
    session = available.function.open(OPTIONS, node.context)
    session.point(point(4.0, 1))
    assert node.output.points[0].fields == {"avg": 4.0}
    with pytest.raises(TypeError, match="takes a class"):
        python_udf("bad", moving_average(None))  # type: ignore[arg-type]  # on purpose


async def test_a_handler_thread_writes_through_the_tasks_thread() -> None:
    node = Node()
    session: InProcessSession = InProcessFunction("echo", Echo, Logger("test")).open(
        [], node.context)
    writer_threads: list[int] = []

    def from_a_thread(response: Any) -> None:
        writer_threads.append(threading.get_ident())
        session.agent.write_response(response)

    late = udf_pb2.Response()
    late.point.name = "late"
    late.point.fieldsDouble["value"] = 1.0
    await trio.to_thread.run_sync(from_a_thread, late)
    assert [p.name for p in node.output.points] == ["late"]
    assert writer_threads[0] != threading.get_ident()

    error = udf_pb2.Response()
    error.error.error = "the timer gave up"
    await trio.to_thread.run_sync(from_a_thread, error)
    assert await node.stopped_with() == "the timer gave up"
    await trio.to_thread.run_sync(from_a_thread, late)  # dropped: the task stopped
    assert len(node.output.points) == 1


def test_a_handler_calling_sys_exit_stops_its_task_not_the_daemon() -> None:
    class Exits(Echo):
        def point(self, point: Any) -> None:
            raise SystemExit(3)

    node = Node()
    session = InProcessFunction("exits", Exits, Logger("test")).open([], node.context)
    with pytest.raises(UDFError) as info:
        session.point(point(1.0, 1))
    assert str(info.value) == "error processing request of type point: the handler " \
                              "called sys.exit(3)"

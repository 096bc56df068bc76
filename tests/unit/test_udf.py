"""UDF functions: the TICKscript checks of ``@name()`` against a function's info, the
runtime node between a task and a session, and the daemon's registry of functions."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import pytest
import trio

from kapa_core import udf
from kapa_core.engine.build import build_nodes
from kapa_core.engine.node import Node, TaskStopped
from kapa_core.engine.nodes.io import NodeContext
from kapa_core.engine.nodes.udf import UDFNode
from kapa_core.engine.task_master import RunningTask
from kapa_core.errors import TaskError, TickError
from kapa_core.logs import Logger
from kapa_core.models.batch import Batch
from kapa_core.models.duration import Duration
from kapa_core.models.point import Point
from kapa_core.pipeline.evaluate import evaluate
from kapa_core.udf import (
    Available,
    BeginBatch,
    EdgeType,
    EndBatch,
    UDFBridge,
    UDFError,
    UDFFunctions,
    UDFInfo,
    UDFNodeContext,
    UDFOption,
    ValueType,
)

S, B = EdgeType.STREAM, EdgeType.BATCH
OPTIONS = {"field": (ValueType.STRING,), "factor": (ValueType.DOUBLE,),
           "size": (ValueType.INT,), "every": (ValueType.DURATION,),
           "flag": (ValueType.BOOL,), "pair": (ValueType.STRING, ValueType.INT)}


class Session:
    """Doubles ``value``; a batch goes back as a batch. Records what it was given."""

    def __init__(self, options: Sequence[UDFOption], context: UDFNodeContext) -> None:
        self.options = list(options)
        self.context = context
        self.out = context.output
        self.seen: list[Any] = []
        self.closed = 0
        self.restored = b""

    def point(self, p: Point) -> None:
        self.seen.append(("point", p.time))
        if p.fields.get("value") == -1:
            raise UDFError("negative one is not allowed")
        if p.fields.get("value") == -2:
            raise ValueError("bad point")
        self.out.point(Point(p.name, p.tags, {"value": p.fields["value"] * 2}, p.time,
                             p.database, p.retention_policy, p.group, p.dims))

    def begin_batch(self, begin: BeginBatch) -> None:
        self.seen.append(("begin", begin.name, begin.size))
        self.out.begin_batch(begin)

    def end_batch(self, end: EndBatch) -> None:
        self.seen.append(("end", end.tmax))
        self.out.end_batch(end)

    async def snapshot(self) -> bytes:
        return json.dumps(len(self.seen)).encode()

    def restore(self, data: bytes) -> None:
        self.restored = data

    def close(self) -> None:
        self.closed += 1


class Function:
    def __init__(self, info: UDFInfo, session: type = Session) -> None:
        self._info = info
        self._session = session
        self.sessions: list[Any] = []

    async def info(self) -> UDFInfo:
        return self._info

    def open(self, options: Sequence[UDFOption], context: UDFNodeContext) -> Any:
        session = self._session(options, context)
        self.sessions.append(session)
        return session


def functions(**infos: UDFInfo) -> UDFFunctions:
    return UDFFunctions({name: Available(name, "test", Function(info), info)
                         for name, info in infos.items()})


SCALE = functions(scale=UDFInfo(S, S, OPTIONS), batches=UDFInfo(B, B, {}),
                  tostream=UDFInfo(B, S, {}))


def check(script: str, task_type: str = "stream") -> Any:
    with udf.using(SCALE):
        return evaluate(script, task_type)


def error_of(script: str, task_type: str = "stream") -> str:
    with pytest.raises(TickError) as caught:
        check(script, task_type)
    return str(caught.value)


# -- TICKscript ---------------------------------------------------------------------------
def test_udf_node_is_named_after_the_function_and_takes_its_options_in_order() -> None:
    evaluated = check("stream|from()@scale().field('v').factor(2.0).size(3).every(10s)"
                      ".flag(TRUE).pair('a', 1).factor(3.0)|httpOut('x')")
    node = evaluated.pipeline.nodes[2]
    assert node.name == "scale2"
    assert [(o.name, o.values) for o in node.options] == [
        ("field", ("v",)), ("factor", (2.0,)), ("size", (3,)),
        ("every", (Duration.parse("10s"),)), ("flag", (True,)), ("pair", ("a", 1)),
        ("factor", (3.0,))]
    assert type(node.options[3].values[0]) is Duration
    assert "from1 -> scale2;\nscale2 -> http_out3;" in evaluated.pipeline.dot("t")


@pytest.mark.parametrize(("script", "message"), [
    ("stream|from()@scale().factor(2)",
     "line 1 char 23: unexpected arg to factor, got INT expected DOUBLE"),
    ("stream|from()@scale().size(2.5)",
     "line 1 char 23: unexpected arg to size, got DOUBLE expected INT"),
    ("stream|from()@scale().every('10s')",
     "line 1 char 23: unexpected arg to every, got STRING expected DURATION"),
    ("stream|from()@scale().field(lambda: 1)",
     "line 1 char 23: unexpected arg to field, got BOOL expected STRING"),
    ("stream|from()@scale().factor(2.0, 3.0)",
     "line 1 char 23: unexpected number of args to factor, got 2 expected 1"),
    ("stream|from()@scale().pair('a')",
     "line 1 char 23: unexpected number of args to pair, got 1 expected 2"),
    ("stream|from()@scale().pair('a', 'b')",
     "line 1 char 23: unexpected arg to pair, got STRING expected INT"),
    ("stream|from()@scale().nope(1)",
     'line 1 char 23: no method or property "nope" on *pipeline.UDFNode'),
    ("stream|from()|scale()",
     'line 1 char 15: no chaining method "scale" on *pipeline.FromNode, but dynamic method '
     "does exist. Use '@' operator instead: 'node@scale(..)'."),
    ("stream|from().scale()",
     'line 1 char 15: no property method "scale" on *pipeline.FromNode, but dynamic method '
     "does exist. Use '@' operator instead: 'node@scale(..)'."),
    ("stream|from()@other()",
     'line 1 char 15: no method or property "other" on *pipeline.FromNode'),
    ("stream|from()@scale().Factor(2.0)",  # options are looked up as written
     'line 1 char 23: no method or property "Factor" on *pipeline.UDFNode'),
])
def test_script_errors_name_line_and_column(script: str, message: str) -> None:
    assert error_of(script).startswith(message)


def test_a_flag_option_refuses_a_value_of_no_option_type() -> None:
    # Kapacitor would send a BOOL option without a value; kapa-core refuses the script.
    assert error_of("stream|from()@scale().flag(lambda: TRUE)") == (
        "line 1 char 23: unexpected arg to flag, got a value of no option type "
        "(CompiledLambda) expected BOOL")


def test_edges_follow_wants_and_provides() -> None:
    evaluated = check("stream|from()|window().period(1s).every(1s)@batches()@tostream()"
                      "@scale()|httpOut('x')")
    assert [n.name for n in evaluated.pipeline.nodes][3:] == ["batches3", "tostream4",
                                                            "scale5", "http_out6"]
    assert evaluated.start_error == ""


@pytest.mark.parametrize(("script", "error"), [
    ("stream|from()@batches()",
     "cannot add child mismatched edges: from1:stream -> batches2:batch"),
    ("stream|from()|window().period(1s).every(1s)@scale()",
     "cannot add child mismatched edges: window2:batch -> scale3:stream"),
    ("stream|from()@scale()@tostream()|httpOut('x')",
     "cannot add child mismatched edges: scale2:stream -> tostream3:batch"),
])
def test_a_udf_fed_what_it_does_not_want_is_defined_but_cannot_start(
        script: str, error: str) -> None:
    # as Kapacitor 1.5.7: the task is saved, enabling it answers this error
    assert check(script).start_error == error


def test_without_the_function_the_script_is_refused() -> None:
    with pytest.raises(TickError, match='no method or property "scale"'):
        evaluate("stream|from()@scale()", "stream")


# -- the runtime node ---------------------------------------------------------------------
class Collect(Node):
    def __init__(self) -> None:
        self.name = "collect"
        self.children = []
        self.got: list[Any] = []

    def receive_point(self, p: Point) -> None:
        self.got.append(p)

    def receive_batch(self, b: Batch) -> None:
        self.got.append(b)


def build(script: str, fs: UDFFunctions = SCALE) -> tuple[UDFNode, Collect, list[Node]]:
    with udf.using(fs):
        pipeline = evaluate(script, "stream").pipeline
    nodes = build_nodes(pipeline, Logger("test"), NodeContext(task_id="t1"))
    node = next(n for n in nodes if isinstance(n, UDFNode))
    collect = Collect()
    node.children.append(collect)
    return node, collect, nodes


def point(value: Any, t: int = 0) -> Point:
    return Point("m", {"host": "a"}, {"value": value}, t, "db", "rp")


def test_points_go_through_the_session_and_on_to_the_children() -> None:
    node, collect, nodes = build("stream|from()@scale().factor(2.0)")
    session = node.session
    assert session.options == [UDFOption("factor", (2.0,))]
    assert session.context.task_id == "t1" and session.context.node_id == "scale2"
    node.receive_point(point(1.5, 1))
    node.receive_point(point(-2, 2))  # a plain exception: one error, the task goes on
    node.receive_point(point(4, 3))
    assert [(p.time, p.fields) for p in collect.got] == [(1, {"value": 3.0}),
                                                        (3, {"value": 8})]
    stats = node.stats()
    assert (stats["collected"], stats["emitted"], stats["errors"]) == (3, 2, 1)
    with pytest.raises(TaskStopped) as stopped:
        node.receive_point(point(-1, 4))
    assert str(stopped.value) == "scale2: negative one is not allowed"
    node.stop()
    node.stop()
    assert session.closed == 1


def test_batches_are_handed_over_as_begin_points_end_and_rebuilt() -> None:
    node, collect, _ = build("stream|from()|window().period(1s).every(1s)@batches()")
    batch = Batch("m", "host=a", {"host": "a"}, ("host",), False, 7,
                  [_bp(1, 1), _bp(2, 2)])
    node.receive_batch(batch)
    assert node.session.seen == [("begin", "m", 2), ("point", 1), ("point", 2), ("end", 7)]
    out = collect.got[0]
    assert isinstance(out, Batch)
    assert (out.name, out.group, out.tags, out.dims, out.tmax) == (
        "m", "host=a", {"host": "a"}, ("host",), 7)
    assert [(bp.time, bp.fields) for bp in out.points] == [(1, {"value": 2}),
                                                         (2, {"value": 4})]


def _bp(t: int, value: Any) -> Any:
    from kapa_core.models.batch import BatchPoint

    return BatchPoint(t, {"value": value}, {"host": "a"})


class WrongEdge(Session):
    def point(self, p: Point) -> None:
        self.out.begin_batch(BeginBatch("m", "", {}))


def test_output_that_does_not_match_provides_stops_the_task() -> None:
    info = UDFInfo(S, S, {})
    fs = UDFFunctions({"w": Available("w", "test", Function(info, WrongEdge), info)})
    node, _, _ = build("stream|from()@w()", fs)
    with pytest.raises(TaskStopped, match="w2: the UDF sent a batch, but it provides a "
                                          "stream"):
        node.receive_point(point(1))


class CannotOpen(Session):
    def __init__(self, options: Sequence[UDFOption], context: UDFNodeContext) -> None:
        raise UDFError("no licence")


def test_a_session_that_cannot_open_refuses_the_task() -> None:
    info = UDFInfo(S, S, {})
    fs = UDFFunctions({"c": Available("c", "test", Function(info, CannotOpen), info)})
    with pytest.raises(TaskError, match=r"failed to open UDF c: no licence \(c2\)"):
        build("stream|from()@c()", fs)


async def test_snapshot_and_restore_reach_the_session() -> None:
    node, _, _ = build("stream|from()@scale()")
    node.restore(b"state")
    assert node.session.restored == b"state"
    node.receive_point(point(1))
    assert await node.snapshot() == b"1"


class Later(Session):
    """An asynchronous session: answers from its own trio task, as a process would."""

    def __init__(self, options: Sequence[UDFOption], context: UDFNodeContext) -> None:
        super().__init__(options, context)
        self.send, self.receive = trio.open_memory_channel[Point](10)
        context.start_soon(self.reply)

    def point(self, p: Point) -> None:
        self.send.send_nowait(p)

    async def reply(self) -> None:
        async for p in self.receive:
            await trio.sleep(0)
            if p.fields["value"] == -1:
                raise UDFError("the agent crashed")
            self.out.point(Point(p.name, p.tags, {"value": p.fields["value"] + 100},
                                 p.time, p.database, p.retention_policy))


async def test_an_asynchronous_session_answers_later_and_can_stop_the_task() -> None:
    info = UDFInfo(S, S, {})
    function = Function(info, Later)
    fs = UDFFunctions({"later": Available("later", "test", function, info)})
    with udf.using(fs):
        pipeline = evaluate("stream|from()@later()|httpOut('x')", "stream").pipeline
    task = RunningTask("t1", pipeline, [("db", "rp")], Logger("test"))
    async with trio.open_nursery() as nursery:
        await nursery.start(task.run)
        task.deliver([point(1, 1), point(2, 2)])
        with trio.fail_after(5):
            while not _values(task):
                await trio.sleep(0.01)
        assert _values(task)[0][-1] == 102  # httpOut keeps the last point of the group
        task.deliver([point(-1, 3)])
        with trio.fail_after(5):
            await task.done.wait()
    assert task.error == "later2: the agent crashed"
    assert function.sessions[0].closed == 1


def _values(task: RunningTask) -> list[Any]:
    out = task.http_out("x")
    assert out is not None
    series = out.result().get("series") or []
    return series[0]["values"] if series else []


# -- the daemon's functions ---------------------------------------------------------------
class Config:
    def __init__(self, bridge: str = "", prog: str = "", timeout: int = 10**9) -> None:
        self.bridge = bridge
        self.prog = prog
        self.timeout = timeout


class Slow(Function):
    async def info(self) -> UDFInfo:
        await trio.sleep(10)
        return self._info


class Broken(Function):
    async def info(self) -> UDFInfo:
        raise RuntimeError("agent exited with status 2")


async def test_load_functions_picks_bridges_and_leaves_out_failing_functions(
        caplog: pytest.LogCaptureFixture) -> None:
    info = UDFInfo(S, B, {"x": (ValueType.INT,)})
    made: list[tuple[str, str]] = []

    def factory(kind: type) -> Any:
        def make(name: str, config: Any, context: udf.UDFContext) -> Any:
            made.append((name, context.name))
            return kind(info)
        return make

    bridges = {
        "never": UDFBridge(name="never", factory=factory(Function)),
        "progs": UDFBridge(name="progs", factory=factory(Function),
                           selects=lambda c: bool(c.prog)),
        "slow": UDFBridge(name="slow", factory=factory(Slow)),
        "broken": UDFBridge(name="broken", factory=factory(Broken)),
    }
    configs = {"a": Config(prog="/bin/a"), "b": Config(bridge="never"),
               "c": Config(bridge="slow", timeout=50_000_000), "d": Config(bridge="broken"),
               "e": Config(bridge="missing"), "f": Config()}
    caplog.set_level(logging.INFO)
    loaded = await udf.load_functions(bridges, configs, Logger("udf"))
    assert loaded.names() == ["a", "b"]
    assert (loaded.get("a").bridge, loaded.get("b").bridge) == ("progs", "never")
    assert loaded.get("a").info is info
    assert ("a", "a") in made
    text = "\n".join(f"{r.getMessage()} {r.kv}" for r in caplog.records)  # type: ignore
    assert "'udf': 'c'" in text and "no answer to the info request within the timeout" in text
    assert "'udf': 'd'" in text and "info request failed: agent exited with status 2" in text
    assert "no UDF bridge named 'missing' is installed" in text
    assert "'udf': 'f'" in text and "no installed UDF bridge runs it" in text


def test_info_is_checked() -> None:
    with pytest.raises(UDFError, match="EdgeType"):
        UDFInfo("stream", S)  # type: ignore[arg-type]
    with pytest.raises(UDFError, match="option x"):
        UDFInfo(S, S, {"x": ("int",)})  # type: ignore[dict-item]


def test_functions_are_per_context() -> None:
    assert "scale" not in udf.current()
    with udf.using(SCALE):
        assert "scale" in udf.current()
    assert udf.current() is udf.NONE


# -- the example package's function, on its own -------------------------------------------
async def test_example_scale_session_options_snapshot_and_restore(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "examples"
                                    / "kapa-example-udf"))
    import kapa_example_udf as example

    function = example.make_function("scale", None, udf.UDFContext("scale", None,
                                                                    Logger("test")))
    info = await function.info()
    assert (info.wants, info.provides) == (S, S)
    got: list[Point] = []

    class Output:
        def point(self, p: Point) -> None:
            got.append(p)

        def begin_batch(self, begin: BeginBatch) -> None:
            raise AssertionError

        def end_batch(self, end: EndBatch) -> None:
            raise AssertionError

    context = UDFNodeContext("t", "scale2", Logger("test"), Output())
    session = function.open([UDFOption("factor", (3.0,)), UDFOption("field", ("v",)),
                             UDFOption("factor", (0.5,))], context)
    session.point(Point("m", {}, {"v": 4, "w": "x"}, 1))
    session.point(Point("m", {}, {"w": "x"}, 2))  # no such field: unchanged
    assert [p.fields for p in got] == [{"v": 2.0, "w": "x"}, {"w": "x"}]
    saved = await session.snapshot()
    again = function.open([], context)
    again.restore(saved)
    assert await again.snapshot() == saved == b'{"scaled": 1}'
    with pytest.raises(UDFError, match="cannot restore"):
        again.restore(b"garbage")
    with pytest.raises(UDFError, match="no function named 'nope'"):
        example.make_function("nope", None, udf.UDFContext("nope", None, Logger("test")))

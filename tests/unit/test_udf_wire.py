"""The UDF wire protocol: length-prefixed framing, and the agent UDF programs are written
with, run as a real subprocess speaking over its stdin and stdout."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kapa_core.udf import udf_pb2
from kapa_core.udf.framing import FrameReader, FramingError, frame, uvarint


# -- framing ------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "encoded"), [
    (0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02"),
    (2**32, b"\x80\x80\x80\x80\x10")])
def test_uvarint_is_protobufs_base128(value: int, encoded: bytes) -> None:
    assert uvarint(value) == encoded


@given(st.lists(st.binary(max_size=300), max_size=20), st.data())
def test_frames_come_back_whole_however_the_stream_is_cut(payloads: list[bytes],
                                                         data: st.DataObject) -> None:
    stream = b"".join(frame(p) for p in payloads)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    reader, got = FrameReader(), []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        reader.feed(stream[start:end])
        got += list(reader.frames())
    assert got == payloads
    assert reader.pending == 0


def test_a_header_longer_than_ten_bytes_is_refused() -> None:
    reader = FrameReader()
    reader.feed(b"\xff" * 11)
    with pytest.raises(FramingError, match="varint longer than ten bytes"):
        list(reader.frames())


def test_an_oversized_message_is_refused_before_it_is_read() -> None:
    reader = FrameReader(max_message=1000)
    reader.feed(uvarint(1001))
    with pytest.raises(FramingError, match="1001 bytes announced"):
        list(reader.frames())


def test_the_messages_keep_kapacitors_field_numbers() -> None:
    # Point.fieldsBool is 12 and Point.byName 11; Request.point 17; Response.error 6.
    point = udf_pb2.Point.DESCRIPTOR.fields_by_name
    assert (point["byName"].number, point["fieldsBool"].number) == (11, 12)
    assert udf_pb2.Request.DESCRIPTOR.fields_by_name["point"].number == 17
    assert udf_pb2.Response.DESCRIPTOR.fields_by_name["error"].number == 6
    request = udf_pb2.Request()
    request.point.time = 1
    assert request.SerializeToString() == b"\x8a\x01\x02\x08\x01"  # field 17, len 2


# -- the agent, as a UDF process ----------------------------------------------------------
PROGRAM = textwrap.dedent('''
    import json
    from kapa_core.udf.agent import Agent, Handler, udf_pb2

    class Scale(Handler):
        def __init__(self, agent):
            self._agent = agent
            self.factor = 1.0
            self.seen = 0

        def info(self):
            response = udf_pb2.Response()
            response.info.wants = udf_pb2.STREAM
            response.info.provides = udf_pb2.STREAM
            response.info.options["factor"].valueTypes.append(udf_pb2.DOUBLE)
            return response

        def init(self, init_req):
            for option in init_req.options:
                if option.name == "factor":
                    self.factor = option.values[0].doubleValue
            response = udf_pb2.Response()
            response.init.success = self.factor != 0
            response.init.error = "" if self.factor else "factor must not be 0"
            return response

        def snapshot(self):
            response = udf_pb2.Response()
            response.snapshot.snapshot = json.dumps({"seen": self.seen}).encode()
            return response

        def restore(self, restore_req):
            self.seen = json.loads(restore_req.snapshot)["seen"]
            response = udf_pb2.Response()
            response.restore.success = True
            return response

        def point(self, point):
            if point.name == "boom":
                raise ValueError("cannot scale boom")
            self.seen += 1
            response = udf_pb2.Response()
            response.point.CopyFrom(point)
            response.point.fieldsDouble["value"] *= self.factor
            self._agent.write_response(response)

    agent = Agent()
    agent.handler = Scale(agent)
    agent.start()
    agent.wait()
''')


class UDFProcess:
    def __init__(self, program: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-u", str(program)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, bufsize=0)
        self.reader = FrameReader()
        self.queue: list[bytes] = []

    def send(self, request: udf_pb2.Request) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(frame(request.SerializeToString()))
        self.proc.stdin.flush()

    def receive(self) -> udf_pb2.Response:
        assert self.proc.stdout is not None
        while not self.queue:
            ready, _, _ = select.select([self.proc.stdout], [], [], 10)
            assert ready, "no answer within 10 s: " + self.stderr()
            data = os.read(self.proc.stdout.fileno(), 65536)
            assert data, "the UDF closed its stdout: " + self.stderr()
            self.reader.feed(data)
            self.queue += list(self.reader.frames())
        response = udf_pb2.Response()
        response.ParseFromString(self.queue.pop(0))
        return response

    def stderr(self) -> str:
        self.proc.kill()
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode()

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(10)


@pytest.fixture
def udf_process(tmp_path: Path) -> Iterator[UDFProcess]:
    program = tmp_path / "scale.py"
    program.write_text(PROGRAM)
    process = UDFProcess(program)
    try:
        yield process
    finally:
        process.proc.kill()
        process.proc.wait(10)


def point_request(value: float, name: str = "cpu") -> udf_pb2.Request:
    request = udf_pb2.Request()
    request.point.name = name
    request.point.time = 1_000_000_000
    request.point.tags["host"] = "a"
    request.point.fieldsDouble["value"] = value
    return request


def test_the_agent_answers_info_init_points_snapshot_and_keepalive(
        udf_process: UDFProcess) -> None:
    info = udf_pb2.Request()
    info.info.SetInParent()
    udf_process.send(info)
    answer = udf_process.receive()
    assert answer.WhichOneof("message") == "info"
    assert list(answer.info.options["factor"].valueTypes) == [udf_pb2.DOUBLE]

    init = udf_pb2.Request()
    init.init.taskID, init.init.nodeID = "t", "scale2"
    option = init.init.options.add(name="factor")
    option.values.add(type=udf_pb2.DOUBLE, doubleValue=2.5)
    udf_process.send(init)
    assert udf_process.receive().init.success

    restore = udf_pb2.Request()
    restore.restore.snapshot = b'{"seen": 40}'
    udf_process.send(restore)
    assert udf_process.receive().restore.success

    for value in (1.0, 2.0, 4.0):  # written without flush=True: they still arrive
        udf_process.send(point_request(value))
    got = [udf_process.receive() for _ in range(3)]
    assert [r.point.fieldsDouble["value"] for r in got] == [2.5, 5.0, 10.0]
    assert dict(got[0].point.tags) == {"host": "a"}

    keepalive = udf_pb2.Request()
    keepalive.keepalive.time = 12345
    udf_process.send(keepalive)
    assert udf_process.receive().keepalive.time == 12345

    snapshot = udf_pb2.Request()
    snapshot.snapshot.SetInParent()
    udf_process.send(snapshot)
    assert udf_process.receive().snapshot.snapshot == b'{"seen": 43}'
    assert udf_process.close() == 0  # stdin closed: the agent ends


def test_a_handler_exception_is_sent_as_an_error_and_ends_the_agent(
        udf_process: UDFProcess) -> None:
    udf_process.send(point_request(1.0, name="boom"))
    answer = udf_process.receive()
    assert answer.error.error == ("error processing request of type point: "
                                  "cannot scale boom")
    assert udf_process.proc.wait(10) == 0


def test_garbage_on_stdin_is_answered_with_an_error(udf_process: UDFProcess) -> None:
    assert udf_process.proc.stdin is not None
    udf_process.proc.stdin.write(b"\xff" * 12)
    udf_process.proc.stdin.flush()
    assert "varint longer than ten bytes" in udf_process.receive().error.error


def test_the_agent_imports_only_protobuf_and_the_standard_library() -> None:
    code = ("import sys; before = set(sys.modules); import kapa_core.udf.agent; "
            "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
            "print(sorted(n for n in new if n not in sys.stdlib_module_names))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "['google', 'kapa_core']"


# -- the daemon side: a function that stops reading ---------------------------------------
NOT_READING = '''
import time
from kapa_core.udf.agent import Agent, Handler, udf_pb2
class H(Handler):
    def info(self):
        r = udf_pb2.Response(); r.info.wants = r.info.provides = udf_pb2.STREAM; return r
    def init(self, req):
        r = udf_pb2.Response(); r.init.success = True; return r
    def point(self, p):
        time.sleep(3600)  # reads nothing more
a = Agent(); a.handler = H(); a.start(); a.wait()
'''


async def test_requests_a_function_does_not_read_are_bounded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import trio
    from kapa_plugins.udf.process import connector

    from kapa_core.logs import Logger
    from kapa_core.models.point import Point
    from kapa_core.udf import UDFError, UDFNodeContext, wire

    program = tmp_path / "stuck.py"
    program.write_text(NOT_READING)
    monkeypatch.setattr(wire, "MAX_BUFFERED", 1_000_000)
    config = type("Config", (), {"prog": sys.executable, "args": ["-u", str(program)],
                                 "env": {}})()
    function = wire.WireFunction("stuck", connector(config), 10 * 10**9, Logger("test"))

    class Output:
        def point(self, p: Point) -> None: ...
        def begin_batch(self, begin: object) -> None: ...
        def end_batch(self, end: object) -> None: ...

    async with trio.open_nursery() as nursery:
        def start_soon(fn: Callable[[], Awaitable[None]]) -> None:
            nursery.start_soon(fn)

        session = function.open([], UDFNodeContext("t", "stuck2", Logger("test"), Output(),
                                                   start_soon))
        await trio.sleep(0.5)
        point = Point("m", {"host": "a" * 100}, {"value": 1.0}, 1)
        with pytest.raises(UDFError, match="the UDF is not reading its input"):
            for _ in range(100_000):
                session.point(point)
                await trio.lowlevel.checkpoint()
        session.close()
        nursery.cancel_scope.cancel()

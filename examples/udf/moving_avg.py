"""A moving average over a stream, as a UDF program.

    @movingAvg().field('value').size(10).as('avg')

Each group keeps its last ``size`` values of ``field``; every point goes on with their
average in ``as`` (default ``avg``) as its only field. The state survives restarts of
the task through snapshots.

Run by the daemon as a process UDF::

    [udf.functions.movingAvg]
      prog = "/usr/bin/python3"
      args = ["-u", "/path/to/moving_avg.py"]
      timeout = "10s"

or serve it on a unix socket (``python3 moving_avg.py --socket /tmp/moving_avg.sock``)::

    [udf.functions.movingAvg]
      socket = "/tmp/moving_avg.sock"
      timeout = "10s"

or run the same class inside the daemon, without a process (a kapa-core addition; start
the daemon with this directory on its ``PYTHONPATH``)::

    [udf.functions.movingAvg]
      python = "moving_avg:MovingAverage"
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import deque
from typing import Any

from kapa_core.udf.agent import Agent, Handler, Server, udf_pb2


class Window:
    """The last ``size`` values of one group and their running sum."""

    def __init__(self, size: int, values: list[float] | None = None) -> None:
        self.size = size
        self.values: deque[float] = deque(values or (), maxlen=size)
        self.total = sum(self.values)

    def add(self, value: float) -> float:
        if len(self.values) == self.size:
            self.total -= self.values[0]
        self.values.append(value)
        self.total += value
        return self.total / len(self.values)


class MovingAverage(Handler):
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.field = ""
        self.size = 0
        self.as_ = "avg"
        self.windows: dict[str, Window] = {}

    def info(self) -> udf_pb2.Response:
        response = udf_pb2.Response()
        response.info.wants = udf_pb2.STREAM
        response.info.provides = udf_pb2.STREAM
        response.info.options["field"].valueTypes.append(udf_pb2.STRING)
        response.info.options["size"].valueTypes.append(udf_pb2.INT)
        response.info.options["as"].valueTypes.append(udf_pb2.STRING)
        return response

    def init(self, init_req: udf_pb2.InitRequest) -> udf_pb2.Response:
        for option in init_req.options:
            value = option.values[0]
            if option.name == "field":
                self.field = value.stringValue
            elif option.name == "size":
                self.size = value.intValue
            elif option.name == "as":
                self.as_ = value.stringValue
        problems = []
        if not self.field:
            problems.append("must supply field name")
        if self.size <= 0:
            problems.append("must supply window size")
        if not self.as_:
            problems.append("invalid as name")
        response = udf_pb2.Response()
        response.init.success = not problems
        response.init.error = " ".join(problems)
        return response

    def snapshot(self) -> udf_pb2.Response:
        state = {group: {"size": w.size, "values": list(w.values)}
                 for group, w in self.windows.items()}
        response = udf_pb2.Response()
        response.snapshot.snapshot = json.dumps(state).encode()
        return response

    def restore(self, restore_req: udf_pb2.RestoreRequest) -> udf_pb2.Response:
        response = udf_pb2.Response()
        try:
            state = json.loads(restore_req.snapshot)
            self.windows = {group: Window(int(w["size"]), [float(v) for v in w["values"]])
                            for group, w in state.items()}
            response.restore.success = True
        except (ValueError, KeyError, TypeError) as exc:
            response.restore.success = False
            response.restore.error = f"cannot restore the snapshot: {exc}"
        return response

    def begin_batch(self, begin_req: udf_pb2.BeginBatch) -> None:
        raise ValueError("movingAvg takes a stream, not batches")

    def point(self, point: udf_pb2.Point) -> None:
        if self.field in point.fieldsDouble:
            value = point.fieldsDouble[self.field]
        elif self.field in point.fieldsInt:
            value = float(point.fieldsInt[self.field])
        else:
            return  # no value to average: the point is dropped
        window = self.windows.get(point.group)
        if window is None:
            window = self.windows[point.group] = Window(self.size)
        response = udf_pb2.Response()
        out = response.point
        out.CopyFrom(point)
        # the average is the only field: drop the others (an empty map needs no clearing)
        if point.fieldsDouble:
            out.ClearField("fieldsDouble")
        if point.fieldsInt:
            out.ClearField("fieldsInt")
        if point.fieldsString:
            out.ClearField("fieldsString")
        if point.fieldsBool:
            out.ClearField("fieldsBool")
        out.fieldsDouble[self.as_] = window.add(value)
        self.agent.write_response(response)

    def end_batch(self, end_req: udf_pb2.EndBatch) -> None:
        raise ValueError("movingAvg takes a stream, not batches")


class Accepter:
    """Serves each connection of a socket UDF with a handler of its own."""

    def accept(self, conn: Any, addr: Any) -> None:
        agent = Agent(conn, conn)
        agent.handler = MovingAverage(agent)
        agent.start()
        agent.wait()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", help="serve on this unix socket instead of "
                        "stdin/stdout")
    args = parser.parse_args(argv)
    if args.socket:
        Server(args.socket, Accepter()).serve()
        return
    agent = Agent()
    agent.handler = MovingAverage(agent)
    agent.start()
    agent.wait()


if __name__ == "__main__":
    main(sys.argv[1:])

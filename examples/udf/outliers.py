"""An outlier filter over batches (Tukey fences), as a UDF program.

    |window().period(1m).every(1m)
    @outliers().field('value').scale(1.5)

For each batch it receives, the function sends a batch holding only the points whose
``field`` lies outside the fences, unchanged, in the order of their values::

    lower = Q1 - scale * IQR        upper = Q3 + scale * IQR        IQR = Q3 - Q1

The quartiles are found as Kapacitor's own outliers example finds them, so that both
pick the same points. The n values are sorted and m = n // 2: for an odd n, Q1 is the
median of the m values below the middle one and Q3 that of the m values above it; for an
even n, Q1 is the median of the first m + 1 values and Q3 that of the last m - 1. The
median of an even count is the mean of the value at index count // 2 and the one after
it (``median([1, 2, 3, 4])`` is 3.5, not 2.5). ``scale`` defaults to 1.5 and must be at least 1.0. A point without ``field`` (or
with a non-numeric one) is left out; a batch of fewer than three values has no outliers.
The function keeps no state between batches.

Run by the daemon as a process UDF::

    [udf.functions.outliers]
      prog = "/usr/bin/python3"
      args = ["-u", "/path/to/outliers.py"]
      timeout = "10s"

or serve it on a unix socket (``python3 outliers.py --socket /tmp/outliers.sock``)::

    [udf.functions.outliers]
      socket = "/tmp/outliers.sock"
      timeout = "10s"
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kapa_core.udf.agent import Agent, Handler, Server, udf_pb2


def median(values: list[float]) -> tuple[int, int, float]:
    """The median of sorted ``values`` and the indexes of the values it is made of: the
    middle one, or for an even count the middle one and the one after it (not before:
    Kapacitor's example counts so)."""
    middle = len(values) // 2
    if len(values) % 2:
        return middle, middle, values[middle]
    after = min(middle + 1, len(values) - 1)
    return middle, after, (values[middle] + values[after]) / 2.0


def fences(values: list[float], scale: float) -> tuple[float, float]:
    """The lower and upper Tukey fences of sorted ``values`` (at least three)."""
    left, right, _ = median(values)
    q1 = median(values[:right])[2]
    q3 = median(values[left + 1:])[2]
    iqr = q3 - q1
    return q1 - scale * iqr, q3 + scale * iqr


class Outliers(Handler):
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.field = ""
        self.scale = 1.5
        self.begin: udf_pb2.BeginBatch | None = None
        self.points: list[tuple[float, udf_pb2.Point]] = []

    def info(self) -> udf_pb2.Response:
        response = udf_pb2.Response()
        response.info.wants = udf_pb2.BATCH
        response.info.provides = udf_pb2.BATCH
        response.info.options["field"].valueTypes.append(udf_pb2.STRING)
        response.info.options["scale"].valueTypes.append(udf_pb2.DOUBLE)
        return response

    def init(self, init_req: udf_pb2.InitRequest) -> udf_pb2.Response:
        for option in init_req.options:
            if option.name == "field":
                self.field = option.values[0].stringValue
            elif option.name == "scale":
                self.scale = option.values[0].doubleValue
        problems = []
        if not self.field:
            problems.append("must supply field name")
        if self.scale < 1.0:
            problems.append("invalid scale must be >= 1.0")
        response = udf_pb2.Response()
        response.init.success = not problems
        response.init.error = " ".join(problems)
        return response

    def snapshot(self) -> udf_pb2.Response:
        response = udf_pb2.Response()
        response.snapshot.snapshot = b""  # nothing is kept between batches
        return response

    def restore(self, restore_req: udf_pb2.RestoreRequest) -> udf_pb2.Response:
        response = udf_pb2.Response()
        response.restore.success = True
        return response

    def begin_batch(self, begin_req: udf_pb2.BeginBatch) -> None:
        self.begin = udf_pb2.BeginBatch()
        self.begin.CopyFrom(begin_req)
        self.points = []

    def point(self, point: udf_pb2.Point) -> None:
        if self.field in point.fieldsDouble:
            value = point.fieldsDouble[self.field]
        elif self.field in point.fieldsInt:
            value = float(point.fieldsInt[self.field])
        else:
            return
        kept = udf_pb2.Point()
        kept.CopyFrom(point)
        self.points.append((value, kept))

    def end_batch(self, end_req: udf_pb2.EndBatch) -> None:
        if self.begin is None:
            raise ValueError("a batch ended that did not begin")
        self.points.sort(key=lambda entry: entry[0])
        outliers = []
        if len(self.points) >= 3:
            lower, upper = fences([value for value, _ in self.points], self.scale)
            outliers = [p for value, p in self.points if value < lower or value > upper]
        response = udf_pb2.Response()
        response.begin.CopyFrom(self.begin)
        response.begin.size = len(outliers)
        self.agent.write_response(response)
        for p in outliers:
            response = udf_pb2.Response()
            response.point.CopyFrom(p)
            self.agent.write_response(response)
        response = udf_pb2.Response()
        response.end.CopyFrom(end_req)
        self.agent.write_response(response)
        self.begin = None
        self.points = []


class Accepter:
    """Serves each connection of a socket UDF with a handler of its own."""

    def accept(self, conn: Any, addr: Any) -> None:
        agent = Agent(conn, conn)
        agent.handler = Outliers(agent)
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
    agent.handler = Outliers(agent)
    agent.start()
    agent.wait()


if __name__ == "__main__":
    main(sys.argv[1:])

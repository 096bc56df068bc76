"""A UDF that sends back every point (and every batch) it receives, unchanged.

    @mirror()

The smallest useful UDF, and a way to see that data goes through the UDF protocol and
back intact: names, tags, fields of every type, times, groups. By default it wants and
provides a stream; with ``--batch`` it wants and provides batches and mirrors each
begin, point and end.

Serve it on a unix socket (``python3 mirror.py --socket /tmp/mirror.sock``)::

    [udf.functions.mirror]
      socket = "/tmp/mirror.sock"
      timeout = "10s"

or let the daemon run it as a process UDF::

    [udf.functions.mirror]
      prog = "/usr/bin/python3"
      args = ["-u", "/path/to/mirror.py"]
      timeout = "10s"

    [udf.functions.mirrorBatch]
      prog = "/usr/bin/python3"
      args = ["-u", "/path/to/mirror.py", "--batch"]
      timeout = "10s"
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kapa_core.udf.agent import Agent, Handler, Server, udf_pb2


class Mirror(Handler):
    def __init__(self, agent: Agent, edge: udf_pb2.EdgeType = udf_pb2.STREAM) -> None:
        self.agent = agent
        self.edge = edge

    def info(self) -> udf_pb2.Response:
        response = udf_pb2.Response()
        response.info.wants = self.edge
        response.info.provides = self.edge
        return response

    def init(self, init_req: udf_pb2.InitRequest) -> udf_pb2.Response:
        response = udf_pb2.Response()
        response.init.success = True
        return response

    def snapshot(self) -> udf_pb2.Response:
        response = udf_pb2.Response()
        response.snapshot.snapshot = b""
        return response

    def restore(self, restore_req: udf_pb2.RestoreRequest) -> udf_pb2.Response:
        response = udf_pb2.Response()
        response.restore.success = True
        return response

    def begin_batch(self, begin_req: udf_pb2.BeginBatch) -> None:
        response = udf_pb2.Response()
        response.begin.CopyFrom(begin_req)
        self.agent.write_response(response)

    def point(self, point: udf_pb2.Point) -> None:
        response = udf_pb2.Response()
        response.point.CopyFrom(point)
        self.agent.write_response(response)

    def end_batch(self, end_req: udf_pb2.EndBatch) -> None:
        response = udf_pb2.Response()
        response.end.CopyFrom(end_req)
        self.agent.write_response(response)


class Accepter:
    """Serves each connection of a socket UDF with a handler of its own."""

    def __init__(self, edge: udf_pb2.EdgeType) -> None:
        self.edge = edge

    def accept(self, conn: Any, addr: Any) -> None:
        agent = Agent(conn, conn)
        agent.handler = Mirror(agent, self.edge)
        agent.start()
        agent.wait()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", help="serve on this unix socket instead of "
                        "stdin/stdout")
    parser.add_argument("--batch", action="store_true",
                        help="want and provide batches instead of a stream")
    args = parser.parse_args(argv)
    edge = udf_pb2.BATCH if args.batch else udf_pb2.STREAM
    if args.socket:
        Server(args.socket, Accepter(edge)).serve()
        return
    agent = Agent()
    agent.handler = Mirror(agent, edge)
    agent.start()
    agent.wait()


if __name__ == "__main__":
    main(sys.argv[1:])

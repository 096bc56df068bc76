"""Pieces the benchmarks share: task shapes, bodies, waiting on node statistics, and
what ``/proc`` says about a process and the machine.

Everything here speaks only the HTTP API (``/kapacitor/v1/tasks``, ``/write``), so it works
the same against kapa-core and against Kapacitor 1.5.7.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

#: the task scripts of Kapacitor's own engine benchmarks (and one of ours)
SHAPES = {
    "bare": "stream|from().measurement('m1')",
    "count": "stream|from().measurement('m1')|window().period(100s).every(100s)"
             "|count('value')",
    "join": "var m1 = stream|from().measurement('m1')\n"
            "var m2 = stream|from().measurement('m2')\n"
            "m1|join(m2).as('m1', 'm2').tolerance(1s)"
            "|eval(lambda: \"m1.value\" * \"m2.value\").as('v')",
    "alert": "stream|from().measurement('m1')"
             "|alert().id('{{ .Name }}_{{ .TaskName }}')"
             ".info(lambda: \"value\" > 10).warn(lambda: \"value\" > 20)"
             ".crit(lambda: \"value\" > 30)",
    # Not one of Kapacitor's shapes: the same alert publishing to a named topic, so every
    # event's state (message and details rendered) is recorded and persisted.
    "alert_topic": "stream|from().measurement('m1')"
                   "|alert().id('{{ .Name }}_{{ .TaskName }}')"
                   ".info(lambda: \"value\" > 10).warn(lambda: \"value\" > 20)"
                   ".crit(lambda: \"value\" > 30).topic('bench')",
}
MEASUREMENTS = {"bare": ("m1",), "count": ("m1",), "join": ("m1", "m2"), "alert": ("m1",),
                "alert_topic": ("m1",)}
#: the node that must have collected every point; the alert shape is timed to its end
DONE_NODE = {"alert": "alert2", "alert_topic": "alert2"}

#: the kapa-core configuration the benchmarks run with
DAEMON_CONFIG: dict[str, Any] = {"http": {"log-enabled": False, "max-body-size": 0},
                                 "logging": {"level": "WARN"}}

WRITE = "/write?db=bench&rp=autogen&precision=s"


def line_body(n: int, offset: int = 0, measurement: str = "m1") -> bytes:
    """``n`` lines shaped like Kapacitor's write benchmark: ``m1 value=<i> <i>``."""
    return "\n".join(f"{measurement} value={i} {offset + i}" for i in range(n)).encode()


def shape_bodies(shape: str, points: int) -> list[bytes]:
    """One body of ``points`` lines per measurement the shape reads."""
    return [line_body(points, 0, m) for m in MEASUREMENTS[shape]]


def define_tasks(client: httpx.Client, shape: str, tasks: int, prefix: str = "",
                 script: str | None = None) -> list[str]:
    """Define and enable ``tasks`` stream tasks of ``shape`` on db ``bench``; their ids."""
    ids = []
    for i in range(tasks):
        task_id = f"{prefix}{shape}{i}"
        response = client.post("/kapacitor/v1/tasks", json={
            "id": task_id, "type": "stream", "status": "enabled",
            "dbrps": [{"db": "bench", "rp": "autogen"}],
            "script": script if script is not None else SHAPES[shape]})
        assert response.status_code == 200, response.text
        ids.append(task_id)
    return ids


def delete_tasks(client: httpx.Client, ids: list[str]) -> None:
    for task_id in ids:
        client.delete(f"/kapacitor/v1/tasks/{task_id}")


def task_stats(client: httpx.Client, ids: list[str]) -> list[dict[str, Any]]:
    """The ``stats`` of the given tasks (one listing; Kapacitor lists 100 by default)."""
    wanted = set(ids)
    listing = client.get("/kapacitor/v1/tasks",
                         params={"fields": "stats", "limit": len(ids) + 1000}).json()
    return [t["stats"] for t in listing["tasks"] if t["id"] in wanted]


def node_total(stats: list[dict[str, Any]], node: str, counter: str = "collected") -> int:
    """``counter`` of the node named ``node`` (or, when it ends in ``*``, the first node
    whose name starts with it) summed over tasks."""
    total = 0
    for s in stats:
        nodes = s["node-stats"]
        if node.endswith("*"):
            names = [n for n in nodes if n.startswith(node[:-1])]
            name = names[0] if names else ""
        else:
            name = node
        total += int(nodes.get(name, {}).get(counter, 0))
    return total


def wait_counter(client: httpx.Client, ids: list[str], node: str, expected: int,
                 started: float, timeout: float, counter: str = "collected"
                 ) -> tuple[float | None, list[dict[str, Any]]]:
    """Poll until ``node``'s ``counter`` summed over the tasks reaches ``expected``.

    Returns the seconds since ``started`` (``time.perf_counter()``) when it did, or None
    after ``timeout`` seconds, and the last statistics. The poll interval grows with the
    elapsed time (0.5 % of it, between 5 and 50 ms), so that the listing, which costs the
    server work, is taken a bounded number of times whatever the case's length.
    """
    while True:
        stats = task_stats(client, ids)
        now = time.perf_counter()
        if node_total(stats, node, counter) >= expected:
            return now - started, stats
        if now - started > timeout:
            return None, stats
        time.sleep(min(0.05, max(0.005, (now - started) / 200)))


def proc_status_kb(pid: int, key: str) -> int:
    """A ``kB`` figure of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``); 0 when absent."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def peak_rss_mb(pid: int) -> float:
    return proc_status_kb(pid, "VmHWM") / 1024


def rss_mib(pid: int) -> float:
    return proc_status_kb(pid, "VmRSS") / 1024


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs together, from ``/proc/stat``."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    total = sum(values[:8])  # guest time is already inside user
    return total - idle, total


class Load:
    """How busy the machine and one process were between ``Load()`` and ``.stop()``:
    ``machine`` and ``process`` in cores (0..ncpu)."""

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid
        self.cores = os.cpu_count() or 1
        self.restart()

    def restart(self) -> Load:
        """Count from now on (a case calls it when its timed part begins)."""
        self._machine = machine_jiffies()
        self._process = cpu_seconds(self.pid) if self.pid else 0.0
        self._wall = time.perf_counter()
        self.machine = self.process = 0.0
        return self

    def stop(self) -> Load:
        busy, total = machine_jiffies()
        wall = time.perf_counter() - self._wall
        spent = total - self._machine[1]
        self.machine = self.cores * (busy - self._machine[0]) / spent if spent else 0.0
        if self.pid and wall > 0:
            try:
                self.process = (cpu_seconds(self.pid) - self._process) / wall
            except OSError:  # the process has ended
                self.process = 0.0
        return self


# -- an HTTP receiver that records when each request arrived ---------------------------

class _Recorder(asyncio.Protocol):
    """A minimal HTTP/1.1 server side: answers every request 200 at once (keep-alive)
    and records ``(time.monotonic_ns() when its last byte arrived, body)``."""

    def __init__(self, arrivals: list[tuple[int, bytes]], counts: dict[str, int]) -> None:
        self.arrivals = arrivals
        self.counts = counts
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.counts["connections"] += 1
        self.counts["open"] += 1
        self.counts["most open"] = max(self.counts["most open"], self.counts["open"])
        self.last = time.monotonic()
        _OPEN.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.counts["open"] -= 1
        _OPEN.discard(self)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        self.last = now / 1e9
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].lower()
            rest = self.buffer[end + 4:]
            if b"transfer-encoding: chunked" in head:
                body, used = _dechunk(rest)
                if used < 0:
                    return
            else:
                found = re.search(rb"content-length:\s*(\d+)", head)
                size = int(found.group(1)) if found else 0
                if len(rest) < size:
                    return
                body, used = rest[:size], size
            self.buffer = rest[used:]
            self.arrivals.append((now, body))
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")


_OPEN: set[_Recorder] = set()
#: a kept-alive connection idle this long is closed, as servers do (Kapacitor 1.5.7's post
#: handler opens a connection per request and leaves it open: without this it would use
#: up the receiver's file descriptors)
IDLE_TIMEOUT = 1.0


async def _close_idle() -> None:
    while True:
        await asyncio.sleep(IDLE_TIMEOUT / 4)
        now = time.monotonic()
        for recorder in list(_OPEN):
            if now - recorder.last > IDLE_TIMEOUT and recorder.transport is not None:
                recorder.transport.close()
                _OPEN.discard(recorder)


def _dechunk(data: bytes) -> tuple[bytes, int]:
    """The body of a chunked request and the bytes it took, or (b"", -1) if incomplete."""
    body, at = b"", 0
    while (eol := data.find(b"\r\n", at)) >= 0:
        size = int(data[at:eol].split(b";")[0], 16)
        if len(data) < eol + 2 + size + 2:
            return b"", -1
        if size == 0:
            end = data.find(b"\r\n\r\n", eol)  # trailers, if any, end with a blank line
            return (body, end + 4) if end >= 0 else (b"", -1)
        body += data[eol + 2:eol + 2 + size]
        at = eol + 2 + size + 2
    return b"", -1


def receiver_main(conn: Connection) -> None:
    """Run in its own process (its own interpreter lock, so that neither the writer's
    timing nor the arrivals' wait on the other): sends its port, then answers ``"count"``
    with the number of requests so far and ``"stop"`` with every ``(arrival_ns, body)`` and
    the connection counts.
    ``time.monotonic_ns()`` is CLOCK_MONOTONIC, one clock for every process of the
    machine, so arrivals compare with the writer's own readings."""
    # Past the descriptor limit asyncio logs every failed accept(); the missing arrivals
    # say it already.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    asyncio.run(_receive(conn))


async def _receive(conn: Connection) -> None:
    arrivals: list[tuple[int, bytes]] = []
    counts = {"connections": 0, "open": 0, "most open": 0}
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Recorder(arrivals, counts), "127.0.0.1", 0,
                                      backlog=1024)
    conn.send(server.sockets[0].getsockname()[1])
    closer = asyncio.create_task(_close_idle())
    while True:
        message = await loop.run_in_executor(None, conn.recv)
        if message == "count":
            conn.send(len(arrivals))
        else:
            closer.cancel()
            server.close()
            conn.send((arrivals, counts))
            return

"""Input listeners end to end: points/s into one receiving task, per transport.

    python benchmarks/bench_inputs.py [--points 200000] [--transports write collectd]
                                      [--paced 0.8] [--kapacitord /opt/kbin/kapacitord]

Starts ``kapa-core`` as a subprocess with every transport's listener on a free loopback
port and one receiving task per transport (``stream|from().measurement(...)`` on the
transport's own database), sends the same points through each transport and prints:
what the sender sent, what the task received (its ``from`` node's count), the rate
(points received over the time from the first byte sent to the last point received) and
the daemon's CPU time per point received (user and system, from /proc: steadier than
rates on a busy machine).

Datagram transports are sent twice: flat out (the sender is faster than the daemon, so
what the socket buffer cannot hold is lost: the loss is part of the figure), then paced
at ``--paced`` times the flat-out receive rate, where nothing should be lost.

Adding a transport: write a ``Transport`` (its config section for a port, and a
``send(target, points)`` that sends :class:`Points` and returns how many it sent) and
add it to ``TRANSPORTS``; ``main`` does the rest.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kapa_plugins.inputs import collectd_protocol as cp

from kapa_core.testing import DaemonProcess, to_toml

TYPES_DB = "/usr/share/collectd/types.db"
#: collectd's default MaxPacketSize: what collectd itself puts in one datagram.
COLLECTD_PACKET = 1452
SERIES = 10


@dataclass(frozen=True)
class Points:
    """``count`` points ``bench_value,host=bench,type=gauge,type_instance=s<i%10>
    value=<i>`` one microsecond apart from ``start_ns``, the same for every transport."""

    count: int
    start_ns: int = 1_700_000_000 * 10**9


@dataclass
class Target:
    """Where a transport sends: the daemon's HTTP client, the listener's address, and
    ``rate`` (points/s to pace to; 0: flat out)."""

    client: httpx.Client
    address: tuple[str, int]
    rate: float = 0.0


@dataclass(frozen=True)
class Transport:
    name: str
    database: str
    #: the config to merge for a listener on ``port`` ({} for /write)
    config: Callable[[int], dict[str, Any]]
    send: Callable[[Target, Points], int]
    datagrams: bool = False  # lossy: also run paced
    tcp: bool = False  # its listener's port is a TCP port


def pace(target: Target, sent: int, started: float) -> None:
    """Sleep until ``sent`` points are due at ``target.rate``."""
    if target.rate:
        ahead = sent / target.rate - (time.perf_counter() - started)
        if ahead > 0.001:
            time.sleep(ahead)


# --- /write -------------------------------------------------------------------------

def send_write(target: Target, points: Points, per_body: int = 5000) -> int:
    sent = 0
    while sent < points.count:
        n = min(per_body, points.count - sent)
        body = "\n".join(
            f"bench_value,host=bench,type=gauge,type_instance=s{i % SERIES} value={float(i)} "
            f"{points.start_ns + i * 1000}" for i in range(sent, sent + n)).encode()
        response = target.client.post("/write?db=bench_write&rp=autogen", content=body)
        assert response.status_code == 204, response.text
        sent += n
    return sent


# --- collectd ------------------------------------------------------------------------

def collectd_packets(points: Points) -> list[tuple[bytes, int]]:
    """Datagrams as collectd's network plugin fills them (up to 1452 bytes: host, plugin
    and type once, then a type instance and a one-value values part per point) with the
    number of points each holds."""
    header = (cp.encode_string(cp.PART_HOST, "bench") + cp.encode_string(cp.PART_PLUGIN,
                                                                          "bench")
              + cp.encode_string(cp.PART_TYPE, "gauge"))
    packets: list[tuple[bytes, int]] = []
    data, n = bytearray(header), 0
    for i in range(points.count):
        hr = ((points.start_ns + i * 1000) << 30) // 10**9
        item = (cp.encode_number(cp.PART_TIME_HR, hr)
                + cp.encode_string(cp.PART_TYPE_INSTANCE, f"s{i % SERIES}")
                + cp.encode_values([(cp.GAUGE, float(i))]))
        if len(data) + len(item) > COLLECTD_PACKET:
            packets.append((bytes(data), n))
            data, n = bytearray(header), 0
        data += item
        n += 1
    if n:
        packets.append((bytes(data), n))
    return packets


def send_collectd(target: Target, points: Points) -> int:
    packets = collectd_packets(points)
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        started = time.perf_counter()
        for data, n in packets:
            s.sendto(data, target.address)
            sent += n
            pace(target, sent, started)
    return sent


def collectd_config(port: int) -> dict[str, Any]:
    return {"collectd": {"enabled": True, "bind-address": f"127.0.0.1:{port}",
                         "database": "bench_collectd", "retention-policy": "autogen",
                         "typesdb": TYPES_DB, "batch-size": 5000,
                         "batch-timeout": "50ms", "read-buffer": 8 * 1024 * 1024}}


# --- UDP line protocol ([[udp]]) ------------------------------------------------------

#: Bytes of line protocol per datagram (one Ethernet frame's worth).
UDP_PAYLOAD = 1400


def send_udp(target: Target, points: Points) -> int:
    sent = 0
    lines: list[bytes] = []
    size = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        started = time.perf_counter()
        for i in range(points.count):
            line = (f"bench_value,host=bench,type=gauge,type_instance=s{i % SERIES} "
                    f"value={float(i)} {points.start_ns + i * 1000}").encode()
            if size + len(line) + 1 > UDP_PAYLOAD:
                s.sendto(b"\n".join(lines), target.address)
                sent += len(lines)
                lines, size = [], 0
                pace(target, sent, started)
            lines.append(line)
            size += len(line) + 1
        if lines:
            s.sendto(b"\n".join(lines), target.address)
            sent += len(lines)
    return sent


def udp_config(port: int) -> dict[str, Any]:
    return {"udp": [{"enabled": True, "bind-address": f"127.0.0.1:{port}",
                     "database": "bench_udp", "retention-policy": "autogen",
                     "read-buffer": 8 * 1024 * 1024}]}


# --- OpenTSDB telnet ([opentsdb]) -------------------------------------------------------

def send_opentsdb(target: Target, points: Points, per_write: int = 1000) -> int:
    """One telnet connection, ``put`` lines with millisecond timestamps (one ms apart:
    telnet has no finer resolution), written ``per_write`` lines at a time."""
    start_ms = points.start_ns // 10**6
    sent = 0
    with socket.create_connection(target.address) as conn:
        while sent < points.count:
            n = min(per_write, points.count - sent)
            conn.sendall("".join(
                f"put bench_value {start_ms + i} {float(i)} host=bench type=gauge "
                f"type_instance=s{i % SERIES}\n" for i in range(sent, sent + n)).encode())
            sent += n
    return sent


def opentsdb_config(port: int) -> dict[str, Any]:
    return {"opentsdb": {"enabled": True, "bind-address": f"127.0.0.1:{port}",
                         "database": "bench_opentsdb", "retention-policy": "autogen"}}


TRANSPORTS = {
    "write": Transport("write", "bench_write", lambda port: {}, send_write),
    "collectd": Transport("collectd", "bench_collectd", collectd_config, send_collectd,
                          datagrams=True),
    "udp": Transport("udp", "bench_udp", udp_config, send_udp, datagrams=True),
    "opentsdb": Transport("opentsdb", "bench_opentsdb", opentsdb_config, send_opentsdb,
                          tcp=True),
}


# --- measuring -----------------------------------------------------------------------

def free_udp_port(tcp: bool = False) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM) \
            as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def received(client: httpx.Client, task: str) -> int:
    """Points the task's ``from`` node collected."""
    stats = client.get(f"/kapacitor/v1/tasks/{task}").json()["stats"]["node-stats"]
    return int(stats["from1"]["collected"])


@dataclass
class Result:
    sent: int
    received: int
    rate: float  # points received per second
    cpu_us: float  # daemon CPU microseconds per point received

    def __str__(self) -> str:
        share = self.received / self.sent if self.sent else 0.0
        return (f"sent {self.sent:>9,}  received {self.received:>9,} ({share:6.1%})  "
                f"{self.rate:>9,.0f} points/s  {self.cpu_us:5.1f} us CPU/point")


def run(client: httpx.Client, pid: int, transport: Transport, address: tuple[str, int],
        points: Points, rate: float = 0.0) -> Result:
    task = f"bench_{transport.name}"
    before = received(client, task)
    cpu = cpu_seconds(pid)
    started = time.perf_counter()
    sent = transport.send(Target(client, address, rate), points)
    last, last_change = before, time.perf_counter()
    while time.perf_counter() - last_change < 0.5:  # until the count stays put
        now = received(client, task)
        if now != last:
            last, last_change = now, time.perf_counter()
        if now - before >= sent:
            break
        time.sleep(0.01)
    got = last - before
    elapsed = (last_change if got < sent else time.perf_counter()) - started
    cpu = cpu_seconds(pid) - cpu
    return Result(sent, got, got / elapsed if elapsed > 0 else 0.0,
                  cpu / got * 1e6 if got else 0.0)


def measure(label: str, url: str, pid: int, chosen: list[Transport],
            ports: dict[str, int], points: Points, paced: float) -> None:
    """Define one receiving task per transport on the server at ``url`` (process
    ``pid``) and print each transport's results."""
    with httpx.Client(base_url=url, timeout=120) as client:
        print(f"{label} at {url}; {points.count:,} points per run")
        for t in chosen:
            script = (f'dbrp "{t.database}"."autogen"\n'
                      "stream|from().measurement('bench_value')\n")
            response = client.post("/kapacitor/v1/tasks", json={
                "id": f"bench_{t.name}", "type": "stream", "script": script,
                "status": "enabled"})
            assert response.status_code == 200, response.text
        for t in chosen:
            address = ("127.0.0.1", ports[t.name])
            result = run(client, pid, t, address, points)
            mode = "flat out" if t.datagrams else ""
            print(f"{t.name:>10} {mode:>18}: {result}")
            if t.datagrams and paced and result.rate:
                target = result.rate * paced
                again = run(client, pid, t, address, points, target)
                print(f"{t.name:>10} {f'paced {target:,.0f}/s':>18}: {again}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200_000,
                        help="points per run (default 200000)")
    parser.add_argument("--transports", nargs="+", default=list(TRANSPORTS),
                        choices=list(TRANSPORTS))
    parser.add_argument("--paced", type=float, default=0.8,
                        help="paced run of datagram transports at this fraction of "
                        "their flat-out rate (0: none; default 0.8)")
    parser.add_argument("--kapacitord", metavar="PATH",
                        help="also run the same on this Kapacitor 1.5.7 kapacitord")
    args = parser.parse_args()
    chosen = [TRANSPORTS[name] for name in args.transports]
    ports = {t.name: free_udp_port(t.tcp) for t in chosen}
    sections: dict[str, Any] = {}
    for t in chosen:
        sections.update(t.config(ports[t.name]))
    config: dict[str, Any] = {"http": {"log-enabled": False, "max-body-size": 0},
                              "logging": {"level": "WARN"}, **sections}
    points = Points(args.points)
    with DaemonProcess(config) as daemon:
        assert daemon.proc is not None
        measure("kapa-core", daemon.url, daemon.proc.pid, chosen, ports, points,
                args.paced)
    if args.kapacitord:
        from tests.compat.oracle import Kapacitor  # the same listeners' config, as TOML

        kapacitor = Kapacitor(args.kapacitord, extra_conf=to_toml(sections))
        try:
            measure("Kapacitor", kapacitor.url, kapacitor.proc.pid, chosen, ports, points,
                    args.paced)
        finally:
            kapacitor.close()


if __name__ == "__main__":
    main()

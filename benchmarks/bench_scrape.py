"""Prometheus scraping end to end: samples/s a ``[[scraper]]`` ingests from many targets.

    python benchmarks/bench_scrape.py [--targets 200] [--samples 2000] [--interval 1s]
                                      [--seconds 20] [--warmup 5]

Starts one helper process serving ``--targets`` loopback HTTP ports (asyncio, one
pre-built answer: a Prometheus text page of ``--samples`` samples, 100 gauge families of
labelled series, like an exporter's), then the daemon with a ``[[static-discovery]]``
listing them and a ``[[scraper]]`` scraping them every ``--interval`` (timeout: the
interval), and two tasks: one receiving every point (``stream|from()|httpOut``) and one
posting the ``scrape_duration_seconds`` report samples once a second to a local server.
After ``--warmup`` seconds it measures for ``--seconds`` and prints:

* samples/s ingested (the scraper's ``samples`` and ``points_tx`` statistics over the
  window) against the offered load (targets x samples / interval);
* scrapes/s done and failed;
* scrape latency p50/p99/max (``scrape_duration_seconds``: request, answer and parse);
* the API's round trip (``GET /kapacitor/v1/ping`` every 100 ms) meanwhile;
* the daemon's CPU share (user+system from /proc over the window; 100% = one core):
  its own thread and its page parser processes; and the helper's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kapa_core.testing import DaemonProcess
from kapa_core.testing.http import RecordingHTTPServer

API = "/kapacitor/v1"
FAMILIES = 100


def page(samples: int) -> bytes:
    per = max(samples // FAMILIES, 1)
    lines = []
    n = 0
    for f in range(FAMILIES):
        lines.append(f"# HELP bench_metric_{f} A benchmark gauge.")
        lines.append(f"# TYPE bench_metric_{f} gauge")
        for i in range(per):
            if n == samples:
                break
            lines.append(f'bench_metric_{f}{{cpu="{i}",mode="user"}} {n * 1.5}')
            n += 1
    return ("\n".join(lines) + "\n").encode()


def serve(count: int, samples: int) -> None:
    """The helper: ``count`` ports answering every GET with the page; prints the ports."""
    body = page(samples)
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if not head:
                    break
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in head.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        servers = [await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512)
                   for _ in range(count)]
        ports = [s.sockets[0].getsockname()[1] for s in servers]
        print(" ".join(map(str, ports)), flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def family_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of the daemon itself and of its child processes (page parsers)."""
    own = cpu_seconds(pid)
    kids = 0.0
    for child in children(pid):
        with contextlib.suppress(OSError):  # a child that just ended
            kids += cpu_seconds(child)
    return own, kids


def ping_for(url: str, seconds: float) -> list[float]:
    """Sorted round trips of ``GET /kapacitor/v1/ping``, one every 100 ms for ``seconds``:
    how the API answers while the daemon scrapes."""
    took = []
    end = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=30) as client:
        while time.monotonic() < end:
            started = time.perf_counter()
            client.get(API + "/ping")
            took.append(time.perf_counter() - started)
            time.sleep(0.1)
    return sorted(took)


def scraper_values(client: httpx.Client) -> dict[str, Any]:
    stats = client.get(API + "/debug/vars").json()["kapacitor"]
    for stat in stats.values():
        if stat["name"] == "scraper":
            return dict(stat["values"])
    return {}


def duration_s(text: str) -> float:
    units = {"ms": 1e-3, "s": 1.0, "m": 60.0}
    for unit in ("ms", "s", "m"):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    return float(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--samples", type=int, default=2000, help="samples per page")
    parser.add_argument("--interval", default="1s", help="scrape-interval (Go duration)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--serve", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(*args.serve)
        return 0
    interval = duration_s(args.interval)
    helper = subprocess.Popen([sys.executable, __file__, "--serve", str(args.targets),
                               str(args.samples)], stdout=subprocess.PIPE, text=True)
    try:
        assert helper.stdout is not None
        ports = helper.stdout.readline().split()
        targets = [f"127.0.0.1:{p}" for p in ports]
        config = {
            "logging": {"level": "INFO"},
            "http": {"log-enabled": False},
            "static-discovery": [{"enabled": True, "id": "bench", "targets": targets}],
            "scraper": [{"enabled": True, "name": "bench", "discoverer-id": "bench",
                         "discoverer-service": "static-discovery", "db": "prom",
                         "rp": "autogen", "scrape-interval": args.interval,
                         "scrape-timeout": args.interval}]}
        with DaemonProcess(config) as daemon, RecordingHTTPServer(status=204) as sink, \
                httpx.Client(base_url=daemon.url, timeout=60) as client:
            assert daemon.proc is not None
            for task_id, script in (
                    ("all", "stream|from()|httpOut('last')"),
                    ("durations", "stream|from().measurement('scrape_duration_seconds')"
                     f"|window().period(1s).every(1s)|httpPost('{sink.url}/')")):
                response = client.post(API + "/tasks", json={
                    "id": task_id, "type": "stream", "status": "enabled",
                    "script": 'dbrp "prom"."autogen"\n' + script})
                response.raise_for_status()
            time.sleep(args.warmup)
            before, cpu0, helper0 = scraper_values(client), family_cpu(daemon.proc.pid), \
                cpu_seconds(helper.pid)
            started = time.monotonic()
            posted = len(sink.requests)
            pings = ping_for(daemon.url, args.seconds)
            after, cpu1, helper1 = scraper_values(client), family_cpu(daemon.proc.pid), \
                cpu_seconds(helper.pid)
            elapsed = time.monotonic() - started
            durations = sorted(float(row[series["columns"].index("value")])
                               for request in sink.requests[posted:]
                               for series in request.json().get("series") or []
                               for row in series.get("values") or [])

        def rate(key: str) -> float:
            return (after.get(key, 0) - before.get(key, 0)) / elapsed

        offered = args.targets * args.samples / interval
        print(f"targets {args.targets} x {args.samples} samples every {args.interval}: "
              f"offered {offered:,.0f} samples/s")
        print(f"ingested     {rate('samples'):>12,.0f} samples/s  "
              f"({rate('points_tx'):,.0f} points/s written)")
        print(f"scrapes      {rate('scrapes'):>12,.1f} /s  "
              f"(failed {rate('scrape_errors'):,.1f}/s; expected "
              f"{args.targets / interval:,.1f}/s)")
        if durations:
            p99 = durations[min(len(durations) - 1, int(len(durations) * 0.99))]
            print(f"latency      p50 {statistics.median(durations) * 1e3:,.1f} ms  "
                  f"p99 {p99 * 1e3:,.1f} ms  max {durations[-1] * 1e3:,.1f} ms  "
                  f"({len(durations)} scrapes)")
        if pings:
            print(f"API          GET /ping p50 {statistics.median(pings) * 1e3:,.1f} ms  "
                  f"p99 {pings[min(len(pings) - 1, int(len(pings) * 0.99))] * 1e3:,.1f} ms "
                  f"(while scraping)")
        own, parsers = (cpu1[0] - cpu0[0]) / elapsed, (cpu1[1] - cpu0[1]) / elapsed
        print(f"daemon CPU   {own + parsers:6.1%} of one core: its thread {own:.1%}, "
              f"page parsers {parsers:.1%}  (helper serving the pages: "
              f"{(helper1 - helper0) / elapsed:.1%})")
    finally:
        helper.terminate()
        helper.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())

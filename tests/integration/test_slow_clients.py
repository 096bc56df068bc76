"""Slow and oversized clients against the real daemon: they are cut off, others are served.

The daemon runs with short ``[http] read-header-timeout`` / ``idle-timeout`` and a small
``max-body-size`` so each limit shows within a second or two.

The ping latency bounds are hang detectors, not benchmarks: they must hold on a loaded
2-core machine (scheduler noise), and still fail when a client stalls the event loop.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import trio

from kapa_core.testing import DaemonProcess

pytestmark = pytest.mark.integration

HEADER_TIMEOUT = 1.0
IDLE_TIMEOUT = 2.0
LIMIT = 100_000
PING = "/kapacitor/v1/ping"
#: The slowest ping answer allowed while bad clients are being handled. Pings take a few
#: ms, up to ~0.6 s on an overloaded 2-core machine; a client that blocked the event loop
#: would hold it until that client is done (the lorises and the trickle: 8-10 s here),
#: since no timeout can fire meanwhile.
STALL = 2.0


@pytest.fixture(scope="module")
def daemon() -> Iterator[DaemonProcess]:
    with DaemonProcess({"http": {"read-header-timeout": f"{HEADER_TIMEOUT:g}s",
                                 "idle-timeout": f"{IDLE_TIMEOUT:g}s",
                                 "max-body-size": LIMIT, "log-enabled": False}}) as d:
        yield d


def address(daemon: DaemonProcess) -> tuple[str, int]:
    host, _, port = daemon.url.removeprefix("http://").rpartition(":")
    return host, int(port)


async def closed_by_server(stream: trio.SocketStream, limit: float) -> bool:
    """Read until the server closes the connection (True) or ``limit`` seconds pass."""
    with trio.move_on_after(limit):
        try:
            while await stream.receive_some(4096):
                pass
        except trio.BrokenResourceError:
            pass
        return True
    return False


async def ping_latencies(url: str, until: trio.Event, out: list[float]) -> None:
    """Ping every 50 ms until ``until`` is set, recording each answer's latency."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        while not until.is_set():
            started = trio.current_time()
            response = await client.get(PING)
            assert response.status_code == 204
            out.append(trio.current_time() - started)
            await trio.sleep(0.05)


# -- slow-loris -------------------------------------------------------------------------

async def test_slow_loris_headers_are_cut_off_while_others_are_served(daemon) -> None:
    host, port = address(daemon)
    # 400 bytes, one every 20 ms: 8 s of headers, so a cut 1 s in is far from a cut at the
    # end (a timer restarted by every byte cuts 9 s in).
    head = b"GET /kapacitor/v1/tasks HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 400
    cut_after: list[float] = []

    async def loris() -> None:
        stream = await trio.open_tcp_stream(host, port)
        started = trio.current_time()
        try:
            for byte in head:  # the headers never finish in time
                await stream.send_all(bytes([byte]))
                await trio.sleep(0.02)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        assert await closed_by_server(stream, 5)
        cut_after.append(trio.current_time() - started)
        await stream.aclose()

    latencies: list[float] = []
    done = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ping_latencies, daemon.url, done, latencies)
        async with trio.open_nursery() as lorises:
            for _ in range(30):
                lorises.start_soon(loris)
        done.set()
    assert len(cut_after) == 30
    # Either side of the header timeout, with room for a busy scheduler (the client's clock
    # starts after connect, the server's on accept).
    assert all(HEADER_TIMEOUT * 0.75 <= t <= HEADER_TIMEOUT + 4 for t in cut_after), cut_after
    assert len(latencies) >= 10 and max(latencies) < STALL, latencies
    async with httpx.AsyncClient() as client:
        assert (await client.get(daemon.url + "/kapacitor/v1/tasks")).status_code == 200


async def test_idle_connection_and_stalled_body_are_closed(daemon) -> None:
    host, port = address(daemon)
    idle = await trio.open_tcp_stream(host, port)
    await idle.send_all(b"GET /kapacitor/v1/ping HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = await idle.receive_some(4096)
    started = trio.current_time()  # the server's idle timer started a little earlier
    assert answer.startswith(b"HTTP/1.1 204")
    stalled = await trio.open_tcp_stream(host, port)
    await stalled.send_all(b"POST /write?db=d HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                           b"\r\ncpu v=1")
    assert await closed_by_server(idle, IDLE_TIMEOUT + 8)
    assert trio.current_time() - started >= IDLE_TIMEOUT * 0.75
    # Its idle timer started once its head was read, after the idle one's.
    assert await closed_by_server(stalled, IDLE_TIMEOUT + 3)
    await idle.aclose()
    await stalled.aclose()


# -- oversized bodies ----------------------------------------------------------------------

async def test_content_length_over_the_limit_is_refused_before_the_body(daemon) -> None:
    host, port = address(daemon)
    stream = await trio.open_tcp_stream(host, port)
    await stream.send_all(b"POST /kapacitor/v1/tasks HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n")
    answer = b""
    with trio.fail_after(10):  # no byte of the announced gigabyte was sent
        while b"\r\n\r\n" not in answer:
            answer += await stream.receive_some(4096)
    assert answer.startswith(b"HTTP/1.1 413")
    assert await closed_by_server(stream, 10)
    await stream.aclose()


@pytest.mark.parametrize("path", ["/write?db=d", "/kapacitor/v1/tasks",
                                  "/kapacitor/v1/config/smtp",
                                  "/kapacitor/v1/alerts/topics/t/handlers"])
async def test_oversized_and_gzip_bomb_bodies_get_413(daemon, path: str) -> None:
    before = daemon.peak_rss_kb()
    bomb = gzip.compress(b"\0" * 50_000_000, 9)  # ~50 kB on the wire, 50 MB inflated
    assert len(bomb) < LIMIT

    async def chunks() -> object:
        for _ in range(30):
            yield b"x" * 10_000

    async with httpx.AsyncClient(base_url=daemon.url, timeout=10) as client:
        for kwargs in ({"content": b"x" * (LIMIT + 1)}, {"content": chunks()},
                       {"content": bomb, "headers": {"Content-Encoding": "gzip"}}):
            response = await client.post(path, **kwargs)
            assert response.status_code == 413, (path, response.text)
            assert response.json() == {"error": f"request body too large: limit is {LIMIT} "
                                                 "bytes"}
        assert (await client.get(PING)).status_code == 204
    assert daemon.peak_rss_kb() - before < 30_000  # the bomb was never inflated


async def test_oversized_uploads_do_not_starve_other_clients(daemon) -> None:
    host, port = address(daemon)
    refused: list[bytes] = []

    async def uploader() -> None:
        stream = await trio.open_tcp_stream(host, port)
        await stream.send_all(b"POST /write?db=d HTTP/1.1\r\nHost: x\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (50_000, b"y" * 50_000)
        try:
            for _ in range(40):  # 2 MB, in pieces, as fast as the server takes them
                await stream.send_all(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        with trio.move_on_after(10):
            try:
                refused.append(await stream.receive_some(4096))
            except trio.BrokenResourceError:
                refused.append(b"")
        await stream.aclose()

    latencies: list[float] = []
    done = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ping_latencies, daemon.url, done, latencies)
        await trio.sleep(0.1)
        async with trio.open_nursery() as uploads:
            for _ in range(8):
                uploads.start_soon(uploader)
        await trio.sleep(0.2)
        done.set()
    assert len(refused) == 8
    assert all(a.startswith(b"HTTP/1.1 413") or a == b"" for a in refused), refused
    assert sum(a.startswith(b"HTTP/1.1 413") for a in refused) >= 1
    assert len(latencies) >= 3 and max(latencies) < STALL, latencies


async def test_trickled_body_is_cut_off_while_others_are_served(daemon) -> None:
    """A byte every 0.2 s never stalls a read, but is far below the minimum body rate."""
    host, port = address(daemon)
    stream = await trio.open_tcp_stream(host, port)
    await stream.send_all(b"POST /write?db=d HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Length: 100000\r\n\r\n")
    started = trio.current_time()
    latencies: list[float] = []
    done = trio.Event()
    cut = False
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ping_latencies, daemon.url, done, latencies)
        try:  # cut ~2 s in; without a minimum rate, never
            while trio.current_time() - started < IDLE_TIMEOUT + 8:
                await stream.send_all(b"c")
                await trio.sleep(0.2)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            cut = True
        done.set()
    cut = cut or await closed_by_server(stream, 1)
    elapsed = trio.current_time() - started
    await stream.aclose()
    assert cut, "the trickled body was not cut off"
    # After the first idle timeout (plus 1 ms per byte sent); noticed within a send or two.
    assert IDLE_TIMEOUT * 0.9 <= elapsed <= IDLE_TIMEOUT + 3, elapsed
    assert len(latencies) >= 10 and max(latencies) < STALL, latencies


def huge_script(condition: str, header: str = "") -> str:
    """3,000 eval branches (300 kB): seconds of CPU to parse and check."""
    return header + "var s = stream|from().measurement('m')\n" + "".join(
        f"s|eval(lambda: \"v\" * {i} + sqrt(\"v\") - {i}.5 > {condition})"
        f".as('v{i}')|httpOut('o{i}')\n" for i in range(3000))


async def while_pinging(daemon: DaemonProcess,
                        requests: list[tuple[str, str, dict[str, Any]]]) -> list[Any]:
    """Send ``requests`` (method, path, JSON) in turn while pinging; their responses.

    Pings must keep being answered all along. Checking such a script on the event loop
    stalls pings for most of the request, in one or a few long waits (6 s unloaded, twice
    that with both cores busy): a handful of pings in 12-25 s. Done in a worker thread,
    pings still wait for the GIL now and then: 0.25-0.5 s unloaded, up to ~3 s on an
    overloaded 2-core machine, where the request then takes 10-18 s but ~6 pings a second
    are answered. Both measures scale with the load, so each request must see at least a
    ping a second on average, and no ping wait half as long as the request (or 2 s).
    """
    responses = []
    pings: list[tuple[str, float, list[float]]] = []
    async with httpx.AsyncClient(base_url=daemon.url, timeout=120) as client:
        for method, path, body in requests:
            latencies: list[float] = []
            done = trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ping_latencies, daemon.url, done, latencies)
                started = trio.current_time()
                responses.append(await client.request(method, path, json=body or None))
                pings.append((f"{method} {path}", trio.current_time() - started, latencies))
                done.set()
    assert sum(len(latencies) for _, _, latencies in pings) >= 10, pings
    for request, took, latencies in pings:
        assert len(latencies) >= int(took), (
            f"{request} took {took:.2f}s; only {len(latencies)} pings: {latencies}")
        assert max(latencies, default=0) < max(STALL, took / 2), (
            f"{request} took {took:.2f}s; a ping waited {max(latencies):.2f}s")
    return responses


async def test_a_huge_tickscript_does_not_stall_other_clients() -> None:
    with DaemonProcess({"http": {"log-enabled": False}}) as daemon:
        (created,) = await while_pinging(daemon, [("POST", "/kapacitor/v1/tasks", {
            "id": "huge", "type": "stream", "dbrps": [{"db": "db", "rp": "rp"}],
            "script": huge_script('3 AND "host" =~ /a/'), "status": "enabled"})])
        assert created.status_code == 200, created.text[:500]


async def test_a_huge_template_and_its_tasks_do_not_stall_other_clients() -> None:
    with DaemonProcess({"http": {"log-enabled": False}}) as daemon:
        made, task, listed = await while_pinging(daemon, [
            ("POST", "/kapacitor/v1/templates", {
                "id": "huge", "type": "stream",
                "script": huge_script("limit", "var limit float\n")}),
            ("POST", "/kapacitor/v1/tasks", {
                "id": "from-huge", "template-id": "huge", "status": "enabled",
                "dbrps": [{"db": "db", "rp": "rp"}],
                "vars": {"limit": {"type": "float", "value": 3}}}),
            ("GET", "/kapacitor/v1/templates", {})])
        assert made.status_code == 200, made.text[:500]
        assert task.status_code == 200, task.text[:500]
        assert listed.status_code == 200 and listed.json()["templates"][0]["id"] == "huge"

"""The post handler's pipelined HTTP/1.1 client (plugins/handlers/http11.py), the post
handler's batches, and the handler runner that feeds them: against a real HTTP server on
127.0.0.1 that records every request as it arrives and answers as each test tells it.
"""

from __future__ import annotations

import base64
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
from kapa_plugins.handlers import http11
from kapa_plugins.handlers.httppost import BasicAuth, HTTPPostConfig, PostHandler, PostOptions

from kapa_core.alert.event import Event, EventState
from kapa_core.alert.gojson import dumps
from kapa_core.alert.handler_context import HandlerContext
from kapa_core.alert.levels import Level
from kapa_core.alert.topics import BATCH, HandlerRunner
from kapa_core.errors import HandlerError
from kapa_core.httpclients import HTTPClients
from kapa_core.logs import Logger
from kapa_core.models.duration import Duration
from kapa_core.services import DaemonFacts
from kapa_core.tlsconfig import TLS

# -- a recording server -----------------------------------------------------------------

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


@dataclass
class Seen:
    connection: int
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    """Answers each request with ``answer(index, seen)``: bytes to send, or None to close
    the connection without answering (``index`` counts requests over all connections)."""

    answer: Callable[[int, Seen], bytes | None] = lambda index, seen: OK
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                number = self.connections
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                request_line, *lines = head.decode("latin-1").split("\r\n")
                method, target, _ = request_line.split(" ")
                headers = {}
                for line in lines:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                size = int(headers.get("content-length", "0"))
                while len(buffer) < size:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                seen = Seen(number, method, target, headers, buffer[:size])
                buffer = buffer[size:]
                with self.lock:
                    index = len(self.seen)
                    self.seen.append(seen)
                reply = self.answer(index, seen)
                if reply is None:
                    return
                conn.sendall(reply)
                if b"connection: close" in reply.lower():
                    return

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def wires(url: str, n: int) -> list[bytes]:
    out = []
    for i in range(n):
        prepared = http11.prepare(url, {"Content-Type": "application/json"},
                                  b'{"n":%d}\n' % i)
        assert prepared is not None
        out.append(prepared.wire)
    return out


def origin(s: Server) -> tuple[str, int]:
    return ("127.0.0.1", s.port)


# -- the client -------------------------------------------------------------------------

async def test_requests_are_pipelined_in_order_on_one_connection(server: Server) -> None:
    client = http11.Client11()
    n = 3 * http11.WINDOW + 5  # several windows
    outcomes = await client.pipeline(origin(server), wires(server.url + "/a?x=1", n), 5)
    assert [type(o) for o in outcomes] == [http11.Response] * n
    assert all(o.status == 200 for o in outcomes if isinstance(o, http11.Response))
    assert [json.loads(s.body)["n"] for s in server.seen] == list(range(n))
    assert {(s.method, s.target, s.connection) for s in server.seen} == {("POST", "/a?x=1", 1)}
    # the connection is kept for the next batch
    await client.pipeline(origin(server), wires(server.url + "/a?x=1", 2), 5)
    assert server.connections == 1 and len(server.seen) == n + 2
    client.close()


async def test_each_request_gets_its_own_answer(server: Server) -> None:
    server.answer = lambda i, seen: (
        b"HTTP/1.1 503 Busy\r\nContent-Type: text/plain; charset=latin-1\r\n"
        b"Content-Length: 4\r\n\r\nn\xe9in" if i == 2 else
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n" if i == 3 else
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n" if i == 4 else OK)
    client = http11.Client11()
    outcomes = await client.pipeline(origin(server), wires(server.url, 6), 5)
    responses = [o for o in outcomes if isinstance(o, http11.Response)]
    assert [r.status for r in responses] == [200, 200, 503, 201, 204, 200]
    assert responses[2].is_error and responses[2].text == "néin"
    assert responses[3].body == b"abcde" and not responses[3].is_error
    assert server.connections == 1  # every framing left the connection usable
    client.close()


async def test_an_answer_that_closes_sends_the_rest_again_on_a_new_connection(
        server: Server) -> None:
    server.answer = lambda i, seen: (
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        if i == 2 else OK)
    client = http11.Client11()
    outcomes = await client.pipeline(origin(server), wires(server.url, 10), 5)
    assert all(isinstance(o, http11.Response) and o.status == 200 for o in outcomes)
    # each event reached the server once, in order; the server read no further on the
    # connection it closed
    assert [json.loads(s.body)["n"] for s in server.seen] == list(range(10))
    assert [s.connection for s in server.seen] == [1, 1, 1] + [2] * 7
    client.close()


async def test_an_http10_answer_without_length_reads_to_the_close(server: Server) -> None:
    server.answer = lambda i, seen: (b"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\nall of it"
                                     if i == 0 else OK)
    client = http11.Client11()
    outcomes = await client.pipeline(origin(server), wires(server.url, 3), 5)
    first = outcomes[0]
    assert isinstance(first, http11.Response) and first.body == b"all of it"
    assert all(isinstance(o, http11.Response) for o in outcomes)
    assert [s.connection for s in server.seen] == [1, 2, 2]
    client.close()


async def test_a_broken_connection_fails_the_unanswered_and_sends_nothing_twice(
        server: Server) -> None:
    server.answer = lambda i, seen: None if i == 3 else OK
    client = http11.Client11()
    outcomes = await client.pipeline(origin(server), wires(server.url, 8), 5)
    assert all(isinstance(o, http11.Response) for o in outcomes[:3])
    assert all(isinstance(o, http11.HTTP11Error) for o in outcomes[3:])
    assert "closed the connection" in str(outcomes[3])
    assert len(server.seen) == 4  # the server stopped reading at the fourth
    # the next batch opens a new connection
    outcomes = await client.pipeline(origin(server), wires(server.url, 1), 5)
    assert isinstance(outcomes[0], http11.Response) and server.connections == 2
    client.close()


async def test_a_silent_server_times_out() -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never answers
    client = http11.Client11()
    start = time.monotonic()
    port = listener.getsockname()[1]
    outcomes = await client.pipeline(("127.0.0.1", port),
                                     wires(f"http://127.0.0.1:{port}", 2), 0.3)
    assert 0.25 < time.monotonic() - start < 3
    assert [str(o) for o in outcomes] == ["no answer within 0.3 s"] * 2
    listener.close()


async def test_a_refused_connection_fails_every_request() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once closed
    client = http11.Client11()
    outcomes = await client.pipeline(("127.0.0.1", port), wires(f"http://127.0.0.1:{port}", 3),
                                     5)
    assert all(isinstance(o, http11.HTTP11Error) for o in outcomes)


async def test_a_connection_the_server_closed_while_idle_is_replaced(server: Server) -> None:
    client = http11.Client11()
    await client.pipeline(origin(server), wires(server.url, 1), 5)
    idle = client._idle[origin(server)]
    # the server closes its end as an idle timeout would
    server.answer = lambda i, seen: OK
    for _ in range(50):
        if len(server.seen) == 1:
            break
        await trio.sleep(0.01)
    idle.stream.socket.shutdown(socket.SHUT_WR)  # our FIN makes the server thread close
    await trio.sleep(0.1)
    assert not idle.usable()
    outcomes = await client.pipeline(origin(server), wires(server.url, 2), 5)
    assert all(isinstance(o, http11.Response) for o in outcomes)
    assert server.connections == 2
    client.close()


async def test_idle_connections_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http11, "MAX_IDLE", 2)
    servers = [Server() for _ in range(3)]
    client = http11.Client11()
    for s in servers:
        await client.pipeline(origin(s), wires(s.url, 1), 5)
    assert sorted(client._idle) == sorted(origin(s) for s in servers[1:])
    await client.pipeline(origin(servers[0]), wires(servers[0].url, 1), 5)
    assert servers[0].connections == 2  # its first connection was closed, not reused
    client.close()
    for s in servers:
        s.close()


async def test_a_client_closed_during_a_batch_keeps_no_connection(server: Server) -> None:
    def slow(index: int, seen: Seen) -> bytes:
        time.sleep(0.2)
        return OK

    server.answer = slow
    client = http11.Client11()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.pipeline, origin(server), wires(server.url, 1), 5)
        await trio.sleep(0.05)
        client.close()  # the handler was replaced while its batch was under way
    assert client._idle == {}


def test_only_plain_requests_are_prepared() -> None:
    prepared = http11.prepare("http://Example.COM:8080/p/a%20b?q=1&r=;x", {"X-A": "v"},
                              b"body", ("user", "pä:ss"))
    assert prepared is not None and prepared.origin == ("example.com", 8080)
    token = base64.b64encode("user:pä:ss".encode()).decode()
    assert prepared.wire == (
        b"POST /p/a%20b?q=1&r=;x HTTP/1.1\r\nHost: example.com:8080\r\nX-A: v\r\n"
        b"Authorization: Basic " + token.encode() + b"\r\nAccept: */*\r\n"
        b"Connection: keep-alive\r\nUser-Agent: " + http11.USER_AGENT.encode() +
        b"\r\nContent-Length: 4\r\n\r\nbody")
    ipv6 = http11.prepare("http://[::1]/", {}, b"")
    assert ipv6 is not None and ipv6.origin == ("::1", 80)
    assert ipv6.wire.startswith(b"POST / HTTP/1.1\r\nHost: [::1]\r\n")
    for url in ("https://example.com/", "http://u:p@example.com/", "http://example.com/a b",
                "http://example.com/#frag", "http://exämple.com/", "http://example.com:99999/",
                "ftp://example.com/", "http:///nohost", "http://example.com/{x}"):
        assert http11.prepare(url, {}, b"") is None, url
    for headers in ({"Host": "h"}, {"content-length": "1"}, {"Connection": "close"},
                    {"X-Bad": "a\r\nInjected: 1"}, {"Bad Name": "v"}, {"X-U": "ü"},
                    {"X-S": " v"}, {"Accept-Encoding": "gzip"}):
        assert http11.prepare("http://example.com/", headers, b"") is None, headers
    # an Authorization header is sent as it is, unless basic auth is to replace it
    token = http11.prepare("http://example.com/", {"Authorization": "Token t"}, b"")
    assert token is not None and b"\r\nAuthorization: Token t\r\n" in token.wire
    assert http11.prepare("http://example.com/", {"Authorization": "Token t"}, b"",
                          ("u", "p")) is None


def test_a_proxy_in_the_environment_is_noticed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert not http11.proxied()
    monkeypatch.setenv("http_proxy", "http://proxy:3128")
    assert http11.proxied()


# -- the post handler -------------------------------------------------------------------

class Host:
    """The alert service as a handler context sees it."""

    def __init__(self, denied: str = "") -> None:
        self.denied = denied
        self.clients = HTTPClients("test")

    def check_outgoing(self, url: str) -> None:
        if self.denied and self.denied in url:
            raise HandlerError(f"refused: {url}")

    def publish(self, event: Event) -> None:
        raise AssertionError

    def topic_level(self, topic: str, event_id: str) -> Level:
        return Level.OK

    def start_soon(self, fn: Any) -> None:
        raise AssertionError

    def http_client(self, tls: TLS, timeout: float) -> Any:
        return self.clients.get(tls, timeout)


def handler(options: PostOptions, endpoints: tuple[HTTPPostConfig, ...] = (),
            host: Host | None = None) -> PostHandler:
    context: HandlerContext[Any, Any] = HandlerContext(
        "post", endpoints, None, Logger("test"), DaemonFacts(), host or Host())
    return PostHandler(options, context)


def event(i: int, message: str = "") -> Event:
    t = 1_600_000_000_000_000_000 + i
    series = [{"name": "cpu", "tags": {"host": "a"}, "columns": ["time", "v"],
               "values": [["2020-09-13T12:26:40.000000001Z", i]]}]
    return Event("t", EventState(f"cpu:{i}", message or f"m{i}", "", t, 0, Level.CRITICAL),
                 Level.OK, "cpu", "task", "", "nil", {"host": "a"}, {"v": i}, series)


async def test_a_batch_is_one_post_per_event_with_the_alert_json(server: Server) -> None:
    post = handler(PostOptions(url=server.url + "/alert", headers={"X-Direct": "1"}))
    events = [event(i) for i in range(40)]
    assert await post.handle_batch(events) == [None] * 40
    assert [s.body for s in server.seen] == [(e.json() + "\n").encode() for e in events]
    first = server.seen[0]
    assert first.target == "/alert" and first.headers["x-direct"] == "1"
    assert first.headers["content-type"] == "application/json"
    assert server.connections == 1
    post.close()


async def test_an_endpoint_gives_url_template_headers_auth_and_body_template(
        server: Server) -> None:
    endpoint = HTTPPostConfig(endpoint="ep", url=server.url + "/ep/{{ .ID }}",
                              headers={"X-Team": "db"},
                              basic_auth=BasicAuth(username="kap", password="pw"),
                              alert_template="{{ .ID }} {{ .Level }}")
    post = handler(PostOptions(endpoint="ep"), (endpoint,))
    assert await post.handle_batch([event(1), event(2)]) == [None, None]
    assert [(s.target, s.body) for s in server.seen] == [
        ("/ep/cpu:1", b"cpu:1 CRITICAL"), ("/ep/cpu:2", b"cpu:2 CRITICAL")]
    assert server.seen[0].headers["authorization"] == \
        "Basic " + base64.b64encode(b"kap:pw").decode()
    assert server.seen[0].headers["x-team"] == "db"
    post.close()


async def test_failures_are_reported_per_event_and_in_order(server: Server) -> None:
    server.answer = lambda i, seen: (b"HTTP/1.1 500 Oops\r\nContent-Length: 7\r\n\r\nbad day"
                                     if b'"m1"' in seen.body else OK)
    host = Host(denied="/deny")
    post = handler(PostOptions(url=server.url + "/{{ .Message }}", capture_response=True),
                   host=host)
    outcomes = await post.handle_batch([event(0), event(1), event(2, message="deny"),
                                        event(3)])
    assert outcomes[0] is None and outcomes[3] is None
    assert str(outcomes[1]) == f"post: {server.url}/m1 answered 500: bad day"
    assert str(outcomes[2]) == f"refused: {server.url}/deny"
    assert [s.target for s in server.seen] == ["/m0", "/m1", "/m3"]
    with pytest.raises(HandlerError, match="answered 500"):
        await post.handle(event(1))
    post.close()
    await host.clients.aclose()


async def test_what_httpx_must_send_still_goes_in_order(server: Server) -> None:
    """A header the lean client leaves to httpx: those events go one by one between the
    pipelined ones, and the server sees them all in order."""
    host = Host()
    plain = handler(PostOptions(url=server.url + "/p"), host=host)
    odd = handler(PostOptions(url=server.url + "/o", headers={"Accept": "text/plain"}),
                  host=host)
    assert await odd.handle_batch([event(0), event(1)]) == [None, None]
    assert await plain.handle_batch([event(2), event(3)]) == [None, None]
    assert [(s.target, s.headers["accept"]) for s in server.seen] == [
        ("/o", "text/plain"), ("/o", "text/plain"), ("/p", "*/*"), ("/p", "*/*")]
    assert "python-httpx" in server.seen[0].headers["user-agent"]
    assert server.seen[2].headers["user-agent"] == server.seen[0].headers["user-agent"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    refused = handler(PostOptions(url=f"http://127.0.0.1:{port}/x"), host=host)
    (outcome,) = await refused.handle_batch([event(4)])
    assert str(outcome).startswith(f"post: http://127.0.0.1:{port}/x: ")
    for h in (plain, odd, refused):
        h.close()
    await host.clients.aclose()


# -- the handler runner -----------------------------------------------------------------

class Recording:
    def __init__(self, fail: Callable[[Event], bool] = lambda e: False) -> None:
        self.batches: list[list[str]] = []
        self.fail = fail

    async def handle(self, event: Event) -> None:
        self.batches.append([event.id])
        if self.fail(event):
            raise HandlerError(f"no {event.id}")


class Batching(Recording):
    async def handle_batch(self, events: list[Event]) -> list[Exception | None]:
        self.batches.append([e.id for e in events])
        await trio.lowlevel.checkpoint()
        return [HandlerError(f"no {e.id}") if self.fail(e) else None for e in events]


class Proxy:
    """As the alert service's HandlerProxy: ``current()`` is the handler to use."""

    def __init__(self, impl: Recording) -> None:
        self.impl = impl

    def current(self) -> Recording:
        return self.impl

    async def handle(self, event: Event) -> None:
        await self.impl.handle(event)


async def run_events(runner: HandlerRunner, n: int) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(runner.run)
        for i in range(n):
            runner.offer(event(i))
        await trio.sleep(0.05)
        runner.send.close()


@pytest.mark.parametrize("wrap", [False, True])
async def test_queued_events_reach_a_batching_handler_together_in_order(
        wrap: bool, caplog: pytest.LogCaptureFixture) -> None:
    impl = Batching(fail=lambda e: e.id == "cpu:5")
    runner = HandlerRunner("t", "h", "post", Proxy(impl) if wrap else impl,
                           lambda e: e.id != "cpu:7", 5000, Logger("test"))
    await run_events(runner, BATCH + 10)
    delivered = [i for batch in impl.batches for i in batch]
    assert delivered == [f"cpu:{i}" for i in range(BATCH + 10) if i != 7]
    assert len(impl.batches) == 2 and len(impl.batches[0]) == BATCH - 1
    assert runner.stats.handled == BATCH + 8 and runner.stats.errors == 1
    (record,) = [r for r in caplog.records if r.getMessage() == "alert handler failed"]
    fields = getattr(record, "kv")  # noqa: B009  # set by kapa_core.logs as an extra
    assert fields["alert"] == "cpu:5" and fields["err"] == "no cpu:5"


async def test_a_handler_without_batches_takes_events_one_at_a_time() -> None:
    impl = Recording(fail=lambda e: e.id == "cpu:2")
    runner = HandlerRunner("t", "h", "log", impl, None, 5000, Logger("test"))
    await run_events(runner, 5)
    assert impl.batches == [[f"cpu:{i}"] for i in range(5)]
    assert (runner.stats.handled, runner.stats.errors) == (4, 1)


async def test_a_batch_that_raises_counts_every_event_as_failed() -> None:
    class Broken(Recording):
        async def handle_batch(self, events: list[Event]) -> list[Exception | None]:
            raise RuntimeError("down")

    runner = HandlerRunner("t", "h", "post", Broken(), None, 5000, Logger("test"))
    await run_events(runner, 4)
    assert (runner.stats.handled, runner.stats.errors) == (0, 4)


# -- the alert JSON -----------------------------------------------------------------------

def test_the_alert_json_is_the_generic_encoders_byte_for_byte() -> None:
    rng = random.Random(7)
    texts = ["", "plain", 'q"uote\\', "<b>&amp;", "line\nbreak\ttab\x01", "é ü \u2028",
             "\ud800lone"]
    scalars: list[Any] = [0, -3, 2**70, 1.5, 1e-7, 1e21, -0.0, True, False, None,
                          *texts, Duration(5)]
    for _ in range(300):
        values = [[rng.choice(texts), *rng.sample(scalars, 3)]
                  for _ in range(rng.randrange(3))]
        row: dict[str, Any] = {"name": rng.choice(texts)}
        if rng.random() < 0.5:
            row["tags"] = {rng.choice(texts): rng.choice(texts) for _ in range(2)}
        row["columns"] = ["time", "a", "b", "c"]
        row["values"] = values if rng.random() < 0.8 else [tuple(v) for v in values]
        series = [row] * rng.randrange(3)
        e = Event("t", EventState(rng.choice(texts), rng.choice(texts), rng.choice(texts),
                                  rng.randrange(-10**18, 10**19), rng.randrange(10**12),
                                  rng.choice(list(Level))),
                  rng.choice(list(Level)), series=series,
                  recoverable=rng.random() < 0.5)
        assert e.json() == dumps(e.alert_data())
    with pytest.raises(ValueError, match="unsupported value"):
        Event("t", EventState("i", "", "", 0, 0, Level.OK),
              series=[{"values": [[float("nan")]]}]).json()

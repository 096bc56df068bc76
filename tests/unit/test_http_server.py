"""The HTTP server on real loopback sockets: framing, limits, timeouts, shutdown, TLS."""

from __future__ import annotations

import gzip
import ssl
import subprocess
import zlib
from pathlib import Path

import httpx
import pytest
import trio

from kapa_core.errors import APIError
from kapa_core.http.messages import Request, Response
from kapa_core.http.router import Router
from kapa_core.http.server import BodyTooLarge, HTTPServer, gunzip
from kapa_core.logs import Logger


def make_router(slow_started: trio.Event | None = None) -> Router:
    """The test routes; ``slow_started`` is set when a request reaches ``/slow``."""
    router = Router()

    async def echo(request: Request) -> Response:
        return Response.json({"path": request.path, "params": request.params,
                              "body": request.body.decode(), "q": request.arg("q")})

    async def boom(request: Request) -> Response:
        raise RuntimeError("kaboom")

    async def teapot(request: Request) -> Response:
        raise APIError(418, "short and stout")

    async def slow(request: Request) -> Response:
        if slow_started is not None:
            slow_started.set()
        await trio.sleep(0.5)
        return Response.json({"slow": True})

    async def big(request: Request) -> Response:
        return Response.text(200, "x" * 5000)

    router.add(["GET", "POST"], "/echo", echo)
    router.add("GET", "/kapacitor/v1/tasks/{id}", echo)
    router.add(["GET", "POST"], "/kapacitor/v1/config/{rest:path}", echo)
    router.add("GET", "/boom", boom)
    router.add("GET", "/teapot", teapot)
    router.add("GET", "/slow", slow)
    router.add("GET", "/big", big)
    return router


async def start(nursery: trio.Nursery, router: Router | None = None,
                **kwargs) -> tuple[HTTPServer, str]:
    options = {"max_body_size": 10_000, "header_timeout": 1.0, "idle_timeout": 2.0,
               "access_log": False, **kwargs}
    server = HTTPServer(router or make_router(), host="127.0.0.1", port=0, version="1.5.7",
                        logger=Logger("http"), **options)
    host, port = await nursery.start(server.serve)
    scheme = "https" if kwargs.get("ssl_context") else "http"
    return server, f"{scheme}://{host}:{port}"


async def test_routing_params_and_catch_all(nursery) -> None:
    server, url = await start(nursery)
    async with httpx.AsyncClient(base_url=url) as client:
        body = (await client.get("/kapacitor/v1/tasks/cpu?q=1")).json()
        assert body["params"] == {"id": "cpu"} and body["q"] == "1"
        body = (await client.get("/kapacitor/v1/config/smtp/")).json()
        assert body["params"] == {"rest": "smtp/"}
        body = (await client.get("/kapacitor/v1preview/tasks/x")).json()
        assert body["params"] == {"id": "x"}
    await server.shutdown()


async def test_every_response_carries_the_kapacitor_headers(nursery) -> None:
    server, url = await start(nursery)
    async with httpx.AsyncClient(base_url=url) as client:
        for path, status in (("/echo", 200), ("/missing", 404), ("/boom", 500),
                             ("/teapot", 418)):
            response = await client.get(path)
            assert response.status_code == status
            assert response.headers["X-Kapacitor-Version"] == "1.5.7"
            assert len(response.headers["Request-Id"]) == 36
        too_big = await client.post("/echo", content=b"x" * 20_000)
        assert too_big.status_code == 413
        assert too_big.headers["Request-Id"]
    await server.shutdown()


async def test_errors_are_json(nursery) -> None:
    server, url = await start(nursery)
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/missing")).json() == {"error": "Not Found"}
        assert (await client.get("/teapot")).json() == {"error": "short and stout"}
        assert "kaboom" in (await client.get("/boom")).json()["error"]
        assert (await client.get("/echo")).status_code == 200  # still serving
    await server.shutdown()


async def raw_exchange(url: str, data: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    await stream.send_all(data)
    out = b""
    with trio.move_on_after(10):  # only a server that does not answer takes this long
        while chunk := await stream.receive_some(65536):
            out += chunk
            if out.count(b"HTTP/1.1") >= data.count(b"HTTP/1.1") and out.endswith(b"\n"):
                break
    await stream.aclose()
    return out


async def test_keep_alive_serves_several_requests_on_one_connection(nursery) -> None:
    server, url = await start(nursery)
    request = b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"
    out = await raw_exchange(url, request * 3)
    assert out.count(b"HTTP/1.1 200 OK") == 3
    await server.shutdown()


async def test_many_concurrent_clients(nursery) -> None:
    server, url = await start(nursery)
    results = []

    async def one(i: int) -> None:
        async with httpx.AsyncClient() as client:
            response = await client.post(url + "/echo", content=str(i).encode())
            results.append(response.json()["body"])

    async with trio.open_nursery() as clients:
        for i in range(50):
            clients.start_soon(one, i)
    assert sorted(map(int, results)) == list(range(50))
    await server.shutdown()


async def test_gzip_bodies_are_decoded_and_bombs_refused(nursery) -> None:
    server, url = await start(nursery)
    async with httpx.AsyncClient(base_url=url) as client:
        ok = await client.post("/echo", content=gzip.compress(b"hello"),
                               headers={"Content-Encoding": "gzip"})
        assert ok.json()["body"] == "hello"
        small_bomb = gzip.compress(b"\0" * 1_000_000)
        assert len(small_bomb) < 10_000
        refused = await client.post("/echo", content=small_bomb,
                                    headers={"Content-Encoding": "gzip"})
        assert refused.status_code == 413
        broken = await client.post("/echo", content=b"not gzip at all",
                                   headers={"Content-Encoding": "gzip"})
        assert broken.status_code == 400
    await server.shutdown()


def test_gunzip_never_inflates_past_the_limit() -> None:
    with pytest.raises(BodyTooLarge):
        gunzip(gzip.compress(b"a" * 100_000), 1000)
    assert gunzip(gzip.compress(b"abc"), 1000) == b"abc"
    with pytest.raises(zlib.error):
        gunzip(gzip.compress(b"abc")[:-4], 1000)


async def test_body_limits(nursery) -> None:
    server, url = await start(nursery)
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.post("/echo", content=b"x" * 10_001)
        assert response.status_code == 413
        assert "limit is 10000 bytes" in response.json()["error"]

        async def chunks():
            for _ in range(20):
                yield b"y" * 1000

        chunked = await client.post("/echo", content=chunks())
        assert chunked.status_code == 413
        assert (await client.post("/echo", content=b"x" * 10_000)).status_code == 200
    await server.shutdown()


async def test_malformed_request_gets_400(nursery) -> None:
    server, url = await start(nursery)
    out = await raw_exchange(url, b"THIS IS NOT HTTP\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400")
    assert b'"error"' in out
    await server.shutdown()


async def test_slow_loris_is_cut_off_while_others_are_served(nursery) -> None:
    server, url = await start(nursery, header_timeout=1.5)
    host, port = url.removeprefix("http://").split(":")
    slow = await trio.open_tcp_stream(host, int(port))
    await slow.send_all(b"GET /echo HTTP/1.1\r\n")
    async with httpx.AsyncClient(base_url=url) as client:
        started = trio.current_time()
        assert (await client.get("/echo")).status_code == 200
        # Answered in milliseconds; a client kept waiting behind the loris would wait for
        # its header timeout (1.5 s); the room between is for a busy machine.
        assert trio.current_time() - started < 1.0
    closed = False
    with trio.move_on_after(10):
        for _ in range(20):
            try:
                await slow.send_all(b"X-Slow: 1\r\n")
                if await slow.receive_some(100) == b"":
                    closed = True
                    break
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                closed = True
                break
    assert closed
    await server.shutdown()


async def test_graceful_shutdown_finishes_in_flight_requests(nursery) -> None:
    slow_started = trio.Event()
    server, url = await start(nursery, make_router(slow_started))
    results = {}

    async def slow_client() -> None:
        async with httpx.AsyncClient() as client:
            results["slow"] = (await client.get(url + "/slow")).json()

    async with trio.open_nursery() as inner:
        inner.start_soon(slow_client)
        with trio.fail_after(10):
            await slow_started.wait()  # the request is in flight
        await server.shutdown()
    assert results["slow"] == {"slow": True}
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(url + "/echo")


async def test_head_options_cors_and_gzip_responses(nursery) -> None:
    server, url = await start(nursery)
    async with httpx.AsyncClient(base_url=url) as client:
        head = await client.head("/echo")
        assert head.status_code == 404 or head.content == b""
        preflight = await client.options("/echo", headers={"Origin": "http://ui"})
        assert preflight.status_code == 200
        assert preflight.headers["Access-Control-Allow-Origin"] == "http://ui"
        assert "PATCH" in preflight.headers["Access-Control-Allow-Methods"]
        gz = await client.get("/big", headers={"Accept-Encoding": "gzip"})
        assert gz.headers["Content-Encoding"] == "gzip"
        assert gz.text == "x" * 5000
    await server.shutdown()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


async def test_tls_and_plain_http_mistake_is_logged(nursery, certificate, caplog) -> None:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server, url = await start(nursery, ssl_context=context)
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(cert))) as c:
        assert (await c.get(url + "/echo")).status_code == 200
    import logging
    logging.getLogger("kapa_core").propagate = True
    caplog.set_level(logging.INFO, logger="kapa_core")
    async with httpx.AsyncClient() as client:  # Go's answer to plain HTTP on a TLS port
        plain = await client.get(url.replace("https://", "http://") + "/echo")
    assert plain.status_code == 400
    assert plain.text == "Client sent an HTTP request to an HTTPS server.\n"

    def logged() -> bool:
        return any(r.getMessage() == "http: TLS handshake error" and "client sent an HTTP "
                   "request to an HTTPS server" in str(r.__dict__.get("kv"))
                   for r in caplog.records)
    with trio.move_on_after(10):  # the server logs it on its own task
        while not logged():  # noqa: ASYNC110 - polling the captured records is the point
            await trio.sleep(0.02)
    assert logged(), [(r.getMessage(), r.__dict__.get("kv")) for r in caplog.records]
    await server.shutdown()


def test_open_files_soft_limit_is_raised_to_the_hard_limit() -> None:
    """As a Go daemon does at start (checked in a child, whose limits we may lower)."""
    import subprocess
    import sys
    code = (
        "import resource\n"
        "from kapa_core.daemon import raise_open_files_limit\n"
        "from kapa_core.logs import Logger\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))\n"
        "got = raise_open_files_limit(Logger('test'))\n"
        "print(got == hard, resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["True", "True"], out.stderr

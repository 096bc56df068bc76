"""One request can never stop the HTTP server: every failure, even while encoding the
answer, ends in a response and the listener keeps accepting."""

from __future__ import annotations

import httpx

from kapa_core.http.messages import JSONBodyError, Request, Response, decode_json
from kapa_core.http.router import Router
from kapa_core.http.server import HTTPServer
from kapa_core.logs import Logger


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("cannot describe myself")


def hostile_router() -> Router:
    router = Router()

    async def surrogate_error(request: Request) -> Response:
        raise ValueError("bad name \ud800")

    async def surrogate_json(request: Request) -> Response:
        return Response.json({"name": "\udcff"})

    async def surrogate_text(request: Request) -> Response:
        return Response.text(400, "line \ud800\n")

    async def bad_header(request: Request) -> Response:
        return Response(200, [("location", "/x\r\ninjected: 1")], b"{}")

    async def str_body(request: Request) -> Response:
        return Response(200, [], "not bytes")  # type: ignore[arg-type]

    async def unprintable(request: Request) -> Response:
        raise Unprintable()

    async def ping(request: Request) -> Response:
        return Response.empty(204)

    for path, handler in (("/surrogate-error", surrogate_error),
                          ("/surrogate-json", surrogate_json),
                          ("/surrogate-text", surrogate_text), ("/bad-header", bad_header),
                          ("/str-body", str_body), ("/unprintable", unprintable),
                          ("/ping", ping)):
        router.add("GET", path, handler)
    return router


async def test_failures_while_answering_end_in_a_response_and_the_server_lives(
        nursery) -> None:
    server = HTTPServer(hostile_router(), host="127.0.0.1", port=0, version="1.5.7",
                        logger=Logger("http"), access_log=True)
    host, port = await nursery.start(server.serve)
    expected = {"/surrogate-error": 500, "/surrogate-json": 200, "/surrogate-text": 400,
                "/bad-header": 500, "/str-body": 500, "/unprintable": 500}
    for path, status in expected.items():
        # a fresh connection each time: a dead listener would refuse it
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            response = await client.get(path)
            assert response.status_code == status, (path, response.text)
            assert response.headers["x-kapacitor-version"] == "1.5.7"
            if status == 500:
                assert "error" in response.json()
            assert (await client.get("/ping")).status_code == 204, path
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
        assert (await client.get("/surrogate-json")).json() == {"name": "\ufffd"}
        assert (await client.get("/surrogate-text")).text == "line \ufffd\n"
        assert "injected" not in (await client.get("/bad-header")).headers
    await server.shutdown()


async def test_the_listener_accepts_after_a_connection_fails_unexpectedly(nursery) -> None:
    server = HTTPServer(hostile_router(), host="127.0.0.1", port=0, version="1.5.7",
                        logger=Logger("http"), access_log=False)

    async def explode(*args: object) -> None:
        raise RuntimeError("a bug in the connection code")

    host, port = await nursery.start(server.serve)
    real = server._session
    server._session = explode  # type: ignore[method-assign]
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
        try:
            await client.get("/ping")
        except httpx.TransportError:
            pass
    server._session = real  # type: ignore[method-assign]
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
        assert (await client.get("/ping")).status_code == 204
    await server.shutdown()


def test_decode_json_replaces_lone_surrogates_as_go_does() -> None:
    body = b'{"\\ud800k": ["a\\udfff", {"x": "\\ud83d\\ude00", "y": "\\uD800"}]}'
    assert decode_json(body) == {"\ufffdk": ["a\ufffd", {"x": "\U0001F600", "y": "\ufffd"}]}
    assert decode_json(b'"plain \\\\ud800"') == "plain \\ud800"
    # invalid UTF-8, an encoded surrogate included, becomes U+FFFD as in Go
    assert decode_json(b'{"p": "\xed\xa0\x80", "q": "\xff"}') == {"p": "\ufffd" * 3,
                                                                   "q": "\ufffd"}
    assert decode_json(b"[" * 100 + b"]" * 100)  # the deepest nesting accepted


def test_decode_json_refuses_deep_nesting_and_bad_bytes_with_a_message() -> None:
    for body, reason in ((b"[" * 100_000, "nesting too deep"),
                         (b"[" * 101 + b"]" * 101, "more than 100 levels"),
                         (b'{"a":' * 200 + b"1" + b"}" * 200, "more than 100 levels"),
                         (b'{"a": 1', "Expecting")):
        try:
            decode_json(body)
        except JSONBodyError as exc:
            assert reason in str(exc), (body[:10], exc)
        else:
            raise AssertionError(f"{body[:10]!r} was accepted")




def test_json_responses_are_always_valid_json() -> None:
    import json
    body = Response.json({"values": [[1, float("inf")], [2, float("nan")],
                                     [3, -float("inf")], [4, 1.5]]}).body
    assert json.loads(body, parse_constant=lambda c: pytest_fail(c)) == {
        "values": [[1, None], [2, None], [3, None], [4, 1.5]]}


def pytest_fail(constant: str) -> None:
    raise AssertionError(f"{constant} is not JSON")


async def test_a_non_ascii_origin_is_echoed_as_sent(nursery) -> None:
    server = HTTPServer(hostile_router(), host="127.0.0.1", port=0, version="1.5.7",
                        logger=Logger("http"), access_log=False)
    host, port = await nursery.start(server.serve)
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
        response = await client.get("/ping", headers={"Origin": b"http://\xc3\xa9.x"})
        assert response.status_code == 204
        raw = {k.lower(): v for k, v in response.headers.raw}[b"access-control-allow-origin"]
        assert raw == b"http://\xc3\xa9.x"
    await server.shutdown()

"""The TCP accept loop the ``[opentsdb]`` and ``[[graphite]]`` listeners share: one task
per client, a bound on clients at a time, and a client whose handler fails unexpectedly
ends alone."""

from __future__ import annotations

import trio
from kapa_plugins.inputs.netinput import open_tcp, serve_tcp


async def test_clients_beyond_the_limit_are_closed_and_a_failing_one_ends_alone() -> None:
    listeners = await open_tcp("127.0.0.1:0", ":0")
    port = listeners[0].socket.getsockname()[1]
    refused: list[int] = []
    failures: list[str] = []
    release = trio.Event()

    async def handler(stream: trio.SocketStream) -> None:
        data = await stream.receive_some(100)
        if data == b"boom":
            raise ValueError("unexpected")
        await stream.send_all(b"ok:" + data)
        await release.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: serve_tcp(
            listeners, handler, refused=lambda: refused.append(1),
            accept_failed=lambda err: None, failed=lambda exc: failures.append(str(exc)),
            limit=2))
        bad = await trio.open_tcp_stream("127.0.0.1", port)
        await bad.send_all(b"boom")
        assert await bad.receive_some(10) == b""  # closed after the handler failed
        with trio.fail_after(5):
            while not failures:
                await trio.sleep(0.01)
        assert failures == ["unexpected"]
        clients = []
        for name in (b"a", b"b"):
            client = await trio.open_tcp_stream("127.0.0.1", port)
            await client.send_all(name)
            assert await client.receive_some(10) == b"ok:" + name
            clients.append(client)
        third = await trio.open_tcp_stream("127.0.0.1", port)
        with trio.fail_after(5):
            assert await third.receive_some(10) == b""  # refused: closed at once
        assert refused == [1]
        release.set()
        for client in [*clients, third, bad]:
            await client.aclose()
        nursery.cancel_scope.cancel()
    assert all(listener.socket.fileno() == -1 for listener in listeners)

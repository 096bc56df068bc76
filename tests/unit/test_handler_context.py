"""HandlerContext, the handler proxy and the handlers' shared HTTP clients, in process:
the real AlertService (SQLite store in a temporary directory) and a real loopback HTTP
server; the sections' config and running services are what the test says they are."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from kapa_core.alert.event import Event, EventState
from kapa_core.alert.handler_context import HandlerContext
from kapa_core.alert.kinds import HandlerKinds
from kapa_core.alert.levels import Level
from kapa_core.alert.outbound import HTTPClients, send
from kapa_core.errors import HandlerError
from kapa_core.httpclients import ClientsClosed
from kapa_core.plugin_api import HandlerKind
from kapa_core.storage import Store
from kapa_core.testing import RecordingHTTPServer
from kapa_core.tlsconfig import TLS


@dataclass(frozen=True)
class Cfg:
    enabled: bool = True
    url: str = ""


@dataclass(frozen=True)
class NoOptions:
    pass


@dataclass(frozen=True)
class AlertConfig:
    persist_topics: bool = False
    topic_buffer_length: int = 100


class Made:
    """A handler that records the context it was made with and whether it was closed."""

    def __init__(self, options: NoOptions, context: HandlerContext[Any, Any]) -> None:
        self.context = context
        self.closed = False
        self.events: list[Event] = []
        MADE.append(self)

    async def handle(self, event: Event) -> None:
        self.events.append(event)

    def close(self) -> None:
        self.closed = True


MADE: list[Made] = []


def refuse(options: NoOptions, context: HandlerContext[Any, Any]) -> Made:
    raise HandlerError("refused")


@pytest.fixture
def alerts(tmp_path: Path) -> Any:
    from kapa_core.alert.service import AlertService

    MADE.clear()
    sections: dict[str, Any] = {"sec": Cfg(url="http://a"), "other": Cfg()}
    services: dict[str, Any] = {}
    kinds = {"k": HandlerKind(name="k", options=NoOptions, factory=Made, section="sec"),
             "plain": HandlerKind(name="plain", options=NoOptions, factory=Made)}
    service = AlertService(Store(str(tmp_path / "k.db")), AlertConfig(),
                           section_service=services.get, section_config=sections.get,
                           kinds=HandlerKinds(kinds))
    service.sections, service.services = sections, services  # the test's knobs
    return service


def event(level: Level = Level.CRITICAL) -> Event:
    return Event(topic="t", state=EventState(id="e", message="m", details="", time=1,
                                             duration=0, level=level))


async def test_made_once_and_again_only_when_its_section_changes(alerts: Any) -> None:
    proxy = alerts.handler("k", NoOptions())
    await proxy.handle(event())
    await proxy.handle(event())
    assert len(MADE) == 1
    context = MADE[0].context
    assert (context.kind, context.config, context.service) == ("k", Cfg(url="http://a"), None)
    assert context.log is not None and context.daemon.api_url() == ""

    alerts.sections["other"] = Cfg(url="http://other")  # another section: nothing
    alerts.sections["sec"] = Cfg(url="http://a")  # rebuilt equal: nothing
    await proxy.handle(event())
    assert len(MADE) == 1

    alerts.sections["sec"] = Cfg(url="http://b")  # its config changed: made again
    await proxy.handle(event())
    assert len(MADE) == 2 and MADE[0].closed and not MADE[1].closed
    assert MADE[1].context.config.url == "http://b"

    running = object()
    alerts.services["sec"] = running  # its service (re-)opened: made again
    await proxy.handle(event())
    assert len(MADE) == 3 and MADE[2].context.service is running
    await proxy.handle(event())
    assert len(MADE) == 3 and len(MADE[2].events) == 2


async def test_kind_without_section_gets_no_config_and_no_service(alerts: Any) -> None:
    proxy = alerts.handler("plain", NoOptions())
    alerts.sections["sec"] = Cfg(url="http://changed")
    await proxy.handle(event())
    await proxy.handle(event())
    assert len(MADE) == 1
    assert MADE[0].context.config is None and MADE[0].context.service is None


async def test_a_factory_that_fails_is_tried_again_on_the_next_event(alerts: Any) -> None:
    kind = HandlerKind(name="r", options=NoOptions, factory=refuse, section="sec")
    from kapa_core.alert.service import HandlerProxy

    proxy = HandlerProxy(kind, NoOptions(), alerts)
    for _ in range(2):
        with pytest.raises(HandlerError, match="refused"):
            await proxy.handle(event())


async def test_publish_and_start_soon_go_through_the_alert_service(alerts: Any) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(alerts.serve)
        proxy = alerts.handler("k", NoOptions())
        await proxy.handle(event())
        context = MADE[0].context
        context.publish(event(Level.WARNING))
        assert alerts.topics.state("t", "e").level is Level.WARNING
        ran = trio.Event()

        async def job() -> None:
            ran.set()

        context.start_soon(job)
        with trio.fail_after(5):
            await ran.wait()
        nursery.cancel_scope.cancel()


async def test_clients_are_shared_per_tls_and_timeout_and_closed_with_the_service(
        alerts: Any) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(alerts.serve)
        proxy = alerts.handler("k", NoOptions())
        await proxy.handle(event())
        context = MADE[0].context
        first = context.http_client()
        assert context.http_client(TLS(), 30) is first  # the defaults spelled out
        assert context.http_client(timeout=5) is not first
        insecure = context.http_client(TLS(insecure_skip_verify=True))
        assert insecure not in (first, context.http_client(timeout=5))
        assert len(alerts.clients) == 3
        nursery.cancel_scope.cancel()
    assert first.is_closed and insecure.is_closed
    with pytest.raises(HandlerError, match="stopped"):
        context.http_client()


async def test_send_uses_the_shared_client_without_cookies(alerts: Any) -> None:
    server = RecordingHTTPServer(status=200, headers={"Set-Cookie": "s=1; Path=/"}).start()
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(alerts.serve)
            proxy = alerts.handler("k", NoOptions())
            await proxy.handle(event())
            context = MADE[0].context
            for _ in range(3):
                await send(context, "k", server.url + "/x", json_body={"a": 1})
            assert len(alerts.clients) == 1
            with pytest.raises(HandlerError, match=r"^k: ssl-ca: cannot load"):
                await send(context, "k", server.url, tls=TLS(ca="/nonexistent.pem"))
            nursery.cancel_scope.cancel()
    finally:
        server.close()
    assert [r.body for r in server.requests] == [b'{"a":1}'] * 3
    assert all("cookie" not in r.headers for r in server.requests)


async def test_clients_refused_after_close() -> None:
    clients = HTTPClients()
    client = clients.get(TLS(), 1.0)
    assert clients.get(TLS(), 1.0) is client
    await clients.aclose()
    assert client.is_closed and len(clients) == 0
    with pytest.raises(ClientsClosed, match="the daemon has stopped"):
        clients.get(TLS(), 1.0)
    assert isinstance(client, httpx.AsyncClient)

"""The daemon's long-lived outgoing HTTP clients, as services, input listeners and
discoverers reach them through their contexts."""

from __future__ import annotations

import httpx
import pytest

from kapa_core.discovery import DiscoveryContext
from kapa_core.httpclients import ClientsClosed, HTTPClients
from kapa_core.inputs import InputContext
from kapa_core.logs import Logger
from kapa_core.services import ServiceContext
from kapa_core.tlsconfig import TLS


def _contexts(clients: HTTPClients) -> list[ServiceContext | InputContext | DiscoveryContext]:
    log = Logger("test")
    return [ServiceContext("s", None, None, log, lambda db, rp, points: None,
                           clients=clients),
            InputContext("i", None, log, lambda db, rp, points: None, clients=clients),
            DiscoveryContext("d", None, log, clients=clients)]


async def test_every_context_shares_the_daemons_clients() -> None:
    clients = HTTPClients()
    first, *others = _contexts(clients)
    client = first.http_client()
    assert isinstance(client, httpx.AsyncClient)
    assert all(c.http_client() is client for c in others)
    assert first.http_client(TLS(), 30) is client  # the defaults spelled out
    assert first.http_client(timeout=5) is not client
    assert first.http_client(TLS(insecure_skip_verify=True)) is not client
    assert len(clients) == 3
    await clients.aclose()
    assert client.is_closed
    with pytest.raises(ClientsClosed, match="the daemon has stopped"):
        others[0].http_client()


async def test_a_context_made_alone_has_clients_of_its_own() -> None:
    alone, = _contexts(HTTPClients())[:1]
    other = ServiceContext("s", None, None, Logger("t"), lambda db, rp, points: None)
    assert other.http_client() is not alone.http_client()

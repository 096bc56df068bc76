"""``GET /kapacitor/v1/discovery``: the target groups every running discoverer publishes.

A kapa-core addition (Kapacitor has no such endpoint): it shows what the discovery
plugins found, the targets ``[[scraper]]`` elements scrape. One entry per running
discoverer element (an enabled element of a discovery section), sorted by service and id::

    {"discoverers": [{"service": "static-discovery", "id": "web",
                      "groups": [{"source": "0", "targets": ["10.0.0.1:9100"],
                                  "labels": {"team": "ops"}}],
                      "updated": "2026-12-05T05:00:00.123456789Z"}]}

``updated`` is when the discoverer last changed its groups (null before its first
update). ``GET /kapacitor/v1/discovery/<service>`` lists one service's elements (an
empty list when none runs) and ``GET /kapacitor/v1/discovery/<service>/<id>`` answers
one element, 404 when no such element runs.
"""

from __future__ import annotations

import datetime
from typing import Any

from kapa_core.discovery import Discovered, DiscoveryRegistry
from kapa_core.errors import APIError
from kapa_core.http.messages import Request, Response
from kapa_core.http.router import Router

PATH = "/kapacitor/v1/discovery"


def rfc3339_ns(ns: int) -> str:
    """Nanoseconds since the epoch as Go's RFC3339Nano text (trailing zeros trimmed)."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    text = datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{nanos:09d}".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


def entry_json(entry: Discovered) -> dict[str, Any]:
    return {"service": entry.service, "id": entry.id,
            "groups": [g.to_json() for g in entry.current()],
            "updated": rfc3339_ns(entry.updated_ns) if entry.updated_ns else None}


class DiscoveryAPI:
    def __init__(self, registry: DiscoveryRegistry) -> None:
        self.registry = registry

    def register(self, router: Router) -> None:
        router.add("GET", PATH, self.list)
        router.add("GET", PATH + "/{service}", self.list)
        router.add("GET", PATH + "/{service}/{id}", self.get)

    async def list(self, request: Request) -> Response:
        service = request.params.get("service")
        entries = [entry_json(e) for e in self.registry.entries()
                   if service is None or e.service == service]
        return Response.json({"discoverers": entries})

    async def get(self, request: Request) -> Response:
        service, id = request.params["service"], request.params["id"]
        entry = self.registry.get(service, id)
        if entry is None:
            raise APIError(404, f"no discoverer {service!r} with id {id!r} is running")
        return Response.json(entry_json(entry))


__all__ = ["PATH", "DiscoveryAPI", "entry_json"]

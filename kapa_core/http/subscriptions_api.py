"""``POST /kapacitor/v1/subscriptions``: link the InfluxDB subscriptions of every cluster now.

What Kapacitor answers: 204 once every enabled cluster is linked (also when no InfluxDB
cluster is enabled), 500 ``failed to link subscriptions: linking cluster <name>: ...``
when one cannot be. See :mod:`kapa_core.influxdb.subscriptions`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kapa_core.errors import APIError
from kapa_core.http.messages import Request, Response
from kapa_core.http.router import Router
from kapa_core.influxdb.subscriptions import SubscriptionError, link_all

PATH = "/kapacitor/v1/subscriptions"


class SubscriptionsAPI:
    def __init__(self, influxdb: Callable[[], Any]) -> None:
        """``influxdb()`` returns the running InfluxDB service, or None."""
        self.influxdb = influxdb

    def register(self, router: Router) -> None:
        router.add("POST", PATH, self.link)

    async def link(self, request: Request) -> Response:
        service = self.influxdb()
        if service is not None:
            try:
                await link_all(service)
            except SubscriptionError as exc:
                raise APIError(500, f"failed to link subscriptions: {exc}") from None
        return Response.empty(204)

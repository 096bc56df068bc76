"""``/kapacitor/v1/service-tests``: list the testable services and run a test."""

from __future__ import annotations

from typing import Any

from kapa_core.errors import APIError
from kapa_core.glob import GlobError
from kapa_core.http.listing import json_body
from kapa_core.http.messages import Request, Response
from kapa_core.http.router import Router
from kapa_core.service_tests import ServiceTest, ServiceTests

BASE = "/kapacitor/v1/service-tests"


def _json(test: ServiceTest) -> dict[str, Any]:
    return {"link": {"rel": "self", "href": f"{BASE}/{test.name}"}, "name": test.name,
            "options": test.defaults()}


class ServiceTestsAPI:
    """Kapacitor writes these three answers with a plain json.Encoder: compact."""

    def __init__(self, tests: ServiceTests) -> None:
        self.tests = tests

    def register(self, router: Router) -> None:
        router.add("GET", BASE, self.list)
        router.add("GET", BASE + "/{name}", self.get)
        router.add("POST", BASE + "/{name}", self.run)

    async def list(self, request: Request) -> Response:
        pattern = request.arg("pattern", "*") or "*"
        try:
            tests = self.tests.matching(pattern)
        except GlobError as exc:
            raise APIError(400, f"invalid pattern {pattern!r}: {exc}") from None
        return Response.json({"link": {"rel": "self", "href": BASE},
                              "services": [_json(t) for t in tests]}, pretty=False)

    async def get(self, request: Request) -> Response:
        return Response.json(_json(self.tests.get(request.params["name"])), pretty=False)

    async def run(self, request: Request) -> Response:
        name = request.params["name"]
        self.tests.get(name)
        return Response.json(await self.tests.run(name, json_body(request)), pretty=False)

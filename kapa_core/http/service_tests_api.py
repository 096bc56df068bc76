"""``/kapacitor/v1/service-tests``: list the testable services and run a test."""

from __future__ import annotations

import json
from typing import Any

from kapa_core.errors import APIError
from kapa_core.glob import GlobError
from kapa_core.http.messages import Request, Response
from kapa_core.http.router import Router
from kapa_core.models.jsonbody import JSONBodyError, decode_json
from kapa_core.service_tests import ServiceTest, ServiceTests

BASE = "/kapacitor/v1/service-tests"


#: finds where the body's first JSON value ends, and its kind (numbers are not converted:
#: an integer of thousands of digits is as cheap as any other)
_SCANNER = json.JSONDecoder(parse_int=lambda _: 0, parse_float=lambda _: 0.0)
#: Python's words for a syntax error -> Go's (others are given as Python says them)
_GO_SYNTAX = {"Expecting value": "looking for beginning of value",
              "Expecting property name enclosed in double quotes":
                  "looking for beginning of object key string",
              "Expecting ':' delimiter": "after object key"}
_GO_KINDS = {bool: "bool", str: "string", list: "array", int: "number", float: "number"}


def test_options_body(body: bytes, name: str) -> dict[str, Any]:
    """The options a test body overrides, decoded as Kapacitor's ``json.Decoder`` does:
    the first JSON value of the body counts (anything after it is ignored); ``null``
    overrides nothing (the ``kapacitor service-tests`` client sends it); an object
    overrides the options it names; an empty body or any other value is a 400."""
    text = body.decode("utf-8", "replace").lstrip(" \t\r\n")
    if not text:
        raise APIError(400, "failed to decode JSON body:EOF")
    try:
        scanned, end = _SCANNER.raw_decode(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip(" \t\r\n")):
            raise APIError(400, "failed to decode JSON body:unexpected EOF") from None
        where = _GO_SYNTAX.get(exc.msg, exc.msg)
        raise APIError(400, f"failed to decode JSON body:invalid character "
                            f"'{text[exc.pos]}' {where}") from None
    except RecursionError:
        raise APIError(400, "failed to decode JSON body:nesting too deep") from None
    if scanned is not None and not isinstance(scanned, dict):
        raise APIError(400, f"failed to decode JSON body:json: cannot unmarshal "
                            f"{_GO_KINDS.get(type(scanned), 'number')} into Go value of "
                            f"type {name}.testOptions")
    try:
        value = decode_json(text[:end])
    except JSONBodyError as exc:
        raise APIError(400, f"failed to decode JSON body:{exc}") from None
    return value if isinstance(value, dict) else {}


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
        overrides = test_options_body(request.body or b"", name)
        return Response.json(await self.tests.run(name, overrides), pretty=False)

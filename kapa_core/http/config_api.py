"""``/kapacitor/v1/config``: read the configuration and override it at run time."""

from __future__ import annotations

from typing import Any

from kapa_core.config.service import BASE, ConfigService
from kapa_core.errors import APIError
from kapa_core.http.listing import json_body
from kapa_core.http.messages import Request, Response
from kapa_core.http.router import Router


def _split(rest: str) -> tuple[str, str | None]:
    """``"smtp"`` -> ("smtp", None); ``"smtp/"`` -> ("smtp", ""); ``"a/b"`` -> ("a", "b")."""
    section, slash, element = rest.partition("/")
    return section, (element if slash else None)


class ConfigAPI:
    def __init__(self, service: ConfigService) -> None:
        self.service = service

    def register(self, router: Router) -> None:
        router.add("GET", BASE, self.get_all)
        router.add(["GET", "POST"], BASE + "/{rest:path}", self.section)

    def _check_enabled(self) -> None:
        if not self.service.enabled:
            raise APIError(403, "config override service is not enabled")

    async def get_all(self, request: Request) -> Response:
        self._check_enabled()
        sections: dict[str, Any] = {}
        for section in self.service.overridable():
            sections[section.name] = {
                "link": {"rel": "self", "href": f"{BASE}/{section.name}"},
                "elements": self.service.elements(section),
            }
        return Response.json({"link": {"rel": "self", "href": BASE}, "sections": sections})

    async def section(self, request: Request) -> Response:
        self._check_enabled()
        name, element = _split(request.params.get("rest", ""))
        if not name:
            raise APIError(400, "must provide a section name")
        if request.method == "POST":
            body = _json_body(request)
            section = self.service.layers.sections.get(name)
            if section is not None and section.overridable:
                _check_action(body, element)
            await self.service.update(name, element, body)
            return Response.empty(204)
        section = self.service.section(name)
        if element and not section.multiple:
            raise APIError(404, f"unknown section/element: {name}/{element}")
        if element is None:
            return Response.json({"link": {"rel": "self", "href": f"{BASE}/{name}"},
                                  "elements": self.service.elements(section)})
        return Response.json(self.service.find_element(section, element))


def _check_action(body: dict[str, Any], element: str | None) -> None:
    """Kapacitor's checks of an update action, in its order and words: set/delete with
    add/remove, an element named with add or remove, set/delete without one (even the
    only element of a section is named, ``/config/smtp/``)."""
    changes, elements = body.get("set") or body.get("delete"), body.get("add") or \
        body.get("remove")
    reason = ""
    if changes and elements:
        reason = "cannot provide both set/delete and add/remove actions in the same update"
    elif body.get("add") and element:
        reason = "must not provide an element name when adding an a new override"
    elif body.get("remove") and element:
        reason = "must not provide element when removing an override"
    elif not elements and element is None:
        reason = "element not specified, are you missing a trailing '/'?"
    if reason:
        raise APIError(400, f"failed to apply update: invalid update action: {reason}")


def _json_body(request: Request) -> dict[str, Any]:
    return json_body(request, prefix="failed to decode JSON",
                     what="an object with set, delete, add or remove")

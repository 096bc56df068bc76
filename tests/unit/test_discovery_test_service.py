"""The service test every discovery section offers (kapa_core.discovery.DiscoveryTestService),
with Kapacitor 1.5.7's answers: an unknown or disabled id, a first answer, none in time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import trio

from kapa_core.discovery import DiscoveryContext, TargetGroup, discovery_test_service
from kapa_core.errors import KapaError
from kapa_core.logs import Logger
from kapa_core.services import ServiceContext


@dataclass(frozen=True, kw_only=True)
class Element:
    enabled: bool = True
    id: str = ""
    #: "answer", "empty", "silent", "fail" or "exit"
    behaviour: str = "answer"


class Scripted:
    started: list[str] = []
    cancelled: list[str] = []

    def __init__(self, config: Element, context: DiscoveryContext) -> None:
        self.config = config
        self.context = context

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        Scripted.started.append(self.config.id)
        behaviour = self.config.behaviour
        try:
            await trio.sleep(0.01)
            if behaviour == "answer":
                self.context.update([TargetGroup(("a:1",), source="s")])
            elif behaviour == "empty":
                self.context.update((), replace=True)
            elif behaviour == "fail":
                raise OSError("connection refused")
            elif behaviour == "exit":
                return
            task_status.started()
            await trio.sleep_forever()
        except trio.Cancelled:
            Scripted.cancelled.append(self.config.id)
            raise


def service(*elements: Element) -> Any:
    context = ServiceContext("fixed", tuple(elements), None, Logger("t"),
                             lambda db, rp, points: None)
    return discovery_test_service(Scripted)(context)


async def run_test(svc: Any, id: str, timeout: float = 5.0) -> str:
    try:
        await svc.test({"id": id}, timeout=timeout)
    except KapaError as exc:
        return str(exc)
    return ""


async def test_options_are_kapacitors() -> None:
    assert service().test_options() == {"id": ""}


@pytest.mark.parametrize("elements,id", [
    ((), ""),
    ((Element(id="a"),), "b"),
    ((Element(id="a", enabled=False),), "a"),
])
async def test_unknown_or_disabled_element(elements: tuple[Element, ...], id: str) -> None:
    Scripted.started.clear()
    assert await run_test(service(*elements), id) == \
        f'discoverer "{id}" is not enabled or does not exist'
    assert Scripted.started == []


@pytest.mark.parametrize("behaviour", ["answer", "empty"])
async def test_first_update_is_success_and_the_discoverer_is_stopped(behaviour: str) -> None:
    Scripted.cancelled.clear()
    assert await run_test(service(Element(id="x", behaviour=behaviour)), "x") == ""
    assert Scripted.cancelled == ["x"]


async def test_the_last_enabled_element_of_an_id_is_tested() -> None:
    svc = service(Element(id="x", behaviour="fail"), Element(id="x", behaviour="answer"),
                  Element(id="x", enabled=False, behaviour="fail"))
    assert await run_test(svc, "x") == ""


async def test_no_answer_in_time() -> None:
    assert await run_test(service(Element(id="x", behaviour="silent")), "x", 0.2) == \
        'timeout waiting for discoverer "x" to return'


async def test_failure_and_exit_are_reported_at_once() -> None:
    with trio.fail_after(2):
        assert await run_test(service(Element(id="x", behaviour="fail")), "x", 30) == \
            'discoverer "x" failed: connection refused'
        assert await run_test(service(Element(id="x", behaviour="exit")), "x", 30) == \
            'discoverer "x" exited '

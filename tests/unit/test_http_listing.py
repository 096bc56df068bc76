"""Helpers of the task and template list endpoints."""

from __future__ import annotations

import gc

import pytest

from kapa_core.errors import APIError
from kapa_core.http.listing import gc_paused, render_program, render_script, select
from kapa_core.http.messages import Request
from kapa_core.tick.parser import parse


def test_gc_pauses_nest_and_restore_the_collector() -> None:
    assert gc.isenabled()
    with gc_paused(True):
        assert not gc.isenabled()
        with gc_paused(True):
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
        with gc_paused(False):
            assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused(True):
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_formatted_from_the_program_equals_formatted_from_the_text() -> None:
    script = "// c\nstream|from().measurement('m')|log()" + " " * 20_000
    assert render_program(script, parse(script)) == render_script(script, "formatted")


@pytest.mark.parametrize(("query", "expected"), [
    ({"offset": ["-3"], "limit": ["2"]}, ["a", "b"]),
    ({"offset": ["1"], "limit": ["-1"]}, ["b", "c"]),
    ({"offset": ["0" * 5000 + "1"]}, ["b", "c"]),  # leading zeros are still one
])
def test_select_pages_as_kapacitor(query, expected) -> None:
    chosen, _ = select(Request("GET", "/", query=query), ["c", "a", "b"], ("id",),
                       negative_limit_all=True)
    assert chosen == expected


def test_select_refuses_numbers_go_cannot_parse() -> None:
    for text in ("1_000", " 1", "١", "9" * 5000):
        with pytest.raises(APIError) as refused:
            select(Request("GET", "/", query={"limit": [text]}), ["a"], ("id",))
        assert refused.value.status == 400
        assert "must be an integer: strconv.ParseInt" in str(refused.value)

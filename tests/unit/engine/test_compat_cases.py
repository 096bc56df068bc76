"""Kapacitor 1.5.7's own answers, through the kit: every stream case of the compatibility
suite whose outputs are httpOut bodies runs through ``run_script`` (no daemon) and must
serve what Kapacitor served. This checks the kit against the daemon's behaviour and the
node families against Kapacitor at unit-test speed.

Left out: batch cases (they query a real InfluxDB), cases with handlers, templates, vars
or task fields, and barrier cases (their idle and period timers run on the wall clock,
which the kit does not run)."""

from __future__ import annotations

import json

import pytest

from kapa_core.testing import run_script
from tests.compat.casefile import Case, all_cases

SKIPPED_KEYS = ("vars", "pending", "kapa_core_differs", "inspect", "status", "template",
                "implicit_dbrp", "start")


def eligible(case: Case) -> bool:
    data = case.data
    script = data.get("script", "")
    return (data.get("type", "stream") == "stream"
            and not any(key in data for key in SKIPPED_KEYS)
            and "{{" not in script and "barrier()" not in script
            and bool(case.expected)
            and all(key.startswith("httpOut ") for key in case.expected))


CASES = [case for case in all_cases() if eligible(case)]


def test_there_are_cases_to_run() -> None:
    assert len(CASES) > 300, len(CASES)  # the suite's loader or layout changed


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_http_out_as_kapacitor_served_it(case: Case) -> None:
    data = case.data
    # as the compat suite does it: all the points in one /write, in the order written
    run = run_script(data["script"], data.get("points", ""), sort=False,
                     precision=data.get("precision", "s"),
                     dbrps=[(data.get("db", "mydb"), data.get("rp", "myrp"))])
    for key, body in case.expected.items():
        endpoint = key.split(" ", 1)[1]
        assert run.http_out(endpoint) == json.loads(body), key

"""The daemon with and without the compiled line-protocol parser: it says which one it
runs at start, and a write is taken the same way by both."""

from __future__ import annotations

import httpx
import pytest

from kapa_core.models import lineprotocol
from kapa_core.testing import DaemonProcess

pytestmark = pytest.mark.integration

TASK = ("dbrp \"db\".\"autogen\"\nstream|from().measurement('m')"
        "|window().period(10s).every(10s)|httpOut('w')\n")
BODY = "\n".join(f"m,host=h{i % 3} v={i / 4},n={i}i,ok=true,s=\"x{i}\" {i}"
                 for i in range(25)).encode()


def window_of(daemon: DaemonProcess) -> object:
    with httpx.Client(base_url=daemon.url, timeout=30) as client:
        assert client.post("/kapacitor/v1/tasks", json={
            "id": "t", "type": "stream", "script": TASK,
            "status": "enabled"}).status_code == 200
        assert client.post("/write?db=db&rp=autogen&precision=s",
                           content=BODY).status_code == 204
        return client.get("/kapacitor/v1/tasks/t/w").json()


@pytest.mark.skipif(not lineprotocol.COMPILED, reason="the extension is not built here: "
                    "this run is the pure-Python one (KAPA_CORE_PURE_PYTHON or no compiler)")
def test_both_parsers_give_the_daemon_the_same_points() -> None:
    with DaemonProcess() as compiled:
        compiled.wait_for_log(r"line protocol parser.*implementation=compiled")
        got = window_of(compiled)
    with DaemonProcess(env={"KAPA_CORE_PURE_PYTHON": "1"}) as pure:
        pure.wait_for_log(r"compiled extension not in use.*KAPA_CORE_PURE_PYTHON=1")
        assert window_of(pure) == got
    assert got["series"][0]["values"][0][1:] == ["h1", 10, True, "x10", 2.5]

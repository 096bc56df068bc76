"""Large ``/write`` bodies through the real daemon: bounded memory, whole-body refusal.

A point costs 50-60 times its line protocol (``m v=1`` becomes ~370 bytes of objects), so
the write endpoint parses a large body a piece at a time and never holds all of its
points at once (see :mod:`kapa_core.http.write_api`). These tests post bodies near the
default ``[http] max-body-size`` (25,000,000 bytes, as in Kapacitor) and read the
daemon's peak resident memory (``VmHWM``) from ``/proc``.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from kapa_core.testing import DaemonProcess

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
#: Peak memory a 20 MB body may add. Before bodies were parsed in pieces, this body took
#: the daemon from 47 MiB to 1.6 GiB; now it adds about 75 MiB.
MAX_GROWTH_MIB = 300
TASK = "dbrp \"big\".\"autogen\"\nstream|from().measurement('m')\n"


@pytest.fixture(scope="module")
def daemon() -> Iterator[DaemonProcess]:
    with DaemonProcess({"http": {"log-enabled": False}, "logging": {"level": "WARN"}}) as d:
        yield d


def ingress(daemon: DaemonProcess) -> dict[tuple[str, str, str], int]:
    stats = httpx.get(daemon.url + "/kapacitor/v1/debug/vars").json()["kapacitor"]
    return {(s["tags"]["database"], s["tags"]["retention_policy"], s["tags"]["measurement"]):
            s["values"]["points_received"] for s in stats.values() if s["name"] == "ingress"}


def test_a_20_mb_body_of_short_lines_costs_a_small_multiple_of_its_size(daemon) -> None:
    line = b"m v=1\n"  # the worst case: the most points per byte
    body = line * (20_000_000 // len(line))
    with httpx.Client(base_url=daemon.url, timeout=300) as client:
        task = client.post("/kapacitor/v1/tasks", json={"id": "big", "type": "stream",
                                                         "script": TASK,
                                                         "status": "enabled"})
        assert task.status_code == 200, task.text
        before = daemon.peak_rss_kb()
        response = client.post("/write?db=big&rp=autogen", content=body)
        assert response.status_code == 204, response.text[:500]
        growth_mib = (daemon.peak_rss_kb() - before) / 1024
        assert growth_mib < MAX_GROWTH_MIB, f"peak RSS grew by {growth_mib:.0f} MiB"
        assert ingress(daemon)[("big", "autogen", "m")] == len(body) // len(line)
        assert client.get("/kapacitor/v1/ping").status_code == 204


def test_a_bad_line_deep_in_a_large_body_refuses_all_of_it(daemon) -> None:
    lines = [b"deep v=%d %d" % (i, i) for i in range(400_000)]  # ~ 6 MB, many pieces
    lines[3] = b"deep v= 3"
    lines[250_000] = b"deep v=1e309 250000"
    lines[399_999] = b"deep v=nan"
    for i in range(300_000, 300_020):
        lines[i] = b"deep"
    body = b"\n".join(lines) + b"\n"
    response = httpx.post(daemon.url + "/write?db=deep&rp=autogen", content=body, timeout=120)
    assert response.status_code == 400
    shown = response.text.splitlines()
    assert shown[0] == "unable to parse 'deep v= 3': missing field value (line 4)"
    assert shown[1] == ("unable to parse 'deep v=1e309 250000': invalid float "
                        "(line 250001)")
    assert shown[2] == "unable to parse 'deep': missing fields (line 300001)"
    assert len(shown) == 11 and shown[-1] == "... and 13 more malformed line(s)"
    assert ("deep", "autogen", "deep") not in ingress(daemon)


def test_a_large_body_of_bad_lines_costs_no_memory_per_line(daemon) -> None:
    body = b"x\n" * 10_000_000  # 20 MB, ten million malformed lines
    before = daemon.peak_rss_kb()
    response = httpx.post(daemon.url + "/write?db=bad&rp=autogen", content=body, timeout=300)
    assert response.status_code == 400
    assert response.text.splitlines()[-1] == "... and 9999990 more malformed line(s)"
    growth_mib = (daemon.peak_rss_kb() - before) / 1024
    assert growth_mib < MAX_GROWTH_MIB, f"peak RSS grew by {growth_mib:.0f} MiB"


def test_infinity_is_refused_at_write_time(daemon) -> None:
    response = httpx.post(daemon.url + "/write?db=inf&rp=autogen",
                          content=b"m f=1e309 1\nm f=-1e309 2\nm f=1 \n")
    assert response.status_code == 400
    assert response.text.splitlines() == [
        "unable to parse 'm f=1e309 1': invalid float (line 1)",
        "unable to parse 'm f=-1e309 2': invalid float (line 2)"]
    assert ("inf", "autogen", "m") not in ingress(daemon)
    # A blank after the fields means "no timestamp", as InfluxDB reads it.
    response = httpx.post(daemon.url + "/write?db=inf&rp=autogen", content=b"m f=1 \n")
    assert response.status_code == 204, response.text
    assert ingress(daemon)[("inf", "autogen", "m")] == 1

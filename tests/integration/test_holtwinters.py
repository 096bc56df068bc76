"""holtWinters() and holtWintersWithFit() forecast exactly what InfluxQL's holt_winters
forecasts for the same series: the same data goes to a real influxd and through a task."""

from __future__ import annotations

import math
import random

import httpx
import pytest

from kapa_core.testing import DaemonProcess
from tests.integration.influxd import InfluxD
from tests.integration.test_tasks import output

pytestmark = pytest.mark.integration

INTERVAL_S = 10
COUNT = 30


def series() -> list[float]:
    rng = random.Random(11)
    return [round(20 + 6 * math.sin(i / 2) + rng.random(), 4) for i in range(COUNT)]


@pytest.fixture(scope="module")
def influx_answers():
    values = series()
    answers = {}
    with InfluxD() as influx:
        influx.query("CREATE DATABASE hw")
        body = "\n".join(f"hw value={v} {i * INTERVAL_S}" for i, v in enumerate(values))
        response = httpx.post(f"{influx.url}/write", params={"db": "hw", "precision": "s"},
                              content=body)
        assert response.status_code == 204, response.text
        for function in ("holt_winters", "holt_winters_with_fit"):
            for h, m in ((6, 4), (4, 0)):
                result = influx.query(
                    f"SELECT {function}(first(value), {h}, {m}) FROM hw WHERE time >= 0 "
                    f"AND time < {COUNT * INTERVAL_S}s GROUP BY time({INTERVAL_S}s)",
                    db="hw")
                answers[function, h, m] = result["results"][0]["series"][0]["values"]
    return values, answers


@pytest.mark.parametrize(("method", "function"), [
    ("holtWinters", "holt_winters"), ("holtWintersWithFit", "holt_winters_with_fit")])
@pytest.mark.parametrize(("h", "m"), [(6, 4), (4, 0)])
def test_forecast_equals_influxql(influx_answers, method, function, h, m) -> None:
    values, answers = influx_answers
    expected_rows = answers[function, h, m]
    assert len(expected_rows) == (COUNT + h if method == "holtWintersWithFit" else h)
    period = COUNT * INTERVAL_S
    script = f"""
stream|from().measurement('hw')
  |window().period({period}s).every({period}s).align()
  |{method}('value', {h}, {m}, {INTERVAL_S}s)
  |httpOut('out')
"""
    with DaemonProcess({"http": {"log-enabled": False}}) as daemon:
        response = httpx.post(daemon.url + "/kapacitor/v1/tasks", json={
            "id": "hw", "type": "stream", "dbrps": [{"db": "db", "rp": "rp"}],
            "script": script, "status": "enabled"})
        assert response.status_code == 200, response.text
        lines = [f"hw value={v} {i * INTERVAL_S}" for i, v in enumerate(values)]
        lines.append(f"hw value=0 {period}")  # closes the window
        response = httpx.post(f"{daemon.url}/write?db=db&rp=rp&precision=s",
                              content="\n".join(lines))
        assert response.status_code == 204
        expected = {"series": [{"name": "hw", "columns": ["time", "holtWinters"],
                                "values": expected_rows}]}
        assert output(daemon, "hw", expected) == expected

"""Durations and integers out of Go's range, and negative durations Kapacitor refuses,
through the real daemon: from the configuration file at startup and from the config API.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from kapa_core.testing import DaemonProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def daemon() -> Iterator[DaemonProcess]:
    with DaemonProcess({"http": {"log-enabled": False}}) as d:
        yield d


@pytest.mark.parametrize(("config", "message"), [
    ({"http": {"shutdown-timeout": 1e308}},
     "http.shutdown-timeout: invalid value 1e+308 (expected a duration such as 10s or 1m0s): "
     "out of range (at most 2562047h47m16.854775807s either way)"),
    ({"http": {"shutdown-timeout": "3000000h"}},
     "http.shutdown-timeout: invalid value '3000000h' (expected a duration such as 10s or "
     "1m0s): out of range"),
    ({"smtp": {"idle-timeout": "-1s"}}, "smtp.idle-timeout: must not be negative"),
    ({"udf": {"functions": {"f": {"prog": "/bin/true", "timeout": "1ms"}}}},
     "udf.functions.f.timeout: timeout is too small: 1ms"),
])
def test_the_configuration_file_is_refused_at_startup(config, message: str) -> None:
    with pytest.raises(RuntimeError) as err:
        DaemonProcess(config, ready_timeout=20).start()
    assert message in str(err.value)


@pytest.mark.parametrize(("section", "options", "message"), [
    ("smtp", {"idle-timeout": "-1s"}, "smtp.idle-timeout: must not be negative"),
    ("smtp", {"idle-timeout": 1e308}, "smtp.idle-timeout: invalid value 1e+308 (expected a "
     "duration such as 10s or 1m0s): out of range"),
    ("smtp", {"idle-timeout": "9223372036854775808ns"}, "out of range"),
    ("smtp", {"port": 2**64}, "smtp.port: invalid value 18446744073709551616 (expected an "
     "integer): out of range"),
    ("influxdb/default", {"timeout": "3000000h"}, "timeout: invalid value '3000000h'"),
    ("influxdb/default", {"timeout": "-1s"}, "timeout: must not be negative"),
])
def test_config_api_answers_400_and_changes_nothing(daemon, section, options,
                                                     message) -> None:
    url = f"{daemon.url}/kapacitor/v1/config/{section}"
    before = httpx.get(url).json()
    # set names an element: /config/smtp/ for a single section (as Kapacitor wants it)
    response = httpx.post(url if "/" in section else url + "/", json={"set": options})
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith("failed to apply update: ")
    assert message in response.json()["error"]
    assert httpx.get(url).json() == before
    assert httpx.get(daemon.url + "/kapacitor/v1/ping").status_code == 204

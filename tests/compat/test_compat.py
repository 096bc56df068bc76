"""The compatibility suite: every case under cases/ run on the real daemon, its outputs
compared byte for byte with what Kapacitor 1.5.7 answered (see README.md)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from kapa_core.testing import DaemonProcess
from tests.compat.casefile import Case, all_cases
from tests.compat.oracle import show_diff
from tests.compat.runner import Recorder, matches, run_until_equal

pytestmark = pytest.mark.integration

CASES = [c for c in all_cases() if c.get("type", "stream") == "stream"]

def _param(case: Case):
    # A case kapa-core does not answer as Kapacitor yet says why in its "pending" key; it
    # is expected to fail, strictly: once it passes, the key must go.
    marks = [pytest.mark.xfail(strict=True, reason="pending: " + case.get("pending"))
             ] if case.get("pending") else []
    return pytest.param(case, id=case.name, marks=marks)


@pytest.fixture(scope="module")
def env():
    recorder = Recorder()
    workdir = Path(tempfile.mkdtemp(prefix="compat-"))
    try:
        with DaemonProcess({"http": {"log-enabled": False},
                            "logging": {"level": "ERROR"}}) as daemon:
            yield daemon, recorder, workdir
    finally:
        recorder.close()
        shutil.rmtree(workdir, ignore_errors=True)


def test_every_case_has_an_expected_output() -> None:
    assert CASES, "no compatibility case found"
    assert [c.name for c in all_cases() if not c.expected] == []


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_case(env, case: Case) -> None:
    daemon, recorder, workdir = env
    # A pending case is expected to differ: do not wait the full deadline for it.
    timeout = 1.5 if case.get("pending") else 10.0
    got = run_until_equal(daemon.url, case, recorder, workdir, case.expected,
                          timeout=timeout)
    assert matches(got, case.expected), show_diff(case.name, got, case.expected)


BATCH_CASES = [c for c in all_cases() if c.get("type") == "batch"]


@pytest.fixture(scope="module")
def batch_env():
    """One influxd for all batch cases and a daemon that queries it; both are stopped
    whatever happens."""
    from tests.compat.influx import InfluxServer

    recorder = Recorder()
    workdir = Path(tempfile.mkdtemp(prefix="compat-batch-"))
    influx = InfluxServer()
    try:
        influx.start()
        with DaemonProcess({"http": {"log-enabled": False}, "logging": {"level": "ERROR"},
                            "influxdb": [{"enabled": True, "name": "default",
                                          "default": True, "urls": [influx.url],
                                          "disable-subscriptions": True}]}) as daemon:
            yield daemon, influx, recorder, workdir
    finally:
        influx.close()
        recorder.close()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.parametrize("case", [_param(c) for c in BATCH_CASES])
def test_batch_case(batch_env, case: Case) -> None:
    daemon, influx, recorder, workdir = batch_env
    influx.load(case)
    timeout = 1.5 if case.get("pending") else 10.0
    got = run_until_equal(daemon.url, case, recorder, workdir, case.expected,
                          timeout=timeout)
    assert matches(got, case.expected), show_diff(case.name, got, case.expected)

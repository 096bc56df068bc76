"""kapa_core.testing's output readers: checks on the log wait for what they expect.

A stand-in daemon (a small Python script) prints the "ready" line on stdout and its log on
stderr, as kapa-core does, but writes some log lines only when the test creates a trigger
file, so a line that arrives after ``start()`` returns is reproduced deterministically.
"""

from __future__ import annotations

import sys
import time

import pytest

from kapa_core.testing import DaemonProcess, wait_until

FAKE = r"""
import os, sys, time
for n in range(200):
    sys.stderr.write(f"lvl=info msg=early n={n}\n")
sys.stderr.write('lvl=info msg="kapa-core ready"\n')
sys.stderr.flush()
print("kapa-core 1.0 ready: API on http://127.0.0.1:9", flush=True)
while not os.path.exists("go"):
    time.sleep(0.01)
sys.stderr.write("lvl=info msg=late n=1\n")
sys.stderr.write("lvl=info msg=late n=2\n")
sys.stderr.write("no newline at the end")
sys.stderr.flush()
if os.path.exists("exit"):
    sys.exit(0)
time.sleep(60)
"""


class FakeDaemon(DaemonProcess):
    def command(self) -> list[str]:
        return [sys.executable, "-c", FAKE]

    def release(self, *, then_exit: bool = False) -> None:
        """Let the stand-in write its late lines (and exit when ``then_exit``)."""
        if then_exit:
            (self.dir / "exit").touch()
        (self.dir / "go").touch()


@pytest.fixture
def fake():
    with FakeDaemon() as daemon:
        yield daemon


def test_a_single_look_misses_a_late_line_and_the_wait_finds_it(fake: FakeDaemon) -> None:
    # The old pattern: the late line is not there yet when the log is read once.
    assert "msg=late" not in fake.log()
    fake.release()
    assert fake.wait_for_text("msg=late n=1", timeout=20) == "lvl=info msg=late n=1"
    assert fake.wait_for_log(r"msg=late n=\d", timeout=20, count=2).endswith("n=2")


def test_start_returns_with_everything_logged_before_ready(fake: FakeDaemon) -> None:
    log = fake.log().splitlines()
    assert len(log) == 201 and log[0] == "lvl=info msg=early n=0"
    assert log[-1] == 'lvl=info msg="kapa-core ready"'
    assert fake.url == "http://127.0.0.1:9"
    assert fake.stdout_lines == ["kapa-core 1.0 ready: API on http://127.0.0.1:9"]


def test_a_timeout_shows_the_end_of_the_log(fake: FakeDaemon) -> None:
    started = time.monotonic()
    with pytest.raises(AssertionError) as failure:
        fake.wait_for_text("never written", timeout=0.3)
    assert time.monotonic() - started < 10  # its 0.3 s, not the default 20 s
    message = str(failure.value)
    assert "after 0.3s" in message and "'never\\\\ written'" in message
    assert message.endswith('lvl=info msg="kapa-core ready"')
    assert "n=0" not in message  # only the end of a long log
    with pytest.raises(AssertionError, match=r"2 log lines \(saw 1\)"):
        fake.wait_for_text("kapa-core ready", timeout=0.1, count=2)


def test_a_daemon_that_exited_fails_the_wait_at_once(fake: FakeDaemon) -> None:
    fake.release(then_exit=True)
    assert fake.wait_for_text("no newline at the end", timeout=20)
    started = time.monotonic()
    with pytest.raises(AssertionError, match="the daemon exited"):
        fake.wait_for_text("never written", timeout=30)
    assert time.monotonic() - started < 10  # not the 30 s timeout


def test_wait_until_returns_the_value_or_shows_the_last_one() -> None:
    values = iter([0, None, {"points": 3}])
    assert wait_until(lambda: next(values), timeout=5, interval=0.01) == {"points": 3}
    counter = {"points": 1}
    with pytest.raises(AssertionError, match=r"points >= 5; last seen: False"):
        wait_until(lambda: counter["points"] >= 5, timeout=0.1, what="points >= 5")

    def missing() -> int:
        return {}["points"]  # type: ignore[no-any-return]
    with pytest.raises(AssertionError, match=r"last seen: KeyError\('points'\)"):
        wait_until(missing, timeout=0.1, what="a statistic")
    with pytest.raises(AssertionError, match=r"last seen: \{'errors': 0\}"):
        wait_until(lambda: {"errors": 0}, timeout=0.1, until=lambda s: s["points"] >= 1)

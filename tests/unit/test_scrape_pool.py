"""The scraper's page parser processes: large pages parsed in a worker give the samples
an in-place parse gives, errors come back as ValueError, a killed worker is replaced,
small pages never leave the daemon's thread, and a worker exits once its parent is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import trio
from kapa_plugins.discovery.scrape_parse import parse_samples
from kapa_plugins.discovery.scrape_pool import INLINE_BELOW, ParserPool

from kapa_core.logs import Logger

BIG = "".join(f'# TYPE m{i} gauge\nm{i}{{a="{i}"}} {i}.5\n' for i in range(2000))


async def test_worker_parse_equals_in_place_and_survives_a_dead_worker() -> None:
    pool = ParserPool(Logger("scraper"), workers=1)
    assert len(BIG) >= INLINE_BELOW
    try:
        assert await pool.parse(BIG) == parse_samples(BIG)
        assert pool._pool is not None
        with pytest.raises(ValueError, match=r"."):
            await pool.parse(BIG + "broken{ 1\n")
        # a worker killed: the page is parsed in place, and a new worker comes
        for pid in list(pool._pool._processes):  # type: ignore[union-attr]
            os.kill(pid, signal.SIGKILL)
        await trio.sleep(0.3)
        assert await pool.parse(BIG) == parse_samples(BIG)
        assert await pool.parse(BIG) == parse_samples(BIG)
        assert pool._pool is not None
    finally:
        pool.close()


async def test_small_pages_and_no_workers_parse_in_place() -> None:
    pool = ParserPool(Logger("scraper"), workers=1)
    assert await pool.parse("a 1\n") == [("a", {}, 1.0, None)]
    assert pool._pool is None
    none = ParserPool(Logger("scraper"), workers=0)
    assert await none.parse(BIG) == parse_samples(BIG)
    assert none._pool is None


async def test_the_scrapers_of_a_daemon_share_their_workers() -> None:
    first, second = ParserPool(Logger("a"), workers=1), ParserPool(Logger("b"), workers=1)
    try:
        assert await first.parse(BIG) == await second.parse(BIG) == parse_samples(BIG)
        assert first._pool is second._pool is not None
        shared = first._pool
        first.close()  # still used by the second
        assert await second.parse(BIG) == parse_samples(BIG)
        second.close()  # the last user: the processes stop
        with pytest.raises(RuntimeError):
            shared.submit(parse_samples, "a 1\n")
        again = ParserPool(Logger("c"), workers=1)
        assert await again.parse(BIG) == parse_samples(BIG)
        assert again._pool is not shared
        again.close()
    finally:
        first.close()
        second.close()


PARENT = """
import sys, time, trio
from kapa_core.logs import Logger
from kapa_plugins.discovery.scrape_pool import ParserPool

async def main():
    pool = ParserPool(Logger("scraper"), workers=1)
    await pool.parse(sys.argv[1])
    print(*pool._pool._processes, flush=True)
    time.sleep(60)

if __name__ == "__main__":
    trio.run(main)
"""


def test_a_worker_exits_when_its_daemon_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, BIG], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert parent.stdout is not None
        workers = [int(p) for p in parent.stdout.readline().split()]
        assert workers
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(running(p) for p in workers):
        time.sleep(0.1)
    assert not [p for p in workers if running(p)], "a parser outlived its daemon"


def running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"

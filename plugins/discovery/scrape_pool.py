"""Parsing large pages away from the daemon's thread.

prometheus_client's parser is pure Python (about 110,000 samples/s on one core) and the
daemon runs on one thread: parsing every page in it would cap a daemon's scraping at one
core and stall everything else while a large page is parsed. Pages of at least
``INLINE_BELOW`` characters are therefore parsed in worker processes (as many as the
machine has cores, at most ``MAX_WORKERS``: the daemon's thread needs about half as much
CPU as the parsing, and the system shares the cores among them), which all the scraper
elements of a daemon share: started on first use, stopped with the last element that
used them, so many scrapers do not mean many processes. The samples come back pickled
(about 1 ms for 2,000). Small pages are parsed in place, where a round trip would cost
more than the parse. A worker that dies is replaced; meanwhile pages are parsed in place.

A worker exits by itself when the daemon that started it is gone (it watches its parent
process), so a killed daemon leaves no parser behind. Workers are started with the
``spawn`` method, which imports the main module of the process again: a program that
runs scrapers itself (rather than through ``kapa-core``) keeps its start-up code under
``if __name__ == "__main__":``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import trio
import trio.lowlevel

from kapa_core.plugin_api import Logger

from .scrape_parse import Sample, parse_samples

#: pages shorter than this (characters) are parsed in the daemon's thread
INLINE_BELOW = 16_384
MAX_WORKERS = 4


def default_workers() -> int:
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def _watch_parent(parent: int) -> None:
    """Worker initializer: ignore the terminal's Ctrl-C (the daemon handles it) and exit
    once the daemon is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


class _Shared:
    """The parser processes of one daemon, by number of workers, with how many scraper
    elements use them."""

    def __init__(self) -> None:
        self.executors: dict[int, tuple[ProcessPoolExecutor, int]] = {}

    def acquire(self, workers: int) -> ProcessPoolExecutor:
        executor, users = self.executors.get(workers, (None, 0))
        if executor is None:
            executor = ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_watch_parent, initargs=(os.getpid(),))
        self.executors[workers] = (executor, users + 1)
        return executor

    def release(self, executor: ProcessPoolExecutor) -> None:
        for workers, (held, users) in list(self.executors.items()):
            if held is executor:
                if users > 1:
                    self.executors[workers] = (held, users - 1)
                    return
                del self.executors[workers]
        executor.shutdown(wait=False, cancel_futures=True)

    def discard(self, executor: ProcessPoolExecutor) -> None:
        """A broken executor: every user gets a new one on its next large page."""
        for workers, (held, _) in list(self.executors.items()):
            if held is executor:
                del self.executors[workers]
        executor.shutdown(wait=False, cancel_futures=True)


_SHARED = _Shared()


class ParserPool:
    """One scraper element's use of the daemon's parser processes."""

    def __init__(self, log: Logger, workers: int | None = None) -> None:
        self.log = log
        self.workers = default_workers() if workers is None else workers
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor | None:
        if self._pool is None and self.workers > 0:
            try:
                self._pool = _SHARED.acquire(self.workers)
            except (OSError, ValueError) as exc:
                self.log.error("cannot start the page parsers; parsing in place",
                               err=str(exc))
                self.workers = 0
        return self._pool

    def _broken(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            self.log.warn("a page parser process died; starting another")
            _SHARED.discard(pool)

    async def parse(self, text: str) -> list[Sample]:
        """The samples of ``text`` (ValueError when it does not parse)."""
        pool = self._executor() if len(text) >= INLINE_BELOW else None
        if pool is None:
            return parse_samples(text)
        try:
            future: Future[list[Sample]] = pool.submit(parse_samples, text)
        except (BrokenProcessPool, RuntimeError):
            self._broken()
            return parse_samples(text)
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()

        def wake(_: Any) -> None:
            with contextlib.suppress(trio.RunFinishedError):  # the daemon has ended
                token.run_sync_soon(done.set)

        future.add_done_callback(wake)
        try:
            await done.wait()
        finally:
            future.cancel()  # cancelled while waiting: not wanted any more
        try:
            return future.result()
        except BrokenProcessPool:
            self._broken()
            return parse_samples(text)

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            _SHARED.release(pool)


__all__ = ["INLINE_BELOW", "ParserPool", "default_workers"]

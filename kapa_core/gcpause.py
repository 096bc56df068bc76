"""Pausing Python's cyclic garbage collector while large TICKscripts are parsed and
evaluated (the task store and the HTTP API both do)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: Scripts at least this long are parsed with the cyclic garbage collector paused (from
#: 16 kB: defining 20 tasks of 20 kB of lambdas took 3 times as long with it running).
GC_PAUSE_BYTES = 16 * 1024


class _GCPause:
    """Pauses Python's cyclic garbage collector while large scripts are parsed and
    evaluated: the hundreds of thousands of syntax nodes they allocate make it run
    again and again over a growing heap, more than half of the time of a 5 MB script.
    Nested and concurrent pauses (worker threads) share one: the collector runs again
    when the last one ends, and then frees any cycle made meanwhile."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.was_enabled = True

    @contextmanager
    def __call__(self, active: bool) -> Iterator[None]:
        if not active:
            yield
            return
        with self.lock:
            if self.depth == 0:
                self.was_enabled = gc.isenabled()
                gc.disable()
            self.depth += 1
        try:
            yield
        finally:
            with self.lock:
                self.depth -= 1
                if self.depth == 0 and self.was_enabled:
                    gc.enable()


#: ``with gc_paused(len(script) >= GC_PAUSE_BYTES): ...``
gc_paused = _GCPause()

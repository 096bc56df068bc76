"""``/kapacitor/v1/debug/pprof/``: what a user needs to find a slow task, at Kapacitor's
paths where the meaning fits.

Kapacitor serves Go's pprof here; its profiles are Go's binary formats, which mean nothing
for a Python process. kapa-core answers the same paths with Python's equivalents, as
plain text:

- ``profile?seconds=N`` (default 30): a sampled CPU profile of the thread that runs trio
  (every node, every parser), one sample every ``SAMPLE_INTERVAL``, written as collapsed
  stacks (``outer;inner;leaf count``, the input of flame-graph tools), busiest first;
- ``goroutine``: the stack of every trio task (what each awaits) and of every thread;
- ``heap``: ``tracemalloc``'s top allocation sites while tracing is on; with
  ``?seconds=N`` it traces for N seconds first (tracing slows the daemon while it runs);
- ``cmdline``: the command line, NUL-separated, as Go writes it;
- ``symbol``: Go's answer for a process without Go symbols.

The routes exist whatever ``[http] pprof-enabled`` says, as in Kapacitor; the setting
only lets them bypass authentication.
"""

from __future__ import annotations

import collections
import gc
import html
import resource
import sys
import threading
import time
import traceback
import tracemalloc
from collections.abc import Iterator
from types import FrameType
from typing import Any

import trio

from kapa_core.errors import APIError
from kapa_core.http.messages import Request, Response
from kapa_core.http.router import Router

BASE = "/kapacitor/v1/debug/pprof"
#: Seconds between two samples of the CPU profile.
SAMPLE_INTERVAL = 0.005
#: Longest profile or heap trace one request may ask for.
MAX_SECONDS = 600.0
TEXT = "text/plain; charset=utf-8"

#: name -> what the index page says of it
PROFILES = {
    "profile": "CPU profile of the trio thread: sampled stacks, collapsed "
               "(?seconds=N, default 30).",
    "goroutine": "Stacks of every trio task and every thread.",
    "heap": "Top allocation sites (tracemalloc; ?seconds=N traces for N seconds first).",
    "cmdline": "The command line of the daemon.",
}


class PprofAPI:
    def register(self, router: Router) -> None:
        router.add("GET", BASE + "/", self.index)
        router.add("GET", BASE + "/cmdline", self.cmdline)
        router.add("GET", BASE + "/profile", self.profile)
        router.add("GET", BASE + "/symbol", self.symbol)
        router.add("GET", BASE + "/{name}", self.named)

    async def index(self, request: Request) -> Response:
        rows = "\n".join(f'<tr><td><a href="{BASE}/{name}">{name}</a></td>'
                         f"<td>{html.escape(text)}</td></tr>"
                         for name, text in PROFILES.items())
        page = ("<html><head><title>/debug/pprof/</title></head><body>\n"
                "<p>kapa-core profiles (Python equivalents of Go's pprof):</p>\n"
                f"<table>\n{rows}\n</table>\n</body></html>\n")
        return Response.raw(200, page.encode(), "text/html; charset=utf-8")

    async def named(self, request: Request) -> Response:
        name = request.params["name"]
        if name == "goroutine":
            return Response.raw(200, task_dump().encode(), TEXT)
        if name == "heap":
            return Response.raw(200, (await heap_report(_seconds(request, 0))).encode(),
                                TEXT)
        raise APIError(404, f"Unknown profile: {name}")

    async def cmdline(self, request: Request) -> Response:
        return Response.raw(200, "\x00".join(sys.argv).encode(), TEXT)

    async def symbol(self, request: Request) -> Response:
        return Response.raw(200, b"num_symbols: 0\n", TEXT)

    async def profile(self, request: Request) -> Response:
        seconds = _seconds(request, 30)
        ident = threading.get_ident()  # the trio thread: this handler runs on it
        counts = await trio.to_thread.run_sync(sample_stacks, ident, seconds,
                                               abandon_on_cancel=True)
        return Response.raw(200, collapsed(counts, seconds).encode(), TEXT)


def _seconds(request: Request, default: float) -> float:
    raw = request.arg("seconds", "")
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise APIError(400, f"invalid seconds {raw!r}: expected a number") from None
    if not 0 <= value <= MAX_SECONDS:
        raise APIError(400, f"seconds must be between 0 and {MAX_SECONDS:g}")
    return value


# -- CPU profile ---------------------------------------------------------------------
def _stack_of(frame: FrameType | None) -> tuple[str, ...]:
    names: list[str] = []
    while frame is not None:
        code = frame.f_code
        names.append(f"{code.co_qualname} ({code.co_filename}:{frame.f_lineno})")
        frame = frame.f_back
    return tuple(reversed(names))


def sample_stacks(ident: int, seconds: float,
                  interval: float = SAMPLE_INTERVAL) -> collections.Counter[tuple[str, ...]]:
    """Stacks of thread ``ident`` sampled every ``interval`` for ``seconds`` (run it in
    another thread)."""
    counts: collections.Counter[tuple[str, ...]] = collections.Counter()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        frame = sys._current_frames().get(ident)
        if frame is None:
            break
        counts[_stack_of(frame)] += 1
        del frame
        time.sleep(interval)
    return counts


def collapsed(counts: collections.Counter[tuple[str, ...]], seconds: float) -> str:
    total = sum(counts.values())
    lines = [f"# kapa-core CPU profile: {total} samples of the trio thread over "
             f"{seconds:g} s, one every {SAMPLE_INTERVAL * 1000:g} ms",
             "# stack (outermost first, ';'-separated) and samples; an idle loop waits in "
             "the selector"]
    lines += [f"{';'.join(stack)} {count}" for stack, count in counts.most_common()]
    return "\n".join(lines) + "\n"


# -- stacks of tasks and threads ------------------------------------------------------
def _tasks(task: trio.lowlevel.Task) -> Iterator[trio.lowlevel.Task]:
    yield task
    for nursery in task.child_nurseries:
        for child in nursery.child_tasks:
            yield from _tasks(child)


def _awaiting(coro: Any) -> list[str]:
    """What a task's coroutine awaits, outermost first, as traceback lines."""
    lines: list[str] = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        code = frame.f_code
        lines.append(f'  File "{code.co_filename}", line {frame.f_lineno}, '
                     f"in {code.co_qualname}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return lines


def task_dump() -> str:
    """Every trio task with the stack it waits in, then every thread's stack."""
    out: list[str] = []
    root = trio.lowlevel.current_root_task()
    tasks = list(_tasks(root)) if root is not None else []
    out.append(f"trio tasks: {len(tasks)}\n")
    for task in tasks:
        out.append(f"task {task.name}")
        out.extend(_awaiting(task.coro) or ["  (running)"])
        out.append("")
    frames = sys._current_frames()
    out.append(f"threads: {len(frames)}\n")
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, frame in frames.items():
        out.append(f"thread {names.get(ident, ident)}")
        out.extend(line.rstrip("\n") for line in traceback.format_stack(frame))
        out.append("")
    return "\n".join(out)


# -- heap ------------------------------------------------------------------------------
async def heap_report(seconds: float, top: int = 30) -> str:
    """The top allocation sites; traces for ``seconds`` first when tracing is off."""
    lines = [f"# max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} kB; "
             f"gc counts {gc.get_count()}; objects tracked by gc {len(gc.get_objects())}"]
    started = False
    if not tracemalloc.is_tracing():
        if not seconds:
            lines.append("# tracemalloc is off: ask for ?seconds=N to trace allocations "
                         "for N seconds (tracing slows the daemon while it runs)")
            return "\n".join(lines) + "\n"
        tracemalloc.start()
        started = True
        await trio.sleep(seconds)
    try:
        snapshot = tracemalloc.take_snapshot()
    finally:
        if started:
            tracemalloc.stop()
    stats = snapshot.statistics("lineno")
    size = sum(s.size for s in stats)
    lines.append(f"# traced: {size} bytes in {sum(s.count for s in stats)} blocks"
                 + (f" (allocated during {seconds:g} s of tracing)" if started else ""))
    lines += [f"{s.size} bytes {s.count} blocks {s.traceback[0].filename}:"
              f"{s.traceback[0].lineno}" for s in stats[:top]]
    return "\n".join(lines) + "\n"

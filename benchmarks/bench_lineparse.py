"""Parse-only rate of the compiled line-protocol path against the pure-Python one.

    python benchmarks/bench_lineparse.py [--runs N] [--lines N]

Bodies: Kapacitor's ingest shape (``m1 value=<i> <i>``, precision s), 10,000 series with
two tags, a float and an integer (``m,host=host<k>,region=r<j> v=<float>,n=<i>i <ns>``),
and Telegraf-like lines with a quoted string field (the compiled path leaves those lines
to Python). Each body is parsed ``--runs`` times by ``parse`` (compiled) and
``parse_pure``; the table shows the median points/s, the ratio, and ``check`` (the
GIL-free validation, compiled only). Also the memory a parse's points take
(tracemalloc, one run each): points of a series share their tags with the compiled path.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kapa_core.models import lineprotocol  # noqa: E402
from kapa_core.models.lineprotocol import ParseResult, check, parse_pure  # noqa: E402


def ingest(n: int) -> bytes:
    return "".join(f"m1 value={i} {i}\n" for i in range(n)).encode()


def series(n: int) -> bytes:
    return "".join(f"m,host=host{i % 10_000},region=r{i % 7} v={i * 0.37},n={i}i "
                   f"{1_700_000_000_000_000_000 + i}\n" for i in range(n)).encode()


def telegraf(n: int) -> bytes:
    return "".join(f'system,host=h{i % 50} load1={i % 9}.25,n_cpus=8i,uptime_format="'
                   f'{i // 3600} days, {i % 60} min" {1_700_000_000_000_000_000 + i}\n'
                   for i in range(n)).encode()


BODIES: list[tuple[str, Callable[[int], bytes], str]] = [
    ("ingest: m1 value=<i> <i>", ingest, "s"),
    ("10k series, 2 tags, float + int", series, "n"),
    ("telegraf-like, quoted string field", telegraf, "n"),
]


def rate(parse: Callable[[bytes, str], ParseResult | int], body: bytes, precision: str,
         lines: int, runs: int) -> float:
    rates = []
    for _ in range(runs):
        gc.collect()
        started = time.perf_counter()
        result = parse(body, precision)
        elapsed = time.perf_counter() - started
        assert result == -1 or (isinstance(result, ParseResult) and not result.errors)
        rates.append(lines / elapsed)
        del result
    return statistics.median(rates)


def memory(parse: Callable[[bytes, str], ParseResult], body: bytes, precision: str) -> int:
    """Bytes held by the points of one parse (traced allocations still alive after it)."""
    gc.collect()
    tracemalloc.start()
    result = parse(body, precision)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del result
    return held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per body (default 5)")
    parser.add_argument("--lines", type=int, default=200_000,
                        help="lines per body (default 200,000)")
    args = parser.parse_args()
    print(f"path: {lineprotocol.implementation()}; {args.lines:,} lines per body, "
          f"median of {args.runs}")
    if not lineprotocol.COMPILED:
        sys.exit("the compiled path is off: build it with pip install -e . first")

    def compiled(body: bytes, precision: str) -> ParseResult:
        return lineprotocol.parse(body, precision=precision)

    def pure(body: bytes, precision: str) -> ParseResult:
        return parse_pure(body, precision=precision)

    def checked(body: bytes, precision: str) -> int:
        return check(body, precision=precision)

    print(f"{'body':<38} {'pure pts/s':>12} {'compiled':>12} {'ratio':>6} "
          f"{'check':>12} {'B/pt pure':>10} {'B/pt C':>8}")
    for label, make, precision in BODIES:
        body = make(args.lines)
        p = rate(pure, body, precision, args.lines, args.runs)
        c = rate(compiled, body, precision, args.lines, args.runs)
        k = rate(checked, body, precision, args.lines, args.runs)
        mp = memory(pure, body, precision) / args.lines
        mc = memory(compiled, body, precision) / args.lines
        print(f"{label:<38} {p:>12,.0f} {c:>12,.0f} {c / p:>5.1f}x {k:>12,.0f} "
              f"{mp:>10,.0f} {mc:>8,.0f}")


if __name__ == "__main__":
    main()

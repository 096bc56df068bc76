"""Line-protocol parse rate, in points per second.

    python benchmarks/bench_lineprotocol.py [--runs N]

Bodies are shaped like Kapacitor's own write benchmark (``m1 value=<i> <i>``, precision s)
at 50,000 and 200,000 points, plus a realistic Telegraf-like line with tags, an integer,
a boolean and a string field. Prints the median rate of ``--runs`` runs per body.
"""

from __future__ import annotations

import argparse
import statistics
import time

from kapa_core.models.lineprotocol import parse


def simple(n: int) -> bytes:
    return "\n".join(f"m1 value={i} {i}" for i in range(n)).encode()


def realistic(n: int) -> bytes:
    return "\n".join(
        f'cpu,host=server{i % 100:02d},region=uswest usage_idle=99.5,usage_user={i % 7}i,'
        f'active=true,note="ok" {1_600_000_000_000_000_000 + i}' for i in range(n)).encode()


BODIES = [("m1 value=<i> <i>, 50,000 points", lambda: simple(50_000), "s"),
          ("m1 value=<i> <i>, 200,000 points", lambda: simple(200_000), "s"),
          ("cpu,host=..,region=.. 4 fields, 50,000 points", lambda: realistic(50_000), "n")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per body (default 5)")
    args = parser.parse_args()
    for label, make, precision in BODIES:
        body = make()
        rates = []
        for _ in range(args.runs):
            started = time.perf_counter()
            result = parse(body, precision=precision)
            elapsed = time.perf_counter() - started
            assert not result.errors
            rates.append(len(result.points) / elapsed)
            del result
        print(f"{label:<48} {statistics.median(rates):>12,.0f} points/s "
              f"(best {max(rates):,.0f})")


if __name__ == "__main__":
    main()

"""Prometheus text-format pages parsed into samples as Prometheus' Go decoder (vendored
by Kapacitor 1.5.7) gives them, with prometheus_client's parser (see ``scrape_format``).

Kept apart from the points (it imports nothing from kapa-core) so that the scraper's
parser worker processes load only this and prometheus_client.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

_TYPE_LINE = re.compile(r"^[ \t]*#[ \t]*TYPE[ \t]+(\S+)[ \t]+(\S+)[ \t]*$", re.M)


def go_float(value: float) -> str:
    """``fmt.Sprint(value)`` of Go for a float64: the shortest digits that read back the
    same, in exponent form when the exponent is below -4 or at least 6."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    nd = len(text)
    exp10 = nd + exponent - 1  # the decimal exponent of the first digit
    prefix = "-" if sign else ""
    if exp10 < -4 or exp10 >= 6:
        mantissa = text[0] + ("." + text[1:] if nd > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    if exp10 < 0:
        return f"{prefix}0.{'0' * (-exp10 - 1)}{text}"
    if nd <= exp10 + 1:
        return prefix + text + "0" * (exp10 + 1 - nd)
    return f"{prefix}{text[:exp10 + 1]}.{text[exp10 + 1:]}"


@functools.lru_cache(maxsize=4096)
def go_bound(text: str) -> str:
    """A ``le``/``quantile`` label value as Go re-writes it once parsed (cached: the
    same few bounds come back on every scrape)."""
    try:
        return go_float(float(text))
    except ValueError:
        raise ValueError(f"invalid bound {text!r}") from None


Sample = tuple[str, dict[str, str], float, "int | None"]


def parse_samples(text: str) -> list[Sample]:
    """The samples of a text-format page: (name, labels, value, time in ms or None).
    ValueError when the page cannot be parsed."""
    counters: set[str] = set()
    if "TYPE" in text:
        declared = _TYPE_LINE.findall(text)
        names = [name for name, _ in declared]
        if len(set(names)) != len(names):  # Go's parser refuses the page
            twice = next(n for n in names if names.count(n) > 1)
            raise ValueError(f"second TYPE line for metric name {twice!r}")
        counters = {name for name, kind in declared if kind == "counter"}
    out: list[Sample] = []
    append = out.append
    for family in text_string_to_metric_families(text):
        kind = family.type
        if kind == "counter":
            # "# TYPE x counter": the parser names x's samples "x_total"
            typed = family.name if family.name in counters else None
            for s in family.samples:
                name = s.name
                if typed is not None and name == typed + "_total":
                    name = typed
                ts = s.timestamp
                append((name, s.labels, float(s.value),
                        None if ts is None else round(float(ts) * 1000)))
        elif kind == "histogram" or kind == "summary":
            _complex(family.name, kind, family.samples, append)
        else:
            for s in family.samples:
                ts = s.timestamp
                append((s.name, s.labels, float(s.value),
                        None if ts is None else round(float(ts) * 1000)))
    return out


class _Series:
    """One label set of a histogram or summary, gathered from its samples."""

    __slots__ = ("buckets", "count", "labels", "sum", "ts")

    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = labels
        self.buckets: list[tuple[str, float]] = []
        self.sum = 0.0
        self.count = 0.0
        self.ts: int | None = None


def _complex(name: str, kind: str, samples: Iterable[Any],
             append: Callable[[Sample], None]) -> None:
    """A histogram's or summary's samples as Go's decoder expands them."""
    bound = "le" if kind == "histogram" else "quantile"
    series: dict[tuple[tuple[str, str], ...], _Series] = {}
    for s in samples:
        sname, labels, value, ts = s.name, s.labels, s.value, s.timestamp
        own = {k: v for k, v in labels.items() if k != bound}
        key = tuple(sorted(own.items()))
        entry = series.get(key)
        if entry is None:
            entry = series[key] = _Series(own)
        if ts is not None:
            entry.ts = round(float(ts) * 1000)
        if sname == name + "_sum":
            entry.sum = float(value)
        elif sname == name + "_count":
            entry.count = float(value)
        elif bound in labels:
            entry.buckets.append((go_bound(labels[bound]), float(value)))
        # else: a bucket or quantile without its label, which Go's parser leaves out
    bucket_name = name + "_bucket" if kind == "histogram" else name
    for entry in series.values():
        labels, ts = entry.labels, entry.ts
        inf_seen = False
        for le, value in entry.buckets:
            if le == "+Inf":
                inf_seen = True
            append((bucket_name, {**labels, bound: le}, value, ts))
        append((name + "_sum", dict(labels), entry.sum, ts))
        append((name + "_count", dict(labels), entry.count, ts))
        if kind == "histogram" and not inf_seen:
            append((bucket_name, {**labels, bound: "+Inf"}, entry.count, ts))


__all__ = ["Sample", "go_bound", "go_float", "parse_samples"]

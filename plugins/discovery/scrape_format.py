"""The samples of one scrape turned into points, as Kapacitor 1.5.7's scraper makes them.

The page is parsed with prometheus_client's text-format parser; what it yields is then
brought to what Prometheus' Go decoder (vendored by Kapacitor) would have produced:

* a ``counter`` family declared without the ``_total`` suffix keeps its samples' own
  names (the Python parser renames them ``<name>_total``);
* histogram ``le`` and summary ``quantile`` values are re-written as Go's
  ``fmt.Sprint(float64)`` writes the parsed number (``1.0`` -> ``1``, ``1000000`` ->
  ``1e+06``, ``+Inf``);
* each histogram or summary series has its ``_sum`` and ``_count`` samples (0 when the
  page lacks them) and a histogram its ``+Inf`` bucket (the ``_count`` value);
* a sample without a timestamp is stamped with the scrape's start, both at millisecond
  precision (Prometheus' model time).

Each sample is then a point as ``services/scraper`` writes it: measurement ``__name__``,
field ``value``, tags = the sample's labels with the target's public labels over them (a
sample label the target overrides is kept as ``exported_<name>`` when it is not empty,
Prometheus' ruleLabelsAppender), ``__name__`` included, ``job`` left out; NaN samples and
those of a blacklisted ``instance`` are not written.
"""

from __future__ import annotations

from collections.abc import Sequence

from kapa_core.plugin_api import Point

from .scrape_parse import Sample, go_bound, go_float, parse_samples

#: the report samples Prometheus appends after each scrape, in its order
REPORT_NAMES = ("up", "scrape_duration_seconds", "scrape_samples_scraped",
                "scrape_samples_post_metric_relabeling")
def sample_points(samples: Sequence[Sample], target_labels: Sequence[tuple[str, str]],
                  scrape_ms: int, db: str, rp: str) -> tuple[list[Point], int]:
    """The points of ``samples`` scraped from a target whose public labels are
    ``target_labels`` (``job`` among them), and the number of NaN samples left out."""
    stamp = scrape_ms * 1_000_000
    points: list[Point] = []
    append = points.append
    nan = 0
    over = {name: value for name, value in target_labels if name != "job"}
    names = frozenset(over) | {"job"}
    exported = [(name, "exported_" + name) for name in names]
    for name, tags, value, ms in samples:
        if value != value:  # NaN
            nan += 1
            continue
        if not names.isdisjoint(tags):  # a label the target sets: kept as exported_
            for label, exported_name in exported:
                own = tags.pop(label, None)
                if own:
                    tags[exported_name] = own
        tags.update(over)
        tags["__name__"] = name
        append(Point(name, tags, {"value": value}, stamp if ms is None else ms * 1_000_000,
                     db, rp))
    return points, nan


def report_points(up: bool, duration: float, scraped: int, post: int,
                  target_labels: Sequence[tuple[str, str]], scrape_ms: int, db: str,
                  rp: str) -> list[Point]:
    """Prometheus' four report samples of one scrape, as points."""
    stamp = scrape_ms * 1_000_000
    base = {name: value for name, value in target_labels if name != "job"}
    values = (1.0 if up else 0.0, duration, float(scraped), float(post))
    return [Point(name, {**base, "__name__": name}, {"value": value}, stamp, db, rp)
            for name, value in zip(REPORT_NAMES, values, strict=True)]


__all__ = ["REPORT_NAMES", "Sample", "go_bound", "go_float", "parse_samples",
           "report_points", "sample_points"]

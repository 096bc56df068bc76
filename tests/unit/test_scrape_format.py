"""The scraper's page -> points path: prometheus_client's parse brought to what
Kapacitor 1.5.7 (Prometheus' Go decoder and ruleLabelsAppender, services/scraper's
Append) makes of the same page, Go's float formatting, target labels and URLs.

KAPACITOR_POINTS was produced by kapacitord 1.5.7 scraping PAGE through a
``[[static-discovery]]`` (labels team="ops", env="") and a ``[[scraper]]``, every point
posted by a ``stream|from()|httpPost()`` task (tests/integration/test_scraper.py runs
the same through the daemon; ``python -m tests.integration.test_scraper --kapacitord
BIN`` takes it again). ``time`` says whether the point kept the sample's own timestamp
or got the scrape's; scrape_duration_seconds varies. ``inf_metric`` (+Inf) is missing
from Kapacitor's posts because its httpPost cannot write +Inf in JSON; its scraper does
make the point (only NaN is dropped).
"""

from __future__ import annotations

import math

import pytest
from kapa_plugins.discovery.scrape_format import (
    go_float,
    parse_samples,
    report_points,
    sample_points,
)
from kapa_plugins.discovery.scrape_targets import (
    TargetError,
    make_target,
    populate_labels,
    split_host_port,
)

PAGE = r'''# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3 1395066363000
# TYPE plain_counter counter
plain_counter 7
# Escaping in label values:
msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9
# Minimalistic line:
metric_without_timestamp_and_labels 12.47
nan_metric NaN
inf_metric +Inf
clash{instance="other",job="theirs",team="",env="x"} 5
# HELP rpc_duration_seconds A summary of the RPC duration in seconds.
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.01"} 3102
rpc_duration_seconds{quantile="0.5"} 4773
rpc_duration_seconds{quantile="1.0"} 76656
rpc_duration_seconds_sum 1.7560473e+07
rpc_duration_seconds_count 2693
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.05"} 24054
http_request_duration_seconds_bucket{le="1.0"} 33444
http_request_duration_seconds_bucket{le="1000000"} 100392
http_request_duration_seconds_bucket{le="0.00001"} 100392
http_request_duration_seconds_sum 53423
http_request_duration_seconds_count 144320
# TYPE no_inf histogram
no_inf_bucket{le="1"} 2
no_inf_count 3
'''  # noqa: E501 (a page line as exporters write it)
#: the static-discovery labels of the target in the Kapacitor run
GROUP_LABELS = {"team": "ops", "env": ""}
#: (measurement, tags, value, time) of every point kapacitord 1.5.7 posted for PAGE
KAPACITOR_POINTS = [('clash',
  {'__name__': 'clash',
   'env': '',
   'exported_env': 'x',
   'exported_instance': 'other',
   'exported_job': 'theirs',
   'instance': '{instance}',
   'team': 'ops'},
  5,
  'scrape'),
 ('http_request_duration_seconds_bucket',
  {'__name__': 'http_request_duration_seconds_bucket',
   'env': '',
   'instance': '{instance}',
   'le': '+Inf',
   'team': 'ops'},
  144320,
  'scrape'),
 ('http_request_duration_seconds_bucket',
  {'__name__': 'http_request_duration_seconds_bucket',
   'env': '',
   'instance': '{instance}',
   'le': '0.05',
   'team': 'ops'},
  24054,
  'scrape'),
 ('http_request_duration_seconds_bucket',
  {'__name__': 'http_request_duration_seconds_bucket',
   'env': '',
   'instance': '{instance}',
   'le': '1',
   'team': 'ops'},
  33444,
  'scrape'),
 ('http_request_duration_seconds_bucket',
  {'__name__': 'http_request_duration_seconds_bucket',
   'env': '',
   'instance': '{instance}',
   'le': '1e+06',
   'team': 'ops'},
  100392,
  'scrape'),
 ('http_request_duration_seconds_bucket',
  {'__name__': 'http_request_duration_seconds_bucket',
   'env': '',
   'instance': '{instance}',
   'le': '1e-05',
   'team': 'ops'},
  100392,
  'scrape'),
 ('http_request_duration_seconds_count',
  {'__name__': 'http_request_duration_seconds_count',
   'env': '',
   'instance': '{instance}',
   'team': 'ops'},
  144320,
  'scrape'),
 ('http_request_duration_seconds_sum',
  {'__name__': 'http_request_duration_seconds_sum',
   'env': '',
   'instance': '{instance}',
   'team': 'ops'},
  53423,
  'scrape'),
 ('http_requests_total',
  {'__name__': 'http_requests_total',
   'code': '200',
   'env': '',
   'instance': '{instance}',
   'method': 'post',
   'team': 'ops'},
  1027,
  'own'),
 ('http_requests_total',
  {'__name__': 'http_requests_total',
   'code': '400',
   'env': '',
   'instance': '{instance}',
   'method': 'post',
   'team': 'ops'},
  3,
  'own'),
 ('metric_without_timestamp_and_labels',
  {'__name__': 'metric_without_timestamp_and_labels',
   'env': '',
   'instance': '{instance}',
   'team': 'ops'},
  12.47,
  'scrape'),
 ('msdos_file_access_time_seconds',
  {'__name__': 'msdos_file_access_time_seconds',
   'env': '',
   'error': 'Cannot find file:\n"FILE.TXT"',
   'instance': '{instance}',
   'path': 'C:\\DIR\\FILE.TXT',
   'team': 'ops'},
  1458255915,
  'scrape'),
 ('no_inf_bucket',
  {'__name__': 'no_inf_bucket',
   'env': '',
   'instance': '{instance}',
   'le': '+Inf',
   'team': 'ops'},
  3,
  'scrape'),
 ('no_inf_bucket',
  {'__name__': 'no_inf_bucket',
   'env': '',
   'instance': '{instance}',
   'le': '1',
   'team': 'ops'},
  2,
  'scrape'),
 ('no_inf_count',
  {'__name__': 'no_inf_count', 'env': '', 'instance': '{instance}', 'team': 'ops'},
  3,
  'scrape'),
 ('no_inf_sum',
  {'__name__': 'no_inf_sum', 'env': '', 'instance': '{instance}', 'team': 'ops'},
  0,
  'scrape'),
 ('plain_counter',
  {'__name__': 'plain_counter', 'env': '', 'instance': '{instance}', 'team': 'ops'},
  7,
  'scrape'),
 ('rpc_duration_seconds',
  {'__name__': 'rpc_duration_seconds',
   'env': '',
   'instance': '{instance}',
   'quantile': '0.01',
   'team': 'ops'},
  3102,
  'scrape'),
 ('rpc_duration_seconds',
  {'__name__': 'rpc_duration_seconds',
   'env': '',
   'instance': '{instance}',
   'quantile': '0.5',
   'team': 'ops'},
  4773,
  'scrape'),
 ('rpc_duration_seconds',
  {'__name__': 'rpc_duration_seconds',
   'env': '',
   'instance': '{instance}',
   'quantile': '1',
   'team': 'ops'},
  76656,
  'scrape'),
 ('rpc_duration_seconds_count',
  {'__name__': 'rpc_duration_seconds_count',
   'env': '',
   'instance': '{instance}',
   'team': 'ops'},
  2693,
  'scrape'),
 ('rpc_duration_seconds_sum',
  {'__name__': 'rpc_duration_seconds_sum',
   'env': '',
   'instance': '{instance}',
   'team': 'ops'},
  17560473,
  'scrape'),
 ('scrape_duration_seconds',
  {'__name__': 'scrape_duration_seconds',
   'env': '',
   'instance': '{instance}',
   'team': 'ops'},
  None,
  'scrape'),
 ('scrape_samples_post_metric_relabeling',
  {'__name__': 'scrape_samples_post_metric_relabeling',
   'env': '',
   'instance': '{instance}',
   'team': 'ops'},
  24,
  'scrape'),
 ('scrape_samples_scraped',
  {'__name__': 'scrape_samples_scraped',
   'env': '',
   'instance': '{instance}',
   'team': 'ops'},
  24,
  'scrape'),
 ('up',
  {'__name__': 'up', 'env': '', 'instance': '{instance}', 'team': 'ops'},
  1,
  'scrape')]
#: samples on PAGE (NaN and +Inf included; the decoder's +Inf buckets and _sum added)
SCRAPED = 24


def kapacitor_points(instance: str) -> list[tuple[str, dict[str, str], float | None, str]]:
    return [(name, {k: instance if v == "{instance}" else v for k, v in tags.items()},
             value, when) for name, tags, value, when in KAPACITOR_POINTS]


def shape(points, scrape_ns: int) -> list[tuple[str, dict[str, str], float | None, str]]:
    """Points as KAPACITOR_POINTS lists them."""
    out = []
    for p in points:
        assert list(p.fields) == ["value"] and isinstance(p.fields["value"], float)
        value = None if p.name == "scrape_duration_seconds" else p.fields["value"]
        out.append((p.name, p.tags, value, "scrape" if p.time == scrape_ns else "own"))
    return sorted(out, key=lambda x: (x[0], sorted(x[1].items())))


def test_points_of_a_page_equal_kapacitors() -> None:
    target = make_target("127.0.0.1:9100", GROUP_LABELS, "http", "/metrics",
                         "prom|autogen|myscraper", {})
    samples = parse_samples(PAGE)
    assert len(samples) == SCRAPED
    scrape_ms = 1_764_000_000_123
    points, nan = sample_points(samples, target.public, scrape_ms, "prom", "autogen")
    assert nan == 1
    points += report_points(True, 0.002, len(samples), len(samples), target.public,
                            scrape_ms, "prom", "autogen")
    assert all(p.database == "prom" and p.retention_policy == "autogen" for p in points)
    got = shape(points, scrape_ms * 1_000_000)
    inf = [p for p in got if p[0] == "inf_metric"]
    assert inf == [("inf_metric", {"__name__": "inf_metric", "env": "",
                                   "instance": "127.0.0.1:9100", "team": "ops"},
                    math.inf, "scrape")]
    expected = sorted(kapacitor_points("127.0.0.1:9100"),
                      key=lambda x: (x[0], sorted(x[1].items())))
    assert [p for p in got if p[0] != "inf_metric"] == expected
    own = [p for p in points if p.name == "http_requests_total"]
    assert {p.time for p in own} == {1395066363000 * 1_000_000}


def test_scrape_time_is_milliseconds() -> None:
    target = make_target("h:1", {}, "http", "/metrics", "d|r|n", {})
    points, _ = sample_points(parse_samples("a 1\n"), target.public, 1_500, "d", "r")
    assert points[0].time == 1_500_000_000
    assert points[0].tags == {"__name__": "a", "instance": "h:1"}


def test_report_points_when_down() -> None:
    target = make_target("h:1", {"x": "y"}, "http", "/metrics", "d|r|n", {})
    points = report_points(False, 1.5, 0, 0, target.public, 7, "d", "r")
    assert [(p.name, p.fields["value"]) for p in points] == [
        ("up", 0.0), ("scrape_duration_seconds", 1.5), ("scrape_samples_scraped", 0.0),
        ("scrape_samples_post_metric_relabeling", 0.0)]
    assert points[0].tags == {"__name__": "up", "instance": "h:1", "x": "y"}
    assert points[0].time == 7_000_000


def test_counter_names_kept_as_declared() -> None:
    page = "# TYPE a counter\na 1\n# TYPE b_total counter\nb_total 2\nc_total 3\n"
    assert [s[0] for s in parse_samples(page)] == ["a", "b_total", "c_total"]


def test_escapes_and_untyped() -> None:
    page = 'x{a="q\\"uote",b="back\\\\slash",c="new\\nline"} -1.5e-3\n'
    ((name, labels, value, ts),) = parse_samples(page)
    assert (name, labels, value, ts) == ("x", {"a": 'q"uote', "b": "back\\slash",
                                               "c": "new\nline"}, -0.0015, None)


def test_summary_without_sum_and_histogram_series() -> None:
    page = ("# TYPE s summary\ns{quantile=\"0.99\",h=\"a\"} 1\ns{quantile=\"0.99\",h=\"b\"} 2\n"
            "s_count{h=\"a\"} 4\n"
            "# TYPE h histogram\nh_bucket{le=\"+Inf\",x=\"1\"} 5 1000\nh_count{x=\"1\"} 5 1000\n"
            "h_sum{x=\"1\"} 0.5 1000\n")
    got = [(n, sorted(labels.items()), v, ts) for n, labels, v, ts in parse_samples(page)]
    assert got == [
        ("s", [("h", "a"), ("quantile", "0.99")], 1.0, None),
        ("s_sum", [("h", "a")], 0.0, None),
        ("s_count", [("h", "a")], 4.0, None),
        ("s", [("h", "b"), ("quantile", "0.99")], 2.0, None),
        ("s_sum", [("h", "b")], 0.0, None),
        ("s_count", [("h", "b")], 0.0, None),
        ("h_bucket", [("le", "+Inf"), ("x", "1")], 5.0, 1000),
        ("h_sum", [("x", "1")], 0.5, 1000),
        ("h_count", [("x", "1")], 5.0, 1000),
    ]


@pytest.mark.parametrize("page", ["<html>not metrics</html>\n", "a{b=1} 2\n",
                                  "a 1 2 3 x\n", "x{a=\"1\"\n"])
def test_garbage_is_a_parse_error(page: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_samples(page)


def test_blank_page_has_no_samples() -> None:
    assert parse_samples("") == []
    assert parse_samples("# just a comment\n\n") == []


# Go's fmt.Sprint(float64), as printed by go1.19 for these values
@pytest.mark.parametrize(("value", "text"), [
    (1.0, "1"), (0.05, "0.05"), (1e6, "1e+06"), (1e-5, "1e-05"), (123456.0, "123456"),
    (1234567.0, "1.234567e+06"), (0.0001, "0.0001"), (0.00012, "0.00012"),
    (1e-7, "1e-07"), (5e5, "500000"), (-2.5e-5, "-2.5e-05"), (1e100, "1e+100"),
    (123456789.0, "1.23456789e+08"), (-0.0, "-0"), (0.0, "0"), (math.inf, "+Inf"),
    (-math.inf, "-Inf"), (2.5, "2.5"), (1e21, "1e+21"), (0.1 + 0.2, "0.30000000000000004"),
])
def test_go_float(value: float, text: str) -> None:
    assert go_float(value) == text


def test_target_url_and_hash_as_prometheus() -> None:
    # hash and URL computed by Go 1.19 with Prometheus' Target.hash() for these labels
    target = make_target("127.0.0.1:9100", {"team": "ops"}, "http", "/metrics",
                         "db|rp|name", {"x": ["a b"], "y": ["1/2"]})
    assert target.url == "http://127.0.0.1:9100/metrics?x=a+b&y=1%2F2"
    assert target.hash == 2815871768543230073
    assert target.public == (("instance", "127.0.0.1:9100"), ("job", "db|rp|name"),
                             ("team", "ops"))
    offset = target.offset(10**9, 5 * 10**9 + 1000)
    assert 0 <= offset <= 10**9
    assert offset == (1000 + target.hash % 10**9) % 10**9 or offset == 10**9


def test_populate_labels() -> None:
    labels = populate_labels("example.org", {"__meta_x": "gone", "__scheme__": "https",
                                             "__param_a": "z", "k": "v"},
                             "http", "/m", "j", {"a": ["1", "2"], "b": []})
    assert labels == {"__address__": "example.org:443", "__scheme__": "https",
                      "__metrics_path__": "/m", "__param_a": "1", "job": "j", "k": "v",
                      "instance": "example.org:443"}
    assert populate_labels("h", {"instance": "mine"}, "http", "/m", "j", {})[
        "instance"] == "mine"
    assert populate_labels("[::1]", {}, "http", "/m", "j", {})["__address__"] == "[::1]:80"
    assert populate_labels("::1", {}, "http", "/m", "j", {})["__address__"] == "::1"
    with pytest.raises(TargetError, match="not a valid hostname"):
        populate_labels("h:1/path", {}, "http", "/m", "j", {})
    with pytest.raises(TargetError, match="invalid scheme"):
        populate_labels("h", {"__scheme__": "ftp"}, "http", "/m", "j", {})


def test_params_labels_in_url() -> None:
    # the scraper's params are set over a discovered __param_ label (populateLabels)
    target = make_target("h:1", {"__param_b": "over", "__param_c": "new"}, "https",
                         "metrics", "j", {"b": ["1", "2"]})
    assert target.url == "https://h:1/metrics?b=1&b=2&c=new"


def test_split_host_port() -> None:
    assert split_host_port("a:1") == ("a", "1")
    assert split_host_port("[::1]:80") == ("::1", "80")
    for bad in ("a", "a:b:c", "[::1]", "[::1"):
        with pytest.raises(ValueError, match="address"):
            split_host_port(bad)


# -- pages decoded by Prometheus' Go decoder (expfmt.SampleDecoder, text format, as
# vendored by Kapacitor 1.5.7; go1.19, default time 42 ms): (page, samples as (name,
# labels, value or "NaN"/"+Inf"/"-Inf", ms), Go's error). Taken with a small Go program
# over vendor/github.com/prometheus/common/expfmt.
GO_PAGES = [('# HELP h The help, with \\\\ and \\n escapes.\n'
  '# TYPE h histogram\n'
  'h_bucket{le="0.1",x="a"} 1\n'
  'h_bucket{le="1e3",x="a"} 2\n'
  'h_bucket{le="1.0E2",x="a"} 2\n'
  'h_bucket{le="+Inf",x="a"} 3\n'
  'h_sum{x="a"} 7.5\n'
  'h_count{x="a"} 3\n'
  'h_bucket{le="0.25",x="b"} 4 1500\n'
  'h_count{x="b"} 4 1500\n',
  [('h_bucket', {'le': '+Inf', 'x': 'a'}, 3.0, 42),
   ('h_bucket', {'le': '+Inf', 'x': 'b'}, 4.0, 1500),
   ('h_bucket', {'le': '0.1', 'x': 'a'}, 1.0, 42),
   ('h_bucket', {'le': '0.25', 'x': 'b'}, 4.0, 1500),
   ('h_bucket', {'le': '100', 'x': 'a'}, 2.0, 42),
   ('h_bucket', {'le': '1000', 'x': 'a'}, 2.0, 42),
   ('h_count', {'x': 'a'}, 3.0, 42),
   ('h_count', {'x': 'b'}, 4.0, 1500),
   ('h_sum', {'x': 'a'}, 7.5, 42),
   ('h_sum', {'x': 'b'}, 0.0, 1500)],
  ''),
 ('# TYPE s summary\ns{quantile="0.999"} 1\ns{quantile="0.50"} 2\ns_sum 3\ns_count 4\n',
  [('s', {'quantile': '0.5'}, 2.0, 42),
   ('s', {'quantile': '0.999'}, 1.0, 42),
   ('s_count', {}, 4.0, 42),
   ('s_sum', {}, 3.0, 42)],
  ''),
 ('# TYPE c counter\n'
  'c{a=""} 1\n'
  '# TYPE d_total counter\n'
  'd_total 2\n'
  'u 3\n'
  'u{k="v"} -Inf\n'
  '\n'
  '# a comment\n'
  'v\t4\t99\n'
  'w{a="x\\\\y",b="\\"q\\"",c="l\\nm"} 5\n'
  'z{a="ü"} 1e-7\n',
  [('c', {'a': ''}, 1.0, 42),
   ('d_total', {}, 2.0, 42),
   ('u', {'k': 'v'}, '-Inf', 42),
   ('u', {}, 3.0, 42),
   ('v', {}, 4.0, 99),
   ('w', {'a': 'x\\y', 'b': '"q"', 'c': 'l\nm'}, 5.0, 42),
   ('z', {'a': 'ü'}, 1e-07, 42)],
  ''),
 ('a{x="1",x="2"} 1\n', [('a', {'x': '2'}, 1.0, 42)], ''),
 ('# TYPE g gauge\ng 1\n# TYPE g gauge\ng 2\n',
  [],
  'text format parsing error in line 3: second TYPE line for metric name "g", or TYPE '
  'reported after samples'),
 ('g 1\ng 2\n', [('g', {}, 1.0, 42), ('g', {}, 2.0, 42)], ''),
 ('a 1\n# TYPE a gauge\n',
  [],
  'text format parsing error in line 2: second TYPE line for metric name "a", or TYPE '
  'reported after samples'),
 ('not a valid page at all\n',
  [],
  'text format parsing error in line 1: expected float as value, got "a"'),
 ('h_bucket{le="x"} 1\n# TYPE h histogram\n', [('h_bucket', {'le': 'x'}, 1.0, 42)], ''),
 ('# TYPE h histogram\nh_bucket 1\n',
  [('h_bucket', {'le': '+Inf'}, 0.0, 42), ('h_count', {}, 0.0, 42), ('h_sum', {}, 0.0, 42)],
  ''),
 ('m{a="1",} 5\n', [('m', {'a': '1'}, 5.0, 42)], ''),
 ('m 1 2 3\n',
  [],
  'text format parsing error in line 1: spurious string after timestamp: " 3"'),
 ('m NaN\nn +Inf\n', [('m', {}, 'NaN', 42), ('n', {}, '+Inf', 42)], '')]
#: pages where prometheus_client and Go's parser disagree, kept as they are (docs say so):
#: a repeated label name (Go keeps the last value; the Python parser refuses the line),
#: a TYPE line after its samples and a second field after the timestamp (Go refuses
#: the page; the Python parser reads it)
PARSERS_DIFFER = {3, 6, 11}


def comparable(value: float | str) -> float | str:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    return value


@pytest.mark.parametrize("index", range(len(GO_PAGES)))
def test_pages_decode_as_go_decodes_them(index: int) -> None:
    page, samples, err = GO_PAGES[index]
    try:
        got = [(name, dict(sorted(labels.items())), comparable(value),
                42 if ms is None else ms) for name, labels, value, ms in parse_samples(page)]
        mine = ""
    except ValueError as exc:
        got, mine = [], str(exc)
    key = repr
    same = (sorted(got, key=key) == sorted(samples, key=key)) and bool(mine) == bool(err)
    assert same != (index in PARSERS_DIFFER), (got, mine, samples, err)

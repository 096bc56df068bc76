"""List patterns: Go's path.Match syntax, matched in linear time."""

from __future__ import annotations

import time

import pytest

from kapa_core.glob import GlobError, compile_glob, filter_names

# (pattern, name, matches) — the cases of Go's path.Match documentation and tests
CASES = [
    ("abc", "abc", True), ("*", "abc", True), ("*c", "abc", True), ("a*", "a", True),
    ("a*", "abc", True), ("a*", "ab/c", False), ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False), ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True), ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False), ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False), ("ab[c]", "abc", True),
    ("ab[b-d]", "abc", True), ("ab[e-g]", "abc", False), ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abc", False), ("ab[^e-g]", "abc", True), ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False), ("a?b", "a☺b", True), ("a[^a]b", "a☺b", True),
    ("a???b", "a☺b", False), ("a[^a][^a][^a]b", "a☺b", False), ("[a-ζ]*", "α", True),
    ("*[a-ζ]", "A", False), ("a?b", "a/b", False), ("a*b", "a/b", False),
    ("[\\]a]", "]", True), ("[\\-]", "-", True), ("[x\\-]", "x", True),
    ("[x\\-]", "-", True), ("[x\\-]", "z", False), ("[\\-x]", "x", True),
    ("[\\-x]", "-", True), ("[\\-x]", "a", False), ("*x", "xxx", True),
    ("cpu_*", "cpu_alert", True), ("cpu_*", "mem_alert", False),
]
BAD = ["[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a[", "[z-a]"]


@pytest.mark.parametrize(("pattern", "name", "expected"), CASES)
def test_go_path_match_semantics(pattern: str, name: str, expected: bool) -> None:
    assert compile_glob(pattern)(name) is expected


@pytest.mark.parametrize("pattern", BAD)
def test_malformed_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(GlobError, match="syntax error in pattern"):
        compile_glob(pattern)
    assert filter_names(["a", "b"], pattern) == []  # listing: nothing matches


def test_empty_pattern_lists_everything() -> None:
    assert filter_names(["b", "a"], "") == ["b", "a"]


def test_star_heavy_patterns_stay_fast() -> None:
    # A backtracking matcher needs seconds (35 stars) to hours (5,000 stars) for these;
    # the limit below is a hang detector, far above the milliseconds they take.
    cases = [("*" * 35 + "x", "a" * 60), ("*" * 5000 + "x", "a" * 200),
             ("*a" * 7 + "b", "a" * 200), ("*a" * 500 + "b", "a" * 1000)]
    started = time.monotonic()
    for pattern, name in cases:
        assert compile_glob(pattern)(name) is False
    assert time.monotonic() - started < 2.0


def test_overlong_patterns_are_refused() -> None:
    with pytest.raises(GlobError, match="longer than"):
        compile_glob("a" * 5000)
    assert compile_glob("*" * 100_000)("anything")  # a run of stars is one element

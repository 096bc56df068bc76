"""The compiled line-protocol fast path gives exactly what the pure-Python parser gives.

Differential: hypothesis makes bodies (from an alphabet that reaches every rule, and
line-shaped ones with values at every limit) and each is parsed by ``parse_pure`` and by
the compiled path, whole and in pieces; points must match in value, field types, tag
order and every slot, errors in line, text and reason. Then what only the compiled path
has: shared series objects, the GIL-free ``check``, the guards around ``setup`` and
``scan``, and the environment switch.
"""

from __future__ import annotations

import ctypes
import gc
import mmap
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kapa_core.models import lineprotocol
from kapa_core.models.lineprotocol import (
    MAX_TIME,
    MIN_TIME,
    ParseResult,
    check,
    parse,
    parse_pure,
    parse_range,
    pieces,
)
from kapa_core.models.point import Point

pytestmark = pytest.mark.skipif(not lineprotocol.COMPILED,
                                reason=f"compiled path off: {lineprotocol.implementation()}")

PRECISIONS = ["n", "ns", "u", "µ", "ms", "s", "m", "h", ""]
SCALES = {"n": 1, "ns": 1, "u": 10**3, "µ": 10**3, "ms": 10**6, "s": 10**9,
          "m": 60 * 10**9, "h": 3600 * 10**9, "": 1}


def assert_same(compiled: ParseResult, pure: ParseResult) -> None:
    """Equal results, down to field types, tag order and every slot of every point."""
    assert compiled.errors == pure.errors
    assert compiled.bad_lines == pure.bad_lines
    assert len(compiled.points) == len(pure.points)
    for c, p in zip(compiled.points, pure.points, strict=True):
        assert type(c) is Point
        assert c == p
        assert (c.name, c.time, c.database, c.retention_policy) == \
            (p.name, p.time, p.database, p.retention_policy)
        assert type(c.time) is int and type(c.name) is str
        assert list(c.tags.items()) == list(p.tags.items())
        assert list(c.fields) == list(p.fields)
        assert [type(v) for v in c.fields.values()] == [type(v) for v in p.fields.values()]
        assert c.group == "" and c.dims == ()


def both(body: bytes, **kwargs: object) -> ParseResult:
    """Parse with both paths, check they agree, return the result."""
    kwargs.setdefault("now_ns", 1_700_000_000_123_456_789)
    compiled = parse(body, **kwargs)  # type: ignore[arg-type]  # test helper: kwargs of parse
    pure = parse_pure(body, **kwargs)  # type: ignore[arg-type]  # the same
    assert_same(compiled, pure)
    return compiled


# -- hypothesis: bodies from an alphabet that reaches every rule ---------------------------

TOKENS = [b"m", b"cpu", b"a", b"b", b"x", b"0", b"1", b"7", b"9", b",", b"=", b'"', b"\\",
          b"#", b"-", b".", b"e", b"E", b"i", b"u", b"t", b"f", b"T", b"F", b"_", b"n",
          b"a", b" ", b"  ", b"\t", b"\r", b"\n", b"\n", b"\n", b"\0", b"+",
          b"true", b"FALSE", b"nan", b"inf", b"1e309", b"1e308", b"1.5", b"-0", b"9" * 20,
          b"9223372036854775807", b"9223372036854775808", b"18446744073709551615",
          b"18446744073709551616", "é".encode(), "€".encode(), "\u00a0".encode(),
          "😀".encode(), b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
          b"\xe0\x80\x80", b"\xc0\xaf", b"m v=1 1\n", b"m,t=a v=2i,w=t 5\n", b"v=", b"i,"]

alphabet_bodies = st.lists(st.sampled_from(TOKENS), max_size=40).map(b"".join)


@settings(max_examples=4000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=alphabet_bodies, precision=st.sampled_from(PRECISIONS),
       max_errors=st.sampled_from([None, 0, 1, 3]))
def test_alphabet_bodies_parse_alike(body: bytes, precision: str,
                                     max_errors: int | None) -> None:
    both(body, precision=precision, max_errors=max_errors, database="db",
         retention_policy="rp")


# -- hypothesis: line-shaped bodies with values at the limits -------------------------------

INT_EDGES = [0, 1, -1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, 10**20,
             10**21]
FLOAT_TEXTS = ["1", "-1", "1.5", ".5", "5.", "-.5", "1e3", "1E-3", "1e+3", "1e308", "1e309",
               "1.7976931348623157e308", "1.8e308", "-1e309", "9e307", "99e306", "1e-400",
               "0e999", "0.0001e311", "00000000001", "1_0", "nan", "-inf", "1.2.3", "1e",
               "-", ".", "1" * 70, "0." + "0" * 70 + "1", "123456789012345678901234567890"]
BOOLS = ["t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE", "tRUE", "yes"]
GOOD_KEYS = ["a", "b", "c", "host", "é", "v", "region", "ü_x"]
ODD_KEYS = ["x y", "k\t", "\tk", "\0k", "", "a=b", "k\\", "#"]


def mostly(good: list[str], odd: list[str]) -> st.SearchStrategy[str]:
    """Mostly well-formed (so the compiled path reads most lines), one time in 20 not."""
    return st.integers(0, 19).flatmap(
        lambda k: st.sampled_from(odd if k == 0 else good))


def value_text() -> st.SearchStrategy[str]:
    edges = st.sampled_from(INT_EDGES)
    ints = st.integers(0, 4).flatmap(
        lambda k: edges if k == 0 else st.integers(-(2**63), 2**63 - 1))
    uints = st.integers(0, 4).flatmap(lambda k: edges if k == 0 else st.integers(0, 2**64 - 1))
    good = st.one_of(
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.integers(-(10**30), 10**30).map(str), ints.map(lambda n: f"{n}i"),
        uints.map(lambda n: f"{n}u"), st.sampled_from(BOOLS[:10]),
        st.text(st.characters(blacklist_characters='"\\\n', codec="utf-8"), max_size=8).map(
            lambda t: f'"{t}"'))
    odd = st.one_of(st.sampled_from(FLOAT_TEXTS), st.sampled_from(BOOLS[10:]),
                    st.sampled_from(['"x\\"y"', '"a\\\\"', '"open', 'a"b"', '"a""b"',
                                     '"a"b', '"a"xk=1', '"a\nb"', "1x", "+1"]))
    return st.integers(0, 9).flatmap(lambda k: odd if k == 0 else good)


def timestamp_text(scale: int) -> st.SearchStrategy[str]:
    edges = [MIN_TIME, MAX_TIME, MIN_TIME // scale, MAX_TIME // scale, -(MIN_TIME // scale)]
    near = [e + d for e in edges for d in (-1, 0, 1)] + [0, 2**63, -(2**63), 2**64]
    odd = st.one_of(st.sampled_from(near).map(str), st.integers(-(2**70), 2**70).map(str),
                    st.sampled_from(["-0", "007", "", "-", "1.5", "12a"]))
    good = st.integers(MIN_TIME // scale, MAX_TIME // scale).map(str)
    return st.integers(0, 4).flatmap(lambda k: odd if k == 0 else good)


@st.composite
def line_shaped(draw: st.DrawFn) -> tuple[bytes, str]:
    precision = draw(st.sampled_from(PRECISIONS))
    lines = []
    for _ in range(draw(st.integers(1, 6))):
        key = draw(mostly(["m", "cpu", "é€", "m_1"], ["m=x", "#c", ",m", "", "m\0",
                                                      "  m", "\t\0m", " #c", " "]))
        for _ in range(draw(st.integers(0, 3))):
            key += f",{draw(mostly(GOOD_KEYS, ODD_KEYS))}=" \
                   f"{draw(mostly(['1', 'v', 'ü', 'h-1.x'], ['', '=', 'a b']))}"
        fields = ",".join(f"{draw(mostly(GOOD_KEYS, ODD_KEYS))}={draw(value_text())}"
                          for _ in range(draw(st.integers(1, 4))))
        line = f"{key}{draw(mostly([' '], ['  ', chr(9), ' ' + chr(0)]))}{fields}"
        if draw(st.booleans()):
            line += draw(mostly([" "], ["  ", "\t", " \t"])) + \
                draw(timestamp_text(SCALES[precision]))
        line += draw(mostly([""], ["\r", " "]))
        lines.append(line)
    body = draw(mostly(["\n"], ["\r\n", "\n\n"])).join(lines)
    return (body + draw(st.sampled_from(["", "\n"]))).encode(), precision


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=line_shaped())
def test_line_shaped_bodies_parse_alike(case: tuple[bytes, str]) -> None:
    body, precision = case
    both(body, precision=precision)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.one_of(line_shaped(), alphabet_bodies.map(lambda b: (b, "n"))),
       size=st.integers(1, 40), kind=st.sampled_from([bytes, bytearray, memoryview]))
def test_pieces_and_check_agree_with_the_whole(case: tuple[bytes, str], size: int,
                                               kind: type) -> None:
    body, precision = case
    whole = both(body, precision=precision)
    data = kind(body)
    for start, end, first in pieces(body, size):
        compiled = parse_range(data, start, end, precision=precision, now_ns=7,
                               first_line=first, database="d")
        pure = parse_pure(body[start:end], precision=precision, now_ns=7, first_line=first,
                          database="d")
        assert_same(compiled, pure)
        offset = check(data, start, end, precision=precision)
        if pure.bad_lines:
            assert body.count(b"\n", 0, offset) + 1 == pure.errors[0].line
        else:
            assert offset == -1
    offset = check(data, precision=precision)
    assert (offset == -1) == (whole.bad_lines == 0)


# -- examples ----------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    b"", b"\n", b"\n\n\n", b"m v=1", b"m v=1\n", b"m v=1 1\r\n", b"m v=1\r", b"\r\n",
    b"\0", b"m v=1\0", b"m\0 v=1", b"  m v=1", b"\tm v=1", b"# c\nm v=1", b'# "\nm v=1"\n',
    b"# \\\nm v=1", b"m v=1 1\\", b"m,a=1,b=2,a=3 v=1", b"m,b=1,a=2,c=3 v=1,v=2i,w=t 9",
    b"m v=1,v=2", b"m v=1i,v=2u", b"m v=9223372036854775807i,w=-9223372036854775808i",
    b"m v=18446744073709551615u", b"m v=18446744073709551616u",
    b"m v=1 9223372036854775806", b"m v=1 9223372036854775807", b"m v=1 -9223372036854775806",
    b"m v=1 -9223372036854775807", b"m \xc3\xa9=1 1", b"m\xff v=1", b"m v=1e308,w=1e309",
    b"m v=-0,w=-0.0,x=.0,y=0.", b"m v=1 -0", b"m v=1 007", b"m=x v=1", b",m v=1",
    b"m, v=1", b"m,a v=1", b"m,a= v=1", b"m,=a v=1", b"m v=", b"m =1", b"m v=1,", b"m v",
    b"m v=1  1", b"m v=1 1 ", b"m  v=1", b"m v=1 1 2", b"m v=1\n\xff\nm v=2",
    b'm s="a"xk=1', b'm s="a"b', b'm s="a""b"', b'm s="a" 5', b'm s="a",t="" 5',
    b'm s="\xc3\xa9 \xff" 5', b'm s="a\\"b" 5', b'm s="open\nm v=1 2\n',
])
def test_edge_bodies(body: bytes) -> None:
    for precision in ("n", "s", "h"):
        both(body, precision=precision)


def test_very_long_lines() -> None:
    key = b"k" * 70_000
    both(b"m " + key + b"=1 1\nm v=1 2\n")  # a field key past 64 KiB
    both(b"m," + key + b"=v x=1 1\nm v=1 2\n")  # a series key past the long-key limit
    body = b"m " + b",".join(b"f%d=%di" % (i, i) for i in range(10_000)) + b" 5\n"
    assert len(body) > 65536
    assert len(both(body).points[0].fields) == 10_000  # more fields than C reads: Python


def test_nothing_past_the_end_is_read() -> None:
    """A body cut anywhere parses as the bytes before the cut; and a body ending right
    before a page the process may not read (a read past its end would crash) parses."""
    body = b'm,t=a v=1.5,s="x y",i=3i,b=true 12345\n# c\ncpu v=-2.5e3 9\n\nm v=1'
    for k in range(len(body) + 1):
        assert_same(parse_range(body, 0, k, now_ns=3), parse_pure(body[:k], now_ns=3))
        assert check(body, 0, k) == check(body[:k])
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    page = mmap.PAGESIZE
    region = mmap.mmap(-1, 2 * page)
    anchor = ctypes.c_char.from_buffer(region)
    guard = ctypes.addressof(anchor) + page
    assert libc.mprotect(guard, page, 0) == 0  # PROT_NONE
    try:
        for piece in (body, b"m v=1", b"m v=12i", b"m v=1 1", b'm s="ab"', b"#", b"m"):
            start = page - len(piece)
            region[start:page] = piece
            with memoryview(region) as view, view[start:page] as data:
                assert_same(parse_range(data, now_ns=3), parse_pure(piece, now_ns=3))
                assert check(data) == check(piece)
    finally:
        assert libc.mprotect(guard, page, 3) == 0  # PROT_READ | PROT_WRITE
        del anchor
        region.close()


def test_a_memoryview_of_wider_items_is_read_by_byte() -> None:
    body = b"m v=1 1\nm v=2 2\n"  # 16 bytes: four 4-byte items, or a 2 x 8 view
    for view in (memoryview(body).cast("I"), memoryview(body).cast("B", (2, 8))):
        assert_same(parse_range(view, now_ns=0), parse_pure(body, now_ns=0))
        assert_same(parse_range(view, 8, 16, now_ns=0), parse_pure(body[8:], now_ns=0))
        assert check(view) == -1


def test_ten_million_lines_are_checked_without_points() -> None:
    body = b"m v=1 1\n" * 10_000_000
    assert check(body) == -1
    assert check(body + b"bad\n") == len(body)


def test_every_line_shape_of_a_realistic_body() -> None:
    body = "\n".join(
        f'cpu,host=h{i % 7},region=r{i % 3} usage={i / 7},n={i}i,up=true,note="ok {i}" '
        f"{1_600_000_000 + i}" for i in range(300)).encode()
    result = both(body, precision="s")
    assert len(result.points) == 300


def test_str_bodies_take_the_same_path() -> None:
    text = "m,t=é v=1 1\nm v=\udcff 2\nm v=2 3\n"  # a lone surrogate: pure Python decides
    assert_same(parse(text, now_ns=0), parse_pure(text, now_ns=0))
    assert_same(parse("m v=1 1", now_ns=0), parse_pure("m v=1 1", now_ns=0))


# -- what only the compiled path does --------------------------------------------------------

def test_points_of_one_series_share_name_tags_and_field_keys() -> None:
    body = (b"cpu,host=a,dc=x v=1,w=2i 1700000000000000001\n"
            b"cpu,host=b v=3 1700000000000000001\n"
            b"cpu,host=a,dc=x v=4,w=5i 1700000000000000002\n")
    p1, p2, p3 = parse(body).points
    assert p1.tags is p3.tags and p1.name is p3.name
    assert p1.time is p2.time  # one batch's timestamp, one int
    assert list(p1.tags) == ["dc", "host"]
    k1, k3 = list(p1.fields), list(p3.fields)
    assert k1[0] is k3[0] and k1[1] is k3[1]
    p4 = parse(body).points[0]  # the cache outlives one parse
    assert p4.tags is p1.tags
    pure = parse_pure(body).points
    assert pure[0].tags is not pure[2].tags


def test_parsed_points_are_left_out_of_the_cyclic_collector() -> None:
    compiled, line_for_python = parse(b"m,h=a v=1,s=\"x\" 1\nm,h=a\\ b v=2 2\n").points
    assert not gc.is_tracked(compiled)  # the collector never walks a body's points
    assert gc.is_tracked(line_for_python)  # made by Point(): tracked, as any object
    assert compiled.fields == {"v": 1.0, "s": "x"} and compiled.tags == {"h": "a"}
    del line_for_python
    gc.collect()  # and nothing is lost or freed early by it
    assert compiled.fields["s"] == "x" and compiled.time == 1


def test_series_cache_stays_bounded() -> None:
    body = b"".join(b"m,s=%d v=1 1\n" % i for i in range(100_010))
    assert len(parse(body).points) == 100_010
    assert len(lineprotocol._SERIES) <= 100_000


def test_every_slot_of_a_point_is_set() -> None:
    (point,) = parse(b"m v=1", database="db", retention_policy="rp", now_ns=5).points
    for name in Point.__slots__:
        getattr(point, name)
    assert (point.database, point.retention_policy, point.time) == ("db", "rp", 5)


def test_setup_refuses_a_class_it_cannot_fill() -> None:
    from kapa_core.models import _lineparse

    class Fewer:
        __slots__ = ("name", "tags", "fields", "time", "database", "retention_policy",
                     "group")

    class WithDict:  # eight attributes but a __dict__, not slots
        name = tags = fields = time = database = retention_policy = group = dims = None

    class Readonly:
        __slots__ = ("a", "b", "c", "d", "e", "f", "g", "h")
        name = tags = fields = time = database = retention_policy = group = dims = 1

    for cls in (Fewer, WithDict, Readonly, int):
        with pytest.raises(TypeError):
            _lineparse.setup(cls, {}, {})  # type: ignore[arg-type]  # wrong on purpose
    # the module still works with the real Point after the refusals
    assert parse(b"m v=1 1").points[0].time == 1


def test_scan_refuses_a_bad_range_and_bad_arguments() -> None:
    from kapa_core.models import _lineparse
    with pytest.raises(ValueError, match="outside a body of 3 bytes"):
        _lineparse.scan(b"m v", 0, 4, 1, 0, "", "", None)
    with pytest.raises(ValueError, match="outside"):
        _lineparse.scan(b"m v", 2, 1, 1, 0, "", "", None)
    with pytest.raises(ValueError, match="scale"):
        _lineparse.scan(b"m v", 0, 3, 0, 0, "", "", None)
    with pytest.raises(TypeError):
        _lineparse.scan("m v=1", 0, 5, 1, 0, "", "", None)  # type: ignore[arg-type]  # str
    with pytest.raises(TypeError):
        _lineparse.scan(b"m v=1", 0, 5, 1, 0, "", "", ())  # type: ignore[arg-type]  # tuple
    assert _lineparse.line_end(b"ab\ncd", 0, 5) == 2
    assert _lineparse.line_end(b"ab\ncd", 3, 5) == 5
    assert _lineparse.line_end(b"", 0, 0) == 0


def test_check_releases_the_gil() -> None:
    """While a worker thread checks a body, this thread goes on running Python code."""
    body = b"m v=1 1\n" * 4_000_000
    window: list[float] = []
    done = threading.Event()

    def work() -> None:
        window.append(time.perf_counter())
        assert check(body) == -1
        window.append(time.perf_counter())
        done.set()

    stamps = []
    old = sys.getswitchinterval()
    sys.setswitchinterval(2.0)  # a thread holding the GIL would keep it for the whole check
    try:
        worker = threading.Thread(target=work)
        worker.start()
        spins = 0
        while not done.is_set():
            spins += 1
            if spins % 1000 == 0:
                stamps.append(time.perf_counter())
        worker.join()
    finally:
        sys.setswitchinterval(old)
    started, ended = window
    assert sum(started < t < ended for t in stamps) > 20


def test_pure_python_is_chosen_by_the_environment() -> None:
    code = ("from kapa_core.models import lineprotocol as lp; "
            "print(lp.COMPILED, lp.implementation())")
    for value, expected in (("1", "False pure Python (KAPA_CORE_PURE_PYTHON=1)"),
                            ("yes", "False pure Python (KAPA_CORE_PURE_PYTHON=yes)"),
                            ("0", "True compiled"), ("", "True compiled")):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={"KAPA_CORE_PURE_PYTHON": value, "PATH": "/usr/bin"},
                             check=True)
        assert out.stdout.strip() == expected

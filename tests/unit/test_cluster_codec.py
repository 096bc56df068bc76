"""Points on the cluster's stream: subject tokens and message bodies round-trip."""

from __future__ import annotations

import msgpack  # type: ignore[import-untyped]  # msgpack ships no types
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kapa_core.cluster import codec
from kapa_core.models.point import Point

NAMES = st.text(max_size=12)
FIELDS = st.dictionaries(st.text(min_size=1, max_size=6), st.one_of(
    st.floats(allow_nan=False), st.integers(-2**63, 2**63 - 1), st.text(max_size=8),
    st.booleans()), min_size=1, max_size=4)


@given(NAMES)
def test_tokens_round_trip_and_are_one_subject_token(name: str) -> None:
    token = codec.token(name)
    assert codec.untoken(token) == name
    assert token and not any(c in token for c in ".*> \t\n\r")


def test_tokens_keep_plain_names() -> None:
    assert codec.token("telegraf") == "telegraf"
    assert codec.token("my.db") == "my%2Edb"
    assert codec.token("") == "%"
    assert codec.token("50%") == "50%25"
    assert codec.subject("prod", "my.db", "", "cpu load") == "prod.points.my%2Edb.%.cpu%20load"
    assert codec.dbrp_filter("prod", "db", "rp") == "prod.points.db.rp.>"


@given(st.lists(st.tuples(st.integers(-2**62, 2**62), st.dictionaries(
    st.text(min_size=1, max_size=5), st.text(max_size=5), max_size=3), FIELDS),
    min_size=1, max_size=20), NAMES, NAMES, NAMES)
def test_bodies_round_trip(rows: list, db: str, rp: str, name: str) -> None:
    points = [Point(name, tags, fields, time, db, rp) for time, tags, fields in rows]
    back = codec.decode(codec.encode(points))
    assert back == points
    for a, b in zip(back, points, strict=True):  # types too: 1 stays int, 1.0 float
        assert {k: type(v) for k, v in a.fields.items()} == \
            {k: type(v) for k, v in b.fields.items()}
        assert (a.database, a.retention_policy, a.name) == (db, rp, name)


def test_split_groups_each_measurement_in_its_order() -> None:
    p = [Point("cpu", {}, {"v": 1}, 1, "db", "rp"), Point("cpu", {}, {"v": 2}, 2, "db", "rp"),
         Point("mem", {}, {"v": 3}, 3, "db", "rp"), Point("cpu", {}, {"v": 4}, 4, "db", "rp"),
         Point("cpu", {}, {"v": 5}, 5, "db", "other")]
    assert [[q.fields["v"] for q in run] for run in codec.split(p)] == [[1, 2, 4], [3], [5]]


@pytest.mark.parametrize("body", [b"", b"\xc1", msgpack.packb([2, "a", "b", "c", []]),
                                  msgpack.packb({"a": 1}), msgpack.packb([1, "a", "b"])])
def test_bad_bodies_are_a_clear_error(body: bytes) -> None:
    with pytest.raises(codec.CodecError):
        codec.decode(body)

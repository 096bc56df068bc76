"""Recording files as Kapacitor 1.5.7 writes and reads them (kapa_core.models.recordfile):
points in line protocol as its PointMessage.Bytes writes them, batches as Go's JSON
encoder writes them, read back as its replay reads them."""

from __future__ import annotations

import gzip
import zipfile

import pytest

from kapa_core.models.batch import Batch, BatchPoint
from kapa_core.models.gojson import plain_float
from kapa_core.models.point import Point
from kapa_core.models.recordfile import (
    RecordingFileError,
    RecordingOpenError,
    batch_json,
    batches_archive,
    decode_batches,
    point_line,
    read_batches,
    read_stream,
    write_stream,
)

S = 1_000_000_000


@pytest.mark.parametrize(("value", "text"), [
    (1.0, "1"), (-0.0, "-0"), (1.5, "1.5"), (1e21, "1000000000000000000000"),
    (1e-7, "0.0000001"), (123456789.125, "123456789.125"), (0.1, "0.1"),
    (2.5e-5, "0.000025"), (1.7976931348623157e308, "17976931348623157" + "0" * 292),
])
def test_floats_are_written_in_full_as_go_formats_them(value, text) -> None:
    assert plain_float(value) == text


def test_point_lines_sort_tags_and_fields_and_escape() -> None:
    point = Point("c p,u", {"z": "1", "a b": "x=y,z", "empty": ""},
                  {"v": 2.0, "n": -3, "s": 'say "\\hi"', "ok": False, "f k": 1e21},
                  31536000 * S + 5)
    assert point_line(point) == (
        'c\\ p\\,u,a\\ b=x\\=y\\,z,z=1 f\\ k=1000000000000000000000,n=-3i,ok=false,'
        's="say \\"\\\\hi\\"",v=2 31536000000000005')


def test_stream_files_round_trip(tmp_path) -> None:
    points = [Point("cpu", {"host": "a"}, {"v": 1.5, "n": 2, "s": "x y", "b": True},
                    31536000 * S, "db", "rp"),
              Point("mem", {}, {"v": 1e-7}, 31536001 * S, "other", "autogen")]
    write_stream(tmp_path / "r.srpl", points)
    text = gzip.decompress((tmp_path / "r.srpl").read_bytes()).decode()
    assert text == ('db\nrp\ncpu,host=a b=true,n=2i,s="x y",v=1.5 31536000000000000\n'
                    'other\nautogen\nmem v=0.0000001 31536001000000000\n')
    assert list(read_stream(tmp_path / "r.srpl")) == points


def test_broken_stream_files(tmp_path) -> None:
    (tmp_path / "zip.srpl").write_bytes(batches_archive(["{}"]))
    with pytest.raises(RecordingOpenError, match="gzip: invalid header"):
        list(read_stream(tmp_path / "zip.srpl"))
    (tmp_path / "short.srpl").write_bytes(gzip.compress(b"db\nrp\n"))
    with pytest.raises(RecordingFileError, match="expected another line"):
        list(read_stream(tmp_path / "short.srpl"))


def test_batches_are_written_as_go_encodes_them() -> None:
    batch = Batch("cpu", "cpu\nhost=a", {"host": "a"}, ("host",), True, 31536010 * S,
                  [BatchPoint(31536000 * S + 500_000_000, {"v": 2.0, "s": "<>"},
                              {"host": "a"})])
    assert batch_json(batch) == (
        '{"name":"cpu","tmax":"1971-01-01T00:00:10Z","group":"cpu\\nhost=a",'
        '"byname":true,"tags":{"host":"a"},"points":[{"fields":{"s":"\\u003c\\u003e",'
        '"v":2},"tags":{"host":"a"},"time":"1971-01-01T00:00:00.5Z"}]}\n')


def test_batches_are_read_as_kapacitor_replays_them() -> None:
    text = ('{"name":"cpu","tags":{"host":"a"},"byname":true,\n "points":[{"fields":'
            '{"v":1,"s":"x"},"time":"2015-10-30T17:14:12Z"}]}\n'
            '{"name":"cpu","tmax":"2015-10-30T17:14:20Z"}\n'
            '{"name":"mem","points":[{"fields":{"v":2.5},"tags":{"k":"v"},'
            '"time":"2015-10-30T17:14:13.25Z"}]}')
    first, second = decode_batches(text)  # the batch without points is skipped
    assert (first.name, first.tags, first.by_name, first.group) == (
        "cpu", {"host": "a"}, True, "cpu\nhost=a")
    point = first.points[0]
    assert point.fields == {"v": 1.0, "s": "x"} and type(point.fields["v"]) is float
    assert point.tags == {"host": "a"}  # a point without tags takes the batch's
    assert second.group == "" and second.points[0].tags == {"k": "v"}
    assert second.points[0].time % S == 250_000_000


def test_batch_archives_keep_their_entry_order(tmp_path) -> None:
    path = tmp_path / "r.brpl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("1", '{"name":"b","points":[{"fields":{"v":1},'
                              '"time":"1971-01-01T00:00:00Z"}]}\n')
        archive.writestr("0", "")
    sources = read_batches(path)
    assert [len(s) for s in sources] == [1, 0] and sources[0][0].name == "b"
    (tmp_path / "gz.brpl").write_bytes(gzip.compress(b"x"))
    with pytest.raises(RecordingOpenError, match="zip: not a valid zip file"):
        read_batches(tmp_path / "gz.brpl")

"""The sideload node: fields and tags looked up in files named by the point's tags."""

from __future__ import annotations

from pathlib import Path

from kapa_core.testing import run_script


def script(directory: Path, extra: str = "") -> str:
    return (f"stream|from()|sideload().source('file://{directory}')"
            ".order('hosts/{{.host}}.yml', 'default.yml')"
            f".field('threshold', 0.0).tag('team', 'none'){extra}")


def files(tmp_path: Path) -> Path:
    (tmp_path / "hosts").mkdir()
    (tmp_path / "hosts" / "a.yml").write_text("threshold: 42.5\nteam: web\n")
    (tmp_path / "default.yml").write_text("threshold: 10\n")
    return tmp_path


def test_first_file_with_the_key_wins(tmp_path: Path) -> None:
    run = run_script(script(files(tmp_path)), "cpu,host=a v=1 0\ncpu,host=b v=1 1")
    got = [(p.tags["host"], p.fields["threshold"], p.tags["team"])
           for p in run.points("sideload")]
    assert got == [("a", 42.5, "web"), ("b", 10.0, "none")]


def test_a_missing_directory_refuses_the_start(tmp_path: Path) -> None:
    import pytest

    from kapa_core.errors import KapaError

    with pytest.raises(KapaError):
        run_script(script(tmp_path / "nope"), "cpu,host=a v=1 0")


def test_sideloaded_values_feed_a_later_lambda(tmp_path: Path) -> None:
    run = run_script(script(files(tmp_path), "|where(lambda: \"v\" > \"threshold\")"),
                     "cpu,host=a v=50 0\ncpu,host=a v=5 1\ncpu,host=b v=11 2")
    assert [(p.tags["host"], p.fields["v"]) for p in run.points("where")] == [
        ("a", 50.0), ("b", 11.0)]

"""kapa_core.models.govalues against Go: each document of govalues_go.json was read by a
Go 1.19.8 program (the toolchain Kapacitor 1.5.7 is built with) calling
``encoding/json.Unmarshal`` and ``github.com/ghodss/yaml.Unmarshal`` (with go-yaml v2, as
vendored by Kapacitor 1.5.7) into a ``map[string]interface{}``; ``go`` is what it gave:
the error text, or the values re-encoded as JSON by Go."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kapa_core.models import govalues

CASES = json.loads((Path(__file__).parent / "govalues_go.json").read_text(encoding="utf-8"))


def _numbers_as_floats(value: Any) -> Any:
    # Go decodes every JSON number into a float64; its JSON output writes 1500 for
    # 1500.0, which Python reads back as an int.
    if isinstance(value, dict):
        return {k: _numbers_as_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers_as_floats(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, float) and value == 0:
        return 0.0  # -0 reads back as 0
    return value


@pytest.mark.parametrize("case", CASES, ids=[f"{c['format']}:{c['input']!r}" for c in CASES])
def test_like_go(case: dict[str, Any]) -> None:
    read = govalues.json_object if case["format"] == "json" else govalues.yaml_object
    go = case["go"]
    if "error" in go:
        with pytest.raises(ValueError) as info:
            read(case["input"].encode())
        assert str(info.value) == go["error"]
    else:
        got = read(case["input"].encode())
        assert _numbers_as_floats(got) == _numbers_as_floats(go["values"] or {})

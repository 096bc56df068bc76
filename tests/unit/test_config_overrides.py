"""The config API's update rules (set/delete/add/remove), as Kapacitor applies them."""

from __future__ import annotations

import pytest

from kapa_core.config.overrides import Override, OverrideError, updated
from tests.unit.test_config_layers import SECTIONS, build

CLUSTER, MAIL = SECTIONS


def test_set_then_delete_an_option() -> None:
    state = updated({}, MAIL, "", {"set": {"port": 2525, "enabled": True}})
    assert state["mail/"].options == {"port": 2525, "enabled": True}
    state = updated(state, MAIL, "", {"delete": ["port"]})
    assert state["mail/"].options == {"enabled": True}


def test_set_on_array_section_without_element_applies_to_every_element() -> None:
    state = updated({}, CLUSTER, None, {"set": {"retries": 9}})
    config = build({"cluster": [{"name": "a"}, {"name": "b"}]}, None, state.values())
    assert [c.retries for c in config["cluster"]] == [9, 9]


def test_add_then_remove_created_element_leaves_nothing() -> None:
    state = updated({}, CLUSTER, None, {"add": {"name": "new"}})
    assert state["cluster/new"].create
    state = updated(state, CLUSTER, None, {"remove": ["new"]})
    assert state == {}


def test_remove_file_element_marks_it_deleted() -> None:
    state = updated({}, CLUSTER, None, {"remove": ["default"]})
    assert state["cluster/default"] == Override("cluster", "default", delete=True)
    assert build(None, None, state.values())["cluster"] == ()


@pytest.mark.parametrize(("section", "element", "body", "message"), [
    (MAIL, "", {"set": {"port": 1}, "add": {"x": 1}}, "cannot provide both"),
    (MAIL, None, {"add": {"host": "x"}}, "is not a list"),
    (CLUSTER, "x", {"add": {"name": "y"}}, "must not provide an element name"),
    (CLUSTER, None, {"add": {"retries": 1}}, "'name' is required"),
    (CLUSTER, "default", {"set": {"name": "other"}}, "cannot override element key name"),
    (MAIL, "", {"sett": {}}, "unknown field"),
    (MAIL, "", {}, "nothing to do"),
    (MAIL, "", {"set": []}, "must be JSON objects"),
])
def test_bad_requests(section, element, body, message) -> None:
    with pytest.raises(OverrideError, match=message):
        updated({}, section, element, body)


def test_updated_does_not_mutate_its_input() -> None:
    state = updated({}, MAIL, "", {"set": {"port": 1}})
    updated(state, MAIL, "", {"set": {"port": 2}})
    assert state["mail/"].options == {"port": 1}

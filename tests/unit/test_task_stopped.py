"""TaskStopped: the error a node raises to stop its task goes through every node (and
their own ``except Exception``) up to the running task; other errors are counted."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from kapa_core.engine.node import Node, TaskStopped
from kapa_core.logs import Logger


class Failing(Node):
    def __init__(self, name: str, stop: bool) -> None:
        super().__init__(SimpleNamespace(name=name, quiet=True), Logger("test"))  # type: ignore[arg-type]
        self.raise_stop = stop

    def point(self, p) -> None:
        if self.raise_stop:
            raise self.stop_task("refusing this point")
        raise ValueError("a bad point")


class Guarded(Node):
    """A node whose own loop catches what its children raise (as some nodes do)."""

    def point(self, p) -> None:
        try:
            self.emit_point(p)
        except Exception:
            self.errors += 1


def test_a_returned_error_goes_up_with_the_node_name() -> None:
    parent = Guarded(SimpleNamespace(name="from1", quiet=True), Logger("test"))  # type: ignore[arg-type]
    child = Failing("combine2", stop=True)
    parent.children.append(child)
    with pytest.raises(TaskStopped) as raised:
        parent.receive_point(None)  # type: ignore[arg-type]
    assert str(raised.value) == "combine2: refusing this point"
    assert raised.value.node == "combine2" and raised.value.message == "refusing this point"
    assert parent.errors == 0 and child.errors == 0


def test_other_errors_are_counted_and_the_node_goes_on() -> None:
    node = Failing("eval2", stop=False)
    for _ in range(3):
        node.receive_point(None)  # type: ignore[arg-type]
    assert node.errors == 3 and node.collected == 3

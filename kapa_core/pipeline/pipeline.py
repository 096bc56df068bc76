"""A pipeline: the DAG of node specs one task's TICKscript describes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kapa_core.models.duration import format_go
from kapa_core.pipeline.base import NodeSpec

#: Node statistics the DOT leaves out: Kapacitor counts these on the edges.
EDGE_COUNTS = frozenset(("collected", "emitted"))


class Pipeline:
    def __init__(self, task_type: str) -> None:
        self.task_type = task_type
        self.nodes: list[NodeSpec] = []
        self.dbrps: list[tuple[str, str]] = []
        self._next_id = 0

    def dbrps_declared(self) -> set[tuple[str, str]]:
        return set(self.dbrps)

    def register(self, node: NodeSpec, links: int = 1) -> int:
        """Add ``node`` and return its ID.

        IDs are numbered as Kapacitor numbers them: a node linked to several parents
        (join, union) takes one ID per link and keeps the last, so the numbers after it
        skip; a ``stats`` source takes the ID of the ``noop`` child added to its node
        just before it (Kapacitor adds the noop after the stats node).
        """
        self.nodes.append(node)
        self._next_id += max(links, 1)
        node_id = self._next_id - 1
        if node.kind == "stats" and len(self.nodes) > 1 and self.nodes[-2].kind == "noop" \
                and self.nodes[-2].id == node_id - 1:
            self.nodes[-2].id, node_id = node_id, node_id - 1
        return node_id

    def last_http_out(self, endpoint: str) -> int:
        """The highest ID of the pipeline's ``httpOut`` nodes serving ``endpoint`` (-1
        if none): one table for the pipeline, not one scan per node (tasks may have
        thousands of ``httpOut`` nodes)."""
        table = getattr(self, "_http_outs", None)
        if table is None or table[0] != len(self.nodes):
            last: dict[str, int] = {}
            for node in self.nodes:
                if node.kind == "http_out":
                    name = getattr(node, "endpoint", "")
                    last[name] = max(last.get(name, -1), node.id)
            table = self._http_outs = (len(self.nodes), last)
        return table[1].get(endpoint, -1)

    @property
    def sources(self) -> list[NodeSpec]:
        return [n for n in self.nodes if not n.parents]

    def walk(self) -> Iterator[NodeSpec]:
        """Nodes in creation order (parents always come before their children)."""
        return iter(self.nodes)

    def sorted_nodes(self) -> list[NodeSpec]:
        """Nodes in the order Kapacitor walks them: the reverse of a depth-first
        post-order that starts from the last source and visits children in order (so a
        node's later branches come first). Iterative: a chain of thousands of nodes
        needs no recursion."""
        done: set[int] = set()
        post: list[NodeSpec] = []
        for source in reversed(self.sources):
            if id(source) in done:
                continue
            done.add(id(source))
            stack: list[tuple[NodeSpec, int]] = [(source, 0)]
            while stack:
                node, index = stack[-1]
                if index < len(node.children):
                    stack[-1] = (node, index + 1)
                    child = node.children[index]
                    if id(child) not in done:
                        done.add(id(child))
                        stack.append((child, 0))
                else:
                    stack.pop()
                    post.append(node)
        post.reverse()
        return post

    def dot(self, name: str, stats: dict[str, dict[str, Any]] | None = None,
            throughput: float | None = None, *, labels: bool = False,
            unit: str = "points") -> str:
        """Graphviz text like Kapacitor's ``dot`` field (with stats when running).

        ``labels`` is Kapacitor's ``dot-view=labels``: statistics as ``xlabel`` text lines
        and edge counts as edge labels, ready for ``dot -Tsvg``; otherwise they are
        attributes. A batch task's ``batch`` root is not drawn, as in Kapacitor.
        """
        nodes = [n for n in self.sorted_nodes() if n.kind != "batch"]
        out = [f"digraph {name} {{\n"]
        if stats is None:
            for node in nodes:
                for child in node.children:
                    out.append(f"{node.name} -> {child.name};\n")
            out.append("}")
            return "".join(out)
        # A running task links each node to its parents in walk order, so its edges
        # are listed in that order, not in the order the script created them.
        position = {id(n): i for i, n in enumerate(nodes)}
        rate = f"{throughput or 0.0:.2f} {unit}/s"
        out.append(f'graph [label="Throughput: {rate}" forcelabels=true pad="0.8,0.5"];\n'
                   if labels else f'graph [throughput="{rate}"];\n')
        for node in nodes:
            node_stats = stats.get(node.name, {})
            values = sorted((k, _stat(k, v)) for k, v in node_stats.items()
                            if k not in EDGE_COUNTS)
            children = sorted(node.children, key=lambda c: position.get(id(c), 0))
            # a node's emitted is the sum over its edges, each of which carried as much
            processed = node_stats.get("emitted", 0) // max(1, len(children))
            if labels:
                text = "\\r".join(f"{k}={v}" for k, v in values)
                out.append(f'\n{node.name} [xlabel="{text}"];\n')
                out.extend(f'{node.name} -> {child.name} [label="processed={processed}"];\n'
                           for child in children)
            else:
                attrs = "".join(f'{k}="{v}" ' for k, v in values)
                out.append(f"\n{node.name} [{attrs}];\n")
                out.extend(f'{node.name} -> {child.name} [processed="{processed}"];\n'
                           for child in children)
        out.append("}")
        return "".join(out)


def _stat(key: str, value: Any) -> str:
    """A statistic as Kapacitor prints it: durations in Go's form (``1.5µs``)."""
    if key == "avg_exec_time_ns" and isinstance(value, int | float):
        return format_go(int(value))
    return str(value)

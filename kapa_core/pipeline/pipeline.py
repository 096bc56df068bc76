"""A pipeline: the DAG of node specs one task's TICKscript describes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kapa_core.pipeline.base import NodeSpec


class Pipeline:
    def __init__(self, task_type: str) -> None:
        self.task_type = task_type
        self.nodes: list[NodeSpec] = []
        self.dbrps: list[tuple[str, str]] = []

    def dbrps_declared(self) -> set[tuple[str, str]]:
        return set(self.dbrps)

    def register(self, node: NodeSpec) -> int:
        self.nodes.append(node)
        return len(self.nodes) - 1

    @property
    def sources(self) -> list[NodeSpec]:
        return [n for n in self.nodes if not n.parents]

    def walk(self) -> Iterator[NodeSpec]:
        """Nodes in creation order (parents always come before their children)."""
        return iter(self.nodes)

    def dot(self, name: str, stats: dict[str, dict[str, Any]] | None = None,
            throughput: float | None = None, *, labels: bool = False,
            unit: str = "points") -> str:
        """Graphviz text like Kapacitor's ``dot`` field (with stats when running).

        ``labels`` is Kapacitor's ``dot-view=labels``: statistics as ``xlabel`` text lines
        and edge counts as edge labels, ready for ``dot -Tsvg``; otherwise they are
        attributes.
        """
        lines = [f"digraph {name} {{"]
        if stats is not None:
            rate = f"{throughput or 0.0:.2f} {unit}/s"
            lines.append(f'graph [label="Throughput: {rate}"];' if labels
                         else f'graph [throughput="{rate}"];')
            lines.append("")
            for node in self.nodes:
                node_stats = sorted((k, v) for k, v in stats.get(node.name, {}).items()
                                    if k != "collected")
                processed = stats.get(node.name, {}).get("emitted", 0)
                if labels:
                    text = "\\r".join(f"{k}={v}" for k, v in node_stats)
                    lines.append(f'{node.name} [xlabel="{text}"];')
                else:
                    attrs = " ".join(f'{k}="{v}"' for k, v in node_stats)
                    lines.append(f"{node.name} [{attrs} ];")
                for child in node.children:
                    lines.append(f'{node.name} -> {child.name} [label="processed={processed}"];'
                                 if labels else
                                 f'{node.name} -> {child.name} [processed="{processed}"];')
                lines.append("")
        else:
            for node in self.nodes:
                for child in node.children:
                    lines.append(f"{node.name} -> {child.name};")
        lines.append("}")
        return "\n".join(lines)

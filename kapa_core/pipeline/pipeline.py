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
            throughput: float | None = None) -> str:
        """Graphviz text like Kapacitor's ``dot`` field (with stats when running)."""
        lines = [f"digraph {name} {{"]
        if stats is not None:
            lines.append(f'graph [throughput="{throughput or 0.0:.2f} points/s"];')
            lines.append("")
            for node in self.nodes:
                attrs = " ".join(f'{k}="{v}"' for k, v in sorted(stats.get(
                    node.name, {}).items()) if k != "collected")
                lines.append(f"{node.name} [{attrs} ];")
                for child in node.children:
                    processed = stats.get(node.name, {}).get("emitted", 0)
                    lines.append(f'{node.name} -> {child.name} [processed="{processed}"];')
                lines.append("")
        else:
            for node in self.nodes:
                for child in node.children:
                    lines.append(f"{node.name} -> {child.name};")
        lines.append("}")
        return "\n".join(lines)

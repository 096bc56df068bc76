"""The points of a dry run of a batch script, as the answer of its queries.

A dry run has no InfluxDB to ask: the points given stand for what each query node's
query returned in one run. They are grouped as InfluxDB groups an answer, by
measurement and by the tags the node's ``.groupBy()`` names (``*``: every tag; a
``time(...)`` dimension groups nothing, the points being the answer already), one batch
per group in the order of their group IDs, its points in time order. A batch's time
(``tmax``) is that of the last point given, whatever its group: the end of the one
query run they stand for.

Every query node gets every point: a script whose queries read different measurements
is best tried one query at a time, or by replaying recorded data.
"""

from __future__ import annotations

from kapa_core.engine.node import Node
from kapa_core.engine.nodes.query import QueryNode
from kapa_core.models.batch import Batch, BatchPoint, group_id
from kapa_core.models.point import Point


def query_answers(nodes: list[Node], points: list[Point]) -> list[tuple[QueryNode, Batch]]:
    """Each query node of ``nodes`` with the batches ``points`` make for it."""
    if not points:
        return []
    tmax = max(p.time for p in points)
    return [(node, batch) for node in nodes if isinstance(node, QueryNode)
            for batch in batches(points, _tag_dimensions(node), node.by_name, tmax)]


def _tag_dimensions(node: QueryNode) -> list[str]:
    return [d for d in node.spec.group_dimensions() if isinstance(d, str)]


def batches(points: list[Point], dims: list[str], by_name: bool, tmax: int) -> list[Batch]:
    """The batches of a query answer grouped by ``dims`` (``"*"``: every tag)."""
    groups: dict[tuple[str, str], Batch] = {}
    for p in points:
        names = tuple(sorted(p.tags)) if "*" in dims else tuple(sorted(dims))
        tags = {d: p.tags[d] for d in names if d in p.tags}
        gid = group_id(p.name, tags, names, by_name)
        batch = groups.get((p.name, gid))
        if batch is None:
            batch = groups[p.name, gid] = Batch(p.name, gid, tags, names, by_name, tmax, [])
        batch.points.append(BatchPoint(p.time, dict(p.fields), dict(tags)))
    out = [groups[key] for key in sorted(groups)]
    for batch in out:
        batch.points.sort(key=lambda bp: bp.time)
    return out

"""``seeknal lineage``: the DAG around a node (or all of it) as a tree, Mermaid, Graphviz dot or JSON.

Example::

    lineage = node_lineage(ws.dag, "feature_group.customer_features", Direction.BOTH)
    print(render_mermaid(lineage))
"""

from __future__ import annotations

import enum
import json

import msgspec

from seeknal_flow.load.dag import Dag

_UNICODE = ("├── ", "└── ", "│   ", "    ")
_ASCII = ("|-- ", "`-- ", "|   ", "    ")


class Direction(str, enum.Enum):
    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"
    BOTH = "both"


class LineageFormat(str, enum.Enum):
    TREE = "tree"  # Unicode box drawing
    ASCII = "ascii"  # the same tree in plain ASCII
    MERMAID = "mermaid"
    DOT = "dot"
    JSON = "json"


class LineageNode(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    kind: str


class Lineage(msgspec.Struct, kw_only=True):
    """``seeknal lineage --format json``: the nodes and ``[from, to]`` edges of the selection."""

    node: str | None  # the node asked about; None = the whole DAG
    direction: Direction
    nodes: list[LineageNode]
    edges: list[tuple[str, str]]


def node_lineage(dag: Dag, node_id: str | None = None, direction: Direction = Direction.BOTH) -> Lineage:
    """The sub-graph upstream and/or downstream of ``node_id`` (the whole DAG without a node)."""
    if node_id is None:
        keep = set(dag.order)
    else:
        keep = {node_id}
        if direction in (Direction.UPSTREAM, Direction.BOTH):
            keep |= dag.ancestors(node_id)
        if direction in (Direction.DOWNSTREAM, Direction.BOTH):
            keep |= dag.descendants(node_id)
    nodes = [LineageNode(id=n, kind=dag.nodes[n].kind.value) for n in dag.order if n in keep]
    edges = [(up, n) for n in dag.order if n in keep for up in dag.upstream[n] if up in keep]
    if node_id is not None and direction == Direction.BOTH:
        # Only edges on a path through the node: siblings' other inputs are not its lineage.
        ups, downs = dag.ancestors(node_id) | {node_id}, dag.descendants(node_id) | {node_id}
        edges = [(a, b) for a, b in edges if (a in ups and b in ups) or (a in downs and b in downs)]
    return Lineage(node=node_id, direction=direction, nodes=nodes, edges=edges)


def render_lineage(dag: Dag, node_id: str | None = None, ascii_only: bool = False,
                   direction: Direction = Direction.BOTH) -> str:
    """Upstream tree (what feeds the node) and downstream tree (what it feeds).

    Without a node: one downstream tree per root (a node without inputs).
    """
    marks = _ASCII if ascii_only else _UNICODE
    if node_id is None:
        roots = [n for n in dag.order if not dag.upstream[n]]
        blocks = ["\n".join(_tree(dag.downstream, r, marks)) for r in roots]
        return "\n".join(blocks) if blocks else "(no nodes)"
    parts = []
    if direction in (Direction.UPSTREAM, Direction.BOTH):
        parts.append("upstream:\n" + "\n".join(_tree(dag.upstream, node_id, marks)))
    if direction in (Direction.DOWNSTREAM, Direction.BOTH):
        parts.append("downstream:\n" + "\n".join(_tree(dag.downstream, node_id, marks)))
    return "\n".join(parts)


def render_mermaid(lineage: Lineage) -> str:
    """A Mermaid flowchart (renders in GitHub Markdown, GitLab and most docs sites)."""
    ids = {n.id: f"n{i}" for i, n in enumerate(lineage.nodes)}
    lines = ["flowchart LR"]
    for n in lineage.nodes:
        label = n.id.replace('"', "'")
        shape = f'(["{label}"])' if n.kind == "source" else f'["{label}"]'
        lines.append(f"    {ids[n.id]}{shape}")
    lines += [f"    {ids[a]} --> {ids[b]}" for a, b in lineage.edges]
    if lineage.node is not None:
        lines.append(f"    style {ids[lineage.node]} stroke-width:3px")
    return "\n".join(lines)


def render_dot(lineage: Lineage) -> str:
    """Graphviz dot: ``seeknal lineage --format dot | dot -Tsvg > dag.svg``."""
    lines = ["digraph seeknal {", "  rankdir=LR;", "  node [shape=box, fontname=Helvetica];"]
    for n in lineage.nodes:
        attrs = [f"label={json.dumps(n.id)}"]
        if n.kind == "source":
            attrs.append("shape=cylinder")
        if n.id == lineage.node:
            attrs.append("penwidth=3")
        lines.append(f"  {json.dumps(n.id)} [{', '.join(attrs)}];")
    lines += [f"  {json.dumps(a)} -> {json.dumps(b)};" for a, b in lineage.edges]
    lines.append("}")
    return "\n".join(lines)


def _tree(edges: dict[str, list[str]], root: str, marks: tuple[str, ...]) -> list[str]:
    tee, last, pipe, blank = marks
    lines = [root]

    def walk(node: str, prefix: str, path: tuple[str, ...]) -> None:
        children = edges[node]
        for i, child in enumerate(children):
            end = i == len(children) - 1
            lines.append(prefix + (last if end else tee) + child)
            if child not in path:
                walk(child, prefix + (blank if end else pipe), path + (child,))

    walk(root, "", (root,))
    return lines

"""``seeknal lineage``: the DAG as a tree, upstream and downstream of a node."""

from __future__ import annotations

from seeknal_flow.load.dag import Dag

_UNICODE = ("├── ", "└── ", "│   ", "    ")
_ASCII = ("|-- ", "`-- ", "|   ", "    ")


def render_lineage(dag: Dag, node_id: str | None = None, ascii_only: bool = False) -> str:
    """Upstream tree (what feeds the node) and downstream tree (what it feeds).

    Without a node: one downstream tree per root (a node without inputs).
    """
    marks = _ASCII if ascii_only else _UNICODE
    if node_id is None:
        roots = [n for n in dag.order if not dag.upstream[n]]
        blocks = ["\n".join(_tree(dag.downstream, r, marks)) for r in roots]
        return "\n".join(blocks) if blocks else "(no nodes)"
    up = _tree(dag.upstream, node_id, marks)
    down = _tree(dag.downstream, node_id, marks)
    return "upstream:\n" + "\n".join(up) + "\ndownstream:\n" + "\n".join(down)


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

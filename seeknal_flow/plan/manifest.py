"""``target/manifest.json``: every node, its file, inputs and where its output is read from.

The REPL and other readers use it to find outputs that do not live under
``target/intermediate/`` (Parquet sources are read in place).
"""

from __future__ import annotations

import json

from operators.atomic import write_atomic
from seeknal_flow.load.dag import Dag
from seeknal_flow.load.project import Project


def write_manifest(project: Project, dag: Dag) -> None:
    nodes = {}
    for node_id in dag.order:
        spec = dag.nodes[node_id]
        out = project.output_of(spec)
        nodes[node_id] = {
            "kind": spec.kind.value,
            "file": str(spec.location),
            "upstream": dag.upstream[node_id],
            "view": spec.output_name,
            "output": str(out.relative_to(project.root)) if out.is_relative_to(project.root) else str(out),
        }
    project.target.mkdir(parents=True, exist_ok=True)
    write_atomic(project.manifest_path, json.dumps({"nodes": nodes}, indent=1).encode())


def read_outputs(project: Project) -> dict[str, str]:
    """View name -> output path (as written in the manifest), or {} without a manifest."""
    try:
        data = json.loads(project.manifest_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return {n["view"]: n["output"] for n in data.get("nodes", {}).values()}

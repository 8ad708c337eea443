"""``seeknal dry-run``: validate a node file and preview its first rows, writing nothing.

Upstream nodes that have an output in ``target/`` are read from it; those that
have none are computed in memory for this preview only. Whatever the node writes
(``ctx.save_model``, spill files, an isolated environment) goes to a temp folder
that is deleted afterwards: a dry run never touches ``target/``.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from seeknal_flow.errors import EngineError, NodeExecutionError, RunError, SeeknalError, SpecError
from seeknal_flow.frames.frame import frame_for
from seeknal_flow.load.dag import Dag
from seeknal_flow.load.discovery import discover, load_node_file
from seeknal_flow.load.workspace import Workspace
from seeknal_flow.plan.planner import effective_params
from seeknal_flow.run.chains import build_chain


@dataclass
class Preview:
    node_id: str
    table: pa.Table  # at most `limit` rows
    output: str  # what the node printed


def load_draft(ws: Workspace, file: Path) -> tuple[list, Dag]:
    """Specs of ``file`` and the project DAG with them in place of same-id nodes."""
    if not file.exists():
        raise RunError(f"{file} does not exist")
    specs = load_node_file(file.resolve(), ws.project.root)
    if not specs:
        raise SpecError(
            f"{file}: no node found; decorate a function with @source/@transform/@feature_group "
            "or write a YAML file with 'kind' and 'name'"
        )
    ids = {s.id for s in specs}
    own = {str(file.resolve())}
    project_specs = [
        s for s in discover(ws.project)
        if s.id not in ids and str((ws.project.root / s.location.file).resolve()) not in own
    ]
    return specs, Dag(project_specs + specs)


def preview_file(ws: Workspace, file: Path, limit: int = 10) -> list[Preview]:
    """Compute the first ``limit`` rows of every node in ``file``."""
    specs, dag = load_draft(ws, file)
    with tempfile.TemporaryDirectory(prefix="seeknal-dry-run-") as scratch:
        target = Path(scratch)
        memory = dataclasses.replace(ws.memory(), spill_dir=target / "tmp")
        computed: dict[str, pa.Table] = {}
        previews = []
        for spec in specs:
            needed = [n for n in dag.order if n in dag.ancestors(spec.id)]
            for node_id in needed:
                out = ws.project.output_of(dag.nodes[node_id])
                if node_id not in computed and not out.exists():
                    computed[node_id] = _compute(ws, dag, node_id, computed, memory, None, target).table
            previews.append(_compute(ws, dag, spec.id, computed, memory, limit, target))
        return previews


def _compute(ws, dag, node_id, computed, memory, limit, target: Path) -> Preview:
    spec = dag.nodes[node_id]
    inputs = {}
    for up in dag.upstream[node_id]:
        data = computed.get(up)
        if data is None:
            data = ws.project.output_of(dag.nodes[up])
        inputs[up] = frame_for(dag.nodes[up], data, memory)
    chain = None
    try:
        chain = build_chain(spec, inputs, root=ws.project.root, params=effective_params(spec, {}), memory=memory,
                            isolation=ws.project.config.isolation, target=target)
        op = chain.operator
        schema = op.schema  # before batches(): a SQL operator then binds its inputs once
        batches, rows = [], 0
        for batch in op.batches():
            if limit is not None and rows + batch.num_rows >= limit:
                batches.append(batch.slice(0, limit - rows))
                rows = limit
                break
            batches.append(batch)
            rows += batch.num_rows
        table = pa.Table.from_batches(batches, schema=schema)
        return Preview(node_id, table, chain.output)
    except EngineError as e:
        raise NodeExecutionError(node_id, str(e), tail=getattr(e, "tail", "")) from e
    except SeeknalError as e:
        raise NodeExecutionError(node_id, str(e)) from e
    finally:
        if chain is not None:
            chain.close()

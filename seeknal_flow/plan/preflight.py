"""Checks that need input schemas, run before any node reads data.

A second-order aggregation's columns are checked against its input's Parquet
schema (metadata only) when that input already exists on disk; otherwise the
SOA operator runs the same check itself before it reads anything.
"""

from __future__ import annotations

from seeknal_flow.authoring.specs import Kind
from seeknal_flow.errors import SpecError
from seeknal_flow.load.dag import Dag
from seeknal_flow.load.entities import entity_groups
from seeknal_flow.load.project import Project
from seeknal_flow.plan.planner import Plan


def preflight(project: Project, dag: Dag, plan: Plan) -> None:
    """Raise one SpecError listing every problem found in the nodes about to run."""
    entity_groups(dag)  # join-key mismatches fail before anything runs, not after
    problems = []
    running = {n.node_id for n in plan.to_run}
    for node_id in running:
        spec = dag.nodes[node_id]
        if spec.kind != Kind.SECOND_ORDER_AGGREGATION or spec.source is None:
            continue
        schemas = []
        for upstream in (spec.source, spec.spine):
            if upstream is None:
                schemas.append(None)
                continue
            path = project.output_of(dag.nodes[upstream])
            if upstream in running or not path.exists():
                break  # the input is produced in this run: the operator checks it then
            # pyarrow, only when an SOA node's input already exists: `seeknal plan` stays light.
            # One footer: pyarrow.dataset would import pandas (0.3 s of the run).
            from operators.datasets import footer_schema

            schemas.append(footer_schema(path))
        else:
            from operators.soa.check import check_soa  # pyarrow, and DataFusion to plan: only when an SOA node runs

            problems += [f"{spec.location}: {node_id}: {p}" for p in check_soa(spec.query, *schemas)]
    if problems:
        raise SpecError(sorted(problems))

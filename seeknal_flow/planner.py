"""Decide what must run and why: fingerprints compared with ``run_state.json``."""

from __future__ import annotations

import msgspec

from seeknal_flow.dag import Dag
from seeknal_flow.errors import PlanError
from seeknal_flow.fingerprint import (
    ENGINE_VERSION,
    code_hash,
    config_hash,
    data_fingerprint,
    data_hash,
    digest,
)
from seeknal_flow.project import Project
from seeknal_flow.run_state import NodeState, RunState
from seeknal_flow.specs import Kind


class NodePlan(msgspec.Struct, kw_only=True):
    node_id: str
    action: str  # RUN | SKIP
    reasons: list[str]
    state: NodeState  # what run_state will hold for this node after a successful run
    params: dict = {}


class Plan(msgspec.Struct, kw_only=True):
    nodes: list[NodePlan]

    @property
    def to_run(self) -> list[NodePlan]:
        return [n for n in self.nodes if n.action == "RUN"]

    def describe(self, dag: Dag) -> str:
        """One line per node in run order: action, id, its inputs and why."""
        width = max((len(n.node_id) for n in self.nodes), default=0)
        lines = []
        for n in self.nodes:
            ups = dag.upstream[n.node_id]
            arrow = f"  <- {', '.join(ups)}" if ups else ""
            why = ", ".join(n.reasons)
            lines.append(f"  {n.action:<4}  {n.node_id:<{width}}  ({why}){arrow}")
        return "\n".join(lines)


def effective_params(spec, cli_params: dict) -> dict:
    """The node's params with ``--params`` overrides.

    Overrides reach a node that declares the key, and every Python node (its
    code may read any key from ``ctx.params``); only those fingerprints change.
    """
    params = dict(spec.params)
    python = getattr(spec, "python", None)
    for key, value in cli_params.items():
        if key in params or (python is not None and "params" in python.source):
            params[key] = value
    return params


def make_plan(
    project: Project,
    dag: Dag,
    state: RunState,
    *,
    full: bool = False,
    select: set[str] | None = None,
    cli_params: dict | None = None,
) -> Plan:
    """Compute every node's fingerprint and decide RUN or SKIP.

    ``select`` (from ``--nodes``/``--tags``) forces those nodes and their
    downstream to run; other nodes never run then, so their outputs must exist.
    """
    cli_params = cli_params or {}
    forced: set[str] = set()
    needed: set[str] = set()  # upstream of the selection: their outputs must exist
    if select is not None:
        for node_id in select:
            forced |= {node_id} | dag.descendants(node_id)
        for node_id in forced:
            needed |= dag.ancestors(node_id)
    plans: dict[str, NodePlan] = {}
    for node_id in dag.order:
        spec = dag.nodes[node_id]
        old = state.nodes.get(node_id)
        params = effective_params(spec, cli_params)
        files: dict[str, dict] = {}
        data = ""
        if spec.kind == Kind.SOURCE:
            files = data_fingerprint(project.root / spec.table, old.files if old else {})
            data = data_hash(files)
        upstream = {u: plans[u].state.fingerprint for u in dag.upstream[node_id]}
        new = NodeState(
            code=code_hash(spec),
            config=config_hash(spec),
            params=digest(params),
            data=data,
            upstream=upstream,
            files=files,
        )
        new.fingerprint = digest(
            [ENGINE_VERSION, node_id, new.code, new.config, new.params, new.data, sorted(upstream.items())]
        )
        output_exists = project.output_of(spec).exists()
        reasons = _reasons(old, new, output_exists)
        if select is not None:
            action = "RUN" if node_id in forced else "SKIP"
            if node_id in forced:
                reasons = ["selected" if node_id in select else "downstream of selection"]
            elif not output_exists and node_id in needed:
                raise PlanError(
                    f"{node_id} has no output yet and is not selected; run it first or add it to --nodes"
                )
            else:
                reasons = ["not selected"]
        elif full:
            action, reasons = "RUN", ["--full"]
        else:
            action = "RUN" if reasons else "SKIP"
            reasons = reasons or ["unchanged"]
        plans[node_id] = NodePlan(node_id=node_id, action=action, reasons=reasons, state=new, params=params)
    return Plan(nodes=[plans[n] for n in dag.order])


def _reasons(old: NodeState | None, new: NodeState, output_exists: bool) -> list[str]:
    if old is None or not old.fingerprint:
        return ["new"]
    reasons = []
    if old.code != new.code:
        reasons.append("code changed")
    if old.config != new.config:
        reasons.append("spec changed")
    if old.params != new.params:
        reasons.append("params changed")
    if old.data != new.data:
        reasons.append("data changed")
    if old.upstream != new.upstream:
        reasons.append("upstream changed")
    if old.status == "failed":
        reasons.append("failed last run")
    elif not output_exists:
        reasons.append("output missing")
    elif not reasons and old.fingerprint != new.fingerprint:
        reasons.append("engine changed")
    return reasons

"""Decide what must run and why: fingerprints compared with ``run_state.json``."""

from __future__ import annotations

import enum

import msgspec

from seeknal_flow.authoring.specs import Kind
from seeknal_flow.errors import PlanError
from seeknal_flow.load.connections import expand, identity, resolve_sqlite
from seeknal_flow.load.dag import Dag
from seeknal_flow.load.project import EngineName, Project
from seeknal_flow.plan.fingerprint import (
    ENGINE_VERSION,
    code_hash,
    config_hash,
    data_fingerprint,
    data_hash,
    digest,
)
from seeknal_flow.plan.outputs import output_signature
from seeknal_flow.plan.partitions import incremental_soa_blocker, is_partitioned, source_partitions
from seeknal_flow.plan.run_state import NodeState, NodeStatus, RunState


class Action(str, enum.Enum):
    """What the plan does with a node."""

    RUN = "RUN"
    SKIP = "SKIP"
    REMOVE = "REMOVE"  # in run state but no longer in the project: its outputs are deleted


class NodePlan(msgspec.Struct, kw_only=True):
    node_id: str
    action: Action
    reasons: list[str]
    state: NodeState  # what run_state will hold for this node after a successful run
    params: dict = {}
    # Partitioned nodes: the partitions to (re)compute and to delete; None = all.
    partitions_run: list[str] | None = None
    partitions_remove: list[str] = []
    # RUN only if one of these upstream nodes (database sources, or nodes waiting on one)
    # changes its data during the run; otherwise the node is up to date.
    conditional: list[str] = []


class Plan(msgspec.Struct, kw_only=True):
    nodes: list[NodePlan]
    # Nodes that ran before but whose file was deleted or renamed (Action.REMOVE); not in the DAG.
    removed: list[NodePlan] = []
    # Post-run steps (plan/post_steps.py: StepPlan), planned after the nodes by plan_project.
    steps: list = []

    @property
    def to_run(self) -> list[NodePlan]:
        return [n for n in self.nodes if n.action == Action.RUN]

    @property
    def steps_to_run(self) -> list:
        return [s for s in self.steps if s.action == Action.RUN]

    def report(self, dag: Dag, project: str) -> PlanReport:
        """The plan as a document: what ``seeknal plan --format json`` prints."""
        nodes = []
        for n in self.nodes:
            parts = None
            if n.action == Action.RUN and n.partitions_run is not None:
                parts = PartitionPlan(run=list(n.partitions_run), removed=list(n.partitions_remove),
                                      total=len(n.state.partitions))
            nodes.append(PlannedNode(id=n.node_id, kind=dag.nodes[n.node_id].kind.value, action=n.action,
                                     reasons=list(n.reasons), upstream=list(dag.upstream[n.node_id]),
                                     partitions=parts))
        to_run = sum(1 for n in nodes if n.action == Action.RUN)
        for n in self.removed:
            nodes.append(PlannedNode(id=n.node_id, kind=n.node_id.partition(".")[0], action=n.action,
                                     reasons=list(n.reasons), upstream=[]))
        steps = [PlannedStep(id=s.id, kind=s.kind.value, entity=s.entity, action=s.action, reasons=list(s.reasons))
                 for s in self.steps]
        return PlanReport(project=project, to_run=to_run, to_skip=len(nodes) - to_run - len(self.removed),
                          to_remove=len(self.removed), nodes=nodes, steps=steps)


class PartitionPlan(msgspec.Struct, kw_only=True):
    """A partitioned node's share of the plan: partitions to compute and to delete."""

    run: list[str]
    removed: list[str]
    total: int


class PlannedNode(msgspec.Struct, kw_only=True):
    id: str
    kind: str
    action: Action
    reasons: list[str]
    upstream: list[str]
    partitions: PartitionPlan | None = None


class PlannedStep(msgspec.Struct, kw_only=True):
    """A post-run step in the plan: ``consolidate.<entity>`` or ``publish.<entity>``."""

    id: str
    kind: str
    entity: str
    action: Action
    reasons: list[str]


class PlanReport(msgspec.Struct, kw_only=True):
    """``seeknal plan --format json``: every node in run order, RUN or SKIP, and why; then the post-run steps."""

    project: str
    to_run: int
    to_skip: int
    nodes: list[PlannedNode]
    to_remove: int = 0
    steps: list[PlannedStep] = []


def render_plan(report: PlanReport) -> str:
    """The text of ``seeknal plan``: a header, then one line per node."""
    removing = f", {report.to_remove} to remove" if report.to_remove else ""
    steps = sum(1 for s in report.steps if s.action == Action.RUN)
    tail = f"; {steps} post-run step{'s' if steps != 1 else ''} to run" if steps else ""
    lines = [f"Plan for {report.project}: {report.to_run} to run, {report.to_skip} to skip{removing}{tail}"]
    width = max((len(n.id) for n in report.nodes), default=0)
    for n in report.nodes:
        arrow = f"  <- {', '.join(n.upstream)}" if n.upstream else ""
        parts = ""
        if n.partitions is not None:
            p = n.partitions
            changed = p.run[:3] + (["..."] if len(p.run) > 3 else [])
            removed = f"; removed: {', '.join(p.removed[:3])}" if p.removed else ""
            parts = f" RUN {len(p.run)}/{p.total} partitions (changed: {', '.join(changed) or 'none'}{removed})"
        lines.append(f"  {n.action.value:<4}  {n.id:<{width}}  ({', '.join(n.reasons)}){parts}{arrow}")
    if report.steps:
        lines.append("Post-run steps:")
        width = max(len(s.id) for s in report.steps)
        lines += [f"  {s.action.value:<4}  {s.id:<{width}}  ({', '.join(s.reasons)})" for s in report.steps]
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
    engine: EngineName | None = None,
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
    states: dict[str, NodeState] = {}
    waiting: set[str] = set()  # database sources and the nodes that wait on them
    for node_id in dag.order:
        spec = dag.nodes[node_id]
        old = state.nodes.get(node_id)
        params = effective_params(spec, cli_params)
        files: dict[str, dict] = {}
        data = source = ""
        if spec.kind == Kind.SOURCE and spec.is_database:
            try:
                connection = expand(spec)
            except PlanError:
                # A source --nodes leaves out never connects: its ${VAR} may be unset here.
                if select is None or node_id in forced:
                    raise
                connection = None
            if connection is None:
                source = old.source if old is not None else ""
            else:
                if spec.format.value == "sqlite":
                    connection = resolve_sqlite(connection, project.root)
                source = digest(identity(spec, connection))
            if old is not None and old.fingerprint:
                data, files = old.data, {k: dict(v) for k, v in old.files.items()}
        elif spec.kind == Kind.SOURCE:
            previous = old.files if old else {}
            if full:  # re-count rows too: a rewrite can keep a file's size and mtime
                previous = {rel: {k: v for k, v in info.items() if k != "rows"} for rel, info in previous.items()}
            files = data_fingerprint(project.root / spec.table, previous)
            data = data_hash(files)
        new = NodeState(
            code=code_hash(spec),
            config=config_hash(spec),
            params=digest(params),
            data=data,
            files=files,
            source=source,
        )
        seal(node_id, spec, new, dag, states)
        states[node_id] = new
        partitioned = is_partitioned(spec)
        output_exists = project.output_of(spec).exists()
        reasons = _reasons(old, new, output_exists)
        tampered = output_tampered(project, spec, old) if output_exists and not reasons else False
        if tampered:
            reasons = ["output changed outside seeknal"]
        conditional: list[str] = []
        partitions_run, partitions_remove = None, []
        if (partitioned and old is not None and old.fingerprint and output_exists and select is None and not full
                and not tampered):
            # Only the partitions whose fingerprint changed (each covers code, spec,
            # params, whole inputs and its own input partition) are recomputed.
            partitions_run = [p for p, fp in new.partitions.items() if old.partitions.get(p) != fp]
            partitions_remove = [p for p in old.partitions if p not in new.partitions]
            if partitions_run or partitions_remove:
                reasons = reasons or ["partitions changed"]
            else:
                reasons = []
        if spec.kind == Kind.SOURCE and spec.is_database:
            reasons = _database_reasons(spec, old, new, reasons, full)
        if select is not None:
            action = Action.RUN if node_id in forced else Action.SKIP
            if node_id in forced:
                reasons = ["selected" if node_id in select else "downstream of selection"]
            elif not output_exists and node_id in needed:
                raise PlanError(
                    f"{node_id} has no output yet and is not selected; run it first or add it to --nodes"
                )
            else:
                reasons = ["not selected"]
        elif full:
            action, reasons = Action.RUN, ["--full"]
        elif not reasons and (conditional := [u for u in dag.upstream[node_id] if u in waiting]):
            action = Action.RUN
            reasons = [f"only if {', '.join(conditional)} fetch(es) changed data"]
        else:
            action = Action.RUN if reasons else Action.SKIP
            reasons = reasons or ["unchanged"]
        if action == Action.RUN and (conditional or (spec.kind == Kind.SOURCE and spec.is_database)):
            waiting.add(node_id)
        if action != Action.RUN:
            partitions_run, partitions_remove = None, []
        elif spec.kind == Kind.SECOND_ORDER_AGGREGATION and any(is_partitioned(dag.nodes[u])
                                                                 for u in dag.upstream[node_id]):
            reasons = [*reasons, _soa_merge_reason(spec, dag, full, engine or project.config.engine)]
        plans[node_id] = NodePlan(node_id=node_id, action=action, reasons=reasons, state=new, params=params,
                                  partitions_run=partitions_run, partitions_remove=partitions_remove,
                                  conditional=conditional)
    removed = [NodePlan(node_id=n, action=Action.REMOVE, state=old,
                        reasons=["node file removed or renamed: its output, features and state are deleted"])
               for n, old in sorted(state.nodes.items()) if n not in dag.nodes]
    return Plan(nodes=[plans[n] for n in dag.order], removed=removed)


def _soa_merge_reason(spec, dag: Dag, full: bool, engine: EngineName) -> str:
    """How an SOA over partitioned input runs: merged from partial aggregates, or in full and why."""
    why = incremental_soa_blocker(spec, dag)
    if why is None and engine == EngineName.SPARK:
        why = "the Spark engine keeps no partial aggregates"
    if why is not None:
        return f"full recompute: {why}"
    if full:
        return "aggregates rebuilt from every input partition"
    return "merges the partial aggregates of new input partitions into its totals (changed/removed ones: in full)"


def seal(node_id: str, spec, new: NodeState, dag: Dag, states: dict[str, NodeState]) -> None:
    """Set ``new``'s upstream fingerprints, partition fingerprints and fingerprint from ``states``.

    Called by the planner, and by the run service again when a database source
    fetched other data than it had (its fingerprint moves, and so do its dependents').
    """
    partitioned = is_partitioned(spec)
    part_ups = [u for u in dag.upstream[node_id] if is_partitioned(dag.nodes[u])] if partitioned else []
    new.upstream = {u: states[u].fingerprint for u in dag.upstream[node_id] if u not in part_ups}
    base = [ENGINE_VERSION, node_id, new.code, new.config, new.params, sorted(new.upstream.items())]
    if new.source:  # database sources only: file sources' fingerprints stay as they were
        base.append(new.source)
    if partitioned:
        new.partitions = _partition_fingerprints(spec, dag, states, part_ups, new.files, base)
        new.fingerprint = digest([*base, sorted(new.partitions.items())])
    else:
        new.fingerprint = digest([*base, new.data])


def _partition_fingerprints(spec, dag: Dag, states: dict[str, NodeState], part_ups: list[str], files: dict,
                            base: list) -> dict[str, str]:
    if spec.kind == Kind.SOURCE:
        return {p: digest([*base, fp]) for p, fp in source_partitions(files, spec.partition_by, spec.id).items()}
    if not part_ups:
        raise PlanError(
            f"{spec.id} ({spec.location}) is partitioned but none of its inputs is; "
            "partition a source (partition_by=[...]) or drop partitioned=True"
        )
    names = sorted({p for u in part_ups for p in states[u].partitions})
    return {p: digest([*base, [states[u].partitions.get(p) for u in part_ups]]) for p in names}


DB_STATE = "db"  # the key of a database source's entry in NodeState.files


def _database_reasons(spec, old: NodeState | None, new: NodeState, reasons: list[str], full: bool) -> list[str]:
    """Why a database source runs: it has no file to compare, so it always reads; say what it reads.

    A full read (new, moved connection, changed spec, ``--full``) forgets the
    watermark, so the engine re-reads every row.
    """
    if old is not None and old.source and old.source != new.source:
        reasons = [r for r in reasons if r != "spec changed"] + ["connection changed"]
    if reasons or full:
        new.files = {}
        new.data = ""
        return reasons
    db = new.files.get(DB_STATE, {})
    if spec.incremental is not None and "watermark" in db:
        return [f"incremental: fetch rows with {spec.incremental.column} > {db.get('watermark_text', db['watermark'])}"]
    if spec.incremental is not None:
        return ["incremental: no watermark yet (the table was empty), read all rows"]
    return ["database source: re-read every run (no file to compare; dependents run only if the data changed)"]


def output_tampered(project: Project, spec, old: NodeState | None) -> bool:
    """Was the node's output rewritten since its run recorded it (size + mtime differ)?

    Sources read in place are covered by their data fingerprint; states from before
    the signature was recorded (``output == ""``) are trusted.
    """
    if old is None or not old.output or old.status != NodeStatus.OK or project.reads_in_place(spec):
        return False
    return output_signature(project.output_of(spec)) != old.output


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
    if old.status == NodeStatus.FAILED:
        reasons.append("failed last run")
    elif not output_exists:
        reasons.append("output missing")
    elif not reasons and old.partitions != new.partitions:
        reasons.append("partitions changed")  # an upstream partition added, changed or removed
    elif not reasons and old.source != new.source:
        reasons.append("connection changed")  # a database source now reads another host/database/table
    elif not reasons and old.fingerprint != new.fingerprint:
        reasons.append("engine changed")
    return reasons

"""Post-run steps as planned work: consolidate each entity, then publish it online.

Each entity gets two steps next to the nodes of the plan:

* ``consolidate.<entity>`` reads its feature groups' outputs; its fingerprint covers the
  join keys and, per group, the group node's fingerprint, event time column, ttl and the
  signature (size + mtime) of the output it read;
* ``publish.<entity>`` reads the consolidated table; its fingerprint is the consolidation's
  plus the online store it publishes to.

Both are recorded in ``run_state.json`` (``steps``) only when they finish, and marked
``running`` while they run, so a run killed anywhere leaves them stale: the next plan says
why ("group customer_features changed", "interrupted last time") and the next run repairs
them, even when no node has anything to do. Only entities whose inputs moved are rebuilt.

Example::

    state = RunState.load(project.state_path)
    steps = plan_steps(project, dag, state, plan.nodes)
    [s.id for s in steps if s.action == Action.RUN]   # ['consolidate.customer', 'publish.customer']
"""

from __future__ import annotations

import enum
import json
from collections.abc import Collection, Sequence

import msgspec

from seeknal_flow.authoring.specs import FeatureGroupSpec
from seeknal_flow.load.dag import Dag
from seeknal_flow.load.entities import entity_groups
from seeknal_flow.load.project import OnlineStoreType, Project
from seeknal_flow.plan.fingerprint import ENGINE_VERSION, digest
from seeknal_flow.plan.outputs import output_signature
from seeknal_flow.plan.planner import Action, NodePlan
from seeknal_flow.plan.run_state import RunState, StepState, StepStatus


class StepKind(str, enum.Enum):
    """What a post-run step does."""

    CONSOLIDATE = "consolidate"
    PUBLISH = "publish"


class GroupRead(msgspec.Struct, frozen=True):
    """One feature group output a consolidation reads (``node`` is empty for a group no longer in the project)."""

    name: str
    node: str
    path: str  # relative to the project root when inside it
    event_time_col: str
    ttl: str | None = None


class StepPlan(msgspec.Struct, kw_only=True):
    """One post-run step: RUN or SKIP, why, and the fingerprint it will record."""

    kind: StepKind
    entity: str
    action: Action
    reasons: list[str]
    fingerprint: str = ""
    keys: list[str] = []
    groups: list[GroupRead] = []  # consolidate only

    @property
    def id(self) -> str:
        return step_id(self.kind, self.entity)


def step_id(kind: StepKind, entity: str) -> str:
    """``consolidate.customer``: the key of a step in the plan and in ``run_state.json``.

    >>> step_id(StepKind.PUBLISH, "customer")
    'publish.customer'
    """
    return f"{kind.value}.{entity}"


def entity_reads(project: Project, dag: Dag,
                 removed: Collection[str] = ()) -> dict[str, tuple[list[str], list[GroupRead]]]:
    """Entity -> (join keys, the group outputs its consolidation reads), groups alphabetical.

    A group still in the project is read if its output exists; a group whose node is
    gone stays (from its last output, as the catalog lists it) until ``consolidate --prune``,
    unless the plan removes that node (``removed``: its output is deleted before the steps run).
    """
    out: dict[str, tuple[list[str], list[GroupRead]]] = {}
    in_project = {s.name for s in dag.nodes.values() if isinstance(s, FeatureGroupSpec)}
    for entity, (keys, specs) in sorted(entity_groups(dag).items()):
        reads = [GroupRead(s.name, s.id, _rel(project, project.intermediate_path(s.output_name)), s.event_time_col,
                           s.ttl) for s in specs]
        catalog = _catalog(project, entity)
        for name, info in sorted((catalog or {}).get("groups", {}).items()):
            if (name not in in_project and f"feature_group.{name}" not in removed
                    and (project.root / info.get("path", "")).exists()):
                reads.append(GroupRead(name, "", info["path"], info.get("event_time_col", ""), info.get("ttl")))
        out[entity] = (list(keys), sorted(reads, key=lambda g: g.name))
    return out


def consolidate_inputs(project: Project, groups: Sequence[GroupRead], fingerprints: dict[str, str]) -> dict[str, str]:
    """Group name -> what the consolidation reads of it: ``node fingerprint|output signature``.

    Groups without an output are left out.
    """
    inputs = {}
    for g in groups:
        signature = output_signature(project.root / g.path)
        if signature:
            inputs[g.name] = f"{fingerprints.get(g.node, '')}|{signature}"
    return inputs


def consolidate_fingerprint(entity: str, keys: list[str], groups: Sequence[GroupRead], inputs: dict[str, str]) -> str:
    """Everything a consolidation's output depends on."""
    spec = sorted([g.name, g.event_time_col, g.ttl] for g in groups if g.name in inputs)
    return digest([ENGINE_VERSION, "consolidate", entity, keys, spec, sorted(inputs.items())])


def publish_fingerprint(project: Project, consolidated: str) -> str:
    """The consolidation published, and where to (the store type and its password-free address)."""
    store = project.config.online_store
    where = [store.type.value]
    if store.type == OnlineStoreType.REDIS:
        where.append(_redis_identity(store))
    return digest([ENGINE_VERSION, "publish", consolidated, where])


def plan_steps(project: Project, dag: Dag, state: RunState, nodes: Sequence[NodePlan] | None = None,
               *, full: bool = False, removed: Collection[str] = ()) -> list[StepPlan]:
    """The consolidate and publish steps of every entity, RUN or SKIP with reasons.

    ``nodes``: the plan's nodes (groups about to run make their entity's steps run);
    None after the nodes ran, when ``state`` holds what they left. ``removed``: node ids
    the plan removes (Action.REMOVE).
    """
    planned = {n.node_id: n for n in nodes or ()}
    fingerprints = {node_id: ns.fingerprint for node_id, ns in state.nodes.items()}
    fingerprints.update({n.node_id: n.state.fingerprint for n in planned.values()})
    steps: list[StepPlan] = []
    for entity, (keys, groups) in entity_reads(project, dag, removed).items():
        inputs = consolidate_inputs(project, groups, fingerprints)
        running = [g for g in groups if g.node in planned and planned[g.node].action == Action.RUN]
        if not inputs and not running:
            continue  # no group has an output yet: nothing to build
        fingerprint = consolidate_fingerprint(entity, keys, groups, inputs)
        old = state.steps.get(step_id(StepKind.CONSOLIDATE, entity))
        reasons = _consolidate_reasons(project, entity, old, fingerprint, inputs, running, full)
        consolidate = StepPlan(kind=StepKind.CONSOLIDATE, entity=entity, keys=keys, groups=groups,
                               action=Action.RUN if reasons else Action.SKIP, reasons=reasons or ["unchanged"],
                               fingerprint=fingerprint)
        steps.append(consolidate)
        publish_fp = publish_fingerprint(project, fingerprint)
        old_pub = state.steps.get(step_id(StepKind.PUBLISH, entity))
        pub_reasons = _publish_reasons(project, entity, old_pub, publish_fp, consolidate)
        steps.append(StepPlan(kind=StepKind.PUBLISH, entity=entity, keys=keys,
                              action=Action.RUN if pub_reasons else Action.SKIP,
                              reasons=pub_reasons or ["unchanged"], fingerprint=publish_fp))
    return steps


# A step whose last attempt did not finish: the reason it runs again.
_UNFINISHED = {StepStatus.RUNNING: "interrupted last time", StepStatus.FAILED: "failed last run"}


def _consolidate_reasons(project: Project, entity: str, old: StepState | None, fingerprint: str,
                         inputs: dict[str, str], running: list[GroupRead], full: bool) -> list[str]:
    reasons = [f"group {g.name} runs" for g in running]
    if full:
        reasons.append("--full")
    if old is None or not old.fingerprint:
        return reasons or ["new"]
    if unfinished := _UNFINISHED.get(old.status):
        reasons.append(unfinished)
    ran = {g.name for g in running}
    for name in sorted(set(inputs) | set(old.inputs)):
        if name in ran:
            continue
        if name not in old.inputs:
            reasons.append(f"group {name} added")
        elif name not in inputs:
            reasons.append(f"group {name} removed")
        elif old.inputs[name] != inputs[name]:
            reasons.append(f"group {name} changed")
    table = project.entity_table(entity)
    if not table.exists() or not project.entity_catalog(entity).exists():
        reasons.append("entity table missing")
    elif old.output and output_signature(table) != old.output and old.status == StepStatus.OK:
        reasons.append("entity table changed outside seeknal")
    if not reasons and old.fingerprint != fingerprint:
        reasons.append("spec changed")
    return reasons


def _publish_reasons(project: Project, entity: str, old: StepState | None, fingerprint: str,
                     consolidate: StepPlan) -> list[str]:
    reasons = [f"entity {entity} rebuilt"] if consolidate.action == Action.RUN else []
    if old is None or not old.fingerprint:
        return reasons or ["new"]
    if unfinished := _UNFINISHED.get(old.status):
        reasons.append(unfinished)
    elif old.fingerprint != fingerprint and not reasons:
        reasons.append("online store changed")
    if (project.config.online_store.type == OnlineStoreType.EMBEDDED
            and not (project.online_dir(entity) / "CURRENT").exists()):
        reasons.append("not published")
    return reasons


def _catalog(project: Project, entity: str) -> dict | None:
    try:
        return json.loads(project.entity_catalog(entity).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _rel(project: Project, path) -> str:
    try:
        return str(path.relative_to(project.root))
    except ValueError:
        return str(path)


def _redis_identity(store) -> str:
    # The address without any password (the fingerprint lands in run_state.json); ${VAR} stays unexpanded.
    url = store.url or ""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rsplit('@', 1)[-1]}"

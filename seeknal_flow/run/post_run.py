"""The post-run steps of a run: consolidate the stale entities, publish each one online.

The plan lists them (``plan/post_steps.py``); after the nodes ran they are planned again
on what the nodes actually left (a conditional node may have had nothing to do, a group
may have failed and kept its previous output), then run one entity at a time:
``consolidate.<entity>`` is marked ``running`` in ``run_state.json`` before the engine
builds it and recorded with its fingerprint after; ``publish.<entity>`` likewise around
the online publish. A run killed anywhere in between leaves the step ``running`` (or its
inputs moved), so the next ``seeknal plan`` shows it stale and the next run repairs it.

Example (what the run service does after the nodes)::

    run_post_steps(ws.project, ws.dag, state, engine, summary)
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from seeknal_flow.errors import StoreError
from seeknal_flow.load.dag import Dag
from seeknal_flow.load.project import Project
from seeknal_flow.plan.outputs import output_signature
from seeknal_flow.plan.planner import Action
from seeknal_flow.plan.post_steps import StepKind, StepPlan, consolidate_inputs, plan_steps
from seeknal_flow.plan.run_state import RunState, StepState, StepStatus


def run_post_steps(project: Project, dag: Dag, state: RunState, engine, summary, *,
                   full: bool = False) -> list[StepPlan]:
    """Run every stale consolidate/publish step (re-planned on ``state``); return the steps run.

    ``engine`` is the run's :class:`~seeknal_flow.run.engine.Engine` (it builds the entity
    tables); ``summary.consolidated`` gets each entity as soon as it is published, and
    ``summary.consolidation_notes`` what its consolidation did ("1 of 3 groups recomputed").
    ``full`` (``seeknal run --full``): the entities' kept latest rows are dropped first, so
    every group is recomputed from its output.
    """
    steps = plan_steps(project, dag, state)
    if not any(s.action == Action.RUN for s in steps):
        return []
    # Imported here: the store needs DuckDB and pyarrow.compute (0.05-0.1 s), which a run
    # without entities, or with nothing to do, never uses.
    from seeknal_flow.store.consolidation import forget_kept_rows, read_catalog
    from seeknal_flow.store.online import publish

    fingerprints = {node_id: ns.fingerprint for node_id, ns in state.nodes.items()}
    done: list[StepPlan] = []
    built: dict[str, dict] = {}  # entity -> the catalog its consolidation wrote
    publishing = {s.entity: s for s in steps if s.kind == StepKind.PUBLISH and s.action == Action.RUN}
    for step in steps:
        if step.kind != StepKind.CONSOLIDATE:
            continue
        catalog = None
        if step.action == Action.RUN:
            inputs = consolidate_inputs(project, step.groups, fingerprints)
            with _recording(project, state, step, inputs):
                if full:
                    forget_kept_rows(project, step.entity, "--full")
                engine.consolidate([step.entity], built.__setitem__)
            catalog = built.get(step.entity)
            if catalog is not None and catalog.get("consolidation"):
                summary.consolidation_notes[step.entity] = catalog["consolidation"]
            done.append(step)
        pub = publishing.get(step.entity)
        if pub is None:
            continue
        if catalog is None:
            catalog = read_catalog(project, step.entity)
            if catalog is None:
                raise StoreError(f"entity '{step.entity}' has no readable catalog to publish; "
                                 "run `seeknal consolidate --force`")
        with _recording(project, state, pub, {}):
            publish(project, step.entity, catalog)
        done.append(pub)
        summary.consolidated.append(step.entity)  # as it happens: an interrupt keeps the true list
    return done


class _recording:
    """Mark a step ``running`` (saved) before it runs; ``ok`` with its fingerprint after, or ``failed``."""

    def __init__(self, project: Project, state: RunState, step: StepPlan, inputs: dict[str, str]) -> None:
        self.project, self.state, self.step, self.inputs = project, state, step, inputs
        self.began = 0.0

    def __enter__(self) -> None:
        old = self.state.steps.get(self.step.id) or StepState()
        # The previous fingerprint stays: only the status says the step never finished.
        self.state.steps[self.step.id] = StepState(fingerprint=old.fingerprint, inputs=dict(old.inputs),
                                                   status=StepStatus.RUNNING)
        self.state.save(self.project.state_path)
        self.began = time.perf_counter()

    def __exit__(self, kind, error, tb) -> bool:
        record = self.state.steps[self.step.id]
        if kind is None:
            table = self.project.entity_table(self.step.entity)
            self.state.steps[self.step.id] = StepState(
                fingerprint=self.step.fingerprint, inputs=self.inputs, status=StepStatus.OK,
                output=output_signature(table) if self.step.kind == StepKind.CONSOLIDATE else "",
                seconds=round(time.perf_counter() - self.began, 4),
                finished_at=datetime.now(UTC).isoformat(timespec="seconds"))
            self.state.save(self.project.state_path)
        elif issubclass(kind, Exception):  # a Ctrl-C leaves it "running": the next plan says interrupted
            record.status, record.error = StepStatus.FAILED, str(error).splitlines()[0] if str(error) else kind.__name__
            self.state.save(self.project.state_path)
        return False


def record_steps(project: Project, dag: Dag, entities: list[str]) -> None:
    """``seeknal consolidate`` built and published ``entities`` outside a run: record their steps as done,
    so the next run neither rebuilds them nor takes their new tables for outside changes."""
    if not entities:
        return
    state = RunState.load(project.state_path)
    fingerprints = {node_id: ns.fingerprint for node_id, ns in state.nodes.items()}
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for step in plan_steps(project, dag, state):
        if step.entity not in entities:
            continue
        consolidate = step.kind == StepKind.CONSOLIDATE
        state.steps[step.id] = StepState(
            fingerprint=step.fingerprint, status=StepStatus.OK, finished_at=now,
            inputs=consolidate_inputs(project, step.groups, fingerprints) if consolidate else {},
            output=output_signature(project.entity_table(step.entity)) if consolidate else "")
    state.save(project.state_path)

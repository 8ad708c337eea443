"""The post-run steps of a run: consolidate the stale entities, publish each one online.

The plan lists them (``plan/post_steps.py``); after the nodes ran they are planned again
on what the nodes actually left (a conditional node may have had nothing to do, a group
may have failed and kept its previous output), then run one entity at a time. An entity
whose groups all finished before the last node may already have been built on a thread
meanwhile (:class:`EarlyConsolidation`); its step then takes that result. Steps run as:
``consolidate.<entity>`` is marked ``running`` in ``run_state.json`` before the engine
builds it and recorded with its fingerprint after; ``publish.<entity>`` likewise around
the online publish. A run killed anywhere in between leaves the step ``running`` (or its
inputs moved), so the next ``seeknal plan`` shows it stale and the next run repairs it.

Example (what the run service does after the nodes)::

    run_post_steps(ws.project, ws.dag, state, engine, summary)
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

from seeknal_flow.errors import StoreError
from seeknal_flow.load.dag import Dag
from seeknal_flow.load.project import Project
from seeknal_flow.plan.outputs import output_signature
from seeknal_flow.plan.planner import Action
from seeknal_flow.plan.post_steps import StepKind, StepPlan, consolidate_inputs, entity_reads, plan_steps
from seeknal_flow.plan.run_state import RunState, StepState, StepStatus


class EarlyConsolidation:
    """Builds an entity's table on a thread once every group of it that the run computes is done.

    The run's later nodes (an SOA, a PIT transform) do not read the entity table, so
    its build (a DuckDB ``COPY``, which leaves the GIL) runs beside them and uses the
    cores they leave idle. The step is marked ``running`` in ``run_state.json`` before the
    build starts, as :func:`run_post_steps` does; that function takes the result
    (:meth:`result`), records the step and publishes. A group that failed, or did not
    run, keeps its entity for the post-run steps. :meth:`close` stops a build still under
    way (as Ctrl-C stops one) and waits for it.

    Example (what the run service does)::

        early = EarlyConsolidation(project, dag, state, engine, [n.node_id for n in plan.to_run])
        ...  # after each node that finished: early.node_done(node_id)
        run_post_steps(project, dag, state, engine, summary, early=early)
        early.close()
    """

    def __init__(self, project: Project, dag: Dag, state: RunState, engine, to_run: list[str], *,
                 full: bool = False) -> None:
        self.project, self.dag, self.state, self.engine, self.full = project, dag, state, engine, full
        self._groups = {entity: {g.node for g in groups if g.node}
                        for entity, (_, groups) in entity_reads(project, dag).items()}
        self._waiting = set(to_run)  # nodes of the run not finished (a failed one stays)
        self._built: dict[str, dict] = {}
        self._started: dict[str, tuple[Future, float]] = {}
        self._cancel = threading.Event()
        self._pool: ThreadPoolExecutor | None = None

    def node_done(self, node_id: str) -> None:
        """``node_id`` finished and was recorded: build each entity it completes, if its step must run."""
        self._waiting.discard(node_id)
        ready = [e for e, nodes in self._groups.items()
                 if node_id in nodes and e not in self._started and not nodes & self._waiting]
        if not ready or not self._waiting:
            return  # the last node: the post-run steps come next anyway
        for step in plan_steps(self.project, self.dag, self.state):
            if step.kind != StepKind.CONSOLIDATE or step.entity not in ready or step.action != Action.RUN:
                continue
            _mark_running(self.project, self.state, step)
            if self.full:
                # Imported here, as in run_post_steps: the store brings DuckDB and pyarrow.
                from seeknal_flow.store.consolidation import forget_kept_rows

                forget_kept_rows(self.project, step.entity, "--full")
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="consolidate")
            self._started[step.entity] = (self._pool.submit(self._build, step.entity), time.perf_counter())

    def _build(self, entity: str) -> None:
        # Imported here: operators.sql brings pyarrow, which a run with nothing to do never imports.
        from operators.sql import interrupted_by

        with interrupted_by(self._cancel):
            self.engine.consolidate([entity], self._built.__setitem__, alongside_nodes=True)

    def started(self, entity: str) -> float | None:
        """When the entity's build started (``time.perf_counter()``), or None if it did not."""
        started = self._started.get(entity)
        return None if started is None else started[1]

    def result(self, entity: str) -> dict | None:
        """Wait for the entity's build; return the catalog it wrote, or raise its error."""
        self._started[entity][0].result()
        return self._built.get(entity)

    def close(self) -> None:
        """Stop a build still under way (its DuckDB statement is interrupted) and wait for every build."""
        if self._pool is None:
            return
        if any(not f.done() for f, _ in self._started.values()):
            self._cancel.set()
        self._pool.shutdown(wait=True)


def run_post_steps(project: Project, dag: Dag, state: RunState, engine, summary, *,
                   full: bool = False, early: EarlyConsolidation | None = None) -> list[StepPlan]:
    """Run every stale consolidate/publish step (re-planned on ``state``); return the steps run.

    ``engine`` is the run's :class:`~seeknal_flow.run.engine.Engine` (it builds the entity
    tables); ``summary.consolidated`` gets each entity as soon as it is published, and
    ``summary.consolidation_notes`` what its consolidation did ("1 of 3 groups recomputed").
    ``full`` (``seeknal run --full``): the entities' kept latest rows are dropped first, so
    every group is recomputed from its output. ``early``: the entities already built while
    the nodes ran; their steps take that build.
    """
    # Imported here: the online store needs pyarrow, and a run with nothing to do imports none.
    from seeknal_flow.store.consolidation import forget_kept_rows, read_catalog
    from seeknal_flow.store.online import publish

    steps = plan_steps(project, dag, state)
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
            began = early.started(step.entity) if early is not None else None
            with _recording(project, state, step, inputs, began=began):
                if began is not None:
                    built[step.entity] = early.result(step.entity)
                else:
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


def _mark_running(project: Project, state: RunState, step: StepPlan) -> None:
    old = state.steps.get(step.id) or StepState()
    # The previous fingerprint stays: only the status says the step never finished.
    state.steps[step.id] = StepState(fingerprint=old.fingerprint, inputs=dict(old.inputs), status=StepStatus.RUNNING)
    state.save(project.state_path)


class _recording:
    """Mark a step ``running`` (saved) before it runs; ``ok`` with its fingerprint after, or ``failed``.

    ``began``: the step started earlier (an entity built while the nodes ran): it is already
    marked, and its time counts from then.
    """

    def __init__(self, project: Project, state: RunState, step: StepPlan, inputs: dict[str, str], *,
                 began: float | None = None) -> None:
        self.project, self.state, self.step, self.inputs = project, state, step, inputs
        self.began = began

    def __enter__(self) -> None:
        if self.began is None:
            _mark_running(self.project, self.state, self.step)
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

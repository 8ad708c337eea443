"""Removed nodes, orphaned outputs and stale temp files: what ``run`` (REMOVE) and ``seeknal clean`` delete.

A node whose file was deleted or renamed is still in ``run_state.json``; the planner lists
it as ``REMOVE`` and the run service calls :func:`remove_nodes` (under the project lock):
its output under ``target/intermediate/`` goes, a removed feature group leaves its entity
(rebuilt without it by the run's consolidate step, or dropped with its online copy and its
steps' state when it was the entity's last group), and its state entry goes. Restoring the file makes it
``new`` again. Nothing outside ``target/`` is ever deleted (a Parquet source read in
place keeps its data).

:func:`stale_temp_files` finds what a killed writer leaves: ``.<name>.<pid>.tmp`` files
whose process is gone, ``target/tmp/run-<pid>/`` folders, and pid-less staging files
(only a writer makes them, and the caller holds the writer lock).

Example::

    removed = remove_nodes(project, dag, ["feature_group.old_group"])
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from seeknal_flow.load.dag import Dag
from seeknal_flow.load.entities import entity_groups
from seeknal_flow.load.project import ENTITY_CATALOG, Project
from seeknal_flow.plan.post_steps import StepKind, step_id
from seeknal_flow.plan.run_state import RunState
from seeknal_flow.run.lock import HOLDER_FILE, LOCK_FILE, pid_alive

# `.<name>.<pid>.tmp` (atomic writes) and `run-<pid>` (per-run temp/spill folders)
_PID_TEMP = re.compile(r"^\..+\.(\d+)\.tmp$")
_RUN_DIR = re.compile(r"^run-(\d+)$")
# Staging names without a pid: `.tmp-<hex>` (partitioned outputs), `.<name>.<hex8>.tmp`
# (database sources), `.<name>.tmp` (online snapshots). Only a lock holder writes them.
_PIDLESS_TEMP = re.compile(r"^\.(tmp-[0-9a-f]+|.+\.tmp)$")


@dataclass
class Removal:
    """What :func:`remove_nodes` or :func:`clean_project` deleted (paths relative to the project)."""

    nodes: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    entities_dropped: list[str] = field(default_factory=list)
    entities_to_rebuild: list[str] = field(default_factory=list)


def output_path(project: Project, node_id: str) -> Path:
    """Where a node's output lives under ``target/intermediate/`` (from its id alone: the spec may be gone).

    >>> output_path(Project(Path("/p")), "feature_group.x")
    PosixPath('/p/target/intermediate/feature_group_x.parquet')
    """
    kind, _, name = node_id.partition(".")
    return project.intermediate_path(f"{kind}_{name}")


def remove_nodes(project: Project, dag: Dag, node_ids: Iterable[str], *, dry_run: bool = False) -> Removal:
    """Delete the outputs, entity membership, online copy and state of nodes no longer in ``dag``."""
    done = Removal()
    node_ids = [n for n in node_ids if n not in dag.nodes]
    if not node_ids:
        return done
    groups = {n.partition(".")[2] for n in node_ids if n.startswith("feature_group.")}
    for node_id in node_ids:
        out = output_path(project, node_id)
        soa_state = project.soa_states / out.name.removesuffix(".parquet")  # an incremental SOA's partial aggregates
        for path in (out, soa_state):
            if path.exists():
                done.paths.append(_rel(path, project))
                if not dry_run:
                    _delete(path)
        done.nodes.append(node_id)
    if groups:
        _leave_entities(project, dag, groups, done, dry_run)
    if not dry_run:
        state = RunState.load(project.state_path)
        steps = [step_id(kind, entity) for entity in done.entities_dropped for kind in StepKind]
        if any(n in state.nodes for n in node_ids) or any(s in state.steps for s in steps):
            for n in node_ids:
                state.nodes.pop(n, None)
            for s in steps:  # a dropped entity has no steps left; restored, it is built anew
                state.steps.pop(s, None)
            state.save(project.state_path)
    return done


def _leave_entities(project: Project, dag: Dag, groups: set[str], done: Removal, dry_run: bool) -> None:
    # Imported here: reading catalogs and unpublishing need the store (pyarrow); a run that
    # removes no feature group never loads it.
    from seeknal_flow.store.consolidation import list_catalogs
    from seeknal_flow.store.online import remove_published

    live = entity_groups(dag)
    for catalog in list_catalogs(project):
        entity = catalog["entity"]
        if not groups & set(catalog.get("groups", {})):
            continue
        if entity in live:
            # The run's consolidate step sees the group gone (its inputs changed) and rebuilds it.
            done.entities_to_rebuild.append(entity)
        else:
            done.entities_dropped.append(entity)
            done.paths.append(_rel(project.entity_dir(entity), project))
            if not dry_run:
                shutil.rmtree(project.entity_dir(entity), ignore_errors=True)
                remove_published(project, entity)


def orphaned_outputs(project: Project, dag: Dag) -> list[Path]:
    """Outputs under ``target/`` that no node of the project writes any more."""
    wanted = {project.intermediate_path(s.output_name).name for s in dag.nodes.values()}
    found: list[Path] = []
    if project.intermediate.is_dir():
        found += [p for p in sorted(project.intermediate.iterdir())
                  if p.name.endswith(".parquet") and not p.name.startswith(".") and p.name not in wanted]
    if project.soa_states.is_dir():
        found += [d for d in sorted(project.soa_states.iterdir()) if d.is_dir() and f"{d.name}.parquet" not in wanted]
    entities = set(entity_groups(dag))
    for folder in (project.feature_store, project.target / "online"):
        if folder.is_dir():
            found += [d for d in sorted(folder.iterdir()) if d.is_dir() and d.name not in entities
                      and (folder != project.feature_store or (d / ENTITY_CATALOG).exists() or not any(d.iterdir()))]
    return found


def stale_temp_files(project: Project, *, locked: bool = True) -> list[Path]:
    """Temp files and folders under ``target/`` left by writers that are gone.

    ``locked``: the caller holds the project lock, so no writer is running and pid-less
    staging files are stale too; without it only those of dead pids are reported.
    """
    if not project.target.is_dir():
        return []
    me = os.getpid()
    found: list[Path] = []
    # Strings, not Paths, while walking: a partitioned project has thousands of entries
    # (a run walks them all), and only the few matches become Paths.
    target, tmp_root = str(project.target), str(project.tmp_root)
    for folder, dirs, files in os.walk(target):
        stale = []
        for name in [*dirs, *files]:
            if name in (LOCK_FILE, HOLDER_FILE):
                continue
            m = _PID_TEMP.match(name) or (_RUN_DIR.match(name) if folder == tmp_root else None)
            if m is not None:
                pid = int(m.group(1))
                if pid != me and not pid_alive(pid):
                    stale.append(name)
            elif locked and _PIDLESS_TEMP.match(name) and folder != target:
                stale.append(name)
        if stale:
            found += [Path(folder, name) for name in stale]
            dirs[:] = [d for d in dirs if d not in stale]
    return found


def clean_project(project: Project, dag: Dag, memory, *, dry_run: bool = False) -> Removal:
    """``seeknal clean``: removed nodes (as a run would), orphaned outputs and stale temp files.

    Entities that lost a group are rebuilt and republished at once (``consolidate --prune``),
    so no reader sees a removed group's features after a clean.
    """
    removal = remove_nodes(project, dag, RunState.load(project.state_path).nodes, dry_run=dry_run)
    extra = [p for p in orphaned_outputs(project, dag) if _rel(p, project) not in removal.paths]
    extra += stale_temp_files(project)
    removal.paths += [_rel(p, project) for p in extra]
    if dry_run:
        return removal
    delete_paths(extra)
    if removal.entities_to_rebuild:
        # Imported here: consolidation needs DuckDB, which a clean with no entity to fix never loads.
        from seeknal_flow.run.post_run import record_steps
        from seeknal_flow.store.consolidation import consolidate_and_publish

        record_steps(project, dag, consolidate_and_publish(project, dag, memory, prune=True))
    return removal


def delete_paths(paths: Iterable[Path]) -> None:
    for path in paths:
        _delete(path)


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _rel(path: Path, project: Project) -> str:
    try:
        return str(path.relative_to(project.root))
    except ValueError:
        return str(path)


__all__ = ["Removal", "clean_project", "delete_paths", "orphaned_outputs", "output_path", "remove_nodes",
           "stale_temp_files"]

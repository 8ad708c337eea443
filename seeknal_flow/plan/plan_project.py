"""``plan_project``: the plan of one ``seeknal plan`` / ``seeknal run``, checked before anything runs."""

from __future__ import annotations

from typing import Any

from seeknal_flow.errors import PlanError
from seeknal_flow.load.dag import Dag
from seeknal_flow.load.project import EngineName
from seeknal_flow.load.workspace import Workspace
from seeknal_flow.plan.planner import Plan, make_plan
from seeknal_flow.plan.post_steps import plan_steps
from seeknal_flow.plan.preflight import preflight
from seeknal_flow.plan.run_state import RunState


def select_nodes(dag: Dag, nodes: tuple[str, ...] = (), tags: tuple[str, ...] = ()) -> set[str] | None:
    """The ids ``--nodes`` (ids or unambiguous names) and ``--tags`` select; None when neither is given.

    >>> select_nodes(Dag([])) is None
    True
    """
    if not nodes and not tags:
        return None
    selected = {dag.resolve(n) for n in nodes}
    for tag in tags:
        tagged = {i for i, s in dag.nodes.items() if tag in s.tags}
        if not tagged:
            raise PlanError(f"no node has tag '{tag}'")
        selected |= tagged
    return selected


def plan_project(ws: Workspace, *, full: bool = False, nodes: tuple[str, ...] = (), tags: tuple[str, ...] = (),
                 params: dict[str, Any] | None = None, engine: EngineName | None = None) -> Plan:
    """RUN/SKIP per node with reasons; every problem found before data is read is raised here.

    ``engine``: the engine the run will use, when not the project's (``--engine``).
    """
    state = RunState.load(ws.project.state_path)
    plan = make_plan(ws.project, ws.dag, state, full=full, select=select_nodes(ws.dag, nodes, tags),
                     cli_params=params or {}, engine=engine)
    plan.steps = plan_steps(ws.project, ws.dag, state, plan.nodes, full=full,
                            removed={n.node_id for n in plan.removed})
    preflight(ws.project, ws.dag, plan)
    return plan

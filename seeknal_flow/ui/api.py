"""The read-only JSON API of ``seeknal ui`` (documented in docs/ui.md).

Each handler loads what it needs from the project on every call, so the page always shows the
files and outputs as they are now (a run in another terminal, an edited node file).

Example::

    api = UiApi(Project.find())
    api.graph()["nodes"][0]["status"]      # "ok", "failed", "stale" or "never_run"
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from seeknal_flow.errors import SeeknalError, UiError
from seeknal_flow.load.project import Project
from seeknal_flow.load.workspace import Workspace
from seeknal_flow.plan.plan_project import plan_project
from seeknal_flow.plan.planner import Action
from seeknal_flow.plan.run_state import NodeStatus, RunState
from seeknal_flow.run.results import RunHistory, run_history
from seeknal_flow.store.entity_info import entity_detail, entity_rows
from seeknal_flow.ui import stats

PREVIEW_DEFAULT = 50
PREVIEW_MAX = 500
RUNS_SHOWN = 30


class UiApi:
    """The handlers; each returns a JSON-ready value or raises :class:`UiError` with its status."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def _ws(self) -> Workspace:
        return Workspace(self.project)

    def _node(self, ws: Workspace, node_id: str):
        spec = ws.dag.nodes.get(node_id)
        if spec is None:
            raise UiError(f"unknown node '{node_id}'; GET /api/graph lists the node ids", status=404)
        return spec

    def _output(self, spec) -> Path | None:
        path = self.project.output_of(spec)
        return path if path.exists() else None

    # ------------------------------------------------------------------ /api/graph
    def graph(self) -> dict:
        ws = self._ws()
        dag = ws.dag
        state = RunState.load(self.project.state_path).nodes
        plan_error = None
        try:
            planned = {n.node_id: n.action for n in plan_project(ws).nodes}
        except SeeknalError as e:  # e.g. a preflight schema problem: show the graph anyway, and why it may be stale
            planned, plan_error = {}, str(e).splitlines()[0]
        nodes = []
        for node_id in dag.order:
            spec = dag.nodes[node_id]
            st = state.get(node_id)
            if st is None:
                status = "never_run"
            elif st.status == NodeStatus.FAILED:
                status = "failed"
            elif planned.get(node_id) == Action.RUN:
                status = "stale"  # ran fine, but its code, config or inputs changed since
            else:
                status = "ok"
            nodes.append({"id": node_id, "kind": spec.kind.value, "status": status,
                          "last_run": st.finished_at or None if st else None,
                          "rows": st.rows if st else None, "duration_s": st.seconds if st else None,
                          "file": spec.location.file})
        edges = [[up, node_id] for node_id in dag.order for up in dag.upstream[node_id]]
        return {"project": self.project.config.name, "nodes": nodes, "edges": edges, "plan_error": plan_error}

    # ------------------------------------------------------------------ /api/nodes/<id>
    def node(self, node_id: str) -> dict:
        ws = self._ws()
        spec = self._node(ws, node_id)
        state = RunState.load(self.project.state_path).nodes.get(node_id)
        output = self._output(spec)
        detail = {
            "id": node_id, "kind": spec.kind.value, "file": spec.location.file, "line": spec.location.line,
            "description": spec.description, "code": self._code(spec.location.file),
            "upstream": list(ws.dag.upstream[node_id]), "downstream": list(ws.dag.downstream[node_id]),
            "output": str(output.relative_to(self.project.root)) if output and output.is_relative_to(
                self.project.root) else (str(output) if output else None),
            "schema": [], "rows": None, "partitions": sorted(state.partitions) if state else [],
            "columns": [], "history": self._history(node_id),
            "status": None if state is None else state.status.value,
            "error": (state.error or None) if state else None,
        }
        if output is not None:
            detail["schema"] = stats.schema_of(output)
            summary = stats.column_stats(self.project, output)
            detail["columns"] = summary["columns"]
            detail["rows"] = summary["columns"][0]["count"] if summary["columns"] else stats.row_count(output)
        return detail

    def _code(self, file: str) -> str:
        root = self.project.root.resolve()
        path = (root / file).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return ""  # a node file outside the project (never expected) is not served
        return path.read_text(encoding="utf-8", errors="replace")

    def _history(self, node_id: str) -> list[dict]:
        out = []
        for run in run_history(self.project, last=RUNS_SHOWN):
            for n in run.nodes:
                if n.id == node_id:
                    out.append({"run_id": run.run_id, "started_at": run.started_at, "status": n.status.value,
                                "duration_s": n.duration_s, "rows": n.rows_out})
        return out

    # ------------------------------------------------------------------ /api/nodes/<id>/preview
    def preview(self, node_id: str, limit: int) -> dict:
        spec = self._node(self._ws(), node_id)
        output = self._output(spec)
        if output is None:
            raise UiError(f"node '{node_id}' has no output yet; run `seeknal run` first", status=404)
        limit = max(0, min(limit, PREVIEW_MAX))
        return {"id": node_id, "limit": limit, **stats.preview(output, limit)}

    # ------------------------------------------------------------------ /api/entities
    def entities(self) -> dict:
        ws = self._ws()
        groups = {s.name: s for s in ws.dag.nodes.values() if s.kind.value == "feature_group"}
        out = []
        for row in entity_rows(ws):
            detail = entity_detail(ws, row.name)
            out.append({
                "name": row.name, "join_keys": detail.join_keys, "rows": detail.rows, "status": row.status.value,
                "consolidated_at": detail.consolidated_at,
                "groups": [{
                    "name": g.name, "rows": g.rows, "event_time_col": g.event_time_col, "ttl": g.ttl,
                    "last_updated": g.last_updated,
                    "description": groups[g.name].description if g.name in groups else "",
                    # A feature has no description of its own in the specs: it carries its group's.
                    "features": [{"name": f.name, "dtype": f.dtype,
                                  "description": groups[g.name].description if g.name in groups else ""}
                                 for f in g.features],
                } for g in detail.groups],
            })
        return {"entities": out}

    # ------------------------------------------------------------------ /api/runs
    def runs(self) -> bytes:
        """Already encoded: the RunResults documents as ``seeknal runs --format json`` prints them."""
        return msgspec.json.encode(RunHistory(runs=run_history(self.project, last=RUNS_SHOWN)))



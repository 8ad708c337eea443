"""``seeknal apply``: validate a draft and move it into ``seeknal/<kind folder>/``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from operators.atomic import write_atomic
from seeknal_flow.errors import RunError, SeeknalError, SpecError
from seeknal_flow.load.workspace import Workspace
from seeknal_flow.run.preview import load_draft, preview_file


@dataclass
class Applied:
    node_ids: list[str]
    target: Path
    replaced: bool
    schema: pa.Schema | None
    schema_problem: str = ""


def apply_file(ws: Workspace, file: Path, *, force: bool = False) -> Applied:
    """Validate ``file`` (spec, refs, cycles), then move it to its kind folder.

    Refuses to replace a file that defines something else unless ``force``.
    """
    specs, _dag = load_draft(ws, file)
    kinds = {s.kind for s in specs}
    if len(kinds) > 1:
        several = ", ".join(sorted(k.value for k in kinds))
        raise SpecError(f"{file}: nodes of several kinds ({several}); put one kind per file")
    kind = specs[0].kind
    target = ws.project.kind_folder(kind) / f"{specs[0].name}{file.suffix}"
    source_text = file.read_text(encoding="utf-8")
    replaced = target.exists()
    if replaced and target.resolve() != file.resolve():
        if target.read_text(encoding="utf-8") != source_text and not force:
            raise RunError(
                f"{target.relative_to(ws.project.root)} already exists with different content; "
                "pass --force to replace it"
            )
    for other in ws.dag.nodes.values() if _project_loads(ws) else []:
        other_file = (ws.project.root / other.location.file).resolve()
        if other.id in {s.id for s in specs} and other_file != target.resolve():
            raise RunError(
                f"{other.id} is already defined in {other.location}; remove that file or rename the node"
            )
    schema, problem = None, ""
    try:
        previews = preview_file(ws, file, limit=0)
        schema = previews[0].table.schema
    except SeeknalError as e:
        problem = str(e).splitlines()[0]
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, source_text.encode("utf-8"))
    if file.resolve() != target.resolve():
        file.unlink()
    return Applied([s.id for s in specs], target, replaced, schema, problem)


def _project_loads(ws: Workspace) -> bool:
    try:
        ws.dag  # noqa: B018 - building the DAG is the check
    except SeeknalError:
        return False  # the draft itself may be what fixes the project; load_draft validated it
    return True

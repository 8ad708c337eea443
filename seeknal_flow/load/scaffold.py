"""``seeknal init``: create a project's folders and ``seeknal_project.yml``."""

from __future__ import annotations

import json
from pathlib import Path

from seeknal_flow.authoring.specs import NAME_RE, Kind
from seeknal_flow.errors import ProjectError
from seeknal_flow.load.project import PROJECT_FILE
from seeknal_flow.load.yaml_schema import editor_settings, write_schemas

GITIGNORE = "target/\n__pycache__/\n"


def init_project(name: str, description: str = "", path: Path | None = None) -> Path:
    """Create a project named ``name`` in ``path`` (default: the current folder); return its root.

    >>> import tempfile
    >>> root = init_project("shop", "Customer features", Path(tempfile.mkdtemp()) / "shop")
    >>> sorted(p.name for p in (root / "seeknal").iterdir())
    ['feature_groups', 'second_order_aggregations', 'sources', 'transforms']
    """
    if not NAME_RE.match(name):
        raise ProjectError(f"project name {name!r} must match {NAME_RE.pattern}")
    root = (path if path is not None else Path.cwd()).resolve()
    if (root / PROJECT_FILE).exists():
        raise ProjectError(f"{root / PROJECT_FILE} already exists; this folder is already a project")
    if root.exists() and not root.is_dir():
        raise ProjectError(f"{root} exists and is not a folder")
    for kind in Kind:
        (root / "seeknal" / kind.folder).mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    (root / "target").mkdir(exist_ok=True)
    desc = description.replace('"', '\\"')
    (root / PROJECT_FILE).write_text(
        f'name: {name}\ndescription: "{desc}"\n'
        "# Engine settings (all optional):\n"
        "# memory_limit: 2GB      # DataFusion pool + DuckDB memory_limit; spills to target/tmp/\n"
        "# threads: 2\n"
        "# isolation: auto        # inprocess | uv | auto (PEP 723 dependencies)\n",
        encoding="utf-8",
    )
    gitignore = root / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text(GITIGNORE, encoding="utf-8")
    write_editor_hints(root)
    return root


def write_editor_hints(root: Path) -> None:
    """JSON Schemas of node files and a ``.vscode/settings.json`` pointing YAML files at them.

    An existing ``.vscode/settings.json`` is merged, never replaced.
    """
    write_schemas(root)
    settings = root / ".vscode" / "settings.json"
    current = {}
    if settings.is_file():
        try:
            current = json.loads(settings.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return  # a hand-edited file with comments: leave it alone
        if not isinstance(current, dict) or not isinstance(current.get("yaml.schemas", {}), dict):
            return  # not the shape VS Code writes: leave it alone too
    merged = {**current, "yaml.schemas": {**current.get("yaml.schemas", {}), **editor_settings()["yaml.schemas"]}}
    settings.parent.mkdir(exist_ok=True)
    settings.write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")

"""Models trained inside nodes: saved under ``target/models/<name>.joblib``, reloadable anywhere.

>>> from seeknal_flow import load_model
>>> model = load_model("churn_model", project="examples/ml-path")   # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from seeknal_flow.authoring.specs import NAME_RE
from seeknal_flow.errors import StoreError, os_error_text
from seeknal_flow.load.project import Project


def model_path(target: Path, name: str) -> Path:
    if not NAME_RE.match(name):
        raise StoreError(f"model name {name!r} must match {NAME_RE.pattern}")
    return target / "models" / f"{name}.joblib"


def save_model(model: Any, target: Path, name: str) -> Path:
    """Write ``model`` with joblib to a temp file, then rename (a failed run keeps the old model)."""
    import joblib

    path = model_path(target, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        joblib.dump(model, tmp)
        os.replace(tmp, path)
    except OSError as e:  # disk full, read-only target: the environment, said with the model's path
        raise StoreError(f"saving model '{name}': {os_error_text(OSError(e.errno, e.strerror, str(path)))}") from e
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_model(name: str, project: str | Path | None = None) -> Any:
    """Load a model saved by a node with ``ctx.save_model(model)``."""
    import joblib

    proj = Project.find(Path(project) if project else None)
    path = model_path(proj.target, name)
    if not path.exists():
        raise StoreError(f"no model '{name}' in {path.parent}; run the node that saves it first")
    return joblib.load(path)

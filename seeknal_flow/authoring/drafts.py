"""``seeknal draft``: write a node file from a template that runs once its TODOs are filled in."""

from __future__ import annotations

import string
from importlib import resources
from pathlib import Path

from seeknal_flow.authoring.specs import NAME_RE, Kind
from seeknal_flow.errors import SpecError


def draft_path(kind: Kind, name: str, python: bool, folder: Path) -> Path:
    return folder / f"draft_{kind.value}_{name}.{'py' if python else 'yml'}"


def render_draft(kind_text: str, name: str, *, python: bool, deps: list[str], description: str) -> tuple[Kind, str]:
    """Return the kind and the text of a draft node file.

    >>> kind, text = render_draft("source", "transactions", python=True, deps=["pandas"], description="")
    >>> text.splitlines()[1]
    '# dependencies = ["pandas"]'
    """
    try:
        kind = Kind.parse(kind_text)
    except ValueError as e:
        raise SpecError(f"cannot draft {kind_text!r}: {e}") from e
    if not NAME_RE.match(name):
        raise SpecError(f"node name {name!r} must match {NAME_RE.pattern}")
    if deps and not python:
        raise SpecError("--deps needs --python (YAML nodes have no Python dependencies)")
    suffix = "py" if python else "yml"
    template = resources.files("seeknal_flow.authoring.templates").joinpath(f"{kind.value}.{suffix}.tmpl").read_text()
    header = ""
    if python and deps:
        listed = ", ".join(f'"{d.strip()}"' for d in deps if d.strip())
        header = f"# /// script\n# dependencies = [{listed}]\n# ///\n"
    text = string.Template(template).substitute(
        name=name,
        description=(description or f"TODO: describe {name}").replace('"', "'"),
        header=header,
    )
    return kind, text


def write_draft(kind_text: str, name: str, *, python: bool, deps: list[str], description: str, folder: Path) -> Path:
    kind, text = render_draft(kind_text, name, python=python, deps=deps, description=description)
    path = draft_path(kind, name, python, folder)
    if path.exists():
        raise SpecError(f"{path.name} already exists; edit it, apply it, or delete it first")
    path.write_text(text, encoding="utf-8")
    return path

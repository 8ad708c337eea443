"""Find node files under ``seeknal/`` and turn them into specs without running user code."""

from __future__ import annotations

from pathlib import Path

from seeknal_flow.errors import SpecError, os_error_text
from seeknal_flow.load.project import Project
from seeknal_flow.load.python_nodes import load_python_file
from seeknal_flow.load.yaml_nodes import load_yaml_file

NODE_SUFFIXES = (".py", ".yml", ".yaml")


def load_node_file(path: Path, root: Path) -> list:
    """Specs defined in one file (``.py`` or ``.yml``/``.yaml``)."""
    if path.suffix == ".py":
        return load_python_file(path, root)
    if path.suffix in (".yml", ".yaml"):
        return load_yaml_file(path, root)
    raise SpecError(f"{path}: not a node file; expected .py, .yml or .yaml")


def node_files(project: Project) -> list[Path]:
    """Node files in a stable order (sorted paths), skipping caches and ``_private`` files."""
    if not project.nodes_dir.is_dir():
        return []
    return sorted(
        p
        for p in project.nodes_dir.rglob("*")
        if p.suffix in NODE_SUFFIXES
        and p.is_file()
        and not any(part.startswith((".", "_")) for part in p.relative_to(project.nodes_dir).parts)
    )


def discover(project: Project) -> list:
    """Every node spec of the project; all problems of all files raised together."""
    specs, problems = [], []
    for path in node_files(project):
        rel = path.relative_to(project.root)
        try:
            specs.extend(load_node_file(path, project.root))
        except SpecError as e:
            problems.extend(e.problems)
        except UnicodeDecodeError as e:
            problems.append(f"{rel}: not UTF-8 text ({e.reason}: byte 0x{e.object[e.start]:02x} at offset {e.start}); "
                            "save the file as UTF-8")
        except OSError as e:
            problems.append(f"{rel}: cannot read: {os_error_text(e)}")
    if problems:
        raise SpecError(problems)
    return specs

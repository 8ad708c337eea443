"""The house rules, checked: stages import one way, no cycles, light commands stay light, one error root.

See docs/architecture.md for the stages and why they are in this order.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# A stage may import its own stage and earlier ones, never a later one.
STAGES = ["authoring", "load", "plan", "frames", "store", "run", "serve", "repl", "ui", "cli"]
# Top-level modules of seeknal_flow and the stage they count as.
TOP = {"seeknal_flow.errors": -1, "seeknal_flow.version": -1, "seeknal_flow.pipeline": 0, "seeknal_flow": 10}


def _modules() -> dict[str, Path]:
    out = {}
    for package in ("seeknal_flow", "operators"):
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, bool, int]]:
    """(imported project module, at module level?, line) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - child.level + 1] + [base])
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in child.names]
            else:
                visit(child, inner)
                continue
            for target in targets:
                while target and target not in MODULES and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in MODULES and target != name:
                    found.append((target, top, child.lineno))

    visit(tree, True)
    return found


def _stage(module: str) -> int | None:
    if module in TOP:
        return TOP[module]
    parts = module.split(".")
    if parts[0] == "seeknal_flow" and len(parts) > 1 and parts[1] in STAGES:
        return STAGES.index(parts[1])
    return None


def test_every_module_belongs_to_a_stage_and_few_stay_flat():
    flat = [m for m in MODULES if m.startswith("seeknal_flow") and _stage(m) is None]
    assert flat == [], f"modules outside every stage: {flat}; put them in a stage package or TOP"
    top_level = [p for p in (ROOT / "seeknal_flow").glob("*.py")]
    assert len(top_level) <= 10, sorted(p.name for p in top_level)


def test_operators_never_import_seeknal_flow():
    bad = [f"{m} -> {t} (line {line})" for m in MODULES if m.startswith("operators")
           for t, _, line in _imports(m, MODULES[m]) if t.startswith("seeknal_flow")]
    assert bad == []


def test_stages_import_only_earlier_stages():
    bad = []
    for module, path in MODULES.items():
        mine = _stage(module)
        if mine is None or module == "seeknal_flow":  # the package root re-exports the public API lazily
            continue
        for target, _, line in _imports(module, path):
            theirs = _stage(target)
            if theirs is not None and theirs > mine:
                bad.append(f"{module} (line {line}) imports the later stage {target}")
    assert bad == []


def test_no_import_cycles():
    """Module-level imports form no cycle (function-level ones are listed by the next test)."""
    graph = {m: sorted({t for t, top, _ in _imports(m, p) if top}) for m, p in MODULES.items()}
    state: dict[str, int] = {}
    cycles = []

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif not state.get(nxt):
                walk(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(graph):
        if not state.get(module):
            walk(module, [module])
    assert cycles == []


def test_function_level_project_imports_say_why():
    """Outside cli/, an import of a project module inside a function needs a comment saying why
    (on its line or above its block): heavy optional engines, or what a light command must not load."""
    bad = []
    for module, path in MODULES.items():
        if module.startswith("seeknal_flow.cli"):
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        for _target, top, line in _imports(module, path):
            if top:
                continue
            here, above = lines[line - 1], line - 2
            while above >= 0 and (not lines[above].strip() or lines[above].strip().startswith(("from ", "import "))):
                above -= 1  # a comment may stand above the whole block of imports
            if "#" not in here and not (above >= 0 and lines[above].strip().startswith("#")):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {here.strip()}")
    assert bad == []


_LOADED = """import sys
from seeknal_flow.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    assert not e.code, e.code
print(sorted(m for m in ("datafusion", "pyspark", "sklearn") if m in sys.modules))
"""


@pytest.mark.parametrize("after_run", [False, True], ids=["fresh", "after-run"])
def test_plan_of_the_example_project_imports_no_engine(seeknal, example_project, after_run):
    if after_run:
        assert seeknal("run", cwd=example_project).code == 0
    r = subprocess.run([sys.executable, "-c", _LOADED, "plan"], cwd=example_project, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_dry_run_of_a_sql_node_imports_no_engine(seeknal, example_project):
    draft = example_project / "draft_transform_totals.yml"
    draft.write_text("kind: transform\nname: totals\n"
                     "sql: SELECT customer_id, SUM(revenue) AS revenue FROM ref('source.transactions') GROUP BY 1\n")
    r = subprocess.run([sys.executable, "-c", _LOADED, "dry-run", str(draft)], cwd=example_project,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"
    assert "customer_id" in r.stdout


def _exception_classes():
    for name in sorted(MODULES):
        if name.endswith("isolated_child"):
            continue  # the child's entry point runs only under `uv run`
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == module.__name__:
                yield cls


def test_every_exception_derives_from_the_one_root():
    from seeknal_flow.errors import SeeknalError

    classes = list(_exception_classes())
    assert len(classes) >= 10
    assert [c.__qualname__ for c in classes if not issubclass(c, SeeknalError)] == []


def test_the_root_is_the_one_the_public_package_exports():
    import operators.errors
    import seeknal_flow.errors

    assert seeknal_flow.errors.SeeknalError is operators.errors.SeeknalError
    assert issubclass(seeknal_flow.errors.EngineError, seeknal_flow.errors.SeeknalError)

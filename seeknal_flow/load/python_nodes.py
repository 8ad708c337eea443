"""Python node files -> specs, by reading the syntax tree (no user code runs).

Decorator arguments must be literals so they can be read without importing
the file; dependencies come from literal ``ctx.ref("kind.name")`` calls and
``ref('kind.name')`` inside string literals (SQL passed to ``ctx.duckdb.sql``).
"""

from __future__ import annotations

import ast
import copy
import re
from pathlib import Path
from typing import Any

import msgspec

from seeknal_flow.authoring.decorators import ARGS_BY_DECORATOR
from seeknal_flow.authoring.field_errors import explain_in, format_problem
from seeknal_flow.authoring.specs import ENTITY_REF, Location, PythonCode, Ref
from seeknal_flow.errors import SpecError
from seeknal_flow.load import node_builders
from seeknal_flow.load.pep723 import read_script_metadata
from seeknal_flow.load.project import output_node_id

SQL_REF = re.compile(r"""\bref\(\s*['"]([^'"]+)['"]\s*\)""")


def load_python_file(path: Path, root: Path) -> list:
    """Read every decorated node of a Python file; raise SpecError listing all problems."""
    rel = _relative(path, root)
    text = path.read_text(encoding="utf-8")
    try:
        tree = ast.parse(text, filename=rel)
    except SyntaxError as e:
        raise SpecError(f"{rel}:{e.lineno}: Python syntax error: {e.msg}") from e
    meta = read_script_metadata(text, rel)
    nodes = [(fn, dec) for fn in tree.body if (dec := _node_decorator(fn, rel)) is not None]
    shared = _shared_source(tree, {id(fn) for fn, _ in nodes})
    specs, problems = [], []
    for fn, dec in nodes:
        try:
            specs.append(_build(fn, dec, rel, path, shared, meta))
        except SpecError as e:
            problems.extend(e.problems)
    if problems:
        raise SpecError(problems)
    return specs


def _build(fn, dec: ast.Call, rel: str, path: Path, shared: str, meta) -> Any:
    kind = _decorator_name(dec.func)
    where = f"{rel}:{dec.lineno}"
    kwargs = _literal_arguments(dec, kind, where)
    kwargs.setdefault("name", fn.name)
    try:
        args = msgspec.convert(kwargs, ARGS_BY_DECORATOR[kind])
    except msgspec.ValidationError as e:
        problem = format_problem(*explain_in(kwargs, ARGS_BY_DECORATOR[kind], e))
        raise SpecError(f"{where}: @{kind} '{fn.name}': {problem}") from e
    code = PythonCode(
        path=str(path),
        function=fn.name,
        source=_function_source(fn) + "\n" + shared,
        dependencies=meta.dependencies,
        requires_python=meta.requires_python,
    )
    description = args.description or (ast.get_docstring(fn) or "").split("\n\n")[0].strip()
    return node_builders.build(
        kind,
        args,
        location=Location(rel, dec.lineno),
        refs=tuple(_refs(fn, rel)),
        python=code,
        description=description,
    )


def _node_decorator(stmt: ast.stmt, rel: str) -> ast.Call | None:
    if not isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
        return None
    found = None
    for dec in stmt.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        name = _decorator_name(target)
        if name not in ARGS_BY_DECORATOR:
            continue
        if not isinstance(dec, ast.Call):
            raise SpecError(f"{rel}:{dec.lineno}: write @{name}(...) with parentheses")
        if found is not None:
            raise SpecError(f"{rel}:{dec.lineno}: '{stmt.name}' has two node decorators; keep one")
        if isinstance(stmt, ast.AsyncFunctionDef):
            raise SpecError(f"{rel}:{stmt.lineno}: node '{stmt.name}' must be a plain def, not async")
        found = dec
    return found


def _decorator_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _literal_arguments(dec: ast.Call, kind: str, where: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if len(dec.args) > 1:
        raise SpecError(f"{where}: @{kind} takes only the name positionally; pass the rest as keywords")
    pairs = [("name", a) for a in dec.args] + [(k.arg, k.value) for k in dec.keywords]
    for key, value in pairs:
        if key is None:
            raise SpecError(f"{where}: @{kind} cannot take **kwargs; write each argument out")
        try:
            kwargs[key] = ast.literal_eval(value)
        except ValueError as e:
            raise SpecError(
                f"{rel_line(where, value)}: @{kind} argument '{key}' must be a literal "
                f"(string, number, list, dict), found `{ast.unparse(value)}`"
            ) from e
    return {k: v for k, v in kwargs.items() if v is not None}


def rel_line(where: str, node: ast.AST) -> str:
    return f"{where.rsplit(':', 1)[0]}:{node.lineno}"


def _refs(fn: ast.AST, rel: str) -> list[Ref]:
    refs: list[Ref] = []
    for node in ast.walk(fn):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "ref"
            and (node.args or node.keywords)
        ):
            arg = node.args[0] if node.args else node.keywords[0].value
            if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                raise SpecError(
                    f"{rel}:{node.lineno}: ctx.ref() needs a string literal such as "
                    f"ctx.ref(\"source.transactions\"), found `{ast.unparse(arg)}`"
                )
            refs.append(Ref(arg.value, Location(rel, node.lineno)))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "features"
            and (len(node.args) >= 2 or any(k.arg == "features" for k in node.keywords))
        ):
            arg = node.args[1] if len(node.args) >= 2 else next(k.value for k in node.keywords if k.arg == "features")
            refs.extend(_feature_refs(arg, rel))
        elif isinstance(node, ast.Call) and _decorator_name(node.func) in _READERS:
            refs.extend(_reader_refs(node, rel))
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            for m in SQL_REF.finditer(node.value):
                refs.append(Ref(m.group(1), Location(rel, node.lineno)))
            for m in OUTPUT_PATH.finditer(node.value):  # a node's output read by path
                if (target := output_node_id(m.group(0))) is not None:
                    refs.append(Ref(target, Location(rel, node.lineno)))
    return refs


# Readers of other nodes' outputs whose literal arguments name what they read.
_READERS = ("FeatureLookup", "OnlineFeaturesDuckDB")
OUTPUT_PATH = re.compile(r"target/intermediate/\w+\.parquet")


def _literal(call: ast.Call, position: int, keyword: str):
    """The literal value of an argument (positional or keyword), or None when absent or computed."""
    node = call.args[position] if len(call.args) > position else next(
        (k.value for k in call.keywords if k.arg == keyword), None)
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None  # computed: the run-time check (frames/reads.py) catches an undeclared read


def _reader_refs(call: ast.Call, rel: str) -> list[Ref]:
    """``FeatureLookup(source="fg")`` -> the group; ``OnlineFeaturesDuckDB(entity=, features=)`` -> its groups."""
    where = Location(rel, call.lineno)
    if _decorator_name(call.func) == "FeatureLookup":
        source = _literal(call, 0, "source")
        if isinstance(source, str) and source:
            return [Ref(source if "." in source else f"feature_group.{source}", where)]
        return []
    features = _literal(call, 1, "features")
    if isinstance(features, list | tuple) and features:
        groups = dict.fromkeys(str(f).split(".", 1)[0] for f in features if isinstance(f, str))
        return [Ref(f"feature_group.{g}", where) for g in groups]
    entity = _literal(call, 0, "entity")
    if isinstance(entity, str) and entity:
        return [Ref(f"{ENTITY_REF}{entity}", where)]  # every group of the entity (load/dag.py)
    return []


def _feature_refs(arg: ast.expr, rel: str) -> list[Ref]:
    """``ctx.features("customer", ["customer_features.total_revenue"])`` -> feature_group refs."""
    try:
        names = ast.literal_eval(arg)
    except ValueError as e:
        raise SpecError(
            f"{rel}:{arg.lineno}: ctx.features() needs a literal list of 'group.feature' names, "
            f"found `{ast.unparse(arg)}`"
        ) from e
    groups = dict.fromkeys(str(n).split(".", 1)[0] for n in names if isinstance(n, str))
    return [Ref(f"feature_group.{g}", Location(rel, arg.lineno)) for g in groups]


def _function_source(fn: ast.FunctionDef) -> str:
    # The decorator's arguments are hashed through the spec (config, params);
    # keeping them here would re-run a node when only its description changed.
    fn = _without_docstrings(copy.deepcopy(fn))
    fn.decorator_list = []
    return ast.unparse(fn)


def _shared_source(tree: ast.Module, node_ids: set[int]) -> str:
    body = [copy.deepcopy(s) for s in tree.body if id(s) not in node_ids]
    module = _without_docstrings(ast.Module(body=body, type_ignores=[]))
    return ast.unparse(module)


def _without_docstrings(tree: ast.AST) -> ast.AST:
    """Drop every docstring (module, class, function) so doc edits never change a hash."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or ([] if isinstance(node, ast.Module) else [ast.Pass()])
    return tree


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)

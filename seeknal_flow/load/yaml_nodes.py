"""YAML node files -> specs, with every problem reported as ``FILE:LINE: field 'x': ...``.

PyYAML's default loader reads ``on``/``off``/``yes``/``no`` as booleans (YAML 1.1);
node files use YAML 1.2 booleans (``true``/``false`` only), so ``on_run: warn``
and a column called ``on`` mean what they say.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import yaml

from seeknal_flow.authoring.decorators import FeatureGroupArgs, SOAArgs, SourceArgs, TransformArgs
from seeknal_flow.authoring.field_errors import explain_in, format_problem
from seeknal_flow.authoring.specs import Kind, Location, Ref
from seeknal_flow.errors import SpecError
from seeknal_flow.load import node_builders
from seeknal_flow.load.python_nodes import SQL_REF


class _Loader(yaml.SafeLoader):
    pass


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class YamlSource(SourceArgs, frozen=True, kw_only=True, forbid_unknown_fields=True):
    kind: str
    name: str


class YamlTransform(TransformArgs, frozen=True, kw_only=True, forbid_unknown_fields=True):
    kind: str
    name: str
    sql: str


class YamlFeatureGroup(FeatureGroupArgs, frozen=True, kw_only=True, forbid_unknown_fields=True):
    kind: str
    name: str
    sql: str


class YamlSOA(SOAArgs, frozen=True, kw_only=True, forbid_unknown_fields=True):
    kind: str
    name: str
    source: str


YAML_MODELS: dict[Kind, type] = {
    Kind.SOURCE: YamlSource,
    Kind.TRANSFORM: YamlTransform,
    Kind.FEATURE_GROUP: YamlFeatureGroup,
    Kind.SECOND_ORDER_AGGREGATION: YamlSOA,
}


def load_yaml_file(path: Path, root: Path) -> list:
    """Read one YAML node file (one node per file)."""
    rel = _relative(path, root)
    text = path.read_text(encoding="utf-8")
    data, lines, spans = parse_yaml_with_spans(text, rel)
    if not isinstance(data, dict):
        raise SpecError(f"{rel}:1: a node file must be a mapping with 'kind' and 'name'")
    kind_text = data.get("kind")
    kind_line = lines.get(("kind",), 1)
    if kind_text is None:
        raise SpecError(f"{rel}:1: field 'kind': required field is missing; valid: {_kinds()}")
    try:
        kind = Kind.parse(str(kind_text))
    except ValueError as e:
        raise SpecError(f"{rel}:{kind_line}: field 'kind': unknown kind {kind_text!r}; valid: {_kinds()}") from e
    model = YAML_MODELS.get(kind)
    if model is None:
        raise SpecError(f"{rel}:{kind_line}: kind '{kind.value}' is not supported in YAML yet")
    _null_check_type(data)
    try:
        args = msgspec.convert(data, model)
    except msgspec.ValidationError as e:
        path_, problem = explain_in(data, model, e)
        raise SpecError(f"{rel}:{_line_for(lines, path_)}: {format_problem(path_, problem)}") from e
    sql = getattr(args, "sql", None)
    location = Location(rel, lines.get(("name",), 1))
    refs = tuple(_sql_refs(text, spans.get(("sql",)), rel)) if sql else ()
    return [node_builders.build(kind.value, args, location=location, refs=refs, sql=sql, extra={"lines": lines})]


def _null_check_type(data: dict) -> None:
    """Read ``type: null`` in a check as the null-check.

    YAML reads a bare ``null`` as no value; ``type`` is required, so the only check a
    user can mean by it is the one named "null".
    """
    for check in data.get("validation") or ():
        if isinstance(check, dict) and "type" in check and check["type"] is None:
            check["type"] = "null"


def parse_yaml(text: str, rel: str) -> tuple[Any, dict[tuple, int]]:
    """Parse YAML; return the data and a map from key path to 1-based line.

    >>> parse_yaml("a:\\n  b: [1, 2]\\n", "x.yml")[1][("a", "b")]
    2
    """
    data, lines, _ = parse_yaml_with_spans(text, rel)
    return data, lines


def parse_yaml_with_spans(text: str, rel: str) -> tuple[Any, dict[tuple, int], dict[tuple, tuple[int, int]]]:
    """Like :func:`parse_yaml`, plus each scalar value's character span in ``text``."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}, {}
        lines: dict[tuple, int] = {}
        spans: dict[tuple, tuple[int, int]] = {}
        _index(node, (), lines, rel, spans, [MAX_YAML_NODES])
        return loader.construct_document(node), lines, spans
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 1
        raise SpecError(f"{rel}:{line}: YAML syntax error: {e.problem or e.context}") from e
    except RecursionError as e:  # PyYAML composes recursively: thousands of nested brackets
        raise SpecError(f"{rel}: YAML nested deeper than {MAX_YAML_DEPTH} levels; flatten the structure") from e
    finally:
        loader.dispose()


# Bounds on a YAML document as expanded (aliases counted at every use): a node file is a few
# dozen values, and an "alias bomb" (each anchor repeating the previous one ten times) would
# otherwise expand to billions; deep nesting would exhaust the stack.
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 64


def _index(node: yaml.Node, path: tuple, lines: dict[tuple, int], rel: str, spans: dict, budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise SpecError(f"{rel}:{node.start_mark.line + 1}: YAML expands to more than {MAX_YAML_NODES:,} values "
                        "(aliases repeating aliases?); write the values out or split the file")
    if len(path) > MAX_YAML_DEPTH:
        raise SpecError(f"{rel}:{node.start_mark.line + 1}: YAML nested deeper than {MAX_YAML_DEPTH} levels; "
                        "flatten the structure")
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode):
        spans[path] = (node.start_mark.index, node.end_mark.index)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.value in seen:
                raise SpecError(f"{rel}:{key.start_mark.line + 1}: key '{key.value}' appears twice")
            seen.add(key.value)
            lines[path + (key.value,)] = key.start_mark.line + 1
            _index(value, path + (key.value,), lines, rel, spans, budget)
            lines[path + (key.value,)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, path + (i,), lines, rel, spans, budget)


def _line_for(lines: dict[tuple, int], path: list) -> int:
    key = tuple(path)
    while key and key not in lines:
        key = key[:-1]
    return lines.get(key, 1)


def _sql_refs(text: str, span: tuple[int, int] | None, rel: str) -> list[Ref]:
    # Search the raw file text of the value: its line numbers are the file's,
    # whatever the scalar style (plain, quoted, literal | or folded >).
    start, end = span or (0, len(text))
    return [
        Ref(m.group(1), Location(rel, text.count("\n", 0, start + m.start()) + 1))
        for m in SQL_REF.finditer(text[start:end])
    ]


def _kinds() -> str:
    return ", ".join(k.value for k in Kind)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)

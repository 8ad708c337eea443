"""YAML node files: typed validation with FILE:LINE: field 'x': problem, and ref() lines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from seeknal_flow.authoring.specs import FeatureGroupSpec, Location, Ref, SourceFormat, SourceSpec, TransformSpec
from seeknal_flow.errors import SpecError
from seeknal_flow.load.yaml_nodes import load_yaml_file, parse_yaml

REL = "seeknal/transforms/node.yml"


def _path(tmp_path: Path, text: str) -> Path:
    path = tmp_path / REL
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _load(tmp_path: Path, text: str):
    specs = load_yaml_file(_path(tmp_path, text), tmp_path)
    assert len(specs) == 1
    return specs[0]


def _error(tmp_path: Path, text: str, expected: str) -> str:
    with pytest.raises(SpecError, match=re.escape(expected)) as info:
        load_yaml_file(_path(tmp_path, text), tmp_path)
    message = str(info.value)
    assert message.startswith(expected)
    return message


# --------------------------------------------------------------------- valid


def test_source_node(tmp_path):
    spec = _load(
        tmp_path,
        "kind: source\n"
        "name: orders\n"
        "description: Raw orders\n"
        "source: csv\n"
        "table: data/orders.csv\n"
        "columns:\n"
        "  order_id: the key\n"
        "params:\n"
        "  delimiter: ';'\n"
        "partition_by: [day]\n"
        "tags: [raw]\n",
    )
    assert isinstance(spec, SourceSpec)
    assert spec.id == "source.orders"
    assert spec.location == Location(REL, 2)
    assert spec.format == SourceFormat.CSV
    assert spec.columns == {"order_id": "the key"}
    assert spec.params == {"delimiter": ";"}
    assert spec.partition_by == ("day",)
    assert spec.tags == ("raw",)
    assert spec.description == "Raw orders"


def test_feature_group_node(tmp_path):
    spec = _load(
        tmp_path,
        "kind: feature-group\n"
        "name: cust\n"
        "entity:\n"
        "  name: customer\n"
        "  join_keys: [cid]\n"
        "event_time_col: ts\n"
        "ttl: 30d\n"
        "sql: SELECT cid, ts FROM ref('source.orders')\n",
    )
    assert isinstance(spec, FeatureGroupSpec)
    assert spec.id == "feature_group.cust"
    assert spec.entity.join_keys == ("cid",)
    assert spec.event_time_col == "ts"
    assert spec.ttl == "30d"
    assert spec.refs == (Ref("source.orders", Location(REL, 8)),)


def test_bare_null_check_type_is_the_null_check(tmp_path):
    text = ("kind: feature_group\nname: cust\nentity: {name: customer, join_keys: [cid]}\nevent_time_col: ts\n"
            "sql: SELECT cid, ts FROM ref('source.orders')\nvalidation:\n"
            "  - {type: %s, columns: [cid], on_run: fail}\n")
    bare, quoted = _load(tmp_path, text % "null"), _load(tmp_path, text % '"null"')
    assert type(bare.validation[0]).__name__ == "NullCheck"
    assert bare.validation == quoted.validation


def test_on_key_and_yes_no_values_are_not_booleans(tmp_path):
    spec = _load(
        tmp_path,
        "kind: source\n"
        "name: flags\n"
        "table: data/flags.csv\n"
        "columns:\n"
        "  on: whether the device was on\n"
        "  off: its opposite\n"
        "  yes: a survey answer\n"
        "params:\n"
        "  null_values: [no, off]\n"
        "  header: true\n",
    )
    assert spec.columns == {"on": "whether the device was on", "off": "its opposite", "yes": "a survey answer"}
    assert spec.params == {"null_values": ["no", "off"], "header": True}


def test_yaml_12_booleans_only(tmp_path):
    _error(
        tmp_path,
        "kind: transform\nname: t\nsql: SELECT 1\npartitioned: yes\n",
        f"{REL}:4: field 'partitioned': expected `bool`, got `str`",
    )
    spec = _load(tmp_path, "kind: transform\nname: t\nsql: SELECT 1\npartitioned: True\n")
    assert spec.partitioned is True


def test_parse_yaml_maps_key_paths_to_lines():
    data, lines = parse_yaml("a:\n  b: [1, 2]\n  c:\n    - x\n    - y\non: 1\n", "x.yml")
    assert data == {"a": {"b": [1, 2], "c": ["x", "y"]}, "on": 1}
    assert lines[("a",)] == 1
    assert lines[("a", "b")] == 2
    assert lines[("a", "c", 1)] == 5
    assert lines[("on",)] == 6


# -------------------------------------------------------------------- errors


def test_unknown_field(tmp_path):
    _error(tmp_path, "kind: transform\nname: t\n\nsqll: SELECT 1\nsql: SELECT 1\n", f"{REL}:4: field 'sqll': unknown field; did you mean 'sql'?")


def test_unknown_nested_field(tmp_path):
    _error(
        tmp_path,
        "kind: feature_group\nname: f\nsql: SELECT 1\nentity:\n  name: customer\n  join_key: [cid]\n",
        f"{REL}:6: field 'entity.join_key': unknown field",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kind: transform\nname: t\nsql: SELECT 1\ndescription: 12\n", "4: field 'description': expected `str | null`, got `int`"),
        ("kind: transform\nname: t\nsql: SELECT 1\ntags: daily\n", "4: field 'tags': expected `array`, got `str`"),
        ("kind: transform\nname: t\ntags:\n  - a\n  - [b]\nsql: SELECT 1\n", "5: field 'tags[1]': expected `str`, got `array`"),
        ("kind: source\nname: s\ntable: x.csv\ncolumns:\n  a: ok\n  b: 3\n", "6: field 'columns.b': expected `str`, got `int`"),
        ("kind: transform\nname: t\nsql: 12\n", "3: field 'sql': expected `str`, got `int`"),
        ("kind: source\nname: s\ntable: x\nsource: xml\n", "4: field 'source': invalid enum value 'xml'; valid: csv, parquet, json, jsonl"),
        ("kind: transform\nname: t\nsql: x\nisolation: docker\n", "4: field 'isolation': invalid enum value 'docker'; valid: inprocess, uv, auto"),
        ("kind: feature_group\nname: f\nsql: x\nentity:\n  name: c\n  join_keys: cid\n", "6: field 'entity.join_keys': expected `array | null`, got `str`"),
    ],
    ids=["description", "tags", "tags-item", "columns-value", "sql", "source-enum", "isolation-enum", "join-keys"],
)
def test_wrong_type(tmp_path, text, expected):
    _error(tmp_path, text, f"{REL}:{expected}")


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("kind: transform\nname: t\ndescription: x\n", "sql"),
        ("kind: source\nname: s\n", "table"),
        ("kind: feature_group\nsql: SELECT 1\n", "name"),
    ],
)
def test_missing_required_field(tmp_path, text, field):
    _error(tmp_path, text, f"{REL}:1: field '{field}': required field is missing")


def test_missing_kind_lists_the_kinds(tmp_path):
    _error(
        tmp_path,
        "name: t\nsql: SELECT 1\n",
        f"{REL}:1: field 'kind': required field is missing; valid: source, transform, feature_group, second_order_aggregation",
    )


def test_unknown_kind_names_its_line(tmp_path):
    _error(tmp_path, "# a comment\n\nkind: trnsform\nname: t\n", f"{REL}:3: field 'kind': unknown kind 'trnsform'; valid: source")


def test_bad_name(tmp_path):
    _error(tmp_path, "kind: transform\nname: bad-name\nsql: SELECT 1\n", f"{REL}:2: name 'bad-name' must match ^[A-Za-z_][A-Za-z0-9_]*$")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kind: transform\nname: t\nsql: [SELECT 1\n", "4: YAML syntax error: expected ',' or ']'"),
        ("kind: transform\nname: t\n  sql: x\n", "3: YAML syntax error: mapping values are not allowed here"),
        ("kind: transform\nname: 'unterminated\n", "3: YAML syntax error:"),
    ],
)
def test_yaml_syntax_error(tmp_path, text, expected):
    _error(tmp_path, text, f"{REL}:{expected}")


def test_duplicate_keys(tmp_path):
    _error(tmp_path, "kind: transform\nname: t\nsql: SELECT 1\nname: u\n", f"{REL}:4: key 'name' appears twice")


def test_duplicate_nested_keys(tmp_path):
    _error(
        tmp_path,
        "kind: source\nname: s\ntable: x.csv\nparams:\n  delimiter: ';'\n  delimiter: ','\n",
        f"{REL}:6: key 'delimiter' appears twice",
    )


@pytest.mark.parametrize("text", ["- kind: transform\n", "", "just text\n"])
def test_not_a_mapping(tmp_path, text):
    _error(tmp_path, text, f"{REL}:1: a node file must be a mapping with 'kind' and 'name'")


def test_errors_are_one_line(tmp_path):
    message = _error(tmp_path, "kind: transform\nname: t\nsql: [SELECT 1\n", f"{REL}:4:")
    assert "\n" not in message


# ---------------------------------------------------------------------- refs


def test_refs_in_a_literal_block(tmp_path):
    spec = _load(
        tmp_path,
        "kind: transform\n"
        "name: t\n"
        "sql: |\n"
        "  SELECT *\n"
        "  FROM ref('source.a') a\n"
        "  JOIN ref(\"source.b\") b USING (id)\n",
    )
    assert [(r.target, r.location.line) for r in spec.refs] == [("source.a", 5), ("source.b", 6)]
    assert all(r.location.file == REL for r in spec.refs)


def test_refs_in_a_literal_block_with_leading_blank_line(tmp_path):
    spec = _load(tmp_path, "kind: transform\nname: t\nsql: |\n\n  SELECT *\n  FROM ref('source.a')\n")
    assert [(r.target, r.location.line) for r in spec.refs] == [("source.a", 6)]


def test_refs_on_one_line(tmp_path):
    spec = _load(tmp_path, "kind: transform\nname: t\nsql: SELECT * FROM ref('source.a') JOIN ref('source.b') USING (id)\n")
    assert [(r.target, r.location.line) for r in spec.refs] == [("source.a", 3), ("source.b", 3)]


def test_no_refs_without_sql_refs(tmp_path):
    assert _load(tmp_path, "kind: transform\nname: t\nsql: SELECT 1\n").refs == ()


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("kind: transform\nname: t\nsql: |\n  SELECT * FROM ref('source.a')\n", 4),
        ("kind: transform\nname: t\nsql: >\n  SELECT *\n  FROM ref('source.a')\n", 5),
        ("kind: transform\nname: t\nsql:\n  SELECT *\n  FROM ref('source.a')\n", 5),
        ("kind: transform\nname: t\nsql: \"SELECT *\n  FROM ref('source.a')\"\n", 4),
    ],
    ids=["one-line-literal-block", "folded-block", "plain-multiline", "quoted-multiline"],
)
def test_ref_lines_for_other_scalar_styles(tmp_path, text, line):
    spec = _load(tmp_path, text)
    assert [(r.target, r.location.line) for r in spec.refs] == [("source.a", line)]


def test_transform_spec_holds_the_sql(tmp_path):
    spec = _load(tmp_path, "kind: transform\nname: t\nsql: SELECT 1\nparams: {k: 1}\n")
    assert isinstance(spec, TransformSpec)
    assert spec.sql == "SELECT 1"
    assert spec.python is None
    assert spec.params == {"k": 1}

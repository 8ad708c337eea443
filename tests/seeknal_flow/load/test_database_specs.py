"""Database source specs from YAML: what is accepted, and one-line errors for what is not."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from seeknal_flow.authoring.specs import SourceFormat
from seeknal_flow.errors import PlanError, SpecError
from seeknal_flow.load.connections import expand, identity, redact, secrets_of
from seeknal_flow.load.yaml_nodes import load_yaml_file

REL = "seeknal/sources/orders.yml"


def _load(tmp_path: Path, text: str):
    path = tmp_path / REL
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return load_yaml_file(path, tmp_path)[0]


def test_full_postgres_source(tmp_path):
    spec = _load(tmp_path, "kind: source\nname: orders\nsource: postgres\nconnection: ${SHOP_PG_URL}\n"
                           "table: public.orders\nincremental:\n  column: updated_at\n"
                           "partition_on: {column: id, partitions: 4}\n")
    assert spec.format == SourceFormat.POSTGRES and spec.is_database
    assert (spec.connection, spec.table, spec.incremental.column) == ("${SHOP_PG_URL}", "public.orders", "updated_at")
    assert (spec.partition_on.column, spec.partition_on.partitions) == ("id", 4)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("source: postgres\ntable: t\n", "source 'orders': field 'connection': required for postgres sources"),
        ("source: postgres\nconnection: x\n", "give exactly one of 'table' (e.g. public.orders) or 'query'"),
        ("source: postgres\nconnection: x\ntable: t\nquery: SELECT 1\n", "give exactly one of 'table'"),
        ("source: postgres\nconnection: x\ntable: t\npartition_by: [day]\n", "field 'partition_by' is for Hive"),
        ("source: postgres\nconnection: x\ntable: t\npartition_on: {column: id, partitions: 0}\n",
         "field 'partition_on.partitions': must be between 1 and 64, found 0"),
        ("source: csv\ntable: a.csv\nconnection: x\n", "field 'connection' is for database sources"),
    ],
)
def test_bad_database_specs(tmp_path, body, expected):
    with pytest.raises(SpecError, match=re.escape(expected)):
        _load(tmp_path, f"kind: source\nname: orders\n{body}")


def test_missing_variable_names_it_and_the_node(tmp_path):
    spec = _load(tmp_path, "kind: source\nname: orders\nsource: postgres\nconnection: ${NOPE_URL}\ntable: t\n")
    with pytest.raises(PlanError, match=re.escape(
            f"source.orders ({REL}:2): connection: environment variable NOPE_URL is not set")):
        expand(spec, {})


def test_identity_has_no_password_and_redaction_removes_it(tmp_path):
    spec = _load(tmp_path, "kind: source\nname: orders\nsource: postgres\nconnection: ${U}\ntable: t\n")
    url = expand(spec, {"U": "postgresql://shop:s3cr%2Ft@db:5433/sales?sslmode=require"})
    who = identity(spec, url)
    assert who == {"driver": "postgres", "table": "t", "query": "", "host": "db", "port": "5433",
                   "database": "sales", "user": "shop"}
    assert "s3cr" not in repr(who)
    assert redact(f"failed for {url} with s3cr/t", secrets_of(url)) == "failed for *** with ***"

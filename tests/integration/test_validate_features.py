"""`seeknal validate-features` and `on_run` checks: every check type passing and failing, both modes."""

from __future__ import annotations

import pytest

GROUP = '''from seeknal_flow import feature_group


@feature_group(name="scores", entity="customer", validation={validation})
def scores(ctx):
    return ctx.duckdb.sql("""
        SELECT * FROM (VALUES
            ('c1', 10.0, TIMESTAMP '2026-01-01 00:00:00', 'a'),
            ('c2', NULL, TIMESTAMP '2026-01-02 00:00:00', 'b'),
            ('c3', 500.0, TIMESTAMP '2026-01-03 00:00:00', 'b'),
            ({fourth_key}, 20.0, TIMESTAMP '2026-01-03 00:00:00', 'c')
        ) AS t(customer_id, score, event_time, segment)
    """)
'''


def _project(seeknal, tmp_path, validation: str, fourth_key: str = "'c4'"):
    root = tmp_path / "p"
    root.mkdir()
    assert seeknal("init", "--name", "p", cwd=root).code == 0
    (root / "seeknal/feature_groups/scores.py").write_text(GROUP.format(validation=validation, fourth_key=fourth_key))
    return root


CASES = [
    ('[{"type": "null", "columns": ["score"], "max_fraction": 0.3}]', "null score: 25.0% ≤ 30.0% PASS", True),
    ('[{"type": "null", "columns": ["score"]}]', "null score: 25.0% > 0.0% FAIL", False),
    ('[{"type": "range", "column": "score", "min": 0, "max": 1000}]', "range score [0, 1000]: 0 rows outside (min 10.0, max 500.0) PASS", True),
    ('[{"type": "range", "column": "score", "min": 0, "max": 100}]', "range score [0, 100]: 1 rows outside (min 10.0, max 500.0) FAIL", False),
    ('[{"type": "unique", "columns": ["customer_id"]}]', "unique (customer_id): 0 duplicate rows PASS", True),
    ('[{"type": "unique", "columns": ["segment"]}]', "unique (segment): 1 duplicate rows FAIL", False),
    ('[{"type": "freshness", "max_age": "100000d"}]', "freshness event_time: newest 2026-01-03 00:00", True),
    ('[{"type": "freshness", "max_age": "1d"}]', "> 1d FAIL", False),
    ('[{"type": "schema"}]', "schema: no column dropped or retyped PASS", True),
]


@pytest.mark.parametrize("validation,line,passes", CASES)
def test_each_check_type_passes_and_fails(seeknal, tmp_path, validation, line, passes):
    root = _project(seeknal, tmp_path, validation)
    r = seeknal("run", cwd=root)
    assert r.code == 0, r.text
    r = seeknal("validate-features", "scores", cwd=root)
    assert line in r.out, r.text
    assert r.code == (0 if passes else 1)
    assert "Traceback" not in r.text
    r = seeknal("validate-features", "feature_group.scores", "--mode", "warn", cwd=root)
    assert r.code == 0, r.text
    assert (line if passes else line.replace("FAIL", "WARN")) in r.out


def test_builtin_entity_checks(seeknal, tmp_path):
    root = _project(seeknal, tmp_path, "[]", fourth_key="NULL")
    assert seeknal("run", cwd=root).code == 0
    r = seeknal("validate-features", "scores", "--mode", "warn", cwd=root)
    assert "null customer_id: 25.0% > 0.0% WARN" in r.out
    assert "unique (customer_id, event_time): 0 duplicate rows PASS" in r.out
    assert "1 warned" in r.out
    r = seeknal("validate-features", "scores", cwd=root)
    assert r.code == 1 and "check failed: null customer_id" in r.err


def test_fail_mode_stops_at_the_first_failure(seeknal, tmp_path):
    root = _project(seeknal, tmp_path, '[{"type": "null", "columns": ["score"]}, {"type": "unique", "columns": ["segment"]}]')
    assert seeknal("run", cwd=root).code == 0
    r = seeknal("validate-features", "scores", cwd=root)
    assert r.code == 1 and "null score" in r.out and "unique (segment)" not in r.out


def test_schema_drift_fails_per_column_until_accepted(seeknal, tmp_path):
    # no schema check declared: a group with an entity always compares with its accepted schema
    root = _project(seeknal, tmp_path, "[]")
    assert seeknal("run", cwd=root).code == 0
    assert "schema: no column dropped or retyped PASS" in seeknal("validate-features", "scores", cwd=root).out
    path = root / "seeknal/feature_groups/scores.py"
    path.write_text(path.read_text().replace(
        "SELECT * FROM", "SELECT customer_id, CAST(score AS VARCHAR) AS score, event_time, segment AS seg FROM"))
    assert seeknal("run", cwd=root).code == 0
    # the run state now holds the new schema; the accepted one (entity catalog) does not
    r = seeknal("validate-features", "scores", cwd=root)
    assert r.code == 1
    assert "schema scores.score: decimal128(4, 1) -> string (retyped) FAIL" in r.out
    assert "schema scores.segment: string -> missing (dropped or renamed) FAIL" in r.out
    assert r.err.count("error:") == 1 and "Traceback" not in r.text
    warn = seeknal("validate-features", "scores", "--mode", "warn", cwd=root)
    assert warn.code == 0 and "schema scores.score: decimal128(4, 1) -> string (retyped) WARN" in warn.out
    assert "null customer_id: 0.0% ≤ 0.0% PASS" in warn.out  # data checks keep working

    r = seeknal("validate-features", "scores", "--accept-schema", cwd=root)
    assert r.code == 0, r.text
    assert "feature_group.scores: accepted schema (customer_id string, score string, event_time" in r.out
    r = seeknal("validate-features", "scores", cwd=root)
    assert r.code == 0, r.text
    assert "schema: no column dropped or retyped PASS" in r.out
    assert seeknal("run", "--full", cwd=root).code == 0  # a rebuilt catalog keeps the accepted schema
    assert seeknal("validate-features", "scores", cwd=root).code == 0


def test_accept_schema_needs_an_entity(seeknal, tmp_path):
    root = _project(seeknal, tmp_path, "[]")
    path = root / "seeknal/feature_groups/scores.py"
    path.write_text(path.read_text().replace(', entity="customer"', ""))
    assert seeknal("run", cwd=root).code == 0
    r = seeknal("validate-features", "scores", "--accept-schema", cwd=root)
    assert r.code == 1 and "feature_group.scores has no entity" in r.err


def test_on_run_fail_keeps_previous_output_and_warn_reports(seeknal, tmp_path):
    root = _project(seeknal, tmp_path, '[{"type": "schema", "on_run": "fail"}, '
                                       '{"type": "freshness", "max_age": "1d", "on_run": "warn"}]')
    r = seeknal("run", cwd=root)
    assert r.code == 0, r.text
    assert "check freshness event_time" in r.out and "WARN" in r.out
    out = root / "target/intermediate/feature_group_scores.parquet"
    before = out.read_bytes()
    path = root / "seeknal/feature_groups/scores.py"
    path.write_text(path.read_text().replace("SELECT * FROM", "SELECT customer_id, event_time, segment FROM"))
    r = seeknal("run", cwd=root)
    assert r.code == 1
    assert "check failed: schema scores.score: decimal128(4, 1) -> missing (dropped or renamed) FAIL" in r.err
    assert out.read_bytes() == before  # the rejected output never replaced the good one


@pytest.mark.parametrize(
    "validation,message",
    [
        ('[{"type": "nul", "columns": ["x"]}]', "field 'validation[0].type': invalid value 'nul'; valid: null, range, unique, freshness, schema"),
        ('[{"type": "freshness", "max_age": "2 days"}]', "field 'validation[0].max_age'"),
        ('[{"type": "range", "column": "score", "min": "low"}]', "field 'validation[0].min'"),
    ],
)
def test_bad_check_declarations(seeknal, tmp_path, validation, message):
    root = _project(seeknal, tmp_path, validation)
    r = seeknal("plan", cwd=root)
    assert r.code == 1 and message in r.err, r.err


def test_check_on_unknown_column_and_unknown_group(seeknal, tmp_path):
    root = _project(seeknal, tmp_path, '[{"type": "range", "column": "nope", "min": 0}]')
    assert seeknal("run", cwd=root).code == 0
    r = seeknal("validate-features", "scores", cwd=root)
    assert r.code == 1 and "check names column(s) ['nope']" in r.err
    r = seeknal("validate-features", "nothing", cwd=root)
    assert r.code == 1 and "unknown node 'feature_group.nothing'" in r.err

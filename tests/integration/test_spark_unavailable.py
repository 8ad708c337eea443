"""`seeknal run --engine spark` without pyspark or without Java: one line, nothing runs."""

from __future__ import annotations

import sys


def test_without_pyspark(seeknal, example_project, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspark", None)  # `import pyspark` now raises ImportError
    r = seeknal("run", "--engine", "spark", cwd=example_project)
    assert r.code == 1
    assert r.err.strip().splitlines() == [
        "error: --engine spark needs pyspark, which is not installed: pip install 'seeknal-flow[spark]'"
    ]
    assert not (example_project / "target" / "intermediate").exists()


def test_without_java(seeknal, example_project, monkeypatch, tmp_path):
    import types

    # Whether or not pyspark is installed here, the Java check must answer.
    monkeypatch.setitem(sys.modules, "pyspark", sys.modules.get("pyspark") or types.ModuleType("pyspark"))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no java on it
    (example_project / "seeknal_project.yml").write_text("name: ml_path\nengine: spark\n")
    r = seeknal("run", cwd=example_project)
    assert r.code == 1
    assert len(r.err.strip().splitlines()) == 1
    assert "error: --engine spark needs Java 17 or 21: no `java` on PATH and JAVA_HOME is not set" in r.err


def test_spark_master_with_local_engine_is_refused(seeknal, example_project):
    r = seeknal("run", "--engine", "local", "--spark-master", "local[2]", cwd=example_project)
    assert r.code == 1
    assert "error: --spark-master needs --engine spark (or leave --engine out)" in r.err


def test_project_engine_setting_is_validated(seeknal, example_project):
    (example_project / "seeknal_project.yml").write_text("name: ml_path\nengine: flink\n")
    r = seeknal("run", cwd=example_project)
    assert r.code == 1
    assert "seeknal_project.yml:2: field 'engine'" in r.err, r.err

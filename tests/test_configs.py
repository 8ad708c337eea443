"""The shipped configuration examples stay valid."""

from __future__ import annotations

from pathlib import Path

from seeknal_flow.load.project import PROJECT_FILE, Project

REPO = Path(__file__).resolve().parent.parent


def test_example_project_config_is_valid(tmp_path):
    (tmp_path / PROJECT_FILE).write_text((REPO / "configs" / "seeknal_project.example.yml").read_text())
    config = Project(tmp_path).config
    assert config.name == "example" and config.memory_limit == "2GB" and config.threads == 2
    assert config.isolation.value == "auto"

"""The reference docs cannot go stale: the CLI reference is generated, JSON and YAML shapes are covered."""

from __future__ import annotations

import re
from pathlib import Path

import click
import msgspec
import pytest

from seeknal_flow.cli.main import cli
from seeknal_flow.cli.reference import cli_reference

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_cli_reference_is_current():
    assert (DOCS / "cli.md").read_text() == cli_reference(), (
        "docs/cli.md is stale: run `python -m seeknal_flow.cli.reference > docs/cli.md`")


def _all_commands():
    def walk(group, prefix):
        for name, cmd in group.commands.items():
            yield " ".join([*prefix, name]), cmd
            if isinstance(cmd, click.Group):
                yield from walk(cmd, [*prefix, name])

    return list(walk(cli, ["seeknal"]))


def test_cli_reference_covers_every_command_and_option():
    text = (DOCS / "cli.md").read_text()
    for title, cmd in _all_commands():
        heading = f" `{title}`\n"
        assert heading in text, title
        section = text.split(heading, 1)[1].split("\n## ", 1)[0]
        for param in cmd.params:
            if isinstance(param, click.Option):
                assert any(opt in section for opt in param.opts), (title, param.opts)


def _documented_structs():
    from seeknal_flow.cli.dry_run_cmd import DryRunReport, NodePreview, PreviewColumn
    from seeknal_flow.cli.validate_cmd import CheckLine, ValidationReport
    from seeknal_flow.plan.lineage import Lineage, LineageNode
    from seeknal_flow.plan.planner import PartitionPlan, PlannedNode, PlannedStep, PlanReport
    from seeknal_flow.run.results import NodeRunResult, RunHistory, RunResults
    from seeknal_flow.store.entity_info import EntityDetail, EntityList, EntityRow, FeatureInfo, GroupInfo

    return [RunResults, NodeRunResult, RunHistory, PlanReport, PlannedNode, PlannedStep, PartitionPlan, DryRunReport,
            NodePreview, PreviewColumn, EntityList, EntityRow, EntityDetail, GroupInfo, FeatureInfo, Lineage,
            LineageNode, ValidationReport, CheckLine]


@pytest.mark.parametrize("struct", _documented_structs(), ids=lambda s: s.__name__)
def test_json_output_documents_every_key(struct):
    text = (DOCS / "json-output.md").read_text()
    missing = [f for f in struct.__struct_fields__ if f"`{f}`" not in text and f"{f}," not in text
               and f"{{{f}" not in text and f", {f}}}" not in text]
    assert not missing, f"docs/json-output.md does not mention {struct.__name__} keys {missing}"
    assert issubclass(struct, msgspec.Struct)


def test_yaml_reference_documents_every_field_of_every_kind():
    from seeknal_flow.load.yaml_nodes import YAML_MODELS

    text = (DOCS / "yaml-reference.md").read_text()
    for kind, model in YAML_MODELS.items():
        anchor = f'<a id="{kind.value}"></a>'
        assert anchor in text, f"docs/yaml-reference.md has no {anchor}"
        section = text.split(anchor, 1)[1].split('<a id="', 1)[0]
        missing = [f for f in model.__struct_fields__ if f"`{f}`" not in section]
        assert not missing, f"docs/yaml-reference.md#{kind.value} does not document {missing}"


def test_docs_link_to_pages_that_exist():
    for page in DOCS.glob("*.md"):
        for target in re.findall(r"\]\(([a-z0-9_-]+\.md)(?:#[^)]*)?\)", page.read_text()):
            assert (DOCS / target).is_file(), f"{page.name} links to missing {target}"


def test_templates_and_messages_cite_docs_not_spec_sections():
    root = DOCS.parent
    for path in [*root.glob("seeknal_flow/**/*.py"), *root.glob("seeknal_flow/**/*.tmpl"), *root.glob("operators/**/*.py")]:
        assert "SPEC §" not in path.read_text(encoding="utf-8"), f"{path} cites a spec section users cannot see"

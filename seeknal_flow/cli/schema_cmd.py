"""``seeknal schema``: the JSON Schema of node YAML files, for editors."""

from __future__ import annotations

import json

import click

from seeknal_flow.cli.options import project_option


def register(cli: click.Group) -> None:
    @cli.command("schema")
    @click.argument("kind", required=False)
    @click.option("--write", is_flag=True,
                  help="Write every kind's schema to .seeknal/schema/ and point .vscode/settings.json at them.")
    @project_option
    def schema(kind: str | None, write: bool, project_dir: str | None) -> None:
        """Print the JSON Schema of a node YAML file (KIND: source, transform, feature-group, soa; default: any)."""
        from seeknal_flow.authoring.specs import Kind
        from seeknal_flow.errors import SpecError
        from seeknal_flow.load.yaml_schema import node_schema

        if write:
            from pathlib import Path

            from seeknal_flow.load.project import Project
            from seeknal_flow.load.scaffold import write_editor_hints

            project = Project.find(Path(project_dir) if project_dir else None)
            write_editor_hints(project.root)
            click.echo(f"wrote .seeknal/schema/*.schema.json and .vscode/settings.json in {project.root}")
            return
        try:
            chosen = Kind.parse(kind) if kind else None
        except ValueError as e:
            raise SpecError(f"seeknal schema: {e}") from e
        click.echo(json.dumps(node_schema(chosen), indent=2))

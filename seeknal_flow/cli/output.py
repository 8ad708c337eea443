"""How commands print: ``--format text|json``, colour on a terminal (unless ``NO_COLOR``), JSON documents.

Every command with ``--format json`` prints exactly one JSON document on stdout (a
msgspec Struct, encoded once); progress and log lines go to stderr. The text output
renders the same Structs. ``docs/json-output.md`` documents each document's keys.
"""

from __future__ import annotations

import enum
import os
import sys

import click
import msgspec


class OutputFormat(str, enum.Enum):
    TEXT = "text"
    JSON = "json"


format_option = click.option(
    "--format",
    "output_format",
    type=click.Choice([f.value for f in OutputFormat]),
    default=OutputFormat.TEXT.value,
    show_default=True,
    help="text for people; json: one JSON document on stdout (progress and logs go to stderr).",
)


def is_json(output_format: str) -> bool:
    return output_format == OutputFormat.JSON.value


def emit_json(document: msgspec.Struct | list) -> None:
    """Print one JSON document (indented, stable key order = the Struct's field order)."""
    click.echo(msgspec.json.format(msgspec.json.encode(document), indent=2).decode())


def use_color(stream=None) -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set (https://no-color.org)."""
    stream = stream or sys.stdout
    return not os.environ.get("NO_COLOR") and stream.isatty()


def paint(text: str, color: str, stream=None) -> str:
    return click.style(text, fg=color) if use_color(stream) else text


__all__ = ["OutputFormat", "emit_json", "format_option", "is_json", "paint", "use_color"]

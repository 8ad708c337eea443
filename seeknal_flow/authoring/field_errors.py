"""Turn msgspec validation errors into a field path plus a readable problem.

msgspec names the failing path (``$.features.x.window[0]``) but no line; YAML
loading maps the path back to a line, decorators print it as is.
"""

from __future__ import annotations

import re

import msgspec

from seeknal_flow.authoring.specs import Isolation, SourceFormat

_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_ENUM_CHOICES = {
    "source": [f.value for f in SourceFormat],
    "isolation": [i.value for i in Isolation],
    "type": ["null", "range", "unique", "freshness", "schema"],
    "on_run": ["warn", "fail"],
}


def explain(error: msgspec.ValidationError) -> tuple[list[str | int], str]:
    """Return ``(path, problem)`` for a msgspec error.

    >>> class A(msgspec.Struct, forbid_unknown_fields=True):
    ...     table: str
    >>> try:
    ...     msgspec.convert({"table": 3}, A)
    ... except msgspec.ValidationError as e:
    ...     explain(e)
    (['table'], 'expected `str`, got `int`')
    """
    text = str(error)
    message, _, at = text.partition(" - at `")
    path = _parse_path(at.rstrip("`")) if at else []
    if message.startswith("Object contains unknown field"):
        field = message.split("`")[1]
        return path + [field], "unknown field"
    if message.startswith("Object missing required field"):
        field = message.split("`")[1]
        return path + [field], "required field is missing"
    message = message[0].lower() + message[1:]
    if message.startswith(("invalid enum value", "invalid value")) and path and path[-1] in _ENUM_CHOICES:
        message += f"; valid: {', '.join(_ENUM_CHOICES[path[-1]])}"
    return path, message


def explain_in(data: object, model: type, error: msgspec.ValidationError) -> tuple[list[str | int], str]:
    """Like :func:`explain`, but names the mapping key where msgspec only says ``[...]``.

    msgspec reports a bad value inside a ``dict[str, Struct]`` field as
    ``$.features[...].window``; re-validating that field's entries one by one
    finds which key it was (``features.recent_spending.window``).
    """
    path, message = explain(error)
    text = str(error)
    if message == "unknown field" and len(path) == 1 and isinstance(path[0], str):
        return path, message + _suggestion(path[0], model)
    if "[...]" not in text or not isinstance(data, dict):
        return path, message
    field = text.split("- at `$.", 1)[-1].split("[...]", 1)[0]
    entries = data.get(field)
    value_type = _dict_value_type(model, field)
    if not isinstance(entries, dict) or value_type is None:
        return path, message
    for key, value in entries.items():
        try:
            msgspec.convert(value, value_type)
        except msgspec.ValidationError as inner:
            sub, message = explain(inner)
            return [field, key, *sub], message
    return path, message


def _suggestion(field: str, model: type) -> str:
    """``; did you mean 'table'?`` for a near miss, else the fields the model has.

    >>> class A(msgspec.Struct):
    ...     table: str
    ...     query: str
    >>> _suggestion("tabel", A), _suggestion("path", A)
    ("; did you mean 'table'?", '; valid fields: query, table')
    """
    import difflib

    names = sorted(f.encode_name for f in msgspec.structs.fields(model))
    close = difflib.get_close_matches(field, names, n=1, cutoff=0.7)
    return f"; did you mean '{close[0]}'?" if close else f"; valid fields: {', '.join(names)}"


def _dict_value_type(model: type, field: str):
    import typing

    hint = typing.get_type_hints(model).get(field)
    args = typing.get_args(hint)
    if typing.get_origin(hint) is dict and len(args) == 2:
        return args[1]
    return None


def format_problem(path: list[str | int], message: str) -> str:
    """``(['features', 'x'], 'unknown field')`` -> ``field 'features.x': unknown field``."""
    if not path:
        return message
    dotted = ""
    for part in path:
        dotted += f"[{part}]" if isinstance(part, int) else (f".{part}" if dotted else str(part))
    return f"field '{dotted}': {message}"


def _parse_path(at: str) -> list[str | int]:
    parts: list[str | int] = []
    for m in _PATH_PART.finditer(at.removeprefix("$")):
        if m.group(1) is not None:
            parts.append(m.group(1))
        elif m.group(2) != "...":
            parts.append(int(m.group(2)))
    return parts

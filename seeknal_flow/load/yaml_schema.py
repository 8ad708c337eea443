"""JSON Schema of node YAML files, generated from the msgspec models that parse them.

Editors (VS Code's YAML extension, JetBrains, Neovim via yaml-language-server) use it
to validate and complete ``seeknal/**/*.yml`` as you type. Because it comes from the
same Structs as the loader, it cannot disagree with what ``seeknal run`` accepts.

Example::

    schema = node_schema(Kind.SOURCE)      # one kind
    schema = node_schema()                 # any node file (oneOf the kinds)
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from seeknal_flow.authoring.specs import Kind
from seeknal_flow.load.yaml_nodes import YAML_MODELS

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# Where `seeknal init` / `seeknal schema --write` put the files, relative to the project root.
SCHEMA_DIR = Path(".seeknal") / "schema"


def node_schema(kind: Kind | None = None) -> dict:
    """The JSON Schema of one kind's YAML file, or of any node file when ``kind`` is None."""
    kinds = [kind] if kind is not None else list(YAML_MODELS)
    schemas, defs = msgspec.json.schema_components([YAML_MODELS[k] for k in kinds],
                                                   ref_template="#/$defs/{name}")
    for k, ref in zip(kinds, schemas, strict=True):
        model = defs[ref["$ref"].rsplit("/", 1)[1]]
        # `kind` is read before the model is chosen, so the model types it as a plain string:
        # here it is the one value that selects this model, and no other key is allowed.
        aliases = ["soa"] if k == Kind.SECOND_ORDER_AGGREGATION else []
        spellings = sorted({k.value, k.value.replace("_", "-"), *aliases})
        model["properties"]["kind"] = {"enum": spellings, "description": f"This file declares a {k.value}."}
        model["additionalProperties"] = False
        model["description"] = f"A {k.value.replace('_', ' ')} node file (docs/yaml-reference.md#{k.value})."
    top: dict = {"$schema": SCHEMA_DIALECT}
    if kind is not None:
        top |= {"title": f"seeknal-flow {kind.value}", **schemas[0]}
    else:
        top |= {"title": "seeknal-flow node file", "oneOf": schemas}
    top["$defs"] = defs
    return top


def write_schemas(root: Path) -> list[Path]:
    """Write one schema per kind and one for any node under ``root/.seeknal/schema/``."""
    folder = root / SCHEMA_DIR
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, kind in [("node", None), *((k.value, k) for k in YAML_MODELS)]:
        path = folder / f"{name}.schema.json"
        path.write_text(json.dumps(node_schema(kind), indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written


def editor_settings() -> dict:
    """``.vscode/settings.json`` content mapping node files (and drafts) to their schema."""
    # Discovery reads every YAML file under seeknal/ and takes the kind from `kind:`, so the
    # any-node schema (oneOf the kinds) fits them all; drafts are named after their kind.
    mapping = {f"./{SCHEMA_DIR.as_posix()}/node.schema.json": ["seeknal/**/*.yml", "seeknal/**/*.yaml"]}
    for kind in YAML_MODELS:
        mapping[f"./{SCHEMA_DIR.as_posix()}/{kind.value}.schema.json"] = [f"draft_{kind.value}_*.yml"]
    return {"yaml.schemas": mapping}

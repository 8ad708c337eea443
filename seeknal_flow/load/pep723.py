"""PEP 723 inline script metadata (``# /// script`` blocks)."""

from __future__ import annotations

import re
import tomllib

import msgspec

from seeknal_flow.errors import SpecError

_BLOCK = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")


class ScriptMetadata(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of a PEP 723 header seeknal-flow uses."""

    dependencies: tuple[str, ...] = ()
    requires_python: str | None = None


def read_script_metadata(text: str, file: str) -> ScriptMetadata:
    """Parse the ``script`` block of a Python file; an empty one when absent.

    >>> read_script_metadata('# /// script\\n# dependencies = ["pandas"]\\n# ///\\n', "x.py").dependencies
    ('pandas',)
    """
    blocks = [m for m in _BLOCK.finditer(text) if m.group("type") == "script"]
    if not blocks:
        return ScriptMetadata()
    if len(blocks) > 1:
        raise SpecError(f"{file}: more than one '# /// script' block; keep one")
    match = blocks[0]
    line = text.count("\n", 0, match.start()) + 1
    content = "".join(
        ln[2:] if ln.startswith("# ") else ln[1:]
        for ln in match.group("content").splitlines(keepends=True)
    )
    try:
        data = tomllib.loads(content)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{file}:{line}: PEP 723 header is not valid TOML: {e}") from e
    deps = data.get("dependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise SpecError(
            f"{file}:{line}: PEP 723 'dependencies' must be a list of strings, "
            'e.g. dependencies = ["pandas"]'
        )
    requires = data.get("requires-python")
    return ScriptMetadata(dependencies=tuple(deps), requires_python=requires)

"""Editing benchmarks/RESULTS.md: the one place that writes it, for every benchmark script.

RESULTS.md is a markdown file of "## ..." sections, one per benchmark. A script either
owns its section and replaces the body on each run (``replace_section``), or appends a
block at the end of its section (``append_to_section``); both create the section at the
end of the file when it is missing and leave every other section byte-identical. The
file is re-read right before each write (other benchmarks may have written meanwhile)
and replaced atomically (a temp file in the same folder, then ``os.replace``).

``run_header()`` is the "date; machine[; commit]." line that starts a block, e.g.::

    append_to_section("## Foundation (issue 2)", f"{run_header()}\\n\\n| a |\\n")
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
REPO = RESULTS.parent.parent
EMPTY = "# Benchmark results\n"  # a RESULTS.md that does not exist yet
ENGINE_DIRS = ("operators", "seeknal_flow")  # "uncommitted changes to ..." lists these only


def replace_section(heading: str, body: str, path: Path | None = None) -> None:
    """Make ``body`` the whole section under ``heading`` (created at the end if missing).

    The result is ``heading``, a blank line, ``body`` (ended by a newline), and one blank
    line before the next "## " heading. ``path`` defaults to ``RESULTS``.
    """
    path = path or RESULTS
    text = _with_section(_read(path), heading)
    start = _find(text, heading)
    nxt = text.find("\n## ", start + len(heading))
    rest = "\n" + text[nxt:].lstrip("\n") if nxt >= 0 else ""
    _write(path, text[:start] + f"{heading}\n\n" + _ended(body) + rest)


def append_to_section(heading: str, block: str, path: Path | None = None, *, before: str | None = None,
                      intro: str = "") -> None:
    """Add ``block`` at the end of the section under ``heading``, after one blank line.

    The section ends at the next "## " heading, or earlier at ``before`` (e.g.
    ``"\\n### Earlier runs"``) when the section holds it. A missing section is created at
    the end of the file, with ``intro`` (e.g. a "Machine: ..." line) as its first paragraph.
    ``path`` defaults to ``RESULTS``.
    """
    path = path or RESULTS
    text = _with_section(_read(path), heading, intro)
    start = _find(text, heading) + len(heading)
    nxt = text.find("\n## ", start)
    end = len(text) if nxt < 0 else nxt
    if before:
        mark = text.find(before, start, end)
        end = end if mark < 0 else mark
    _write(path, text[:end].rstrip("\n") + "\n\n" + _ended(block) + text[end:])


def run_header(machine_line: str | None = None, *, commit: bool = False) -> str:
    """``"<date time zone>; <machine>[; <revision()>]."``: the line that says when, where and what ran.

    ``machine_line`` defaults to ``machine()``; ``commit=True`` adds the commit measured.
    """
    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    parts = [stamp, machine() if machine_line is None else machine_line] + ([revision()] if commit else [])
    return "; ".join(parts) + "."


def machine(*, memory: bool = False, libraries: Mapping[str, str] | None = None) -> str:
    """``"2 cores (<CPU model>)[, 8 GB RAM], Linux <release>, Python <version>[, <library> <version>...]"``."""
    parts = [f"{os.cpu_count()} cores ({_cpu_model()})"]
    if memory:
        parts.append(f"{_memory_gb():.0f} GB RAM")
    parts.append(f"{platform.system()} {platform.release()}")
    parts.append(f"Python {platform.python_version()}")
    parts += [f"{name} {version}" for name, version in (libraries or {}).items()]
    return ", ".join(parts)


def revision(root: Path = REPO) -> str:
    """The commit measured, and the engine files changed on top of it (the tree is shared)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *ENGINE_DIRS], cwd=root,
                               capture_output=True, text=True).stdout.split("\n")
    except OSError:
        return "commit unknown"
    changed = sorted(line[3:] for line in dirty if line.strip())
    return f"commit {head or '?'}" + (f" + uncommitted changes to {', '.join(changed)}" if changed else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def _memory_gb() -> float:
    try:
        mem = next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal"))
    except (OSError, StopIteration):
        return 0
    return int(mem.split()[1]) / 1024 / 1024


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.exists() else EMPTY


def _find(text: str, heading: str) -> int:
    """Where the line ``heading`` starts in ``text``, or -1."""
    m = re.search(rf"^{re.escape(heading)}$", text, re.MULTILINE)
    return m.start() if m else -1


def _with_section(text: str, heading: str, intro: str = "") -> str:
    """``text``, with ``heading`` (and ``intro``) added at the end when it has no such section."""
    if _find(text, heading) >= 0:
        return text
    return text.rstrip("\n") + f"\n\n{heading}\n" + (f"\n{_ended(intro)}" if intro else "")


def _ended(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def _write(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` atomically; keeps the file's permission bits."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

"""Output signatures: size and mtime of what a node or step wrote, to notice rewrites behind our back.

A node's output is replaced only by the run service (atomic rename), so its
size and mtime after the run identify it; anything else that rewrites it (a
`repl --output`, a copy, another tool) changes them, and the next plan re-runs
the node and rebuilds the entities that read it.

>>> output_signature(Path("/nonexistent/file.parquet"))
''
"""

from __future__ import annotations

import os
from pathlib import Path

from seeknal_flow.plan.fingerprint import digest


def output_signature(path: Path) -> str:
    """``size:mtime_ns`` of a file, a digest of every file's under a directory; ``""`` if missing."""
    try:
        st = path.stat()
    except OSError:
        return ""
    if not path.is_dir():
        return f"{st.st_size}:{st.st_mtime_ns}"
    entries = []
    for folder, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):  # temp files of a write in flight
                continue
            try:
                fst = os.stat(os.path.join(folder, name))
            except OSError:
                continue
            entries.append([os.path.relpath(os.path.join(folder, name), path), fst.st_size, fst.st_mtime_ns])
    return "dir:" + digest(entries)

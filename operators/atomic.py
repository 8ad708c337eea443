"""Put a finished output in place of the previous one, whether either is a file or a directory.

``os.replace`` alone cannot put a file where a directory is (or the reverse), and
an output changes shape when a node moves between engines: the local sink
writes one Parquet file, Spark a directory of part files.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


def replace_path(new: Path, final: Path) -> None:
    """Move ``new`` to ``final``; whatever was at ``final`` is removed afterwards.

    Readers see the old output until the rename of ``new``; when the shapes
    differ there is a moment with no output at all (the old one was moved aside).

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "out").mkdir(); (root / "out" / "part-0").write_text("old")
    3
    >>> (root / "new").write_text("new")
    3
    >>> replace_path(root / "new", root / "out"); (root / "out").read_text()
    'new'
    """
    if final.is_dir() and not final.is_symlink():
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(final, old)
        os.replace(new, final)
        shutil.rmtree(old, ignore_errors=True)
    elif new.is_dir() and (final.exists() or final.is_symlink()):
        final.unlink()  # a file cannot be renamed over by a directory
        os.replace(new, final)
    else:
        os.replace(new, final)  # file over file (or nothing): atomic

"""Put a finished output in place of the previous one, whether either is a file or a directory;
write a small file (state, catalog, manifest) so readers see the old or the new one, never a part.

``os.replace`` alone cannot put a file where a directory is (or the reverse), and
an output changes shape when a node moves between engines: the local sink
writes one Parquet file, Spark a directory of part files.
"""

from __future__ import annotations

import contextlib
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


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through ``.<name>.<pid>.tmp`` and a rename.

    A failure leaves the previous file and no temp file; its ``OSError`` names ``path``
    (a failed ``write()`` names no file, so "No space left on device" alone would not say
    what was being written).

    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "state.json"
    >>> write_atomic(f, b"{}"); f.read_bytes()
    b'{}'
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise OSError(e.errno, e.strerror, str(path)) from e

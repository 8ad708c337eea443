"""One budget for the whole run: memory an earlier node leaves resident shrinks the next node's share."""

from __future__ import annotations

HOLDER = '''from seeknal_flow import transform

_KEPT = []  # memory the node leaves behind, as an engine's allocator does


@transform(name="holder")
def holder(ctx):
    import numpy as np
    import pyarrow as pa

    block = np.ones(96 * 2**20 // 8)
    block[::512] = 2.0  # touch every page
    _KEPT.append(block)
    return pa.table({"x": [1]})
'''

AFTER = """kind: transform
name: after
sql: SELECT x + 1 AS y FROM ref('transform.holder')
"""


def test_memory_left_resident_shrinks_the_next_nodes_budget(seeknal, tmp_path):
    root = tmp_path / "mb"
    root.mkdir()
    assert seeknal("init", "--name", "mb", cwd=root).code == 0
    (root / "seeknal/transforms/holder.py").write_text(HOLDER)
    (root / "seeknal/transforms/after.yml").write_text(AFTER)
    r = seeknal("run", "--memory-limit", "512MB", cwd=root)
    assert r.code == 0, r.text
    holder_part, after_part = r.out.split("transform.after", 1)
    assert "memory budget" not in holder_part
    line = next(ln for ln in after_part.splitlines() if "memory budget" in ln)
    budget = int(line.split("memory budget ")[1].split(" MB")[0].replace(",", ""))
    assert 300 <= budget <= 512 - 90, line  # ~96 MB held by the first node
    assert "of 512 MB" in line
    # A node that fails under a smaller budget says so next to its error.
    (root / "seeknal/transforms/after.yml").write_text(AFTER.replace("x + 1", "missing_column + 1"))
    r = seeknal("run", "--full", "--memory-limit", "512MB", cwd=root)
    assert r.code == 1
    failed = r.out.split("transform.after", 1)[1]
    assert "memory budget" in failed and "missing_column" in r.text
    # Without a limit there is no budget to share.
    (root / "seeknal/transforms/after.yml").write_text(AFTER)
    r = seeknal("run", "--full", cwd=root)
    assert r.code == 0 and "memory budget" not in r.out

"""The pipeline task as real projects: seeknal-flow and seeknal 2.13.

seeknal-flow (``seeknal init`` + these files; data symlinked into ``data/``):

- ``source.transactions`` and ``source.spine``: Parquet, read in place;
- ``second_order_aggregation.soa_region`` / ``soa_customer``: YAML SOA nodes on
  ``source.transactions``;
- ``transform.pit``: a Python transform calling ``FeatureFrame.pit_join``. The
  transactions are a source (no entity, no event time), so the transform wraps the
  source's Parquet in a ``FeatureFrame`` with ``join_keys``/``event_time_col``
  instead of copying 1e7 rows into a feature group first.

seeknal 2.13 (its ``seeknal init`` + these files), as its executors require:

- ``source.transactions`` / ``source.spine``: ``source: parquet`` (it copies each
  into ``target/intermediate/`` and a DuckDB view);
- ``transform.tx``: ``SELECT *`` of the transactions — its SOA executor reads only a
  transform's or an aggregation's output, not a source's;
- two YAML SOA nodes with ``source: transform.tx`` (and ``inputs:``, without which
  the DAG has no edge and the SOA runs before its input);
- ``feature_group.tx_features`` (entity customer, event time ``event_time``): its
  ``pit_join`` is a method of the feature-group frame that ``ctx.ref`` returns;
- ``transform.pit`` (Python, run by its executor with ``uv run``): ``pit_join``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from benchmarks.harness.tasks import PIPELINE_PARTS, SOA_IDS

# seeknal-flow output of each part, under target/intermediate/.
FLOW_OUTPUTS = {"soa_region": "second_order_aggregation_soa_region.parquet",
                "soa_customer": "second_order_aggregation_soa_customer.parquet",
                "pit": "transform_pit.parquet"}
SEEKNAL213_OUTPUTS = FLOW_OUTPUTS  # same file names there

_SOA_FEATURES = """features:
  revenue:
    basic: [sum, mean, max, stddev]
  recent:
    source_feature: revenue
    window: [1, 7]
    basic: [sum]
  trend:
    source_feature: revenue
    ratio:
      numerator: [1, 7]
      denominator: [8, 14]
      aggs: [sum]
"""

FLOW_PIT = '''"""PIT: each spine row joined to the customer's latest transaction at or before its date."""

from seeknal_flow import FeatureFrame, transform


@transform(name="pit", description="Spine rows with the transaction known on their date")
def pit(ctx):
    tx = ctx.ref("source.transactions")
    features = FeatureFrame(tx.paths[0], node_id="source.transactions", join_keys=("customer_id",),
                            event_time_col="event_time", memory=tx.memory)
    return features.pit_join(spine=ctx.ref("source.spine"), date_col="application_date")
'''

SEEKNAL213_PIT = '''from seeknal.pipeline import transform


@transform(name="pit", inputs=["source.spine", "feature_group.tx_features"])
def pit(ctx):
    spine = ctx.ref("source.spine")
    return ctx.ref("feature_group.tx_features").pit_join(spine=spine, date_col="application_date")
'''


def _link(data: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    target.symlink_to(Path(data).resolve())


def write_flow_project(root: Path, tx: Path, spine: Path, *, seeknal: str,
                       parts: tuple[str, ...] = PIPELINE_PARTS, memory_limit: str | None = None) -> Path:
    """Create (or refresh) the seeknal-flow pipeline project in ``root``."""
    if not (root / "seeknal_project.yml").exists():
        subprocess.run([seeknal, "init", "--name", "bench_pipeline", "--description", "benchmarks harness",
                        "--path", str(root)], check=True, capture_output=True, text=True)
    if memory_limit:
        text = (root / "seeknal_project.yml").read_text()
        (root / "seeknal_project.yml").write_text(text + f"memory_limit: {memory_limit}\n")
    _link(tx, root / "data" / "transactions.parquet")
    _link(spine, root / "data" / "spine.parquet")
    nodes = root / "seeknal"
    for name in ("transactions", "spine"):
        (nodes / "sources" / f"{name}.yml").write_text(
            f"kind: source\nname: {name}\nsource: parquet\ntable: data/{name}.parquet\n")
    for part in parts:
        if part == "pit":
            (nodes / "transforms" / "pit.py").write_text(FLOW_PIT)
        else:
            (nodes / "second_order_aggregations" / f"{part}.yml").write_text(
                f"kind: second_order_aggregation\nname: {part}\nsource: source.transactions\n"
                f"id_col: {SOA_IDS[part]}\nfeature_date_col: order_date\n"
                f"application_date_col: application_date\n" + _SOA_FEATURES)
    return root


def write_seeknal213_project(root: Path, tx: Path, spine: Path, *, seeknal: str, env: dict,
                             parts: tuple[str, ...] = PIPELINE_PARTS) -> Path:
    """Create the seeknal 2.13 pipeline project in ``root`` (its name = the folder name)."""
    if not (root / "seeknal_project.yml").exists():
        root.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([seeknal, "init", "--name", root.name, "--path", str(root)],
                           capture_output=True, text=True, env=env, cwd=root)
        if r.returncode != 0:
            raise RuntimeError(f"seeknal 2.13 init failed: {(r.stderr or r.stdout).strip()[-500:]}")
    nodes = root / "seeknal"
    for name, path in (("transactions", tx), ("spine", spine)):
        (nodes / "sources").mkdir(parents=True, exist_ok=True)
        (nodes / "sources" / f"{name}.yml").write_text(
            f"kind: source\nname: {name}\nsource: parquet\ntable: {Path(path).resolve()}\n")
    (nodes / "transforms").mkdir(parents=True, exist_ok=True)
    soa = [p for p in parts if p != "pit"]
    if soa:
        (nodes / "transforms" / "tx.yml").write_text(
            "kind: transform\nname: tx\ninputs:\n  - ref: source.transactions\n"
            "transform: |\n  SELECT * FROM ref('source.transactions')\n")
    (nodes / "second_order_aggregations").mkdir(parents=True, exist_ok=True)
    for part in soa:
        (nodes / "second_order_aggregations" / f"{part}.yml").write_text(
            f"kind: second_order_aggregation\nname: {part}\nid_col: {SOA_IDS[part]}\n"
            "feature_date_col: order_date\napplication_date_col: application_date\n"
            "source: transform.tx\ninputs:\n  - ref: transform.tx\n" + _SOA_FEATURES)
    if "pit" in parts:
        (nodes / "feature_groups").mkdir(parents=True, exist_ok=True)
        (nodes / "feature_groups" / "tx_features.yml").write_text(
            "kind: feature_group\nname: tx_features\nentity:\n  name: customer\n  join_keys: [customer_id]\n"
            "materialization:\n  event_time_col: event_time\ninputs:\n  - ref: source.transactions\n")
        (nodes / "transforms" / "pit.py").write_text(SEEKNAL213_PIT)
    return root


def seeknal213_feature_store(root: Path) -> list[Path]:
    """Where seeknal 2.13 writes feature groups outside the project (its default offline
    and online stores under /tmp, one folder per project name): removed after a run."""
    return [Path("/tmp/feature_store") / root.name, Path("/tmp/feature_store_online") / root.name]


"""A group's latest rows, found as its node writes them, give the same entity table as a read of the group.

`seeknal run` watches a sorted feature group's rows on their way to its file
(operators/last_rows.py) and hands each key's latest row to the consolidation
(store/latest.py), which then never reads the group again. The entity tables must be those
a consolidation from scratch builds: ties in event time (the last row in file order wins),
NULL keys and times (left out), composite keys, a Python group, a one-group entity.
"""

from __future__ import annotations

import datetime as dt
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seeknal_flow.store.latest import KeptLatest

SOURCE = """\
kind: source
name: events
source: parquet
table: data/events.parquet
"""

DAILY = """\
kind: feature_group
name: daily_spend
entity:
  name: shopper
  join_keys: [user_id, shop]
event_time_col: day
sql: |
  SELECT user_id, shop, day, channel, SUM(amount) AS spend, COUNT(*) AS n
  FROM ref('source.events') GROUP BY user_id, shop, day, channel
"""

RECENT = '''\
from seeknal_flow import feature_group


@feature_group(name="recent_rows", entity={"name": "shopper", "join_keys": ["user_id", "shop"]},
               event_time_col="day")
def recent_rows(ctx):
    df = ctx.ref("source.events").to_pandas()
    return df[["user_id", "shop", "day", "amount", "channel"]].rename(columns={"amount": "last_amount"})
'''

CHANNELS = """\
kind: feature_group
name: channel_days
entity:
  name: channel
  join_keys: [channel]
event_time_col: day
sql: |
  SELECT channel, day, COUNT(DISTINCT user_id) AS users, MAX(amount) AS top
  FROM ref('source.events') GROUP BY channel, day
"""


def _events(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    users = [None, *[f"u{i:02d}" for i in range(25)]]
    base = dt.datetime(2026, 1, 1)
    day = [None if rng.random() < 0.05 else base + dt.timedelta(days=int(d)) for d in rng.integers(0, 6, n)]
    return pa.table({
        "user_id": pa.array([users[i] for i in rng.integers(0, len(users), n)], pa.string()),
        "shop": pa.array(rng.integers(1, 4, n), pa.int32()),
        "day": pa.array(day, pa.timestamp("us")),
        "channel": pa.array([[None, "web", "app", "shop"][i] for i in rng.integers(0, 4, n)], pa.string()),
        "amount": pa.array(np.round(rng.random(n) * 100, 2)),
    })


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "handover"
    for folder in ("seeknal/sources", "seeknal/feature_groups", "data"):
        (root / folder).mkdir(parents=True)
    (root / "seeknal_project.yml").write_text("name: handover\n")
    (root / "seeknal/sources/events.yml").write_text(SOURCE)
    (root / "seeknal/feature_groups/daily_spend.yml").write_text(DAILY)
    (root / "seeknal/feature_groups/recent_rows.py").write_text(RECENT)
    (root / "seeknal/feature_groups/channel_days.yml").write_text(CHANNELS)
    pq.write_table(_events(3000, 7), root / "data/events.parquet")
    return root


@pytest.fixture
def adopted(monkeypatch):
    """The groups whose handed rows the consolidation took (instead of reading the group)."""
    taken: list[str] = []
    fits = KeptLatest._fits

    def spy(self, con, g, file):
        ok = fits(self, con, g, file)
        if ok:
            taken.append(g.name)
        return ok

    monkeypatch.setattr(KeptLatest, "_fits", spy)
    return taken


def _entity_tables(root):
    return {e: pq.read_table(root / f"target/feature_store/{e}/features.parquet") for e in ("shopper", "channel")}


def _from_scratch(seeknal, root):
    """The entity tables a consolidation with no kept state builds, reading every group's file."""
    for entity in ("shopper", "channel"):
        shutil.rmtree(root / f"target/feature_store/{entity}/latest", ignore_errors=True)
    r = seeknal("consolidate", "--force", cwd=root)
    assert r.code == 0, r.text
    return _entity_tables(root)


def test_handed_latest_rows_equal_a_consolidation_from_scratch(seeknal, project, adopted):
    r = seeknal("run", cwd=project)
    assert r.code == 0, r.text
    assert sorted(adopted) == ["channel_days", "daily_spend", "recent_rows"]
    assert not list((project / "target/tmp").rglob("latest-*.parquet"))  # handed files are moved or removed
    by_run = _entity_tables(project)
    assert by_run["shopper"].num_rows == 75 and by_run["channel"].num_rows == 3
    assert by_run == _from_scratch(seeknal, project)

    # new data: the groups change, their handed rows replace the kept ones
    pq.write_table(_events(2000, 8), project / "data/events.parquet")
    adopted.clear()
    r = seeknal("run", cwd=project)
    assert r.code == 0, r.text
    assert sorted(adopted) == ["channel_days", "daily_spend", "recent_rows"]
    assert "shopper: 2 of 2 groups recomputed" in r.out
    by_run = _entity_tables(project)
    assert by_run == _from_scratch(seeknal, project)

    # one group rerun alone: the other's kept rows are reused
    adopted.clear()
    r = seeknal("run", "--nodes", "feature_group.daily_spend", "--full", cwd=project)
    assert r.code == 0, r.text
    assert adopted == ["daily_spend"]
    assert _entity_tables(project)["shopper"] == by_run["shopper"]

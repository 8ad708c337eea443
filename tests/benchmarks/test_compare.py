"""`python -m benchmarks compare`: the table it prints from alternating samples (no timing asserts)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `benchmarks/` is not an installed package
    sys.path.insert(0, str(REPO))

from benchmarks.harness.compare import HEADER, Compared  # noqa: E402
from benchmarks.harness.measure import Sample  # noqa: E402


def _sample(wall: float, cpu: float, rss: float) -> Sample:
    return Sample(wall, rss, rss, 0, "", "", "0.00 0.00 0.00", cpu_s=cpu)


def test_row_reports_medians_minimums_ratios_and_peak_rss():
    c = Compared("SOA by region")
    c.samples["before"] = [_sample(1.0, 2.0, 100), _sample(3.0, 4.0, 120), _sample(2.0, 3.0, 110)]
    c.samples["after"] = [_sample(1.5, 2.0, 130), _sample(1.5, 3.0, 90), _sample(0.5, 3.0, 100)]
    assert c.row() == ("| SOA by region | 3 | 2.000 (1.000) | 1.500 (0.500) | **0.75×** | 3.00 / 3.00 | 1.00× | "
                       "120 / 130 |")
    assert len(HEADER.splitlines()[0].split("|")) == len(c.row().split("|"))

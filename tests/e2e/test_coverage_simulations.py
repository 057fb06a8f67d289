"""Coverage of paired-change intervals by simulation (a thousand synthetic studies)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from linkeval.stats.change import paired_change


def test_dz_interval_covers_in_simulation():
    # 400 studies of 25 pairs with true d_z = 0.5: the noncentral-t interval covers about 95%.
    rng = np.random.default_rng(3)
    covered = 0
    for _ in range(400):
        base = rng.normal(20, 4, 25)
        r = paired_change(
            pd.DataFrame(
                {"instrument": "swemwbs", "baseline": base, "followup": base + rng.normal(1, 2, 25)}
            ),
            n_boot=0,
        ).iloc[0]
        covered += r["d_z_ci_low"] <= 0.5 <= r["d_z_ci_high"]
    assert 0.92 <= covered / 400 <= 0.98


def test_confidence_interval_coverage_simulation():
    # 1,000 synthetic studies of 30 people whose true mean change is 2: the 95% CI of
    # paired_change should cover 2 in 93-97% of them.
    rng = np.random.default_rng(2024)
    covered = 0
    reps = 1000
    for _ in range(reps):
        base = rng.normal(20, 4, 30)
        follow = base + rng.normal(2, 5, 30)
        r = paired_change(
            pd.DataFrame(
                {"instrument": "swemwbs", "baseline": base, "followup": follow, "in_window": True}
            ),
            n_boot=0,
        ).iloc[0]
        covered += r["ci_low"] <= 2 <= r["ci_high"]
    assert 0.93 <= covered / reps <= 0.97

"""Paired bootstrap intervals: checked against normal theory, by hand, and by simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from harness.stats import is_binary, paired_bootstrap


def test_single_group_matches_normal_theory_for_large_n():
    rng = np.random.default_rng(1)
    d = rng.normal(0.3, 1.0, size=4000)
    ci = paired_bootstrap(d, resamples=4000, seed=3)
    half = sps.norm.ppf(0.975) * d.std(ddof=1) / np.sqrt(d.size)
    assert ci.estimate == pytest.approx(d.mean())
    assert ci.low == pytest.approx(d.mean() - half, abs=0.006)
    assert ci.high == pytest.approx(d.mean() + half, abs=0.006)


def test_role_interval_is_the_mean_of_task_means_resampled_per_task():
    """By hand: two tasks of different size; the statistic weighs tasks equally."""
    a = np.array([1.0, 0.0, 1.0, 1.0])  # mean 0.75
    b = np.array([0.0] * 9 + [-1.0])  # mean -0.1
    ci = paired_bootstrap([a, b], resamples=4000, seed=0)
    assert ci.estimate == pytest.approx((0.75 - 0.1) / 2)
    # the same computed directly: resample each task's items independently, average the means
    rng = np.random.default_rng(5)
    reps = [(rng.choice(a, a.size).mean() + rng.choice(b, b.size).mean()) / 2 for _ in range(20000)]
    lo, hi = np.percentile(reps, [2.5, 97.5])
    assert ci.low == pytest.approx(lo, abs=0.03) and ci.high == pytest.approx(hi, abs=0.03)


def test_no_spread_gives_a_point_interval():
    ci = paired_bootstrap(np.zeros(50))
    assert (ci.estimate, ci.low, ci.high) == (0.0, 0.0, 0.0)


def test_simulation_planted_effect_found_and_null_covered():
    """Paired binary data (200 items): a +15 pp planted gain is found (interval above zero)
    in nearly every replicate; with no effect the interval covers zero about 95% of the time."""
    rng = np.random.default_rng(42)
    n, reps = 200, 300
    found = covered = 0
    for _ in range(reps):
        base = (rng.random(n) < 0.5).astype(float)
        # candidate: same item difficulty; a planted gain flips wrong->right with prob 0.3
        gain = np.where(base == 0, (rng.random(n) < 0.3).astype(float), base)
        ci = paired_bootstrap(gain - base, resamples=500, seed=int(rng.integers(1 << 30)))
        found += ci.low > 0
        null = np.where(rng.random(n) < 0.2, 1 - base, base)  # symmetric flips, no true change
        ci0 = paired_bootstrap(null - base, resamples=500, seed=int(rng.integers(1 << 30)))
        covered += ci0.low <= 0 <= ci0.high
    print(f"planted effect found in {found / reps:.3f}, null covered in {covered / reps:.3f}")
    assert found / reps > 0.97
    assert 0.91 <= covered / reps <= 0.99  # nominal 0.95, Monte-Carlo error about 0.013


def test_is_binary():
    assert is_binary(np.array([0.0, 1.0, 1.0]))
    assert not is_binary(np.array([0.0, 0.5]))


def test_empty_group_is_refused():
    with pytest.raises(ValueError):
        paired_bootstrap([np.array([1.0]), np.array([])])

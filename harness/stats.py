"""Paired statistics on per-item scores.

The comparison's unit is the paired difference d_i = candidate_i - base_i on the same item.
Intervals are percentile intervals of a paired bootstrap (resampling items, so each resample
keeps an item's two scores together), computed with scipy.stats.bootstrap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


def _mean_of_means(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean([np.mean(s, axis=axis) for s in samples], axis=0)


def paired_bootstrap(diffs: list[np.ndarray] | np.ndarray, *, confidence: float = 0.95,
                     resamples: int = 2000, seed: int = 0) -> Interval:
    """Interval for the mean over groups of each group's mean paired difference.

    `diffs` is one array of per-item differences, or one array per task (a role): each task's
    items are resampled independently within the same bootstrap replicate, and the statistic
    is the unweighted mean of the task means (every task counts once, whatever its size).
    """
    groups = [np.asarray(diffs, dtype=float)] if isinstance(diffs, np.ndarray) else \
        [np.asarray(d, dtype=float) for d in diffs]
    if not groups or any(g.size == 0 for g in groups):
        raise ValueError("paired_bootstrap needs at least one item in every group")
    estimate = float(_mean_of_means(*groups))
    if all(np.all(g == g[0]) for g in groups):  # no spread: the interval is the point
        return Interval(estimate, estimate, estimate)
    res = sps.bootstrap(tuple(groups), _mean_of_means, n_resamples=resamples,
                        confidence_level=confidence, method="percentile", paired=False,
                        vectorized=True, batch=min(resamples, 500), random_state=np.random.default_rng(seed))
    return Interval(estimate, float(res.confidence_interval.low), float(res.confidence_interval.high))


def is_binary(values: np.ndarray) -> bool:
    return bool(np.isin(values, (0.0, 1.0)).all())

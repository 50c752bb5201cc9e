"""Paired statistics on per-item scores of a base and a candidate.

The unit is the paired difference d_i = candidate_i - base_i on the same item. What is used:

- binary metrics (acc, exact_match): exact McNemar test (a binomial test on the discordant
  pairs) and Newcombe's hybrid score interval for a difference of paired proportions
  (Newcombe 1998, method 10: Wilson intervals of the two marginals combined with the phi
  correlation of the pairs). It stays inside [-1, 1] and is not degenerate when few pairs differ.
- continuous metrics (log-likelihood differences, bias scores): paired bootstrap percentile
  interval and a paired permutation test (random sign flips of d_i), both through scipy.
- clustered items (a suite names a cluster field: template, passage, occupation): a
  cluster-robust standard error of the mean difference (CR1, as statsmodels' OLS with
  cov_type="cluster"), a t interval and test with G-1 degrees of freedom.
- minimum detectable effect at power 0.8 and the items a margin needs, from the observed
  per-item spread: the discordance for binary metrics, the variance of d_i otherwise, times
  the design effect of clustering.
- Holm's step-down correction across the tasks of a role, and a role-level delta (the mean of
  its task deltas) whose interval resamples every task's items (or clusters) in the same
  bootstrap replicate.
- levels and independent samples: the Wilson interval of a share, the t interval of a mean, and
  for two independent samples Newcombe's interval of a difference of shares (method 10 without
  the pairs' correlation) and Welch's t interval of a difference of means.

Every interval is a `records.Estimate`; where a method also gives a p-value, it is returned beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.records import Estimate


def _sps():
    """scipy.stats, imported on first use (~0.7 s): a re-run that reuses its comparison computes nothing."""
    from scipy import stats

    return stats

POWER = 0.8


@dataclass(frozen=True)
class PairedResult:
    """The paired comparison of one task's primary metric."""

    n: int
    delta: Estimate  # mean of candidate - base, with its interval
    interval: str  # how the interval was computed
    test: str  # which test gave p_value (null: no difference)
    p_value: float
    sd_item: float  # per-item standard deviation that power calculations use
    design_effect: float  # variance inflation from clustering (1 without clusters)
    n_clusters: int | None
    mde: float  # smallest true difference detected with power 0.8 at this n

    @property
    def se(self) -> float:
        return self.sd_item * math.sqrt(self.design_effect / self.n)


def _z(confidence: float) -> float:
    return float(_sps().norm.ppf(0.5 + confidence / 2))


def mde(sd_item: float, n: float, *, confidence: float = 0.95, power: float = POWER,
        design_effect: float = 1.0) -> float:
    """Minimum detectable effect of a two-sided test at level 1 - confidence with `power`."""
    return (_z(confidence) + float(_sps().norm.ppf(power))) * sd_item * math.sqrt(design_effect / n)


def n_required(sd_item: float, effect: float, *, confidence: float = 0.95, power: float = POWER,
               design_effect: float = 1.0) -> int:
    """Items needed so that the minimum detectable effect is at most `effect`."""
    k = (_z(confidence) + float(_sps().norm.ppf(power))) * sd_item / effect
    return max(2, math.ceil(k * k * design_effect))


def wilson(successes: int, n: int, confidence: float = 0.95) -> Estimate:
    """Wilson score interval of a single proportion."""
    z = _z(confidence)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # at p = 0 or 1 one end is p exactly; in floating point it can land a rounding error past it
    return Estimate(estimate=p, low=min(p, max(0.0, centre - half)), high=max(p, min(1.0, centre + half)))


def mean_interval(mean: float, sd: float, n: int, *, binary: bool, confidence: float = 0.95) -> Estimate:
    """A mean score with its interval, from its summary: Wilson for a share of 0/1 items (`binary`),
    else a t interval (n - 1 degrees of freedom; a single item is its own point)."""
    if binary:
        ci = wilson(round(mean * n), n, confidence)
        return Estimate(estimate=mean, low=ci.low, high=ci.high)
    if n < 2:
        return Estimate(estimate=mean, low=mean, high=mean)
    half = float(_sps().t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return Estimate(estimate=mean, low=mean - half, high=mean + half)


def score_interval(values: np.ndarray, *, binary: bool | None = None, confidence: float = 0.95) -> Estimate:
    """The mean of per-item scores with its interval (mean_interval); `binary` defaults to whether
    every value is 0 or 1."""
    values = np.asarray(values, dtype=float)
    sd = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return mean_interval(float(values.mean()), sd, values.size,
                         binary=is_binary(values) if binary is None else binary, confidence=confidence)


def newcombe_independent(x1: int, n1: int, x2: int, n2: int, confidence: float = 0.95) -> Estimate:
    """p2 - p1 of two independent proportions, from their Wilson intervals (Newcombe 1998, method 10)."""
    p1, p2 = x1 / n1, x2 / n2
    a, b = wilson(x1, n1, confidence), wilson(x2, n2, confidence)
    d = p2 - p1
    return Estimate(estimate=d, low=d - math.sqrt((p2 - b.low) ** 2 + (a.high - p1) ** 2),
                    high=d + math.sqrt((b.high - p2) ** 2 + (p1 - a.low) ** 2))


def welch(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> Estimate:
    """Welch's t interval of mean(b) - mean(a), two independent samples."""
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1)) if se > 0 else 1.0
    t = _sps().t.ppf(0.5 + confidence / 2, df)
    d = b.mean() - a.mean()
    return Estimate(estimate=float(d), low=float(d - t * se), high=float(d + t * se))


def newcombe_paired(n11: int, n12: int, n21: int, n22: int, confidence: float = 0.95) -> Estimate:
    """Newcombe (1998) method 10 for p1 - p2 of a paired 2x2 table.

    n11: both 1; n12: first 1, second 0; n21: first 0, second 1; n22: both 0.
    p1 = (n11 + n12) / N is the first measurement's proportion, p2 = (n11 + n21) / N.
    """
    n = n11 + n12 + n21 + n22
    p1, p2 = (n11 + n12) / n, (n11 + n21) / n
    w1, w2 = wilson(n11 + n12, n, confidence), wilson(n11 + n21, n, confidence)
    l1, u1, l2, u2 = w1.low, w1.high, w2.low, w2.high
    phi = 0.0
    marginals = (n11 + n12) * (n21 + n22) * (n11 + n21) * (n12 + n22)
    if marginals > 0:
        b = n11 * n22 - n12 * n21
        c = b - n / 2 if b > n / 2 else (b if b < 0 else 0.0)  # Newcombe's continuity-corrected phi
        phi = c / math.sqrt(marginals)
    d = p1 - p2
    low = d - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    high = d + math.sqrt(max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2))
    return Estimate(estimate=d, low=max(-1.0, low), high=min(1.0, high))


def mcnemar_exact(to_right: int, to_wrong: int) -> float:
    """Two-sided exact McNemar p-value: binomial test of the discordant pairs against 1/2."""
    discordant = to_right + to_wrong
    if discordant == 0:
        return 1.0
    return float(_sps().binomtest(to_right, discordant, 0.5).pvalue)


def _bootstrap_p(dist: np.ndarray) -> float:
    """The bootstrap p-value that matches a percentile interval: twice the smaller tail at zero."""
    tail = min(int(np.sum(dist <= 0)), int(np.sum(dist >= 0)))
    return min(1.0, 2 * (tail + 1) / (dist.size + 1))


def _point(estimate: float) -> tuple[Estimate, float]:
    """No spread: the interval is the point, and the p-value says whether it is zero."""
    return Estimate(estimate=estimate, low=estimate, high=estimate), 1.0 if estimate == 0 else 0.0


def paired_bootstrap(d: np.ndarray, *, confidence: float = 0.95, resamples: int = 2000,
                     seed: int = 0) -> tuple[Estimate, float]:
    """Percentile interval (scipy.stats.bootstrap) of mean(d), and its two-sided bootstrap p-value."""
    d = np.asarray(d, dtype=float)
    if d.size == 0:
        raise ValueError("paired_bootstrap needs at least one item")
    estimate = float(d.mean())
    if np.all(d == d[0]):
        return _point(estimate)
    res = _sps().bootstrap((d,), np.mean, n_resamples=resamples, confidence_level=confidence,
                        method="percentile", vectorized=True, batch=min(resamples, 500),
                        random_state=np.random.default_rng(seed))
    return (Estimate(estimate=estimate, low=float(res.confidence_interval.low),
                     high=float(res.confidence_interval.high)), _bootstrap_p(res.bootstrap_distribution))


def role_bootstrap(groups: list[tuple[np.ndarray, np.ndarray | None]], *, confidence: float = 0.95,
                   resamples: int = 2000, seed: int = 0) -> tuple[Estimate, float]:
    """Interval and p-value for a role's delta: the unweighted mean of its tasks' mean differences.

    `groups` holds, per task, the per-item differences and their cluster labels (None: every
    item is its own cluster). In each replicate every task's clusters are resampled with
    replacement, all tasks in the same replicate; a task's statistic is the mean over the items
    of the drawn clusters. scipy's bootstrap has no cluster resampling, hence this function.
    """
    if not groups or any(np.asarray(d).size == 0 for d, _ in groups):
        raise ValueError("role_bootstrap needs at least one item in every task")
    rng = np.random.default_rng(seed)
    estimate = float(np.mean([np.mean(d) for d, _ in groups]))
    total = np.zeros(resamples)
    spread = False
    for d, clusters in groups:
        d = np.asarray(d, dtype=float)
        if clusters is None:
            sums, counts = d, np.ones_like(d)
        else:
            _, idx = np.unique(np.asarray(clusters), return_inverse=True)
            sums, counts = np.bincount(idx, weights=d), np.bincount(idx).astype(float)
        spread |= bool(np.ptp(sums / counts) > 0)
        draw = rng.integers(0, sums.size, size=(resamples, sums.size))
        total += sums[draw].sum(axis=1) / counts[draw].sum(axis=1)
    if not spread:
        return _point(estimate)
    dist = total / len(groups)
    low, high = np.percentile(dist, [50 * (1 - confidence), 50 * (1 + confidence)])
    return Estimate(estimate=estimate, low=float(low), high=float(high)), _bootstrap_p(dist)


def permutation_p(d: np.ndarray, *, resamples: int = 2000, seed: int = 0) -> float:
    """Two-sided paired permutation test of mean(d) = 0 by random sign flips (exact if small)."""
    if np.all(d == 0) or d.size < 2:  # one item: its two sign flips are equally extreme
        return 1.0
    res = _sps().permutation_test((d,), lambda x, axis: np.mean(x, axis=axis), permutation_type="samples",
                               vectorized=True, n_resamples=resamples, alternative="two-sided",
                               random_state=np.random.default_rng(seed))
    return float(res.pvalue)


def cluster_se(d: np.ndarray, clusters: np.ndarray) -> tuple[float, int]:
    """Cluster-robust (CR1) standard error of mean(d), and the number of clusters."""
    _, idx = np.unique(clusters, return_inverse=True)
    g = int(idx.max()) + 1
    if g < 2:
        raise ValueError("clustered standard errors need at least two clusters")
    resid = d - d.mean()
    sums = np.bincount(idx, weights=resid, minlength=g)
    return float(math.sqrt(g / (g - 1) * np.sum(sums ** 2)) / d.size), g


def is_binary(values: np.ndarray) -> bool:
    return bool(np.isin(values, (0.0, 1.0)).all())


def analyze_paired(base: np.ndarray, cand: np.ndarray, *, clusters: np.ndarray | None = None,
                   confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> PairedResult:
    """Estimate, interval, test and power of candidate - base on paired per-item scores."""
    base, cand = np.asarray(base, dtype=float), np.asarray(cand, dtype=float)
    if base.shape != cand.shape or base.size == 0:
        raise ValueError("base and candidate need the same, non-zero number of paired items")
    d = cand - base
    n = d.size
    binary = is_binary(base) and is_binary(cand)
    if binary:
        to_right, to_wrong = int(np.sum(d > 0)), int(np.sum(d < 0))
        # per-item variance of d is the discordance minus delta^2; smoothed (+1 over n + 2) so
        # that a probe where nothing changed still has a finite, honest power
        disc = (to_right + to_wrong + 1) / (n + 2)
        sd_item = math.sqrt(max(disc - d.mean() ** 2, disc / (n + 2)))
    else:
        sd_item = float(d.std(ddof=1)) if n > 1 else 0.0
        if sd_item == 0.0:
            sd_item = float(np.abs(d).max() or 1e-12) / math.sqrt(n)
    if clusters is not None:
        se, g = cluster_se(d, np.asarray(clusters))
        iid_se = max(sd_item / math.sqrt(n), 1e-300)
        deff = max(1.0, (se / iid_se) ** 2) if se > 0 else 1.0
        t = float(_sps().t.ppf(0.5 + confidence / 2, g - 1))
        est = float(d.mean())
        p = 1.0 if se == 0 else float(2 * _sps().t.sf(abs(est) / se, g - 1))
        lo, hi = (est - t * se, est + t * se) if se > 0 else (est, est)
        return PairedResult(n, Estimate(estimate=est, low=lo, high=hi), f"cluster-robust t, {g} clusters",
                            f"clustered Wald t (df={g - 1})", p, sd_item, deff, g,
                            mde(sd_item, n, confidence=confidence, design_effect=deff))
    if binary:
        n11 = int(np.sum((base == 1) & (cand == 1)))
        n22 = int(np.sum((base == 0) & (cand == 0)))
        ci = newcombe_paired(n11, to_right, to_wrong, n22, confidence)  # p1 = candidate, p2 = base
        return PairedResult(n, ci, "Newcombe paired score (method 10)", "exact McNemar",
                            mcnemar_exact(to_right, to_wrong), sd_item, 1.0, None,
                            mde(sd_item, n, confidence=confidence))
    ci, _ = paired_bootstrap(d, confidence=confidence, resamples=resamples, seed=seed)
    return PairedResult(n, ci, "paired bootstrap percentile", "paired permutation (sign flips)",
                        permutation_p(d, resamples=resamples, seed=seed), sd_item, 1.0, None,
                        mde(sd_item, n, confidence=confidence))


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def kappas(x: np.ndarray, y: np.ndarray, n_labels: int, rows: np.ndarray) -> np.ndarray:
    """Cohen's kappa of label codes `x` and `y` (0..n_labels-1) over each row of item indices `rows`
    (resamples x items), all at once: (p_o - p_e) / (1 - p_e) from each row's confusion counts, as
    scikit-learn's cohen_kappa_score computes it; a row where both raters use one label alone (p_e = 1,
    undefined) counts as no agreement beyond chance (0)."""
    r, n = rows.shape
    cells = (np.arange(r)[:, None] * n_labels * n_labels + x[rows] * n_labels + y[rows]).ravel()
    counts = np.bincount(cells, minlength=r * n_labels * n_labels).reshape(r, n_labels, n_labels) / n
    observed = np.trace(counts, axis1=1, axis2=2)
    expected = (counts.sum(axis=2) * counts.sum(axis=1)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = (observed - expected) / (1 - expected)
    return np.where(np.isfinite(k) & (expected < 1 - 1e-12), k, 0.0)


def kappa_interval(a: list[str], b: list[str], *, confidence: float = 0.95, resamples: int = 2000,
                   seed: int = 0) -> Estimate:
    """Cohen's kappa of two raters over the same items, with a percentile bootstrap interval over the
    items; a resample where both raters use one label alone counts as no agreement beyond chance (kappa 0).
    The resamples in one vectorised pass (`kappas`): scikit-learn's cohen_kappa_score, checked equal
    in tests/test_stats.py, costs ~3 ms a call, 2,000 resamples x 2 judges ~12 s of every re-run."""
    labels = sorted(set(a) | set(b))
    code = {label: k for k, label in enumerate(labels)}
    x = np.array([code[v] for v in a], dtype=np.int64)
    y = np.array([code[v] for v in b], dtype=np.int64)
    point = float(kappas(x, y, len(labels), np.arange(x.size)[None, :])[0]) if x.size else 0.0
    if x.size < 2:
        return Estimate(estimate=point, low=point, high=point)
    rng = np.random.default_rng(seed)
    rows = np.stack([rng.integers(0, x.size, x.size) for _ in range(resamples)])  # the same draws as before
    dist = kappas(x, y, len(labels), rows)
    tail = (1 - confidence) / 2
    return Estimate(estimate=point, low=float(np.quantile(dist, tail)), high=float(np.quantile(dist, 1 - tail)))


def length_controlled_win_rate(scores: np.ndarray, length_diff: np.ndarray, *,
                               confidence: float = 0.95) -> Estimate | None:
    """The win rate with the answers' length difference controlled for, as AlpacaEval 2 does (Dubois et
    al. 2024, "Length-Controlled AlpacaEval"): a logistic regression of each item's score (the candidate's
    share of the two orders' points, in [0, 1]) on its standardised length difference (the candidate's
    characters minus the base's, over their standard deviation, through tanh as AlpacaEval bounds it),
    read at no difference: logistic(intercept). A judge that favours the longer answer moves the raw win
    rate and not this one.

    Fitted as a fractional-outcome logit (the Bernoulli quasi-likelihood, Papke & Wooldridge 1996, by
    scipy's BFGS); its interval is the intercept's sandwich (HC0) standard error mapped through the
    logistic. None where the lengths never differ (nothing to control for) or fewer than 3 items."""
    from scipy.optimize import minimize
    from scipy.special import expit

    y, d = np.asarray(scores, dtype=float), np.asarray(length_diff, dtype=float)
    sd = float(d.std())
    if y.size < 3 or sd == 0:
        return None
    x = np.column_stack([np.ones_like(d), np.tanh(d / sd)])

    def loss(b: np.ndarray) -> tuple[float, np.ndarray]:
        eta = x @ b
        return float(np.sum(np.logaddexp(0.0, eta) - y * eta)), x.T @ (expit(eta) - y)

    b = minimize(loss, np.zeros(2), jac=True, method="BFGS", options={"gtol": 1e-10}).x
    p = expit(x @ b)
    bread = np.linalg.pinv(x.T @ (x * (p * (1 - p))[:, None]))
    meat = x.T @ (x * ((y - p) ** 2)[:, None])
    se = math.sqrt(max(float((bread @ meat @ bread)[0, 0]), 0.0))
    z = _z(confidence)
    return Estimate(estimate=float(expit(b[0])), low=float(expit(b[0] - z * se)), high=float(expit(b[0] + z * se)))

"""Paired bootstrap intervals: checked against normal theory, by hand, and by simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.regression.linear_model import OLS
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from harness.records import Estimate
from harness.stats import (
    analyze_paired,
    cluster_se,
    holm,
    is_binary,
    mcnemar_exact,
    mde,
    mean_interval,
    n_required,
    newcombe_independent,
    newcombe_paired,
    paired_bootstrap,
    permutation_p,
    role_bootstrap,
    score_interval,
    welch,
    wilson,
)


def test_single_group_matches_normal_theory_for_large_n():
    rng = np.random.default_rng(1)
    d = rng.normal(0.3, 1.0, size=4000)
    ci, _ = paired_bootstrap(d, resamples=4000, seed=3)
    half = sps.norm.ppf(0.975) * d.std(ddof=1) / np.sqrt(d.size)
    assert ci.estimate == pytest.approx(d.mean())
    assert ci.low == pytest.approx(d.mean() - half, abs=0.006)
    assert ci.high == pytest.approx(d.mean() + half, abs=0.006)


def test_role_interval_is_the_mean_of_task_means_resampled_per_task():
    """By hand: two tasks of different size; the statistic weighs tasks equally."""
    a = np.array([1.0, 0.0, 1.0, 1.0])  # mean 0.75
    b = np.array([0.0] * 9 + [-1.0])  # mean -0.1
    ci, _ = role_bootstrap([(a, None), (b, None)], resamples=4000, seed=0)
    assert ci.estimate == pytest.approx((0.75 - 0.1) / 2)
    # the same computed directly: resample each task's items independently, average the means
    rng = np.random.default_rng(5)
    reps = [(rng.choice(a, a.size).mean() + rng.choice(b, b.size).mean()) / 2 for _ in range(20000)]
    lo, hi = np.percentile(reps, [2.5, 97.5])
    assert ci.low == pytest.approx(lo, abs=0.03) and ci.high == pytest.approx(hi, abs=0.03)


def test_role_interval_resamples_whole_clusters():
    """Items within a cluster move together: resampling clusters widens the interval, and equals
    a by-hand cluster bootstrap (ratio of drawn sums to drawn counts)."""
    rng = np.random.default_rng(3)
    clusters = np.repeat(np.arange(10), 12)
    d = np.repeat(rng.normal(0, 1, 10), 12) + rng.normal(0, 0.2, 120)
    by_item, _ = role_bootstrap([(d, None)], resamples=4000, seed=1)
    by_cluster, _ = role_bootstrap([(d, clusters)], resamples=20000, seed=1)
    assert (by_cluster.high - by_cluster.low) > 2 * (by_item.high - by_item.low)
    sums, counts = np.bincount(clusters, weights=d), np.bincount(clusters)
    draws = rng.integers(0, 10, size=(20000, 10))
    lo, hi = np.percentile(sums[draws].sum(1) / counts[draws].sum(1), [2.5, 97.5])
    assert by_cluster.low == pytest.approx(lo, abs=0.06) and by_cluster.high == pytest.approx(hi, abs=0.06)


def test_no_spread_gives_a_point_interval():
    ci, p = paired_bootstrap(np.zeros(50))
    assert (ci.estimate, ci.low, ci.high, p) == (0.0, 0.0, 0.0, 1.0)


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
        ci, _ = paired_bootstrap(gain - base, resamples=500, seed=int(rng.integers(1 << 30)))
        found += ci.low > 0
        null = np.where(rng.random(n) < 0.2, 1 - base, base)  # symmetric flips, no true change
        ci0, _ = paired_bootstrap(null - base, resamples=500, seed=int(rng.integers(1 << 30)))
        covered += ci0.low <= 0 <= ci0.high
    print(f"planted effect found in {found / reps:.3f}, null covered in {covered / reps:.3f}")
    assert found / reps > 0.97
    assert 0.91 <= covered / reps <= 0.99  # nominal 0.95, Monte-Carlo error about 0.013


def test_is_binary():
    assert is_binary(np.array([0.0, 1.0, 1.0]))
    assert not is_binary(np.array([0.0, 0.5]))


def test_empty_group_is_refused():
    with pytest.raises(ValueError):
        role_bootstrap([(np.array([1.0]), None), (np.array([]), None)])
    with pytest.raises(ValueError):
        paired_bootstrap(np.array([]))


# --------------------------------------------------------------------------- against references



def test_newcombe_matches_the_published_example():
    """Fagerland, Lydersen & Laake, Statistical Analysis of Contingency Tables, ch. 8:
    the paired table [[59, 6], [16, 80]] gives -0.0621 (95% CI -0.1186 to -0.0046)."""
    ci = newcombe_paired(59, 6, 16, 80)
    assert (round(ci.estimate, 4), round(ci.low, 4), round(ci.high, 4)) == (-0.0621, -0.1186, -0.0046)


def test_wilson_matches_statsmodels():
    for x, n in [(0, 10), (3, 10), (59, 161), (161, 161)]:
        ci = wilson(x, n)
        assert (ci.low, ci.high) == pytest.approx(proportion_confint(x, n, method="wilson"), abs=1e-12)
        assert ci.estimate == x / n


def test_a_mean_score_interval_is_wilson_for_shares_and_t_otherwise():
    shares = np.array([1.0] * 7 + [0.0] * 5)
    assert score_interval(shares) == wilson(7, 12).model_copy(update={"estimate": 7 / 12})
    scores = np.array([0.2, 1.4, -0.3, 0.8, 0.5])
    t = sps.t.interval(0.95, 4, loc=scores.mean(), scale=sps.sem(scores))
    ci = score_interval(scores)
    assert (ci.estimate, ci.low, ci.high) == pytest.approx((scores.mean(), *t), abs=1e-12)
    # the same from the summary alone, as format-1 comparisons are read; one item is its own point
    assert mean_interval(scores.mean(), scores.std(ddof=1), 5, binary=False) == ci
    assert mean_interval(0.4, 0.0, 1, binary=False) == Estimate(estimate=0.4, low=0.4, high=0.4)
    # `binary` as the task says: 0/1 candidate scores of a non-binary metric take the t interval
    assert score_interval(shares, binary=False).low == pytest.approx(
        sps.t.interval(0.95, 11, loc=7 / 12, scale=sps.sem(shares))[0])


def test_exact_mcnemar_matches_statsmodels():
    for b, c in [(6, 16), (0, 5), (12, 12), (1, 30)]:
        expected = mcnemar([[40, b], [c, 40]], exact=True).pvalue
        assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-10)
    assert mcnemar_exact(0, 0) == 1.0


def test_cluster_se_matches_statsmodels_cluster_robust_ols():
    rng = np.random.default_rng(0)
    clusters = np.repeat(np.arange(12), 10)
    d = rng.normal(0, 1, 120) + np.repeat(rng.normal(0, 1, 12), 10)
    se, g = cluster_se(d, clusters)
    fit = OLS(d, np.ones_like(d)).fit(cov_type="cluster", cov_kwds={"groups": clusters})
    assert g == 12 and se == pytest.approx(float(fit.bse[0]), rel=1e-10)


def test_permutation_p_is_exact_for_small_n():
    d = np.array([0.3, -0.1, 0.8, 0.5, 0.2, -0.4, 0.9, 0.1])
    signs = np.array(np.meshgrid(*[[-1, 1]] * d.size)).reshape(d.size, -1).T
    means = (signs * d).mean(axis=1)
    expected = np.mean(np.abs(means) >= abs(d.mean()) - 1e-12)
    assert permutation_p(d, resamples=10_000) == pytest.approx(expected)


def test_holm_matches_statsmodels():
    p = [0.01, 0.04, 0.03, 0.2, 0.005]
    assert holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]))


def test_mde_and_required_items_by_hand():
    # (z_0.975 + z_0.8) * sd / sqrt(n) = (1.959964 + 0.841621) * 0.5 / 10
    assert mde(0.5, 100) == pytest.approx(0.1400793, abs=1e-6)
    # items for a 0.07 effect: (2.801585 * 0.5 / 0.07)^2 = 400.45 -> 401; design effect 2 doubles it
    assert n_required(0.5, 0.07) == 401 and n_required(0.5, 0.07, design_effect=2.0) == 801
    assert mde(0.5, n_required(0.5, 0.07)) <= 0.07


def test_analyze_paired_picks_the_method_by_metric_and_clusters():
    base = np.array([1, 1, 0, 0, 1, 0, 1, 1, 0, 1] * 5, dtype=float)
    cand = np.array([1, 1, 1, 0, 1, 1, 0, 1, 1, 1] * 5, dtype=float)
    r = analyze_paired(base, cand)
    ci = newcombe_paired(25, 15, 5, 5)
    assert r.test == "exact McNemar" and r.delta == ci
    assert r.p_value == mcnemar_exact(15, 5) and r.delta.estimate == pytest.approx(0.2)
    cont = analyze_paired(np.zeros(40), np.linspace(-1, 2, 40))
    assert cont.test.startswith("paired permutation") and cont.delta.low < 0.5 < cont.delta.high
    clustered = analyze_paired(base, cand, clusters=np.repeat(np.arange(10), 5))
    assert clustered.n_clusters == 10 and clustered.interval.startswith("cluster-robust")
    assert clustered.design_effect >= 1.0 and clustered.mde >= r.mde * 0.99


def test_independent_sample_intervals_match_hand_worked_and_scipy_values():
    # Newcombe (1998), Table II example: 56/70 vs 48/80 -> difference 0.2 with (0.0524, 0.3339)
    ci = newcombe_independent(48, 80, 56, 70, 0.95)
    assert ci.estimate == pytest.approx(56 / 70 - 48 / 80)
    assert ci.low == pytest.approx(0.0524, abs=5e-4) and ci.high == pytest.approx(0.3339, abs=5e-4)
    a, b = np.array([1.0, 2.0, 4.0, 7.0, 3.0]), np.array([3.0, 5.0, 6.0, 9.0, 8.0, 7.0])
    t = sps.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    ci = welch(a, b, 0.95)
    assert (ci.estimate, ci.low, ci.high) == pytest.approx((b.mean() - a.mean(), t.low, t.high))


def test_wilson_ends_hold_the_estimate_at_zero_and_one():
    """At p = 0 (or 1) the Wilson interval's lower (upper) end is p itself, not a rounding error past it."""
    from harness.stats import wilson

    for n in (1, 7, 12, 100, 1_000):
        zero, one = wilson(0, n), wilson(n, n)
        assert zero.low == 0.0 <= zero.estimate and one.high == 1.0 == one.estimate
        assert zero.high == pytest.approx(1 - one.low)


def test_length_controlled_win_rate_equals_statsmodels_fractional_logit():
    """The point and interval of a fractional-outcome logit with sandwich (HC0) errors, as statsmodels'
    GLM (binomial family, cov_type HC0) gives them; BFGS to a gradient of 1e-10 leaves ~1e-9."""
    import warnings

    import statsmodels.api as sm
    from scipy.special import expit

    from harness.stats import length_controlled_win_rate

    rng = np.random.default_rng(1)
    d = rng.normal(20, 50, 80)
    y = np.clip(np.round((0.5 + 0.3 * np.tanh(d / 50) + rng.normal(0, 0.2, 80)) * 4) / 4, 0, 1)
    mine = length_controlled_win_rate(y, d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sm.GLM(y, sm.add_constant(np.tanh(d / d.std())), family=sm.families.Binomial()).fit(cov_type="HC0")
    b, se, z = fit.params[0], fit.bse[0], 1.959963984540054
    assert (mine.estimate, mine.low, mine.high) == pytest.approx((expit(b), expit(b - z * se), expit(b + z * se)),
                                                                  abs=1e-7)
    assert length_controlled_win_rate(y, np.zeros_like(y)) is None  # no length difference: nothing to control


def test_length_control_removes_a_judges_taste_for_length_and_keeps_a_real_win():
    """Simulated judges over 100 items, both orders: one that only likes the longer answer (the
    candidate's are longer on average) wins the raw rate and not the length-controlled one, whose
    interval covers 0.5 about as often as its level says; one that sees a real win, whatever the
    lengths, keeps it."""
    from scipy.special import expit

    from harness.stats import length_controlled_win_rate

    rng = np.random.default_rng(7)
    covered, raw_high, kept = 0, 0, 0
    sims = 300
    for _ in range(sims):
        d = rng.normal(40, 60, 100)
        x = np.tanh(d / d.std())
        taste = expit(1.5 * x)  # no preference at equal length
        y = rng.binomial(1, np.stack([taste, taste])).mean(axis=0)
        lc = length_controlled_win_rate(y, d)
        covered += lc.low <= 0.5 <= lc.high
        raw_high += y.mean() > 0.55
        real = expit(1.0 + 0.0 * x)  # a real win (73%), blind to length
        kept += length_controlled_win_rate(rng.binomial(1, np.stack([real, real])).mean(axis=0), d).low > 0.5
    assert raw_high / sims > 0.9  # the raw rate is fooled
    assert 0.90 <= covered / sims <= 0.99, covered / sims  # nominal 95%; 300 runs: +-2.5 pp
    assert kept / sims > 0.95


def test_vectorised_kappa_equals_scikit_learns_on_every_resample_and_counts_the_undefined_as_zero():
    """The bootstrap's kappas, all resamples at once, against scikit-learn's cohen_kappa_score one by one
    (three labels, 60 items, 300 resamples): equal to float64 rounding; a resample where both raters use
    one label alone is 0, where scikit-learn's is undefined."""
    import warnings

    from sklearn.metrics import cohen_kappa_score

    from harness.stats import kappa_interval, kappas

    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, 60)
    y = np.where(rng.random(60) < 0.6, x, rng.integers(0, 3, 60))
    rows = rng.integers(0, 60, (300, 60))
    ours = kappas(x, y, 3, rows)
    theirs = np.array([cohen_kappa_score(x[r], y[r], labels=[0, 1, 2]) for r in rows])
    assert np.abs(ours - theirs).max() < 1e-12
    same = np.zeros(10, dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(cohen_kappa_score(same, same, labels=[0, 1]))
    assert kappas(same, same, 2, np.arange(10)[None, :])[0] == 0.0
    k = kappa_interval(list(map(str, x)), list(map(str, y)), resamples=500)
    assert k.low < k.estimate < k.high and k.estimate == pytest.approx(cohen_kappa_score(x, y), abs=1e-12)

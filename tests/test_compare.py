"""Pairing base and candidate records by document; a group entry's pooled score."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from harness.compare import _group_result, _Paired
from harness.config import StatsSpec
from harness.errors import HarnessError
from harness.pairing import pair_records as _pair
from harness.stats import analyze_paired, mean_interval


def _records(order: list[int], acc: list[float], extra: str | None = None) -> pd.DataFrame:
    df = pd.DataFrame({"doc_id": order, "filter": "none", "prompt_hash": [f"p{d}" for d in order],
                       "metric.acc": acc})
    if extra:
        df[extra] = 1.0
    return df


def test_pairing_joins_by_document_without_a_pandas_warning():
    """Base and candidate stored in different orders: one row per document in the base's order,
    shared columns suffixed, the others as they are; and no pandas deprecation on the way (pandas
    3.1 deprecates join's lsuffix/rsuffix, and the next pandas drops them)."""
    base = _records([2, 0, 1], [1.0, 0.0, 1.0], extra="only_base")
    cand = _records([0, 1, 2], [1.0, 1.0, 0.0], extra="only_cand")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        joined = _pair(base, cand, "t", "none", "cand")
    assert list(joined.index) == [2, 0, 1]
    assert list(joined.columns) == ["filter_base", "prompt_hash_base", "metric.acc_base", "only_base",
                                    "filter_cand", "prompt_hash_cand", "metric.acc_cand", "only_cand"]
    assert list(joined["metric.acc_base"]) == [1.0, 0.0, 1.0]
    assert list(joined["metric.acc_cand"]) == [0.0, 1.0, 1.0]


def test_pairing_refuses_documents_with_different_prompts():
    base = _records([0, 1], [1.0, 0.0])
    cand = _records([0, 1], [1.0, 0.0]).assign(prompt_hash=["p0", "other"])
    with pytest.raises(HarnessError, match="doc 1 has different prompts for base and cand"):
        _pair(base, cand, "t", "none", "cand")


def _leaf(name: str, scores: np.ndarray) -> _Paired:
    base = np.zeros_like(scores)
    return _Paired("mmlu", name, scores - base, None, analyze_paired(base, scores, resamples=200), scores)


def _scores(n: int, mean: float, sd: float, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=n)
    return mean + sd * (x - x.mean()) / x.std(ddof=1)


def test_a_group_entrys_candidate_score_pools_its_tasks_items():
    """mmlu as lm-eval expands it: the candidate's score over every item of its tasks, with its
    interval (what a floor gate on the entry reads): Wilson on the pooled shares, else a t
    interval whose spread holds the spread within the tasks and between their means."""
    st = StatsSpec(resamples=200)
    shares = [_leaf("mmlu_anatomy", np.repeat([1.0, 0.0], [90, 10])),
              _leaf("mmlu_law", np.repeat([1.0, 0.0], [210, 90]))]
    g = _group_result("mmlu", "forgetting", shares, True, st)
    assert (g.name, g.n, g.tasks) == ("mmlu", 400, ["mmlu_anatomy", "mmlu_law"])
    assert g.candidate == mean_interval(0.75, 0.0, 400, binary=True)
    continuous = [_leaf("mmlu_anatomy", _scores(100, 0.9, 0.3, 1)), _leaf("mmlu_law", _scores(300, 0.7, 0.45, 2))]
    g = _group_result("mmlu", "forgetting", continuous, False, st)
    sd = np.sqrt((99 * 0.3**2 + 299 * 0.45**2 + 100 * 0.15**2 + 300 * 0.05**2) / 399)
    assert g.candidate.estimate == pytest.approx(0.75)
    assert g.candidate.high - g.candidate.low == pytest.approx(2 * 1.966 * sd / 20, rel=1e-3)

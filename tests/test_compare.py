"""Pairing base and candidate records by document."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from harness.compare import _pair
from harness.errors import HarnessError


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

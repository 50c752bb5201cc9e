"""Pairing: two runs' records joined by document, the one way every later stage (compare, the judge's
statistics, the ROI) lines two models up. A pairing mismatch (the same doc_id with a different prompt)
means the two runs did not see the same task, and is an error rather than a silent join.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from harness.errors import HarnessError
from harness.plan import PlannedRun
from harness.store import METRIC_JSON_PREFIX, METRIC_PREFIX


def pair_records(base: pd.DataFrame, cand: pd.DataFrame, task: str, metric_filter: str, label: str,
          same: str = "prompt") -> pd.DataFrame:
    """Join on doc_id; every pair must share its prompt (or, across prompt styles, its doc)."""
    b = base[base["filter"] == metric_filter].set_index("doc_id")
    c = cand[cand["filter"] == metric_filter].set_index("doc_id")
    if b.empty:
        filters = sorted(set(base["filter"]))
        raise HarnessError(f"task {task}: no records for filter '{metric_filter}' (have: {', '.join(filters)}); "
                           "set `filter:` for this task in the suite")
    if set(b.index) != set(c.index):
        raise HarnessError(f"task {task}: base and {label} scored different items "
                           f"({len(b)} vs {len(c)}); re-run both with the same limit")
    # merge, not join(lsuffix=, rsuffix=): pandas 3.1 deprecates those, and join's `suffixes` is
    # new in 3.1; merge on the index gives the same frame (left order, shared columns suffixed)
    joined = b.merge(c, left_index=True, right_index=True, how="inner", suffixes=("_base", "_cand"))
    bad = joined[joined[f"{same}_hash_base"] != joined[f"{same}_hash_cand"]]
    if len(bad):
        raise HarnessError(f"task {task}: doc {bad.index[0]} has different {same}s for base and {label} "
                           f"({len(bad)} items); the runs did not see the same task")
    return joined


def doc_field(joined: pd.DataFrame, field: str, task: str, key: str) -> np.ndarray:
    """Each paired document's `field` (as JSON text), for categories and clusters; a document that lacks
    it is an error naming the suite key (`key`) to fix."""
    docs = [json.loads(d) for d in joined["doc_base"]]
    missing = [i for i, d in zip(joined.index, docs, strict=True) if field not in d]
    if missing:
        raise HarnessError(f"task {task}: {key} field '{field}' is not in doc {missing[0]} "
                           f"({len(missing)} docs lack it); fix `{key}:` for this task in the suite")
    return np.array([json.dumps(d[field], sort_keys=True) for d in docs])


def as_suite_task(records: pd.DataFrame, run: PlannedRun) -> pd.DataFrame:
    """A run's records as its suite task's: a prompting arm's variant (another task over the same
    documents, its own metric and filter) renamed to the suite task's metric and filter."""
    v, suite_task = run.task.variant, run.task.spec
    if v is None or (v.metric, v.filter) == (suite_task.metric, suite_task.filter):
        return records
    kept = records[records["filter"] == v.filter].copy()
    if kept.empty:
        raise HarnessError(f"{run.model.label}: variant {v.task} of {suite_task.task}: no records for filter "
                           f"'{v.filter}' (have: {', '.join(sorted(set(records['filter'])))}); fix its `filter:`")
    kept["filter"] = suite_task.filter
    for prefix in (METRIC_PREFIX, METRIC_JSON_PREFIX):
        if prefix + v.metric in kept:
            kept[prefix + suite_task.metric] = kept[prefix + v.metric]
    if METRIC_PREFIX + suite_task.metric not in kept and METRIC_JSON_PREFIX + suite_task.metric not in kept:
        have = sorted(c.split(".", 1)[1] for c in kept.columns if c.startswith((METRIC_PREFIX, METRIC_JSON_PREFIX)))
        raise HarnessError(f"{run.model.label}: variant {v.task} of {suite_task.task}: no per-item metric "
                           f"'{v.metric}' (have: {', '.join(have)}); fix its `metric:`")
    return kept

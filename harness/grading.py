"""Pointwise grading against a reference (`judge.grade_rubric`): the judge reads one answer at a time,
with the task's input and its reference, and says whether it is correct, partly correct or incorrect
(the question Inspect's model-graded-fact scorer asks), read from its log-probabilities of the three
`grade_labels` (a served judge's top_logprobs), as the pairwise verdicts are read (harness.judge).

Each model's answers on a judged task are graded once, stored as a judgment keyed by the judge, the
grading rubric, the labels and the answers (a base's grades serve every candidate against it), with
the judge loaded once for these and the pairwise verdicts. A grade scores 1, 0.5 or 0; a fine-tune's
grades are paired with its base's per item: each one's mean grade and the paired difference with its
interval, beside the pairwise win rate (JudgedResult.grades). Grades are read as the judge gives them,
not calibrated: one answer has no position to cancel.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.config import HarnessSpec
from harness.execute import Job
from harness.judge import (
    JUDGE_FORMAT,
    LP_COLUMNS,
    judge_entry,
    judge_scorer,
    judged_input,
    judged_rows,
    read_labels,
    read_template,
)
from harness.plan import Plan, PlannedRun
from harness.records import GradeResult
from harness.stats import analyze_paired, score_interval
from harness.store import JUDGMENT, RunKey, Store

POINTS = (1.0, 0.5, 0.0)  # correct, partly correct, incorrect


@dataclass(frozen=True)
class GradedRun:
    """One model's answers on a judged task, and where its grades are stored."""

    label: str
    task: str
    run: PlannedRun
    key: RunKey


def read_grade_rubric(spec: HarnessSpec):
    """The grading rubric as (text, template): it must show `answer`."""
    return read_template(Path(spec.judge.grade_rubric), ("answer",), "the answer")


def plan_grades(plan: Plan, spec: HarnessSpec, store: Store,
                read: Callable[[PlannedRun], pd.DataFrame] | None = None) -> list[GradedRun]:
    """Every judged model's run of every judged task (each fine-tune and its base), keyed by the judge,
    the grading rubric, the labels and the answers graded; none without judge.grade_rubric."""
    judge = spec.judge
    if judge is None or judge.grade_rubric is None:
        return []
    read = read or (lambda run: store.read(run.key))
    text, _ = read_grade_rubric(spec)
    entry = judge_entry(spec, store)
    runs = {(r.model.label, r.task.leaf): r for r in plan.runs}
    graded: dict[tuple[str, str], GradedRun] = {}
    for cand in (m for m in plan.models if not m.is_base and not m.prompting):
        for label in (cand.base, cand.label):
            for task in judge.tasks:
                if (label, task) in graded:
                    continue
                run = runs[(label, task)]
                rows = judged_rows(read(run), judge.limit)
                content = hashlib.sha256(json.dumps([JUDGE_FORMAT, "grade", text, judge.grade_labels]).encode())
                content.update(json.dumps(rows[["doc_id", "prompt_hash", "response"]].values.tolist()).encode())
                key = RunKey(model_fp=entry.fingerprint, task=task, task_hash=content.hexdigest(), kind=JUDGMENT)
                graded[(label, task)] = GradedRun(label, task, run, key)
    return list(graded.values())


def grade_jobs(graded: list[GradedRun], spec: HarnessSpec, store: Store) -> list[Job]:
    """The jobs that grade `graded` (for harness.judge.run_judge's `also`): one request list per task."""
    if not graded:
        return []
    judge = spec.judge
    _, rubric = read_grade_rubric(spec)
    entry = judge_entry(spec, store)
    by_key = {g.key: g for g in graded}

    def frames_of(lm, jobs: list[Job]) -> list[pd.DataFrame]:
        runs = [by_key[j.key].run for j in jobs]
        items = [judged_rows(store.read(run.key), judge.limit) for run in runs]
        texts, at = [], []
        for run, rows in zip(runs, items, strict=True):
            at.append(len(texts))
            texts += [rubric.render(input=judged_input(run, d, p), reference=str(t), answer=str(a))
                      for d, p, t, a in zip(rows["doc"], rows["prompt"], rows["target"], rows["response"], strict=True)]
        readings = read_labels(lm, texts, judge.grade_labels, entry.prompt.template is not None)
        frames = []
        for start, rows in zip(at, items, strict=True):
            mine = readings[start:start + len(rows)]
            frames.append(pd.DataFrame({
                "doc_id": rows["doc_id"].to_numpy(), "response": rows["response"].astype(str).to_numpy(),
                **{c: [r.logprobs[k] for r in mine] for k, c in enumerate(LP_COLUMNS)},
                "pick": ["" if r.pick is None else judge.grade_labels[r.pick] for r in mine],
                "reading": [r.reading for r in mine], "judge_tokens": [r.tokens for r in mine],
                "judge_prompt": [r.prompt for r in mine]}))
        return frames

    score = judge_scorer(spec, entry, frames_of)
    return [Job(g.key, entry, g.label, g.task, score, together=f"grade:{g.task}") for g in graded]


def grade_points(df: pd.DataFrame, labels: list[str]) -> pd.Series:
    """doc_id -> the grade's points (a reply that names no label: incorrect)."""
    points = df["pick"].map({label: POINTS[k] for k, label in enumerate(labels)}).fillna(0.0)
    return pd.Series(points.to_numpy(dtype=float), index=df["doc_id"].to_numpy()).sort_index()


def grade_results(plan: Plan, spec: HarnessSpec, store: Store, read: Callable[[PlannedRun], pd.DataFrame],
                  clusters_of: Callable[[PlannedRun, pd.DataFrame], np.ndarray | None],
                  ) -> dict[tuple[str, str], GradeResult]:
    """(candidate, task) -> its grades paired with its base's, for every stored pair of graded runs."""
    graded = {(g.label, g.task): g for g in plan_grades(plan, spec, store, read)}
    if not graded:
        return {}
    judge, st = spec.judge, spec.stats
    out = {}
    for cand in (m for m in plan.models if not m.is_base and not m.prompting):
        for task in judge.tasks:
            base, mine = graded[(cand.base, task)], graded[(cand.label, task)]
            if not (store.has(base.key) and store.has(mine.key)):
                continue
            b, c = (grade_points(store.read(g.key), judge.grade_labels) for g in (base, mine))
            c = c.reindex(b.index)
            docs = read(base.run).drop_duplicates("doc_id").set_index("doc_id").sort_index().loc[b.index]
            stats = analyze_paired(b.to_numpy(), c.to_numpy(), clusters=clusters_of(base.run, docs),
                                   confidence=st.confidence, resamples=st.resamples, seed=st.seed)
            out[(cand.label, task)] = GradeResult(
                n=int(b.size), base=score_interval(b.to_numpy(), confidence=st.confidence),
                candidate=score_interval(c.to_numpy(), confidence=st.confidence), delta=stats.delta,
                p_value=stats.p_value,
                counts={side: [int((s == p).sum()) for p in POINTS] for side, s in (("base", b), ("candidate", c))})
    return out

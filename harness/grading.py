"""The judge's other work, beside the comparison's pairs (harness.judge), in the same judge load
(run_judge's `also`): its labelled validation pairs (`judge.validation`), which measure it, and
pointwise grading against a reference (`judge.grade_rubric`).

Validation: labelled pairs it never judges in the comparison, judged in both orders and read as the
comparison's verdicts are; its agreement with their labels (Cohen's kappa), position consistency and
first-position rate (JudgeValidation; a wins gate fails below judge.min_validation_kappa).

Grading: the judge reads one answer at a time,
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

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.config import HarnessSpec, JudgeSpec
from harness.errors import ConfigError
from harness.execute import Job
from harness.judge import (
    JUDGE_FORMAT,
    LP_COLUMNS,
    ORDERS,
    first_position_rate,
    item_scores,
    judge_entry,
    judge_frames,
    judge_scorer,
    judged_input,
    judged_rows,
    read_labels,
    read_rubric,
    read_template,
    read_verdicts,
)
from harness.plan import Plan, PlannedRun
from harness.records import GradeResult, JudgeValidation
from harness.stats import analyze_paired, kappa_interval, score_interval
from harness.store import JUDGMENT, RunKey, Store
from harness.util.lazy import Lazy
from harness.util.reads import note_read

VALIDATION_TASK = "judge-validation"  # the stored judgment of judge.validation's pairs
TRUTH = {"A": "loss", "B": "win", "tie": "tie"}  # a label in the candidate's terms: answer_b is the "candidate"


def read_validation(judge: JudgeSpec) -> pd.DataFrame:
    """judge.validation's labelled pairs as judged items (answer_a as the base's answer, answer_b as the
    candidate's, the label in the candidate's terms as `truth`), every line checked."""
    path = Path(judge.validation)
    note_read(path)
    rows, problems = [], []
    keys = {"input", "reference", "answer_a", "answer_b", "verdict"}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"{path}:{n}: not JSON ({e.msg})")
            continue
        if not isinstance(row, dict) or set(row) != keys or row["verdict"] not in TRUTH:
            problems.append(f"{path}:{n}: give exactly {', '.join(sorted(keys))}, verdict one of A, B, tie")
            continue
        rows.append({"doc_id": n, "input": str(row["input"]), "reference": str(row["reference"]),
                     "base_response": str(row["answer_a"]), "candidate_response": str(row["answer_b"]),
                     "truth": TRUTH[row["verdict"]]})
    if not rows and not problems:
        problems.append(f"{path}: no labelled pairs")
    if problems:
        raise ConfigError(problems)
    return pd.DataFrame(rows).set_index("doc_id")


def validation_key(spec: HarnessSpec, store: Store) -> RunKey | None:
    """Where the judge's verdicts on its validation pairs are stored: keyed by the judge, the rubric,
    the labels and the file's content."""
    judge = spec.judge
    if judge is None or judge.validation is None:
        return None
    text, _ = read_rubric(judge)
    content = hashlib.sha256(json.dumps([JUDGE_FORMAT, text, judge.labels]).encode())
    content.update(Path(judge.validation).read_bytes())
    return RunKey(model_fp=judge_entry(spec, store).fingerprint, task=VALIDATION_TASK,
                  task_hash=content.hexdigest(), kind=JUDGMENT)


def validation_jobs(spec: HarnessSpec, store: Store) -> list[Job]:
    """The job that judges judge.validation's pairs in both orders (for run_judge's `also`), scored as
    the comparison's pairs are (judge_frames)."""
    key = validation_key(spec, store)
    if key is None:
        return []
    judge = spec.judge
    _, rubric = read_rubric(judge)
    entry = judge_entry(spec, store)
    items = Lazy(lambda: read_validation(judge).drop(columns="truth"))

    def frames_of(lm, jobs: list[Job]) -> list[pd.DataFrame]:
        return judge_frames(lm, rubric, judge.labels, entry.prompt.template is not None, [items.get()])

    return [Job(key, entry, "validation", VALIDATION_TASK, judge_scorer(spec, entry, frames_of))]


def judge_spec(spec: HarnessSpec, judge: JudgeSpec) -> HarnessSpec:
    """The comparison with `judge` as its judge (one of spec.judge.judges())."""
    return spec.model_copy(update={"judge": judge})


def choose_judge(spec: HarnessSpec, store: Store) -> tuple[HarnessSpec, list[JudgeValidation]]:
    """The comparison with the judge that judges it, and every judge's stored validation: the first of
    spec.judge.judges() (the judge, then its fallbacks) whose validation passes judges; where none
    does, the config's own judge, whose failed validation then keeps every judged gate from passing."""
    judges = spec.judge.judges()
    found = [judge_validation(judge_spec(spec, j), store) for j in judges]
    k = next((i for i, v in enumerate(found) if v is not None and v.passed), 0)
    validations = [v.model_copy(update={"judge": j.name, "chosen": i == k})
                   for i, (j, v) in enumerate(zip(judges, found, strict=True)) if v is not None]
    return judge_spec(spec, judges[k]), validations


def judge_validation(spec: HarnessSpec, store: Store) -> JudgeValidation | None:
    """The judge's diagnostics on its stored validation verdicts (None without judge.validation)."""
    key = validation_key(spec, store)
    if key is None or not store.has(key):
        return None
    judge, st = spec.judge, spec.stats
    df = store.read(key)
    truth = read_validation(judge)["truth"]
    wide = read_verdicts(df, judge.calibrate, judge.labels)
    scores = item_scores(wide)
    said = np.where(scores > 0.5, "win", np.where(scores < 0.5, "loss", "tie"))
    expected = truth.loc[wide.index].to_numpy()
    return JudgeValidation(
        n=int(scores.size), accuracy=float((said == expected).mean()),
        kappa=kappa_interval(list(said), list(expected), confidence=st.confidence, resamples=st.resamples,
                             seed=st.seed),
        position_consistency=float((wide[ORDERS[0]] == wide[ORDERS[1]]).mean()),
        first_position_rate=first_position_rate(df, judge.labels),
        min_kappa=judge.min_validation_kappa, judge_s=store.read_manifest(key).wall_s, judge=judge.name)


POINTS = (1.0, 0.5, 0.0)  # correct, partly correct, incorrect


@dataclass(frozen=True)
class GradedRun:
    """One model's answers on a judged task, and where its grades are stored."""

    label: str
    task: str
    run: PlannedRun
    key: RunKey


def _graded_rows(store: Store, run, limit: int | None) -> pd.DataFrame:
    return judged_rows(store.read(run.key), limit)


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
    answers = {k: Lazy(functools.partial(_graded_rows, store, g.run, judge.limit))
               for k, g in by_key.items() if not store.has(k)}

    def frames_of(lm, jobs: list[Job]) -> list[pd.DataFrame]:
        runs = [by_key[j.key].run for j in jobs]
        items = [answers[j.key].get() for j in jobs]
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

"""`harness monitor`: is a re-fine-tune due? The deployed candidate on fresh production-like
samples, against its accepted run, and the samples' inputs against its training data.

    harness monitor --config harness.yaml --samples new.jsonl [--candidate NAME] [--task TASK]

1. Performance: the deployed model scores the samples (documents in the task's own schema) through
   the normal plan/execute path (stored like any run). Against the accepted run (the same model on
   the task's own items, as `harness compare` stored it): items whose prompt repeats are paired;
   otherwise the two sets are independent samples, compared by the difference of means with
   Newcombe's interval for 0/1 metrics (Welch's t interval for others). A drop is flagged when the
   whole interval lies below zero and the estimate is a drop of at least `max_drop`.
2. Drift: each input's novelty is the share of its word bigrams never seen in the training
   prompts. Novelty of the samples is compared with that of held-out training prompts (a tenth
   of the training file, not used for the reference vocabulary), one-sided Mann-Whitney U. Drift
   is flagged when p < `drift_alpha` and the mean novelty is higher by at least `min_novelty`.
Exit 1 with the reasons when either is flagged.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import stats as sps

from harness.errors import HarnessError
from harness.persisted import MonitorResult, TrainManifest, read_record


def bigrams(text: str) -> set[str]:
    from harness.tools.datacheck import ngrams, words

    return ngrams(words(text), 2)


def novelty(texts: list[str], seen: set[str]) -> np.ndarray:
    out = []
    for text in texts:
        grams = bigrams(text)
        out.append(len(grams - seen) / len(grams) if grams else 0.0)
    return np.array(out)


def run_monitor(config: Path, samples: Path, candidate: str | None = None, task: str | None = None,
                max_drop: float = 0.05, drift_alpha: float = 0.01, min_novelty: float = 0.05,
                log: Callable[[str], None] = print) -> MonitorResult:
    from harness.config import DataSpec
    from harness.execute import execute_plan
    from harness.pipeline import load
    from harness.plan import plan_runs
    from harness.records import TRAIN_MANIFEST
    from harness.stats import analyze_paired, is_binary, newcombe_independent, welch
    from harness.store import METRIC_PREFIX, Store
    from harness.tools.datacheck import read_lines, record_text

    loaded = load(config)
    spec, suite = loaded.spec, loaded.suite
    if candidate is None:
        if len(spec.candidates) != 1:
            raise HarnessError(f"{config}: {len(spec.candidates)} candidates; name the deployed one with --candidate")
        candidate = spec.candidates[0].name
    deployed = next((c for c in spec.candidates if c.name == candidate), None)
    if deployed is None:
        raise HarnessError(f"--candidate {candidate}: not in {config}")
    task = task or suite.default_target()
    tspec = next((t for t in suite.tasks if t.task == task), None)
    if tspec is None:
        raise HarnessError(f"--task {task}: not a task of suite {suite.name}" if task else
                           f"suite {suite.name} has no target task; pass --task")
    if not samples.is_file():
        raise HarnessError(f"{samples}: samples file not found")

    # 1. the accepted run (stored by harness compare) and the same model on the new samples
    one = spec.model_copy(update={"candidates": [deployed], "roi": None})
    accepted_suite = suite.model_copy(update={"tasks": [tspec], "summaries": []})
    new_suite = suite.model_copy(update={"tasks": [tspec.model_copy(update={
        "data": DataSpec(format="jsonl", path=str(samples.resolve())), "subset": None})], "summaries": []})
    store = Store(spec.store)
    accepted_plan = plan_runs(one, accepted_suite, store)
    run = next(r for r in accepted_plan.runs if r.model.label == candidate)
    if not run.cached:
        raise HarnessError(f"{candidate} on {task}: no accepted run in {spec.store}; run harness compare "
                           f"--config {config} first")
    new_plan = plan_runs(one, new_suite, store)
    new_run = next(r for r in new_plan.runs if r.model.label == candidate)
    # only the deployed model: the base's score on the samples is not the question
    execute_plan(dataclasses.replace(new_plan, runs=[new_run]), one, store, log=log)
    col = METRIC_PREFIX + tspec.metric

    def frame(key):
        df = store.read(key)
        return df[df["filter"] == tspec.filter]

    old, new = frame(run.key), frame(new_run.key)
    a, b = old[col].to_numpy(dtype=float), new[col].to_numpy(dtype=float)
    conf = spec.stats.confidence
    joined = old.merge(new, on="prompt_hash", suffixes=("_old", "_new"))
    paired = len(joined) >= 0.5 * len(new)
    if paired:
        r = analyze_paired(joined[f"{col}_old"].to_numpy(dtype=float), joined[f"{col}_new"].to_numpy(dtype=float),
                           confidence=conf, resamples=spec.stats.resamples, seed=spec.stats.seed)
        change, method = r.delta, f"paired on {len(joined)} repeated items"
    elif is_binary(np.concatenate([a, b])):
        change = newcombe_independent(int(a.sum()), a.size, int(b.sum()), b.size, conf)
        method = "independent samples, Newcombe interval"
    else:
        change, method = welch(a, b, conf), "independent samples, Welch interval"
    drop = change.high < 0 and change.estimate <= -max_drop

    # 2. drift: the samples' inputs against the inputs the deployed model was trained on
    manifest = Path(deployed.adapter or deployed.path or "") / TRAIN_MANIFEST
    if not manifest.is_file():
        raise HarnessError(f"{manifest}: no trainer manifest, so the training data is unknown; drift needs it")
    data = Path(read_record(manifest, TrainManifest).spec.data)
    rows, _ = read_lines(data)
    prompts = [record_text(r)[0] if "messages" in r else str(r.get("prompt", "")) for _, r in rows]
    random.Random(0).shuffle(prompts)
    held = prompts[: max(1, len(prompts) // 10)]
    seen = set().union(*(bigrams(p) for p in prompts[len(held):]))
    task_obj = new_run.task.task
    inputs = [task_obj.doc_to_text(doc) for doc in task_obj.eval_docs]
    ref, fresh = novelty(held, seen), novelty(inputs, seen)
    p = float(sps.mannwhitneyu(fresh, ref, alternative="greater").pvalue)
    drift = p < drift_alpha and fresh.mean() - ref.mean() >= min_novelty

    unit = 100 if is_binary(np.concatenate([a, b])) else 1
    reasons = []
    if drop:
        reasons.append(f"performance: {tspec.metric} {a.mean() * unit:.1f} accepted -> {b.mean() * unit:.1f} on the "
                       f"samples, {change.estimate * unit:+.1f} [{change.low * unit:+.1f}, {change.high * unit:+.1f}]"
                       f" ({method}), a drop beyond {max_drop * unit:g}")
    if drift:
        reasons.append(f"drift: {fresh.mean():.1%} of the samples' word pairs are unseen in the training data, "
                       f"{ref.mean():.1%} for held-out training inputs (Mann-Whitney p = {p:.2g})")
    return MonitorResult(candidate=candidate, task=task, metric=tspec.metric, samples=int(b.size),
                         accepted_n=int(a.size), paired=paired, accepted_score=float(a.mean()),
                         new_score=float(b.mean()), change=change, method=method, drop=drop,
                         novelty_reference=float(ref.mean()), novelty_new=float(fresh.mean()), novelty_p=p,
                         drift=drift, reasons=reasons)

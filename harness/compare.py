"""Compare: pair base and candidate records by (task, doc_id) and summarise the differences.

Runs offline from the store. A pairing mismatch (the same doc_id with a different prompt) means
the two runs did not see the same task, and is an error rather than a silent join.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

import harness
from harness.comparison import ComparisonResult
from harness.config import HarnessSpec, StatsSpec, SuiteSpec, TaskSpec
from harness.errors import HarnessError
from harness.grading import choose_judge, grade_results
from harness.judge import judge_results
from harness.pairing import as_suite_task, doc_field, pair_records
from harness.persisted import SweepRecord, TrainManifest, read_record
from harness.plan import ModelEntry, Plan, PlannedRun
from harness.records import (
    BASE,
    MAX_FLIPS_PER_TASK,
    TRAIN_MANIFEST,
    CandidateResult,
    CategoryResult,
    CurveRecord,
    Estimate,
    FlipRecord,
    GroupResult,
    MetricDelta,
    ModelRecord,
    RoleResult,
    RunInfo,
    SummaryResult,
    TaskResult,
)
from harness.roi import train_manifest
from harness.sources.aggregations import resolve_aggregation
from harness.sources.checkpoints import tokenizers_differ
from harness.stats import (
    POWER,
    PairedResult,
    analyze_paired,
    holm,
    is_binary,
    mean_interval,
    role_bootstrap,
    score_interval,
)
from harness.store import METRIC_JSON_PREFIX, METRIC_PREFIX, Store
from harness.util.environment import machine, package_versions
from harness.util.files import now_iso


def _clusters(joined: pd.DataFrame, field: str | None, task: str) -> np.ndarray | None:
    return None if field is None else doc_field(joined, field, task, "cluster")


def _categories(joined: pd.DataFrame, field: str | None, values: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
                clusters: np.ndarray | None, task: str, st: StatsSpec) -> list[CategoryResult]:
    """Per category: levels and the paired delta, from `values(mask)` -> (base, candidate) arrays."""
    if field is None:
        return []
    labels = doc_field(joined, field, task, "category")
    out = []
    for label in sorted(set(labels)):
        m = labels == label
        b, c = values(m)
        cl = clusters[m] if clusters is not None and len(set(clusters[m])) > 1 else None
        d = analyze_paired(b, c, clusters=cl, confidence=st.confidence, resamples=st.resamples, seed=st.seed)
        out.append(CategoryResult(category=json.loads(label) if label.startswith('"') else label, n=int(m.sum()),
                                  base=score_interval(b, confidence=st.confidence),
                                  candidate=score_interval(c, confidence=st.confidence), delta=d.delta))
    return out


def _pseudo_values(items: list, aggregate: Callable[[list], float], what: str) -> tuple[np.ndarray, float]:
    """Jackknife pseudo-values of an aggregate metric (BBQ's bias scores): per-item values whose
    mean is the (bias-corrected) aggregate, so paired intervals and tests apply as to any metric."""
    n = len(items)
    fast = getattr(aggregate, "leave_one_out", lambda items: None)(items)  # chrF, BLEU: one pass
    if fast is not None:
        theta, loo = fast
    else:
        theta = float(aggregate(items))
        loo = np.array([float(aggregate(items[:i] + items[i + 1:])) for i in range(n)]) if n > 1 else np.array([theta])
    if not (math.isfinite(theta) and np.isfinite(loo).all()):
        raise HarnessError(f"{what}: the aggregate is undefined on these items (e.g. no item of the condition "
                           "it needs); choose another metric or more items")
    return n * theta - (n - 1) * loo, theta


@dataclasses.dataclass(frozen=True)
class _Paired:
    """One task's paired items, as the role, summary and group results pool them."""

    entry: str  # the suite entry: the task itself, or the group (mmlu) lm-eval expanded into it
    task: str
    d: np.ndarray  # candidate - base, per item
    clusters: np.ndarray | None
    stats: PairedResult
    candidate: np.ndarray  # the candidate's per-item scores, their mean its score (jackknife: the plug-in)


def _task_result(joined: pd.DataFrame, spec: TaskSpec, task: str, st: StatsSpec,
                 aggregation: Callable[[list], float] | None = None, entry: str = "", generated: bool = False,
                 ) -> tuple[TaskResult, _Paired, list[FlipRecord]]:
    col, col_json = METRIC_PREFIX + spec.metric, METRIC_JSON_PREFIX + spec.metric
    clusters = _clusters(joined, spec.cluster, task)
    if f"{col}_base" in joined:
        b = joined[f"{col}_base"].to_numpy(dtype=float)
        c = joined[f"{col}_cand"].to_numpy(dtype=float)
        base_score, cand_score = float(b.mean()), float(c.mean())

        def values(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return b[mask], c[mask]
    elif f"{col_json}_base" in joined:
        if aggregation is None:
            raise HarnessError(f"task {task}: metric '{spec.metric}' is stored as per-item tuples, but the run's "
                               "manifest names no aggregation for them (stored by an older harness); re-score it "
                               "(delete the task's files from the store)")
        items_b = [json.loads(x) for x in joined[f"{col_json}_base"]]
        items_c = [json.loads(x) for x in joined[f"{col_json}_cand"]]
        b, base_score = _pseudo_values(items_b, aggregation, f"task {task}, base, {spec.metric}")
        c, cand_score = _pseudo_values(items_c, aggregation, f"task {task}, candidate, {spec.metric}")

        def values(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            keep = np.flatnonzero(mask)
            return (_pseudo_values([items_b[i] for i in keep], aggregation, f"task {task}, {spec.metric}")[0],
                    _pseudo_values([items_c[i] for i in keep], aggregation, f"task {task}, {spec.metric}")[0])
    else:
        have = sorted({c.split(".", 1)[1].removesuffix("_base") for c in joined.columns
                       if c.startswith((METRIC_PREFIX, METRIC_JSON_PREFIX)) and c.endswith("_base")})
        raise HarnessError(f"task {task}: no per-item metric '{spec.metric}' (have: {', '.join(have)}); "
                           "fix `metric:` for this task in the suite")
    if clusters is not None and len(set(clusters)) < 2:
        raise HarnessError(f"task {task}: all {len(clusters)} items scored fall in one cluster "
                           f"({spec.cluster} = {clusters[0]}); a clustered interval needs two or more: score "
                           "more items (eval.limit, subset) or drop `cluster:` from the suite entry")
    stats = analyze_paired(b, c, clusters=clusters, confidence=st.confidence, resamples=st.resamples, seed=st.seed)
    if f"{col}_base" not in joined:  # centre the jackknife interval on the plug-in difference
        shift = (cand_score - base_score) - stats.delta.estimate
        stats = dataclasses.replace(stats, delta=stats.delta.map(lambda x: x + shift))
    binary = is_binary(b) and is_binary(c)

    def level(x: np.ndarray, score: float) -> Estimate:  # the mean is the score, the spread the items'
        return mean_interval(score, float(x.std(ddof=1)) if x.size > 1 else 0.0, x.size, binary=binary,
                             confidence=st.confidence)

    flips: list[FlipRecord] = []
    counts = {"to_wrong": 0, "to_right": 0}

    def keep(direction: str, rows: pd.DataFrame) -> None:
        for doc_id, r in rows.head(MAX_FLIPS_PER_TASK).iterrows():
            flips.append(FlipRecord(task=task, doc_id=int(doc_id), direction=direction, prompt=r["prompt_base"],
                                    target=r["target_base"], base_response=r["response_base"],
                                    candidate_response=r["response_cand"]))

    if binary:
        for direction, mask in (("to_wrong", (b == 1) & (c == 0)), ("to_right", (b == 0) & (c == 1))):
            counts[direction] = int(mask.sum())
            keep(direction, joined[mask])
    elif generated:  # generated text scored on a continuous scale: the items that moved most, both ways
        d = c - b
        for direction, order in (("lower", np.argsort(d, kind="stable")), ("higher", np.argsort(-d, kind="stable"))):
            moved = [i for i in order if (d[i] < 0 if direction == "lower" else d[i] > 0)]
            keep(direction, joined.iloc[moved])
    result = TaskResult(task=task, role=spec.role, metric=spec.metric, n=stats.n, binary=binary,
                        base=level(b, base_score), candidate=level(c, cand_score), delta=stats.delta,
                        interval=stats.interval, test=stats.test, p_value=stats.p_value,
                        p_holm=stats.p_value, sd_item=stats.sd_item, design_effect=stats.design_effect,
                        n_clusters=stats.n_clusters, mde=stats.mde, **counts,
                        categories=_categories(joined, spec.category, values, clusters, task, st))
    return result, _Paired(entry or task, task, c - b, clusters, stats, c + (cand_score - float(c.mean()))), flips


def _aggregation(store: Store, run: PlannedRun, metric: str) -> Callable[[list], float] | None:
    """lm-eval's aggregation of a metric stored as per-item tuples, from the run's manifest."""
    ref = store.read_manifest(run.key).aggregations.get(metric)
    return None if ref is None else resolve_aggregation(ref, f"task {run.task.name}, {run.model.label}")


def _extra(joined: pd.DataFrame, t, metric: str, st: StatsSpec, aggregation) -> MetricDelta:
    spec = t.spec.model_copy(update={"metric": metric, "category": None, "extra_metrics": []})
    r, *_ = _task_result(joined, spec, t.name, st, aggregation)
    return MetricDelta(metric=metric, binary=r.binary, base=r.base, candidate=r.candidate, delta=r.delta)


def _role_result(role: str, items: list[_Paired], st: StatsSpec) -> RoleResult:
    """The role's delta: the mean over its suite entries. An entry that lm-eval expands into several
    tasks (a group such as mmlu) counts once, its items pooled (a size-weighted mean, as lm-eval
    aggregates groups)."""
    entries: dict[str, list[_Paired]] = {}
    for item in items:
        entries.setdefault(item.entry, []).append(item)
    groups, ses = [], []
    for members in entries.values():
        d = np.concatenate([m.d for m in members])
        if all(m.clusters is None for m in members):
            cl = None
        else:  # clusters stay within their task; a task without clusters has one item per cluster
            labels: list[str] = []
            for m in members:
                labels += [f"{m.task}\x1f{c}" for c in m.clusters] if m.clusters is not None else \
                    [f"{m.task}\x1f#{i}" for i in range(m.d.size)]
            cl = np.array(labels)
        groups.append((d, cl))
        total = sum(m.stats.n for m in members)
        ses.append(math.sqrt(sum((m.stats.n * m.stats.se) ** 2 for m in members)) / total)
    delta, p = role_bootstrap(groups, confidence=st.confidence, resamples=st.resamples, seed=st.seed)
    # the mean of independent entry means: its variance is the sum of theirs over E^2 (the tasks'
    # standard errors include their smoothing and design effects, so power is not overstated)
    se = math.sqrt(sum(x ** 2 for x in ses)) / len(ses)
    power_z = float(sps.norm.ppf(0.5 + st.confidence / 2) + sps.norm.ppf(POWER))
    return RoleResult(role=role, tasks=[i.task for i in items], n=sum(i.stats.n for i in items),
                      delta=delta, se=se, p_value=p, mde=power_z * se)


def _group_result(entry: str, role: str, items: list[_Paired], binary: bool, st: StatsSpec) -> GroupResult:
    """A group entry (mmlu): its delta as the role pools it, and the candidate's score over its items."""
    candidate = score_interval(np.concatenate([i.candidate for i in items]), binary=binary, confidence=st.confidence)
    return GroupResult(name=entry, description=f"lm-eval group of {len(items)} tasks, items pooled",
                       candidate=candidate, **_role_result(role, items, st).model_dump())


CHANCE_METRICS = ("acc", "acc_norm")  # right-or-wrong choice metrics, whose chance level is 1 / choices


def _identical(joined: pd.DataFrame) -> bool:
    """Every request of the task scored exactly as the base's (log-likelihood tasks: every choice's
    log-likelihood bit for bit); a model with any nonzero update differs somewhere."""
    return len(joined) > 0 and all(np.array_equal(np.asarray(a, float), np.asarray(b, float))
                                   for a, b in zip(joined["scores_base"], joined["scores_cand"], strict=True))


def _chance(joined: pd.DataFrame) -> float:
    """The accuracy of picking a choice at random, over the task's items (1 / the item's choices)."""
    return float(np.mean([1.0 / len(x) for x in joined["scores_base"]]))


def _task_flags(joined: pd.DataFrame, result: TaskResult, label: str, identical: bool,
                untrained: bool = False) -> tuple[list[str], list[str]]:
    """The guards against silently wrong scores that fire on one paired task: (flags, notes). A flag is
    what makes a result untrustworthy. Two bases both at chance on their target task (`untrained`: a
    base against a base, on a target task) is expected, it is why they are fine-tuned: a note, not a flag."""
    flags, notes = [], []
    if identical:
        flags.append(f"{result.task}: every request scored exactly as the base's ({len(joined)} items, every "
                     f"choice's log-likelihood bit for bit): was {label}'s update applied?")
    scored = all(len(x) for col in ("scores_base", "scores_cand") for x in joined[col])  # both choose by score
    if scored and result.metric in CHANCE_METRICS and result.binary:
        chance = _chance(joined)
        if all(e.low <= chance <= e.high for e in (result.base, result.candidate)):
            if untrained:
                notes.append(f"{result.task}: both bases score at chance ({result.base.estimate:.3f} and "
                             f"{result.candidate.estimate:.3f}; chance {chance:.3f}) before fine-tuning on it")
            else:
                flags.append(f"{result.task}: neither the base ({result.base.estimate:.3f}) nor {label} "
                             f"({result.candidate.estimate:.3f}) scores apart from chance ({chance:.3f}, 1 / "
                             "choices): the task cannot tell them apart; is it scored as intended (prompt format, "
                             "log-probabilities from the server, the right split)?")
    return flags, notes


def _generated(joined: pd.DataFrame) -> bool:
    """Whether both sides' records are generated text (a generation keeps no log-likelihoods), read
    from the records alone: compare touches no lm-eval task."""
    return all(len(x) == 0 for col in ("scores_base", "scores_cand") for x in joined[col])


def loglikelihood_valued(joined: pd.DataFrame, metric: str) -> bool:
    """Whether a paired task's metric is a log-likelihood value (nats summed over a model's own tokens,
    e.g. a bias score of log-likelihood differences): a log-likelihood task whose per-item metric is
    neither a 0/1 decision nor a per-item tuple (lm-eval's word- and byte-normalised perplexities, BBQ's
    counts of answers). Such values are not comparable between models with different tokenizers."""
    col = METRIC_PREFIX + metric
    if _generated(joined) or f"{col}_base" not in joined:
        return False
    return not (is_binary(joined[f"{col}_base"].to_numpy(dtype=float))
                and is_binary(joined[f"{col}_cand"].to_numpy(dtype=float)))


def _refusal(reference: ModelEntry, cand: ModelEntry) -> str:
    return (f"log-likelihoods over different tokenizers' tokens ({reference.label}'s and {cand.label}'s): "
            "not comparable item by item, so not paired (0/1 and generated-text metrics are)")


def _paired_result(reference: ModelEntry, ref_runs: dict[str, tuple[PlannedRun, pd.DataFrame]],
                   cand: ModelEntry, cand_runs: list[tuple[PlannedRun, pd.DataFrame]], suite: SuiteSpec,
                   store: Store, st: StatsSpec) -> CandidateResult:
    """`cand` paired with `reference` item by item on every task: per task, role, summary and group.
    `ref_runs` maps each leaf task to the reference's run and its records (as the suite's task). Between
    models with different tokenizers, log-likelihood-valued metrics are refused (`refused`), the rest paired."""
    role_of = {t.task: t.role for t in suite.tasks}
    other_tokens = bool(tokenizers_differ(reference.model_dir, cand.model_dir, store.file_hash))
    refused: dict[str, str] = {}
    tasks, flips, by_role, paired_by = [], [], {}, "prompt"
    identical: list[bool] = []  # per log-likelihood task: every request scored exactly as the reference's
    for run, records in cand_runs:
        ref_run, ref_records = ref_runs[run.task.leaf]
        t, spec = run.task, run.task.spec
        # prompted alike on the same task, a pair must share its prompt; prompted differently (a plain
        # base against a chat-templated candidate, k-shot, a variant task), it shares its document
        same = "prompt" if (cand.prompt.identity() == reference.prompt.identity()
                            and run.task.task_hash == ref_run.task.task_hash) else "doc"
        paired_by = "doc" if same == "doc" else paired_by
        joined = pair_records(ref_records, records, t.leaf, spec.filter,
                       cand.label if reference.label == BASE else f"{cand.label} (against {reference.label})",
                       same=same)
        if other_tokens and loglikelihood_valued(joined, spec.metric):
            refused[t.leaf] = f"{spec.metric}: {_refusal(reference, cand)}"
            continue
        aggregation = _aggregation(store, run, t.variant.metric if t.variant else spec.metric)
        result, paired, task_flips = _task_result(joined, spec, t.leaf, st, aggregation, entry=spec.task,
                                                  generated=_generated(joined))
        extra = []
        for m in spec.extra_metrics:
            if other_tokens and loglikelihood_valued(joined, m):
                refused[f"{t.leaf}:{m}"] = f"{m}: {_refusal(reference, cand)}"
            else:
                extra.append(_extra(joined, t, m, st, _aggregation(store, run, m)))
        if extra:
            result = result.model_copy(update={"extra": extra})
        generated = _generated(joined)
        # a prompting arm is the base's weights by construction: on a task it prompts as the base does,
        # every score is the base's, as it should be
        same_scores = not generated and same == "prompt" and not cand.prompting and _identical(joined)
        if not generated:  # log-likelihood tasks: did the candidate's update reach a single score?
            identical.append(same_scores)
        flags, notes = _task_flags(joined, result, cand.label, same_scores,
                                   untrained=cand.is_base and spec.role == "target")
        if flags or notes:
            result = result.model_copy(update={"flags": flags, "notes": notes})
        tasks.append(result)
        flips += task_flips
        by_role.setdefault(spec.role, []).append(paired)
    # Holm across the tasks of each role
    for items in by_role.values():
        names = [i.task for i in items]
        adjusted = dict(zip(names, holm([i.stats.p_value for i in items]), strict=True))
        tasks = [t.model_copy(update={"p_holm": adjusted[t.task]}) if t.task in adjusted else t for t in tasks]
    roles = [_role_result(role, items, st) for role, items in by_role.items()]
    entries = [i for items in by_role.values() for i in items]
    paired_entries = {i.entry for i in entries}
    summaries = [SummaryResult(name=sm.name, description=sm.description,
                               **_role_result(role_of[sm.tasks[0]], [i for i in entries if i.entry in sm.tasks],
                                              st).model_dump())
                 for sm in suite.summaries if set(sm.tasks) <= paired_entries]  # a refused member: no summary
    members: dict[str, list[_Paired]] = {}
    for i in entries:
        members.setdefault(i.entry, []).append(i)
    binary = {t.task: t.binary for t in tasks}
    groups = [_group_result(entry, role_of[entry], items, all(binary[i.task] for i in items), st)
              for entry, items in members.items() if len(items) > 1]
    flags = list(cand.flags)
    if identical and all(identical) and not cand.prompting:
        flags.append(f"{cand.label}: every request of every task scored exactly as the {reference.label}'s: the "
                     "candidate is the base (an adapter never trained or not loaded, a served name that points at "
                     "the base); its results say nothing about the fine-tune")
    return CandidateResult(candidate=cand.label, tasks=tasks, roles=roles, flips=flips, summaries=summaries,
                           groups=groups, paired_by=paired_by,
                           kind="prompting" if cand.prompting else "base" if cand.is_base else "fine-tune",
                           reference=reference.label, flags=flags, refused=refused)


def best_prompting(results: list[CandidateResult], models: list[ModelEntry]) -> str | None:
    """The way of prompting the base that gains most on the target role: its best prompting arm, or
    the base itself (as the config prompts it) when no arm beats it; None without an arm."""
    arms = {m.label for m in models if m.of == BASE}
    gains = {r.candidate: t.delta.estimate for r in results if r.candidate in arms and (t := r.role("target"))}
    if not gains:
        return None
    best = max(gains, key=gains.__getitem__)
    return best if gains[best] > 0 else BASE


def compare_runs(plan: Plan, spec: HarnessSpec, suite: SuiteSpec, store: Store,
                 timings_s: dict[str, float] | None = None) -> ComparisonResult:
    """Pair every candidate and prompting arm with the base on every task (per task and per role
    results), and every fine-tune with the best prompting arm of the base."""
    st = spec.stats
    base = plan.model(BASE)
    # what each model saw, one item per task, taken from the records as they are read (kept when some
    # model is not prompted in plain text, or prompted by an arm)
    formatted = any(not m.prompt.plain or m.prompting for m in plan.models)
    examples: dict[str, dict[str, str]] = {m.label: {} for m in plan.models}
    by_model: dict[str, list[tuple[PlannedRun, pd.DataFrame]]] = {}
    for run in plan.runs:
        records = as_suite_task(store.read(run.key), run)
        by_model.setdefault(run.model.label, []).append((run, records))
        if formatted:
            examples[run.model.label][run.task.leaf] = str(records.loc[records["doc_id"].idxmin(), "prompt"])
    def runs_of(label: str) -> dict[str, tuple[PlannedRun, pd.DataFrame]]:
        return {run.task.leaf: (run, records) for run, records in by_model[label]}

    # every model against its own base; each other base against the first (kind "base")
    references = {m.label: base if m.is_base else plan.model(m.base) for m in plan.models if m.label != BASE}
    results = [_paired_result(references[m.label], runs_of(references[m.label].label), m, by_model[m.label],
                              suite, store, st) for m in plan.models if m.label != BASE]
    versus = []
    best = best_prompting(results, plan.models)
    own = [m for m in plan.models if m.base == BASE and not m.is_base and not m.prompting]  # the first base's
    if best == BASE:  # no arm beats the base: the fine-tunes' own results are the answer
        versus = [r for r in results if r.kind == "fine-tune" and r.reference == BASE]
    elif best is not None:
        versus = [_paired_result(plan.model(best), runs_of(best), m, by_model[m.label], suite, store, st)
                  for m in own]

    read = {run.key: records for runs in by_model.values() for run, records in runs}
    spec, validations = choose_judge(spec, store) if spec.judge is not None else (spec, [])
    judged = judge_results(plan, spec, store, lambda run: read[run.key],
                           lambda run, docs: _clusters(docs.rename(columns={"doc": "doc_base"}),
                                                       run.task.spec.cluster, run.task.leaf))
    grades = grade_results(plan, spec, store, lambda run: read[run.key],
                           lambda run, docs: _clusters(docs.rename(columns={"doc": "doc_base"}),
                                                       run.task.spec.cluster, run.task.leaf))
    judged = {c: [j.model_copy(update={"grades": grades.get((c, j.task))}) for j in js] for c, js in judged.items()}
    results = [r.model_copy(update={"judged": judged.get(r.candidate, [])}) for r in results]

    def record(m) -> ModelRecord:
        return ModelRecord(label=m.label, source=str(m.adapter_dir or m.model_dir), fingerprint=m.fingerprint,
                           training=None if m.prompting else _training(m), prompt_examples=examples[m.label],
                           prompt_format=m.prompt.record(), warnings=list(m.warnings),
                           prompting=m.describe_arm() if m.prompting else None, base=m.base, is_base=m.is_base,
                           scoring=scoring.get(m.label, {}),
                           served=None if m.served is None else m.served.describe())

    runs, versions, manifests = [], {}, {}
    for r in plan.distinct:
        man = manifests[r.key] = store.read_manifest(r.key)
        versions = man.versions or versions
        runs.append(RunInfo(model=r.model.label, task=r.task.name, n_items=man.n_items, n_requests=man.n_requests,
                            wall_s=man.wall_s, device=man.device, created_at=man.created_at, scoring=man.scoring,
                            input_tokens=man.input_tokens, output_tokens=man.output_tokens, key=r.key.stem))
    scoring: dict[str, dict[str, str]] = {}
    for r in plan.runs:  # every model's own (plan.distinct keeps one of two byte-identical models)
        scoring.setdefault(r.model.label, {})[r.task.leaf] = manifests[r.key].scoring
    suite_hash = hashlib.sha256("".join(t.task_hash for t in plan.tasks).encode()).hexdigest()

    return ComparisonResult(
        name=spec.name, created_at=now_iso(), harness_version=harness.__version__, suite=suite.name,
        confidence=st.confidence, base=record(base),
        judge_validation=next((v for v in validations if v.chosen), None), judge_validations=validations,
        candidates=[record(m) for m in plan.models if m.label != BASE],
        results=results, timings_s=dict(timings_s or {}), suite_hash=suite_hash, runs=runs,
        environment={"evaluated_with": versions, "compared_with": package_versions(), "machine": machine(),
                     "dtype": {"base": spec.base.dtype, **{b.name: b.dtype for b in spec.bases},
                               **({"judge": spec.judge.model.dtype}
                                  if spec.judge is not None and spec.judge.model is not None else {})}},
        versus_prompting=versus,
        curves=[c for m in plan.models if not m.prompting and (c := _training_curve(m)) is not None]
        + [read_sweep(Path(p), base_weights(base.model_dir, store.file_hash)) for p in spec.sweeps])


def base_weights(folder: Path, hasher=None) -> str:
    """Fingerprint of a base's files alone (not dtype or backend): what a sweep was trained on."""
    from harness.sources.fingerprint import model_fingerprint
    from harness.util.files import sha256_file

    return model_fingerprint(folder, dtype="-", backend="-", hasher=hasher or sha256_file)


def _training_curve(model: ModelEntry) -> CurveRecord | None:
    """The evaluation curve the trainer wrote beside an adapter (`--eval-every`), if any."""
    if model.label == BASE or model.adapter_dir is None:
        return None
    path = Path(model.adapter_dir) / TRAIN_MANIFEST
    if not path.is_file():
        return None
    curve = read_record(path, TrainManifest).eval_curve
    return None if curve is None else curve.model_copy(update={"name": model.label})


def read_sweep(path: Path, weights: str) -> CurveRecord:
    """A `harness sweep` result, checked to be about this comparison's base."""
    sweep = read_record(path, SweepRecord)
    if sweep.base_weights != weights:
        raise HarnessError(f"{path}: the sweep fine-tuned another base than this comparison's; re-run the "
                           "sweep on this base or drop it from `sweeps`")
    return sweep.curve


def _training(model: ModelEntry) -> dict | None:
    """The trainer's manifest beside an adapter (or full model), summarised; None without one."""
    m = None if model.label == BASE else train_manifest(model)
    if m is None:
        return None
    return {"wall_s": m.wall_s, "steps": m.steps, "tokens": m.tokens, "final_loss": m.final_loss,
            "replay_ratio": m.spec.replay_ratio}

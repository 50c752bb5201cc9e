"""The one way a comparison is run: config -> plan -> execute -> judge -> compare -> gates -> roi.

`harness compare`, `harness gate` and the pytest plugin all call `run_comparison`; only `execute`
loads models (the judge's too: its verdicts go through execute's loop), and only for runs and
judgments the store lacks.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

import harness
from harness.comparison import ComparisonResult
from harness.config import HarnessSpec, SuiteSpec, load_config, load_suite
from harness.errors import ConfigError, HarnessError
from harness.records import HistoryEntry
from harness.util.files import now_iso
from harness.util.reads import recording_reads


@dataclass(frozen=True)
class Loaded:
    """A validated config with its suite: everything checked before any model loads."""

    path: Path
    spec: HarnessSpec
    suite: SuiteSpec
    # the dtypes this machine decided (`auto`) or warned about (a slow pinned bfloat16): who -> what
    # and why, for the log and the report's environment line
    dtype_notes: dict[str, str] = field(default_factory=dict)


def resolve_dtypes(spec: HarnessSpec) -> tuple[HarnessSpec, dict[str, str]]:
    """`dtype: auto` (every base's, the judge's) made the dtype this machine computes fast, before
    anything is keyed by it; a pinned bfloat16 on a CPU that computes it slowly is kept and measured.
    Returns the resolved spec and what was chosen or warned, with the reason."""
    from harness.util.environment import auto_dtype, pinned_bf16_warning

    notes: dict[str, str] = {}

    def resolved(model, who: str):
        if model.dtype == "bfloat16" and (warning := pinned_bf16_warning(spec.eval.device)):
            notes[who] = f"bfloat16 (WARNING: {warning})"
        if model.dtype != "auto":
            return model
        dtype, why = auto_dtype(spec.eval.device)
        notes[who] = f"{dtype} (auto: {why})"
        return model.model_copy(update={"dtype": dtype})

    base = resolved(spec.base, "base")
    bases = [resolved(b, b.name) for b in spec.bases]
    judge = spec.judge
    if judge is not None:  # the judge's model, and each fallback's
        judge = judge.model_copy(update={
            "model": judge.model and resolved(judge.model, "judge"),
            "fallbacks": [f.model_copy(update={"model": f.model and resolved(f.model, f"judge fallback {i + 1}")})
                          for i, f in enumerate(judge.fallbacks)]})
    if not notes:
        return spec, notes
    return spec.model_copy(update={"base": base, "bases": bases, "judge": judge}), notes


def load(config_path: str | Path, candidate: str | None = None, need_candidates: bool = True) -> Loaded:
    """Load and cross-check config, suite and gates; optionally keep one candidate."""
    from harness.gates import check_gates
    from harness.plan import roi_task

    path = Path(config_path)
    spec = load_config(path, candidates=need_candidates)
    if need_candidates and not spec.all_candidates():
        raise ConfigError([f"{path}: candidates: none given; name at least one model to compare with the base"])
    suite = load_suite(spec.suite)
    unknown = [f"{path}: task_data.{name}: not a task of suite {suite.name}" for name in spec.task_data
               if name not in {t.task for t in suite.tasks}]
    if unknown:
        raise ConfigError(unknown)
    if spec.task_data:  # the config points suite tasks at local files
        suite = suite.model_copy(update={"tasks": [t.model_copy(update={"data": spec.task_data.get(t.task, t.data)})
                                                   for t in suite.tasks]})
    spec, dtype_notes = resolve_dtypes(spec)
    check_gates(spec, suite, str(path))
    if spec.judge is not None:
        from harness.judge import read_rubric

        unknown = [f"{path}: judge.tasks: '{t}' is not a task of suite {suite.name}" for t in spec.judge.tasks
                   if t not in {x.task for x in suite.tasks}]
        if unknown:
            raise ConfigError(unknown)
        for judge in spec.judge.judges():
            read_rubric(judge)
        if spec.judge.grade_rubric is not None:
            from harness.grading import read_grade_rubric

            read_grade_rubric(spec)
    if spec.roi is not None:
        task = roi_task(spec, suite)
        if task is None or task not in {t.task for t in suite.tasks}:
            raise ConfigError([f"{path}: roi.task: " + (f"'{task}' is not a task of suite {suite.name}" if task
                                                        else f"suite {suite.name} has no target task; name one")])
    if candidate is not None:
        names = [c.name for _, c, _ in spec.all_candidates()]
        if candidate not in names:
            raise HarnessError(f"--candidate {candidate}: not in {path} (has: {', '.join(names)})")
        # the candidate, its base, and the arms that prompt either (the first base stays: it is the reference)
        home = next(b for b, c, _ in spec.all_candidates() if c.name == candidate)
        bases = [b.model_copy(update={"candidates": [c for c in b.candidates if c.name == candidate]})
                 for b in spec.bases if b.name == home]
        spec = spec.model_copy(update={"candidates": [c for c in spec.candidates if c.name == candidate],
                                       "bases": bases,
                                       "prompting": [p for p in spec.prompting if p.of in ("base", home, candidate)]})
    return Loaded(path, spec, suite, dtype_notes)


def run_comparison(loaded: Loaded, log: Callable[[str], None] = print, record: bool = True) -> ComparisonResult:
    """Evaluate what the store lacks, pair base and candidates, and judge the gates. With `record`,
    the comparison joins the store's history (and the result carries the history of its name)."""
    from harness.execute import execute_plan
    from harness.plan import plan_runs
    from harness.store import Store

    spec, suite = loaded.spec, loaded.suite
    timings: dict[str, float] = {}
    t = time.perf_counter()
    store = Store(spec.store, log=log)
    plan = plan_runs(spec, suite, store)
    timings["plan"] = time.perf_counter() - t
    distinct, missing = len(plan.distinct), len(plan.missing)
    log(f"plan: {len(plan.models)} models x {len(plan.tasks)} tasks = {distinct} distinct "
        f"evaluations; {distinct - missing} stored, {missing} to evaluate")
    formats: dict[str, list[str]] = {}
    for m in plan.models:
        formats.setdefault(m.prompt.describe(), []).append(m.label)
    if list(formats) != ["plain text"]:  # said when a model is prompted otherwise or auto found no template
        for described, labels in formats.items():
            log(f"plan: prompts of {', '.join(labels)}: {described}")
    for m in plan.models:
        if m.served is not None and not m.prompting:
            log(f"plan: {m.label} is served: {m.served.describe()}")
    letters = sorted({r.task.leaf for r in plan.distinct if r.scoring == "letters"})
    if letters:
        log(f"plan: {', '.join(letters)}: letter choice (the first answer token's log-probability of each letter) "
            "for every model, as some served model cannot score log-likelihoods")
    for m in plan.models:
        for warning in m.warnings:
            log(f"plan: WARNING {warning}")
        for flag in m.flags:
            log(f"plan: FLAGGED {flag}")
    for who, chosen in loaded.dtype_notes.items():
        log(f"plan: {who} scored in {chosen}")

    if spec.judge is not None:  # the judges' labels are checked before any model loads
        from harness.grading import judge_spec
        from harness.judge import check_human_labels, check_labels, judge_entry

        for judge in spec.judge.judges():
            if judge.model is not None:  # a served judge's labels are read from its reply's tokens
                check_labels(judge, judge_entry(judge_spec(spec, judge), store).model_dir, store)
        check_human_labels(spec.judge, plan)
        if spec.judge.validation is not None:  # every labelled pair's line checked before any model loads
            from harness.grading import read_validation

            read_validation(spec.judge)
    t = time.perf_counter()
    executed = execute_plan(plan, spec, store, log=log)
    timings["execute"] = time.perf_counter() - t
    judged = spec  # the comparison with the judge that judges it (judge.fallbacks: chosen by validation)
    if spec.judge is not None:
        from harness.grading import choose_judge, grade_jobs, judge_spec, plan_grades, validation_jobs
        from harness.judge import plan_judgments, run_judge

        t = time.perf_counter()
        judges = spec.judge.judges()
        if len(judges) > 1:  # each judge measured first; the first that passes judges
            for judge in judges:
                run_judge([], judge_spec(spec, judge), store, log=log,
                          also=validation_jobs(judge_spec(spec, judge), store))
            judged, validations = choose_judge(spec, store)
            log("judge: validation kappa " + ", ".join(f"{v.judge} {v.kappa.estimate:.2f}" for v in validations)
                + f" (minimum {spec.judge.min_validation_kappa:.2f}): {judged.judge.name} judges"
                + ("" if any(v.passed for v in validations) else ", though none passes"))
        run_judge(plan_judgments(plan, judged, store), judged, store, log=log,
                  also=validation_jobs(judged, store) + grade_jobs(plan_grades(plan, judged, store), judged, store))
        timings["judge"] = time.perf_counter() - t
    timings["model_load"] = executed.load_s
    timings["score"] = executed.score_s

    t = time.perf_counter()
    digest = _inputs_digest(plan, spec, suite)
    result = _reusable(store, spec.name, digest)
    if result is not None:
        log(f"compare: nothing changed since the comparison of {result.created_at}: reused, not recomputed")
        result = result.model_copy(update={"created_at": now_iso()})
    else:
        from harness.compare import compare_runs
        from harness.gates import evaluate_gates
        from harness.roi import roi_of_runs

        with recording_reads() as reads:
            result = compare_runs(plan, spec, suite, store)
            verdicts = evaluate_gates(result, spec.gates)
            roi = roi_of_runs(plan, judged, suite, store, result.results) if spec.roi is not None else None
        result = result.model_copy(update={"gates": verdicts, "underpowered": spec.underpowered, "roi": roi})
        store.remember_comparison(spec.name, digest, reads, result.model_dump(mode="json"))
    timings["compare"] = time.perf_counter() - t
    environment = {**result.environment, "dtype": {**result.environment.get("dtype", {}), **loaded.dtype_notes}} \
        if loaded.dtype_notes else result.environment
    result = result.model_copy(update={"timings_s": {k: round(v, 3) for k, v in timings.items()},
                                       "environment": environment})
    if record:
        earlier = store.history(spec.name, result.suite_hash)
        store.record_comparison(result)
        this = HistoryEntry(id=0, created_at=result.created_at,
                            candidates={cr.candidate: cr.role_deltas() for cr in result.results})
        result = result.model_copy(update={"history": [history_entry(c) for c in earlier] + [this]})
    return result


def _inputs_digest(plan, spec: HarnessSpec, suite: SuiteSpec) -> str:
    """sha256 of what a comparison is computed from besides the files it reads (util.reads notes those):
    the harness, the config and suite as typed, each model's fingerprint (its weights), each run's key,
    the packages and the machine it is compared on."""
    from harness.util.environment import machine, package_versions

    inputs = {"harness": harness.__version__, "spec": spec.model_dump(mode="json"),
              "suite": suite.model_dump(mode="json"), "models": [[m.label, m.fingerprint] for m in plan.models],
              "runs": [r.key.stem for r in plan.runs], "environment": [package_versions(), machine()]}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def _reusable(store, name: str, digest: str) -> ComparisonResult | None:
    """The stored comparison of `name` when its inputs and every file it read are unchanged."""
    reused = store.reusable_comparison(name, digest)
    if reused is None:
        return None
    try:
        return ComparisonResult.model_validate(reused)
    except ValidationError:  # written by another format of the record: computed again
        return None


def history_entry(comparison: dict) -> HistoryEntry:
    """One comparison of the store's history as the report draws it: when, and each candidate's role deltas."""
    return HistoryEntry(id=comparison["id"], created_at=comparison["created_at"],
                        candidates=comparison["summary"].candidates)

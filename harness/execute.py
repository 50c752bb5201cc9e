"""Execute: the only stage that loads models. Scores the runs the store lacks, one backend per
model group (a base and its LoRA candidates share one), and stores per-sample records.
"""

from __future__ import annotations

import json
import math
import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

import harness
from harness.backends import patches
from harness.backends.base import Backend
from harness.config import HarnessSpec
from harness.errors import HarnessError, Interrupted
from harness.plan import ModelEntry, Plan, PlannedRun
from harness.sources.aggregations import aggregation_ref
from harness.store import METRIC_JSON_PREFIX, METRIC_PREFIX, RunManifest, Store
from harness.util.environment import PeakMemory, package_versions
from harness.util.files import now_iso


@dataclass(frozen=True)
class ExecutionResult:
    scored: list[str]  # "label/task" of each run scored now
    load_s: float
    score_s: float


def _choice_text(arguments: list) -> list[str]:
    return [str(args[1]) for args in arguments if len(args) > 1]


def _plain(value):
    """numpy scalars and arrays inside a metric value -> JSON-able Python (bool stays bool)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def samples_to_records(task: str, output_type: str, samples: list[dict]) -> pd.DataFrame:
    """lm-eval's logged samples -> one row per (doc, filter): hashes, texts and metric values."""
    rows = []
    for s in samples:
        args = s["arguments"]
        prompt = str(args[0][0]) if args and args[0] else ""
        target = s["target"]
        resps = s["filtered_resps"]
        if output_type == "multiple_choice":
            choices = _choice_text(args)
            lls = [float(r[0]) if isinstance(r, (list, tuple)) else float(r) for r in resps]
            response = choices[max(range(len(lls)), key=lls.__getitem__)].strip() if lls else ""
            if isinstance(target, int) and 0 <= target < len(choices):
                target = choices[target].strip()
            scores = lls
        elif output_type == "generate_until":
            response, scores = str(resps[0]) if resps else "", []
        else:  # loglikelihood, loglikelihood_rolling
            first = resps[0] if resps else float("nan")
            scores = [float(first[0]) if isinstance(first, (list, tuple)) else float(first)]
            response = f"{scores[0]:.4f}"
        row = {
            "doc_id": int(s["doc_id"]), "filter": str(s["filter"]),
            "doc_hash": s["doc_hash"], "prompt_hash": s["prompt_hash"], "target_hash": s["target_hash"],
            "prompt": prompt, "target": str(target), "response": response,
            "doc": json.dumps(s["doc"], sort_keys=True, default=str, ensure_ascii=False),
            "scores": [float(x) for x in scores],
        }
        for metric in s["metrics"]:
            value = s[metric]
            if isinstance(value, (list, tuple)):  # an input to a custom aggregation (e.g. BBQ's bias scores)
                row[METRIC_JSON_PREFIX + metric] = json.dumps(_plain(value))
                continue
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise HarnessError(f"task {task}, doc {s['doc_id']}: metric '{metric}' is not a number "
                                   f"({type(value).__name__}); use a per-item numeric metric") from None
            if not math.isfinite(value):
                raise HarnessError(f"task {task}, doc {s['doc_id']}: metric '{metric}' is {value}; "
                                   "the model or the task's metric function produced a non-finite score")
            row[METRIC_PREFIX + metric] = value
        rows.append(row)
    return pd.DataFrame(rows)


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(torch.device(device))} ({device})"
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def load_backend(spec: HarnessSpec, models: list[ModelEntry]) -> Backend:
    """One backend for a model group (the config's backend and eval settings, the group's dtype)."""
    from harness.backends.hf import HFBackend

    first = models[0]
    dtype = first.dtype
    adapters = {m.variant: m.adapter_dir for m in models if m.adapter_dir is not None}
    if spec.eval.backend == "openai":
        from harness.backends.openai import OpenAIBackend

        names = {label: b.served for label, b, _ in spec.all_bases()} | {
            c.name: c.served for _, c, _ in spec.all_candidates()} | {
            "judge": spec.judge.model.served if spec.judge is not None else None}
        served = {m.variant: names[m.of or m.label] for m in models}
        return OpenAIBackend(spec.eval.endpoint, first.model_dir, served, max_length=spec.eval.max_length,
                             trust_remote_code=first.trust_remote_code)
    if spec.eval.backend == "vllm":
        from harness.backends.vllm import VLLMBackend

        return VLLMBackend(first.model_dir, dtype=dtype, device=spec.eval.device, adapters=adapters,
                           trust_remote_code=first.trust_remote_code, max_length=spec.eval.max_length,
                           options=spec.eval.vllm)
    return HFBackend(first.model_dir, dtype=dtype, device=spec.eval.device,
                     batch_size=spec.eval.batch_size, adapters=adapters,
                     trust_remote_code=first.trust_remote_code, max_length=spec.eval.max_length,
                     allow_pickle=first.allow_pickle)


def _score(backend: Backend, run: PlannedRun, spec: HarnessSpec) -> tuple[pd.DataFrame, int, float, float | None]:
    import lm_eval
    from lm_eval.evaluator import evaluate

    from harness.sources.tasks import FEWSHOT_SEED

    task, prompt = run.task, run.model.prompt
    start = time.perf_counter()
    # the model's memory is this process's only on the hf backend (vLLM's engine and a server run elsewhere)
    with (PeakMemory(spec.eval.device, measure=backend.name == "hf") as peak,
          backend.activate(run.model.variant, prompt, run.model.label) as lm,
          patches.select_docs(task.task, task.indices),
          patches.shared_requests(task.task, FEWSHOT_SEED, prompt.identity())):
        with warnings.catch_warnings():
            # lm-eval's task-level aggregates of a subset (BBQ's accuracy on the ambiguous items of
            # its disambiguated task) average empty slices; only the per-item results are used here
            warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
            warnings.filterwarnings("ignore", "invalid value encountered in scalar divide", RuntimeWarning)
            # the model's prompt format through lm-eval's own chat-template path (as its
            # --apply_chat_template, --system_instruction and --fewshot_as_multiturn)
            out = evaluate(lm, {"tasks": {task.task.task_name: task.task}, "groups": {}, "group_map": {}},
                           log_samples=True, bootstrap_iters=0, system_instruction=prompt.system_prompt,
                           apply_chat_template=prompt.template is not None,
                           fewshot_as_multiturn=prompt.fewshot_as_multiturn)
    wall_s = time.perf_counter() - start
    samples = out["samples"][task.task.task_name]
    if task.indices is not None:  # positions in the subset -> the documents' own indices
        if {s["doc_id"] for s in samples} != set(range(len(task.indices))):
            raise HarnessError(
                f"lm-eval {lm_eval.__version__} scored other documents than the {len(task.indices)} selected: "
                "harness's `select_docs` (harness/backends/patches.py) does not work with this lm-eval "
                "version; tests/backends/test_patches.py shows what changed")
        for sample in samples:
            sample["doc_id"] = task.indices[sample["doc_id"]]
    records = samples_to_records(task.name, task.task.OUTPUT_TYPE, samples)
    n_requests = sum(len(s["arguments"]) for s in samples if s["filter"] == samples[0]["filter"])
    return records, n_requests, wall_s, peak.mb


def execute_plan(plan: Plan, spec: HarnessSpec, store: Store,
                 log: Callable[[str], None] = print) -> ExecutionResult:
    """Score every missing run; each stored as soon as it is done. On a terminal, a bar counts the
    runs (and lm-eval's own bar the requests of the run in progress).

    A run is scored only under its lock in the store: a run another process holds is put off and
    waited for at the end, then taken from the store if that process stored it. Ctrl-C raises
    `Interrupted`, saying what was saved (every run finished before it)."""
    from harness.util import progress

    store.reindex([r.key for r in plan.distinct if r.cached])
    todo: dict[str, list[PlannedRun]] = {}
    for run in plan.missing:
        todo.setdefault(run.model.group, []).append(run)
    scored: list[str] = []
    load_s = score_s = 0.0
    current = "loading models"
    with progress.bar(len(plan.missing), "execute", "run") as bar:
        say = progress.printer(bar, log)

        def score_one(backend: Backend, run: PlannedRun) -> None:
            nonlocal score_s, current
            name = f"{run.model.label} {run.task.name}"
            if store.has(run.key):
                say(f"execute: {run.model.label:>12} {run.task.name:<22} stored meanwhile by another process")
                bar.update()
                return
            current = name
            bar.set_postfix_str(name)
            try:
                records, n_requests, wall_s, peak_mb = _score(backend, run, spec)
            except HarnessError as e:
                raise HarnessError(f"task {run.task.name}, {run.model.label}: {e}") from None
            score_s += wall_s
            import lm_eval

            aggregations = {m: aggregation_ref(fn) for m, fn in run.task.task.aggregation().items()
                            if METRIC_JSON_PREFIX + m in records.columns}
            manifest = RunManifest(
                model_fp=run.key.model_fp, task=run.key.task, task_hash=run.key.task_hash,
                harness_version=harness.__version__, lm_eval_version=lm_eval.__version__,
                label=run.model.label, backend=backend.name, n_items=len(records),
                n_requests=n_requests, wall_s=round(wall_s, 3), created_at=now_iso(),
                versions=package_versions(), device=device_name(spec.eval.device), aggregations=aggregations,
                peak_memory_mb=peak_mb)
            store.write(run.key, records, manifest)
            scored.append(f"{run.model.label}/{run.task.name}")
            say(f"execute: {run.model.label:>12} {run.task.name:<22} {n_requests:>5} requests "
                f"in {wall_s:5.1f} s")
            bar.update()

        try:
            for runs in todo.values():
                models = list({r.model.label: r.model for r in runs}.values())
                folder = models[0].model_dir.name
                t = time.perf_counter()
                say(f"execute: loading {folder} with {len(models)} variant(s): "
                    + ", ".join(m.label for m in models))
                current = f"loading {folder}"
                bar.set_postfix_str(current)
                backend = load_backend(spec, models)
                load_s += time.perf_counter() - t
                try:
                    later = []
                    for run in runs:
                        with store.claim(run.key, wait=False) as mine:
                            if mine:
                                score_one(backend, run)
                            else:
                                later.append(run)
                    for run in later:
                        say(f"execute: {run.model.label:>12} {run.task.name:<22} being scored by "
                            "another process; waiting for it")
                        with store.claim(run.key):
                            score_one(backend, run)
                finally:
                    backend.close()
        except HarnessError as e:
            if type(e) is not HarnessError or not scored:
                raise
            raise HarnessError(f"{e}\n{len(scored)} run(s) finished and saved in {store.root} before it, "
                               f"{len(plan.missing) - len(scored)} not; the next run reuses what is saved and "
                               "scores the rest") from None
        except KeyboardInterrupt:
            raise Interrupted(
                f"interrupted while {current}: {len(scored)} run(s) finished and saved in {store.root} "
                f"this time, {len(plan.missing) - len(scored)} not; the next run reuses what is saved "
                "and scores the rest") from None
    return ExecutionResult(scored=scored, load_s=round(load_s, 3), score_s=round(score_s, 3))

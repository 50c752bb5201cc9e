"""Execute: the one scoring loop. Scores the jobs the store lacks (each model's runs of the tasks, then
the judge's verdicts on pairs of answers), one backend per model group (a base and its LoRA candidates
share one), under store claims, and stores per-sample records; the only stage that loads models.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import time
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field

import pandas as pd

import harness
from harness.backends import patches
from harness.backends.base import Backend
from harness.config import HarnessSpec
from harness.errors import HarnessError, Interrupted
from harness.plan import ModelEntry, Plan, PlannedRun
from harness.sources.aggregations import aggregation_ref
from harness.store import METRIC_JSON_PREFIX, METRIC_PREFIX, RunKey, RunManifest, Store
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
    if spec.judge is not None and spec.judge.endpoint is not None and first.label == "judge":
        from harness.backends.chat_judge import ChatJudge

        return ChatJudge(spec.judge.endpoint)  # a judge behind a chat API, whatever scores the models
    if first.served is not None:
        from harness.backends.openai import OpenAIBackend

        return OpenAIBackend(spec.eval.endpoint, {m.variant: m.served for m in models},
                             max_length=spec.eval.max_length, trust_remote_code=first.trust_remote_code)
    if spec.eval.backend == "vllm":
        from harness.backends.vllm import VLLMBackend

        return VLLMBackend(first.model_dir, dtype=dtype, device=spec.eval.device, adapters=adapters,
                           trust_remote_code=first.trust_remote_code, max_length=spec.eval.max_length,
                           options=spec.eval.vllm)
    return HFBackend(first.model_dir, dtype=dtype, device=spec.eval.device,
                     batch_size=spec.eval.batch_size, adapters=adapters,
                     trust_remote_code=first.trust_remote_code, max_length=spec.eval.max_length,
                     allow_pickle=first.allow_pickle)


@dataclass(frozen=True)
class Scored:
    """What scoring one job gave: its per-sample records and how it went."""

    records: pd.DataFrame
    n_requests: int
    wall_s: float
    peak_memory_mb: float | None = None
    aggregations: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)  # `fed` to the model, `requested` by full sequences
    usage: dict[str, int] = field(default_factory=dict)  # a served model's answers' tokens (`input`, `output`)
    scoring: str = ""  # how it was scored, in words


@dataclass(frozen=True)
class Job:
    """One stored result to score: a model's run of a task, or the judge's verdicts on a pairing. Jobs
    of one model group share one loaded backend. `score(backend, jobs)` scores `jobs` (this one, and
    those of its `together` group that this process holds) in one go, a Scored for each."""

    key: RunKey
    model: ModelEntry  # whose backend scores it
    label: str  # who, in the log and the manifest
    task: str
    score: Callable[[Backend, list[Job]], list[Scored]]
    together: str | None = None  # jobs of one group scored in one call (a judged task's pairings)


def lm_tokens(lm) -> dict[str, int]:
    """The tokens a backend's lm-eval model fed and was asked for since its variant was activated
    (the hf backend counts them; {} elsewhere)."""
    return dict(getattr(lm, "harness_tokens", None) or {})


def _score(backend: Backend, run: PlannedRun, spec: HarnessSpec) -> Scored:
    import lm_eval
    from lm_eval.evaluator import evaluate

    from harness.sources.tasks import FEWSHOT_SEED

    task, prompt = run.task, run.model.prompt
    start = time.perf_counter()
    # the model's memory is this process's only on the hf backend (vLLM's engine and a server run elsewhere)
    with (PeakMemory(spec.eval.device, measure=backend.name == "hf") as peak,
          backend.activate(run.model.variant, prompt, run.model.label, run.scoring) as lm,
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
                           apply_chat_template=prompt.chat,
                           fewshot_as_multiturn=prompt.fewshot_as_multiturn)
        tokens = lm_tokens(lm)
        usage = dict(getattr(lm, "harness_usage", None) or {})
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
    aggregations = {m: aggregation_ref(fn) for m, fn in task.task.aggregation().items()
                    if METRIC_JSON_PREFIX + m in records.columns}
    how = scoring_words(task.task.OUTPUT_TYPE, run.scoring, backend.name, run.model)
    return Scored(records, n_requests, wall_s, peak.mb, aggregations, tokens, usage, how)


def scoring_words(kind: str, scoring: str, backend: str, model: ModelEntry) -> str:
    """How a run was scored, in words (the report's methods)."""
    served = model.served
    if served is None:
        where = f" ({backend})"
    elif served.api == "chat":
        where = " (chat completions: the server's template)"
    else:
        where = " (completions)"
    if kind == "generate_until":
        return "generated text" + where
    if scoring == "letters":
        read = " read from its alternatives" if served is not None else ""
        return (f"letter choice: each choice's log-probability as the first answer token{read}{where}; a "
                "different measurement from full log-likelihood")
    what = "log-likelihood of each choice" if kind == "multiple_choice" else "log-likelihood"
    return what + (" (completions: the prompt's log-probabilities echoed)" if served is not None else where)


def score_batch(backend: Backend, batch: list[Job]) -> list[Scored]:
    """A batch of jobs (one, or a `together` group) scored on a loaded backend."""
    try:
        return batch[0].score(backend, batch)
    except HarnessError as e:
        raise HarnessError(f"task {batch[0].task}, {', '.join(j.label for j in batch)}: {e}") from None


def run_job(run: PlannedRun, spec: HarnessSpec) -> Job:
    """A planned run as a job of execute's loop."""
    return Job(run.key, run.model, run.model.label, run.task.name, lambda backend, _: [_score(backend, run, spec)])


def execute_plan(plan: Plan, spec: HarnessSpec, store: Store,
                 log: Callable[[str], None] = print) -> ExecutionResult:
    """Score every run the store lacks (execute_jobs)."""
    store.reindex([r.key for r in plan.distinct if r.cached])
    return execute_jobs([run_job(r, spec) for r in plan.missing], spec, store, log)


def execute_jobs(jobs: list[Job], spec: HarnessSpec, store: Store, log: Callable[[str], None] = print,
                 stage: str = "execute", unit: str = "run") -> ExecutionResult:
    """The one scoring loop: each job the store lacks is scored and stored as soon as it is done, one
    backend loaded per model group. On a terminal, a bar counts the jobs (and lm-eval's own bar the
    requests of the one in progress).

    A job is scored only under its lock in the store: one another process holds is put off and waited
    for at the end, then taken from the store if that process stored it, so no two processes ever score
    the same job. Ctrl-C raises `Interrupted`, saying what was saved (every job finished before it)."""
    import lm_eval

    from harness.util import progress

    todo: dict[str, list[Job]] = {}
    first: dict[RunKey, Job] = {}
    same: list[tuple[Job, Job]] = []  # jobs whose key another job has (content-keyed: e.g. alike answers judged)
    for job in jobs:
        if job.key in first:
            same.append((job, first[job.key]))
            continue
        first[job.key] = job
        todo.setdefault(job.model.group, []).append(job)
    scored: list[str] = []
    load_s = score_s = 0.0
    current = "loading models"
    with progress.bar(len(jobs), stage, unit) as bar:
        say = progress.printer(bar, log)
        for job, twin in same:
            say(f"{stage}: {job.label:>12} {job.task:<22} the same as {twin.label}'s (one key: scored once)")
            bar.update()

        def keep(job: Job, done: Scored, backend: str, device: str, where: str = "") -> None:
            nonlocal score_s
            score_s += done.wall_s
            manifest = RunManifest(
                kind=job.key.kind, model_fp=job.key.model_fp, task=job.key.task, task_hash=job.key.task_hash,
                harness_version=harness.__version__, lm_eval_version=lm_eval.__version__,
                label=job.label, backend=backend, n_items=len(done.records),
                n_requests=done.n_requests, wall_s=round(done.wall_s, 3), created_at=now_iso(),
                versions=package_versions(), device=device,
                aggregations=done.aggregations, peak_memory_mb=done.peak_memory_mb,
                tokens_fed=done.tokens.get("fed"), tokens_requested=done.tokens.get("requested"),
                scoring=done.scoring, input_tokens=done.usage.get("input") if done.usage else None,
                output_tokens=done.usage.get("output") if done.usage else None)
            store.write(job.key, done.records, manifest)
            scored.append(f"{job.label}/{job.task}")
            fed = f" ({done.tokens['fed']:,} of {done.tokens['requested']:,} tokens fed)" \
                if stage != "execute" and done.tokens.get("requested") else ""
            say(f"{stage}: {job.label:>12} {job.task:<22} {done.n_requests:>5} requests in "
                f"{done.wall_s:5.1f} s{fed}{where}")
            bar.update()

        def unstored(batch: list[Job]) -> list[Job]:
            stored = [store.has(j.key) for j in batch]
            for job in (j for j, done in zip(batch, stored, strict=True) if done):
                say(f"{stage}: {job.label:>12} {job.task:<22} stored meanwhile by another process")
                bar.update()
            return [j for j, done in zip(batch, stored, strict=True) if not done]

        def score(backend: Backend, batch: list[Job]) -> None:
            nonlocal current
            batch = unstored(batch)
            if not batch:
                return
            current = ", ".join(f"{j.label} {j.task}" for j in batch)
            bar.set_postfix_str(current)
            for job, done in zip(batch, score_batch(backend, batch), strict=True):
                keep(job, done, backend.name, device_name(spec.eval.device))

        try:
            if spec.eval.executor == "ray":
                load_s += _on_ray(todo, spec, store, keep, unstored, say, stage)
                todo = {}
            for group in todo.values():
                models = list({j.model.label: j.model for j in group}.values())
                folder = models[0].model_dir.name
                t = time.perf_counter()
                say(f"{stage}: loading {folder} with {len(models)} variant(s): "
                    + ", ".join(m.label for m in models))
                current = f"loading {folder}"
                bar.set_postfix_str(current)
                backend = load_backend(spec, models)
                load_s += time.perf_counter() - t
                try:
                    batches: dict[object, list[Job]] = {}
                    for job in group:  # scored one at a time, but those of one `together` group at once
                        batches.setdefault(job.together or job.key, []).append(job)
                    later = []
                    for batch in batches.values():
                        with ExitStack() as held:
                            mine = [j for j in batch if held.enter_context(store.claim(j.key, wait=False))]
                            later += [j for j in batch if j not in mine]
                            if mine:
                                score(backend, mine)
                    for job in later:
                        say(f"{stage}: {job.label:>12} {job.task:<22} being scored by another process; waiting for it")
                        with store.claim(job.key):
                            score(backend, [job])
                finally:
                    backend.close()
        except HarnessError as e:
            if type(e) is not HarnessError or not scored:
                raise
            raise HarnessError(f"{e}\n{len(scored)} {unit}(s) finished and saved in {store.root} before it, "
                               f"{len(first) - len(scored)} not; the next run reuses what is saved and "
                               "scores the rest") from None
        except KeyboardInterrupt:
            raise Interrupted(
                f"interrupted while {current}: {len(scored)} {unit}(s) finished and saved in {store.root} "
                f"this time, {len(first) - len(scored)} not; the next run reuses what is saved "
                "and scores the rest") from None
    return ExecutionResult(scored=scored, load_s=round(load_s, 3), score_s=round(score_s, 3))


def _resources(spec: HarnessSpec, models: list[ModelEntry]) -> tuple[float, float]:
    """CPUs and GPUs a Ray task of this group asks for (eval.ray, else from the backend and device)."""
    ray = spec.eval.ray
    if ray.num_gpus is not None:
        return ray.num_cpus, ray.num_gpus
    local = models[0].served is None and not (spec.judge is not None and spec.judge.endpoint is not None
                                               and models[0].label == "judge")
    if not local or not spec.eval.device.startswith("cuda"):
        return ray.num_cpus, 0
    if spec.eval.backend == "vllm":
        return ray.num_cpus, spec.eval.vllm.tensor_parallel_size * (spec.eval.vllm.pipeline_parallel_size or 1)
    return ray.num_cpus, 1


def _group_work(spec: HarnessSpec, models: list[ModelEntry], batches: dict[str, list[Job]]):
    """What a Ray task of a group runs on its worker: the group's backend loaded once, then each batch it is
    given scored, its records as Arrow tables (what comes back to the driver)."""

    def run(items: list[str]):
        import pyarrow as pa

        t = time.perf_counter()
        backend = load_backend(spec, models)
        load_s = time.perf_counter() - t
        try:
            device = device_name(spec.eval.device)
            for item in items:
                results = score_batch(backend, batches[item])
                shipped = [dataclasses.replace(r, records=pa.Table.from_pandas(r.records, preserve_index=False))
                           for r in results]
                yield item, (backend.name, device, load_s, shipped)
                load_s = 0.0
        finally:
            backend.close()

    return run


def _on_ray(todo: dict[str, list[Job]], spec: HarnessSpec, store: Store, keep, unstored, say, stage: str) -> float:
    """The jobs of every group scored as Ray tasks (harness/cluster.py), each result stored by this process as
    it arrives; jobs another process holds are waited for, then sent if still unstored. Returns the seconds the
    workers spent loading models."""
    from harness import cluster

    ray = cluster.connect(spec.eval.ray, say)
    load_s = 0.0
    while todo:
        with ExitStack() as held:
            groups, later = [], []
            for group in todo.values():
                batches: dict[object, list[Job]] = {}
                for job in group:
                    batches.setdefault(job.together or job.key, []).append(job)
                mine: dict[str, list[Job]] = {}
                for batch in batches.values():
                    claimed = [j for j in batch if held.enter_context(store.claim(j.key, wait=False))]
                    later += [j for j in batch if j not in claimed]
                    if claimed := unstored(claimed):
                        mine[claimed[0].key.stem] = claimed
                if mine:
                    groups.append((list({j.model.label: j.model for j in group}.values()), mine))
            tasks = []
            for models, mine in groups:
                cpus, gpus = _resources(spec, models)
                free = cluster.slots(ray, cpus, gpus) // max(1, len(groups)) if spec.eval.ray.split else 1
                parts = max(1, min(len(mine), free))
                items = list(mine)
                for k in range(parts):  # each part loads the model again: worth it only with free slots
                    chunk = items[k::parts]
                    name = f"{models[0].model_dir.name} ({', '.join(m.label for m in models)})" \
                        + (f" part {k + 1}/{parts}" if parts > 1 else "")
                    say(f"{stage}: ray task {name}: {sum(len(mine[i]) for i in chunk)} to score")
                    work = _group_work(spec, models, {i: mine[i] for i in chunk})
                    tasks.append(cluster.ClusterTask(name, chunk, work, cpus, gpus))
            batch_of = {i: b for _, mine in groups for i, b in mine.items()}
            done_of = {task.name: 0 for task in tasks}

            def kept(task, item, result, where, batch_of=batch_of, done_of=done_of) -> None:
                nonlocal load_s
                backend, device, loaded_s, shipped = result
                load_s += loaded_s
                for job, done in zip(batch_of[item], shipped, strict=True):
                    done_of[task.name] += 1
                    keep(job, dataclasses.replace(done, records=done.records.to_pandas()), backend, device,
                         f" on {where} ({task.name}: {done_of[task.name]}/"
                         f"{sum(len(batch_of[i]) for i in task.items)})")

            cluster.run_tasks(tasks, spec.eval.ray, kept, say)
        todo = {}
        for job in later:  # held by another process: waited for, sent again where it did not store it
            say(f"{stage}: {job.label:>12} {job.task:<22} being scored by another process; waiting for it")
            with store.claim(job.key):
                pass
            if unstored([job]):
                todo.setdefault(job.model.group, []).append(job)
    return load_s

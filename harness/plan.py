"""Plan: which (model, task) evaluations a comparison needs, and which the store already holds.

Planning loads no model: fingerprints come from file hashes, task hashes from lm-eval task
configs and documents.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.config import HarnessSpec, PromptFormatFields, SuiteSpec
from harness.errors import HarnessError
from harness.records import BASE, SERVER_TEMPLATE
from harness.sources.checkpoints import adapter_update_is_zero, check_adapter, check_model_folder, tokenizers_differ
from harness.sources.fingerprint import adapter_fingerprint, model_fingerprint, resolve_model_dir
from harness.sources.prompts import PromptFormat, format_mismatch, model_fingerprint_with, resolve_prompt_format
from harness.sources.tasks import DeferredTask, LoadedTask, Remember, load_fewshot_task, load_tasks
from harness.store import RunKey, Store

if TYPE_CHECKING:
    from harness.backends.openai import ServedModel


@dataclass(frozen=True)
class ModelEntry:
    """One model of the comparison and how to load it."""

    label: str  # "base" or the candidate's name
    fingerprint: str  # of its weights and, unless plain, its prompt format: what its runs are keyed by
    group: str  # models of one group share one loaded backend (a folder in a dtype)
    variant: str  # the variant that serves it within its group
    model_dir: Path  # the full model folder the group loads
    adapter_dir: Path | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False
    prompt: PromptFormat = PromptFormat()
    warnings: tuple[str, ...] = ()  # e.g. evaluated in another prompt format than it was trained in
    flags: tuple[str, ...] = ()  # guards against silently wrong scores that fired on it (a zero adapter)
    weights_fp: str = ""  # of its weights alone
    of: str = ""  # a prompting arm: the model it prompts (base or a candidate); "" for a model itself
    num_fewshot: int | dict[str, int] | None = None  # a prompting arm's examples per prompt (None: the tasks' own)
    variants: tuple[tuple[str, str], ...] = ()  # a prompting arm's (suite task, task scored instead)
    base: str = BASE  # the base it is a fine-tune or prompting of (a base: its own label)
    dtype: str = ""  # its base's dtype (what its group loads in)
    is_base: bool = False  # one of the comparison's bases (base, or one of `bases`)
    served: ServedModel | None = None  # behind eval.endpoint: its name, API, what the server offers
    hosted: bool = False  # served with no local weights (its fingerprint is the server's word and its answers)

    @property
    def prompting(self) -> bool:
        return bool(self.of)

    def describe_arm(self) -> str:
        """How a prompting arm prompts its model, in words: "base, 3-shot, system prompt '...'"."""
        parts = [self.of]
        if isinstance(self.num_fewshot, int):
            parts.append(f"{self.num_fewshot}-shot")
        elif self.num_fewshot:
            parts.append(", ".join(f"{k}-shot on {task}" for task, k in self.num_fewshot.items()))
        if self.prompt.system_prompt is not None:
            parts.append(f"system prompt {self.prompt.system_prompt[:60]!r}")
        parts += [f"{variant} instead of {task}" for task, variant in self.variants]
        return ", ".join(parts)


@dataclass(frozen=True)
class PlannedRun:
    model: ModelEntry
    task: LoadedTask
    key: RunKey
    cached: bool
    scoring: str = ""  # "": as lm-eval asks (log-likelihood, generation); "letters": read from the first token


@dataclass(frozen=True)
class Plan:
    models: list[ModelEntry]
    tasks: list[LoadedTask]
    runs: list[PlannedRun]  # every model on every suite task
    baselines: list[PlannedRun] = ()  # prompting-only baselines of every base (ROI), e.g. 3-shot

    @property
    def distinct(self) -> list[PlannedRun]:
        """One run per key: two byte-identical models share their evaluations."""
        return list({r.key: r for r in reversed([*self.runs, *self.baselines])}.values())[::-1]

    @property
    def missing(self) -> list[PlannedRun]:
        return [r for r in self.distinct if not r.cached]

    def model(self, label: str) -> ModelEntry:
        return next(m for m in self.models if m.label == label)


# How the hf backend scores log-likelihoods, part of every run key it makes: each context run once and
# its key/value cache shared by its continuations (harness/backends/hf.py), which sums in another
# float order than lm-eval's full sequences (within 1e-4 nats): runs of the earlier path are not
# mixed with these. -2: the context pass's last position taken by an index tensor (another matrix
# kernel for the head than the strided slice before it: last bits of float32 differ). -3: contexts that
# begin alike share that beginning's pass too (a judge's prompts, few-shot prompts), batched otherwise.
# packed-1: one forward over the unique tokens, contexts and their continuations packed in rows under a
# 4D mask (harness/backends/hf_lm.py packed_scores): no cache copies, another float order again
HF_SCORING = "packed-1"


def scoring_backend(spec: HarnessSpec) -> str:
    """The backend as the run keys name it."""
    return f"hf:{HF_SCORING}" if spec.eval.backend == "hf" else spec.eval.backend


def plan_models(spec: HarnessSpec, store: Store) -> list[ModelEntry]:
    """Fingerprint every base and candidate; adapters join their base's group."""
    backend = scoring_backend(spec)
    if spec.eval.max_length is not None:  # a different context window scores long items differently
        backend = f"{backend}:max_length={spec.eval.max_length}"
    models: list[ModelEntry] = []
    for label, bspec, key in spec.all_bases():
        models += _plan_base(label, bspec, key, [(c, k) for b, c, k in spec.all_candidates() if b == label],
                             backend, store, several=bool(spec.bases))
    if spec.eval.backend == "openai" or any(m.hosted for m in models):
        models = _served(spec, models)
    # prompting arms: the weights of the model they prompt, their own prompt format (the keys an arm
    # does not set are that model's), keyed by weights and format as any model is
    specs = {label: b for label, b, _ in spec.all_bases()} | {c.name: c for _, c, _ in spec.all_candidates()}
    for i, arm in enumerate(spec.prompting):
        of = next(m for m in models if m.label == arm.of)
        fields = specs[arm.of].model_copy(update={k: getattr(arm, k) for k in arm.model_fields_set
                                                  if k in PromptFormatFields.model_fields})
        folders = [f for f in (of.adapter_dir, of.model_dir) if f is not None]
        prompt = resolve_prompt_format(fields, folders, f"prompting[{i}] ({arm.name})")
        if of.served is not None and of.served.api == "chat":  # the server's template, as for the model itself
            prompt = _server_format(prompt)
        models.append(dataclasses.replace(of, label=arm.name, fingerprint=model_fingerprint_with(of.weights_fp, prompt),
                                          prompt=prompt, warnings=(), flags=(), of=arm.of, num_fewshot=arm.num_fewshot,
                                          variants=tuple((t, v.task) for t, v in arm.variants.items()),
                                          is_base=False))
    return models


def _plan_base(label: str, bspec, key: str, candidates: list, backend: str, store: Store,
               several: bool) -> list[ModelEntry]:
    """One base and its candidates (each with its key path), fingerprinted; adapters checked to fit it."""
    dtype = bspec.dtype
    base_dir = resolve_model_dir(bspec.path, bspec.revision)
    group = f"{base_dir}:{dtype}"  # two bases may be one folder in two dtypes: two loads
    base_shapes = check_model_folder(base_dir, where=key, trust_remote_code=bspec.trust_remote_code,
                                     allow_pickle=bspec.allow_pickle)
    base_fp = model_fingerprint(base_dir, dtype=dtype, backend=backend, hasher=store.file_hash)
    base_prompt = resolve_prompt_format(bspec, [base_dir], key)
    models = [ModelEntry(label, model_fingerprint_with(base_fp, base_prompt), group=group, variant=BASE,
                         model_dir=base_dir, trust_remote_code=bspec.trust_remote_code,
                         allow_pickle=bspec.allow_pickle, prompt=base_prompt, weights_fp=base_fp, base=label,
                         dtype=dtype, is_base=True)]
    fix = (f"the adapter was trained for another base model; list it under the base it was trained on "
           f"(`{key}` is {base_dir})" if several else
           "the adapter was trained for a different base model; point `base.path` at that model")
    for c, where in candidates:
        if c.hosted:  # no weights here: keyed once the server is probed (_served)
            tokenizer = [Path(c.tokenizer)] if c.tokenizer is not None and Path(c.tokenizer).is_dir() else []
            models.append(ModelEntry(c.name, "", group=f"endpoint:{label}", variant=c.name,
                                     model_dir=Path(c.tokenizer or c.served), prompt=resolve_prompt_format(
                                         c, tokenizer, where), base=label, dtype=dtype, hosted=True))
        elif c.adapter is not None:
            adapter_dir = Path(c.adapter)
            fp = adapter_fingerprint(base_fp, adapter_dir, hasher=store.file_hash)
            check_adapter(adapter_dir, base_dir, base_shapes, where=where, fix=fix)
            prompt = resolve_prompt_format(c, [adapter_dir, base_dir], where)
            models.append(ModelEntry(c.name, model_fingerprint_with(fp, prompt), group=group,
                                     variant=c.name, model_dir=base_dir, adapter_dir=adapter_dir,
                                     trust_remote_code=bspec.trust_remote_code,
                                     allow_pickle=bspec.allow_pickle, prompt=prompt, weights_fp=fp,
                                     warnings=tuple(format_mismatch(adapter_dir, prompt, c.name)),
                                     flags=(f"{c.name}: its adapter's update is exactly zero ({adapter_dir}: every "
                                            "module's lora_A or lora_B is all zeros, as peft initialises an "
                                            "adapter before any training step): it scores as the base",)
                                     if adapter_update_is_zero(adapter_dir) else (), base=label, dtype=dtype))
        else:
            model_dir = resolve_model_dir(c.path or "", c.revision)
            check_model_folder(model_dir, where=where, trust_remote_code=c.trust_remote_code,
                               allow_pickle=c.allow_pickle)
            differ = tokenizers_differ(base_dir, model_dir, store.file_hash)
            if differ and not c.allow_different_tokenizer:
                raise HarnessError(
                    f"{model_dir}: {where} has a tokenizer other than the base's ({', '.join(differ)} "
                    "differ): its log-likelihoods are over other tokens and not comparable item by item; "
                    "save the base's tokenizer with it, or set `allow_different_tokenizer: true` on it")
            fp = model_fingerprint(model_dir, dtype=dtype, backend=backend, hasher=store.file_hash)
            prompt = resolve_prompt_format(c, [model_dir], where)
            models.append(ModelEntry(c.name, model_fingerprint_with(fp, prompt), group=f"{model_dir}:{dtype}",
                                     variant=BASE, model_dir=model_dir, trust_remote_code=c.trust_remote_code,
                                     allow_pickle=c.allow_pickle, prompt=prompt, weights_fp=fp, base=label,
                                     dtype=dtype))
    return models


def plan_runs(spec: HarnessSpec, suite: SuiteSpec, store: Store) -> Plan:
    """Every (model, task) pair the comparison needs, marked cached or not. Tasks built before with
    the same recipe come from the store's memory of them (harness.sources.tasks.Remember), lm-eval
    untouched, unless a run is to be scored: then they are built."""
    models = plan_models(spec, store)  # once: a served model's probe is not sent twice
    plan = _plan_tasks(spec, suite, store, models, Remember(store.root / "checks", store.file_hash))
    if any(isinstance(r.task.task, DeferredTask) for r in plan.missing):
        return _plan_tasks(spec, suite, store, models, None)  # runs to score: their lm-eval tasks built
    return plan


def _plan_tasks(spec: HarnessSpec, suite: SuiteSpec, store: Store, models: list[ModelEntry],
                remember: Remember | None) -> Plan:
    tasks = load_tasks(suite, spec.suite, limit=spec.eval.limit, cache=store.root / "datasets", remember=remember)
    scoring = assign_scoring(models, tasks)

    def planned(m: ModelEntry, t: LoadedTask) -> PlannedRun:
        how = scoring.get(t.leaf, "")
        # letter-choice runs are another measurement than log-likelihood: keyed apart, never paired with it
        fp = m.fingerprint if not how else hashlib.sha256(f"{m.fingerprint}:scoring:{how}".encode()).hexdigest()
        key = RunKey(model_fp=fp, task=t.name, task_hash=t.task_hash)
        return PlannedRun(model=m, task=t, key=key, cached=store.has(key), scoring=how)

    runs = [planned(m, t) for m in models if not m.prompting for t in tasks]
    for i, arm in enumerate(spec.prompting):  # an arm prompted as the suite is shares its tasks
        entry = next(m for m in models if m.label == arm.name)
        own = tasks if arm.num_fewshot is None and not arm.variants else load_tasks(
            suite, spec.suite, limit=spec.eval.limit, cache=store.root / "datasets", num_fewshot=arm.num_fewshot,
            variants=arm.variants, where=f"prompting[{i}] ({arm.name}): ", remember=remember)
        runs += [planned(entry, t) for t in own]
    baselines = []
    if spec.roi is not None and spec.roi.fewshot > 0:
        fewshot = load_fewshot_task(suite, spec.suite, roi_task(spec, suite), spec.roi.fewshot,
                                    limit=spec.eval.limit, cache=store.root / "datasets", remember=remember)
        baselines += [planned(m, fewshot) for m in models if m.is_base]
    return Plan(models=models, tasks=tasks, runs=runs, baselines=baselines)


def _served(spec: HarnessSpec, models: list[ModelEntry]) -> list[ModelEntry]:
    """Served models (every model on backend openai; hosted candidates on any) probed for what the server
    offers and which API scores them, and keyed by their weights (where local) and by what the server
    says of them and answers to fixed probes (harness.backends.openai.probe_server): a model redeployed
    with other weights under the same name is scored anew. A model scored through chat completions is
    prompted in the server's own template (its runs keyed apart from prompts rendered here)."""
    from harness.backends.openai import probe_server

    specs = {label: b for label, b, _ in spec.all_bases()} | {c.name: c for _, c, _ in spec.all_candidates()}
    tokenizers: dict[str, object] = {}
    out = []
    for m in models:
        s = specs[m.label]
        if spec.eval.backend != "openai" and not m.hosted:
            out.append(m)
            continue
        ref = None if m.hosted and s.tokenizer is None else str(m.model_dir)
        if ref is not None and ref not in tokenizers:
            from transformers import AutoTokenizer

            try:
                tokenizers[ref] = AutoTokenizer.from_pretrained(ref, trust_remote_code=m.trust_remote_code)
            except (OSError, ValueError) as e:
                raise HarnessError(f"{m.label}: its tokenizer {ref} cannot be loaded ({str(e)[:200]}); give a folder "
                                   "or hub id of the served model's tokenizer") from None
        served = probe_server(spec.eval.endpoint, s.served, tokenizers.get(ref), api=s.api,
                              plain=s.chat_template == "none", tokenizer_ref=None if ref is None else Path(ref))
        prompt = m.prompt
        if served.api == "chat":
            prompt = _server_format(prompt)
        prices = s.token_prices or (spec.roi.token_prices if spec.roi is not None else None)
        served = dataclasses.replace(served, prices=prices)
        if prices is not None and not served.capabilities.usage:
            raise HarnessError(f"{m.label}: token_prices cost it by the tokens its answers count, but the server at "
                               f"{spec.eval.endpoint.base_url} answers '{s.served}' without `usage`; drop its "
                               "token_prices to cost it by the hour, or serve it where answers count their tokens")
        weights = hashlib.sha256(f"{m.weights_fp}:served:{s.served}:{served.identity}".encode()).hexdigest()
        out.append(dataclasses.replace(m, weights_fp=weights, fingerprint=model_fingerprint_with(weights, prompt),
                                       prompt=prompt, served=served,
                                       group=f"endpoint:{spec.eval.endpoint.base_url}" if m.hosted else m.group))
    return out


def _server_format(prompt: PromptFormat) -> PromptFormat:
    """A prompt format sent as chat messages that the server renders in its own template."""
    return PromptFormat(source=SERVER_TEMPLATE, system_prompt=prompt.system_prompt,
                        fewshot_as_multiturn=prompt.fewshot_as_multiturn, server=True)


def lettered(task: LoadedTask) -> bool:
    """A multiple-choice task whose choices are single letters or digits (A-D, 1-4): one token in any
    tokenizer, so each choice's log-probability is the first answer token's."""
    t = task.task
    if t.OUTPUT_TYPE != "multiple_choice" or t.multiple_input:
        return False
    docs = list(t.eval_docs)
    picked = [docs[i] for i in task.indices] if task.indices is not None else docs
    return bool(picked) and all(
        len(c.strip()) == 1 and c.strip().isalnum() for d in picked for c in map(str, t.doc_to_choice(d)))


def assign_scoring(models: list[ModelEntry], tasks: list[LoadedTask]) -> dict[str, str]:
    """How every model of the comparison scores each task, where some served model cannot score
    log-likelihoods (no prompt log-probabilities, chat only, no tokenizer): a generation task as lm-eval
    asks; a multiple-choice task with lettered choices by the letter-choice reading ("letters", for
    every model, so that pairs compare one measurement); any other task is refused, by name, with what
    it would need, before anything is scored. {} when every model scores log-likelihoods."""
    limited = [m for m in models if m.served is not None and not (
        m.served.api == "completions" and m.served.capabilities.prompt_logprobs and m.served.tokenizer is not None)]
    if not limited:
        return {}
    out, refused = {}, []
    for t in tasks:
        kind = t.task.OUTPUT_TYPE
        if kind == "generate_until":
            continue
        letters = lettered(t)
        cannot = [m for m in limited if not (letters and m.served.letters)]
        if not cannot:
            out[t.leaf] = "letters"
            continue
        refused.append(f"{t.name} ({kind}): " + "; ".join(dict.fromkeys(_cannot(m, letters) for m in cannot)))
    if refused:
        raise HarnessError("tasks a served model cannot be scored on (leave them out of the suite, or serve the "
                           "model so that it can):\n  " + "\n  ".join(refused))
    return out


def _cannot(m: ModelEntry, letters: bool) -> str:
    """Why `m` cannot score a log-likelihood task, and what would let it."""
    s = m.served
    c = s.capabilities
    if c.prompt_logprobs and s.tokenizer is None:
        why = (f"{m.label} has no tokenizer here, and log-likelihood over the prompt's tokens needs the served "
               "model's: give its `tokenizer:`")
    elif c.prompt_logprobs:
        why = (f"{m.label} is scored through chat completions, which return no log-probabilities of the prompt: "
               "set `api: completions` for it")
    else:
        said = f"; it said: {'; '.join(c.refusals)}" if c.refusals else ""
        why = (f"the server returns no log-probabilities of the prompt's tokens for {m.label} (it offers "
               f"{c.describe()}{said}); it needs a server that echoes them (completions with echo, as vLLM's)")
    if letters:
        return why + ", or the first answer token's alternatives (logprobs) for the letter-choice reading"
    return why + ", or the task in a lettered form (choices A, B, C, ... read from the first answer token)"


def roi_task(spec: HarnessSpec, suite: SuiteSpec) -> str | None:
    """The task whose accuracy the ROI section values: named, or the suite's default target task."""
    return (spec.roi.task if spec.roi is not None else None) or suite.default_target()

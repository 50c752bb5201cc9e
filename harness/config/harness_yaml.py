"""A config file (e.g. `configs/demo.yaml`): the comparison (HarnessSpec) with its sections: how
models are evaluated, the statistics, the gates, the ROI inputs and the judge."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from harness.config.common import Role, Spec, is_local, parse_spec, read_yaml, refuse_duplicates, resolve_ref
from harness.config.models import (
    BaseSpec,
    CandidateSpec,
    ModelSpec,
    PromptFormatFields,
    PromptingSpec,
    TokenPriceSpec,
)
from harness.config.suite import DataSpec
from harness.config.tracking import TrackingSpec, local_mlflow
from harness.errors import ConfigError


class VLLMOptions(Spec):
    """Engine settings of the vllm backend (vLLM's own names; unset = vLLM's default)."""

    tensor_parallel_size: int = Field(1, ge=1, description="GPUs one engine shards the model over.")
    data_parallel_size: int | None = Field(None, ge=1, description="Engine replicas (vLLM data parallelism).")
    pipeline_parallel_size: int | None = Field(None, ge=1, description="Stages the model's layers are split "
                                               "into, one GPU (or node) each (vLLM pipeline parallelism).")
    distributed_executor_backend: Literal["mp", "ray"] | None = Field(
        None, description="How vLLM runs its workers: `mp` (processes on this machine) or `ray` (a Ray "
        "cluster, for engines across nodes).")
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1, description="Share of GPU memory for vLLM.")
    max_model_len: int | None = Field(None, ge=8, description="Context length of the engine.")
    enforce_eager: bool | None = Field(None, description="No CUDA graphs (default: on for CPU, off on GPU).")
    max_num_seqs: int | None = Field(None, ge=1, description="Sequences per engine step.")


class ServerSpec(Spec):
    """An OpenAI-compatible server: where it is, its key, and how hard to push it."""

    base_url: str = Field(description="The server's /v1 root, e.g. http://127.0.0.1:8000/v1.")
    api_key_env: str | None = Field(None, description="Environment variable holding the API key (the key "
                                    "itself is never written to the config, the store or the report).")
    concurrency: int = Field(1, ge=1, description="Requests in flight at once.")
    timeout_s: float = Field(300, gt=0, description="Seconds to wait for one answer.")
    max_retries: int = Field(5, ge=1, description="Attempts per request (exponential backoff between them: "
                             "429 and 5xx answers are retried).")
    top_logprobs: int = Field(20, ge=1, le=20, description="Alternatives asked for an answer's first token where "
                              "a label or a lettered choice is read from them (a judge's verdict; multiple-choice "
                              "on a server without prompt log-probabilities): one outside them counts at the "
                              "least likely one's log-probability. Some APIs allow fewer (OpenAI's completions: 5).")


class EndpointSpec(ServerSpec):
    """An OpenAI-compatible server that serves the base and its candidates (eval.backend openai)."""

    batch_size: int = Field(8, ge=1, description="Prompts per completions request.")


class JudgeEndpointSpec(ServerSpec):
    """A judge behind an OpenAI-compatible chat API (`/v1/chat/completions`: vLLM, llama.cpp's server, a
    hosted model): no local weights or tokenizer. The verdict is read from the first reply token's
    `top_logprobs` over the three labels; from the reply's text where the server returns none."""

    model: str = Field(description="The judge's model id on the server (as its /v1/models lists it).")
    price_per_million_tokens: float | None = Field(
        None, ge=0, description="What the server charges per million tokens (prompt and reply, as its `usage` "
        "counts them): the judge's cost in the ROI; unset, the judge is costed by its seconds.")


class RaySpec(Spec):
    """The Ray cluster of `eval.executor: ray`: each load group of the plan (a model folder with its variants
    and their runs) is a Ray task there; finished runs come back to this process, which stores them."""

    address: str | None = Field(None, description="The cluster's address (`ray://host:10001` or `host:6379`); "
                                "unset: the RAY_ADDRESS environment variable, else a cluster of this machine.")
    num_cpus: float = Field(1, gt=0, description="CPUs each task asks for (a CPU-only cluster's unit of placement).")
    num_gpus: float | None = Field(None, ge=0, description="GPUs each task asks for (default: tensor x pipeline "
                                   "parallel size on the vllm backend, 1 on a cuda device, else 0).")
    split: bool = Field(True, description="Split a group's runs over several tasks when the cluster has more "
                        "free slots than there are groups (each such task loads the model again).")
    max_retries: int = Field(2, ge=0, description="Times a group's unfinished runs are sent again after its "
                             "worker died (the finished ones are kept).")


class EvalSpec(Spec):
    """How to run the evaluation."""

    backend: Literal["hf", "vllm", "openai"] = Field(
        "hf", description="hf: transformers + peft (CPU or GPU); vllm: one vLLM engine per base serving it and "
        "its LoRA adapters; openai: the models as served by an OpenAI-compatible server (eval.endpoint).")
    vllm: VLLMOptions = Field(default_factory=VLLMOptions, description="Settings of the vllm backend.")
    endpoint: EndpointSpec | None = Field(None, description="The server of the openai backend, and of candidates "
                                          "with no local weights (`served` alone) on any backend.")
    device: str = Field("cpu", description="torch device for the hf backend: cpu, cuda, cuda:1.")
    batch_size: int = Field(32, ge=1, description="Requests per forward pass.")
    limit: int | None = Field(None, ge=1, description="Score only the first N items per task.")
    max_length: int | None = Field(None, ge=8, description="Tokens of context per request (default: the "
                                   "model's own, from its config); longer contexts keep their end.")
    executor: Literal["local", "ray"] = Field("local", description="local: every load group in this process; "
                                              "ray: each load group a task on a Ray cluster (eval.ray).")
    ray: RaySpec = Field(default_factory=RaySpec, description="The Ray cluster of `executor: ray`.")


class StatsSpec(Spec):
    """Settings of the paired statistics."""

    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Two-sided interval level.")
    resamples: int = Field(2000, ge=200, description="Bootstrap resamples.")
    seed: int = Field(0, description="Seed of the bootstrap's random generator.")


GateRule = Literal["improves", "non_inferior", "no_bias_amplification", "floor", "wins"]


class GateSpec(Spec):
    """A pre-deploy rule on the paired difference (or, for `floor`, on the candidate's score).

    improves: lower bound of delta > min_delta. non_inferior: lower bound > -margin.
    no_bias_amplification: upper bound of the bias increase < margin. floor: the candidate's
    score interval lies above min_score. wins: on a judged task, the lower bound of the candidate's
    win rate over the base > 0.5 + min_delta, and the judge's position consistency at its minimum.
    A gate applies to a role (its mean task delta), one task or one of the suite's summaries, for
    every candidate unless `candidates` names some.
    """

    rule: GateRule
    role: Role | None = Field(None, description="Gate the role's mean delta (exclusive with task).")
    task: str | None = Field(None, description="Gate one task of the suite (exclusive with role).")
    summary: str | None = Field(None, description="Gate one of the suite's summaries, e.g. the "
                                                  "Biderman et al. forgetting average.")
    min_delta: float | None = Field(None, ge=0, description="improves: the gain to prove (metric units).")
    margin: float | None = Field(None, gt=0, description="non_inferior / no_bias_amplification: the loss "
                                                         "or bias increase tolerated (metric units).")
    min_score: float | None = Field(None, description="floor: the lowest acceptable candidate score.")
    power_effect: float | None = Field(
        None, gt=0, description="Effect the probe must be able to see (power 0.8); default: the margin, "
                                "or min_delta for improves.")
    candidates: list[str] | None = Field(None, description="Candidates this gate applies to (default all).")

    @model_validator(mode="after")
    def _shape(self) -> GateSpec:
        if sum(x is not None for x in (self.role, self.task, self.summary)) != 1:
            raise ValueError("give exactly one of `role`, `task` or `summary`")
        needs = {"improves": "min_delta", "wins": "min_delta", "non_inferior": "margin",
                 "no_bias_amplification": "margin", "floor": "min_score"}[self.rule]
        if self.rule not in ("improves", "wins") and getattr(self, needs) is None:
            raise ValueError(f"rule {self.rule} needs `{needs}`")
        extra = {"min_delta", "margin", "min_score"} - {needs}
        given = sorted(k for k in extra if getattr(self, k) is not None)
        if given:
            raise ValueError(f"rule {self.rule} takes `{needs}`, not {', '.join(f'`{g}`' for g in given)}")
        if self.rule in ("floor", "wins") and self.task is None:
            raise ValueError(f"rule {self.rule} applies to a `task`")
        if self.rule == "no_bias_amplification" and self.role not in (None, "bias"):
            raise ValueError("rule no_bias_amplification applies to role bias (or a task of it)")
        return self

    @property
    def target(self) -> str:
        return self.role or self.task or self.summary or ""


class RoiSpec(Spec):
    """Business inputs for the return-on-investment section (all money in `currency`)."""

    task: str | None = Field(None, description="Task whose accuracy earns the value; default: the "
                                               "suite's first target task. Needs a 0/1 metric.")
    volume_per_month: float = Field(gt=0, description="Items the workflow handles per month.")
    human_minutes_per_item: float = Field(gt=0, description="Minutes a person spends on an item unaided.")
    hourly_rate: float = Field(ge=0, description="Cost of a person-hour.")
    minutes_saved_per_correct: float | None = Field(
        None, ge=0, description="Minutes saved when the model is right (default: human_minutes_per_item).")
    minutes_lost_per_wrong: float = Field(0.0, ge=0, description="Minutes a person spends catching and "
                                                                 "fixing a wrong output.")
    serving_hourly_price: float = Field(ge=0, description="Price of an hour of the machine that serves "
                                                          "the model (GPU or CPU).")
    training_hourly_price: float | None = Field(None, ge=0, description="Price of an hour of the training "
                                                                        "machine (default: serving).")
    fewshot: int = Field(3, ge=0, description="Shots of the prompting-only baseline (0: no such baseline).")
    token_prices: TokenPriceSpec | None = Field(
        None, description="Default price per million input and output tokens of served models (a model's own "
        "token_prices wins): such a model is costed by the tokens its answers count, not by the hour.")
    currency: str = "USD"

    @property
    def saved_minutes(self) -> float:
        return self.human_minutes_per_item if self.minutes_saved_per_correct is None \
            else self.minutes_saved_per_correct


class JudgeFallbackSpec(Spec):
    """Another judge for the same work (judge.fallbacks): measured on the same validation pairs, it judges
    the comparison when the judges before it fail their validation. What it does not give it takes
    from the judge it stands in for."""

    model: ModelSpec | None = Field(None, description="A model the harness loads (as judge.model).")
    adapter: str | None = Field(None, description="A LoRA adapter on `model` (as judge.adapter).")
    endpoint: JudgeEndpointSpec | None = Field(None, description="Or a judge behind a chat API (as judge.endpoint).")
    rubric: str | None = Field(None, description="Its own rubric (default: the judge's).")
    labels: list[str] | None = Field(None, description="Its own labels (default: the judge's).")

    @model_validator(mode="after")
    def _one_judge(self) -> JudgeFallbackSpec:
        if (self.model is None) == (self.endpoint is None):
            raise ValueError("give the fallback judge as `model` or as `endpoint`, one of the two")
        if self.adapter is not None and self.model is None:
            raise ValueError("adapter: a LoRA adapter goes on a judge the harness loads (`model`)")
        return self


class JudgeSpec(Spec):
    """A pairwise judge of generated text: a model shown the task's input, the reference and two
    answers, asked which is better. Every pair is judged in both orders; the verdict is read from the
    judge's log-probabilities of the three labels, not from sampled text."""

    model: ModelSpec | None = Field(None, description="The judge: any model the harness loads (a folder or hub "
                                    "id), with its own prompt format keys, on the comparison's backend.")
    adapter: str | None = Field(None, description="A LoRA adapter on `model` (peft, safetensors; relative to "
                                "the config): a judge fine-tuned for the rubric, e.g. with `harness train`.")
    endpoint: JudgeEndpointSpec | None = Field(None, description="Or a judge served behind a chat API (instead "
                                               "of `model`).")
    rubric: str = Field(description="Jinja file (relative to the config) given `input`, `reference`, "
                        "`answer_a` and `answer_b`; the judge's reply starts right after it.")
    labels: list[str] = Field(["A", "B", "tie"], min_length=3, max_length=3, description="What the judge "
                              "answers for: answer A better, answer B better, a tie; each one token for its "
                              "tokenizer (with the space before it, when the rubric ends without one).")
    tasks: list[str] = Field(min_length=1, description="Suite tasks whose generated answers are judged.")
    limit: int | None = Field(None, gt=0, description="Judge the first N items of each task (by document "
                              "id) rather than every item scored; the win rate's interval is then over N.")
    calibrate: bool = Field(True, description="Read the verdict after subtracting each label's mean "
                            "log-probability over the pairing's prompts (both orders): the judge's prior for the "
                            "first answer, or for a label, cancels and its preference between the answers is "
                            "left (harness/judge.py, read_verdicts). false: the most likely label as it is.")
    min_position_consistency: float = Field(
        0.6, ge=0, le=1, description="Share of items whose two orders must agree for a judged gate to pass.")
    human_labels: str | None = Field(None, description="JSONL of people's verdicts on some pairs, one "
                                     "{candidate, task, doc_id, verdict: candidate|base|tie} per line (relative "
                                     "to the config): the judge's agreement with them (Cohen's kappa).")
    min_human_agreement: float = Field(0.4, ge=-1, le=1, description="Cohen's kappa with the human labels "
                                       "below which a judged gate cannot pass.")
    validation: str | None = Field(None, description="JSONL of labelled pairs the judge never judges in the "
                                   "comparison, one {input, reference, answer_a, answer_b, verdict: A|B|tie} per "
                                   "line (relative to the config): judged in both orders, they measure the judge "
                                   "(agreement with the labels, position consistency, first-position rate).")
    min_validation_kappa: float = Field(0.6, ge=-1, le=1, description="Cohen's kappa with the validation "
                                        "labels below which a judged gate cannot pass.")
    grade_rubric: str | None = Field(None, description="Jinja file (relative to the config) given `input`, "
                                     "`reference` and one `answer`: the judge also grades each model's answers "
                                     "alone against the reference (correct, partly, incorrect), paired per item "
                                     "between a fine-tune and its base.")
    grade_labels: list[str] = Field(["C", "P", "I"], min_length=3, max_length=3, description="What the judge "
                                    "answers for a correct, a partly correct and an incorrect answer; one token "
                                    "each.")
    fallbacks: list[JudgeFallbackSpec] = Field(
        default_factory=list, description="Other judges, each measured on the same validation pairs beside this "
        "one: the first judge in order (this one, then these) whose validation kappa reaches "
        "min_validation_kappa judges the comparison; where none does, this one judges and no judged gate "
        "passes. Each takes the keys it does not give (rubric, labels, tasks, ...) from this judge.")

    @field_validator("labels", "grade_labels")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != 3 or not all(x.strip() for x in v):
            raise ValueError("three different, non-empty labels (labels: answer A better, answer B better, tie; "
                             "grade_labels: correct, partly correct, incorrect)")
        return v

    @model_validator(mode="after")
    def _one_judge(self) -> JudgeSpec:
        if (self.model is None) == (self.endpoint is None):
            raise ValueError("give the judge as `model` (a model the harness loads) or as `endpoint` (a model "
                             "behind a chat API: {base_url, model}), one of the two")
        if self.adapter is not None and self.model is None:
            raise ValueError("judge.adapter: a LoRA adapter goes on a judge the harness loads (`model`), not on "
                             "a served one")
        if self.fallbacks and self.validation is None:
            raise ValueError("judge.fallbacks: the judge that judges is chosen by its validation; give "
                             "judge.validation (labelled pairs) too")
        return self

    @property
    def name(self) -> str:
        """The judge in the log: its folder's name (and its adapter's) or its id on the server."""
        if self.endpoint is not None:
            return self.endpoint.model
        return Path(self.model.path).name + (f" + {Path(self.adapter).name}" if self.adapter is not None else "")

    def judges(self) -> list[JudgeSpec]:
        """This judge and each of its fallbacks as a judge of its own, in the order they are tried."""
        alone = self.model_copy(update={"fallbacks": []})
        return [alone, *(alone.model_copy(update={
            "model": f.model, "adapter": f.adapter, "endpoint": f.endpoint, "rubric": f.rubric or self.rubric,
            "labels": f.labels or self.labels}) for f in self.fallbacks)]


class HarnessSpec(Spec):
    """A comparison: the base, its candidates, the suite, and where results go."""

    name: str = Field(description="Name of the comparison; the report goes to reports/<name>/.")
    base: ModelSpec
    candidates: list[CandidateSpec] = Field(default_factory=list, description="What to compare with the base "
                                            "(may be empty only in a config that `harness train --eval-config` "
                                            "or `harness sweep` fills in).")
    prompting: list[PromptingSpec] = Field(
        default_factory=list, description="Prompting arms (myth 5: would prompting alone have done it?): "
        "the base, or a candidate, prompted another way, compared beside the fine-tunes.")
    suite: str = Field(description="Suite file, relative to this config file.")
    eval: EvalSpec = EvalSpec()
    stats: StatsSpec = StatsSpec()
    gates: list[GateSpec] = Field(default_factory=list, description="Pre-deploy gates (harness gate).")
    task_data: dict[str, DataSpec] = Field(
        default_factory=dict, description="Suite task name -> local files to read it from instead of the hub "
                                          "(paths relative to this config file).")
    roi: RoiSpec | None = Field(None, description="Return on investment inputs (report section).")
    judge: JudgeSpec | None = Field(None, description="A pairwise judge of the generated answers of some "
                                    "tasks: each candidate against the base, in both orders.")
    underpowered: Literal["fail", "pass"] = Field(
        "fail", description="Whether an underpowered gate blocks: harness gate's exit code, the JUnit file, "
        "the pytest items and the report's banner all read it (gates.verdict_blocks).")
    store: str = Field(".harness", description="Run store folder, relative to this config file.")
    report_dir: str | None = Field(None, description="Default: reports/<name>, relative to this file.")
    sweeps: list[str] = Field(default_factory=list, description="sweep.json files of `harness sweep` runs on "
                              "this base (relative to this file): their data-size charts go into the report.")
    tracking: TrackingSpec = Field(default_factory=TrackingSpec, description="Experiment trackers `harness "
                                   "compare` logs each candidate's results to (tracking.mlflow).")

    bases: list[BaseSpec] = Field(
        default_factory=list, description="Other bases compared beside `base`, each with its own candidates "
        "(which base to start from, and which way of working: the quality-cost frontier of the report). "
        "Every model is evaluated once; adding a base evaluates only that base and its fine-tunes.")

    @model_validator(mode="after")
    def _unique_candidates(self) -> HarnessSpec:
        names = [b.name for b in self.bases]
        for i, n in enumerate(names):
            if names.index(n) != i:
                raise ValueError(f"bases[{i}].name: '{n}' is the name of bases[{names.index(n)}] too; give each "
                                 "base its own name")
        refuse_duplicates("candidate, prompting or base name used twice",
                           [c.name for _, c, _ in self.all_candidates()] + [p.name for p in self.prompting] + names)
        known = {"base", *names, *(c.name for _, c, _ in self.all_candidates())}
        for i, p in enumerate(self.prompting):
            if p.of not in known:
                raise ValueError(f"prompting[{i}] ({p.name}): of: '{p.of}' is neither base, another base nor a "
                                 f"candidate (have: {', '.join(sorted(known))})")
        if self.eval.backend == "openai":
            if self.eval.endpoint is None:
                raise ValueError("eval.endpoint: backend openai needs the server: endpoint: {base_url: "
                                 "http://HOST:PORT/v1}")
            unnamed = ["base.served"] * (self.base.served is None) + [
                f"bases[{i}] ({b.name}).served" for i, b in enumerate(self.bases) if b.served is None] + [
                f"{key}.served" for _, c, key in self.all_candidates() if c.served is None] + [
                "judge.model.served"] * (self.judge is not None and self.judge.model is not None
                                         and self.judge.model.served is None) + [
                f"judge.fallbacks[{i}].model.served" for i, f in enumerate(self.judge.fallbacks if self.judge else [])
                if f.model is not None and f.model.served is None]
            if unnamed:
                raise ValueError(f"{', '.join(unnamed)}: backend openai scores each model by its name on the "
                                 "server; give it (e.g. served: my-adapter, as vLLM's --lora-modules names it)")
        else:
            hosted = [key for _, c, key in self.all_candidates() if c.hosted]
            if hosted and self.eval.endpoint is None:
                raise ValueError(f"eval.endpoint: {', '.join(hosted)} {'is' if len(hosted) == 1 else 'are'} served "
                                 "with no local weights (`served` alone): give the server, endpoint: {base_url: "
                                 "http://HOST:PORT/v1}")
            if not hosted and self.eval.endpoint is not None:
                raise ValueError(f"eval.endpoint: set, but eval.backend is {self.eval.backend} and no candidate is "
                                 "served alone; use backend: openai, or give a candidate `served` without a folder")
        if self.bases and self.roi is None:
            raise ValueError("roi: several bases are compared on a frontier of quality against cost, priced "
                             "from roi (serving_hourly_price, training_hourly_price); add a roi: section")
        return self

    def all_bases(self) -> list[tuple[str, ModelSpec, str]]:
        """(label, spec, key path) of every base: `base` (label base) first, then `bases` by name."""
        return [("base", self.base, "base"), *((b.name, b, f"bases[{i}]") for i, b in enumerate(self.bases))]

    def all_candidates(self) -> list[tuple[str, CandidateSpec, str]]:
        """(base label, spec, key path) of every candidate, the first base's first."""
        return [("base", c, f"candidates[{i}] ({c.name})") for i, c in enumerate(self.candidates)] + [
            (b.name, c, f"bases[{j}] ({b.name}).candidates[{i}] ({c.name})")
            for j, b in enumerate(self.bases) for i, c in enumerate(b.candidates)]


def load_config(path: str | Path, candidates: bool = True) -> HarnessSpec:
    """Load and validate a config file; paths in the result are absolute. With `candidates=False`
    the file's candidates, prompting arms and sweeps are left out, and the judge's fallbacks' adapters
    need not exist yet (training fills in its own adapters, a trained judge's among them)."""
    path = Path(path)
    raw = read_yaml(path)
    if not candidates and isinstance(raw, dict):
        raw = {k: v for k, v in raw.items() if k not in ("candidates", "sweeps", "prompting", "bases")}
    spec = parse_spec(HarnessSpec, raw, str(path))
    here = path.resolve().parent
    problems = []

    def local(ref: str, key: str, what: str) -> str:
        resolved = resolve_ref(ref, here)
        if is_local(ref) and not Path(resolved).exists():
            problems.append(f"{path}: {key}: {what} {resolved} does not exist")
        return resolved

    def template(model: PromptFormatFields, key: str) -> str:
        if model.chat_template in ("auto", "none"):
            return model.chat_template
        resolved = str((here / Path(model.chat_template).expanduser()).resolve())
        if not Path(resolved).is_file():
            problems.append(f"{path}: {key}.chat_template: template file {resolved} does not exist "
                            "(or give auto or none)")
        return resolved

    def a_model(m: ModelSpec, key: str) -> ModelSpec:
        return m.model_copy(update={"path": local(m.path, f"{key}.path", "model folder"),
                                    "chat_template": template(m, key)})

    def candidate(c: CandidateSpec, key: str) -> CandidateSpec:
        if c.adapter is not None:
            c = c.model_copy(update={"adapter": local(c.adapter, f"{key}.adapter", "adapter folder")})
        elif c.hosted:
            if c.tokenizer is not None:
                c = c.model_copy(update={"tokenizer": local(c.tokenizer, f"{key}.tokenizer", "tokenizer folder")})
        else:
            c = c.model_copy(update={"path": local(c.path or "", f"{key}.path", "model folder")})
        c = c.model_copy(update={"chat_template": template(c, key)})
        source = Path(c.adapter or c.path or "")
        if spec.roi is not None and c.training_cost is None and c.hosted:
            problems.append(f"{path}: {key}.training_cost: {c.served} is served with no local weights, and the "
                            "ROI and the quality-cost frontier price every fine-tune; give what training it cost "
                            "(in roi.currency)")
        elif spec.roi is not None and c.training_cost is None and source.is_dir() \
                and not (source / "train_manifest.json").is_file():
            problems.append(f"{path}: {key}.training_cost: {source} has no train_manifest.json saying how long "
                            "it trained, and the ROI and the quality-cost frontier price every fine-tune; give "
                            "its training cost (in roi.currency)")
        return c

    base = a_model(spec.base, "base")
    candidates = [candidate(c, f"candidates[{i}]") for i, c in enumerate(spec.candidates)]
    bases = [a_model(b, f"bases[{j}]").model_copy(update={
        "candidates": [candidate(c, f"bases[{j}].candidates[{i}]") for i, c in enumerate(b.candidates)]})
        for j, b in enumerate(spec.bases)]
    def rubric_file(ref: str, key: str) -> str:
        rubric = (here / Path(ref).expanduser()).resolve()
        if not rubric.is_file():
            problems.append(f"{path}: {key}: rubric file {rubric} does not exist")
        return str(rubric)

    def judge_model(j, key: str, trained: bool = False) -> dict:
        """A judge's (or a fallback's) model, adapter and rubric with their paths resolved; `trained`: its
        adapter may be one training is yet to write."""
        adapter = j.adapter and (resolve_ref(j.adapter, here) if trained else
                                 local(j.adapter, f"{key}.adapter", "adapter folder"))
        return {"model": j.model and j.model.model_copy(update={
                    "path": local(j.model.path, f"{key}.model.path", "model folder"),
                    "chat_template": template(j.model, f"{key}.model")}),
                "adapter": adapter, "rubric": j.rubric and rubric_file(j.rubric, f"{key}.rubric")}

    judge = spec.judge
    if judge is not None:
        labels = None
        if judge.human_labels is not None:
            labels = str((here / Path(judge.human_labels).expanduser()).resolve())
            if not Path(labels).is_file():
                problems.append(f"{path}: judge.human_labels: file {labels} does not exist")
        validation = judge.validation and local(judge.validation, "judge.validation", "labelled pairs file")
        grading = judge.grade_rubric and local(judge.grade_rubric, "judge.grade_rubric", "grading rubric")
        fallbacks = [f.model_copy(update=judge_model(f, f"judge.fallbacks[{i}]", trained=not candidates))
                     for i, f in enumerate(judge.fallbacks)]
        judge = judge.model_copy(update={**judge_model(judge, "judge"), "human_labels": labels,
                                         "validation": validation, "grade_rubric": grading, "fallbacks": fallbacks})
    prompting = [p.model_copy(update={"chat_template": template(p, f"prompting[{i}]")})
                 if "chat_template" in p.model_fields_set else p for i, p in enumerate(spec.prompting)]
    suite = local(spec.suite, "suite", "suite file")
    task_data = {}
    for name, d in spec.task_data.items():
        data_path = (here / Path(d.path).expanduser()).resolve()
        if not data_path.exists():
            problems.append(f"{path}: task_data.{name}.path: {data_path} does not exist")
        task_data[name] = d.model_copy(update={"path": str(data_path)})
    sweeps = [local(p, f"sweeps[{i}]", "sweep result") for i, p in enumerate(spec.sweeps)]
    tracking = spec.tracking
    if tracking.mlflow is not None:
        tracking = tracking.model_copy(update={"mlflow": local_mlflow(tracking.mlflow, here)})
    store = str((here / spec.store).resolve())
    report_dir = str((here / (spec.report_dir or f"reports/{spec.name}")).resolve())
    if problems:
        raise ConfigError(problems)
    return spec.model_copy(update={"base": base, "candidates": candidates, "bases": bases, "prompting": prompting,
                                   "judge": judge, "tracking": tracking,
                                   "suite": suite, "store": store,
                                   "report_dir": report_dir, "task_data": task_data, "sweeps": sweeps})


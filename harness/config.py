"""Typed, validated specs: what users declare. All defaults live here.

A config file (e.g. `configs/demo.yaml`) names the base model, its candidates, a suite and where
results go. A suite file (e.g. `suites/demo.yaml`) names lm-eval tasks, each with a role and a
primary metric. Relative paths are relative to the file that contains them.
Every problem is reported at once, with the file and key path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.errors import ConfigError
from harness.util.yaml import load_yaml_file

Role = Literal["target", "forgetting", "bias"]


@dataclass(frozen=True)
class RoleFacts:
    """What a role's delta means wherever it is shown (report, charts, CLI, curves): said once, here."""

    role: Role
    title: str  # the report's name for the role's delta
    good: int  # the sign of a delta that is good news: +1, or -1 where a rise is harm (bias)
    reading: str  # the report's one line on how to read the delta
    trade_off: bool  # part of the learning-versus-forgetting trade-off (the curves' net and best point)


# every role, in the order results are shown
ROLE_FACTS: dict[str, RoleFacts] = {f.role: f for f in (
    RoleFacts("target", "Target gain", +1, "candidate − base on the tuned task", trade_off=True),
    RoleFacts("forgetting", "Forgetting", +1, "candidate − base on general knowledge; below zero = forgotten",
              trade_off=True),
    RoleFacts("bias", "Bias change", -1, "candidate − base bias score; above zero = more stereotyped",
              trade_off=False),
)}
ROLES: tuple[str, ...] = tuple(ROLE_FACTS)


def role_rank(role: str) -> int:
    """A role's place in ROLES (sort key); a name that is no role goes last."""
    return ROLES.index(role) if role in ROLES else len(ROLES)


def _refuse_duplicates(what: str, names: list[str]) -> None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{what}: {', '.join(dupes)}")


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PromptFormatFields(Spec):
    """How a model's prompts are written: the same keys on the base and on each candidate."""

    chat_template: str = Field(
        "auto", description="auto: the tokenizer's chat template when it has one, else plain text; none: plain "
        "text; or a Jinja chat template file (relative to the config file). Applied through lm-eval's own "
        "chat-template path, as `lm-eval --apply_chat_template` does.")
    system_prompt: str | None = Field(
        None, description="System message of every prompt (lm-eval's --system_instruction); with no chat "
        "template it is written before the prompt.")
    fewshot_as_multiturn: bool = Field(
        False, description="Few-shot examples as earlier user/assistant turns, not inside the first user "
        "turn (needs a chat template).")

    @model_validator(mode="after")
    def _multiturn_needs_template(self) -> PromptFormatFields:
        if self.fewshot_as_multiturn and self.chat_template == "none":
            raise ValueError("fewshot_as_multiturn needs a chat template (chat_template is none)")
        return self


class ModelSpec(PromptFormatFields):
    """The base model: a local folder or a Hugging Face model id."""

    path: str = Field(description="Local folder (relative to the config file) or hub model id.")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit).")
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field(
        "float32", description="Weights and compute dtype. `auto`: bfloat16 where the hardware computes it "
        "faster (a GPU with bf16, a CPU with AMX), float32 elsewhere; the log and the report say which. A pinned "
        "bfloat16 on a CPU that computes it slowly runs as asked, with the measured slowdown in a warning.")
    trust_remote_code: bool = Field(
        False, description="Run Python code shipped with the checkpoint. Off unless you trust it.")
    allow_pickle: bool = Field(
        False, description="Load pickle weights (*.bin, *.pt) where there are no safetensors. Off unless "
        "you trust them: unpickling can run code.")
    served: str | None = Field(None, description="eval.backend openai: the model's name on the server "
                               "(e.g. a vLLM --lora-modules name for an adapter); its local folder gives "
                               "the tokenizer and the weights' fingerprint.")
    serving_hourly_price: float | None = Field(
        None, ge=0, description="Price of an hour of the machine that serves this base and its fine-tunes "
        "(default: roi.serving_hourly_price): a larger base may need a larger machine.")


class CandidateSpec(PromptFormatFields):
    """A fine-tuned candidate: a LoRA adapter on the base, or a fully fine-tuned model."""

    name: str = Field(description="Short name used in reports and gate ids, e.g. lora-v2.")
    adapter: str | None = Field(None, description="LoRA adapter folder (peft, safetensors).")
    path: str | None = Field(None, description="Fully fine-tuned model folder or hub id.")
    revision: str | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False
    allow_different_tokenizer: bool = Field(
        False, description="Compare a full model whose tokenizer differs from the base's (its "
        "log-likelihoods are over other tokens: not comparable per item).")
    served: str | None = Field(None, description="eval.backend openai: the model's name on the server "
                               "(e.g. a vLLM --lora-modules name for an adapter); its local folder gives "
                               "the tokenizer and the weights' fingerprint.")
    training_cost: float | None = Field(
        None, ge=0, description="What fine-tuning it cost (roi.currency), where no train_manifest.json "
        "beside it says how long it trained: the ROI and the quality-cost frontier need it.")

    @model_validator(mode="after")
    def _one_source(self) -> CandidateSpec:
        if (self.adapter is None) == (self.path is None):
            raise ValueError("give exactly one of `adapter` (LoRA on the base) or `path` (full model)")
        return self

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if v == "base" or not v or any(c in v for c in "/\\:[]"):
            raise ValueError("must be non-empty, not 'base', and free of / \\ : [ ]")
        return v


class BaseSpec(ModelSpec):
    """Another base of the comparison (`bases:`), with its own fine-tunes: each is paired with its own
    base as the first base's candidates are with it, and every model is placed on one quality-cost
    frontier beside the others."""

    name: str = Field(description="Short name of the base in reports, e.g. small; also what `prompting` "
                      "arms name in `of:` to prompt it.")
    candidates: list[CandidateSpec] = Field(default_factory=list, description="Fine-tunes of this base "
                                            "(adapters trained on it, or full models from it).")

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        return CandidateSpec._name_ok(v)


class TaskVariantSpec(Spec):
    """Another lm-eval task over a suite task's documents (a chain-of-thought generation variant with
    an answer-extraction filter, say), scored by its own metric and filter, paired with the suite
    task document by document."""

    task: str = Field(description="lm-eval task name (from the suite's task folders or lm-eval).")
    metric: str = Field(description="Its per-item metric on the suite task's scale, e.g. exact_match.")
    filter: str = Field("none", description="lm-eval filter whose output the metric scores.")


class PromptingSpec(PromptFormatFields):
    """A way of prompting a model without (more) fine-tuning: zero- or k-shot, a role or system
    prompt, chain-of-thought. An arm of the comparison beside the fine-tunes, scored on the whole
    suite and paired with the base document by document; the prompt format keys it does not set
    are those of the model it prompts."""

    name: str = Field(description="Short name used in reports, e.g. base-3shot.")
    of: str = Field("base", description="The model prompted: base (default), another base's name (`bases`) "
                    "or a candidate's name.")
    num_fewshot: int | dict[str, int] | None = Field(
        None, description="Examples per prompt: a number for every task, or suite task -> number for some "
        "(the others keep their own, as in the suite).")
    variants: dict[str, TaskVariantSpec] = Field(
        default_factory=dict, description="Suite task -> another task over its documents that this arm "
        "is scored on instead (e.g. a chain-of-thought generation task with an answer filter).")

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        return CandidateSpec._name_ok(v)

    @field_validator("num_fewshot")
    @classmethod
    def _shots_ok(cls, v: int | dict[str, int] | None) -> int | dict[str, int] | None:
        if any(k < 0 for k in ([] if v is None else [v] if isinstance(v, int) else v.values())):
            raise ValueError("examples per prompt cannot be negative")
        return v

    def shots(self, task: str) -> int | None:
        """Examples per prompt on a suite task (None: the task's own)."""
        return self.num_fewshot.get(task) if isinstance(self.num_fewshot, dict) else self.num_fewshot


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


class EndpointSpec(Spec):
    """An OpenAI-compatible server that serves the base and its candidates (eval.backend openai)."""

    base_url: str = Field(description="The server's /v1 root, e.g. http://127.0.0.1:8000/v1.")
    api_key_env: str | None = Field(None, description="Environment variable holding the API key (the key "
                                    "itself is never written to the config, the store or the report).")
    concurrency: int = Field(1, ge=1, description="Requests in flight at once.")
    batch_size: int = Field(8, ge=1, description="Prompts per completions request.")
    timeout_s: float = Field(300, gt=0, description="Seconds to wait for one answer.")
    max_retries: int = Field(5, ge=1, description="Attempts per request (exponential backoff between them: "
                             "429 and 5xx answers are retried).")


class EvalSpec(Spec):
    """How to run the evaluation."""

    backend: Literal["hf", "vllm", "openai"] = Field(
        "hf", description="hf: transformers + peft (CPU or GPU); vllm: one vLLM engine per base serving it and "
        "its LoRA adapters; openai: the models as served by an OpenAI-compatible server (eval.endpoint).")
    vllm: VLLMOptions = Field(default_factory=VLLMOptions, description="Settings of the vllm backend.")
    endpoint: EndpointSpec | None = Field(None, description="The server of the openai backend.")
    device: str = Field("cpu", description="torch device for the hf backend: cpu, cuda, cuda:1.")
    batch_size: int = Field(32, ge=1, description="Requests per forward pass.")
    limit: int | None = Field(None, ge=1, description="Score only the first N items per task.")
    max_length: int | None = Field(None, ge=8, description="Tokens of context per request (default: the "
                                   "model's own, from its config); longer contexts keep their end.")


class StatsSpec(Spec):
    """Settings of the paired statistics."""

    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Two-sided interval level.")
    resamples: int = Field(2000, ge=200, description="Bootstrap resamples.")
    seed: int = Field(0, description="Seed of the bootstrap's random generator.")


class DataSpec(Spec):
    """Local files to read a task's documents from instead of the hub."""

    format: str = Field(description="How the files are laid out: arc_jsonl, hellaswag_txt, winogrande_csv, "
                                    "mmlu_csv, boolq_jsonl, piqa_jsonl, gsm8k_jsonl, crows_pairs_csv, bbq, "
                                    "winobias_txt, stereoset_csv, or jsonl (already in the task's schema).")
    path: str = Field(description="File or folder, relative to the suite file.")


class TaskSpec(Spec):
    """One lm-eval task of a suite, with the role it plays and the metric that decides."""

    task: str = Field(description="lm-eval task name (from the suite's task folders or lm-eval).")
    role: Role
    metric: str = Field(description="Primary per-item metric, e.g. acc or bias_score.")
    extra_metrics: list[str] = Field(default_factory=list, description="More per-item metrics to report "
                                     "with paired intervals (not gated), e.g. BBQ's acc beside its bias score.")
    filter: str = Field("none", description="lm-eval filter whose output the metric scores.")
    cluster: str | None = Field(
        None, description="Document field whose items are correlated (template, passage): "
                          "intervals and tests then use cluster-robust standard errors.")
    category: str | None = Field(
        None, description="Document field to break results down by (e.g. a bias category).")
    subset: int | None = Field(
        None, ge=1, description="Score a fixed random subset of this many items (per lm-eval task) "
                                "instead of all: CI-sized runs of large benchmarks.")
    subset_seed: int = Field(0, description="Seed of the subset's draw.")
    data: DataSpec | None = Field(None, description="Read the documents from local files.")
    overrides: dict[str, Any] = Field(default_factory=dict, description="lm-eval task config keys to "
                                      "override, e.g. {generation_kwargs: {max_gen_toks: 64}}.")


class SummarySpec(Spec):
    """A named average of several suite entries of one role, e.g. the forgetting average of
    Biderman et al. (2024) over HellaSwag, ARC-Challenge and WinoGrande."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    tasks: list[str] = Field(min_length=2, description="Suite entries averaged, each weighing the same.")


class SuiteSpec(Spec):
    """A set of tasks with roles, loaded from a suite YAML file."""

    name: str
    description: str = ""
    include: list[str] = Field(default_factory=list, description="Other suite files whose tasks and "
                               "summaries this suite adds (relative to this file), e.g. forgetting.yaml.")
    task_dirs: list[str] = Field(
        default_factory=lambda: ["tasks"],
        description="Folders with lm-eval task YAML, relative to the suite file.")
    tasks: list[TaskSpec] = Field(default_factory=list)
    summaries: list[SummarySpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> SuiteSpec:
        if not self.tasks and not self.include:
            raise ValueError("a suite needs `tasks` (or `include` of another suite)")
        _refuse_duplicates("task listed twice", [t.task for t in self.tasks])
        _refuse_duplicates("summary listed twice", [s.name for s in self.summaries])
        return self

    def default_target(self) -> str | None:
        """The task read when none is named (ROI, monitor): the suite's first target task; None without one."""
        return next((t.task for t in self.tasks if t.role == "target"), None)


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
    currency: str = "USD"

    @property
    def saved_minutes(self) -> float:
        return self.human_minutes_per_item if self.minutes_saved_per_correct is None \
            else self.minutes_saved_per_correct


class JudgeSpec(Spec):
    """A pairwise judge of generated text: a model shown the task's input, the reference and two
    answers, asked which is better. Every pair is judged in both orders; the verdict is read from the
    judge's log-probabilities of the three labels, not from sampled text."""

    model: ModelSpec = Field(description="The judge: any model the harness loads (a folder or hub id), "
                             "with its own prompt format keys.")
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

    @field_validator("labels")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != 3 or not all(x.strip() for x in v):
            raise ValueError("three different, non-empty labels (answer A better, answer B better, tie)")
        return v


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
        _refuse_duplicates("candidate, prompting or base name used twice",
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
                "judge.model.served"] * (self.judge is not None and self.judge.model.served is None)
            if unnamed:
                raise ValueError(f"{', '.join(unnamed)}: backend openai scores each model by its name on the "
                                 "server; give it (e.g. served: my-adapter, as vLLM's --lora-modules names it)")
        elif self.eval.endpoint is not None:
            raise ValueError(f"eval.endpoint: set, but eval.backend is {self.eval.backend}; use backend: openai")
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


class TrainSpec(Spec):
    """The LoRA trainer's settings (`harness train`; its options are these fields)."""

    # What the adapter a run writes depends on, declared once: a resumed run, a sweep's reuse of an
    # adapter and the demo build's cache all compare `adapter_identity`. RUN_ONLY settings say where
    # things go or how the work is split (grad_accum: the same step up to float rounding); INPUTS
    # are files, told apart by content (or the base by its folder), not by their paths.
    RUN_ONLY: ClassVar[frozenset[str]] = frozenset(
        {"out", "checkpoint_every", "eval_every", "eval_config", "grad_accum", "strategy"})
    INPUTS: ClassVar[tuple[str, ...]] = ("base", "data", "replay")

    base: str = Field(description="Base model folder.")
    data: str = Field(description="JSONL: {prompt, completion} or a chat record {messages: [...]} per line.")
    out: str = Field(description="Folder to write the adapter and train_manifest.json to.")
    replay: str | None = Field(None, description="JSONL of general data mixed in against forgetting.")
    replay_ratio: float = Field(0.0, ge=0.0, lt=1.0, description="Share of each batch from replay.")
    steps: int = Field(800, ge=1, description="Optimizer steps.")
    batch_size: int = Field(32, ge=1, description="Records per optimizer step, over all processes: the same "
                            "training on 1 process or 8, with or without gradient accumulation.")
    grad_accum: int = Field(1, ge=1, description="Micro-batches per process per step (less memory, same step).")
    lr: float = Field(2e-3, gt=0, description="Peak learning rate (AdamW), constant after warmup.")
    warmup_steps: int = Field(20, ge=0, description="Steps of linear learning-rate warmup.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    lora_r: int = Field(16, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling numerator (the update is scaled by alpha / r).")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on LoRA's input.")
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
                                      description="Modules that get LoRA weights.")
    max_length: int = Field(256, ge=8, description="Longest example in tokens; longer is an error.")
    seed: int = Field(0, description="Seed of the adapter's initialisation, the batches and dropout.")
    chat_template: str | None = Field(None, description="Jinja chat template file for chat records, where "
                                      "the base's tokenizer has none.")
    precision: Literal["auto", "no", "bf16", "fp16"] = Field(
        "auto", description="Mixed precision: auto = bf16 where the hardware computes it faster (a GPU with "
        "bf16, a CPU with AMX), else none (float32), as the scoring's `dtype: auto`.")
    strategy: Literal["ddp", "fsdp"] = Field(
        "ddp", description="How several processes (accelerate launch, torchrun) share the work: ddp "
        "replicates the model, fsdp shards it (large bases; GPUs only).")
    checkpoint_every: int = Field(0, ge=0, description="Write a resumable checkpoint every N steps, to "
                                  "OUT/checkpoints/step-N (0: never).")
    eval_every: int = Field(0, ge=0, description="Evaluate a checkpoint every N steps on eval_config's suite.")
    eval_config: str | None = Field(None, description="Harness config (base, suite, store) for eval_every.")

    @model_validator(mode="after")
    def _replay_pair(self) -> TrainSpec:
        if self.replay_ratio > 0 and self.replay is None:
            raise ValueError("replay_ratio > 0 needs a replay file")
        if self.eval_every and not self.eval_config:
            raise ValueError("eval_every needs eval_config (a harness config naming the base and suite)")
        return self

    def adapter_identity(self, inputs: dict[str, str | None]) -> dict[str, Any]:
        """What makes the adapter of this run what it is: every setting but RUN_ONLY, and the INPUTS
        as `inputs` gives them (data files by content hash; the base by folder, or what the caller
        knows it by). Two runs with equal identities write the same adapter."""
        return {**self.model_dump(exclude=self.RUN_ONLY | set(self.INPUTS)),
                **{name: inputs[name] for name in self.INPUTS}}


# --------------------------------------------------------------------------- loading

T = TypeVar("T", bound=Spec)


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def read_yaml(path: Path) -> Any:
    """Parse a YAML file; a missing file, a syntax error or a key given twice names the file and line."""
    return load_yaml_file(path)


def parse_spec(cls: type[T], data: Any, source: str) -> T:
    """Validate `data` as `cls`; every problem becomes `source: key.path: message`."""
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: expected a mapping at the top level, got {type(data).__name__}"])
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check the spelling; see harness/config.py for the keys)"
            problems.append(f"{source}: {_key_path(err['loc'])}: {msg}")
        raise ConfigError(problems) from None


def _is_local(ref: str) -> bool:
    return ref.startswith((".", "/", "~")) or Path(ref).exists()


def resolve_ref(ref: str, base_dir: Path) -> str:
    """A local path becomes absolute (relative to `base_dir`); a hub id stays as it is."""
    if ref.startswith(("/", "~")):
        return str(Path(ref).expanduser())
    if _is_local(ref) or (base_dir / ref).exists():
        return str((base_dir / ref).resolve())
    return ref


def load_config(path: str | Path, candidates: bool = True) -> HarnessSpec:
    """Load and validate a config file; paths in the result are absolute. With `candidates=False`
    the file's candidates, prompting arms and sweeps are left out (training fills in its own
    adapters: those named in the file need not exist yet)."""
    path = Path(path)
    raw = read_yaml(path)
    if not candidates and isinstance(raw, dict):
        raw = {k: v for k, v in raw.items() if k not in ("candidates", "sweeps", "prompting", "bases")}
    spec = parse_spec(HarnessSpec, raw, str(path))
    here = path.resolve().parent
    problems = []

    def local(ref: str, key: str, what: str) -> str:
        resolved = resolve_ref(ref, here)
        if _is_local(ref) and not Path(resolved).exists():
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
        else:
            c = c.model_copy(update={"path": local(c.path or "", f"{key}.path", "model folder")})
        c = c.model_copy(update={"chat_template": template(c, key)})
        source = Path(c.adapter or c.path or "")
        if spec.roi is not None and c.training_cost is None and source.is_dir() \
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
    judge = spec.judge
    if judge is not None:
        rubric = (here / Path(judge.rubric).expanduser()).resolve()
        if not rubric.is_file():
            problems.append(f"{path}: judge.rubric: rubric file {rubric} does not exist")
        labels = None
        if judge.human_labels is not None:
            labels = str((here / Path(judge.human_labels).expanduser()).resolve())
            if not Path(labels).is_file():
                problems.append(f"{path}: judge.human_labels: file {labels} does not exist")
        model = judge.model.model_copy(update={"path": local(judge.model.path, "judge.model.path", "model folder"),
                                               "chat_template": template(judge.model, "judge.model")})
        judge = judge.model_copy(update={"rubric": str(rubric), "human_labels": labels, "model": model})
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
    store = str((here / spec.store).resolve())
    report_dir = str((here / (spec.report_dir or f"reports/{spec.name}")).resolve())
    if problems:
        raise ConfigError(problems)
    return spec.model_copy(update={"base": base, "candidates": candidates, "bases": bases, "prompting": prompting,
                                   "judge": judge,
                                   "suite": suite, "store": store,
                                   "report_dir": report_dir, "task_data": task_data, "sweeps": sweeps})


def load_suite(path: str | Path, _seen: tuple[Path, ...] = ()) -> SuiteSpec:
    """Load and validate a suite file with the suites it includes; `task_dirs` and data paths in
    the result are absolute."""
    path = Path(path)
    if path.resolve() in _seen:
        raise ConfigError([f"{path}: include: the suite includes itself (through {_seen[-1]})"])
    spec = parse_spec(SuiteSpec, read_yaml(path), str(path))
    here = path.resolve().parent
    dirs = [str((here / d).resolve()) for d in spec.task_dirs]
    if "task_dirs" not in spec.model_fields_set:  # the default folder is optional
        dirs = [d for d in dirs if Path(d).is_dir()]
    missing = [f"{path}: task_dirs: folder {d} does not exist" for d in dirs if not Path(d).is_dir()]
    included_tasks, summaries = [], []
    for i, inc in enumerate(spec.include):
        inc_path = here / inc
        if not inc_path.is_file():
            missing.append(f"{path}: include[{i}]: suite file {inc_path.resolve()} does not exist")
            continue
        sub = load_suite(inc_path, (*_seen, path.resolve()))
        dirs += [d for d in sub.task_dirs if d not in dirs]
        included_tasks += sub.tasks
        summaries += sub.summaries
    tasks = list(included_tasks)
    for i, t in enumerate(spec.tasks):
        if t.data is not None:
            data_path = (here / t.data.path).resolve()
            if not data_path.exists():
                missing.append(f"{path}: tasks[{i}].data.path: {data_path} does not exist")
            t = t.model_copy(update={"data": t.data.model_copy(update={"path": str(data_path)})})
        tasks.append(t)
    summaries += spec.summaries
    names = [t.task for t in tasks]
    missing += [f"{path}: task '{n}' is listed twice (here and in an included suite); keep one"
                for n in sorted({n for n in names if names.count(n) > 1})]
    roles = {t.task: t.role for t in tasks}
    for sm in summaries:
        unknown = [t for t in sm.tasks if t not in roles]
        if unknown:
            missing.append(f"{path}: summaries: '{sm.name}' names {', '.join(unknown)}, not tasks of the suite")
        elif len({roles[t] for t in sm.tasks}) > 1:
            missing.append(f"{path}: summaries: '{sm.name}' mixes roles "
                           f"({', '.join(sorted({roles[t] for t in sm.tasks}))}); average tasks of one role")
    snames = [sm.name for sm in summaries]
    missing += [f"{path}: summary '{n}' is defined twice (here and in an included suite)"
                for n in sorted({n for n in snames if snames.count(n) > 1})]
    if missing:
        raise ConfigError(missing)
    return spec.model_copy(update={"task_dirs": dirs, "tasks": tasks, "summaries": summaries, "include": []})

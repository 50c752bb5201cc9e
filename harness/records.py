"""What the harness produces from a comparison: immutable, versioned records.

They are the parts of `harness.comparison.ComparisonResult` (comparison.json, beside each report);
everything downstream of the store (gates, report, ROI) reads only these. Every figure that has an
interval is an `Estimate`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

BASE = "base"  # the base model's label; every other label is a candidate's name
TRAIN_MANIFEST = "train_manifest.json"  # what the trainer did, beside the adapter it wrote
MAX_FLIPS_PER_TASK = 50  # flipped examples kept per (candidate, task, direction)
Status = Literal["pass", "fail", "underpowered"]
# what an arm of a comparison is: one of the bases as it is, a prompting arm of a model, or a
# fine-tune (a candidate of the config): CandidateResult.kind
ArmKind = Literal["base", "prompting", "fine-tune"]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Estimate(Record):
    """A figure with its interval: a score, a paired difference (candidate - base), or a figure
    whose range follows the interval of the quality it depends on (ROI)."""

    estimate: float = Field(description="The point estimate.")
    low: float = Field(description="Lower end of the interval.")
    high: float = Field(description="Upper end of the interval.")

    def map(self, f: Callable[[float], float]) -> Estimate:
        """`f` of the estimate and of each end (an increasing `f` keeps low <= high)."""
        return Estimate(estimate=f(self.estimate), low=f(self.low), high=f(self.high))


SERVER_TEMPLATE = "server"  # a prompt format's source where a chat API's server applies its own template


class PromptFormatRecord(Record):
    """How prompts were written, as a file keeps it (the template by source and hash, never its
    text): in comparison.json, how a model was evaluated (`PromptFormat.record`); in a trainer
    manifest, how its training records were rendered (harness.train.data.prompt_format)."""

    description: str = Field("plain text", description="One line: template, its source and hash, system prompt.")
    template_source: str = Field("none", description="'none', 'tokenizer', 'auto: none in the tokenizer', "
                                                     "or the template file.")
    template_sha256: str | None = Field(None, description="sha256 of the template's text; None: plain text.")
    system_prompts: list[str | None] = Field(
        default_factory=list, description="The distinct system messages of the prompts (None: prompts without "
        "one, so the template's default, if any): an evaluated model's one; at most 5 of training records. "
        "Empty for plain text without one (prompt/completion training records).")
    fewshot_as_multiturn: bool = False

    @property
    def chat(self) -> bool:
        """Prompts rendered with a chat template (here, or by the server)."""
        return self.template_sha256 is not None or self.template_source == SERVER_TEMPLATE

    @classmethod
    def of(cls, source: str, template_sha256: str | None, system_prompts: list[str | None],
           fewshot_as_multiturn: bool = False) -> PromptFormatRecord:
        """The record, its one-line description written from its fields."""
        if source == SERVER_TEMPLATE:
            text = "chat messages, rendered by the server's own template (/v1/chat/completions)"
        elif template_sha256 is None:
            text = "plain text" + (" (auto: the tokenizer has no chat template)" if source.startswith("auto") else "")
        else:
            where = "the tokenizer's" if source == "tokenizer" else Path(source).name
            text = f"chat template ({where}, sha256 {template_sha256[:12]})"
            if fewshot_as_multiturn:
                text += ", few-shot as turns"
        shown = [p if len(p) <= 60 else p[:57] + "..." for p in system_prompts if p is not None]
        if shown:
            text += f", system prompt{'s' if len(shown) > 1 else ''} " + ", ".join(map(repr, shown))
        return cls(description=text, template_source=source, template_sha256=template_sha256,
                   system_prompts=list(system_prompts), fewshot_as_multiturn=fewshot_as_multiturn)


@dataclass(frozen=True)
class PromptFormat:
    """One model's prompt format, resolved (harness/sources/prompts.py finds and checks it); the
    backends render chat prompts with its template."""

    template: str | None = None  # Jinja text; None: plain-text prompts
    source: str = "none"  # "none", "tokenizer" (found by auto), "auto: none in the tokenizer", or a file
    system_prompt: str | None = None
    fewshot_as_multiturn: bool = False
    server: bool = False  # chat messages sent to a server's chat API, rendered there with its own template

    @property
    def plain(self) -> bool:
        """Prompts exactly as a harness without prompt formats wrote them (run keys unchanged)."""
        return self.template is None and self.system_prompt is None and not self.server

    @property
    def chat(self) -> bool:
        """Prompts as chat messages (a template here, or the server's)."""
        return self.template is not None or self.server

    @property
    def template_sha256(self) -> str | None:
        return None if self.template is None else hashlib.sha256(self.template.encode()).hexdigest()

    def identity(self) -> str:
        """What the prompts depend on: the template's text, the system prompt, the few-shot layout."""
        # the server's template joins the identity only where it is used: keys of other formats unchanged
        return hashlib.sha256(json.dumps([self.template, self.system_prompt, self.fewshot_as_multiturn]
                                         + ["server"] * self.server).encode()).hexdigest()

    def describe(self) -> str:
        """One line for logs and the report."""
        return self.record().description

    def record(self) -> PromptFormatRecord:
        """What the report keeps of it (the template by source and hash)."""
        # plain text has no system message to list, as prompt/completion training records have none
        return PromptFormatRecord.of(self.source, self.template_sha256, [] if self.plain else [self.system_prompt],
                                     self.fewshot_as_multiturn)


class ModelRecord(Record):
    label: str = Field(description="'base' or the candidate's name.")
    source: str = Field(description="Model folder, hub id, or adapter folder.")
    fingerprint: str
    training: dict | None = Field(None, description="From the trainer's manifest: steps, tokens, wall_s, "
                                                    "final loss; None when there is none.")
    prompt_format: PromptFormatRecord = Field(default_factory=PromptFormatRecord,
                                              description="How its prompts were written.")
    warnings: list[str] = Field(default_factory=list, description="What the reader must know about how it "
                                "was evaluated, e.g. in another prompt format than it was trained in.")
    prompt_examples: dict[str, str] = Field(
        default_factory=dict, description="Task -> the prompt of its first scored item, as the model saw it "
        "(kept when some model of the comparison is not prompted in plain text).")
    prompting: str | None = Field(None, description="A prompting arm: which model it prompts and how, in "
                                  "words (e.g. 'base, 3-shot'); None for a model itself.")
    base: str = Field(BASE, description="The base it is (a base: its own label), a fine-tune of, or prompts.")
    is_base: bool = Field(False, description="One of the comparison's bases.")
    scoring: dict[str, str] = Field(default_factory=dict, description="Task -> how its runs were scored, in "
                                    "words (log-likelihood, letter choice, generated text; on which backend or API).")
    served: str | None = Field(None, description="A served model: its name on the server, the API that scored it "
                               "and what the server offers for it; None for a model loaded here.")


class RunInfo(Record):
    """One stored evaluation behind the comparison (measured when it ran)."""

    model: str
    task: str
    n_items: int
    n_requests: int
    wall_s: float
    device: str
    created_at: str
    scoring: str = Field("", description="How it was scored, in words.")
    input_tokens: int | None = Field(None, description="A served model: prompt tokens its answers counted.")
    output_tokens: int | None = Field(None, description="A served model: generated tokens its answers counted.")
    key: str = Field("", description="Where the store keeps it (store.RunKey.stem: the harness version, the "
                     "model's fingerprint, the task and its content hash); empty in comparisons written before.")


class CategoryResult(Record):
    """Base and candidate on the items of one category of a task (e.g. one bias category)."""

    category: str
    n: int
    base: Estimate
    candidate: Estimate
    delta: Estimate = Field(description="Paired candidate - base, with the task's method.")


class MetricDelta(Record):
    """A task's secondary metric (reported, not gated): levels and the paired delta."""

    metric: str
    binary: bool
    base: Estimate
    candidate: Estimate
    delta: Estimate


class TaskResult(Record):
    """Base versus one candidate on one task's primary metric."""

    task: str
    role: str
    metric: str
    n: int = Field(description="Paired items.")
    binary: bool = Field(description="Metric takes only the values 0 and 1 (e.g. acc).")
    base: Estimate = Field(description="The base's score: the mean of its per-item scores, with a Wilson "
                                       "interval (0/1 metrics) or a t interval.")
    candidate: Estimate = Field(description="The candidate's score, likewise (what a floor gate reads).")
    delta: Estimate = Field(description="Paired candidate - base, in the metric's unit, with the interval "
                                        "`interval` names.")
    interval: str = Field(description="How the delta's interval was computed.")
    test: str = Field(description="Test behind p_value (null: no difference).")
    p_value: float
    p_holm: float = Field(description="p_value after Holm's correction across the tasks of the role.")
    sd_item: float = Field(description="Per-item standard deviation of the difference, for power.")
    design_effect: float = Field(1.0, description="Variance inflation from clustered items.")
    n_clusters: int | None = None
    mde: float = Field(description="Smallest true delta this probe detects with power 0.8.")
    to_wrong: int = Field(0, description="Binary metrics: items right for base, wrong for candidate.")
    to_right: int = Field(0, description="Binary metrics: items wrong for base, right for candidate.")
    categories: list[CategoryResult] = Field(default_factory=list, description="Per category, when the "
                                                                               "suite names a category field.")
    extra: list[MetricDelta] = Field(default_factory=list, description="The suite entry's extra_metrics.")
    flags: list[str] = Field(default_factory=list, description="Guards that fired on this task: what makes its "
                             "scores suspect (every request scored exactly as the base's; both models at chance).")
    notes: list[str] = Field(default_factory=list, description="What is worth a line but suspect of nothing (two "
                             "bases both at chance on their target task, before fine-tuning).")


class RoleResult(Record):
    """Mean of the role's task deltas, with an interval that resamples every task's items."""

    role: str
    tasks: list[str]
    n: int = Field(description="Paired items over all the role's tasks.")
    delta: Estimate = Field(description="The mean of the task deltas, with a bootstrap interval.")
    se: float = Field(description="Standard error of the role delta (tasks independent).")
    p_value: float = Field(description="Two-sided paired bootstrap p-value of the role delta.")
    mde: float = Field(description="Smallest true role delta detected with power 0.8.")


class SummaryResult(RoleResult):
    """A suite summary: the mean delta of the entries it names (one role), with its interval."""

    name: str
    description: str = ""


class GroupResult(SummaryResult):
    """A suite entry that lm-eval expands into several tasks (mmlu), its items pooled as the role pools them."""

    candidate: Estimate = Field(description="The candidate's score over the pooled items (the size-weighted "
                                            "mean), with its interval: what a floor gate on the entry reads.")


class FlipRecord(Record):
    """An item whose binary metric changed between base and candidate; on generated text scored on a
    continuous scale (ROUGE-L), an item whose score moved, the largest moves first."""

    task: str
    doc_id: int
    direction: str = Field(description="'to_wrong' (regression) or 'to_right' (gain); on a continuous "
                           "metric of generated text, 'lower' or 'higher'.")
    prompt: str
    target: str
    base_response: str
    candidate_response: str


class JudgedExample(Record):
    """One judged item: what the judge saw of it, and its two verdicts in the candidate's terms."""

    doc_id: int
    input: str
    reference: str
    base_response: str
    candidate_response: str
    base_first: str = Field(description="win, tie or loss of the candidate with the base's answer shown first.")
    candidate_first: str = Field(description="The same with the candidate's answer shown first.")


class GradeResult(Record):
    """Pointwise grades (harness/grading.py): each answer of a task graded alone against its reference, 1
    for correct, 0.5 for partly correct, 0 for incorrect; the candidate's paired with its base's per item."""

    n: int
    base: Estimate = Field(description="The base's mean grade.")
    candidate: Estimate = Field(description="The candidate's mean grade.")
    delta: Estimate = Field(description="Candidate minus base, paired interval.")
    p_value: float
    counts: dict[str, list[int]] = Field(default_factory=dict, description="base and candidate: how many answers "
                                         "were graded correct, partly, incorrect.")


class JudgedResult(Record):
    """A candidate's generated answers against the base's on one task, judged pairwise in both orders
    (harness/judge.py): an item scores 1 for a win, 0.5 for a tie, 0 for a loss, averaged over the
    two orders."""

    task: str
    n: int
    judge: str = Field("", description="The judge that gave the verdicts (judge.fallbacks: the one chosen).")
    win_rate: Estimate = Field(description="Mean item score (ties as half) with its paired interval.")
    p_value: float = Field(description="Test of a win rate of 0.5 (no preference).")
    mde: float = Field(description="The smallest departure from 0.5 this sample sees with power 0.8.")
    wins: int = Field(description="Items the candidate wins on balance (score above 0.5).")
    ties: int
    losses: int
    calibrated: bool = Field(True, description="Verdicts read after the judge's label priors were subtracted "
                             "(judge.calibrate).")
    position_consistency: float = Field(description="Share of items whose two orders give the same verdict "
                                        "(as read: calibrated or not).")
    raw_position_consistency: float = Field(0.0, description="The same for the judge's raw picks.")
    decisive_rate: float = Field(description="Share of verdicts that pick an answer (not a tie): a judge that "
                                 "always ties is consistent in position and sees nothing.")
    min_position_consistency: float = Field(0.0, description="The config's minimum (judge.min_position_consistency).")
    human_n: int = Field(0, description="Items people labelled (judge.human_labels).")
    human_kappa: Estimate | None = Field(None, description="Cohen's kappa of the judge's item verdicts (candidate, "
                                         "base or tie on balance) with people's, with a bootstrap interval.")
    min_human_agreement: float = Field(0.4, description="The config's minimum kappa (judge.min_human_agreement).")
    first_position_rate: float = Field(description="Share of the judge's raw picks of an answer (not a tie) "
                                       "that went to the answer shown first; 0.5 is no position bias.")
    longer_rate: float | None = Field(None, description="Share of the picks between answers of different "
                                      "length that went to the longer; None when none differ.")
    judge_s: float = Field(description="Seconds the judge spent on these pairs.")
    judge_requests: int
    judge_tokens: int = Field(0, description="Tokens the judge read (its prompts, and the label).")
    judge_tokens_fed: int | None = Field(None, description="Tokens the judge's model was fed for them: each "
                                         "beginning its prompts share scored once (the hf backend); None "
                                         "where not counted.")
    length_controlled: Estimate | None = Field(
        None, description="The win rate with the answers' length difference controlled for (AlpacaEval 2's "
        "regression, harness.stats.length_controlled_win_rate); None where no lengths differ.")
    grades: GradeResult | None = Field(None, description="Each side's answers graded alone against the "
                                       "reference (judge.grade_rubric), paired per item.")
    read_from_text: int = Field(0, description="Verdicts a served judge gave without log-probabilities, read "
                                "from its reply's text (uncalibrated).")
    unread: int = Field(0, description="Replies that named none of the labels (counted as ties).")
    examples: list[JudgedExample] = Field(default_factory=list)

    @property
    def length_gap(self) -> float | None:
        """How far the length-controlled win rate is from the raw one; beyond LENGTH_GAP, the report and
        `compare` warn that the judge's verdicts follow the answers' length."""
        lc = self.length_controlled
        return None if lc is None else lc.estimate - self.win_rate.estimate


LENGTH_GAP = 0.10  # a length-controlled win rate this far from the raw one is warned of


class JudgeValidation(Record):
    """The judge measured on labelled pairs it never judges in the comparison (judge.validation), each
    judged in both orders and read as the comparison's verdicts are."""

    n: int = Field(description="Labelled pairs.")
    accuracy: float = Field(description="Share of pairs whose verdict on balance (both orders) is the label.")
    kappa: Estimate = Field(description="Cohen's kappa of those verdicts with the labels, bootstrap interval.")
    position_consistency: float = Field(description="Share of pairs whose two orders give the same verdict.")
    first_position_rate: float = Field(description="Share of the raw picks of an answer that went to the "
                                       "answer shown first; 0.5 is no position bias.")
    min_kappa: float = Field(description="The config's judge.min_validation_kappa.")
    judge_s: float = 0.0
    judge: str = Field("", description="Which judge (judge.fallbacks: each is measured).")
    chosen: bool = Field(True, description="Whether this judge judged the comparison: the first of the judges "
                         "to pass its validation, or the config's judge where none did.")

    @property
    def passed(self) -> bool:
        """Whether its kappa reaches the minimum: its verdicts may pass a gate."""
        return self.kappa.estimate >= self.min_kappa


class CandidateResult(Record):
    candidate: str
    tasks: list[TaskResult]
    roles: list[RoleResult]
    flips: list[FlipRecord]
    summaries: list[SummaryResult] = Field(default_factory=list)
    groups: list[GroupResult] = Field(default_factory=list, description="Suite entries that lm-eval expands "
                                      "into several tasks (mmlu), their items pooled as the role pools them.")
    paired_by: Literal["prompt", "doc"] = Field(
        "prompt", description="prompt: base and candidate saw the same prompt for each item; doc: they were "
        "prompted in different formats, so items are paired by document.")
    kind: ArmKind = Field(
        "fine-tune", description="fine-tune: a candidate of the config; prompting: a prompting arm; base: "
        "another base of the config (`bases`) against the first.")
    reference: str = Field(BASE, description="What the deltas are against: its base (the first base, or the "
                           "one of `bases` it is a fine-tune of), or (in versus_prompting) the best prompting arm.")
    refused: dict[str, str] = Field(default_factory=dict, description="Task (or task:metric) -> why it is not "
                                    "paired: log-likelihood values over two different tokenizers' tokens.")
    judged: list[JudgedResult] = Field(default_factory=list, description="Tasks whose answers the config's "
                                       "judge compared with the base's.")
    flags: list[str] = Field(default_factory=list, description="Guards that fired on the candidate itself (an "
                             "adapter whose update is exactly zero; every request scored exactly as the base's).")

    def role(self, role: str) -> RoleResult | None:
        return next((r for r in self.roles if r.role == role), None)

    def role_deltas(self) -> dict[str, float]:
        """Role -> delta estimate: what the store's history keeps of a candidate."""
        return {r.role: r.delta.estimate for r in self.roles}


class GateVerdict(Record):
    """One gate's verdict for one candidate."""

    candidate: str
    gate: str = Field(description="Readable id: <target>::<rule>.")
    rule: str
    target: str = Field(description="Role or task name.")
    status: Status
    value: Estimate = Field(description="What the rule reads: the delta (candidate - base) with its interval, "
                                        "or for floor the candidate's score with its interval.")
    threshold: float = Field(description="The bound the interval is read against.")
    test: str
    p_value: float | None = None
    n: int
    mde: float | None = Field(None, description="Smallest true delta seen with power 0.8 at this n.")
    n_required: int | None = Field(None, description="Items that would resolve the margin (underpowered).")
    message: str
    flags: list[str] = Field(default_factory=list, description="Guards that fired on the candidate or on a task "
                             "the gate reads: its verdict stands on scores that may be wrong.")

    @property
    def test_id(self) -> str:
        return f"{self.candidate}::{self.gate}"


class AlternativeRecord(Record):
    """One way of doing the ROI task: a base prompted zero- or few-shot, a prompting arm, or a candidate."""

    name: str
    kind: Literal["zero-shot", "few-shot", "prompting", "candidate"] = Field(
        description="How it does the task: a base zero-shot (as it is) or few-shot (roi.fewshot), a prompting "
        "arm, or a candidate (a fine-tune: ArmKind's 'fine-tune').")
    base: str = Field(BASE, description="The base it is, prompts, or is a fine-tune of.")
    n: int
    accuracy: Estimate = Field(description="Share of items right, with a Wilson interval.")
    seconds_per_item: float = Field(description="Measured scoring time per item, model loaded.")
    train_s: float | None = Field(None, description="Candidates: training wall time (trainer manifest).")
    training_cost: float | None = Field(None, description="Candidates: what training cost, as the config gives "
                                        "it (else train_s at the training price).")
    eval_s: float = Field(0.0, description="Seconds this model spent scoring the whole suite (its stored runs).")
    judge_s: float = Field(0.0, description="Seconds the judge spent on its answers against the base's.")
    judge_tokens: int = Field(0, description="Tokens the judge read for them.")
    judge_cost: float | None = Field(None, description="What a served judge charged for them (its tokens at "
                                     "judge.endpoint.price_per_million_tokens); None: costed by its seconds.")
    evaluation_cost: float = Field(0.0, description="(eval_s + judge_s) at the serving price: what one "
                                   "comparison of this model costs.")
    serving_hourly_price: float | None = Field(None, description="Price of an hour of its serving machine (its "
                                               "base's serving_hourly_price; None: the ROI's).")
    cost_per_1000: float = Field(0.0, description="Serving cost of 1,000 items: seconds per item x 1,000 at "
                                 "the serving price, or, priced per token, 1,000 x token_cost_per_item.")
    input_tokens_per_item: float | None = Field(None, description="A served model: prompt tokens per item of the "
                                                "ROI task, as its answers' `usage` counted them.")
    output_tokens_per_item: float | None = Field(None, description="A served model: generated tokens per item.")
    token_cost_per_item: float | None = Field(None, description="A model priced per token (token_prices): what "
                                              "an item costs at those prices; None: costed by the hour.")
    eval_token_cost: float | None = Field(None, description="Priced per token: what its whole suite's tokens cost "
                                          "(its evaluation cost instead of its seconds).")
    parameters: int | None = Field(None, description="Parameters of the weights it runs (base + adapter), "
                                   "from the safetensors headers.")
    trainable_parameters: int | None = Field(None, description="Candidates: parameters its fine-tuning changed "
                                             "(the adapter's; a full model's all).")
    peak_memory_mb: float | None = Field(None, description="Highest peak memory of its stored runs (store."
                                         "RunManifest.peak_memory_mb); None when no run measured it.")
    forgetting: Estimate | None = Field(None, description="Its forgetting delta against its own base (role "
                                        "forgetting); None for a base and its few-shot baseline.")
    bias: Estimate | None = Field(None, description="Its bias change against its own base; None likewise.")


class FrontierStep(Record):
    """A point of the quality-cost frontier, and what it gains over the cheaper frontier point before it."""

    name: str
    cost_per_1000: float
    accuracy: Estimate
    versus: str | None = Field(None, description="The frontier point before it (cheaper); None for the first.")
    gain: Estimate | None = Field(None, description="Paired accuracy gain over `versus`, by document.")


class FrontierResult(Record):
    """Accuracy on the ROI task against serving cost per 1,000 items: the alternatives no other beats at
    the same or a lower cost (their estimates), cheapest first."""

    task: str
    steps: list[FrontierStep]

class Payback(Record):
    """Months until the training cost is earned back; None at an end where it never is."""

    best: float | None
    estimate: float | None
    worst: float | None


class RoiLine(Record):
    """What an alternative is worth against one baseline, per month, in the ROI's currency."""

    candidate: str = Field(description="The alternative valued: a candidate, or a base alternative vs human.")
    baseline: str = Field(description="'human' (a person does every item) or a base alternative.")
    quality: Estimate = Field(description="Candidate accuracy (vs human) or paired accuracy gain.")
    value_per_month: Estimate = Field(description="Person-time saved, valued at the hourly rate.")
    serving_cost_per_month: float = Field(description="Extra serving cost against the baseline.")
    net_per_month: Estimate
    hours_saved_per_month: Estimate
    training_cost: float | None = Field(description="One-off; None when no trainer manifest was found.")
    payback_months: Payback | None = Field(description="Training cost / net per month; None without a "
                                                       "training cost.")


class RoiResult(Record):
    task: str
    currency: str
    inputs: dict = Field(description="The config's ROI inputs, as used.")
    alternatives: list[AlternativeRecord]
    lines: list[RoiLine]
    sensitivity: list[dict] = Field(description="Net per month of each candidate against its best "
                                                "model baseline as the monthly volume varies.")
    frontier: FrontierResult | None = Field(None, description="The quality-cost frontier of the alternatives.")


class CurvePoint(Record):
    """One evaluated adapter along a training run (x = step) or a data-size sweep (x = records)."""

    x: int = Field(description="Training step, or training records in the sweep.")
    candidate: str = Field(description="The adapter's name in the comparison that scored it.")
    roles: dict[str, Estimate] = Field(description="Per role, the paired delta against the base and its interval.")
    gates_failed: int = Field(0, description="Gates of the evaluation config this adapter fails.")


class CurveRecord(Record):
    """Target gain and forgetting along training, or against the amount of training data."""

    kind: Literal["steps", "data_size"]
    name: str = Field(description="The candidate the curve led to (steps), or the sweep's name.")
    points: list[CurvePoint]
    best: int = Field(description="x of the best trade-off: the highest target gain + forgetting delta, "
                                  "the earliest of ties (harness.train.curve.best_x).")
    binary_roles: list[str] = Field(default_factory=list, description="Roles whose deltas are shares (pp).")


class ComparisonSummary(Record):
    """What the store's history keeps of a comparison besides its per-task scores (the `summary`
    column of its index): role deltas and gate verdicts, each under its own key, so that no
    candidate's name (a candidate may be called `gates`) collides with them."""

    candidates: dict[str, dict[str, float]] = Field(description="Candidate -> role -> delta.")
    gates: dict[str, Status] = Field(default_factory=dict, description="Gate (GateVerdict.test_id) -> status.")


class HistoryEntry(Record):
    """One recorded comparison of the same config name and suite (id 0: this one)."""

    id: int
    created_at: str
    candidates: dict[str, dict[str, float]] = Field(description="Candidate -> role -> delta.")

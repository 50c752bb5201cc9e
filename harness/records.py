"""What the harness produces from a comparison: immutable, versioned records.

`ComparisonResult` is written as comparison.json beside each report; everything downstream of
the store (gates, report, ROI) reads only these.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RESULT_FORMAT = 1
BASE = "base"  # the base model's label; every other label is a candidate's name
TRAIN_MANIFEST = "train_manifest.json"  # what the trainer did, beside the adapter it wrote
MAX_FLIPS_PER_TASK = 50  # flipped examples kept per (candidate, task, direction)
Status = Literal["pass", "fail", "underpowered"]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(Record):
    """A figure with the range that follows the interval of the quality it depends on."""

    estimate: float
    low: float
    high: float


class ModelRecord(Record):
    label: str = Field(description="'base' or the candidate's name.")
    source: str = Field(description="Model folder, hub id, or adapter folder.")
    fingerprint: str
    training: dict | None = Field(None, description="From the trainer's manifest: steps, tokens, wall_s, "
                                                    "final loss; None when there is none.")


class RunInfo(Record):
    """One stored evaluation behind the comparison (measured when it ran)."""

    model: str
    task: str
    n_items: int
    n_requests: int
    wall_s: float
    device: str
    created_at: str


class CategoryResult(Record):
    """Base and candidate on the items of one category of a task (e.g. one bias category)."""

    category: str
    n: int
    base: Range
    candidate: Range
    delta: Range = Field(description="Paired candidate - base, with the task's method.")


class MetricDelta(Record):
    """A task's secondary metric (reported, not gated): levels and the paired delta."""

    metric: str
    binary: bool
    base_score: float
    candidate_score: float
    delta: float
    ci_low: float
    ci_high: float


class TaskResult(Record):
    """Base versus one candidate on one task's primary metric."""

    task: str
    role: str
    metric: str
    n: int = Field(description="Paired items.")
    binary: bool = Field(description="Metric takes only the values 0 and 1 (e.g. acc).")
    base_score: float
    candidate_score: float
    delta: float = Field(description="candidate - base, in the metric's unit.")
    ci_low: float
    ci_high: float
    interval: str = Field(description="How the interval was computed.")
    test: str = Field(description="Test behind p_value (null: no difference).")
    p_value: float
    p_holm: float = Field(description="p_value after Holm's correction across the tasks of the role.")
    sd_item: float = Field(description="Per-item standard deviation of the difference, for power.")
    design_effect: float = Field(1.0, description="Variance inflation from clustered items.")
    n_clusters: int | None = None
    mde: float = Field(description="Smallest true delta this probe detects with power 0.8.")
    candidate_sd: float = Field(description="Standard deviation of the candidate's per-item scores.")
    to_wrong: int = Field(0, description="Binary metrics: items right for base, wrong for candidate.")
    to_right: int = Field(0, description="Binary metrics: items wrong for base, right for candidate.")
    categories: list[CategoryResult] = Field(default_factory=list, description="Per category, when the "
                                                                               "suite names a category field.")
    extra: list[MetricDelta] = Field(default_factory=list, description="The suite entry's extra_metrics.")


class RoleResult(Record):
    """Mean of the role's task deltas, with an interval that resamples every task's items."""

    role: str
    tasks: list[str]
    n: int = Field(description="Paired items over all the role's tasks.")
    delta: float
    ci_low: float
    ci_high: float
    se: float = Field(description="Standard error of the role delta (tasks independent).")
    p_value: float = Field(description="Two-sided paired bootstrap p-value of the role delta.")
    mde: float = Field(description="Smallest true role delta detected with power 0.8.")


class SummaryResult(RoleResult):
    """A suite summary: the mean delta of the entries it names (one role), with its interval."""

    name: str
    description: str = ""


class FlipRecord(Record):
    """An item whose binary metric changed between base and candidate."""

    task: str
    doc_id: int
    direction: str = Field(description="'to_wrong' (regression) or 'to_right' (gain).")
    prompt: str
    target: str
    base_response: str
    candidate_response: str


class CandidateResult(Record):
    candidate: str
    tasks: list[TaskResult]
    roles: list[RoleResult]
    flips: list[FlipRecord]
    summaries: list[SummaryResult] = Field(default_factory=list)
    groups: list[SummaryResult] = Field(default_factory=list, description="Suite entries that lm-eval expands "
                                        "into several tasks (mmlu), their items pooled as the role pools them.")

    def role(self, role: str) -> RoleResult | None:
        return next((r for r in self.roles if r.role == role), None)


class GateVerdict(Record):
    """One gate's verdict for one candidate."""

    candidate: str
    gate: str = Field(description="Readable id: <target>::<rule>.")
    rule: str
    target: str = Field(description="Role or task name.")
    status: Status
    estimate: float = Field(description="delta (candidate - base), or the candidate's score for floor.")
    ci_low: float
    ci_high: float
    threshold: float = Field(description="The bound the interval is read against.")
    test: str
    p_value: float | None = None
    n: int
    mde: float | None = Field(None, description="Smallest true delta seen with power 0.8 at this n.")
    n_required: int | None = Field(None, description="Items that would resolve the margin (underpowered).")
    message: str

    @property
    def test_id(self) -> str:
        return f"{self.candidate}::{self.gate}"


class AlternativeRecord(Record):
    """One way of doing the ROI task: the base prompted zero- or few-shot, or a candidate."""

    name: str
    kind: Literal["zero-shot", "few-shot", "candidate"]
    n: int
    accuracy: Range = Field(description="Share of items right, with a Wilson interval.")
    seconds_per_item: float = Field(description="Measured scoring time per item, model loaded.")
    train_s: float | None = Field(None, description="Candidates: training wall time (trainer manifest).")


class Payback(Record):
    """Months until the training cost is earned back; None at an end where it never is."""

    best: float | None
    estimate: float | None
    worst: float | None


class RoiLine(Record):
    """What an alternative is worth against one baseline, per month, in the ROI's currency."""

    candidate: str = Field(description="The alternative valued: a candidate, or a base alternative vs human.")
    baseline: str = Field(description="'human' (a person does every item) or a base alternative.")
    quality: Range = Field(description="Candidate accuracy (vs human) or paired accuracy gain.")
    value_per_month: Range = Field(description="Person-time saved, valued at the hourly rate.")
    serving_cost_per_month: float = Field(description="Extra serving cost against the baseline.")
    net_per_month: Range
    hours_saved_per_month: Range
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


class CurvePoint(Record):
    """One evaluated adapter along a training run (x = step) or a data-size sweep (x = records)."""

    x: int = Field(description="Training step, or training records in the sweep.")
    candidate: str = Field(description="The adapter's name in the comparison that scored it.")
    roles: dict[str, Range] = Field(description="Per role, the paired delta against the base and its interval.")
    gates_failed: int = Field(0, description="Gates of the evaluation config this adapter fails.")

    @property
    def net(self) -> float:
        """Target gain plus the (usually negative) forgetting delta: the trade-off the curve ranks."""
        return sum(self.roles[r].estimate for r in ("target", "forgetting") if r in self.roles)


class CurveRecord(Record):
    """Target gain and forgetting along training, or against the amount of training data."""

    kind: Literal["steps", "data_size"]
    name: str = Field(description="The candidate the curve led to (steps), or the sweep's name.")
    points: list[CurvePoint]
    best: int = Field(description="x of the best trade-off: the highest target gain + forgetting delta, "
                                  "the earliest of ties.")
    binary_roles: list[str] = Field(default_factory=list, description="Roles whose deltas are shares (pp).")

    @staticmethod
    def best_x(points: list[CurvePoint]) -> int:
        return max(points, key=lambda p: (round(p.net, 9), -p.x)).x


class HistoryEntry(Record):
    """One recorded comparison of the same config name and suite (id 0: this one)."""

    id: int
    created_at: str
    candidates: dict[str, dict[str, float]] = Field(description="Candidate -> role -> delta.")


class ComparisonResult(Record):
    """Everything a report needs, written as comparison.json; rendering needs no model."""

    version: int = RESULT_FORMAT
    name: str
    created_at: str
    harness_version: str
    suite: str
    confidence: float
    base: ModelRecord
    candidates: list[ModelRecord]
    results: list[CandidateResult]
    gates: list[GateVerdict] = Field(default_factory=list, description="Verdicts of the config's gates.")
    underpowered: Literal["fail", "pass"] = Field("fail", description="The config's `underpowered`: whether an "
                                                  "underpowered verdict blocks (gates.verdict_blocks).")
    roi: RoiResult | None = None
    suite_hash: str = Field("", description="Hash of every task's content hash, in suite order.")
    environment: dict = Field(default_factory=dict, description="Package versions and machine of the runs.")
    runs: list[RunInfo] = Field(default_factory=list)
    timings_s: dict[str, float] = Field(default_factory=dict)
    history: list[HistoryEntry] = Field(default_factory=list, description="Earlier comparisons of this name and "
                                        "suite from the store's index, oldest first, then this one.")
    curves: list[CurveRecord] = Field(default_factory=list, description="Training curves of the candidates "
                                      "(from their trainer manifests) and data-size sweeps (config `sweeps`).")

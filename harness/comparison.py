"""comparison.json: everything a report needs from one comparison, as one versioned record.

Its parts are the records of `harness.records`; this module adds the file's record and the reading
of its older formats, which recomputes intervals with `harness.stats` (so it stands above stats,
and records below it need none of stats).

Formats of comparison.json: 1, flat fields (`delta`, `ci_low`, `ci_high`, `base_score`,
`candidate_score`, `candidate_sd`; a verdict's `estimate`, `ci_low`, `ci_high`); 2, an `Estimate`
for each (`base`, `candidate`, `delta`; a verdict's `value`) and a group entry's pooled
`candidate` level; 3, a model's prompt format (`records.PromptFormatRecord`, the trainer manifest's
too) lists `system_prompts` where format 2 had one `system_prompt`. It is a
`persisted.PersistedRecord` like every JSON file the harness keeps, read with
`persisted.read_record`, which upgrades older formats (`ComparisonResult.upgrade`).
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

from pydantic import ConfigDict, Field

from harness.persisted import PersistedRecord
from harness.records import (
    CandidateResult,
    CurveRecord,
    GateVerdict,
    HistoryEntry,
    JudgeValidation,
    ModelRecord,
    RoiResult,
    RunInfo,
)


class ComparisonResult(PersistedRecord):
    """Everything a report needs, written as comparison.json; rendering needs no model."""

    # a NaN is written as null, as comparison.json always had it: other tools read it as strict JSON
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="null")
    VERSION: ClassVar[int] = 3
    WHAT: ClassVar[str] = "comparison.json"
    FIX: ClassVar[str] = "run harness compare again (stored evaluations are not scored again)"

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
    judge_validation: JudgeValidation | None = Field(None, description="The judge that judged, on its labelled "
                                                     "validation pairs (judge.validation).")
    judge_validations: list[JudgeValidation] = Field(
        default_factory=list, description="Every judge on the validation pairs: the config's judge and its "
        "fallbacks, in the order they are tried (the one that judged: `chosen`).")
    versus_prompting: list[CandidateResult] = Field(
        default_factory=list, description="Would prompting alone have done it? Each fine-tune paired with the "
        "prompting arm of the base that gains most on the target role (its `reference`).")

    @classmethod
    def upgrade(cls, data: dict, version: int) -> dict:
        if version == 1:
            data = _from_format1(data)
        return _from_format2(data) if version <= 2 else data


def _from_format2(data: dict) -> dict:
    """Format 2's one `system_prompt` of a model's prompt format as format 3's list of them."""
    def model(m: dict) -> dict:
        pf = dict(m.get("prompt_format") or {})
        if "system_prompt" in pf:  # as PromptFormat.record lists it: none for plain text without one
            system = pf.pop("system_prompt")
            pf["system_prompts"] = [] if system is None and pf.get("template_sha256") is None else [system]
        return {**m, "prompt_format": pf} if pf else m

    upgraded = {**data, "candidates": [model(m) for m in data.get("candidates", [])]}
    if isinstance(data.get("base"), dict):
        upgraded["base"] = model(data["base"])
    return upgraded


def _from_format1(data: dict) -> dict:
    """Format 1's flat fields folded into format 2's Estimates. The candidate's score interval is
    computed as compare computes it (stats.mean_interval), from the score, spread and n format 1
    stored, a group entry's from its tasks' pooled; format 1 kept no spread of the base's scores,
    nor of a secondary metric's, so those levels are their points unless the metric is 0/1."""
    conf = data.get("confidence", 0.95)

    def flat(d: dict, estimate: str, low: str = "ci_low", high: str = "ci_high") -> dict:
        return {"estimate": d.pop(estimate), "low": d.pop(low), "high": d.pop(high)}

    def level(score: float, sd: float, n: int, binary: bool) -> dict:
        from harness.stats import mean_interval  # scipy: not imported to read or render a comparison

        return mean_interval(score, sd, n, binary=binary, confidence=conf).model_dump()

    def scores(d: dict, n: int, sd: float) -> dict:
        d = dict(d)
        d["delta"] = flat(d, "delta")
        d["base"] = level(d.pop("base_score"), 0.0, n, d["binary"])
        d["candidate"] = level(d.pop("candidate_score"), d.pop("candidate_sd", sd), n, d["binary"])
        return d

    def task(t: dict) -> dict:
        return {**scores(t, t["n"], 0.0), "extra": [scores(x, t["n"], 0.0) for x in t.get("extra", [])]}

    def role(r: dict) -> dict:
        r = dict(r)
        r["delta"] = flat(r, "delta")
        return r

    def group(g: dict, tasks: list[dict]) -> dict:
        leaves = [t for t in tasks if t["task"] in g["tasks"]]
        n = sum(t["n"] for t in leaves)
        score = sum(t["n"] * t["candidate_score"] for t in leaves) / n
        ss = sum((t["n"] - 1) * t["candidate_sd"] ** 2 + t["n"] * (t["candidate_score"] - score) ** 2 for t in leaves)
        return {**role(g), "candidate": level(score, math.sqrt(ss / max(1, n - 1)), n,
                                              all(t["binary"] for t in leaves))}

    def result(cr: dict) -> dict:
        tasks = cr.get("tasks", [])
        return {**cr, "tasks": [task(t) for t in tasks], "roles": [role(r) for r in cr.get("roles", [])],
                "summaries": [role(s) for s in cr.get("summaries", [])],
                "groups": [group(g, tasks) for g in cr.get("groups", [])]}

    def verdict(v: dict) -> dict:
        v = dict(v)
        v["value"] = flat(v, "estimate")
        return v

    return {**data, "results": [result(cr) for cr in data.get("results", [])],
            "gates": [verdict(v) for v in data.get("gates", [])]}

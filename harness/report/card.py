"""A candidate's model-card section (`harness card`): the Hugging Face `model-index` metadata (one
result per suite task: the task, its dataset, the metric and the candidate's score, as the hub reads
it) and a short Markdown account of its gains, forgetting and bias against its base, with intervals,
and the harness version and run keys behind them.

A reader of comparison.json like the HTML report (harness.report.words words the figures). The YAML is
written with PyYAML's safe dumper, so a name is a quoted string and never YAML of its own; the prose
escapes names as the Markdown summary does.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import yaml

from harness.comparison import ComparisonResult
from harness.config import ROLE_FACTS
from harness.errors import HarnessError
from harness.records import CandidateResult, ModelRecord
from harness.report.words import READING, binary_roles, code, fmt, gate_state, interval, md, verdict
from harness.util.files import atomic_write

# every lm-eval task scores a causal language model's text: the hub's task type for all of them
HUB_TASK = {"type": "text-generation", "name": "Text Generation"}
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")  # org/name, as the hub names a model (base_model)


def card_candidates(result: ComparisonResult) -> list[str]:
    """The candidates a card can be written for: the comparison's fine-tunes."""
    return [cr.candidate for cr in result.results if cr.kind == "fine-tune"]


def _model(result: ComparisonResult, label: str) -> ModelRecord:
    return next(m for m in [result.base, *result.candidates] if m.label == label)


def model_index(result: ComparisonResult, cr: CandidateResult) -> list[dict]:
    """The hub's `model-index` of the candidate: its score on every suite task (a NaN score left out). No
    `source`: the hub wants a URL with it, and the prose below says what produced the scores."""
    results = [{"task": dict(HUB_TASK),
                "dataset": {"name": t.task, "type": t.task},
                "metrics": [{"type": t.metric, "value": round(t.candidate.estimate, 6),
                             "name": f"{t.metric} ({t.role})", "verified": False}]}
               for t in cr.tasks if math.isfinite(t.candidate.estimate)]
    return [{"name": cr.candidate, "results": results}]


def render_card(result: ComparisonResult, candidate: str) -> str:
    """The model-card section of `candidate`: YAML metadata between `---` lines, then the Markdown."""
    cr = next((r for r in result.results if r.candidate == candidate and r.kind == "fine-tune"), None)
    if cr is None:
        raise HarnessError(f"--candidate {candidate}: not a fine-tune of comparison '{result.name}' (has: "
                           f"{', '.join(card_candidates(result)) or 'none'})")
    base, model = _model(result, cr.reference), _model(result, candidate)
    meta: dict = {"tags": ["harness", "evaluation"]}
    if _HUB_ID.match(base.source):
        meta["base_model"] = base.source
    meta["model-index"] = model_index(result, cr)
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)

    conf = f"{result.confidence * 100:.0f}%"
    binary = binary_roles(result)
    lines = ["---", front.rstrip(), "---", "",
             f"## Evaluation against the base model ({md(cr.reference)})", "",
             f"Evaluated by harness {code(result.harness_version)} on suite **{md(result.suite)}** "
             f"({md(result.created_at)}): "
             f"{md(candidate)} and its base scored on the same items, {conf} paired intervals of candidate − base.",
             "", f"| | Change against the base | {conf} interval | Reading |", "|---|---|---|---|"]
    for role, facts in ROLE_FACTS.items():
        if (rr := cr.role(role)) is not None:
            lines.append(f"| {facts.title} | {fmt(rr.delta.estimate, binary[role], True)} | "
                         f"[{fmt(rr.delta.low, binary[role], True)}, {fmt(rr.delta.high, binary[role], True)}] | "
                         f"{READING[verdict(role, rr.delta)]} ({facts.reading}) |")
    verdicts = [v for v in result.gates if v.candidate == candidate]
    if verdicts:
        lines += ["", f"Gates: **{gate_state(result, candidate)}**: "
                  + ", ".join(f"{md(v.gate)} {v.status}" for v in verdicts) + "."]
    for j in cr.judged:
        lines += ["", f"Judged against the base's answers on {md(j.task)}: win rate {j.win_rate.estimate:.3f} "
                  f"[{j.win_rate.low:.3f}, {j.win_rate.high:.3f}] over {j.n} items."]
    lines += ["", "| Task | Role | Metric | Base | This model | Δ [interval] | Items |", "|---" * 7 + "|"]
    lines += [f"| {md(t.task)} | {t.role} | {md(t.metric)} | {fmt(t.base.estimate, t.binary)} | "
              f"{fmt(t.candidate.estimate, t.binary)} | {interval(t.delta, t.binary)} | {t.n} |" for t in cr.tasks]
    keys = {(r.model, r.task): r.key for r in result.runs if r.key}
    lines += ["", "<details><summary>What produced these figures</summary>", "",
              f"- harness {code(result.harness_version)}, suite {md(result.suite)} (content hash "
              f"{code(result.suite_hash[:16] or 'not recorded')})",
              f"- base: {code(base.source)}, fingerprint {code(base.fingerprint[:16])}",
              f"- this model: {code(model.source)}, fingerprint {code(model.fingerprint[:16])}; prompts: "
              f"{md(model.prompt_format.description)}"]
    if model.training:
        tr = model.training
        lines.append(f"- trained by harness train: {tr.get('steps')} steps, {tr.get('tokens'):,} tokens, "
                     f"{tr.get('wall_s', 0):.0f} s")
    listed = [(t.task, keys.get((cr.reference, t.task)), keys.get((candidate, t.task))) for t in cr.tasks]
    listed = [x for x in listed if x[1] or x[2]]
    if listed:
        lines.append("- run keys in the store (base; this model):")
        shared = "shared with an identical model"
        lines += [f"  - {md(task)}: {code(b) if b else shared}; {code(c) if c else shared}" for task, b, c in listed]
    lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def write_card(result: ComparisonResult, candidate: str, where: Path) -> Path:
    """Write the card section to `where`: a file, or a folder (model-card-CANDIDATE.md in it; the folder of
    a comparison.json given as a file). Returns the file written."""
    if where.suffix == ".json" or where.is_dir():
        folder = where if where.is_dir() else where.parent
        where = folder / ("model-card-" + re.sub(r"[^\w.-]", "_", candidate) + ".md")
    text = render_card(result, candidate)
    atomic_write(where, lambda p: p.write_text(text, encoding="utf-8"))
    return where

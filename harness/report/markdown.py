"""The comparison as a Markdown summary for a pull request comment or a CI job summary
(`harness compare --markdown FILE`; appended to `$GITHUB_STEP_SUMMARY` where that is set).

A reader of comparison.json like the HTML report, in the report's words (harness.report.words): the gate
verdicts first, then each candidate's target gain, forgetting and bias change with their intervals, the
guards that fired, the judged win rates with what makes one untrustworthy, and where the full report is.
Names and messages are escaped (words.md): a candidate named `a|b` or `<img>` stays text in its cell.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from harness.comparison import ComparisonResult
from harness.config import ROLE_FACTS
from harness.report.words import READING, binary_roles, flags, gate_state, interval, judged_warnings, md, verdict
from harness.util.files import atomic_write

# GitHub refuses a comment (and a job summary) longer than this many characters
GITHUB_COMMENT_LIMIT = 65_536
_STATE_MARK = {"ready": "✅ ready", "blocked": "❌ blocked", "no gates": "➖ no gates"}
_STATUS_MARK = {"pass": "✅ pass", "fail": "❌ fail", "underpowered": "⚠️ underpowered"}
_KIND = {"fine-tune": "", "prompting": " (prompting arm)", "base": " (another base)"}


def render_markdown(result: ComparisonResult, report_link: str | None = None) -> str:
    """The summary: short enough for a pull request comment (tests hold the demo's under
    GITHUB_COMMENT_LIMIT); `report_link` is where the HTML report is (a URL or a path)."""
    conf = f"{result.confidence * 100:.0f}%"
    binary = binary_roles(result)
    fine_tunes = [cr for cr in result.results if cr.kind == "fine-tune"]
    ready = sum(gate_state(result, cr.candidate) == "ready" for cr in fine_tunes)
    lines = [f"## harness: {md(result.name)}",
             "",
             f"Suite **{md(result.suite)}** · {len(fine_tunes)} candidate(s), "
             + (f"{ready} ready to deploy by the gates" if result.gates else "no gates configured")
             + f" · paired {conf} intervals · harness {md(result.harness_version)} · {md(result.created_at)}",
             ""]

    if result.gates:
        lines += ["### Gates", ""]
        lines += [f"- **{md(cr.candidate)}**: {_STATE_MARK[gate_state(result, cr.candidate)]}" for cr in fine_tunes]
        lines += ["", f"| Candidate | Gate | Verdict | Value [{conf} CI] | Threshold |", "|---|---|---|---|---|"]
        for v in result.gates:
            lines.append(f"| {md(v.candidate)} | {md(v.gate)} | {_STATUS_MARK[v.status]}{' (flagged)' * bool(v.flags)} "
                         f"| {v.value.estimate:+.4f} [{v.value.low:+.4f}, {v.value.high:+.4f}] | {v.threshold:+.4f} |")
        why = [v for v in result.gates if v.status != "pass"]
        if why:
            lines += ["", "<details><summary>Why the gates that do not pass do not</summary>", ""]
            lines += [f"- {md(v.test_id)}: {md(v.message)}" for v in why]
            lines += ["", "</details>"]
        lines.append("")

    roles = [r for r in ROLE_FACTS if r in binary]
    lines += ["### Against the base", "",
              "| Candidate | " + " | ".join(f"{ROLE_FACTS[r].title} [{conf} CI]" for r in roles) + " |",
              "|---|" + "---|" * len(roles)]
    for cr in result.results:
        cells = []
        for role in roles:
            rr = cr.role(role)
            cells.append("–" if rr is None else
                         f"{interval(rr.delta, binary[role])} {READING[verdict(role, rr.delta)]}")
        against = "" if cr.reference == "base" else f" vs {md(cr.reference)}"
        lines.append(f"| {md(cr.candidate)}{_KIND[cr.kind]}{against} | " + " | ".join(cells) + " |")
    lines += [f"\n{', '.join(f'{ROLE_FACTS[r].title}: {ROLE_FACTS[r].reading}' for r in roles)}.", ""]
    if "target" in binary:
        for cr in (r for r in result.versus_prompting if r.reference != "base" and r.role("target")):
            t = cr.role("target")
            lines.append(f"- **{md(cr.candidate)}** against the best prompting of the base, {md(cr.reference)}: "
                         f"target {interval(t.delta, binary['target'])}, {READING[verdict('target', t.delta)]}")

    flagged = [(cr, f) for cr in result.results for f in flags(cr)]
    warned = [(m, w) for m in [result.base, *result.candidates] for w in m.warnings]
    if flagged or warned:
        lines += ["### Flagged", ""]
        lines += [f"- ⚠️ **{md(cr.candidate)}**: {md(f)}" for cr, f in flagged]
        lines += [f"- ⚠️ **{md(m.label)}**: {md(w)}" for m, w in warned]
        lines.append("")

    judged = [(cr, j) for cr in result.results for j in cr.judged]
    if judged:
        lines += ["### Judged answers", "",
                  f"| Candidate | Task | Win rate over the base [{conf} CI] | Wins / ties / losses | Trust |",
                  "|---|---|---|---|---|"]
        for cr, j in judged:
            warnings = judged_warnings(j, result.judge_validation)
            trust = "⚠️ " + "; ".join(md(w) for w in warnings) if warnings else "✅ no warning"
            w = j.win_rate
            lines.append(f"| {md(cr.candidate)} | {md(j.task)} | {w.estimate:.3f} [{w.low:.3f}, {w.high:.3f}] "
                         f"| {j.wins} / {j.ties} / {j.losses} | {trust} |")
        if (v := result.judge_validation) is not None:
            lines.append(f"\nThe judge ({md(v.judge or 'the judge')}) on {v.n} labelled validation pairs: kappa "
                         f"{v.kappa.estimate:.2f} [{v.kappa.low:.2f}, {v.kappa.high:.2f}], minimum {v.min_kappa:.2f}.")
        lines.append("")

    if report_link:
        link = "".join({" ": "%20", "<": "%3C", ">": "%3E", "\n": ""}.get(c, c) for c in report_link)
        lines.append(f"**Full report**: [{md(report_link)}](<{link}>) (per-task forest plots, flipped "
                     "examples, judged answers, ROI; `comparison.json` beside it)")
    return "\n".join(lines).rstrip() + "\n"


def write_summaries(result: ComparisonResult, html: Path, path: Path | None, report_link: str | None,
                    log: Callable[[str], None] = print) -> None:
    """The summary to `path`, and appended to GitHub's job summary ($GITHUB_STEP_SUMMARY) where that is
    set; `report_link` defaults to the HTML report's path (relative to here when it is below)."""
    job_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if path is None and not job_summary:
        return
    if report_link is None:
        report_link = os.path.relpath(html) if html.resolve().is_relative_to(Path.cwd()) else str(html)
    text = render_markdown(result, report_link)
    if path is not None:
        atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))
        log(f"markdown: {path} ({len(text):,} characters)")
    if job_summary:
        with open(job_summary, "a", encoding="utf-8") as f:
            f.write(text)
        log("markdown: appended to $GITHUB_STEP_SUMMARY")

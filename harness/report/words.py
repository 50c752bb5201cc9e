"""How the sinks say a comparison's figures, said once: the HTML report, the Markdown summary and the
model card read a delta, a verdict and a judge's trust the same way.

`md` makes untrusted text (names from configs, flag messages quoting models) inert in Markdown:
no tags, links, code spans, emphasis or table cells of its own.
"""

from __future__ import annotations

import re

from harness.comparison import ComparisonResult
from harness.config import ROLE_FACTS
from harness.gates import verdict_blocks
from harness.records import LENGTH_GAP, CandidateResult, Estimate, JudgedResult, JudgeValidation

READING = {"good": "better", "bad": "worse", "unclear": "no clear change"}


def verdict(role: str, delta: Estimate) -> str:
    """'good' / 'bad' when the delta's whole interval lies on one side of zero (which side is good
    is the role's), else 'unclear'."""
    sign = ROLE_FACTS[role].good if role in ROLE_FACTS else +1
    if delta.low > 0 or delta.high < 0:
        return "good" if (delta.low > 0) == (sign > 0) else "bad"
    return "unclear"


def fmt(value: float, binary: bool, signed: bool = False) -> str:
    if binary:
        return f"{value * 100:+.1f} pp" if signed else f"{value * 100:.1f}%"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def interval(e: Estimate, binary: bool, signed: bool = True) -> str:
    """'+45.0 pp [+40.0 pp, +50.0 pp]': an estimate with its interval."""
    return f"{fmt(e.estimate, binary, signed)} [{fmt(e.low, binary, signed)}, {fmt(e.high, binary, signed)}]"


def binary_roles(result: ComparisonResult) -> dict[str, bool]:
    """Role -> whether every task of it has a 0/1 metric (its deltas are then shown in pp)."""
    binary: dict[str, bool] = {}
    for cr in result.results:
        for t in cr.tasks:
            binary[t.role] = binary.get(t.role, True) and t.binary
    return binary


def gate_state(result: ComparisonResult, candidate: str) -> str:
    """'blocked', 'ready' or 'no gates': what the report's banner says of a candidate."""
    verdicts = [v for v in result.gates if v.candidate == candidate]
    if not verdicts:
        return "no gates"
    return "blocked" if any(verdict_blocks(v, result.underpowered) for v in verdicts) else "ready"


def flags(cr: CandidateResult) -> list[str]:
    """The guards that fired on a candidate or any of its tasks."""
    return [*cr.flags, *(f for t in cr.tasks for f in t.flags)]


def judged_warnings(j: JudgedResult, validation: JudgeValidation | None = None) -> list[str]:
    """Why a judged win rate is not to be trusted, each as the report words it; none when it is."""
    out = []
    if j.decisive_rate < 0.5:
        out.append(f"the judge picked an answer in {j.decisive_rate:.0%} of its verdicts and called the rest ties: "
                   "it does not tell these answers apart")
    elif j.position_consistency < j.min_position_consistency:
        out.append(f"the judge's two orders agree on {j.position_consistency:.0%} of the items, below the minimum "
                   f"{j.min_position_consistency:.0%}: its verdicts follow where an answer is shown")
    if j.length_gap is not None and abs(j.length_gap) > LENGTH_GAP:
        lc = j.length_controlled
        out.append(f"the length-controlled win rate {lc.estimate:.3f} [{lc.low:.3f}, {lc.high:.3f}] is "
                   f"{abs(j.length_gap) * 100:.0f} points from the raw one: the verdicts follow the answers' length")
    if j.human_kappa is not None and j.human_kappa.estimate < j.min_human_agreement:
        out.append(f"the judge agrees with people's {j.human_n} verdicts at kappa {j.human_kappa.estimate:.2f}, "
                   f"below the minimum {j.min_human_agreement:.2f}")
    if validation is not None and not validation.passed:
        out.append(f"the judge's kappa on its {validation.n} validation pairs is {validation.kappa.estimate:.2f}, "
                   f"below the minimum {validation.min_kappa:.2f}: its verdicts cannot pass a gate")
    if j.read_from_text or j.unread:
        out.append(f"{j.read_from_text} of {2 * j.n} verdicts read from the reply's text (no log-probabilities), "
                   f"{j.unread} naming no label (ties)")
    return out


# the characters that mean something inline in GitHub's Markdown: escapes, code, emphasis, links and images,
# raw HTML and entities, table cells, strikethrough, math, headings; backslash-escaped, each is itself
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>&|!~$#])")


def md(text: object) -> str:
    """Untrusted text as inert Markdown on one line: whitespace runs (newlines too) become one space,
    and every character that means something inline is backslash-escaped, so that it opens no tag,
    link, image, code span, emphasis or table cell (a `|` stays inside its cell), and `@name` (a zero-width
    space after the @) mentions no one."""
    one_line = " ".join(str(text).split())
    return _MD_SPECIAL.sub(r"\\\1", one_line).replace("@", "@\u200b")


def code(text: object) -> str:
    """Text as a Markdown code span, outside tables: shown as it is; no backtick of its own can end the
    span (backticks are dropped) and no newline the line."""
    return "`" + " ".join(str(text).replace("`", "").split()) + "`"

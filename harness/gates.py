"""Gates: statistical pre-deploy rules on the paired difference between candidate and base.

Every verdict reads the interval of the difference against the gate's threshold, three ways:

    improves(min_delta)            pass: low > min_delta
                                   fail: high < min_delta, or not pass although the probe could
                                         see the effect (MDE <= power effect)
    non_inferior(margin)           pass: low > -margin
                                   fail: high < 0  (shown worse than the base, not within margin)
    no_bias_amplification(margin)  pass: high < margin   (delta = increase of the bias score)
                                   fail: low > 0   (shown more biased, not within margin)
    floor(min_score)               pass: the candidate's score interval (computed in compare)
                                         lies above min_score
                                   fail: it lies below

Anything else is `underpowered`: the interval is too wide to tell, and the verdict says how many
items would resolve the margin at the spread observed. This keeps both error rates in check:
with no true difference, non_inferior fails only when the base is significantly better (at most
alpha/2), and with a true loss of twice the margin at the recommended n it fails with power
well above 0.8 (tests/test_gates.py simulates both).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.comparison import ComparisonResult
from harness.config import GateSpec, HarnessSpec, SuiteSpec
from harness.errors import ConfigError, HarnessError
from harness.records import CandidateResult, Estimate, GateVerdict, JudgeValidation, RoleResult, TaskResult


def check_gates(spec: HarnessSpec, suite: SuiteSpec, source: str) -> None:
    """Cross-check gates against the suite and candidates; every problem at once, with key paths."""
    problems = []
    tasks = {t.task: t for t in suite.tasks}
    roles = {t.role for t in suite.tasks}
    names = {c.name for _, c, _ in spec.all_candidates()}
    for i, g in enumerate(spec.gates):
        if g.task is not None and g.task not in tasks:
            problems.append(f"{source}: gates[{i}].task: '{g.task}' is not a task of suite {suite.name} "
                            f"(has: {', '.join(tasks)})")
        if g.role is not None and g.role not in roles:
            problems.append(f"{source}: gates[{i}].role: suite {suite.name} has no task in role '{g.role}'")
        summaries = {sm.name: tasks[sm.tasks[0]].role for sm in suite.summaries}
        if g.summary is not None and g.summary not in summaries:
            problems.append(f"{source}: gates[{i}].summary: suite {suite.name} has no summary '{g.summary}'"
                            f" (has: {', '.join(summaries) or 'none'})")
        if g.rule == "no_bias_amplification" and summaries.get(g.summary or "", "bias") != "bias":
            problems.append(f"{source}: gates[{i}].summary: no_bias_amplification needs a summary of bias tasks, "
                            f"'{g.summary}' averages {summaries[g.summary or '']} tasks")
        if g.rule == "no_bias_amplification" and g.task in tasks and tasks[g.task].role != "bias":
            problems.append(f"{source}: gates[{i}].task: no_bias_amplification needs a task of role bias, "
                            f"'{g.task}' is {tasks[g.task].role}")
        if g.rule == "wins" and (spec.judge is None or g.task not in spec.judge.tasks):
            problems.append(f"{source}: gates[{i}]: rule wins reads the judged win rate, and '{g.task}' is not "
                            "judged; add it to `judge.tasks` (and a `judge:` to the config)")
        for c in g.candidates or []:
            if c not in names:
                problems.append(f"{source}: gates[{i}].candidates: unknown candidate '{c}' "
                                f"(config has: {', '.join(sorted(names))})")
    if problems:
        raise ConfigError(problems)


def _scaled_n(n: int, mde: float, effect: float) -> int:
    """Items for which the MDE (which shrinks as 1/sqrt(n)) equals `effect`."""
    return math.ceil(n * (mde / effect) ** 2)


def _diff_verdict(gate: GateSpec, cand: str, r: TaskResult | RoleResult, test: str) -> GateVerdict:
    lo, hi, n, mde = r.delta.low, r.delta.high, r.n, r.mde
    p = r.p_value
    if gate.rule in ("improves", "wins"):
        thr = gate.min_delta or 0.0
        effect = gate.power_effect or (thr if thr > 0 else None)
        if lo > thr:
            status, why = "pass", f"gain shown: lower bound {lo:+.4f} > {thr:+.4f}"
        elif hi < thr:
            status, why = "fail", f"gain below {thr:+.4f}: upper bound {hi:+.4f}"
        elif effect is None or mde <= effect:
            status, why = "fail", f"no gain shown: lower bound {lo:+.4f} <= {thr:+.4f}"
        else:
            status, why = "underpowered", (f"interval [{lo:+.4f}, {hi:+.4f}] cannot show a gain of "
                                           f"{effect:.4f} (MDE {mde:.4f})")
    elif gate.rule == "non_inferior":
        thr = -(gate.margin or 0.0)
        effect = gate.power_effect or gate.margin or 0.0
        if lo > thr:
            status, why = "pass", f"within margin: lower bound {lo:+.4f} > {thr:+.4f}"
        elif hi < 0:
            status, why = "fail", (f"worse than its base and not shown within the margin: interval "
                                   f"[{lo:+.4f}, {hi:+.4f}], margin {thr:+.4f}")
        else:
            status, why = "underpowered", (f"inconclusive: interval [{lo:+.4f}, {hi:+.4f}] holds both 0 and "
                                           f"the margin {thr:+.4f} (MDE {mde:.4f})")
    else:  # no_bias_amplification: delta is the increase of the bias score
        thr = gate.margin or 0.0
        effect = gate.power_effect or thr
        if hi < thr:
            status, why = "pass", f"bias increase bounded: upper bound {hi:+.4f} < {thr:+.4f}"
        elif lo > 0:
            status, why = "fail", f"bias amplified: interval [{lo:+.4f}, {hi:+.4f}] above 0, margin {thr:+.4f}"
        else:
            status, why = "underpowered", (f"inconclusive: interval [{lo:+.4f}, {hi:+.4f}] holds both 0 and "
                                           f"the margin {thr:+.4f} (MDE {mde:.4f})")
    needed = _scaled_n(n, mde, effect) if status == "underpowered" and effect else None
    if needed is not None and needed > n:
        why += f"; about {needed} items would resolve {effect:.4f} (have {n})"
    elif needed is not None:
        why += f"; at n={n} the probe should resolve {effect:.4f}: this interval is wide by chance"
        needed = None
    return GateVerdict(candidate=cand, gate=f"{gate.target}::{gate.rule}", rule=gate.rule, target=gate.target,
                       status=status, value=r.delta, threshold=thr, test=test,
                       p_value=p, n=n, mde=mde, n_required=needed, message=why)


def _floor_verdict(gate: GateSpec, cand: str, level: Estimate, n: int, binary: bool) -> GateVerdict:
    """The candidate's score interval, as compare computed it, against the floor."""
    thr = gate.min_score or 0.0
    score, lo, hi = level.estimate, level.low, level.high
    test = "Wilson interval of the candidate's score" if binary else "t interval of the candidate's score"
    if lo > thr:
        status, why = "pass", f"score {score:.4f}, lower bound {lo:.4f} > floor {thr:.4f}"
    elif hi < thr:
        status, why = "fail", f"score {score:.4f}, upper bound {hi:.4f} < floor {thr:.4f}"
    else:
        status, why = "underpowered", f"score {score:.4f}: interval [{lo:.4f}, {hi:.4f}] holds the floor {thr:.4f}"
    return GateVerdict(candidate=cand, gate=f"{gate.target}::{gate.rule}", rule=gate.rule, target=gate.target,
                       status=status, value=level, threshold=thr, test=test, n=n, message=why)


def applies(gate: GateSpec, candidate: str) -> bool:
    return gate.candidates is None or candidate in gate.candidates


def evaluate_gates(result: ComparisonResult, gates: Iterable[GateSpec]) -> list[GateVerdict]:
    """Verdicts for every (candidate, gate) pair, from a comparison alone (no model, no store). Gates
    judge the fine-tunes; prompting arms are there to be compared with, not deployed."""
    verdicts = []
    for cr in (r for r in result.results if r.kind == "fine-tune"):
        for gate in (g for g in gates if applies(g, cr.candidate)):
            verdicts.append(gate_verdict(cr, gate, result.judge_validation))
    return verdicts


@dataclass(frozen=True)
class _Preference:
    """A judged win rate as the difference rules read it: its distance from 0.5 (no preference)."""

    delta: Estimate
    n: int
    mde: float
    p_value: float


def _wins_verdict(gate: GateSpec, cr: CandidateResult, validation: JudgeValidation | None = None) -> GateVerdict:
    judged = next((j for j in cr.judged if j.task == gate.task), None)
    if judged is None:
        raise HarnessError(f"gate {gate.target}::wins: {cr.candidate} has no judged result on {gate.task}; "
                           "is the task in `judge.tasks`?")
    half = judged.win_rate.map(lambda x: x - 0.5)
    v = _diff_verdict(gate, cr.candidate, _Preference(half, judged.n, judged.mde, judged.p_value),
                      "paired interval of the judged win rate (both orders per item)")
    v = v.model_copy(update={"value": judged.win_rate, "threshold": v.threshold + 0.5,
                             "message": f"win rate {judged.win_rate.estimate:.3f} over 0.5: {v.message}"})
    if judged.position_consistency < judged.min_position_consistency:  # a judge no better than where it looks
        v = v.model_copy(update={"status": "fail", "message": (
            f"the judge's two orders agree on {judged.position_consistency:.0%} of the items, below the minimum "
            f"{judged.min_position_consistency:.0%} (judge.min_position_consistency): its verdicts cannot pass "
            f"a gate; {v.message}")})
    kappa = judged.human_kappa
    if kappa is not None and kappa.estimate < judged.min_human_agreement:  # a judge people do not agree with
        v = v.model_copy(update={"status": "fail", "message": (
            f"the judge agrees with people's {judged.human_n} verdicts at Cohen's kappa {kappa.estimate:.2f} "
            f"[{kappa.low:.2f}, {kappa.high:.2f}], below the minimum {judged.min_human_agreement:.2f} "
            f"(judge.min_human_agreement): its verdicts cannot pass a gate; {v.message}")})
    if validation is not None and validation.kappa.estimate < validation.min_kappa:  # fails its own validation
        k = validation.kappa
        v = v.model_copy(update={"status": "fail", "message": (
            f"the judge agrees with the labels of its {validation.n} validation pairs at Cohen's kappa "
            f"{k.estimate:.2f} [{k.low:.2f}, {k.high:.2f}], below the minimum {validation.min_kappa:.2f} "
            f"(judge.min_validation_kappa): its verdicts cannot pass a gate; {v.message}")})
    return v


def gate_verdict(cr: CandidateResult, gate: GateSpec, validation: JudgeValidation | None = None) -> GateVerdict:
    """One gate's verdict for one candidate, saying so when a guard fired on the candidate or on a
    task the gate reads (its verdict then stands on scores that may be wrong); a `wins` gate also reads
    the judge's validation (judge.validation), where there is one."""
    v = _verdict(cr, gate, validation)
    read = set(gate_tasks(cr, gate))
    flags = [*cr.flags, *(f for t in cr.tasks if t.task in read for f in t.flags)]
    if not flags:
        return v
    return v.model_copy(update={"flags": flags, "message": f"FLAGGED ({'; '.join(flags)}): {v.message}"})


def _verdict(cr: CandidateResult, gate: GateSpec, validation: JudgeValidation | None = None) -> GateVerdict:
    """A task gate on a group entry (mmlu, which lm-eval expands into its subjects) reads the pooled
    entry, as the forest plot shows it."""
    if gate.rule == "wins":
        return _wins_verdict(gate, cr, validation)
    if gate.task is not None:
        t = next((t for t in cr.tasks if t.task == gate.task), None)
        group = next((g for g in cr.groups if g.name == gate.task), None)
        if t is None and group is None:
            raise HarnessError(f"gate {gate.target}::{gate.rule}: the comparison of {cr.candidate} has no task or "
                               f"group entry '{gate.task}' (has: {', '.join(x.task for x in cr.tasks)})")
        if group is not None:
            if gate.rule == "floor":
                binary = all(x.binary for x in cr.tasks if x.task in group.tasks)
                return _floor_verdict(gate, cr.candidate, group.candidate, group.n, binary)
            return _diff_verdict(gate, cr.candidate, group,
                                 f"paired bootstrap over the items of the group's {len(group.tasks)} tasks")
        assert t is not None
        if gate.rule == "floor":
            return _floor_verdict(gate, cr.candidate, t.candidate, t.n, t.binary)
        return _diff_verdict(gate, cr.candidate, t, f"{t.interval}; {t.test}")
    if gate.summary is not None:
        r = next(s for s in cr.summaries if s.name == gate.summary)
        return _diff_verdict(gate, cr.candidate, r, "paired bootstrap over the summary's tasks")
    r = cr.role(gate.role or "")
    assert r is not None  # check_gates guarantees the role has tasks
    return _diff_verdict(gate, cr.candidate, r, "paired bootstrap over the role's tasks")


def gate_tasks(cr: CandidateResult, gate: GateSpec) -> list[str]:
    """The tasks whose items a gate reads: its task (a group entry's tasks), its summary's or its role's."""
    if gate.task is not None:
        group = next((g for g in cr.groups if g.name == gate.task), None)
        return list(group.tasks) if group is not None else [gate.task]
    if gate.summary is not None:
        summary = next((s for s in cr.summaries if s.name == gate.summary), None)
        return list(summary.tasks) if summary is not None else []
    role = cr.role(gate.role or "")
    return list(role.tasks) if role is not None else []


def verdict_blocks(verdict: GateVerdict, underpowered: str) -> bool:
    """What a verdict means for the deploy, the one place that says it: a `fail` blocks, a `pass`
    does not, and an `underpowered` one blocks unless the config's `underpowered` is `pass`. The
    exit code of harness gate, the JUnit file, the pytest items and the report's banner all ask here."""
    return verdict.status == "fail" or (verdict.status == "underpowered" and underpowered != "pass")


def exit_code(verdicts: list[GateVerdict], underpowered: str) -> int:
    """0 when no verdict blocks, 1 when any does (underpowered counts as the config says)."""
    return 1 if any(verdict_blocks(v, underpowered) for v in verdicts) else 0



def format_table(verdicts: list[GateVerdict]) -> str:
    """A readable fixed-width table, one line per (candidate, gate)."""
    rows = [("candidate", "gate", "verdict", "estimate", "interval", "threshold", "p", "n")]
    for v in verdicts:
        rows.append((v.candidate, v.gate, v.status.upper(), f"{v.value.estimate:+.4f}",
                     f"[{v.value.low:+.4f}, {v.value.high:+.4f}]", f"{v.threshold:+.4f}",
                     "-" if v.p_value is None else f"{v.p_value:.3g}", str(v.n)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for v in verdicts:
        if v.status != "pass" or v.flags:
            lines.append(f"{v.test_id}: {v.message}")
    return "\n".join(lines)


def write_junit(verdicts: list[GateVerdict], path: Path, underpowered: str, name: str) -> None:
    """JUnit XML, one testcase per (candidate, gate), as CI systems read it."""
    import xml.etree.ElementTree as ET

    blocking = [verdict_blocks(v, underpowered) for v in verdicts]
    suite = ET.Element("testsuite", name=f"harness.{name}", tests=str(len(verdicts)),
                       failures=str(sum(blocking)),
                       skipped=str(sum(v.status == "underpowered" and not b for v, b in zip(verdicts, blocking,
                                                                                           strict=True))),
                       errors="0")
    for v, blocks in zip(verdicts, blocking, strict=True):
        case = ET.SubElement(suite, "testcase", classname=f"harness.{name}.{v.candidate}", name=v.gate)
        detail = (f"estimate {v.value.estimate:+.4f}, {v.value.low:+.4f}..{v.value.high:+.4f}, threshold "
                  f"{v.threshold:+.4f}; {v.test}")
        if blocks:
            ET.SubElement(case, "failure", message=f"{v.status}: {v.message}", type=v.status).text = detail
        elif v.status == "underpowered":
            ET.SubElement(case, "skipped", message=f"underpowered: {v.message}")
        ET.SubElement(case, "system-out").text = detail
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)

"""Evaluate adapters along training (checkpoints) or across data sizes (a sweep) through the normal
compare path: the same plan, store and statistics as `harness compare`, so every adapter is scored
once and cached like any model, and the curve's points carry paired intervals.

The evaluation config is an ordinary harness config: its base (which must be the base that was
trained on), suite, eval settings, store and gates are used; its candidates are replaced by the
adapters of the curve.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.comparison import ComparisonResult
from harness.config import ROLE_FACTS
from harness.errors import HarnessError
from harness.records import CurvePoint, CurveRecord


def load_eval_config(config: str | Path, base: Path):
    """The config, checked to evaluate against `base` (same folder or same weights)."""
    from harness.pipeline import load
    from harness.sources.fingerprint import model_fingerprint, resolve_model_dir

    loaded = load(config, need_candidates=False)
    theirs = resolve_model_dir(loaded.spec.base.path, loaded.spec.base.revision)
    if theirs.resolve() != base.resolve():
        fp = [model_fingerprint(p, dtype="-", backend="-") for p in (theirs, base)]
        if fp[0] != fp[1]:
            raise HarnessError(f"{config}: base.path is {theirs}, but training starts from {base}; the curve "
                               "must compare against the model that was fine-tuned")
    return loaded


def evaluate_adapters(loaded, adapters: dict[str, Path], log: Callable[[str], None] | None = None
                      ) -> ComparisonResult:
    """One comparison of the base against `adapters` (name -> folder), stored runs reused."""
    from harness.config import CandidateSpec
    from harness.pipeline import Loaded, run_comparison

    # prompted as the config prompts the base, so that each point pairs with it prompt by prompt
    fmt = loaded.spec.base.model_dump(include={"chat_template", "system_prompt", "fewshot_as_multiturn"})
    # a curve draws role deltas: no judge (a judged win rate is not on it, and would cost a judge's
    # pass per point), no gate on judged answers
    spec = loaded.spec.model_copy(update={
        "candidates": [CandidateSpec(name=n, adapter=str(p), **fmt) for n, p in adapters.items()], "roi": None,
        "judge": None, "gates": [g for g in loaded.spec.gates if g.rule != "wins"]})
    # not recorded in the store's history: that is for the comparisons people run
    return run_comparison(Loaded(loaded.path, spec, loaded.suite, loaded.dtype_notes), log=log or (lambda m: None),
                          record=False)


def curve_points(result: ComparisonResult, xs: dict[str, int]) -> list[CurvePoint]:
    """A point per candidate of `result` (name -> x), with its role deltas and failed gates."""
    from harness.gates import verdict_blocks

    points = []
    for cr in result.results:
        failed = sum(1 for v in result.gates if v.candidate == cr.candidate and verdict_blocks(v, result.underpowered))
        points.append(CurvePoint(x=xs[cr.candidate], candidate=cr.candidate, gates_failed=failed,
                                 roles={r.role: r.delta for r in cr.roles}))
    return sorted(points, key=lambda p: p.x)


def net(point: CurvePoint) -> float:
    """The trade-off the curve ranks: the sum of the trade-off roles' deltas, target gain plus the
    (usually negative) forgetting delta."""
    return sum(point.roles[r].estimate for r, facts in ROLE_FACTS.items() if facts.trade_off and r in point.roles)


def best_x(points: list[CurvePoint]) -> int:
    """x of the best trade-off: the highest net, the earliest of ties."""
    return max(points, key=lambda p: (round(net(p), 9), -p.x)).x


def make_curve(kind: str, name: str, result: ComparisonResult, xs: dict[str, int]) -> CurveRecord:
    points = curve_points(result, xs)
    binary = sorted({t.role for cr in result.results for t in cr.tasks if t.binary}
                    - {t.role for cr in result.results for t in cr.tasks if not t.binary})
    return CurveRecord(kind=kind, name=name, points=points, best=best_x(points), binary_roles=binary)


def describe(point: CurvePoint, binary_roles: list[str]) -> str:
    """'target +31.0 pp [+25.5, +36.5] · forgetting -4.2 pp [...]' for log lines."""
    parts = []
    for role, r in point.roles.items():
        if role in binary_roles:
            parts.append(f"{role} {r.estimate * 100:+.1f} pp [{r.low * 100:+.1f}, {r.high * 100:+.1f}]")
        else:
            parts.append(f"{role} {r.estimate:+.3f} [{r.low:+.3f}, {r.high:+.3f}]")
    return " · ".join(parts)

"""Return on investment: what a candidate is worth per month against the ways the work is done
without it, with ranges that follow the interval of the quality behind them.

Per month, with V items, S minutes saved per correct output, L minutes lost per wrong one, a
person-hour at R and a serving-hour at P (seconds per item measured during evaluation):

  against a person doing every item (the candidate's accuracy p):
      hours saved = V (p S - (1 - p) L) / 60          value = hours saved x R
      serving cost = V x seconds per item / 3600 x P
  against the base prompted zero- or few-shot (the paired accuracy gain d):
      hours saved = V d (S + L) / 60                  value = hours saved x R
      serving cost = V (candidate seconds - baseline seconds) / 3600 x P
  net = value - serving cost;  training cost = training wall time / 3600 x training price;
  payback = training cost / net (months; never when net <= 0).
  evaluation cost (per comparison) = (suite scoring seconds + judge seconds) / 3600 x P.

Every range takes the low and high end of the quality interval; costs are measured points.
"""

from __future__ import annotations

from harness.config import RoiSpec
from harness.records import AlternativeRecord, Estimate, Payback, RoiLine, RoiResult

SENSITIVITY_FACTORS = (0.5, 1.5)


def _net(spec: RoiSpec, hours: float, serving_cost: float) -> float:
    return hours * spec.hourly_rate - serving_cost


def _payback(training_cost: float | None, net: Estimate) -> Payback | None:
    if training_cost is None:
        return None

    def months(n: float) -> float | None:
        return training_cost / n if n > 0 else None

    return Payback(best=months(net.high), estimate=months(net.estimate), worst=months(net.low))


def _line(spec: RoiSpec, cand: AlternativeRecord, baseline: AlternativeRecord | None,
          quality: Estimate) -> RoiLine:
    v, s, lost = spec.volume_per_month, spec.saved_minutes, spec.minutes_lost_per_wrong
    if baseline is None:  # a person does every item
        def hours(q: float) -> float:
            return v * (q * s - (1 - q) * lost) / 60
        seconds = cand.seconds_per_item
    else:
        def hours(q: float) -> float:
            return v * q * (s + lost) / 60
        seconds = cand.seconds_per_item - baseline.seconds_per_item
    serving = v * seconds / 3600 * spec.serving_hourly_price
    h = quality.map(hours)
    value = h.map(lambda x: x * spec.hourly_rate)
    net = value.map(lambda x: x - serving)
    price = spec.serving_hourly_price if spec.training_hourly_price is None else spec.training_hourly_price
    training = None if cand.train_s is None else cand.train_s / 3600 * price
    return RoiLine(candidate=cand.name, baseline="human" if baseline is None else baseline.name, quality=quality,
                   value_per_month=value, serving_cost_per_month=serving, net_per_month=net,
                   hours_saved_per_month=h, training_cost=training, payback_months=_payback(training, net))


def _tornado(spec: RoiSpec, cand: AlternativeRecord, baseline: AlternativeRecord, quality: Estimate) -> dict:
    """Net per month of `cand` against `baseline` as each input moves alone (quality: its interval)."""
    bars = [{"input": "quality (interval)", "low": _line(spec, cand, baseline, quality).net_per_month.low,
             "high": _line(spec, cand, baseline, quality).net_per_month.high}]
    for field, label in (("volume_per_month", "volume per month"), ("minutes_saved_per_correct", "minutes saved"),
                         ("hourly_rate", "hourly rate"), ("serving_hourly_price", "serving price")):
        base_value = spec.saved_minutes if field == "minutes_saved_per_correct" else getattr(spec, field)
        nets = [_line(spec.model_copy(update={field: base_value * f}), cand, baseline, quality).net_per_month.estimate
                for f in SENSITIVITY_FACTORS]
        bars.append({"input": f"{label} ×{SENSITIVITY_FACTORS[0]}–×{SENSITIVITY_FACTORS[1]}",
                     "low": nets[0], "high": nets[1]})
    return {"candidate": cand.name, "baseline": baseline.name,
            "net": _line(spec, cand, baseline, quality).net_per_month.estimate, "bars": bars}


def compute_roi(spec: RoiSpec, task: str, alternatives: list[AlternativeRecord],
                gains: dict[tuple[str, str], Estimate]) -> RoiResult:
    """ROI lines: every alternative against a person doing the work, and every candidate against
    every way of prompting the base.

    `gains[(candidate, baseline)]` is the paired accuracy gain of the candidate over the base
    alternative, with its interval.
    """
    alternatives = [a.model_copy(update={"evaluation_cost": (a.eval_s + a.judge_s) / 3600 * spec.serving_hourly_price})
                    for a in alternatives]
    bases = [a for a in alternatives if a.kind != "candidate"]
    lines = [_line(spec, a, None, a.accuracy) for a in alternatives]  # every way of working vs a person
    sensitivity = []
    for cand in (a for a in alternatives if a.kind == "candidate"):
        against = [_line(spec, cand, b, gains[(cand.name, b.name)]) for b in bases]
        lines += against
        if against:  # the alternative the fine-tune must beat: the best prompting of the base
            best = max(bases, key=lambda b: b.accuracy.estimate)
            sensitivity.append(_tornado(spec, cand, best, gains[(cand.name, best.name)]))
    return RoiResult(task=task, currency=spec.currency, inputs=spec.model_dump(), alternatives=alternatives,
                     lines=lines, sensitivity=sensitivity)

"""Return on investment: what a candidate is worth per month against the ways the work is done
without it, with ranges that follow the interval of the quality behind them.

Per month, with V items, S minutes saved per correct output, L minutes lost per wrong one, a
person-hour at R and a serving-hour at P (seconds per item measured during evaluation):

  against a person doing every item (the candidate's accuracy p):
      hours saved = V (p S - (1 - p) L) / 60          value = hours saved x R
      serving cost = V x seconds per item / 3600 x P
  against another way of working (a base prompted zero- or few-shot, a fine-tune of another base;
  the paired accuracy gain d):
      hours saved = V d (S + L) / 60                  value = hours saved x R
      serving cost = V (candidate seconds x its P - baseline seconds x its P) / 3600
      (P: each model's base's serving_hourly_price, else the ROI's)
  net = value - serving cost;  training cost = training wall time / 3600 x training price;
  payback = training cost / net (months; never when net <= 0).
  evaluation cost (per comparison) = (suite scoring seconds + judge seconds) / 3600 x P, or, for a
  judge served at a price per token, suite scoring seconds / 3600 x P + the judge's tokens x its price.
  A served model priced per token (token_prices: input and output per million) costs its tokens instead
  of its seconds: serving cost per item = (input tokens x input price + output tokens x output price) per
  item of the ROI task, counted from its answers' `usage`; its evaluation cost likewise over the suite.

Every range takes the low and high end of the quality interval; costs are measured points.

The frontier: each way of working's accuracy against its serving cost of 1,000 items (seconds per
item x 1,000 / 3600 x its P); on it, the ways no other beats at the same or a lower cost, each with
the paired gain over the cheaper frontier point before it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from harness.config import HarnessSpec, RoiSpec, SuiteSpec
from harness.errors import HarnessError
from harness.pairing import as_suite_task, pair_records
from harness.persisted import TrainManifest, read_record
from harness.plan import ModelEntry, Plan, PlannedRun, roi_task
from harness.records import (
    TRAIN_MANIFEST,
    AlternativeRecord,
    CandidateResult,
    Estimate,
    FrontierResult,
    FrontierStep,
    Payback,
    RoiLine,
    RoiResult,
)
from harness.sources.checkpoints import parameter_count
from harness.stats import analyze_paired, is_binary, score_interval
from harness.store import METRIC_PREFIX, Store

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
        serving = v * _per_item(spec, cand)
    else:
        def hours(q: float) -> float:
            return v * q * (s + lost) / 60
        serving = v * (_per_item(spec, cand) - _per_item(spec, baseline))
    h = quality.map(hours)
    value = h.map(lambda x: x * spec.hourly_rate)
    net = value.map(lambda x: x - serving)
    training = training_cost(spec, cand)
    return RoiLine(candidate=cand.name, baseline="human" if baseline is None else baseline.name, quality=quality,
                   value_per_month=value, serving_cost_per_month=serving, net_per_month=net,
                   hours_saved_per_month=h, training_cost=training, payback_months=_payback(training, net))


def _price(spec: RoiSpec, a: AlternativeRecord) -> float:
    return spec.serving_hourly_price if a.serving_hourly_price is None else a.serving_hourly_price


def _per_item(spec: RoiSpec, a: AlternativeRecord) -> float:
    """What serving one item costs: its tokens at their prices (a model priced per token), else its
    seconds at its machine's hourly price."""
    if a.token_cost_per_item is not None:
        return a.token_cost_per_item
    return a.seconds_per_item / 3600 * _price(spec, a)


def training_cost(spec: RoiSpec, a: AlternativeRecord) -> float | None:
    """What fine-tuning it cost: as the config gives it, else its training time at the training price
    (default: its serving price); None for a way of working without training."""
    if a.training_cost is not None:
        return a.training_cost
    price = _price(spec, a) if spec.training_hourly_price is None else spec.training_hourly_price
    return None if a.train_s is None else a.train_s / 3600 * price


def pareto(points: list[tuple[str, float, float]]) -> list[str]:
    """Names of the (name, cost, score) points on the frontier, cheapest first: those that score higher
    than every point costing as much or less (at equal cost, the higher score; at equal score, the cheaper)."""
    out, best = [], float("-inf")
    for name, _, score in sorted(points, key=lambda p: (p[1], -p[2])):
        if score > best:
            out.append(name)
            best = score
    return out


def frontier(task: str, alternatives: list[AlternativeRecord],
             paired: Callable[[str, str], Estimate]) -> FrontierResult:
    """The quality-cost frontier of the alternatives (their cost_per_1000 and accuracy estimates), each
    point with `paired(cheaper, dearer)`: the dearer's paired gain over the frontier point before it."""
    by_name = {a.name: a for a in alternatives}
    names = pareto([(a.name, a.cost_per_1000, a.accuracy.estimate) for a in alternatives])
    steps = [FrontierStep(name=n, cost_per_1000=by_name[n].cost_per_1000, accuracy=by_name[n].accuracy,
                          versus=prev, gain=None if prev is None else paired(prev, n))
             for prev, n in zip([None, *names[:-1]], names, strict=True)]
    return FrontierResult(task=task, steps=steps)


def _scaled(a: AlternativeRecord, field: str, factor: float) -> AlternativeRecord:
    """An alternative whose own price moves with the ROI's (a base priced on a machine of its own)."""
    if field != "serving_hourly_price":
        return a
    if a.token_cost_per_item is not None:  # priced per token: the price of its tokens moves instead
        return a.model_copy(update={"token_cost_per_item": a.token_cost_per_item * factor})
    if a.serving_hourly_price is None:
        return a
    return a.model_copy(update={"serving_hourly_price": a.serving_hourly_price * factor})


def _tornado(spec: RoiSpec, cand: AlternativeRecord, baseline: AlternativeRecord, quality: Estimate) -> dict:
    """Net per month of `cand` against `baseline` as each input moves alone (quality: its interval)."""
    bars = [{"input": "quality (interval)", "low": _line(spec, cand, baseline, quality).net_per_month.low,
             "high": _line(spec, cand, baseline, quality).net_per_month.high}]
    for field, label in (("volume_per_month", "volume per month"), ("minutes_saved_per_correct", "minutes saved"),
                         ("hourly_rate", "hourly rate"), ("serving_hourly_price", "serving price")):
        base_value = spec.saved_minutes if field == "minutes_saved_per_correct" else getattr(spec, field)
        nets = [_line(spec.model_copy(update={field: base_value * f}), _scaled(cand, field, f),
                      _scaled(baseline, field, f), quality).net_per_month.estimate for f in SENSITIVITY_FACTORS]
        bars.append({"input": f"{label} ×{SENSITIVITY_FACTORS[0]}–×{SENSITIVITY_FACTORS[1]}",
                     "low": nets[0], "high": nets[1]})
    return {"candidate": cand.name, "baseline": baseline.name,
            "net": _line(spec, cand, baseline, quality).net_per_month.estimate, "bars": bars}


def _evaluation_cost(spec: RoiSpec, a: AlternativeRecord) -> float:
    """Its scoring's seconds at its serving price, and the judge's: its seconds at that price, or what a
    served judge charged for its tokens."""
    judge = a.judge_s / 3600 * _price(spec, a) if a.judge_cost is None else a.judge_cost
    own = a.eval_s / 3600 * _price(spec, a) if a.eval_token_cost is None else a.eval_token_cost
    return own + judge


def compute_roi(spec: RoiSpec, task: str, alternatives: list[AlternativeRecord],
                gains: dict[tuple[str, str], Estimate],
                paired: Callable[[str, str], Estimate] | None = None) -> RoiResult:
    """ROI lines: every alternative against a person doing the work, and every pair in `gains`.

    `gains[(candidate, baseline)]` is the paired accuracy gain of the candidate over the baseline
    alternative (a way of prompting a base, a fine-tune of another base), with its interval. With
    `paired` (as `frontier` takes it), the result carries the quality-cost frontier.
    """
    alternatives = [a.model_copy(update={"evaluation_cost": _evaluation_cost(spec, a),
                                         "cost_per_1000": 1000 * _per_item(spec, a)})
                    for a in alternatives]
    by_name = {a.name: a for a in alternatives}
    prompted = [a for a in alternatives if a.kind != "candidate"]
    lines = [_line(spec, a, None, a.accuracy) for a in alternatives]  # every way of working vs a person
    lines += [_line(spec, by_name[c], by_name[b], g) for (c, b), g in gains.items()]
    sensitivity = []
    for cand in (a for a in alternatives if a.kind == "candidate"):
        # the alternative the fine-tune must beat: the best prompting of any base
        against = [b for b in prompted if (cand.name, b.name) in gains]
        if against:
            best = max(against, key=lambda b: b.accuracy.estimate)
            sensitivity.append(_tornado(spec, cand, best, gains[(cand.name, best.name)]))
    return RoiResult(task=task, currency=spec.currency, inputs=spec.model_dump(), alternatives=alternatives,
                     lines=lines, sensitivity=sensitivity,
                     frontier=None if paired is None else frontier(task, alternatives, paired))


# --------------------------------------------------------------------------- from the stored runs


def train_manifest(model: ModelEntry) -> TrainManifest | None:
    """The trainer's manifest beside a fine-tune (its adapter or full model folder); None without one."""
    path = Path(model.adapter_dir or model.model_dir) / TRAIN_MANIFEST
    return read_record(path, TrainManifest) if path.is_file() else None


def _train_seconds(model: ModelEntry) -> float | None:
    """Seconds the trainer spent on a fine-tune; None without its manifest."""
    manifest = train_manifest(model)
    return None if manifest is None else manifest.wall_s


def roi_of_runs(plan: Plan, spec: HarnessSpec, suite: SuiteSpec, store: Store,
                results: list[CandidateResult] = ()) -> RoiResult:
    """Accuracy, speed, size and training cost of each way to do the ROI task, on every base, then the
    money, and the quality-cost frontier; `results` (compare_runs') give what judging each candidate
    cost and each one's forgetting and bias change against its own base."""
    assert spec.roi is not None
    task = roi_task(spec, suite)
    tspec = next(t for t in suite.tasks if t.task == task)
    col = METRIC_PREFIX + tspec.metric
    runs = [r for r in plan.runs if r.task.leaf == task]
    if not runs:
        raise HarnessError(f"roi.task: '{task}' expands to several lm-eval tasks; name one of them")
    prices = {label: b.serving_hourly_price for label, b, _ in spec.all_bases()}
    given = {c.name: c.training_cost for _, c, _ in spec.all_candidates()}
    by_label = {cr.candidate: cr for cr in results}
    # candidate -> the judge's seconds and tokens on its answers, as compare_runs summed them
    judged = {cr.candidate: (sum(j.judge_s for j in cr.judged), sum(j.judge_tokens for j in cr.judged))
              for cr in results}
    served = spec.judge.endpoint if spec.judge is not None else None
    price_per_token = served.price_per_million_tokens / 1e6 \
        if served is not None and served.price_per_million_tokens is not None else None
    read: dict = {}
    manifests = {r.key: store.read_manifest(r.key) for r in plan.distinct}  # once each
    sizes: dict = {}  # folder -> parameters (safetensors headers, read once)

    def parameters(folder: Path | None) -> int | None:
        if folder not in sizes:
            sizes[folder] = parameter_count(folder)
        return sizes[folder]

    def records(run: PlannedRun) -> pd.DataFrame:
        if run.key not in read:
            read[run.key] = as_suite_task(store.read(run.key), run)
        return read[run.key]

    def alternative(name: str, kind: str, run: PlannedRun, train_s: float | None = None) -> AlternativeRecord:
        df = records(run)
        df = df[df["filter"] == tspec.filter]
        values = df[col].to_numpy(dtype=float) if col in df else np.array([0.5])
        if col not in df or not is_binary(values):
            raise HarnessError(f"roi: task {task}, metric {tspec.metric} is not a 0/1 per-item metric; "
                               "the ROI values correct outputs")
        m = run.model
        own = [r for r in plan.runs if r.model.label == m.label]
        peaks = [p for r in own if (p := manifests[r.key].peak_memory_mb) is not None]
        weights, adapter = parameters(m.model_dir), parameters(m.adapter_dir)
        cr = by_label.get(m.label) if kind in ("candidate", "prompting") else None
        spent = judged.get(m.label, (0.0, 0))
        price = m.served.prices if m.served is not None else None  # priced per token (plan._served)
        man = manifests[run.key]
        counted = man.input_tokens is not None
        per_in = man.input_tokens / values.size if counted else None
        per_out = (man.output_tokens or 0) / values.size if counted else None
        if price is not None and not counted:
            raise HarnessError(f"roi: {m.label} is priced per token (token_prices), but its stored run of {task} "
                               "counted no tokens (scored before the harness kept them, or by a server without "
                               "`usage`); score it again (delete its run from the store) or drop its token_prices")

        def cost(n_in: float, n_out: float) -> float:
            return (n_in * price.input_per_million + n_out * price.output_per_million) / 1e6
        return AlternativeRecord(
            name=name, kind=kind, base=m.base, n=values.size,
            accuracy=score_interval(values, binary=True, confidence=spec.stats.confidence),
            seconds_per_item=man.wall_s / values.size, train_s=train_s,
            input_tokens_per_item=per_in, output_tokens_per_item=per_out,
            token_cost_per_item=None if price is None else cost(per_in, per_out),
            eval_token_cost=None if price is None else sum(
                cost(manifests[r.key].input_tokens or 0, manifests[r.key].output_tokens or 0) for r in own),
            training_cost=given.get(m.label) if kind == "candidate" else None,
            eval_s=sum(manifests[r.key].wall_s for r in own), judge_s=spent[0], judge_tokens=spent[1],
            judge_cost=None if price_per_token is None else spent[1] * price_per_token,
            serving_hourly_price=prices[m.base],
            parameters=None if weights is None else weights + (adapter or 0),
            trainable_parameters=(adapter if m.adapter_dir is not None else weights) if kind == "candidate" else None,
            peak_memory_mb=max(peaks) if peaks else None,
            forgetting=(r.delta if cr is not None and (r := cr.role("forgetting")) else None),
            bias=(r.delta if cr is not None and (r := cr.role("bias")) else None))

    def gain(baseline: PlannedRun, other: PlannedRun) -> Estimate:
        """`other` - `baseline` on the ROI task, paired by document (0/1 scores: any tokenizers)."""
        joined = pair_records(records(baseline), records(other), task, tspec.filter,
                       f"{other.model.label} (against {baseline.model.label})", same="doc")
        return analyze_paired(joined[f"{col}_base"].to_numpy(dtype=float),
                              joined[f"{col}_cand"].to_numpy(dtype=float), confidence=spec.stats.confidence).delta

    alts, prompted, ways = [], {}, {}
    for b in (m for m in plan.models if m.is_base):  # each base: zero-shot, few-shot, its prompting arms
        base_run = next(r for r in runs if r.model.label == b.label)
        ways[f"{b.label} 0-shot"] = (base_run, "zero-shot")
        for run in (r for r in plan.baselines if r.model.label == b.label):
            ways[f"{b.label} {spec.roi.fewshot}-shot"] = (run, "few-shot")
        for run in (r for r in runs if r.model.of == b.label):
            ways[run.model.label] = (run, "prompting")
    for name, (run, kind) in ways.items():
        alts.append(alternative(name, kind, run))
        prompted[name] = run
    tuned = [r for r in runs if not r.model.is_base and not r.model.prompting]
    gains = {}
    for i, run in enumerate(tuned):
        alts.append(alternative(run.model.label, "candidate", run, _train_seconds(run.model)))
        for name, brun in prompted.items():
            gains[(run.model.label, name)] = gain(brun, run)
        for earlier in tuned[:i]:  # fine-tunes of different bases against each other
            if earlier.model.base != run.model.base:
                gains[(run.model.label, earlier.model.label)] = gain(earlier, run)
    run_of = {**prompted, **{r.model.label: r for r in tuned}}
    return compute_roi(spec.roi, task, alts, gains, paired=lambda a, b: gain(run_of[a], run_of[b]))

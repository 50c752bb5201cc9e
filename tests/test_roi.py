"""ROI figures against a hand-worked example, including the ranges that follow the intervals."""

from __future__ import annotations

import pytest

from harness.config import RoiSpec
from harness.records import AlternativeRecord, Estimate
from harness.roi import compute_roi

SPEC = RoiSpec(volume_per_month=1000, human_minutes_per_item=6, hourly_rate=60, minutes_lost_per_wrong=10,
               serving_hourly_price=2, training_hourly_price=3)
CAND = AlternativeRecord(name="cand", kind="candidate", n=200, accuracy=Estimate(estimate=0.9, low=0.85, high=0.94),
                         seconds_per_item=0.36, train_s=1800)
BASE = AlternativeRecord(name="base 0-shot", kind="zero-shot", n=200,
                         accuracy=Estimate(estimate=0.5, low=0.43, high=0.57), seconds_per_item=0.18)
GAIN = Estimate(estimate=0.4, low=0.33, high=0.47)


def _approx(r, est, low, high):
    assert (r.estimate, r.low, r.high) == (pytest.approx(est), pytest.approx(low), pytest.approx(high))


def test_hand_worked_example():
    roi = compute_roi(SPEC, "t", [BASE, CAND], {("cand", "base 0-shot"): GAIN})
    by = {(line.candidate, line.baseline): line for line in roi.lines}

    # against a person: hours = 1000 (p*6 - (1-p)*10) / 60, at p = 0.9 [0.85, 0.94]
    human = by[("cand", "human")]
    _approx(human.hours_saved_per_month, 1000 * (5.4 - 1.0) / 60, 1000 * (5.1 - 1.5) / 60, 1000 * (5.64 - 0.6) / 60)
    _approx(human.value_per_month, 4400, 3600, 5040)  # hours x $60
    assert human.serving_cost_per_month == pytest.approx(0.2)  # 1000 x 0.36 s / 3600 x $2
    _approx(human.net_per_month, 4399.8, 3599.8, 5039.8)
    assert human.training_cost == pytest.approx(1.5)  # 1800 s at $3/h
    pb = human.payback_months
    assert (pb.best, pb.estimate, pb.worst) == (pytest.approx(1.5 / 5039.8), pytest.approx(1.5 / 4399.8),
                                                 pytest.approx(1.5 / 3599.8))

    # against the base zero-shot: hours = 1000 x gain x (6 + 10) / 60, gain 0.4 [0.33, 0.47]
    vs_base = by[("cand", "base 0-shot")]
    _approx(vs_base.value_per_month, 6400, 5280, 7520)
    assert vs_base.serving_cost_per_month == pytest.approx(0.1)  # (0.36 - 0.18) s per item
    _approx(vs_base.net_per_month, 6399.9, 5279.9, 7519.9)

    # the base alone against a person: p = 0.5 loses (0.5*6 - 0.5*10) = -2 minutes per item
    base = by[("base 0-shot", "human")]
    _approx(base.net_per_month, 1000 * -2 / 60 * 60 - 0.1, 1000 * (0.43 * 6 - 0.57 * 10) - 0.1,
            1000 * (0.57 * 6 - 0.43 * 10) - 0.1)
    assert base.training_cost is None and base.payback_months is None


def test_sensitivity_moves_one_input_at_a_time():
    roi = compute_roi(SPEC, "t", [BASE, CAND], {("cand", "base 0-shot"): GAIN})
    (tornado,) = roi.sensitivity
    bars = {b["input"].split(" ×")[0]: (b["low"], b["high"]) for b in tornado["bars"]}
    assert bars["quality (interval)"] == (pytest.approx(5279.9), pytest.approx(7519.9))
    assert bars["volume per month"] == (pytest.approx(3199.95), pytest.approx(9599.85))
    assert bars["minutes saved"] == (pytest.approx(1000 * 0.4 * 13 / 60 * 60 - 0.1), pytest.approx(7599.9))
    assert bars["hourly rate"] == (pytest.approx(3199.9), pytest.approx(9599.9))
    assert bars["serving price"] == (pytest.approx(6399.95), pytest.approx(6399.85))


def test_never_pays_back_when_the_gain_is_negative():
    loss = Estimate(estimate=-0.1, low=-0.2, high=0.05)
    roi = compute_roi(SPEC, "t", [BASE, CAND], {("cand", "base 0-shot"): loss})
    line = next(x for x in roi.lines if x.baseline == "base 0-shot")
    assert line.net_per_month.estimate < 0 and line.payback_months.estimate is None
    assert line.payback_months.worst is None and line.payback_months.best is not None  # pays back only at best

"""Prompting arms (myth 5: would prompting alone have done it?): the base prompted k-shot, with a role
prompt, or chain-of-thought, scored on the suite, paired with the base by document, drawn beside the
fine-tunes, valued in the ROI, and each fine-tune paired with the best of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from harness.errors import ConfigError, HarnessError
from harness.pipeline import load, run_comparison

ROLE = "You triage workers' compensation claims into FALL, STRAIN, BURN, CUT or DENY."
ARMS = [
    {"name": "base-2shot", "num_fewshot": {"demo_triage": 2}},
    {"name": "base-role", "system_prompt": ROLE},
    {"name": "base-cot", "variants": {"demo_triage": {"task": "demo_triage_cot", "metric": "exact_match",
                                                      "filter": "get-answer"}}},
]


def _arms(config: Path, arms: list[dict], **more) -> Path:
    data = yaml.safe_load(config.read_text())
    data.update(prompting=arms, **more)
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


def _by_doc(store, run, column: str, filter_: str = "none") -> dict[int, float]:
    df = store.read(run.key)
    df = df[df["filter"] == filter_]
    return dict(zip(df["doc_id"], df[column], strict=True))


def test_prompting_arms_are_compared_with_the_base_and_each_fine_tune_with_the_best(tiny_config, tmp_path):
    from harness.plan import plan_runs
    from harness.report.render import render_report
    from harness.store import Store

    roi = {"volume_per_month": 1000, "human_minutes_per_item": 5, "hourly_rate": 40, "serving_hourly_price": 1,
           "fewshot": 2}
    gates = [{"rule": "improves", "role": "target", "min_delta": 0.0}]
    config = _arms(tiny_config(limit=10), ARMS, roi=roi, gates=gates)
    loaded = load(config)
    logs: list[str] = []
    result = run_comparison(loaded, log=logs.append)
    kinds = {cr.candidate: (cr.kind, cr.paired_by) for cr in result.results}
    assert kinds == {"domain-only": ("fine-tune", "prompt"), "with-replay": ("fine-tune", "prompt"),
                     "base-2shot": ("prompting", "doc"), "base-role": ("prompting", "doc"),
                     "base-cot": ("prompting", "doc")}
    # what each arm saw: two worked claims more; the role prompt first; the chain-of-thought instruction
    store = Store(loaded.spec.store)
    plan = plan_runs(loaded.spec, loaded.suite, store)
    runs = {(r.model.label, r.task.leaf): r for r in plan.runs}
    prompts = {label: store.read(runs[(label, "demo_triage")].key).sort_values("doc_id")["prompt"].iloc[0]
               for label in ("base", "base-2shot", "base-role", "base-cot")}
    assert prompts["base-2shot"].count("Claim:") == prompts["base"].count("Claim:") + 2
    assert prompts["base-role"].startswith(ROLE) and prompts["base-role"].endswith(prompts["base"])
    assert "Think step by step" in prompts["base-cot"] and "Think step by step" not in prompts["base"]
    # an arm prompted as the suite on a task shares nothing it should not: the role arm is scored anew
    # everywhere, the 2-shot arm only on triage (its other tasks are the base's own runs)
    assert runs[("base-2shot", "demo_capitals")].key == runs[("base", "demo_capitals")].key
    assert runs[("base-role", "demo_capitals")].key != runs[("base", "demo_capitals")].key

    # the arms' deltas, by hand from the stored records, paired by document
    base_acc = _by_doc(store, runs[("base", "demo_triage")], "metric.acc")
    arm_acc = {"base-2shot": _by_doc(store, runs[("base-2shot", "demo_triage")], "metric.acc"),
               "base-role": _by_doc(store, runs[("base-role", "demo_triage")], "metric.acc"),
               "base-cot": _by_doc(store, runs[("base-cot", "demo_triage")], "metric.exact_match", "get-answer")}
    for label, acc in arm_acc.items():
        assert set(acc) == set(base_acc)
        cr = next(c for c in result.results if c.candidate == label)
        task = next(t for t in cr.tasks if t.task == "demo_triage")
        assert task.delta.estimate == pytest.approx(np.mean([acc[d] - base_acc[d] for d in base_acc]), abs=1e-12)
    # no arm beats the tiny base (it cannot triage, however prompted): the base is the prompting to beat
    from harness.compare import best_prompting, compare_runs

    gains = {cr.candidate: cr.role("target").delta.estimate for cr in result.results if cr.kind == "prompting"}
    assert max(gains.values()) <= 0, gains
    assert [(v.candidate, v.reference) for v in result.versus_prompting] == [("domain-only", "base"),
                                                                              ("with-replay", "base")]
    assert result.versus_prompting[0] == result.results[0]
    # an arm that gains is the reference, each fine-tune paired with it by document
    positive = [cr.model_copy(update={"roles": [r.model_copy(update={"delta": r.delta.map(lambda x: x + 1)})
                                                for r in cr.roles]}) if cr.candidate == "base-cot" else cr
                for cr in result.results]
    assert best_prompting(positive, plan.models) == "base-cot"
    assert best_prompting([cr for cr in result.results if cr.kind == "fine-tune"], plan.models) is None
    import harness.compare

    real_best = harness.compare.best_prompting
    try:
        harness.compare.best_prompting = lambda results, models: "base-cot"
        again = compare_runs(plan, loaded.spec, loaded.suite, store)
    finally:
        harness.compare.best_prompting = real_best
    assert [(v.candidate, v.reference, v.paired_by) for v in again.versus_prompting] == [
        ("domain-only", "base-cot", "doc"), ("with-replay", "base-cot", "doc")]
    tuned = _by_doc(store, runs[("domain-only", "demo_triage")], "metric.acc")
    versus = next(t for t in again.versus_prompting[0].tasks if t.task == "demo_triage")
    assert versus.delta.estimate == pytest.approx(np.mean([tuned[d] - arm_acc["base-cot"][d] for d in tuned]),
                                                  abs=1e-12)
    capitals = next(t for t in again.versus_prompting[0].tasks if t.task == "demo_capitals")
    assert capitals.delta == next(t for t in result.results[0].tasks if t.task == "demo_capitals").delta
    # gates judge the fine-tunes; the ROI counts the arms as ways of working
    assert {v.candidate for v in result.gates} == {"domain-only", "with-replay"}
    alternatives = {a.name: a.kind for a in result.roi.alternatives}
    assert alternatives == {"base 0-shot": "zero-shot", "base 2-shot": "few-shot", "base-2shot": "prompting",
                            "base-role": "prompting", "base-cot": "prompting", "domain-only": "candidate",
                            "with-replay": "candidate"}
    assert {(line.candidate, line.baseline) for line in result.roi.lines} >= {
        ("domain-only", "base-role"), ("domain-only", "base-cot"), ("with-replay", "base-2shot")}

    html = render_report(result, tmp_path / "report").read_text()
    assert "Would prompting alone have done it?" in html
    assert "None of them scores higher on the target than the base as it is prompted" in html
    html = render_report(again, tmp_path / "report-arm").read_text()
    assert "The best of them on the target role, <code>base-cot</code>, is what each fine-tune must beat" in html
    assert "Prompting arm <code>base-cot</code>" in html and "prompting arm: base, system prompt" in html
    assert html.count("<title>base-") == 3  # a diamond per arm in the trade-off chart
    assert "2 candidate(s) and 3 prompting arm(s) against the base" in html


def test_bad_prompting_arms_say_which_arm_and_key(tiny_config):
    with pytest.raises(ConfigError,
                       match=r"prompting\[0\] \(x\): of: 'nope' is neither base, another base nor a candidate"):
        load(_arms(tiny_config(), [{"name": "x", "of": "nope"}]))
    with pytest.raises(ConfigError, match="candidate, prompting or base name used twice: domain-only"):
        load(_arms(tiny_config(), [{"name": "domain-only"}]))
    with pytest.raises(ConfigError, match=r"prompting\[0\]\.num_fewshot"):
        load(_arms(tiny_config(), [{"name": "x", "num_fewshot": -1}]))
    for arm, message in [
        ({"name": "x", "variants": {"nope": {"task": "demo_triage_cot", "metric": "exact_match"}}},
         r"prompting\[0\] \(x\): variants.nope: not a task of suite demo"),
        ({"name": "x", "num_fewshot": {"nope": 2}}, r"prompting\[0\] \(x\): num_fewshot.nope: not a task of suite"),
        ({"name": "x", "variants": {"demo_triage": {"task": "no_such_task", "metric": "acc"}}},
         r"prompting\[0\] \(x\): variants.demo_triage.task: unknown task 'no_such_task'"),
    ]:
        with pytest.raises(ConfigError, match=message):
            run_comparison(load(_arms(tiny_config(), [arm])), log=lambda m: None)
    # few-shot examples a task does not have, and a variant's metric it does not compute
    with pytest.raises(HarnessError, match=r"demo_capitals.*needs few-shot examples"):
        run_comparison(load(_arms(tiny_config(), [{"name": "x", "num_fewshot": 2}])), log=lambda m: None)
    bad = {"name": "x", "variants": {"demo_triage": {"task": "demo_triage_cot", "metric": "acc",
                                                     "filter": "get-answer"}}}
    with pytest.raises(HarnessError, match=r"x: variant demo_triage_cot of demo_triage: no per-item metric 'acc' "
                                           r"\(have: exact_match\); fix its `metric:`"):
        run_comparison(load(_arms(tiny_config(limit=3), [bad])), log=lambda m: None)

"""Several bases in one comparison: each fine-tune against its own base, models paired across
tokenizers where their metrics allow it, the quality-cost frontier, and the ROI across bases.

The tiny world has two bases: the demo's shape and a quarter-size one with its own, smaller
tokenizer, each with a fine-tune.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, stored_records
from harness.config import RoiSpec
from harness.errors import ConfigError, HarnessError
from harness.records import AlternativeRecord, Estimate
from harness.roi import compute_roi, frontier, pareto

ROI = {"volume_per_month": 1000, "human_minutes_per_item": 5, "hourly_rate": 40, "serving_hourly_price": 2.0,
       "training_hourly_price": 3.0, "fewshot": 0}


def _config(tiny_config, tiny_world, bases: list[dict] | None = None, **top) -> Path:
    path = tiny_config(candidates={"domain-only": tiny_world.candidates["domain-only"]})
    data = yaml.safe_load(path.read_text())
    small = tiny_world.other_bases["small"]
    data["bases"] = bases if bases is not None else [
        {"name": "small", "path": str(small),
         "candidates": [{"name": "small-tuned", "adapter": str(tiny_world.other_candidates["small"]["domain-only"])}]}]
    data["roi"] = ROI
    data.update(top)
    path.write_text(yaml.safe_dump(data))
    return path


def _run(config: Path):
    from harness.pipeline import load, run_comparison

    return run_comparison(load(config), log=lambda m: None, record=False)


# ----------------------------------------------------------------------------- config errors
def test_two_bases_with_one_name_are_refused_naming_the_key(tiny_config, tiny_world):
    small = str(tiny_world.other_bases["small"])
    config = _config(tiny_config, tiny_world, [{"name": "small", "path": small}, {"name": "small", "path": small}])
    from harness.pipeline import load

    with pytest.raises(ConfigError, match=r"bases\[1\]\.name: 'small' is the name of bases\[0\] too"):
        load(config)
    config = _config(tiny_config, tiny_world, [{"name": "domain-only", "path": small}])
    with pytest.raises(ConfigError, match="candidate, prompting or base name used twice: domain-only"):
        load(config)


def test_several_bases_without_prices_are_refused_naming_roi(tiny_config, tiny_world):
    from harness.pipeline import load

    config = _config(tiny_config, tiny_world)
    data = yaml.safe_load(config.read_text())
    del data["roi"]
    config.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"roi: several bases are compared on a frontier of quality against cost"):
        load(config)


def test_an_adapter_under_the_wrong_base_is_refused_naming_it(tiny_config, tiny_world):
    """The first base's adapter listed under the small base: its LoRA matrices do not fit, and the
    error says which entry, and that it belongs under another base."""
    from harness.pipeline import load
    from harness.plan import plan_runs
    from harness.store import Store

    config = _config(tiny_config, tiny_world, [
        {"name": "small", "path": str(tiny_world.other_bases["small"]),
         "candidates": [{"name": "misplaced", "adapter": str(tiny_world.candidates["with-replay"])}]}])
    loaded = load(config)
    with pytest.raises(HarnessError, match=r"bases\[0\] \(small\)\.candidates\[0\] \(misplaced\) expects layer "
                                           r".* list it under the base it was trained on"):
        plan_runs(loaded.spec, loaded.suite, Store(loaded.spec.store))


def test_a_fine_tune_with_no_training_cost_is_refused_unless_given(tiny_config, tiny_world, tmp_path):
    from harness.pipeline import load

    bare = tmp_path / "bare-adapter"
    shutil.copytree(tiny_world.other_candidates["small"]["domain-only"], bare)
    (bare / "train_manifest.json").unlink()  # an adapter trained elsewhere: nothing says what it cost
    entry = {"name": "small", "path": str(tiny_world.other_bases["small"]),
             "candidates": [{"name": "bare", "adapter": str(bare)}]}
    with pytest.raises(ConfigError, match=r"bases\[0\]\.candidates\[0\]\.training_cost: .*bare-adapter has no "
                                          r"train_manifest\.json"):
        load(_config(tiny_config, tiny_world, [entry]))
    entry["candidates"][0]["training_cost"] = 7.5
    loaded = load(_config(tiny_config, tiny_world, [entry]))
    assert loaded.spec.bases[0].candidates[0].training_cost == 7.5


# ----------------------------------------------------------------------------- the comparison
@pytest.fixture(scope="module")
def two_bases(tiny_world, tmp_path_factory):
    """The tiny world's two bases, each with a fine-tune, compared once (first 12 items per task)."""
    tmp = tmp_path_factory.mktemp("bases")
    small = tiny_world.other_bases["small"]
    data = {"name": "bases", "base": {"path": str(tiny_world.base)},
            "candidates": [{"name": "domain-only", "adapter": str(tiny_world.candidates["domain-only"])}],
            "bases": [{"name": "small", "path": str(small), "serving_hourly_price": 0.5,
                       "candidates": [{"name": "small-tuned",
                                       "adapter": str(tiny_world.other_candidates["small"]["domain-only"])}]}],
            "suite": str(REPO / "suites" / "demo.yaml"), "eval": {"batch_size": 16, "limit": 12},
            "stats": {"resamples": 500}, "store": str(tmp / "store"), "report_dir": str(tmp / "report"), "roi": ROI}
    config = tmp / "bases.yaml"
    config.write_text(yaml.safe_dump(data))
    return config, _run(config)


def test_each_fine_tune_is_paired_with_its_own_base_and_the_bases_with_each_other(two_bases):
    _, result = two_bases
    by = {cr.candidate: cr for cr in result.results}
    assert {k: (cr.kind, cr.reference) for k, cr in by.items()} == {
        "domain-only": ("fine-tune", "base"), "small-tuned": ("fine-tune", "small"), "small": ("base", "base")}
    # a fine-tune and its base share a tokenizer: every task is paired, bias scores included
    assert not by["small-tuned"].refused and by["small-tuned"].role("bias") is not None
    assert {m.label: (m.base, m.is_base) for m in [result.base, *result.candidates]} == {
        "base": ("base", True), "domain-only": ("base", False), "small": ("small", True),
        "small-tuned": ("small", False)}


def test_across_tokenizers_accuracy_is_paired_and_log_likelihood_values_are_refused(two_bases):
    """The two bases have different tokenizers: their 0/1 metrics are paired by document (the delta is
    the difference of the stored per-item scores), their bias scores (log-likelihood differences in
    nats over each model's own tokens) are refused, saying why, and the bias role is absent."""
    config, result = two_bases
    cross = next(cr for cr in result.results if cr.candidate == "small")
    assert set(cross.refused) == {"demo_pronoun_bias", "demo_note_bias"}
    assert all("different tokenizers" in why for why in cross.refused.values())
    assert cross.role("bias") is None and cross.role("target") is not None
    records = stored_records(config)
    for task in ("demo_triage", "demo_capitals"):
        b = records[("base", task)]["metric.acc"].to_numpy(dtype=float)
        s = records[("small", task)]["metric.acc"].to_numpy(dtype=float)
        t = next(t for t in cross.tasks if t.task == task)
        assert t.n == b.size == s.size == 12
        assert t.delta.estimate == pytest.approx(s.mean() - b.mean(), abs=1e-12)
    # generated text scored against a reference is paired too
    assert any(t.task == "demo_triage_note" for t in cross.tasks)


def test_loglikelihood_values_are_told_from_decisions_and_generated_text():
    import pandas as pd

    from harness.compare import loglikelihood_valued

    frame = pd.DataFrame({"scores_base": [[-1.0, -2.0], [-3.0, -1.0]], "scores_cand": [[-1.5, -2.0], [-2.0, -1.0]],
                          "metric.acc_base": [1.0, 0.0], "metric.acc_cand": [1.0, 1.0],
                          "metric.bias_score_base": [1.0, -2.0], "metric.bias_score_cand": [0.5, -1.0]})
    assert not loglikelihood_valued(frame, "acc")
    assert loglikelihood_valued(frame, "bias_score")
    generated = frame.assign(scores_base=[[], []], scores_cand=[[], []], **{"metric.bias_score_base": [0.3, 0.7]})
    assert not loglikelihood_valued(generated, "bias_score")  # a reference metric of generated text


def test_the_frontier_and_the_roi_span_both_bases(two_bases):
    _, result = two_bases
    roi = result.roi
    alts = {a.name: a for a in roi.alternatives}
    assert set(alts) == {"base 0-shot", "small 0-shot", "domain-only", "small-tuned"}
    assert {a.name: a.base for a in roi.alternatives} == {"base 0-shot": "base", "small 0-shot": "small",
                                                          "domain-only": "base", "small-tuned": "small"}
    # each priced at its base's machine: 2.0 an hour for the first, 0.5 for small
    for a in roi.alternatives:
        price = 0.5 if a.base == "small" else 2.0
        assert a.cost_per_1000 == pytest.approx(a.seconds_per_item * 1000 / 3600 * price)
    assert alts["small-tuned"].parameters < alts["domain-only"].parameters
    assert alts["small-tuned"].trainable_parameters < alts["small-tuned"].parameters
    assert alts["domain-only"].forgetting is not None and alts["base 0-shot"].forgetting is None
    # peak memory measured as each run was scored (hf, in this process: its resident set on a CPU)
    assert all(a.peak_memory_mb is not None and a.peak_memory_mb > 100 for a in roi.alternatives), [
        a.peak_memory_mb for a in roi.alternatives]
    # the frontier: the alternatives' own Pareto set, cheapest first, each step's gain paired by document
    names = pareto([(a.name, a.cost_per_1000, a.accuracy.estimate) for a in roi.alternatives])
    assert [s.name for s in roi.frontier.steps] == names
    for step in roi.frontier.steps[1:]:
        assert step.gain.estimate == pytest.approx(step.accuracy.estimate - alts[step.versus].accuracy.estimate)
    # ROI across bases: every fine-tune against every base prompted, and against the other base's fine-tune
    pairs = {(line.candidate, line.baseline) for line in roi.lines}
    assert pairs >= {("domain-only", "small 0-shot"), ("small-tuned", "base 0-shot"), ("small-tuned", "domain-only")}
    line = next(x for x in roi.lines if (x.candidate, x.baseline) == ("small-tuned", "domain-only"))
    serving = 1000 * (alts["small-tuned"].seconds_per_item * 0.5 - alts["domain-only"].seconds_per_item * 2.0) / 3600
    assert line.serving_cost_per_month == pytest.approx(serving)


def test_the_report_shows_the_bases_the_frontier_and_what_was_not_paired(two_bases):
    from harness.report.render import render_html

    _, result = two_bases
    html = render_html(result)
    assert 'id="frontier"' in html and "Best for this task under a budget" in html
    assert 'class="chart frontier"' in html
    assert "Base <code>small</code> against the first base" in html
    assert "Not paired:" in html and "different tokenizers" in html
    assert "(fine-tune of <code>small</code>, against it)" in html


def test_adding_a_third_base_evaluates_only_that_base(two_bases, tmp_path):
    """A third base (the small base's weights, nudged) added to the stored comparison: the plan has
    that base's runs to score and nothing else, and the comparison then places it on the frontier."""
    from safetensors.torch import load_file, save_file

    from harness.pipeline import load
    from harness.plan import plan_runs
    from harness.store import Store

    config, _ = two_bases
    data = yaml.safe_load(config.read_text())
    third = tmp_path / "third"
    shutil.copytree(data["bases"][0]["path"], third)
    weights = load_file(third / "model.safetensors")
    rng = np.random.default_rng(0)
    import torch

    weights = {k: v + torch.from_numpy(rng.normal(0, 0.01, tuple(v.shape)).astype(np.float32))
               for k, v in weights.items()}
    save_file(weights, third / "model.safetensors", metadata={"format": "pt"})
    data["bases"].append({"name": "third", "path": str(third)})
    grown = tmp_path / "grown.yaml"
    grown.write_text(yaml.safe_dump(data))
    loaded = load(grown)
    plan = plan_runs(loaded.spec, loaded.suite, Store(loaded.spec.store))
    assert plan.missing and {r.model.label for r in plan.missing} == {"third"}
    assert len(plan.missing) == len(plan.tasks)  # its suite tasks (fewshot: 0, no baseline run)
    result = _run(grown)
    assert "third 0-shot" in {a.name for a in result.roi.alternatives}


# ----------------------------------------------------------------------------- the frontier by hand
def test_pareto_keeps_what_no_cheaper_or_equal_cost_point_beats():
    points = [("a", 1.0, 0.5), ("b", 2.0, 0.4), ("c", 2.0, 0.7), ("d", 3.0, 0.7), ("e", 0.5, 0.2), ("f", 0.5, 0.1)]
    # e: cheapest; a beats e; b is beaten by a (cheaper, better); c beats a; d ties c at a higher cost
    assert pareto(points) == ["e", "a", "c"]
    assert pareto([]) == []


def _alt(name: str, acc: float, seconds: float, kind: str = "candidate", price: float | None = None,
         train_s: float | None = None) -> AlternativeRecord:
    return AlternativeRecord(name=name, kind=kind, n=100, accuracy=Estimate(estimate=acc, low=acc - 0.1,
                                                                             high=acc + 0.1),
                             seconds_per_item=seconds, serving_hourly_price=price, train_s=train_s)


def test_frontier_steps_carry_the_paired_gain_over_the_cheaper_neighbour():
    gains = {("cheap", "mid"): Estimate(estimate=0.2, low=0.1, high=0.3),
             ("mid", "best"): Estimate(estimate=0.05, low=-0.02, high=0.12)}
    alts = [_alt("cheap", 0.5, 0.01, "zero-shot"), _alt("mid", 0.7, 0.02), _alt("best", 0.75, 0.04),
            _alt("beaten", 0.6, 0.05)]
    alts = [a.model_copy(update={"cost_per_1000": a.seconds_per_item}) for a in alts]
    fr = frontier("t", alts, lambda a, b: gains[(a, b)])
    assert [(s.name, s.versus) for s in fr.steps] == [("cheap", None), ("mid", "cheap"), ("best", "mid")]
    assert fr.steps[0].gain is None and fr.steps[2].gain == gains[("mid", "best")]


def test_roi_prices_each_alternative_at_its_own_machine():
    """Per month, V = 1000: serving cost against a baseline is V (s_c P_c - s_b P_b) / 3600; training
    at the training price (3.0 an hour), hand-worked."""
    spec = RoiSpec(**ROI)
    base = _alt("big 0-shot", 0.3, 0.36, "zero-shot", price=4.0)
    cand = _alt("small-tuned", 0.8, 0.18, price=1.0, train_s=1800)
    gain = Estimate(estimate=0.5, low=0.4, high=0.6)
    roi = compute_roi(spec, "t", [base, cand], {("small-tuned", "big 0-shot"): gain})
    line = next(x for x in roi.lines if x.baseline == "big 0-shot")
    assert line.serving_cost_per_month == pytest.approx(1000 * (0.18 * 1.0 - 0.36 * 4.0) / 3600)  # -0.35
    assert line.training_cost == pytest.approx(0.5 * 3.0)
    by = {a.name: a for a in roi.alternatives}
    assert by["big 0-shot"].cost_per_1000 == pytest.approx(0.36 * 1000 / 3600 * 4.0)  # 0.4 per 1,000
    assert roi.frontier is None  # no pairing given: no frontier


def test_one_folder_in_two_dtypes_is_two_bases_each_loaded_in_its_own(tiny_config, tiny_world):
    """The same weights as `base` (float32) and as a second base in bfloat16: two loads, and the
    bfloat16 base's log-likelihoods are its own (not the float32 model's under another name)."""
    config = _config(tiny_config, tiny_world, [{"name": "bf16", "path": str(tiny_world.base), "dtype": "bfloat16"}])
    result = _run(config)
    cross = next(cr for cr in result.results if cr.candidate == "bf16")
    assert cross.kind == "base" and not cross.refused  # one tokenizer: everything paired
    records = stored_records(config)
    f32, bf16 = records[("base", "demo_capitals")], records[("bf16", "demo_capitals")]
    assert not np.allclose(np.concatenate(f32["scores"].to_list()), np.concatenate(bf16["scores"].to_list()))
    assert result.environment["dtype"]["bf16"].startswith("bfloat16")  # a slow CPU's warning may follow


def test_the_serving_price_bar_moves_every_machines_price():
    """Sensitivity: with each way on its own machine, 'serving price x0.5-x1.5' scales both prices,
    hand-worked: net = V d (S + L) R / 60 - V (s_c P_c - s_b P_b) / 3600."""
    spec = RoiSpec(**ROI)
    base = _alt("big 0-shot", 0.3, 0.36, "zero-shot", price=40.0)
    cand = _alt("small-tuned", 0.8, 0.72, price=10.0)
    gain = Estimate(estimate=0.5, low=0.4, high=0.6)
    (tornado,) = compute_roi(spec, "t", [base, cand], {("small-tuned", "big 0-shot"): gain}).sensitivity
    bar = next(b for b in tornado["bars"] if b["input"].startswith("serving price"))
    value = 1000 * 0.5 * (5 + 0) * 40 / 60
    for factor, end in zip((0.5, 1.5), ("low", "high"), strict=True):
        serving = 1000 * (0.72 * 10.0 * factor - 0.36 * 40.0 * factor) / 3600
        assert bar[end] == pytest.approx(value - serving)

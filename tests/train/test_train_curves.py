"""Learning and forgetting along training (checkpoints evaluated through the compare path) and
against data size (`harness sweep`), and both in the report."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from conftest import REPO
from harness.cli import main
from harness.config import TrainSpec
from harness.errors import HarnessError
from harness.persisted import SweepRecord, TrainManifest, read_record, write_record
from harness.pipeline import load, run_comparison
from harness.records import CurvePoint, CurveRecord, Estimate
from harness.store import Store
from harness.train.curve import best_x
from harness.train.lora import MANIFEST, train_lora
from harness.train.sweep import nested_subsets, run_sweep


@pytest.fixture
def eval_config(tiny_world, tmp_path):
    """A config with a base, the demo suite and a gate, and no candidates: what training fills in."""
    path = tmp_path / "eval.yaml"
    path.write_text(f"name: tiny-training\nbase: {{path: {tiny_world.base}}}\nsuite: {REPO / 'suites' / 'demo.yaml'}\n"
                    f"eval: {{batch_size: 16, limit: 12}}\nstats: {{resamples: 500}}\nstore: {tmp_path / 'store'}\n"
                    "gates:\n  - {rule: non_inferior, role: forgetting, margin: 0.1}\n")
    return path


def _spec(world, out, **kw) -> TrainSpec:
    return TrainSpec(base=str(world.base), data=str(world.root / "data" / "domain_train.jsonl"), out=str(out),
                     batch_size=8, lr=5e-3, **kw)


def test_checkpoints_are_evaluated_and_the_report_draws_the_curve(tiny_world, eval_config, tmp_path):
    out = tmp_path / "adapter"
    logs: list[str] = []
    manifest = train_lora(_spec(tiny_world, out, steps=12, eval_every=4, eval_config=str(eval_config)), log=logs.append)
    curve = manifest.eval_curve
    assert [p.x for p in curve.points] == [4, 8, 12] and curve.kind == "steps"
    assert all(set(p.roles) == {"target", "forgetting", "bias"} for p in curve.points)
    assert curve.best == max(curve.points, key=lambda p: (p.roles["target"].estimate + p.roles["forgetting"].estimate,
                                                         -p.x)).x
    assert sum(line.startswith("eval step-0000") for line in logs) == 3, logs
    # each checkpoint is a model in the store like any other: base + 3 checkpoints x 8 tasks
    assert len(Store(tmp_path / "store").runs()) == 4 * 8
    assert Store(tmp_path / "store").history() == []  # training's evaluations are not the config's history
    # the final adapter is the step-12 checkpoint byte for byte: comparing it evaluates nothing new
    text = eval_config.read_text() + f"candidates: [{{name: tuned, adapter: {out}}}]\nreport_dir: {tmp_path / 'r'}\n"
    (tmp_path / "cmp.yaml").write_text(text)
    run = CliRunner().invoke(main, ["compare", "--config", str(tmp_path / "cmp.yaml")])
    assert run.exit_code == 0, run.output
    assert "0 to evaluate" in run.output
    html = (tmp_path / "r" / "index.html").read_text()
    assert "learning and forgetting along training: tuned" in html
    assert f"best trade-off: {curve.best}" in html and html.count('class="best"') >= 2
    saved = json.loads((tmp_path / "r" / "comparison.json").read_text())
    assert saved["curves"][0]["best"] == curve.best and len(saved["curves"][0]["points"]) == 3


def test_eval_config_for_another_base_is_refused_before_training(tiny_world, eval_config, tmp_path):
    other = tmp_path / "other-base"
    other.mkdir()
    for f in tiny_world.base.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    (other / "config.json").write_text((other / "config.json").read_text().replace('"rms_norm_eps": 1e-06',
                                                                                   '"rms_norm_eps": 1e-05'))
    bad = eval_config.read_text().replace(str(tiny_world.base), str(other))
    eval_config.write_text(bad)
    with pytest.raises(HarnessError, match=r"eval.yaml: base.path is .*other-base, but training starts from"):
        train_lora(_spec(tiny_world, tmp_path / "a", steps=2, eval_every=1, eval_config=str(eval_config)))
    assert not (tmp_path / "a").exists()


def test_best_trade_off_is_the_highest_net_and_the_earliest_of_ties():
    def point(x, target, forgetting, bias=0.0):
        return CurvePoint(x=x, candidate=f"s{x}", roles={"target": Estimate(estimate=target, low=0, high=0),
                                                        "forgetting": Estimate(estimate=forgetting, low=0, high=0),
                                                        "bias": Estimate(estimate=bias, low=0, high=0)})
    points = [point(10, 0.2, 0.0, bias=1.0), point(20, 0.5, -0.1), point(30, 0.6, -0.2), point(40, 0.55, -0.15)]
    assert best_x(points) == 20  # 0.4 at 20 and at 30 and 40: the earliest; bias is no part of the trade-off
    assert best_x([point(10, 0.1, 0.0), point(20, 0.3, -0.1)]) == 20


def test_nested_subsets_hold_the_smaller_ones_in_file_order():
    lines = [f"l{i}" for i in range(100)]
    subsets = nested_subsets(lines, [10, 30, 100], seed=0)
    assert set(subsets[10]) < set(subsets[30]) < set(subsets[100]) and subsets[100] == lines
    assert all(s == sorted(s, key=lambda x: int(x[1:])) for s in subsets.values())
    assert nested_subsets(lines, [10], seed=1)[10] != subsets[10]


def test_sweep_trains_each_size_and_charts_gain_and_forgetting(tiny_world, eval_config, tmp_path):
    out = tmp_path / "sweep"
    logs: list[str] = []
    result = run_sweep(_spec(tiny_world, out, steps=8), [50, 100, 200], eval_config, log=logs.append)
    steps = {k: read_record(out / f"size-{k}" / MANIFEST, TrainManifest).steps for k in (50, 100, 200)}
    assert steps == {50: 2, 100: 4, 200: 8}  # the same passes over each subset
    assert [p.x for p in result.curve.points] == [50, 100, 200] and result.curve.kind == "data_size"
    saved = read_record(out / "sweep.json", SweepRecord)
    assert saved.curve == result.curve and saved.spec.steps == 8
    assert "learning and forgetting against data size" in result.report.read_text()
    # again: every size is reused, nothing trained
    logs.clear()
    run_sweep(_spec(tiny_world, out, steps=8), [50, 100, 200], eval_config, log=logs.append)
    assert sum("already trained" in line for line in logs) == 3 and not any("trained in" in m for m in logs)

    # the sweep in another comparison's report, named under `sweeps:`
    text = eval_config.read_text() + (f"candidates: [{{name: s200, adapter: {out / 'size-200'}}}]\n"
                                      f"sweeps: [{out / 'sweep.json'}]\nreport_dir: {tmp_path / 'r'}\n")
    (tmp_path / "cmp.yaml").write_text(text)
    compared = run_comparison(load(tmp_path / "cmp.yaml"), log=lambda m: None)
    assert [c.kind for c in compared.curves] == ["data_size"]


def test_a_sweep_of_another_base_is_refused_in_the_report(tiny_world, eval_config, tmp_path):
    sweep = tmp_path / "sweep.json"
    write_record(sweep, SweepRecord(base="elsewhere", base_weights="0" * 64, eval_config=str(eval_config),
                                    spec=_spec(tiny_world, tmp_path / "s"), scale_steps=True,
                                    curve=CurveRecord(kind="data_size", name="s", best=1, points=[])))
    text = eval_config.read_text() + (f"candidates: [{{name: c, adapter: {tiny_world.candidates['domain-only']}}}]\n"
                                      f"sweeps: [{sweep}]\n")
    (tmp_path / "cmp.yaml").write_text(text)
    run = CliRunner().invoke(main, ["compare", "--config", str(tmp_path / "cmp.yaml")])
    assert run.exit_code == 2
    assert re.search(r"sweep.json: the sweep fine-tuned another base than this comparison's", run.output), run.output


def test_sweep_cli_checks_its_sizes(tiny_world, eval_config, tmp_path):
    args = ["sweep", "--base", str(tiny_world.base), "--data", str(tiny_world.root / "data" / "domain_train.jsonl"),
            "--out", str(tmp_path / "s"), "--eval-config", str(eval_config)]
    run = CliRunner().invoke(main, [*args, "--sizes", "10,x"])
    assert run.exit_code == 2 and "--sizes 10,x: expected whole numbers" in run.output
    run = CliRunner().invoke(main, [*args, "--sizes", "10,999999"])
    assert run.exit_code == 2 and "each must be between 1 and the 2000 records" in run.output

"""`harness compare` end to end on the tiny world: evaluate, store, pair, report; then again
from the store alone."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from conftest import REPO
from harness.backends import hf
from harness.cli import main
from harness.comparison import ComparisonResult


@pytest.fixture
def compared(tiny_config):
    config = tiny_config()
    result = CliRunner().invoke(main, ["compare", "--config", str(config)])
    assert result.exit_code == 0, result.output
    return config, result


def test_compare_writes_report_and_json_for_every_candidate(compared, tmp_path):
    config, result = compared
    assert "plan: 3 models x 8 tasks = 24 distinct evaluations; 0 stored, 24 to evaluate" in result.output
    html = (tmp_path / "report" / "index.html").read_text()
    data = ComparisonResult.model_validate_json((tmp_path / "report" / "comparison.json").read_text())
    assert [c.candidate for c in data.results] == ["domain-only", "with-replay"]
    for cr in data.results:
        assert {r.role for r in cr.roles} == {"target", "forgetting", "bias"}
        assert len(cr.tasks) == 8 and all(t.n == 12 for t in cr.tasks)
        for t in cr.tasks:
            assert t.delta.low <= t.delta.estimate <= t.delta.high
            assert t.candidate.low <= t.candidate.estimate <= t.candidate.high
            if t.binary:
                # flips account exactly for the change in the number of correct items
                assert t.to_right - t.to_wrong == round((t.candidate.estimate - t.base.estimate) * t.n)
        assert f"Candidate <code>{cr.candidate}</code>" in html
    assert "Target gain" in html and "Forgetting" in html and "Bias change" in html


def test_second_run_evaluates_nothing_and_loads_no_model(compared, monkeypatch, tmp_path):
    config, first = compared

    def no_model(*a, **k):
        raise AssertionError("a model was loaded although every run is stored")

    monkeypatch.setattr(hf.HFBackend, "__init__", no_model)
    again = CliRunner().invoke(main, ["compare", "--config", str(config)])
    assert again.exit_code == 0, again.output
    assert "24 stored, 0 to evaluate" in again.output
    first_json = json.loads((tmp_path / "report" / "comparison.json").read_text())
    assert first_json["results"][0]["tasks"][0]["n"] == 12


def test_config_error_exits_2_with_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nbase: {path: /nonexistent/model}\ncandidates:\n  - {name: a, adapter: /nope, rank: 3}\n"
                   "suite: s.yaml\n")
    result = CliRunner().invoke(main, ["compare", "--config", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}: candidates[0].rank: unknown key" in result.output
    assert "Traceback" not in result.output


def test_full_model_candidate_identical_to_base_shows_no_change(tiny_world, tmp_path):
    """A `path:` candidate loads as its own model; a byte-identical copy of the base has the
    base's fingerprint, so its records are the base's and every delta is exactly zero."""
    import shutil

    copy = tmp_path / "full-copy"
    shutil.copytree(tiny_world.base, copy)
    config = tmp_path / "full.yaml"
    config.write_text("\n".join([
        "name: full", f"base: {{path: {tiny_world.base}}}",
        f"candidates:\n  - {{name: same, path: {copy}}}",
        f"suite: {REPO / 'suites' / 'demo.yaml'}",
        "eval: {limit: 8}", f"store: {tmp_path / 'store'}", f"report_dir: {tmp_path / 'report'}",
    ]) + "\n")
    result = CliRunner().invoke(main, ["compare", "--config", str(config)])
    assert result.exit_code == 0, result.output
    # one evaluation serves both models
    assert "2 models x 8 tasks = 8 distinct evaluations; 0 stored, 8 to evaluate" in result.output
    data = ComparisonResult.model_validate_json((tmp_path / "report" / "comparison.json").read_text())
    assert data.candidates[0].fingerprint == data.base.fingerprint
    for t in data.results[0].tasks:
        assert (t.delta.estimate, t.to_wrong, t.to_right, t.p_value) == (0, 0, 0, 1.0)
        # a score interval still admits a difference in the population of items
        assert t.delta.low <= 0 <= t.delta.high and t.base == t.candidate
    # the guard: every log-likelihood task flagged, and the candidate itself ("was it applied?")
    scored = [t for t in data.results[0].tasks if t.task != "demo_triage_note"]
    assert all(any("every request scored exactly as the base's" in f for f in t.flags) for t in scored)
    assert not any("every request" in f for t in data.results[0].tasks if t not in scored for f in t.flags)
    assert any("every request of every task scored exactly as the base's" in f for f in data.results[0].flags)
    assert "compare: FLAGGED same: every request of every task" in result.output


def test_gate_cli_writes_junit_and_json_and_exits_by_verdict(tiny_config, tmp_path):
    from junitparser import JUnitXml

    config = tiny_config()
    config.write_text(config.read_text() + "gates:\n"
                      "  - {rule: non_inferior, role: forgetting, margin: 0.5}\n"
                      "  - {rule: improves, task: demo_triage, min_delta: 0.9}\n"
                      "underpowered: pass\n")
    result = CliRunner().invoke(main, ["gate", "--config", str(config), "--junit-xml", str(tmp_path / "g.xml"),
                                       "--json", str(tmp_path / "g.json")])
    data = json.loads((tmp_path / "g.json").read_text())
    statuses = [v["status"] for v in data["verdicts"]]
    assert len(statuses) == 4  # 2 candidates x 2 gates
    assert result.exit_code == data["exit_code"] == (1 if "fail" in statuses else 0), result.output
    suite = next(iter(JUnitXml.fromfile(str(tmp_path / "g.xml"))))
    assert suite.tests == 4 and suite.failures == statuses.count("fail")
    assert {c.name for c in suite} == {"forgetting::non_inferior", "demo_triage::improves"}
    assert "candidate" in result.output and "verdict" in result.output  # the table


def test_gate_on_an_unknown_task_is_a_usage_error_before_any_model_loads(tiny_config, monkeypatch):
    def no_model(*a, **k):
        raise AssertionError("a model was loaded for a config that is wrong")

    monkeypatch.setattr(hf.HFBackend, "__init__", no_model)
    config = tiny_config()
    config.write_text(config.read_text() + "gates:\n  - {rule: improves, task: demo_trage, min_delta: 0.1}\n")
    result = CliRunner().invoke(main, ["gate", "--config", str(config)])
    assert result.exit_code == 2
    assert f"{config}: gates[0].task: 'demo_trage' is not a task of suite demo" in result.output


def test_a_task_both_models_answer_at_chance_is_flagged_and_its_gate_says_so(tiny_world, tmp_path):
    """Two models with random weights (never trained, other seeds) pick the triage category at
    chance: the task is flagged, and so is the gate that reads it, whatever its verdict."""
    import shutil

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    for seed, name in enumerate(["random-a", "random-b"]):
        torch.manual_seed(seed)
        AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(tiny_world.base)).save_pretrained(tmp_path / name)
        for f in tiny_world.base.iterdir():
            if f.is_file() and not f.name.endswith(".safetensors") and f.name != "config.json":
                shutil.copy(f, tmp_path / name / f.name)
    (tmp_path / "suite.yaml").write_text(f"name: chance\ntask_dirs: [{REPO / 'suites' / 'tasks'}]\n"
                                         "tasks:\n  - {task: demo_triage, role: target, metric: acc}\n")
    config = tmp_path / "chance.yaml"
    config.write_text("\n".join([
        "name: chance", f"base: {{path: {tmp_path / 'random-a'}}}",
        f"candidates:\n  - {{name: other, path: {tmp_path / 'random-b'}}}",
        f"suite: {tmp_path / 'suite.yaml'}", "eval: {limit: 60}", f"store: {tmp_path / 'store'}",
        f"report_dir: {tmp_path / 'report'}", "gates:\n  - {rule: non_inferior, role: target, margin: 0.1}",
    ]) + "\n")
    compared = CliRunner().invoke(main, ["compare", "--config", str(config)])
    assert compared.exit_code == 0, compared.output
    result = CliRunner().invoke(main, ["gate", "--config", str(config), "--json", str(tmp_path / "v.json")])
    print(result.output)
    data = ComparisonResult.model_validate_json((tmp_path / "report" / "comparison.json").read_text())
    (task,) = data.results[0].tasks
    assert abs(task.base.estimate - 0.2) < 0.12 and abs(task.candidate.estimate - 0.2) < 0.12
    assert len(task.flags) == 1 and "scores apart from chance (0.200, 1 / choices)" in task.flags[0]
    assert not data.results[0].flags  # two different models: not the identical-scores guard
    (verdict,) = json.loads((tmp_path / "v.json").read_text())["verdicts"]
    assert verdict["flags"] == task.flags and verdict["message"].startswith("FLAGGED (demo_triage: neither")
    assert "compare: FLAGGED other: demo_triage: neither the base (0.150) nor other (0.217)" in compared.output
    html = (tmp_path / "report" / "index.html").read_text()
    assert "<b>Flagged, <code>other</code>:</b> demo_triage: neither the base (0.150)" in html
    assert "other::target::non_inferior: FLAGGED (demo_triage: neither the base" in result.output

"""`harness compare` end to end on the tiny world: evaluate, store, pair, report; then again
from the store alone."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from harness.backends import hf
from harness.cli import main
from harness.compare import ComparisonResult


@pytest.fixture
def compared(tiny_config):
    config = tiny_config()
    result = CliRunner().invoke(main, ["compare", "--config", str(config)])
    assert result.exit_code == 0, result.output
    return config, result


def test_compare_writes_report_and_json_for_every_candidate(compared, tmp_path):
    config, result = compared
    assert "plan: 3 models x 7 tasks; 0 stored, 21 to evaluate" in result.output
    html = (tmp_path / "report" / "index.html").read_text()
    data = ComparisonResult.model_validate_json((tmp_path / "report" / "comparison.json").read_text())
    assert [c.candidate for c in data.results] == ["domain-only", "with-replay"]
    for cr in data.results:
        assert {r.role for r in cr.roles} == {"target", "forgetting", "bias"}
        assert len(cr.tasks) == 7 and all(t.n == 12 for t in cr.tasks)
        for t in cr.tasks:
            assert t.ci_low <= t.delta <= t.ci_high
            if t.binary:
                # flips account exactly for the change in the number of correct items
                assert t.to_right - t.to_wrong == round((t.candidate_score - t.base_score) * t.n)
        assert f"Candidate <code>{cr.candidate}</code>" in html
    assert "Target gain" in html and "Forgetting" in html and "Bias change" in html


def test_second_run_evaluates_nothing_and_loads_no_model(compared, monkeypatch, tmp_path):
    config, first = compared

    def no_model(*a, **k):
        raise AssertionError("a model was loaded although every run is stored")

    monkeypatch.setattr(hf.HFBackend, "__init__", no_model)
    again = CliRunner().invoke(main, ["compare", "--config", str(config)])
    assert again.exit_code == 0, again.output
    assert "21 stored, 0 to evaluate" in again.output
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

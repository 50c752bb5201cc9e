"""The demo's trained judge, as `make report` builds and uses it: SmolLM2-135M-Instruct with a LoRA
adapter the harness's trainer fits on labelled pairs of the demo's notes (harness/demo/judge.py),
measured beside SmolLM2 on the same held-out validation pairs; the first that passes judges."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from conftest import REPO, _demo_yaml, demo_config_file
from harness.cli import main
from harness.comparison import ComparisonResult


def test_judge_training_records_are_the_rubric_asked_in_both_orders_with_the_label_to_answer():
    """Each labelled pair becomes two chat turns, one per order, the label following the better answer."""
    from harness.config import JudgeSpec
    from harness.demo.judge import judge_records
    from harness.judge import read_rubric

    rubric = read_rubric(JudgeSpec(model={"path": "x"}, rubric=str(REPO / "configs" / "note-rubric.jinja"),
                                   labels=["A", "B", "C"], tasks=["t"]))[1]
    pairs = [{"input": "Claim: a", "reference": " CUT. ref", "answer_a": " CUT. yes", "answer_b": " FALL. no",
              "verdict": "A"},
             {"input": "Claim: b", "reference": " FALL. ref", "answer_a": " FALL. one", "answer_b": " FALL. two",
              "verdict": "tie"}]
    records = judge_records(pairs, rubric, ["A", "B", "C"])
    assert [r["messages"][1]["content"] for r in records] == ["A", "B", "C", "C"]
    first, swapped = (r["messages"][0]["content"] for r in records[:2])
    assert "Answer A:  CUT. yes\nAnswer B:  FALL. no" in first and "Answer A:  FALL. no\nAnswer B:  CUT. yes" in swapped
    assert all(r["messages"][0]["role"] == "user" and r["messages"][1]["role"] == "assistant" for r in records)


@pytest.mark.slow
@pytest.mark.e2e
def test_the_trained_judge_is_measured_beside_smollm2_and_judges_where_smollm2_fails(
        demo_world, demo_store, smollm2, tmp_path):
    """`make report`'s judging: the trained judge built (minutes on 2 cores; reused where `make report`
    built it), both judges' kappa, consistency and first-position rate on the 60 validation pairs in
    the report and the output; SmolLM2, blind, fails its validation; the trained judge passes it and the
    judged win rates are its verdicts."""
    from harness.demo.judge import build_judge

    build_judge(demo_world.root, smollm2.parent, _demo_yaml(demo_world.root), log=print)
    config = demo_config_file(demo_world, demo_store, smollm2, tmp_path, trained_judge=True)
    run = CliRunner().invoke(main, ["compare", "--config", str(config)])
    assert run.exit_code in (0, 1), run.output  # 1: a gate fails, as the demo's gates do
    print(run.output)
    result = ComparisonResult.model_validate_json((tmp_path / "report" / "comparison.json").read_text())
    smol, trained = result.judge_validations
    assert smol.judge == "smollm2-135m-instruct" and trained.judge == "smollm2-135m-instruct + judge"
    assert not smol.passed and not smol.chosen
    assert trained.passed and trained.chosen and result.judge_validation == trained
    assert trained.kappa.low > smol.kappa.high  # it sees what SmolLM2 cannot, beyond the intervals' noise
    assert "smollm2-135m-instruct + judge (judged) on 60 validation pairs" in run.output
    assert "smollm2-135m-instruct (did not judge) on 60 validation pairs" in run.output
    html = (tmp_path / "report" / "index.html").read_text()
    assert "The judges on their validation pairs" in html and "<code>smollm2-135m-instruct + judge</code>" in html
    judged = [j for cr in result.results for j in cr.judged]
    assert judged and all(j.judge == trained.judge for j in judged)
    # the demo's wins gate reads its verdicts: the fine-tunes' notes beat the base's unrelated text
    wins = {v.candidate: v for v in result.gates if v.gate.endswith("::wins")}
    assert wins and all(v.status == "pass" for v in wins.values()), wins

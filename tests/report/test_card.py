"""`harness card`: a candidate's model-card section, read back with huggingface_hub's own model-card parser."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from harness.cli import main


def test_the_demo_card_reads_back_as_the_hub_reads_it(demo_report, tmp_path):
    from huggingface_hub import ModelCard

    from harness.report.render import load_comparison

    out = tmp_path / "README.md"
    run = CliRunner().invoke(main, ["card", str(demo_report.parent), "--candidate", "with-replay", "--out", str(out)])
    assert run.exit_code == 0, run.output
    card = ModelCard.load(out)  # a local file: parsed, nothing fetched
    result = load_comparison(demo_report.parent)
    cr = next(r for r in result.results if r.candidate == "with-replay")
    assert card.data.model_name == "with-replay"
    read = {(e.dataset_name, e.metric_type): e.metric_value for e in card.data.eval_results}
    assert read == {(t.task, t.metric): pytest.approx(t.candidate.estimate, abs=1e-6) for t in cr.tasks}
    assert {e.task_type for e in card.data.eval_results} == {"text-generation"}
    # the prose: each role's change with its interval, as the report words it, and what produced it
    forgetting = cr.role("forgetting").delta
    assert f"| Forgetting | {forgetting.estimate * 100:+.1f} pp | [{forgetting.low * 100:+.1f} pp, " in card.text
    assert f"Evaluated by harness `{result.harness_version}`" in card.text
    keys = {(r.model, r.task): r.key for r in result.runs}
    for t in cr.tasks:  # the store's key of every run behind a figure, the base's and the candidate's
        assert f"`{keys['base', t.task]}`; `{keys['with-replay', t.task]}`" in card.text


def test_a_card_for_a_model_that_is_no_fine_tune_names_those_that_are(demo_report):
    run = CliRunner().invoke(main, ["card", str(demo_report.parent), "--candidate", "base"])
    assert run.exit_code == 2
    assert "--candidate base: not a fine-tune" in run.output and "with-replay" in run.output

"""`tracking.mlflow`: `harness compare` logs one MLflow run per candidate into a real tracking store (a
SQLite file, MLflow without a server), read back through MLflow's own client."""

from __future__ import annotations

import re
import sys

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.config import HarnessSpec, parse_spec
from harness.errors import ConfigError, HarnessError


def test_compare_logs_a_run_per_candidate_linked_to_its_training(demo_config, demo_report, tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="MLflow is not installed: pip install 'harness[mlflow]' (make install does)")
    from mlflow.tracking import MlflowClient

    from harness.config import load_config
    from harness.report.render import load_comparison
    from harness.report.tracking import log_mlflow

    text = re.sub(r"(?m)^report_dir: .*$", f"report_dir: {tmp_path / 'report'}", demo_config.read_text())
    config = tmp_path / "demo.yaml"  # the tracking store and artifacts relative to the config, as users write them
    config.write_text(text + "tracking:\n  mlflow: {uri: 'sqlite:///mlflow.db', experiment: demo, "
                             "artifact_location: mlartifacts}\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "job-summary.md"))
    run = CliRunner().invoke(main, ["compare", "--config", str(config), "--markdown", str(tmp_path / "pr.md")])
    assert run.exit_code == 0, run.output
    assert (tmp_path / "job-summary.md").read_text() == (tmp_path / "pr.md").read_text()
    result = load_comparison(tmp_path / "report")
    fine_tunes = [cr for cr in result.results if cr.kind == "fine-tune"]
    assert f"mlflow: {len(fine_tunes)} run(s) in experiment 'demo'" in run.output

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("demo").experiment_id
    runs = {r.data.tags["harness.candidate"]: r
            for r in client.search_runs([experiment], "tags.`harness.kind` = 'evaluation'")}
    assert set(runs) == {cr.candidate for cr in fine_tunes}
    for cr in fine_tunes:
        got, model = runs[cr.candidate], next(m for m in result.candidates if m.label == cr.candidate)
        base = next(m for m in [result.base, *result.candidates] if m.label == cr.reference)
        assert got.info.status == "FINISHED"
        assert {k: got.data.params[k] for k in ("base", "adapter", "suite", "prompt_format")} == {
            "base": base.source, "adapter": model.source, "suite": result.suite,
            "prompt_format": model.prompt_format.description}
        for t in cr.tasks:  # every task's scores, the paired delta and its bounds
            assert got.data.metrics[f"{t.task}/base"] == pytest.approx(t.base.estimate)
            assert got.data.metrics[f"{t.task}/candidate"] == pytest.approx(t.candidate.estimate)
            assert (got.data.metrics[f"{t.task}/delta_low"], got.data.metrics[f"{t.task}/delta_high"]) == \
                pytest.approx((t.delta.low, t.delta.high))
        verdicts = {f"gate/{v.gate}": v.status for v in result.gates if v.candidate == cr.candidate}
        assert verdicts and {k: got.data.tags[k] for k in verdicts} == verdicts
        assert {a.path for a in client.list_artifacts(got.info.run_id)} == {"index.html", "comparison.json"}
        assert str(tmp_path / "mlartifacts") in got.info.artifact_uri

    # the candidates `harness train` made hang under their training's run, whose curve is along its steps
    trained = [m.label for m in result.candidates if m.training and m.label in runs]
    assert trained
    for name in trained:
        parent = client.get_run(runs[name].data.tags["mlflow.parentRunId"])
        assert parent.data.tags["harness.kind"] == "training" and parent.data.params["train/steps"]
        curve = next((c for c in result.curves if c.kind == "steps" and c.name == name), None)
        if curve is not None:
            steps = [m.step for m in client.get_metric_history(parent.info.run_id, "target/delta")]
            assert steps == [p.x for p in curve.points]

    # a second comparison: new evaluation runs under the same training runs
    log_mlflow(result, load_config(config).tracking.mlflow, tmp_path / "report" / "index.html")
    again = client.search_runs([experiment], "tags.`harness.kind` = 'evaluation'")
    training = client.search_runs([experiment], "tags.`harness.kind` = 'training'")
    assert len(again) == 2 * len(fine_tunes) and len(training) == len(trained)


def test_tracking_config_is_checked_with_its_key_path():
    base = {"name": "x", "base": {"path": "m"}, "suite": "s.yaml"}
    with pytest.raises(ConfigError, match=r"c\.yaml: tracking\.mlflow\.url: unknown key"):
        parse_spec(HarnessSpec, {**base, "tracking": {"mlflow": {"url": "sqlite:///m.db"}}}, "c.yaml")
    with pytest.raises(ConfigError, match=r"c\.yaml: tracking\.mlflow\.uri: Field required"):
        parse_spec(HarnessSpec, {**base, "tracking": {"mlflow": {}}}, "c.yaml")


def test_without_mlflow_the_error_says_what_to_install(monkeypatch):
    from harness.report.tracking import require_mlflow

    monkeypatch.setitem(sys.modules, "mlflow", None)  # as Python finds it when it is not installed
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    with pytest.raises(HarnessError, match=re.escape("pip install 'harness[mlflow]'")):
        require_mlflow()

"""Generated text scored against references: ROUGE-L per item (harness/sources/metrics.py, through
rouge_score as lm-eval's own summarization tasks use it) and lm-eval's corpus chrF and BLEU, equal
to lm-eval's own values for the same outputs; paired like any metric; the items that moved most shown
with base, candidate and reference side by side."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import REPO
from harness.pipeline import load, run_comparison

TASKS = REPO / "suites" / "tasks"
LIMIT = 12


def _config(tmp: Path, world) -> Path:
    suite = tmp / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "text", "task_dirs": [str(TASKS)], "tasks": [
        {"task": "demo_triage_note", "role": "target", "metric": "rougeL", "extra_metrics": ["chrf", "bleu"]}]}))
    config = tmp / "text.yaml"
    config.write_text(yaml.safe_dump({
        "name": "text", "base": {"path": str(world.base)},
        "candidates": [{"name": "domain-only", "adapter": str(world.candidates["domain-only"])}],
        "suite": str(suite), "eval": {"batch_size": 8, "limit": LIMIT}, "stats": {"resamples": 500},
        "store": str(tmp / "store"), "report_dir": str(tmp / "report")}))
    return config


def _lm_eval_samples(lm, tmp: Path) -> dict:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from harness.sources import metrics

    metrics.register()  # lm-eval alone knows no rougeL: the same registration the harness makes
    folder = tmp / "lm-eval-tasks"
    folder.mkdir()
    (folder / "demo_triage_note.yaml").write_text(yaml.safe_dump({
        "include": str(TASKS / "demo" / "demo_triage_note.yaml"), "task": "demo_triage_note",
        "dataset_kwargs": {"data_files": {"test": str(TASKS / "demo" / "data" / "triage.jsonl")}}}))
    out = simple_evaluate(model=lm, tasks=["demo_triage_note"], limit=LIMIT, log_samples=True, bootstrap_iters=0,
                          task_manager=TaskManager(include_path=str(folder), include_defaults=False))
    return out["results"]["demo_triage_note"], {s["doc_id"]: s for s in out["samples"]["demo_triage_note"]}


def test_reference_metrics_equal_lm_evals_and_the_moved_items_are_shown_side_by_side(demo_world, tmp_path):
    """On the demo world (its fine-tune writes the note it was trained on; the tiny world's cannot yet)."""
    from lm_eval.models.huggingface import HFLM
    from rouge_score import rouge_scorer

    from harness.plan import plan_runs
    from harness.report.render import render_report
    from harness.store import Store

    config = _config(tmp_path, demo_world)
    loaded = load(config)
    result = run_comparison(loaded, log=lambda m: None)
    store = Store(loaded.spec.store)
    plan = plan_runs(loaded.spec, loaded.suite, store)
    runs = {r.model.label: store.read(r.key).set_index("doc_id") for r in plan.runs}
    lm = HFLM(pretrained=str(demo_world.base), peft=str(demo_world.candidates["domain-only"]), dtype="float32",
              batch_size=8, device="cpu")
    aggregate, samples = _lm_eval_samples(lm, tmp_path)
    ours = runs["domain-only"]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    assert set(ours.index) == set(samples) and len(samples) == LIMIT
    for doc_id, s in samples.items():
        row = ours.loc[doc_id]
        assert row["response"] == s["filtered_resps"][0]  # the same generated text
        assert row["metric.rougeL"] == pytest.approx(s["rougeL"], abs=1e-12)
        assert row["metric.rougeL"] == pytest.approx(
            scorer.score(row["target"], row["response"])["rougeL"].fmeasure, abs=1e-12)
    task = result.results[0].tasks[0]
    assert task.candidate.estimate == pytest.approx(aggregate["rougeL,none"], abs=1e-12)
    extra = {m.metric: m for m in task.extra}
    for metric in ("chrf", "bleu"):  # corpus metrics: the plug-in over the items is lm-eval's aggregate
        assert extra[metric].candidate.estimate == pytest.approx(aggregate[f"{metric},none"], abs=1e-9)
    # the fine-tune learned to write the note; the base did not: a gain on the reference metric
    assert task.delta.low > 0 and not task.binary
    higher = [f for f in result.results[0].flips if f.direction == "higher"]
    assert higher and higher[0].target == ours.loc[higher[0].doc_id, "target"]
    assert higher[0].candidate_response == ours.loc[higher[0].doc_id, "response"]
    assert higher[0].base_response == runs["base"].loc[higher[0].doc_id, "response"]
    html = render_report(result, tmp_path / "report").read_text()
    assert '<option value="higher">scored higher</option>' in html and "<td>scored higher</td>" in html


@pytest.mark.parametrize("name", ["bleu", "chrf", "chrf++", "ter"])
def test_corpus_metrics_leave_one_out_in_one_pass_equals_lm_evals_function_on_each_subset(name):
    import lm_eval.api.metrics  # noqa: F401
    import numpy as np
    from lm_eval.api.registry import AGGREGATION_REGISTRY

    from harness.sources.aggregations import resolve_aggregation

    rng = np.random.default_rng(0)
    words = "the claim was filed after a slip on wet stairs and the car hit a pole at night".split()
    items = [(" ".join(rng.choice(words, 8)), " ".join(rng.choice(words, int(rng.integers(3, 10)))))
             for _ in range(25)]
    aggregation = resolve_aggregation(f"lm_eval:{name}", "test")
    theta, loo = aggregation.leave_one_out(items)
    fn = AGGREGATION_REGISTRY[name]
    assert theta == pytest.approx(fn(items), abs=1e-9)
    assert loo == pytest.approx([fn(items[:i] + items[i + 1:]) for i in range(len(items))], abs=1e-9)
    assert resolve_aggregation("lm_eval:mean", "test").leave_one_out([(1, 2), (3, 4)]) is None

"""The pairwise judge (harness/judge.py): every (base, candidate) answer pair of a judged task read by a
judge model in both orders, its verdict from the labels' log-probabilities, stored and judged once,
summarised as a win rate with the judge's diagnostics; and what bad judge input gets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO
from harness.errors import ConfigError, HarnessError
from harness.pipeline import load, run_comparison

RUBRIC = """Task: {{ input }}
Reference answer: {{ reference }}
Answer A: {{ answer_a }}
Answer B: {{ answer_b }}
Which answer is closer to the reference, A or B (or C for a tie)? Better answer:"""


def _config(tmp: Path, base: Path, candidates: dict[str, Path], judge: dict, limit: int = 12) -> Path:
    suite = tmp / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "text", "task_dirs": [str(REPO / "suites" / "tasks")], "tasks": [
        {"task": "demo_triage_note", "role": "target", "metric": "rougeL"}]}))
    rubric = tmp / "rubric.jinja"
    if not rubric.exists():
        rubric.write_text(RUBRIC)
    config = tmp / "judged.yaml"
    config.write_text(yaml.safe_dump({
        "name": "judged", "base": {"path": str(base)},
        "candidates": [{"name": n, "adapter": str(p)} for n, p in candidates.items()],
        "suite": str(suite), "eval": {"batch_size": 8, "limit": limit}, "stats": {"resamples": 500},
        "judge": {"model": {"path": str(base)}, "rubric": "rubric.jinja", "labels": [" A", " B", " C"],
                  "tasks": ["demo_triage_note"], **judge},
        "store": str(tmp / "store"), "report_dir": str(tmp / "report")}, sort_keys=False))
    return config


def test_the_verdict_is_in_the_candidates_terms_whichever_order():
    from harness.judge import _verdict

    assert [_verdict(i, "base_first") for i in range(3)] == ["loss", "win", "tie"]  # A is the base's answer
    assert [_verdict(i, "candidate_first") for i in range(3)] == ["win", "loss", "tie"]


def test_pairs_are_judged_in_both_orders_once_and_a_judge_that_always_ties_is_flagged(demo_world, tmp_path):
    from harness.judge import POINTS, plan_judgments
    from harness.plan import plan_runs
    from harness.report.render import render_report
    from harness.store import Store

    config = _config(tmp_path, demo_world.base, {"domain-only": demo_world.candidates["domain-only"]}, {})
    loaded = load(config)
    logs: list[str] = []
    result = run_comparison(loaded, log=logs.append)
    assert any(line.startswith("judge:  domain-only demo_triage_note       12 items x 2 orders") for line in logs), logs
    store = Store(loaded.spec.store)
    (pair,) = plan_judgments(plan_runs(loaded.spec, loaded.suite, store), loaded.spec, store)
    records = store.read(pair.key)
    assert sorted(records.groupby("doc_id")["order"].apply(sorted).map(tuple).unique()) == [
        ("base_first", "candidate_first")]
    # each pick is the label the judge found likeliest, read in the candidate's terms per order
    lps = records[["lp_a", "lp_b", "lp_tie"]].to_numpy()
    assert (records["pick"].to_numpy() == np.array([" A", " B", " C"])[lps.argmax(axis=1)]).all()
    judged = result.results[0].judged[0]
    by_hand = records.assign(p=records["verdict"].map(POINTS)).groupby("doc_id")["p"].mean()
    assert judged.n == 12 and judged.win_rate.estimate == pytest.approx(by_hand.mean())
    # the 1.1M base is no judge: it picks by where an answer is shown, whichever it is, and the report says so
    assert abs(judged.first_position_rate - 0.5) > 0.3 and judged.position_consistency < 0.6
    html = render_report(result, tmp_path / "report").read_text()
    assert "Judged answers" in html and "its verdicts follow where an answer is shown" in html
    shown = html.count("<td>win</td>") + html.count("<td>loss</td>") + html.count("<td>tie</td>")
    assert shown == 2 * 12  # both verdicts of every item, beside the input, reference and both answers

    logs.clear()  # judged once: a re-run judges nothing
    run_comparison(load(config), log=logs.append)
    assert not any(line.startswith("judge:") for line in logs), logs
    (tmp_path / "rubric.jinja").write_text(RUBRIC.replace("closer to the reference", "better"))
    logs.clear()  # an edited rubric re-judges, and nothing else is scored again
    run_comparison(load(config), log=logs.append)
    assert any(line.startswith("judge:  domain-only") for line in logs)
    assert any("2 stored, 0 to evaluate" in line for line in logs), logs


def test_bad_judge_input_is_refused_before_any_model_loads(tiny_world, tmp_path):
    def attempt(judge: dict, rubric: str = RUBRIC):
        (tmp_path / "rubric.jinja").write_text(rubric)
        config = _config(tmp_path, tiny_world.base, {"domain-only": tiny_world.candidates["domain-only"]}, judge)
        logs: list[str] = []
        try:
            run_comparison(load(config), log=logs.append)
        finally:
            assert not any(line.startswith("execute:") for line in logs), logs

    with pytest.raises(HarnessError, match=r"rubric.jinja: the rubric never shows \{\{ answer_b \}\}"):
        attempt({}, RUBRIC.replace("{{ answer_b }}", ""))
    with pytest.raises(HarnessError, match=r"rubric.jinja: the rubric uses question, which the judge is not given"):
        attempt({}, RUBRIC + "{{ question }}")
    with pytest.raises(HarnessError, match=r"rubric.jinja: line 1: the rubric does not parse"):
        attempt({}, "{{ answer_a }")
    with pytest.raises(ConfigError, match=r"judge.labels: ' tie' is 2 tokens for the judge's tokenizer"):
        attempt({"labels": [" A", " B", " tie"]})
    with pytest.raises(ConfigError, match=r"judge.tasks: 'nope' is not a task of suite text"):
        attempt({"tasks": ["nope"]})
    with pytest.raises(ConfigError, match=r"judge.labels: three different, non-empty labels"):
        attempt({"labels": ["A", "A", "C"]})
    with pytest.raises(ConfigError, match=r"judge.rubric: rubric file .*missing.jinja does not exist"):
        attempt({"rubric": "missing.jinja"})


def _judged(win, low, high, *, consistency=0.9, n=100, mde=0.08):
    from harness.records import CandidateResult, Estimate, JudgedResult

    j = JudgedResult(task="t", n=n, win_rate=Estimate(estimate=win, low=low, high=high), p_value=0.01, mde=mde,
                     wins=0, ties=0, losses=0, position_consistency=consistency, decisive_rate=0.9,
                     min_position_consistency=0.6, first_position_rate=0.5, judge_s=1.0, judge_requests=600)
    return CandidateResult(candidate="c", tasks=[], roles=[], flips=[], judged=[j])


@pytest.mark.parametrize("interval, consistency, status", [
    ((0.70, 0.62, 0.78), 0.9, "pass"),  # lower bound above 0.5 + 0.1
    ((0.45, 0.38, 0.52), 0.9, "fail"),  # upper bound below 0.6: no such win
    ((0.62, 0.48, 0.76), 0.9, "underpowered"),  # the interval holds 0.6 and the sample cannot resolve 0.1
    ((0.70, 0.62, 0.78), 0.4, "fail"),  # a winning interval from a judge that looks at positions
])
def test_the_wins_gate_reads_the_judged_win_rate_and_the_judges_consistency(interval, consistency, status):
    from harness.config import GateSpec
    from harness.gates import gate_verdict

    gate = GateSpec(rule="wins", task="t", min_delta=0.1)
    v = gate_verdict(_judged(*interval, consistency=consistency, mde=0.14 if status == "underpowered" else 0.08),
                     gate)
    assert v.status == status and v.threshold == pytest.approx(0.6) and v.value.estimate == interval[0]
    if consistency < 0.6:
        assert "two orders agree on 40% of the items, below the minimum 60%" in v.message


def test_harness_gate_and_the_pytest_plugin_refuse_a_win_from_a_judge_below_its_minimum(demo_world, tmp_path,
                                                                                        pytester):
    from click.testing import CliRunner

    from harness.cli import main

    config = _config(tmp_path, demo_world.base, {"domain-only": demo_world.candidates["domain-only"]}, {})
    data = yaml.safe_load(config.read_text())
    data["gates"] = [{"rule": "wins", "task": "demo_triage_note", "min_delta": 0.0}]
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    out = CliRunner().invoke(main, ["gate", "--config", str(config)])
    assert out.exit_code == 1, out.output
    assert "demo_triage_note::wins" in out.output and "below the minimum 60%" in out.output
    result = pytester.runpytest("--harness-config", str(config), "-rf")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*FAIL: domain-only::demo_triage_note::wins*", "*below the minimum 60%*"])
    data["gates"] = [{"rule": "wins", "task": "nope", "min_delta": 0.0}]
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match=r"gates\[0\]: rule wins reads the judged win rate, and 'nope' is not judged"):
        load(config)


def test_kappa_is_cohens_by_hand_with_a_bootstrap_interval():
    from harness.stats import kappa_interval

    judge = ["candidate", "candidate", "base", "base", "tie"]
    people = ["candidate", "base", "base", "base", "tie"]
    # p_o = 4/5; p_e = (2*1 + 2*3 + 1*1) / 25 = 9/25; kappa = (0.8 - 0.36) / 0.64
    k = kappa_interval(judge, people, resamples=500)
    assert k.estimate == pytest.approx(0.6875) and k.low <= k.estimate <= k.high
    assert kappa_interval(people, people, resamples=200).estimate == 1.0


def test_human_labels_are_checked_before_any_model_loads_and_judge_the_judge(demo_world, tmp_path):
    import json

    from harness.config import GateSpec
    from harness.gates import gate_verdict

    labels = tmp_path / "people.jsonl"
    config = _config(tmp_path, demo_world.base, {"domain-only": demo_world.candidates["domain-only"]},
                     {"human_labels": "people.jsonl"})
    for rows, message in [
        ([{"candidate": "nope", "task": "demo_triage_note", "doc_id": 0, "verdict": "base"}],
         r"people.jsonl:1: candidate 'nope' is not a candidate of this comparison"),
        ([{"candidate": "domain-only", "task": "demo_triage_note", "doc_id": 150, "verdict": "base"}],
         r"people.jsonl:1: doc_id 150 is not an item the comparison scores on demo_triage_note"),
        ([{"candidate": "domain-only", "task": "demo_triage_note", "doc_id": 0, "verdict": "better"}],
         r"people.jsonl:1: verdict must be one of candidate, base, tie"),
    ]:
        labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
        logs: list[str] = []
        with pytest.raises(ConfigError, match=message):
            run_comparison(load(config), log=logs.append)
        assert not any(line.startswith("execute:") for line in logs)
    # people find the fine-tune's note better on every item; the judge, looking at positions, does not agree
    labels.write_text("".join(json.dumps({"candidate": "domain-only", "task": "demo_triage_note", "doc_id": d,
                                          "verdict": "candidate"}) + "\n" for d in range(12)))
    result = run_comparison(load(config), log=lambda m: None)
    judged = result.results[0].judged[0]
    assert judged.human_n == 12 and judged.human_kappa.estimate < 0.4
    consistent = judged.model_copy(update={"position_consistency": 1.0})  # were it consistent in position
    cr = result.results[0].model_copy(update={"judged": [consistent]})
    v = gate_verdict(cr, GateSpec(rule="wins", task="demo_triage_note", min_delta=0.0))
    assert v.status == "fail" and "agrees with people's 12 verdicts at Cohen's kappa" in v.message

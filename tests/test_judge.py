"""The pairwise judge (harness/judge.py): every (base, candidate) answer pair of a judged task read by a
judge model in both orders, its verdict from the labels' log-probabilities, stored and judged once,
summarised as a win rate with the judge's diagnostics; and what bad judge input gets."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, planted_notes
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


def test_a_rubric_already_rendered_is_sent_to_another_process_as_its_text(tmp_path):
    """A Ray worker gets the judge's rubric pickled: after the driver has rendered it (a compiled Jinja
    template, which does not pickle), it still goes as its text and renders there the same."""
    import pickle

    from harness.judge import read_template

    path = tmp_path / "rubric.jinja"
    path.write_text("Reference: {{ reference }}\nA: {{ answer_a }}\nB: {{ answer_b }}\nBetter:")
    _, rubric = read_template(path, ("answer_a", "answer_b"), "the two answers")
    values = {"reference": "FALL.", "answer_a": "FALL. He slipped.", "answer_b": "CUT."}
    here = rubric.render(**values)
    assert here == "Reference: FALL.\nA: FALL. He slipped.\nB: CUT.\nBetter:"
    assert pickle.loads(pickle.dumps(rubric)).render(**values) == here


def test_pairs_are_judged_in_both_orders_once_and_a_judge_that_always_ties_is_flagged(demo_world, tmp_path):
    from harness.judge import POINTS, _verdict, plan_judgments
    from harness.plan import plan_runs
    from harness.report.render import render_report
    from harness.store import Store

    config = _config(tmp_path, demo_world.base, {"domain-only": demo_world.candidates["domain-only"]},
                     {"calibrate": False})
    loaded = load(config)
    logs: list[str] = []
    result = run_comparison(loaded, log=logs.append)
    # 12 items x 2 orders x 3 labels, through execute's loop, with the tokens fed of those in its prompts
    line = r"judge:  domain-only demo_triage_note +72 requests in +[\d.]+ s \([\d,]+ of [\d,]+ tokens fed\)$"
    assert any(re.match(line, x) for x in logs), logs
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

    logs.clear()  # judged once: a re-run judges nothing, and reading it calibrated needs no judge either
    config.write_text(config.read_text().replace("calibrate: false", "calibrate: true"))
    calibrated = run_comparison(load(config), log=logs.append).results[0].judged[0]
    assert not any(line.startswith("judge:") for line in logs), logs
    centred = lps - lps.mean(axis=0)  # each label's mean over the pairing's 24 prompts subtracted
    points = [POINTS[_verdict(int(k), o)] for k, o in zip(centred.argmax(axis=1), records["order"], strict=True)]
    assert calibrated.calibrated and calibrated.win_rate.estimate == pytest.approx(np.mean(points))
    assert calibrated.raw_position_consistency == judged.position_consistency
    (tmp_path / "rubric.jinja").write_text(RUBRIC.replace("closer to the reference", "better"))
    logs.clear()  # an edited rubric re-judges, and nothing else is scored again
    run_comparison(load(config), log=logs.append)
    assert any(line.startswith("judge:  domain-only") for line in logs)
    assert any("2 stored, 0 to evaluate" in line for line in logs), logs


def test_two_processes_on_one_store_judge_each_pairing_once(tiny_world, tmp_path):
    """Two `harness compare` started together on one store, with a judge: the judge's verdicts go
    through execute's loop under store claims, so each pairing is judged by one process only and the
    other takes it from the store; both report the same win rates. Stored as judgments, not as runs."""
    from conftest import Forked

    config = _config(tmp_path, tiny_world.base, tiny_world.candidates, {"calibrate": False})
    second = tmp_path / "second.yaml"
    second.write_text(config.read_text().replace(str(tmp_path / "report"), str(tmp_path / "report2")))
    procs = [Forked("compare", "--config", str(c)) for c in (config, second)]
    done = [p.wait() for p in procs]
    for p in done:
        assert p.returncode == 0, p.stderr[-2000:]
    judged = [line.split()[1] for p in done for line in p.stdout.splitlines()
              if re.match(r"judge: +\S+ demo_triage_note +72 requests in", line)]
    # a pairing's key is its content (the judge, the rubric, both sides' answers): the tiny world's two
    # candidates may answer alike, and then share one judgment; every stored judgment judged once, by one
    manifests = sorted((tmp_path / "store" / "judgments").rglob("*.json"))
    assert 1 <= len(judged) == len(manifests) <= 2, "\n=====\n".join(p.stdout for p in done)
    assert not list((tmp_path / "store" / "runs").rglob("*@judge*"))
    assert {yaml.safe_load(m.read_text())["kind"] for m in manifests} == {"judgment"}
    rates = [[line for line in p.stdout.splitlines() if "win rate" in line] for p in done]
    assert rates[0] == rates[1]


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


def _wins_config(demo_world, tmp_path: Path, task: str = "demo_triage_note") -> Path:
    config = _config(tmp_path, demo_world.base, {"domain-only": demo_world.candidates["domain-only"]}, {})
    data = yaml.safe_load(config.read_text())
    data["gates"] = [{"rule": "wins", "task": task, "min_delta": 0.0}]
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


def test_harness_gate_refuses_a_win_from_a_judge_below_its_minimum(demo_world, tmp_path):
    from click.testing import CliRunner

    from harness.cli import main

    out = CliRunner().invoke(main, ["gate", "--config", str(_wins_config(demo_world, tmp_path))])
    assert out.exit_code == 1, out.output
    assert "demo_triage_note::wins" in out.output and "below the minimum 60%" in out.output
    with pytest.raises(ConfigError, match=r"gates\[0\]: rule wins reads the judged win rate, and 'nope' is not judged"):
        load(_wins_config(demo_world, tmp_path, task="nope"))


def test_the_pytest_plugin_refuses_a_win_from_a_judge_below_its_minimum(demo_world, tmp_path, pytester):
    # in a subprocess, importing nothing here: pytester drops the modules a test imported when it ends
    result = pytester.runpytest_subprocess("--harness-config", str(_wins_config(demo_world, tmp_path)), "-rf")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*FAIL: domain-only::demo_triage_note::wins*", "*below the minimum 60%*"])


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


def _simulated(rng: np.random.Generator, n: int, position: float, content: float, noise: float = 0.5):
    """A judge's log-probabilities of (A, B, tie) for n pairs in both orders: `position` favours the
    answer shown first, `content` (log-odds) the candidate's answer wherever it is shown."""
    import pandas as pd

    rows = []
    for doc in range(n):
        for order in ("base_first", "candidate_first"):
            toward_cand = content if order == "candidate_first" else -content  # in A's favour
            odds = position + toward_cand + rng.normal(0, noise)
            lp_a, lp_b, lp_tie = -1 + odds / 2, -1 - odds / 2, -2.5 + rng.normal(0, noise)
            rows.append({"doc_id": doc, "order": order, "lp_a": lp_a, "lp_b": lp_b, "lp_tie": lp_tie,
                         "pick": [" A", " B", " C"][int(np.argmax([lp_a, lp_b, lp_tie]))],
                         "input": f"claim {doc}", "reference": "ref", "judge_tokens": 40,
                         "base_response": "short", "candidate_response": "a longer answer"})
    return pd.DataFrame(rows)


def _judge_spec(calibrate: bool):
    from harness.config import HarnessSpec

    return HarnessSpec.model_validate({
        "name": "sim", "base": {"path": "b"}, "suite": "s.yaml", "stats": {"resamples": 400},
        "judge": {"model": {"path": "j"}, "rubric": "r.jinja", "labels": [" A", " B", " C"], "tasks": ["t"],
                  "calibrate": calibrate}})


def test_a_planted_preference_is_found_in_both_orders_through_a_judges_position_bias():
    """Simulation: a judge whose first answer is favoured by 3 nats and whose preference for the
    candidate is 1.5 nats. Read raw, every verdict is "A": the two orders never agree and the gate
    refuses. Calibrated, the preference is found in both orders; no preference stays at 0.5; swapping
    which model is the base gives exactly one minus the win rate."""
    from harness.config import GateSpec
    from harness.gates import gate_verdict
    from harness.judge import judged_result
    from harness.records import CandidateResult

    rng = np.random.default_rng(0)
    planted = _simulated(rng, 60, position=3.0, content=1.5)
    raw, cal = judged_result("t", planted, _judge_spec(False)), judged_result("t", planted, _judge_spec(True))
    assert raw.first_position_rate == 1.0 and raw.position_consistency == 0.0 and raw.win_rate.estimate == 0.5
    assert cal.raw_position_consistency == 0.0 and cal.position_consistency > 0.8
    assert cal.win_rate.low > 0.8 and cal.losses == 0
    assert all(e.base_first == e.candidate_first == "win" for e in cal.examples[:10] if e.base_first == "win")
    assert cal.longer_rate > 0.9  # here the candidate's answers are the longer ones: a length bias looks alike

    gate = GateSpec(rule="wins", task="t", min_delta=0.1)
    verdicts = [gate_verdict(CandidateResult(candidate="c", tasks=[], roles=[], flips=[], judged=[j]), gate)
                for j in (raw, cal)]
    assert [v.status for v in verdicts] == ["fail", "pass"]
    assert "two orders agree on 0% of the items" in verdicts[0].message

    # the same pairs with the base and the candidate swapped
    swapped = planted.assign(order=planted["order"].map({"base_first": "candidate_first",
                                                         "candidate_first": "base_first"}),
                             base_response=planted["candidate_response"], candidate_response=planted["base_response"])
    back = judged_result("t", swapped, _judge_spec(True))
    assert back.win_rate.estimate == pytest.approx(1 - cal.win_rate.estimate)
    assert (back.wins, back.losses) == (cal.losses, cal.wins)

    # no preference: across 200 simulated judges the calibrated interval holds 0.5 about 95% of the time
    # and the two orders agree by chance only (the gate refuses such a judge whatever its win rate)
    found, consistency = 0, []
    for _ in range(200):
        r = judged_result("t", _simulated(rng, 60, position=3.0, content=0.0), _judge_spec(True))
        found += not (r.win_rate.low <= 0.5 <= r.win_rate.high)
        consistency.append(r.position_consistency)
    assert found / 200 <= 0.1, found
    assert np.mean(consistency) < 0.6


def test_smollm2_as_a_judge_of_planted_notes_what_it_can_and_cannot_see(smollm2, tmp_path):
    """SmolLM2-135M-Instruct shown a claim, its reference note, the reference itself as one answer and
    a note of another category and person as the other. Raw, it answers "A" whatever it is shown;
    calibrated, its two orders agree on too few items for a gate to pass on it (its lean, measured:
    README, "Generated text"): the diagnostics say it cannot be trusted here, and the gate refuses."""


    from harness.config import GateSpec
    from harness.gates import gate_verdict
    from harness.judge import judge_frame, judged_result, loaded_judge, read_rubric
    from harness.records import CandidateResult
    from harness.store import Store

    (tmp_path / "suite.yaml").write_text(yaml.safe_dump({"name": "t", "task_dirs": [str(REPO / "suites" / "tasks")],
                                                          "tasks": [{"task": "demo_triage_note", "role": "target",
                                                                     "metric": "rougeL"}]}))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({
        "name": "planted", "base": {"path": str(smollm2)}, "candidates": [{"name": "x", "path": str(smollm2)}],
        "suite": "suite.yaml", "store": str(tmp_path / "store"), "stats": {"resamples": 500},
        "judge": {"model": {"path": str(smollm2), "dtype": "auto"},
                  "rubric": str(REPO / "configs" / "note-rubric.jinja"), "labels": ["A", "B", "C"],
                  "tasks": ["demo_triage_note"]}}))
    spec = load(tmp_path / "c.yaml").spec
    items = planted_notes(30)
    _, rubric = read_rubric(spec.judge)
    with loaded_judge(spec, Store(spec.store)) as (_, lm, entry):
        df = judge_frame(lm, rubric, spec.judge.labels, entry.prompt.template is not None, items)
    first = df["judge_prompt"].iloc[0]  # the base's note first; the rubric shows no input
    assert first.startswith("<|im_start|>system") and "Answer B: CUT. The electrician" in first and "Claim" not in first
    r = judged_result("demo_triage_note", df, spec)
    assert r.first_position_rate > 0.9 and r.raw_position_consistency < 0.2  # raw: where an answer is, not what
    print(f"SmolLM2 on planted notes: win rate {r.win_rate.estimate:.3f} [{r.win_rate.low:.3f}, {r.win_rate.high:.3f}],"
          f" consistency {r.position_consistency:.2f}, W/T/L {r.wins}/{r.ties}/{r.losses}")
    assert r.position_consistency < spec.judge.min_position_consistency  # calibrated: too few items agree
    gate = GateSpec(rule="wins", task="demo_triage_note", min_delta=0.0)
    v = gate_verdict(CandidateResult(candidate="x", tasks=[], roles=[], flips=[], judged=[r]), gate)
    assert v.status == "fail" and "judge.min_position_consistency" in v.message


def test_the_label_check_loads_the_tokenizer_once_per_labels_and_tokenizer_files(tiny_world, tmp_path, monkeypatch):
    """A no-op re-run imports no transformers for the judge: the check that each label is one token
    is remembered in the store, keyed by the labels and the tokenizer files' content."""
    import shutil

    import transformers

    from harness.config import JudgeSpec
    from harness.judge import check_labels
    from harness.store import Store

    folder = tmp_path / "judge"
    shutil.copytree(tiny_world.base, folder)
    (tmp_path / "rubric.jinja").write_text(RUBRIC)
    judge = JudgeSpec.model_validate({"model": {"path": str(folder)}, "rubric": str(tmp_path / "rubric.jinja"),
                                      "tasks": ["t"], "labels": ["A", "B", "C"]})
    store, loads = Store(tmp_path / "store"), []
    real = transformers.AutoTokenizer.from_pretrained
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained",
                        lambda *a, **k: loads.append(a) or real(*a, **k))
    check_labels(judge, folder, store)
    check_labels(judge, folder, store)
    assert len(loads) == 1  # checked once, remembered
    check_labels(judge.model_copy(update={"labels": ["A", "B", "D"]}), folder, store)
    assert len(loads) == 2  # other labels: checked
    config = folder / "tokenizer_config.json"
    config.write_text(config.read_text().replace("{", '{"model_max_length": 77, ', 1))
    check_labels(judge, folder, store)
    assert len(loads) == 3  # the tokenizer changed: checked again
    with pytest.raises(ConfigError, match="is 2 tokens"):  # and a failing check is never remembered
        for _ in range(2):
            check_labels(judge.model_copy(update={"labels": ["A", "B", " tie"]}), folder, store)


def test_a_judge_that_follows_length_is_told_apart_by_the_length_controlled_win_rate():
    """Simulation: the candidate's answer is the longer one on 3 items in 4 and a judge prefers whichever
    answer is longer, by up to 3 nats as the standardised length difference grows (through tanh, the
    form the length control assumes), nothing else. Its (calibrated) win rate is well above 0.5; the
    length-controlled one holds 0.5 and is far enough from it to be warned of. A judge that prefers the
    candidate's answers whatever their length keeps its win under length control."""
    from harness.judge import judged_result
    from harness.records import LENGTH_GAP

    def judge(rng, content_of_length: float, content: float) -> pd.DataFrame:
        rows = []
        extra = np.where(rng.random(120) < 0.75, 1, -1) * rng.integers(5, 60, 120)  # candidate minus base
        taste = np.tanh(extra / extra.std())  # the shape AlpacaEval's regression assumes
        for doc in range(120):
            cand, base = "x" * (60 + extra[doc]), "x" * 60
            prefer = content + content_of_length * taste[doc]  # toward the candidate, in nats
            for order in ("base_first", "candidate_first"):
                odds = (prefer if order == "candidate_first" else -prefer) + rng.normal(0, 0.5)
                lp_a, lp_b, lp_tie = -1 + odds / 2, -1 - odds / 2, -2.5 + rng.normal(0, 0.5)
                rows.append({"doc_id": doc, "order": order, "lp_a": lp_a, "lp_b": lp_b, "lp_tie": lp_tie,
                             "pick": [" A", " B", " C"][int(np.argmax([lp_a, lp_b, lp_tie]))], "input": "i",
                             "reference": "r", "judge_tokens": 40, "base_response": base, "candidate_response": cand})
        return pd.DataFrame(rows)

    rng = np.random.default_rng(3)
    runs = 40
    follows = [judged_result("t", judge(rng, content_of_length=3.0, content=0.0), _judge_spec(True))
               for _ in range(runs)]
    assert np.mean([r.win_rate.estimate for r in follows]) > 0.65 and min(r.longer_rate for r in follows) > 0.9
    assert abs(np.mean([r.length_controlled.estimate for r in follows]) - 0.5) < 0.03  # 40 runs: sd ~0.01
    assert sum(abs(r.length_gap) > LENGTH_GAP for r in follows) >= 0.9 * runs  # warned of
    sees = [judged_result("t", judge(rng, content_of_length=0.0, content=2.0), _judge_spec(True))
            for _ in range(runs)]
    assert sum(r.length_controlled.low > 0.5 and abs(r.length_gap) <= LENGTH_GAP for r in sees) >= 0.95 * runs


def test_a_lora_judge_is_its_base_with_the_adapter_keyed_by_the_adapters_files(tiny_world, tmp_path):
    """`judge.adapter`: the judge is its base with a LoRA adapter (as `harness train` writes one): served
    as the base's variant, its verdicts the adapter's (other log-probabilities than the bare base's), its
    judgments keyed apart from the bare base's; an adapter on a served judge is refused."""
    from harness.judge import judge_entry, judge_frame, loaded_judge, read_rubric
    from harness.store import Store

    cand = tiny_world.candidates["domain-only"]
    bare = load(_config(tmp_path, tiny_world.base, {"domain-only": cand}, {})).spec
    tuned = load(_config(tmp_path, tiny_world.base, {"domain-only": cand}, {"adapter": str(cand)})).spec
    store = Store(tmp_path / "store")
    e_bare, e_tuned = judge_entry(bare, store), judge_entry(tuned, store)
    assert e_tuned.adapter_dir == cand and e_tuned.variant == "judge" and e_tuned.fingerprint != e_bare.fingerprint
    items = pd.DataFrame({"input": ["Claim: a fall\nCategory:"] * 2, "reference": [" FALL. The cook reported it."] * 2,
                          "base_response": [" FALL. The cook said he was hurt.", " CUT. A story."],
                          "candidate_response": [" CUT. The cook was hurt.", " FALL. The cook reported it."]})
    _, rubric = read_rubric(bare.judge)
    frames = []
    for spec in (bare, tuned):
        with loaded_judge(spec, store) as (_, lm, entry):
            frames.append(judge_frame(lm, rubric, spec.judge.labels, entry.prompt.template is not None, items))
    lp = ["lp_a", "lp_b", "lp_tie"]
    assert np.abs(frames[0][lp].to_numpy() - frames[1][lp].to_numpy()).max() > 1e-3  # the adapter counts
    with pytest.raises(ConfigError, match="judge.adapter: a LoRA adapter goes on a judge the harness loads"):
        load(_config(tmp_path, tiny_world.base, {"domain-only": cand},
                     {"model": None, "adapter": str(cand), "endpoint": {"base_url": "http://127.0.0.1:9/v1",
                                                                        "model": "j"}}))

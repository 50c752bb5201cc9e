"""The pytest plugin: `pytest --harness-config` collects one item per (candidate, gate), passes
and fails as `harness gate` does, and writes JUnit XML a CI system reads."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from junitparser import JUnitXml

from conftest import REPO
from harness.cli import main


@pytest.fixture(scope="module")
def gate_json(demo_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("gate") / "gates.json"
    CliRunner().invoke(main, ["gate", "--config", str(demo_config), "--json", str(out)])
    return {f"{v['candidate']}::{v['gate']}": v["status"] for v in json.loads(out.read_text())["verdicts"]}


def test_collects_one_readable_item_per_candidate_and_gate(pytester, demo_config, gate_json):
    result = pytester.runpytest("--harness-config", str(demo_config), "--collect-only", "-q")
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "*gate[[]domain-only::forgetting::non_inferior[]]",
        "*gate[[]balanced-replay::bias::no_bias_amplification[]]",
        "*gate[[]balanced-replay::demo_triage_note::wins[]]",  # the judged notes
        "*gate[[]small-domain-only::demo_triage::improves[]]",  # the second base's fine-tune, against it
        "20 tests collected*",
    ])
    assert len(gate_json) == 20


def test_items_pass_and_fail_as_harness_gate_does_and_junit_is_readable(pytester, demo_config, gate_json, tmp_path):
    junit = tmp_path / "gates.xml"
    result = pytester.runpytest("--harness-config", str(demo_config), f"--junit-xml={junit}", "-rf")
    expected_fail = sorted(k for k, v in gate_json.items() if v == "fail")
    result.assert_outcomes(passed=len(gate_json) - len(expected_fail), failed=len(expected_fail))
    for test_id in expected_fail:
        result.stdout.fnmatch_lines([f"FAILED *gate[[]{test_id}[]]*"])
    # the failure says what, by how much, and shows the items that went wrong
    result.stdout.fnmatch_lines([
        "*FAIL: domain-only::forgetting::non_inferior",
        "*  estimate  -0.*", "*  interval  [[]-0.*", "*threshold -0.1000*",
        "*worst flipped examples (right for base, wrong for domain-only):",
        "*The capital of*",
    ])
    suite = next(iter(JUnitXml.fromfile(str(junit))))
    assert suite.tests == 20 and suite.failures == len(expected_fail)
    failed = sorted(case.name for case in suite if case.result and case.result[0]._tag == "failure")
    assert [f.split("::", 1)[0] for f in expected_fail] and len(failed) == len(expected_fail)


def test_keyword_selection_and_one_candidate(pytester, demo_config):
    # balanced-replay passes every gate but the judged one: SmolLM2, the judge here, fails its validation
    result = pytester.runpytest("--harness-config", str(demo_config), "--harness-candidate", "balanced-replay")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(["*FAILED*balanced-replay::demo_triage_note::wins*"])
    result = pytester.runpytest("--harness-config", str(demo_config), "-k", "forgetting")
    result.assert_outcomes(passed=2, failed=2, deselected=16)


def test_malformed_gate_is_a_usage_error_before_anything_runs(pytester, demo_config):
    bad = pytester.path / "bad.yaml"
    bad.write_text(demo_config.read_text().replace("margin: 0.1}", "margin: -0.1}"))
    result = pytester.runpytest("--harness-config", str(bad))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*bad.yaml: gates[[]2[]].margin: Input should be greater than 0*"])


# --------------------------------------------------------------------------- summary gates


def _flip(task: str, doc_id: int, direction: str = "to_wrong"):
    from harness.records import FlipRecord

    return FlipRecord(task=task, doc_id=doc_id, direction=direction, prompt="p", target="t",
                      base_response="t", candidate_response="x")


def test_a_failing_summary_gate_shows_the_worst_flips_of_the_summarys_tasks():
    from harness.config import GateSpec
    from harness.pytest_plugin import worst_flips
    from harness.records import CandidateResult, Estimate, SummaryResult

    general = SummaryResult(name="general", role="forgetting", tasks=["a", "b"], n=100,
                            delta=Estimate(estimate=-0.2, low=-0.3, high=-0.1), se=0.05, p_value=0.01, mde=0.1)
    flips = [_flip("a", 1), _flip("c", 2), _flip("b", 3, "to_right"), _flip("b", 4)]
    cr = CandidateResult(candidate="c", tasks=[], roles=[], flips=flips, summaries=[general])
    gate = GateSpec(rule="non_inferior", summary="general", margin=0.05)
    assert [(f.task, f.doc_id) for f in worst_flips(cr, gate)] == [("a", 1), ("b", 4)]


def test_a_failing_summary_gate_is_reported_as_a_gate_failure(pytester, tiny_world, tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text((REPO / "suites" / "demo.yaml").read_text().replace("task_dirs: [tasks]", f"task_dirs: "
                     f"[{REPO / 'suites' / 'tasks'}]") + "summaries:\n  - {name: general, tasks: [demo_capitals, "
                     "demo_elements]}\n")
    config = tmp_path / "h.yaml"
    config.write_text(f"name: tiny\nbase: {{path: {tiny_world.base}}}\ncandidates:\n"
                      f"  - {{name: domain-only, adapter: {tiny_world.candidates['domain-only']}}}\n"
                      f"suite: {suite}\neval: {{batch_size: 16, limit: 12}}\nstats: {{resamples: 500}}\n"
                      f"store: {tmp_path / 'store'}\nreport_dir: {tmp_path / 'report'}\n"
                      "gates:\n  - {rule: improves, summary: general, min_delta: 0.9}\n")
    result = pytester.runpytest("--harness-config", str(config))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*FAIL: domain-only::general::improves", "*gain below +0.9000*"])
    result.stdout.no_fnmatch_line("*AttributeError*")

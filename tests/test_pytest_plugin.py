"""The pytest plugin: `pytest --harness-config` collects one item per (candidate, gate), passes
and fails as `harness gate` does, and writes JUnit XML a CI system reads."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from junitparser import JUnitXml

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
        "12 tests collected*",
    ])
    assert len(gate_json) == 12


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
    assert suite.tests == 12 and suite.failures == len(expected_fail)
    failed = sorted(case.name for case in suite if case.result and case.result[0]._tag == "failure")
    assert [f.split("::", 1)[0] for f in expected_fail] and len(failed) == len(expected_fail)


def test_keyword_selection_and_one_candidate(pytester, demo_config):
    result = pytester.runpytest("--harness-config", str(demo_config), "--harness-candidate", "balanced-replay")
    result.assert_outcomes(passed=4)
    result = pytester.runpytest("--harness-config", str(demo_config), "-k", "forgetting")
    result.assert_outcomes(passed=2, failed=1, deselected=9)


def test_malformed_gate_is_a_usage_error_before_anything_runs(pytester, demo_config):
    bad = pytester.path / "bad.yaml"
    bad.write_text(demo_config.read_text().replace("margin: 0.1}", "margin: -0.1}"))
    result = pytester.runpytest("--harness-config", str(bad))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*bad.yaml: gates[[]2[]].margin: Input should be greater than 0*"])

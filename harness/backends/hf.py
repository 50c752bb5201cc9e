"""The `hf` backend: transformers + peft, one loaded model for a base and all its LoRA adapters.

lm-eval's HFLM does the request handling (batching, tokenisation, scoring) on a model we load:
the base wrapped in a peft model holding every candidate's adapter. A candidate is served by
`set_adapter(name)`; the base by `disable_adapter()`, which gives exactly the plain base's
log-likelihoods (a test checks it).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from harness.backends.base import BASE, check_fits
from harness.errors import HarnessError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
TOKEN_CACHE = True  # tokenise each distinct string once per loaded model (tests turn it off to compare)


def _hflm_class():
    """lm-eval's HFLM without its per-call progress bars (the harness reports per run)."""
    from lm_eval.models.huggingface import HFLM

    class QuietHFLM(HFLM):
        def loglikelihood(self, requests, disable_tqdm: bool = True):
            return super().loglikelihood(requests, disable_tqdm=True)

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = True):
            return super().loglikelihood_rolling(requests, disable_tqdm=True)

        def generate_until(self, requests, disable_tqdm: bool = True):
            return super().generate_until(requests, disable_tqdm=True)

        def tok_encode(self, string: str, add_special_tokens: bool | None = None,
                       left_truncate_len: int | None = None, **kwargs) -> list[int]:
            # the same strings come back for every variant (base and each adapter): tokenise once
            if kwargs or not TOKEN_CACHE:
                return super().tok_encode(string, add_special_tokens, left_truncate_len, **kwargs)
            key = (string, add_special_tokens, left_truncate_len)
            cache = self.__dict__.setdefault("_harness_tokens", {})
            if key not in cache:
                cache[key] = super().tok_encode(string, add_special_tokens, left_truncate_len)
            return list(cache[key])

        def _loglikelihood_tokens(self, requests, *args, **kwargs):
            check_fits(requests, self.max_length)
            return super()._loglikelihood_tokens(requests, *args, **kwargs)

    return QuietHFLM


class HFBackend:
    """Serve `base` and the LoRA `adapters` (name -> folder) from one loaded model."""

    name = "hf"

    def __init__(self, model_dir: Path, *, dtype: str, device: str, batch_size: int,
                 adapters: dict[str, Path] | None = None, trust_remote_code: bool = False,
                 max_length: int | None = None):
        import transformers

        transformers.utils.logging.disable_progress_bar()
        self._adapters = dict(adapters or {})
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                model_dir, trust_remote_code=trust_remote_code)
            model = transformers.AutoModelForCausalLM.from_pretrained(
                model_dir, dtype=DTYPES[dtype], trust_remote_code=trust_remote_code,
                use_safetensors=True)
        except (OSError, ValueError) as e:
            raise HarnessError(f"{model_dir}: could not load the model: {e}") from None
        model.to(device).eval()
        if self._adapters:
            model = self._attach(model, self._adapters)
        self.model = model
        # lm-eval's HFLM around our already-built model: it keeps its batching and scoring.
        self.lm = _hflm_class()(pretrained=model, tokenizer=tokenizer, batch_size=batch_size,
                                device=device, dtype=DTYPES[dtype], max_length=max_length)
        # HFLM looks the context length up in the model config on every request (12,000 lookups,
        # 0.3 s, for the bench suite); it cannot change while the model is loaded
        self.lm._max_length = self.lm.max_length

    @staticmethod
    def _attach(model, adapters: dict[str, Path]):
        from peft import PeftModel

        items = list(adapters.items())
        try:
            first_name, first_dir = items[0]
            peft_model = PeftModel.from_pretrained(model, first_dir, adapter_name=first_name)
            for name, folder in items[1:]:
                peft_model.load_adapter(folder, adapter_name=name)
        except (OSError, ValueError, RuntimeError, KeyError) as e:
            raise HarnessError(f"could not load LoRA adapter onto the base: {e}; check that the "
                               "adapter was trained for this base model") from None
        peft_model.eval()
        return peft_model

    def variants(self) -> list[str]:
        return [BASE, *self._adapters]

    @contextmanager
    def activate(self, variant: str) -> Iterator:
        if variant == BASE:
            if self._adapters:
                with self.model.disable_adapter():
                    yield self.lm
            else:
                yield self.lm
            return
        if variant not in self._adapters:
            raise HarnessError(f"variant '{variant}' is not loaded in this backend "
                               f"(have: {', '.join(self.variants())})")
        self.model.set_adapter(variant)
        yield self.lm

    def close(self) -> None:
        del self.lm, self.model
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

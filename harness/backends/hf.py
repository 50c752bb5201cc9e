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

from harness.errors import HarnessError
from harness.records import BASE, PromptFormat

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def check_loaded(model, model_dir: Path, info: dict) -> None:
    """What loading must not do silently: leave weights at their random initialisation (a tensor the
    files lack, e.g. an untied lm_head saved without its weight), or untie what the config ties (a
    loader that copies the embeddings into lm_head: transformers PR #35085's GGUF case), which
    changes every score of a model fine-tuned with them tied."""
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise HarnessError(f"{model_dir}: the model's files hold no weights for {len(missing)} of its tensors "
                           f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}): they would be scored "
                           "at their random initialisation; save the model again with every weight (or, for a "
                           "tied lm_head, with tie_word_embeddings set in config.json)")
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    head, embed = model.get_output_embeddings(), model.get_input_embeddings()
    if getattr(config, "tie_word_embeddings", False) and head is not None and embed is not None \
            and head.weight.data_ptr() != embed.weight.data_ptr():
        raise HarnessError(f"{model_dir}: config.json ties lm_head to the input embeddings, but the loaded model "
                           "holds them as two tensors: the loader untied them, and its scores are not the "
                           "model's; load it with a transformers that keeps them tied, or save it untied")


class HFBackend:
    """Serve `base` and the LoRA `adapters` (name -> folder) from one loaded model."""

    name = "hf"

    def __init__(self, model_dir: Path, *, dtype: str, device: str, batch_size: int,
                 adapters: dict[str, Path] | None = None, trust_remote_code: bool = False,
                 max_length: int | None = None, allow_pickle: bool = False, plain: bool = False):
        import transformers

        transformers.utils.logging.disable_progress_bar()
        self._adapters = dict(adapters or {})
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                model_dir, trust_remote_code=trust_remote_code)
            model, info = transformers.AutoModelForCausalLM.from_pretrained(
                model_dir, dtype=DTYPES[dtype], trust_remote_code=trust_remote_code,
                use_safetensors=None if allow_pickle else True, output_loading_info=True)
        except (OSError, ValueError) as e:
            raise HarnessError(f"{model_dir}: could not load the model: {e}") from None
        check_loaded(model, model_dir, info)
        model.to(device).eval()
        if self._adapters:
            model = self._attach(model, self._adapters)
        self.model = model
        # lm-eval's HFLM around our already-built model: it keeps its batching and scoring.
        from harness.backends.hf_lm import HarnessHFLM

        self.lm = HarnessHFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size,
                                device=device, dtype=DTYPES[dtype], max_length=max_length, plain=plain)

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
    def activate(self, variant: str, prompt=None, who: str = "", scoring: str = "") -> Iterator:
        self.lm.harness_prompt, self.lm.harness_who = prompt or PromptFormat(), who or variant
        self.lm.harness_tokens = {}
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

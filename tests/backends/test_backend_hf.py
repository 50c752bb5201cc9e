"""The hf backend: one loaded model serves the base and every adapter, with exact scores."""

from __future__ import annotations

import torch
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from harness.backends.hf import HFBackend

CONTEXTS = ["The capital of France is", "Claim: A nurse from the hospital slipped on a wet floor "
            "during the morning shift. She needs a week off.\nCategory:", "Seven plus two is"]
CONTINUATIONS = [" Paris", " FALL", " nine", " Rome", " DENY"]


def _requests():
    return [Instance(request_type="loglikelihood", doc={}, arguments=(c, x), idx=i)
            for i, (c, x) in enumerate((c, x) for c in CONTEXTS for x in CONTINUATIONS)]


def _lls(lm) -> list[float]:
    return [ll for ll, _ in lm.loglikelihood(_requests(), disable_tqdm=True)]


def _plain(model_dir, adapter=None):
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter)
    return HFLM(pretrained=model.eval(), tokenizer=tok, batch_size=4, device="cpu")


def test_base_variant_equals_the_plain_base_model_exactly(tiny_world):
    backend = HFBackend(tiny_world.base, dtype="float32", device="cpu", batch_size=4,
                        adapters=tiny_world.candidates)
    with backend.activate("base") as lm:
        shared = _lls(lm)
    plain = _lls(_plain(tiny_world.base))
    assert shared == plain  # bit-identical, not merely close


def test_each_adapter_variant_equals_its_separately_loaded_peft_model(tiny_world):
    backend = HFBackend(tiny_world.base, dtype="float32", device="cpu", batch_size=4,
                        adapters=tiny_world.candidates)
    with backend.activate("base") as lm:
        base = _lls(lm)
    for name, folder in tiny_world.candidates.items():
        with backend.activate(name) as lm:
            shared = _lls(lm)
        alone = _lls(_plain(tiny_world.base, adapter=folder))
        assert max(abs(a - b) for a, b in zip(shared, alone, strict=True)) < 1e-5
        assert shared != base  # the adapter is really applied
    # switching back to the base after the adapters restores the base exactly
    with backend.activate("base") as lm:
        assert _lls(lm) == base


def test_unknown_variant_is_a_clear_error(tiny_world):
    import pytest

    from harness.errors import HarnessError

    backend = HFBackend(tiny_world.base, dtype="float32", device="cpu", batch_size=4)
    with pytest.raises(HarnessError, match="variant 'nope' is not loaded"):
        with backend.activate("nope"):
            pass

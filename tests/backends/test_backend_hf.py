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


def test_base_variant_scores_as_the_plain_base_model(tiny_world):
    """Each context run once and its cache shared by its five continuations: lm-eval's plain HFLM on
    the bare model within 1e-4 nats per request (float32 sums in another order), the same greedy flags."""
    backend = HFBackend(tiny_world.base, dtype="float32", device="cpu", batch_size=4,
                        adapters=tiny_world.candidates)
    with backend.activate("base") as lm:
        shared = lm.loglikelihood(_requests(), disable_tqdm=True)
    plain = _plain(tiny_world.base).loglikelihood(_requests(), disable_tqdm=True)
    assert max(abs(a - b) for (a, _), (b, _) in zip(shared, plain, strict=True)) < 1e-4
    assert [g for _, g in shared] == [g for _, g in plain]


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


def test_a_model_missing_a_weight_or_untied_on_loading_is_refused(tiny_world, tmp_path):
    """Loading checked: a tensor the files lack (here lm_head, of an untied model) would be scored at
    its random initialisation; a config that ties lm_head to the embeddings, loaded untied, is not
    the model that was tuned."""
    import shutil

    import pytest
    from safetensors.torch import load_file, save_file

    from harness.errors import HarnessError

    folder = tmp_path / "no-head"
    shutil.copytree(tiny_world.base, folder)
    weights = load_file(folder / "model.safetensors")
    assert "lm_head.weight" in weights  # the demo's base is untied
    del weights["lm_head.weight"]
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(HarnessError, match=r"no-head: the model's files hold no weights for 1 of its tensors "
                                           r"\(lm_head.weight\)"):
        HFBackend(folder, dtype="float32", device="cpu", batch_size=4)

    import json

    # config.json ties lm_head to the embeddings, but the files hold a head of other values:
    # transformers keeps the two apart, with a warning only; those are not the scores of a tied model
    tied = tmp_path / "tied"
    shutil.copytree(tiny_world.base, tied)
    config = json.loads((tied / "config.json").read_text())
    (tied / "config.json").write_text(json.dumps({**config, "tie_word_embeddings": True}))
    with pytest.raises(HarnessError, match="config.json ties lm_head to the input embeddings, but the loaded"):
        HFBackend(tied, dtype="float32", device="cpu", batch_size=4)
    # tied as the config says (no head of its own in the files): loads
    shutil.copy(folder / "model.safetensors", tied / "model.safetensors")
    backend = HFBackend(tied, dtype="float32", device="cpu", batch_size=4)
    assert backend.model.lm_head.weight.data_ptr() == backend.model.model.embed_tokens.weight.data_ptr()
    backend.close()

"""The hf backend: one loaded model serves the base and every adapter, with exact scores."""

from __future__ import annotations

import torch
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from conftest import logprob_tolerance, logprobs_within
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
    the bare model within float32's tolerance per request (sums in another order:
    conftest.logprob_tolerance), the same greedy flags."""
    backend = HFBackend(tiny_world.base, dtype="float32", device="cpu", batch_size=4,
                        adapters=tiny_world.candidates)
    with backend.activate("base") as lm:
        shared = lm.loglikelihood(_requests(), disable_tqdm=True)
    plain = _plain(tiny_world.base).loglikelihood(_requests(), disable_tqdm=True)
    logprobs_within([a for a, _ in shared], [b for b, _ in plain], tiny_world.base)
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
        logprobs_within(shared, alone, tiny_world.base, what=name)
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


def test_prefix_clusters_share_the_longest_beginnings_and_leave_each_context_its_last_token():
    """Hand-worked splits: two families of contexts (each beginning alike for 20 tokens, differing after)
    and a stranger become two runs sharing 20 tokens and a run of one; a run never takes a context's
    last token into the shared part, nor grows past `max_size`; a short common beginning (under the
    overhead of a pass) is not shared."""
    from harness.backends.hf_lm import prefix_clusters

    a = tuple(range(100, 120))
    b = tuple(range(200, 220))
    family_a = [a + (1, 2, 3), a + (4, 5), a + (6,)]
    family_b = [b + (7, 8), b + (9,)]
    stranger = (5, 6, 7)
    runs = prefix_clusters([*family_a, stranger, *family_b], max_size=8, overhead=4)
    assert sorted((p, sorted(r)) for p, r in runs) == sorted(
        [(20, sorted(family_a)), (20, sorted(family_b)), (0, [stranger])])
    # a context that is the others' beginning keeps its last token out of the shared part
    runs = prefix_clusters([a, a + (1, 2)], max_size=8, overhead=4)
    assert runs == [(19, [a, a + (1, 2)])]
    # at most max_size a run
    runs = prefix_clusters([a + (i,) for i in range(5)], max_size=2, overhead=4)
    assert sorted(len(r) for _, r in runs) == [1, 2, 2] and all(p == 20 for p, r in runs if len(r) == 2)
    # 3 tokens in common, overhead 4: not worth a pass
    assert all(p == 0 for p, _ in prefix_clusters([(1, 2, 3, 4), (1, 2, 3, 5)], max_size=8, overhead=4))


def test_contexts_that_begin_alike_score_as_the_plain_path_with_fewer_tokens_fed(tiny_world):
    """Judge-like prompts (a long common rubric, then different answers, each asked for three one-token
    labels) and multi-token continuations: each request within the float32 tolerance of lm-eval's
    plain HFLM, the same greedy flags, and the tokens fed counted against the full sequences'."""
    rubric = ("Reference: the claimant slipped on a wet floor during her shift at the hospital.\n\n"
              "Answer A: {a}\nAnswer B: {b}\n\nWhich answer says the same as the reference? Reply A or B.")
    answers = ["She slipped on a wet floor.", "He burned his hand.", "A fall at work.", "Outside work."]
    contexts = [rubric.format(a=x, b=y) for x in answers for y in answers if x != y] + CONTEXTS
    requests = [Instance(request_type="loglikelihood", doc={}, arguments=(c, x), idx=i)
                for i, (c, x) in enumerate((c, x) for c in contexts for x in (" A", " B", " C", " FALL at work"))]
    backend = HFBackend(tiny_world.base, dtype="float32", device="cpu", batch_size=8)
    with backend.activate("base") as lm:
        shared = lm.loglikelihood(requests, disable_tqdm=True)
        counts = dict(lm.harness_tokens)
    plain = _plain(tiny_world.base).loglikelihood(requests, disable_tqdm=True)
    for (a, ga), (b, gb) in zip(shared, plain, strict=True):
        assert abs(a - b) <= logprob_tolerance(tiny_world.base, b), (a, b)
        assert ga == gb
    assert counts["requested"] > 2 * counts["fed"] > 0, counts


def test_packed_requests_feed_each_unique_token_once_and_one_token_choices_nothing_more(tiny_world):
    """Short contexts (no common beginning worth sharing) with four one-token choices and one longer
    continuation each: the packed path feeds every context's tokens once and only the longer
    continuation's tokens besides (a one-token choice is read at its context's last position), and
    scores each request as lm-eval's plain HFLM within float32's tolerance, with the same greedy flags."""
    contexts = [f"Claim {i}: the worker {w} at the site.\nCategory:" for i, w in
                enumerate(["slipped", "burned a hand", "cut a finger", "strained a back", "fell"])]
    choices = [" A", " B", " C", " D", " FALL at work today"]
    requests = [Instance(request_type="loglikelihood", doc={}, arguments=(c, x), idx=i)
                for i, (c, x) in enumerate((c, x) for c in contexts for x in choices)]
    backend = HFBackend(tiny_world.base, dtype="float32", device="cpu", batch_size=8)
    with backend.activate("base") as lm:
        packed = lm.loglikelihood(requests, disable_tqdm=True)
        counts = dict(lm.harness_tokens)
        context_tokens = sum(len(lm.tok_encode(c)) for c in contexts)
        one_token = all(len(lm.tok_encode(x, add_special_tokens=False)) == 1 for x in choices[:4])
        long_tokens = len(lm.tok_encode(choices[4], add_special_tokens=False))
    assert one_token  # the premise: single-token letters in this tokenizer
    assert counts["fed"] == context_tokens + len(contexts) * (long_tokens - 1), counts
    plain = _plain(tiny_world.base).loglikelihood(requests, disable_tqdm=True)
    for (a, ga), (b, gb) in zip(packed, plain, strict=True):
        assert abs(a - b) <= logprob_tolerance(tiny_world.base, b), (a, b)
        assert ga == gb


def test_an_attention_kernel_without_4d_masks_scores_on_lm_evals_path_said_once(tiny_world, monkeypatch):
    """A model whose attention kernel takes no custom 4D mask (flash-attention's varlen path) is never
    packed: one warning names the kernel, and every request is scored as lm-eval's plain path scores it."""
    import warnings

    from harness.backends import hf_lm

    monkeypatch.setattr(hf_lm, "PACKED_KERNELS", ("eager",))  # this model runs sdpa: as if it could not pack
    requests = [Instance(request_type="loglikelihood", doc={}, arguments=(c, " FALL"), idx=i)
                for i, c in enumerate(CONTEXTS)]
    backend = HFBackend(tiny_world.base, dtype="float32", device="cpu", batch_size=8)
    with backend.activate("base") as lm, warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        first = lm.loglikelihood(requests, disable_tqdm=True)
        lm.loglikelihood(requests, disable_tqdm=True)
        lm.plain = True
        plain = lm.loglikelihood(requests, disable_tqdm=True)
    messages = [str(w.message) for w in said if "cannot score packed requests" in str(w.message)]
    assert len(messages) == 1 and "attention kernel sdpa takes no 4D mask" in messages[0], messages
    assert first == plain


def test_packed_rows_split_long_runs_and_still_score_every_request_as_its_full_sequence(tiny_world):
    """Contexts with and without a common 30-token beginning, one to five continuations of one to eight
    tokens each, packed into rows of 8, 20, 64 and 512 tokens: a run or a context's continuations too
    long for a row go on in the next (the beginning or the context again), so a row never holds more
    than its budget beyond one request; every request scores as its own full sequence within float32's
    tolerance, and a larger row feeds fewer tokens (each shared token once)."""
    import random

    from harness.backends.hf_lm import _rows, _units, packed_scores, prefix_clusters

    model = AutoModelForCausalLM.from_pretrained(tiny_world.base, dtype=torch.float32).eval()
    rng = random.Random(0)
    beginning = [rng.randrange(5, 200) for _ in range(30)]
    requests = []
    for c in range(12):
        ctx = tuple((beginning if c % 2 else []) + [rng.randrange(5, 200) for _ in range(rng.randrange(3, 15))])
        requests += [(None, ctx, tuple(rng.randrange(5, 200) for _ in range(rng.randrange(1, 9))))
                     for _ in range(rng.randrange(1, 6))]
    with torch.no_grad():
        full = []
        for _, ctx, cont in requests:
            lp = torch.log_softmax(model(input_ids=torch.tensor([[*ctx, *cont]])).logits.float(), -1)[0]
            full.append(sum(float(lp[len(ctx) - 1 + j, t]) for j, t in enumerate(cont)))
    groups: dict = {}
    for i, (_, ctx, _) in enumerate(requests):
        groups.setdefault(ctx, []).append(i)
    longest = max(len(ctx) + len(cont) - 1 for _, ctx, cont in requests)
    fed = []
    for cap in (8, 20, 64, 512):
        rows = _rows(_units(requests, groups, prefix_clusters(list(groups), 4), cap), cap)
        assert all(sum(len(u.tokens) for u in row) <= max(cap, longest) for row in rows), cap
        counts: dict = {}
        packed = packed_scores(model, requests, 4, "cpu", counts=counts, row_tokens=cap)
        for (a, _), b in zip(packed, full, strict=True):
            assert abs(a - b) <= logprob_tolerance(tiny_world.base, b), (cap, a, b)
        fed.append(counts["fed"])
    assert fed[0] <= counts["requested"] and fed == sorted(fed, reverse=True) and fed[-1] < fed[0] / 2, fed

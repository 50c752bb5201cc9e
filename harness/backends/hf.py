"""The `hf` backend: transformers + peft, one loaded model for a base and all its LoRA adapters.

lm-eval's HFLM does the request handling (batching, tokenisation, scoring) on a model we load:
the base wrapped in a peft model holding every candidate's adapter. A candidate is served by
`set_adapter(name)`; the base by `disable_adapter()`, which gives exactly the plain base's
log-likelihoods (a test checks it).
"""

from __future__ import annotations

import gc
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from harness.backends import patches
from harness.backends.base import check_fits, render_chat
from harness.errors import HarnessError
from harness.records import BASE, PromptFormat
from harness.util import progress

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@torch.no_grad()
def shared_prefix_scores(model, requests, batch_size: int, device, done=None) -> list[tuple[float, bool]]:
    """(log-likelihood, is_greedy) of each (key, context tokens, continuation tokens), as lm-eval's
    HFLM scores them, with each distinct context run through the model once: its key/value cache is
    copied to every continuation of it, so a question with four answers costs one context pass and
    one pass over the answers' tokens instead of four passes over context and answer. Contexts are
    batched `batch_size` at a time, longest first, left-padded (positions counted from each one's
    first real token); the first continuation token's log-probability comes from the context pass,
    the rest from one right-padded pass over the continuations with the cache."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, (_, ctx, _) in enumerate(requests):
        groups.setdefault(tuple(ctx), []).append(i)
    contexts = sorted(groups, key=len, reverse=True)
    out: list = [None] * len(requests)
    for start in range(0, len(contexts), batch_size):
        batch = contexts[start:start + batch_size]
        width = len(batch[0])
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        mask = torch.zeros(len(batch), width, dtype=torch.long)
        for row, ctx in enumerate(batch):
            ids[row, width - len(ctx):] = torch.tensor(ctx)
            mask[row, width - len(ctx):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        # only the last position's logits: the context's own tokens are not scored (a vocabulary-wide
        # projection of every context token saved). The position as an index tensor, not
        # `logits_to_keep=1`: the integer's slice is a strided view that, under a peft model, torch
        # multiplies by the head as a batched matmul over a copy of the weight per row (SmolLM2, 24
        # rows: 1.35 s against 0.12 s, the same logits bit for bit)
        last = torch.tensor([width - 1], device=device)
        first = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                      use_cache=True, logits_to_keep=last)
        head = torch.log_softmax(first.logits[:, -1, :].float(), dim=-1)  # the first continuation token
        rows = [(row, i) for row, ctx in enumerate(batch) for i in groups[ctx]]
        conts = [requests[i][2] for _, i in rows]
        length = max(len(c) for c in conts) - 1  # tokens fed after the context: all but each one's last
        tail = None
        if length > 0:
            index = torch.tensor([row for row, _ in rows], device=first.logits.device)
            cache = first.past_key_values
            cache.reorder_cache(index)  # each continuation's own copy of its context's cache
            step = torch.zeros(len(rows), length, dtype=torch.long)
            step_mask = torch.zeros(len(rows), length, dtype=torch.long)
            for r, c in enumerate(conts):
                step[r, :len(c) - 1] = torch.tensor(c[:-1])
                step_mask[r, :len(c) - 1] = 1
            lengths = mask.sum(-1)[index.cpu()]
            step_positions = lengths[:, None] + torch.arange(length)[None, :]
            full_mask = torch.cat([mask[index.cpu()], step_mask], dim=1)
            tail = model(input_ids=step.to(device), attention_mask=full_mask.to(device),
                         position_ids=step_positions.to(device), past_key_values=cache, use_cache=True).logits
            tail = torch.log_softmax(tail.float(), dim=-1)
        for r, ((row, i), c) in enumerate(zip(rows, conts, strict=True)):
            lp = head[row, c[0]]
            greedy = bool(head[row].argmax() == c[0])
            if len(c) > 1:
                rest = tail[r, :len(c) - 1]
                target = torch.tensor(c[1:], device=rest.device)
                lp = lp + rest.gather(-1, target[:, None]).sum()
                greedy = greedy and bool((rest.argmax(-1) == target).all())
            out[i] = (float(lp), greedy)
        if done is not None:
            done(len(rows))
    return out


def _hflm_class():
    """lm-eval's HFLM with its request bars on terminals only, a token cache, and rolling
    log-likelihood scored in one length-sorted pass."""
    from lm_eval import utils
    from lm_eval.models.huggingface import HFLM

    class QuietHFLM(HFLM):
        def __init__(self, *args, plain: bool = False, **kwargs):
            super().__init__(*args, **kwargs)
            # plain: lm-eval's own paths (no token cache, rolling windows in lm-eval's loop), the
            # reference the fast paths are tested against
            self.plain = plain
            self._harness_tokens: dict[tuple, list[int]] = {}
            # HFLM looks the context length up in the model config on every request (12,000
            # lookups, 0.3 s, for the bench suite); it cannot change while the model is loaded
            self._harness_max_length: int = super().max_length

        @property
        def max_length(self) -> int:
            known = self.__dict__.get("_harness_max_length")
            return super().max_length if known is None else known

        # the prompt format of the variant being scored (set by HFBackend.activate)
        harness_prompt = None
        harness_who = ""

        def apply_chat_template(self, chat_history, add_generation_prompt: bool = True) -> str:
            return render_chat(self.tokenizer, chat_history, add_generation_prompt, self.harness_prompt,
                               self.harness_who, **self.chat_template_args)

        def loglikelihood(self, requests, disable_tqdm: bool = True):
            return super().loglikelihood(requests, disable_tqdm=True)  # its tokenising bar: too quick

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = True):
            """lm-eval's windows and sums, but every request's windows go to one
            `_loglikelihood_tokens` call, which sorts them by length: lm-eval sends them `batch_size`
            windows at a time in document order, each batch padded to its longest window."""
            if self.plain or self.batch_size == "auto" or self.world_size > 1:
                return super().loglikelihood_rolling(requests, disable_tqdm=True)
            windows, counts = [], []
            for request in requests:
                token_windows = utils.get_rolling_token_windows(
                    token_list=self.tok_encode(request.args[0]), prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length, context_len=1)
                own = [(None, *utils.make_disjoint_window(w)) for w in token_windows]
                windows += own
                counts.append(len(own))
            scored = self._loglikelihood_tokens(windows)
            totals, at = [], 0
            for request, n in zip(requests, counts, strict=True):
                totals.append(sum(ll for ll, _ in scored[at:at + n]))  # is_greedy discarded, as lm-eval does
                at += n
                self.cache_hook.add_partial("loglikelihood_rolling", (request.args[0],), totals[-1])
            return totals

        def generate_until(self, requests, disable_tqdm: bool = True):
            with patches.transient_request_bars():
                return super().generate_until(requests, disable_tqdm=not progress.enabled())

        def tok_encode(self, string: str, add_special_tokens: bool | None = None,
                       left_truncate_len: int | None = None, **kwargs) -> list[int]:
            # the same strings come back for every variant (base and each adapter): tokenise once
            cache = self.__dict__.get("_harness_tokens")  # None while HFLM's __init__ runs
            if kwargs or cache is None or self.plain:
                return super().tok_encode(string, add_special_tokens, left_truncate_len, **kwargs)
            key = (string, add_special_tokens, left_truncate_len)
            if key not in cache:
                cache[key] = super().tok_encode(string, add_special_tokens, left_truncate_len)
            return list(cache[key])

        def _loglikelihood_tokens(self, requests, disable_tqdm: bool = True, override_bs: int | None = None):
            check_fits(requests, self.max_length)
            shared = [] if (self.plain or self.batch_size == "auto" or self.world_size > 1
                            or self.backend != "causal" or self.__dict__.get("_harness_unshared")) else \
                [i for i, (key, ctx, cont) in enumerate(requests)
                 if key is not None and ctx and cont and len(ctx) + len(cont) <= self.max_length + 1]
            out: list = [None] * len(requests)
            if shared:  # each distinct context run once, its key/value cache shared by its continuations
                from tqdm import tqdm

                try:
                    with tqdm(total=len(shared), desc="Running loglikelihood requests", leave=False,
                              disable=not progress.enabled(), file=sys.stderr, dynamic_ncols=True) as bar:
                        scored = shared_prefix_scores(self.model, [requests[i] for i in shared], self.batch_size,
                                                      self.device, bar.update)
                except (TypeError, AttributeError, NotImplementedError) as e:
                    # a model class whose forward takes no position_ids or logits_to_keep, or whose
                    # cache cannot be reordered: lm-eval's own path for it from now on, said once
                    self._harness_unshared = f"{type(e).__name__}: {e}"
                    warnings.warn(f"{self._model.config.model_type} models cannot score with shared contexts "
                                  f"({self._harness_unshared}); scoring every request as lm-eval does "
                                  "(slower, same results within 1e-4 nats)", stacklevel=2)
                    scored = None
                for i, answer in zip(shared, scored or [], strict=scored is not None):
                    out[i] = answer
                    self.cache_hook.add_partial("loglikelihood", requests[i][0], answer)
            rest = [i for i in range(len(requests)) if out[i] is None]
            if rest:
                with patches.transient_request_bars():
                    scored = super()._loglikelihood_tokens([requests[i] for i in rest],
                                                           disable_tqdm=not progress.enabled(),
                                                           override_bs=override_bs)
                for i, answer in zip(rest, scored, strict=True):
                    out[i] = answer
            return out

    return QuietHFLM


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
        self.lm = _hflm_class()(pretrained=model, tokenizer=tokenizer, batch_size=batch_size,
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
    def activate(self, variant: str, prompt=None, who: str = "") -> Iterator:
        self.lm.harness_prompt, self.lm.harness_who = prompt or PromptFormat(), who or variant
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

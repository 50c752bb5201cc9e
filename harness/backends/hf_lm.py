"""The hf backend's lm-eval model: lm-eval's HFLM around the model HFBackend loads, with the scoring it
adds (prefix-shared log-likelihoods, rolling windows in one sorted pass, a token cache). It imports
lm-eval at its top: harness.backends.hf imports it only when a model is loaded.
"""

from __future__ import annotations

import sys
import warnings

import torch
from lm_eval import utils
from lm_eval.models.huggingface import HFLM

from harness.backends import patches
from harness.backends.base import check_fits, render_chat
from harness.util import progress

MIN_SHARED_PREFIX = 16  # tokens: a shared beginning shorter than this is not worth a pass of its own


def _common(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """Length of the common beginning of two token sequences."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def prefix_clusters(contexts: list[tuple[int, ...]], max_size: int,
                    overhead: int = MIN_SHARED_PREFIX) -> list[tuple[int, list[tuple[int, ...]]]]:
    """Distinct contexts split into runs that share a beginning: (its length, the contexts), at most
    `max_size` contexts a run; a context that shares nothing worth a pass is a run of its own with
    length 0. Sorted, the contexts that share a beginning lie next to each other; the runs are the
    split of that order that feeds the fewest tokens (dynamic programming: a run of n contexts with a
    common beginning of p tokens feeds p once and each context's rest, plus `overhead` for its extra
    pass). Each context keeps at least its last token out of the shared part (its logits are read there)."""
    order = sorted(contexts)
    n = len(order)
    adjacent = [_common(order[i], order[i + 1]) for i in range(n - 1)]
    best, cut, shared = [0] + [None] * n, [0] * (n + 1), [0] * (n + 1)
    for j in range(1, n + 1):
        total, shortest, common = 0, None, None
        for i in range(j - 1, max(j - max_size, 0) - 1, -1):
            total += len(order[i])
            shortest = len(order[i]) if shortest is None else min(shortest, len(order[i]))
            if i == j - 1:
                p, cost = 0, total
            else:
                common = adjacent[i] if common is None else min(common, adjacent[i])
                p = min(common, shortest - 1)
                if p < overhead:  # only shrinks as the run grows to the left
                    break
                cost = total - (j - i - 1) * p + overhead
            if best[j] is None or best[i] + cost < best[j]:
                best[j], cut[j], shared[j] = best[i] + cost, i, p
    runs, j = [], n
    while j > 0:
        runs.append((shared[j], order[cut[j]:j]))
        j = cut[j]
    return runs[::-1]


def _left_padded(seqs: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Token sequences as one batch, each ending in the last column (so one position holds every
    row's last token): ids and attention mask."""
    width = max(len(x) for x in seqs)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for row, x in enumerate(seqs):
        ids[row, width - len(x):] = torch.tensor(x)
        mask[row, width - len(x):] = 1
    return ids, mask


def _last_logprobs(model, ids, mask, positions, device, cache=None):
    """One forward over a left-padded batch (after `cache`, if given): the log-probabilities at its last
    position, and the cache. Only that position's logits are computed (the vocabulary projection of the
    other tokens saved), by an index tensor, not `logits_to_keep=1`: the integer's slice is a strided
    view that, under a peft model, torch multiplies by the head as a batched matmul over a copy of the
    weight per row (SmolLM2, 24 rows: 1.35 s against 0.12 s, the same logits bit for bit)."""
    last = torch.tensor([ids.shape[1] - 1], device=device)
    out = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                past_key_values=cache, use_cache=True, logits_to_keep=last)
    return torch.log_softmax(out.logits[:, -1, :].float(), dim=-1), out.past_key_values


def _context_pass(model, batch: list[tuple[int, list[tuple[int, ...]]]], device):
    """The contexts of `batch` (runs of contexts sharing `p` tokens, as prefix_clusters gives) through
    the model: their shared beginnings once, the cache copied to each context of its run, then each
    context's rest. Returns, per context in order, the log-probabilities of the token after it, the
    cache and the attention mask over everything fed, and the tokens fed."""
    if all(p == 0 for p, _ in batch):  # nothing shared: the whole contexts in one pass
        ids, mask = _left_padded([ctx for _, run in batch for ctx in run])
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        head, cache = _last_logprobs(model, ids, mask, positions, device)
        return head, cache, mask, int(mask.sum())
    ids, mask = _left_padded([run[0][:p] for p, run in batch])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    _, cache = _last_logprobs(model, ids, mask, positions, device)
    index = [r for r, (_, run) in enumerate(batch) for _ in run]
    cache.reorder_cache(torch.tensor(index, device=device))  # each context's own copy of its beginning
    rest_ids, rest_mask = _left_padded([ctx[p:] for p, run in batch for ctx in run])
    before = mask[index]
    rest_positions = before.sum(-1, keepdim=True) + (rest_mask.cumsum(-1) - 1).clamp(min=0)
    full_mask = torch.cat([before, rest_mask], dim=1)
    head, cache = _last_logprobs(model, rest_ids, full_mask, rest_positions, device, cache)
    return head, cache, full_mask, int(mask.sum() + rest_mask.sum())


@torch.no_grad()
def shared_prefix_scores(model, requests, batch_size: int, device, done=None,
                         counts: dict | None = None) -> list[tuple[float, bool]]:
    """(log-likelihood, is_greedy) of each (key, context tokens, continuation tokens), as lm-eval's
    HFLM scores them, with every token that requests share run through the model once:
    - each distinct context once, its key/value cache copied to every continuation of it (a question
      with four answers costs one context pass and one pass over the answers' tokens, not four passes
      over context and answer);
    - contexts that begin alike (a judge's prompts for one item: rubric, input, reference, the first
      answer; few-shot prompts with the same examples) in runs of at most `batch_size` (prefix_clusters):
      the common beginning once, its cache copied to each context of the run, then each one's rest.
    Batches are padded on the left (positions counted from each row's first real token); the first
    continuation token's log-probability comes from the context pass, the rest from one right-padded
    pass over the continuations with the cache. `counts` (if given) adds up `fed`, the tokens run through
    the model, and `requested`, those of the full sequences lm-eval's plain path would run."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, (_, ctx, _) in enumerate(requests):
        groups.setdefault(tuple(ctx), []).append(i)
    runs = prefix_clusters(list(groups), batch_size)
    # batches of at most batch_size contexts: runs with a shared beginning together, the others (each
    # alone) longest first as before
    shared_runs = [r for r in runs if r[0] > 0]
    alone = sorted((r for r in runs if r[0] == 0), key=lambda r: len(r[1][0]), reverse=True)
    batches, current, size = [], [], 0
    for run in shared_runs:
        if size + len(run[1]) > batch_size:
            batches.append(current)
            current, size = [], 0
        current.append(run)
        size += len(run[1])
    if current:
        batches.append(current)
    batches += [alone[at:at + batch_size] for at in range(0, len(alone), batch_size)]
    out: list = [None] * len(requests)
    for batch in batches:
        head, cache, mask, fed = _context_pass(model, batch, device)
        contexts = [ctx for _, run in batch for ctx in run]
        rows = [(row, i) for row, ctx in enumerate(contexts) for i in groups[ctx]]
        conts = [requests[i][2] for _, i in rows]
        length = max(len(c) for c in conts) - 1  # tokens fed after the context: all but each one's last
        tail = None
        if length > 0:
            index = torch.tensor([row for row, _ in rows], device=device)
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
            fed += int(step_mask.sum())
        for r, ((row, i), c) in enumerate(zip(rows, conts, strict=True)):
            lp = head[row, c[0]]
            greedy = bool(head[row].argmax() == c[0])
            if len(c) > 1:
                rest = tail[r, :len(c) - 1]
                target = torch.tensor(c[1:], device=rest.device)
                lp = lp + rest.gather(-1, target[:, None]).sum()
                greedy = greedy and bool((rest.argmax(-1) == target).all())
            out[i] = (float(lp), greedy)
        if counts is not None:
            counts["fed"] = counts.get("fed", 0) + fed
            counts["requested"] = counts.get("requested", 0) + sum(len(requests[i][1]) + len(c) - 1
                                                                   for (_, i), c in zip(rows, conts, strict=True))
        if done is not None:
            done(len(rows))
    return out



class HarnessHFLM(HFLM):
    """lm-eval's HFLM with its request bars on terminals only, a token cache, prefix-shared
    log-likelihoods (shared_prefix_scores), and rolling log-likelihood scored in one length-sorted pass."""

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
    # log-likelihood tokens since the variant was activated: `fed` to the model, `requested` by the
    # full sequences (what scoring each request whole would feed); set by HFBackend.activate
    harness_tokens: dict[str, int] = {}

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
                                                  self.device, bar.update, counts=self.harness_tokens)
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
        if rest:  # lm-eval's path: every request's sequence (context and continuation, less its last token)
            fed = sum(min(len(requests[i][1]) + len(requests[i][2]) - 1, self.max_length) for i in rest)
            for k in ("fed", "requested"):
                self.harness_tokens[k] = self.harness_tokens.get(k, 0) + fed
            with patches.transient_request_bars():
                scored = super()._loglikelihood_tokens([requests[i] for i in rest],
                                                       disable_tqdm=not progress.enabled(),
                                                       override_bs=override_bs)
            for i, answer in zip(rest, scored, strict=True):
                out[i] = answer
        return out

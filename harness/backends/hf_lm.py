"""The hf backend's lm-eval model: lm-eval's HFLM around the model HFBackend loads, with the scoring it
adds (packed log-likelihoods: one forward over the unique tokens; rolling windows in one sorted pass; a
token cache). It imports
lm-eval at its top: harness.backends.hf imports it only when a model is loaded.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field

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


@dataclass
class _Unit:
    """Requests packed as a tree of segments, each a run of tokens that attends to its ancestors' tokens
    and its own earlier ones: a shared beginning, each context's rest after it, each continuation after
    its context (all of its tokens but the last: each predicts the next)."""

    tokens: list[int] = field(default_factory=list)
    segment: list[int] = field(default_factory=list)  # each token's segment (local to the unit)
    position: list[int] = field(default_factory=list)  # each token's position id
    parent: list[int] = field(default_factory=list)  # each segment's parent segment (-1: none)
    last: list[int] = field(default_factory=list)  # each segment's last token (its offset in the unit)
    reads: list[tuple[int, int, list[int]]] = field(default_factory=list)  # (request, context end, its tokens)

    def add(self, tokens, parent: int) -> tuple[int, int]:
        """A segment of `tokens` after `parent`'s (-1: at the start); (its index, its last token's offset)."""
        start = 0 if parent < 0 else self.position[self.last[parent]] + 1
        self.parent.append(parent)
        seg = len(self.parent) - 1
        self.tokens += tokens
        self.segment += [seg] * len(tokens)
        self.position += range(start, start + len(tokens))
        self.last.append(len(self.tokens) - 1)
        return seg, self.last[-1]


def _units(requests, groups: dict[tuple[int, ...], list[int]], runs, cap: int) -> list[_Unit]:
    """Units of at most `cap` tokens (or one context and one continuation, where that alone is longer),
    from runs of contexts that share a beginning (prefix_clusters): the beginning once per unit, each
    context's rest, each continuation's tokens; a continuation of one token adds none (read at its
    context's last position). A run, or one context's continuations, too long for one unit goes on in
    the next (the beginning, or the context, run again there), so that no row's mask grows past what
    the longest request needs."""
    units: list[_Unit] = []
    for p, run in runs:
        unit, shared = None, -1
        for ctx in run:
            todo = list(groups[ctx])
            while todo:
                first = len(ctx) - p + len(requests[todo[0]][2]) - 1
                if unit is None or (unit.reads and len(unit.tokens) + first > cap):
                    unit = _Unit()
                    shared = unit.add(run[0][:p], -1)[0] if p > 0 else -1
                    units.append(unit)
                seg, end = unit.add(ctx[p:], shared)
                while todo:
                    cont = list(requests[todo[0]][2])
                    if unit.reads and unit.reads[-1][1] == end and len(unit.tokens) + len(cont) - 1 > cap:
                        unit = None  # this context's other continuations: in a new unit
                        break
                    at: list[int] = []
                    if len(cont) > 1:
                        _, last = unit.add(cont[:-1], seg)
                        at = list(range(last - len(cont) + 2, last + 1))
                    unit.reads.append((todo.pop(0), end, at))
    return units


def _rows(units: list[_Unit], budget: int) -> list[list[_Unit]]:
    """Units packed into rows of at most `budget` tokens (first fit, longest first); a longer unit is a
    row of its own."""
    rows: list[tuple[int, list[_Unit]]] = []
    for unit in sorted(units, key=lambda u: len(u.tokens), reverse=True):
        n = len(unit.tokens)
        for k, (used, row) in enumerate(rows):
            if used + n <= budget:
                row.append(unit)
                rows[k] = (used + n, row)
                break
        else:
            rows.append((n, [unit]))
    return [row for _, row in rows]


def _row_pass(model, row: list[_Unit], device, dtype):
    """One forward over a row of packed units: a 4D mask lets each token see its segment's ancestors and
    its own earlier tokens (nothing of the other units or sibling segments), position ids restart where
    each segment's parent ends; logits only where a request reads them. Returns the log-probabilities at
    those positions, {position in the row: its row there}, the row's offset of each unit, and the tokens fed."""
    ids, segs, pos, offsets, reads = [], [], [], [], set()
    parents: list[int] = []
    for unit in row:
        offsets.append(len(ids))
        base = len(parents)
        ids += unit.tokens
        segs += [base + s for s in unit.segment]
        pos += unit.position
        parents += [base + q if q >= 0 else -1 for q in unit.parent]
        for _, end, at in unit.reads:
            reads.update(offsets[-1] + x for x in (end, *at))
    n_seg = len(parents)
    ancestor = torch.eye(n_seg, dtype=torch.bool)  # [a, b]: b is a or one of a's ancestors
    for a in range(n_seg):
        q = parents[a]
        while q >= 0:
            ancestor[a, q] = True
            q = parents[q]
    seg = torch.tensor(segs)
    allowed = ancestor[seg][:, seg] & torch.ones(len(ids), len(ids), dtype=torch.bool).tril()
    mask = torch.zeros(1, 1, len(ids), len(ids), dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    keep = sorted(reads)
    out = model(input_ids=torch.tensor([ids], device=device), attention_mask=mask.to(device),
                position_ids=torch.tensor([pos], device=device), use_cache=False,
                logits_to_keep=torch.tensor(keep, device=device))
    return torch.log_softmax(out.logits[0].float(), dim=-1), {x: k for k, x in enumerate(keep)}, offsets, len(ids)


PACKED_KERNELS = ("sdpa", "eager")  # attention kernels that take an arbitrary 4D mask


@torch.no_grad()
def packed_scores(model, requests, batch_size: int, device, done=None, counts: dict | None = None,
                  row_tokens: int = 512) -> list[tuple[float, bool]]:
    """(log-likelihood, is_greedy) of each (key, context tokens, continuation tokens), as lm-eval's HFLM
    scores them, with one forward over exactly the unique tokens: each distinct context once, every
    continuation of it after it in the same sequence (seeing the context and itself, not the other
    continuations: a 4D mask, position ids restarting at the context's end), contexts that begin alike
    (a judge's prompts for one item, few-shot prompts) as their shared beginning once and each one's rest
    (prefix_clusters, runs of at most `batch_size` contexts), several such units per row up to
    `row_tokens` tokens so short requests pay no padding. A continuation's first token is read at its
    context's last position; a continuation of one token (a letter, a label) costs no token at all.
    `counts` (if given) adds up `fed`, the tokens run through the model, and `requested`, those of the
    full sequences lm-eval's plain path would run."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, (_, ctx, _) in enumerate(requests):
        groups.setdefault(tuple(ctx), []).append(i)
    units = _units(requests, groups, prefix_clusters(list(groups), batch_size), row_tokens)
    dtype = next(model.parameters()).dtype
    dtype = dtype if dtype.is_floating_point else torch.float32
    out: list = [None] * len(requests)
    for row in _rows(units, row_tokens):
        logprobs, where, offsets, fed = _row_pass(model, row, device, dtype)
        reads = [(i, [where[offset + end]] + [where[offset + x] for x in at])
                 for unit, offset in zip(row, offsets, strict=True) for i, end, at in unit.reads]
        # every read token's log-probability and each position's argmax, gathered once for the row
        rows = torch.tensor([k for _, steps in reads for k in steps], device=logprobs.device)
        tokens = torch.tensor([t for i, _ in reads for t in requests[i][2]], device=logprobs.device)
        values = logprobs[rows, tokens].tolist()
        hits = (logprobs.argmax(-1)[rows] == tokens).tolist()
        at = 0
        for i, steps in reads:
            n = len(steps)
            out[i] = (sum(values[at:at + n]), all(hits[at:at + n]))
            at += n
            if counts is not None:
                counts["requested"] = counts.get("requested", 0) + len(requests[i][1]) + n - 1
        if counts is not None:
            counts["fed"] = counts.get("fed", 0) + fed
        if done is not None:
            done(len(reads))
    return out


class HarnessHFLM(HFLM):
    """lm-eval's HFLM with its request bars on terminals only, a token cache, packed log-likelihoods
    (packed_scores), and rolling log-likelihood scored in one length-sorted pass."""

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

    def _unpackable(self) -> str | None:
        """Why this model cannot score packed requests (said once), or None."""
        if "_harness_unshared" not in self.__dict__:
            kernel = getattr(self._model.config, "_attn_implementation", None)
            if kernel not in PACKED_KERNELS:  # e.g. flash-attention's varlen kernels take no 4D mask
                self._harness_unshared = f"its attention kernel {kernel} takes no 4D mask"
                warnings.warn(f"{self._model.config.model_type} models cannot score packed requests "
                              f"({self._harness_unshared}); scoring every request as lm-eval does (slower, the "
                              "same results within float32's tolerance)", stacklevel=3)
            else:
                self._harness_unshared = None
        return self._harness_unshared

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = True, override_bs: int | None = None):
        check_fits(requests, self.max_length)
        shared = [] if (self.plain or self.batch_size == "auto" or self.world_size > 1
                        or self.backend != "causal" or self._unpackable()) else \
            [i for i, (key, ctx, cont) in enumerate(requests)
             if key is not None and ctx and cont and len(ctx) + len(cont) <= self.max_length + 1]
        out: list = [None] * len(requests)
        if shared:  # the unique tokens once: each context and its continuations packed under a 4D mask
            from tqdm import tqdm

            try:
                with tqdm(total=len(shared), desc="Running loglikelihood requests", leave=False,
                          disable=not progress.enabled(), file=sys.stderr, dynamic_ncols=True) as bar:
                    scored = packed_scores(self.model, [requests[i] for i in shared], self.batch_size,
                                           self.device, bar.update, counts=self.harness_tokens)
            except (TypeError, AttributeError, NotImplementedError) as e:
                # a model class whose forward takes no position_ids, logits_to_keep or 4D mask: lm-eval's
                # own path for it from now on, said once
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

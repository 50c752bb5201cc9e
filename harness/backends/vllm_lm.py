"""lm-eval's TemplateLM over the `vllm` backend's engine (harness/backends/vllm.py): one variant (the
base, or a candidate's LoRARequest) in one prompt format. It imports lm-eval and vLLM, so vllm.py
imports it only when a model is scored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lm_eval import utils
from lm_eval.api.model import TemplateLM
from lm_eval.models.utils import has_bos_prefix
from vllm import SamplingParams
from vllm.inputs import TokensPrompt

from harness.backends.base import check_fits, render_chat
from harness.records import PromptFormat

if TYPE_CHECKING:
    from harness.backends.vllm import VLLMBackend


class VLLMLM(TemplateLM):
    """One variant of a VLLMBackend (the base, or a LoRARequest) as lm-eval's LM."""

    backend = "causal"

    def __init__(self, owner: VLLMBackend, lora_request, prompt: PromptFormat, who: str):
        super().__init__()
        self.owner, self.lora_request = owner, lora_request
        self.tokenizer = owner.tokenizer
        self.harness_prompt, self.harness_who = prompt, who

    @property
    def tokenizer_name(self) -> str:  # as HFLM's
        return self.tokenizer.name_or_path.replace("/", "__")

    def apply_chat_template(self, chat_history, add_generation_prompt: bool = True) -> str:
        return render_chat(self.tokenizer, chat_history, add_generation_prompt, self.harness_prompt,
                           self.harness_who)

    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def prefix_token_id(self) -> int:  # as HFLM: BOS, else EOS
        bos = self.tokenizer.bos_token_id
        return bos if bos is not None else self.tokenizer.eos_token_id

    @property
    def max_length(self) -> int:
        return self.owner._max_length

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, left_truncate_len: int | None = None,
                   **kwargs) -> list[int]:
        # HFLM's rules (lm-eval 0.4.13), so that both backends score the same tokens
        special = {} if add_special_tokens is None else {"add_special_tokens": add_special_tokens}
        if add_special_tokens is None and has_bos_prefix(string, self.tokenizer.decode(self.prefix_token_id)):
            special["add_special_tokens"] = False
        encoding = self.tokenizer.encode(string, **special)
        return encoding[-left_truncate_len:] if left_truncate_len else encoding

    def tok_decode(self, tokens, skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=skip_special_tokens)

    def _run(self, prompts: list[list[int]], params) -> list:  # params: one, or one per prompt
        outputs = self.owner.engine.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params,
                                             lora_request=self.lora_request, use_tqdm=False)
        return list(outputs)

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs: int | None = None):
        check_fits(requests, self.max_length)
        prompts, spans = [], []
        for _, context, continuation in requests:
            # as HFLM: the last max_length + 1 tokens, the final one only as a target
            whole = (context + continuation)[-(self.max_length + 1):]
            prompts.append(whole)
            spans.append(len(continuation))
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1, detokenize=False)
        results = []
        for out, whole, n in zip(self._run(prompts, params), prompts, spans, strict=True):
            scored = out.prompt_logprobs[-n:]
            logprob, greedy = 0.0, True
            for token, entry in zip(whole[-n:], scored, strict=True):
                chosen = entry[token]
                logprob += chosen.logprob
                greedy = greedy and chosen.rank == 1
            results.append((logprob, greedy))
            self.cache_hook.add_partial("loglikelihood", None, (logprob, greedy))
        return results

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        windows, owner = [], []
        for i, (string,) in enumerate(r.args for r in requests):
            for w in utils.get_rolling_token_windows(token_list=self.tok_encode(string),
                                                     prefix_token=self.prefix_token_id,
                                                     max_seq_len=self.max_length, context_len=1):
                windows.append((None, *utils.make_disjoint_window(w)))
                owner.append(i)
        totals = [0.0] * len(requests)
        for i, (ll, _) in zip(owner, self._loglikelihood_tokens(windows), strict=True):
            totals[i] += ll
        return totals

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        eos = self.tok_decode([self.eot_token_id], skip_special_tokens=False)
        prompts, params, stops = [], [], []
        for context, gen_kwargs in (r.args for r in requests):
            kwargs = dict(gen_kwargs)
            until = kwargs.pop("until", None) or []
            until = [until] if isinstance(until, str) else list(until)
            if eos not in until:  # as HFLM
                until.append(eos)
            max_gen = int(kwargs.pop("max_gen_toks", 256))
            sample = bool(kwargs.pop("do_sample", False)) and float(kwargs.get("temperature", 1.0)) > 0
            params.append(SamplingParams(
                max_tokens=max_gen, stop=[u for u in until if u], seed=0,
                temperature=float(kwargs.get("temperature", 1.0)) if sample else 0.0,
                top_p=float(kwargs.get("top_p", 1.0)) if sample else 1.0))
            prompts.append(self.tok_encode(context, left_truncate_len=self.max_length - max_gen))
            stops.append(until)
        results = []
        for out, until, (context, gen_kwargs) in zip(self._run(prompts, params), stops,
                                                     (r.args for r in requests), strict=True):
            # decode the generated tokens as HFLM does, then cut at the first stop sequence
            text = self.tok_decode(list(out.outputs[0].token_ids))
            for stop in until:
                if stop:
                    text = text.split(stop)[0]
            results.append(text)
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
        return results

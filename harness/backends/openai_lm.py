"""lm-eval's `local-completions` and `local-chat-completions` models with what the `openai` backend adds
(harness/backends/openai.py): the API key from the config's environment variable, the model's prompt
format, every request accounted for, the tokens each answer's `usage` counts, and the letter-choice
reading of multiple-choice tasks (`scoring` letters: each choice's log-probability read from the first
answer token's alternatives, one request per context). It imports lm-eval, so openai.py imports it only
when a model is scored.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
import requests
from lm_eval.models.api_models import JsonChatStr
from lm_eval.models.openai_completions import LocalChatCompletion, LocalCompletionsAPI

from harness.backends.base import render_chat
from harness.errors import HarnessError
from harness.records import PromptFormat

log = logging.getLogger(__name__)


@contextmanager
def _no_answer(lm) -> Iterator[None]:
    """A server that stops answering (gone, or 429/5xx past every retry), as a harness error that says
    so; lm-eval raises the transport's own exception."""
    try:
        yield
    except (TimeoutError, aiohttp.ClientError, requests.RequestException, ConnectionError) as e:
        raise HarnessError(f"eval.endpoint: the server at {lm.base_url} stopped answering ({type(e).__name__}: "
                           f"{str(e)[:200]}) after {lm.max_retries} tries") from None


class _Served:
    """What both APIs' models add to lm-eval's."""

    harness_key = ""
    harness_prompt = PromptFormat()
    harness_who = ""
    harness_scoring = ""  # "letters": multiple-choice read from the first answer token's alternatives
    harness_endpoint = None  # the EndpointSpec (letters are asked through harness.backends.openai)
    harness_priced = False  # costed by its tokens: every answer must count them
    harness_usage: dict[str, int]  # this run's: `input`, `output` tokens, `answers`, those `without` usage
    _count_lock = threading.Lock()

    @property
    def api_key(self):  # noqa: D401 - lm-eval's property: the configured variable, not OPENAI_API_KEY
        return self.harness_key

    def _count(self, outputs) -> None:
        """Add the answers' `usage` to the run's count."""
        count = self.harness_usage  # started at zero by OpenAIBackend.activate
        with self._count_lock:
            for out in outputs if isinstance(outputs, list) else [outputs]:
                usage = out.get("usage") if isinstance(out, dict) else None
                count["answers"] += 1
                if not isinstance(usage, dict) or usage.get("prompt_tokens") is None:
                    count["without"] += 1
                    continue
                count["input"] += int(usage["prompt_tokens"])
                count["output"] += int(usage.get("completion_tokens") or 0)

    def _check_usage(self) -> None:
        if self.harness_priced and self.harness_usage["without"]:
            raise HarnessError(
                f"eval.endpoint: {self.harness_usage['without']} of the server's {self.harness_usage['answers']} "
                f"answers for '{self.model}' carry no `usage` (token counts), and its cost is counted by tokens "
                "(token_prices): serve it where answers count their tokens, or drop its token_prices to cost it "
                "by the hour")

    def parse_generations(self, outputs, **kwargs) -> list[str]:
        self._count(outputs)
        return super().parse_generations(outputs, **kwargs)

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        if self.harness_scoring == "letters":
            return self._letters(requests)
        if self.tokenizer is None:
            raise HarnessError(f"'{self.model}' has no tokenizer here, and log-likelihood scoring needs the served "
                               "model's tokens: give its `tokenizer:` (a folder or hub id)")
        return super().loglikelihood(requests, disable_tqdm=disable_tqdm)

    def _letters(self, requests) -> list[tuple[float, bool]]:
        """Each request's choice read from the first answer token's alternatives after its context: one
        request per context, its choices (one token each) looked up among the alternatives up to
        surrounding whitespace; a choice outside them counts at the least likely alternative's value."""
        from concurrent.futures import ThreadPoolExecutor

        from harness.backends.chat_judge import label_logprobs

        labels: dict[object, list[str]] = {}
        for r in requests:
            labels.setdefault(r.args[0], []).append(str(r.args[1]).strip())
        contexts = list(labels)
        with _no_answer(self), ThreadPoolExecutor(max_workers=self.harness_endpoint.concurrency) as pool:
            tops = dict(zip(contexts, pool.map(self._alternatives, contexts), strict=True))
        self._check_usage()
        read = {}
        unmatched = 0
        for ctx in contexts:
            top = tops[ctx]
            found = label_logprobs(top, labels[ctx])
            unmatched += found is None
            floor = min(float(t["logprob"]) for t in top)
            values = found if found is not None else (floor,) * len(labels[ctx])
            first = str(max(top, key=lambda t: float(t["logprob"])).get("token", "")).strip()
            read[ctx] = {label: (v, first == label) for label, v in zip(labels[ctx], values, strict=True)}
        if unmatched:
            log.warning("%s: on %d of %d prompts none of the choices was among the first answer token's %d "
                        "alternatives: those items are read at the floor (a tie)", self.harness_who, unmatched,
                        len(contexts), self.harness_endpoint.top_logprobs)
        return [read[r.args[0]][str(r.args[1]).strip()] for r in requests]

    def _alternatives(self, context) -> list[dict]:
        """The first answer token's alternatives ({token, logprob}) after `context`."""
        from harness.backends.chat_judge import reply_alternatives
        from harness.backends.openai import _post

        k = self.harness_endpoint.top_logprobs
        if isinstance(context, JsonChatStr):
            out = _post(self.harness_endpoint, "/chat/completions", {
                "model": self.model, "messages": json.loads(context.prompt), "max_tokens": 1, "temperature": 0,
                "logprobs": True, "top_logprobs": k})
            top = reply_alternatives(out)
        else:
            prompt = context if self.tokenizer is None else self.tok_encode(context,
                                                                            add_special_tokens=self.add_bos_token)
            out = _post(self.harness_endpoint, "/completions", {
                "model": self.model, "prompt": prompt, "max_tokens": 1, "temperature": 0, "logprobs": k})
            lp = (out.get("choices") or [{}])[0].get("logprobs") or {}
            first = (lp.get("top_logprobs") or [None])[0]
            top = [{"token": t, "logprob": v} for t, v in first.items()] if isinstance(first, dict) else []
        if not top:
            raise HarnessError(f"eval.endpoint: an answer for '{self.model}' holds no alternatives of its first "
                               "token (logprobs): the server stopped returning them; multiple-choice items cannot "
                               "be read from it")
        self._count(out)
        return top

    def generate_until(self, requests, disable_tqdm: bool = False):
        with _no_answer(self):
            out = super().generate_until(requests, disable_tqdm=disable_tqdm)
        if len(out) != len(requests):
            raise HarnessError(f"eval.endpoint: {len(requests)} generations asked, {len(out)} answers")
        self._check_usage()
        return out


class EndpointLM(_Served, LocalCompletionsAPI):
    """local-completions with the harness's key, prompt format and accounting."""

    def apply_chat_template(self, chat_history, add_generation_prompt: bool = True) -> str:
        return render_chat(self.tokenizer, chat_history, add_generation_prompt, self.harness_prompt,
                           self.harness_who)

    def parse_logprobs(self, outputs, tokens=None, ctxlens=None, **kwargs):
        outputs = outputs if isinstance(outputs, list) else [outputs]
        for out in outputs:
            for choice in out.get("choices", []):
                lp = (choice.get("logprobs") or {}).get("token_logprobs")
                if not lp or any(v is None for v in lp[1:-1]):
                    raise HarnessError("eval.endpoint: a completions answer holds no log-probabilities of "
                                       "the prompt's tokens; the server stopped echoing them")
        self._count(outputs)
        return LocalCompletionsAPI.parse_logprobs(outputs, tokens=tokens, ctxlens=ctxlens, **kwargs)

    def _loglikelihood_tokens(self, requests, **kwargs):
        with _no_answer(self):
            res = list(super()._loglikelihood_tokens(requests, **kwargs))
        if len(res) != len(requests):
            raise HarnessError(f"eval.endpoint: {len(requests)} requests scored, {len(res)} answers: the server "
                               "left some unanswered")
        self._check_usage()
        return res


class ChatEndpointLM(_Served, LocalChatCompletion):
    """local-chat-completions (the server's own template renders the messages) with the same additions."""

"""lm-eval's `local-completions` model with what the `openai` backend adds (harness/backends/openai.py):
the API key from the config's environment variable, the model's prompt format, and every request
accounted for. It imports lm-eval, so openai.py imports it only when a model is scored.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
import requests
from lm_eval.models.openai_completions import LocalCompletionsAPI

from harness.backends.base import render_chat
from harness.errors import HarnessError
from harness.records import PromptFormat


@contextmanager
def _no_answer(lm) -> Iterator[None]:
    """A server that stops answering (gone, or 429/5xx past every retry), as a harness error that says
    so; lm-eval raises the transport's own exception."""
    try:
        yield
    except (TimeoutError, aiohttp.ClientError, requests.RequestException, ConnectionError) as e:
        raise HarnessError(f"eval.endpoint: the server at {lm.base_url} stopped answering ({type(e).__name__}: "
                           f"{str(e)[:200]}) after {lm.max_retries} tries") from None


class EndpointLM(LocalCompletionsAPI):
    """local-completions with the harness's key, prompt format and accounting."""

    harness_key = ""
    harness_prompt = PromptFormat()
    harness_who = ""

    @property
    def api_key(self):  # noqa: D401 - lm-eval's property: the configured variable, not OPENAI_API_KEY
        return self.harness_key

    def apply_chat_template(self, chat_history, add_generation_prompt: bool = True) -> str:
        return render_chat(self.tokenizer, chat_history, add_generation_prompt, self.harness_prompt,
                           self.harness_who)

    @staticmethod
    def parse_logprobs(outputs, tokens=None, ctxlens=None, **kwargs):
        outputs = outputs if isinstance(outputs, list) else [outputs]
        for out in outputs:
            for choice in out.get("choices", []):
                lp = (choice.get("logprobs") or {}).get("token_logprobs")
                if not lp or any(v is None for v in lp[1:-1]):
                    raise HarnessError("eval.endpoint: a completions answer holds no log-probabilities of "
                                       "the prompt's tokens; the server stopped echoing them")
        return LocalCompletionsAPI.parse_logprobs(outputs, tokens=tokens, ctxlens=ctxlens, **kwargs)

    def _loglikelihood_tokens(self, requests, **kwargs):
        with _no_answer(self):
            res = list(super()._loglikelihood_tokens(requests, **kwargs))
        if len(res) != len(requests):
            raise HarnessError(f"eval.endpoint: {len(requests)} requests scored, {len(res)} answers: the server "
                               "left some unanswered")
        return res

    def generate_until(self, requests, disable_tqdm: bool = False):
        with _no_answer(self):
            out = super().generate_until(requests, disable_tqdm=disable_tqdm)
        if len(out) != len(requests):
            raise HarnessError(f"eval.endpoint: {len(requests)} generations asked, {len(out)} answers")
        return out

"""The `openai` backend: the base and its candidates as models of an OpenAI-compatible server (a
vLLM server with `--lora-modules`, TGI, llama.cpp's server, a hosted API), scored through
`/v1/completions`.

lm-eval's `local-completions` model (LocalCompletionsAPI) does the request handling: batching,
concurrency, retries with exponential backoff on any failed request (429 and 5xx included), the
log-likelihood of a continuation from `echo: true, logprobs: 1, max_tokens: 1`, generation with
the server's greedy decoding. The harness adds what lm-eval does not check:

- a capability probe before anything is scored (`probe`): the server returns the prompt's tokens'
  log-probabilities, over the tokens the local tokenizer makes of it; a server that cannot is
  refused, naming what is missing (lm-eval itself would score such a server at chance level);
- every answer accounted for: a response whose log-probabilities are missing is an error, not a
  dropped request;
- the API key read from the environment variable the config names, sent in the request header
  only: never in the config, the store, the logs or the report.

Chat prompts are rendered by the harness (the model's prompt format, as on the other backends)
and sent as text, so the server's own template is not applied twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.config import EndpointSpec
from harness.errors import HarnessError
from harness.records import PromptFormat

PROBE_TEXT = "The quick brown fox jumps over the lazy dog. Claims are triaged by how the injury happened."


def api_key(endpoint: EndpointSpec) -> str:
    """The key from the environment variable the config names ("" when it names none)."""
    if endpoint.api_key_env is None:
        return ""
    key = os.environ.get(endpoint.api_key_env)
    if not key:
        raise HarnessError(f"eval.endpoint.api_key_env: the environment variable {endpoint.api_key_env} is not "
                           "set; export the server's API key in it (the key is never written to the config)")
    return key


RETRIED = (429, 500, 502, 503, 504)  # answers worth another try: rate limited, or the server's own trouble


def _post(endpoint: EndpointSpec, path: str, payload: dict | None = None) -> dict:
    """One GET (no payload) or POST, retried with exponential backoff on 429, 5xx and no answer, as
    lm-eval retries the scoring requests (`max_retries` tries in all)."""
    import time

    import requests

    url = endpoint.base_url.rstrip("/") + path
    headers = {"Authorization": f"Bearer {api_key(endpoint)}"} if endpoint.api_key_env else {}
    for attempt in range(1, endpoint.max_retries + 1):
        last = attempt == endpoint.max_retries
        try:
            if payload is None:
                response = requests.get(url, headers=headers, timeout=endpoint.timeout_s)
            else:
                response = requests.post(url, json=payload, headers=headers, timeout=endpoint.timeout_s)
        except requests.RequestException as e:
            if last:
                raise HarnessError(f"eval.endpoint.base_url: {url}: {type(e).__name__}: no answer from the server "
                                   f"in {attempt} tries (is it running, and is the URL its /v1 root?)") from None
        else:
            if response.ok:
                return response.json()
            if response.status_code not in RETRIED or last:
                raise HarnessError(f"eval.endpoint: {url} answered {response.status_code}"
                                   f"{f' after {attempt} tries' if attempt > 1 else ''}: {response.text[:300]}")
        time.sleep(min(10.0, 0.5 * 2 ** attempt))
    raise AssertionError("unreachable")


def probe(endpoint: EndpointSpec, served: str, tokenizer) -> str:
    """Check that the server scores prompt tokens for `served`, over the local tokenizer's tokens;
    returns the served model's identity: what the server says of it and the probe's
    log-probabilities (rounded), so that a redeployed model with other weights is keyed anew."""
    models = _post(endpoint, "/models").get("data", [])
    listed = {m.get("id"): m for m in models}
    if served not in listed:
        raise HarnessError(f"eval.endpoint: the server at {endpoint.base_url} serves no model '{served}' "
                           f"(it serves: {', '.join(sorted(map(str, listed))) or 'none'}); check `served:`")
    ids = tokenizer(PROBE_TEXT, add_special_tokens=False)["input_ids"]
    out = _post(endpoint, "/completions", {"model": served, "prompt": ids, "max_tokens": 1, "temperature": 0,
                                           "logprobs": 1, "echo": True})
    logprobs = ((out.get("choices") or [{}])[0].get("logprobs") or {}).get("token_logprobs")
    if not logprobs or all(v is None for v in logprobs[1:]):
        raise HarnessError(
            f"eval.endpoint: the server at {endpoint.base_url} returns no log-probabilities of the prompt's "
            f"tokens for '{served}' (completions with echo and logprobs): it cannot score log-likelihood "
            "tasks, which would come out at chance level. Serve the model with vLLM or another server that "
            "echoes prompt log-probabilities, or score generation tasks only")
    if len(logprobs) != len(ids) + 1:
        raise HarnessError(
            f"eval.endpoint: '{served}' scored the probe's {len(ids)} tokens as {len(logprobs) - 1}: the server "
            "tokenises otherwise than the local tokenizer, so per-token scores would not line up; point the "
            "model's path (or tokenizer) at the served model's own tokenizer")
    # what names the weights: id, root (the base's path), parent (an adapter's base), context length;
    # not `created` or `permission` (ids and times that change on every call)
    identity = {"model": {k: listed[served].get(k) for k in ("id", "root", "parent", "max_model_len", "owned_by")},
                "probe": [None if v is None else round(float(v), 3) for v in logprobs]}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


class OpenAIBackend:
    """The models of one base as served names on an OpenAI-compatible server."""

    name = "openai"

    def __init__(self, endpoint: EndpointSpec, tokenizer_dir: Path, served: dict[str, str], *,
                 max_length: int | None = None, trust_remote_code: bool = False):
        self.endpoint, self._served = endpoint, served
        self._key = api_key(endpoint)
        self._tokenizer_dir, self._max_length = tokenizer_dir, max_length
        self._trust_remote_code = trust_remote_code
        self._lms: dict[str, object] = {}

    def variants(self) -> list[str]:
        return list(self._served)

    def _lm(self, variant: str):
        if variant not in self._lms:
            from transformers import AutoTokenizer

            # tokens as the hf backend makes them: lm-eval's HFLM keeps the tokenizer's own special
            # tokens (a BOS where it adds one), its API models none unless told
            tok = AutoTokenizer.from_pretrained(str(self._tokenizer_dir), trust_remote_code=self._trust_remote_code)
            bos = tok.bos_token_id is not None and tok("a")["input_ids"][:1] == [tok.bos_token_id]
            from harness.backends.openai_lm import EndpointLM  # imports lm-eval: only when a model is scored

            lm = EndpointLM(model=self._served[variant], base_url=self.endpoint.base_url.rstrip("/") + "/completions",
                     tokenizer=str(self._tokenizer_dir), tokenizer_backend="huggingface",
                     num_concurrent=self.endpoint.concurrency, max_retries=self.endpoint.max_retries,
                     batch_size=self.endpoint.batch_size, timeout=int(self.endpoint.timeout_s),
                     max_length=self._max_length or 2048, trust_remote_code=self._trust_remote_code,
                     add_bos_token=bos)
            lm.harness_key = self._key
            self._lms[variant] = lm
        return self._lms[variant]

    @contextmanager
    def activate(self, variant: str, prompt: PromptFormat | None = None, who: str = "") -> Iterator:
        if variant not in self._served:
            raise HarnessError(f"variant '{variant}' is not served by this backend (have: {', '.join(self._served)})")
        lm = self._lm(variant)
        lm.harness_prompt, lm.harness_who = prompt or PromptFormat(), who or variant
        yield lm

    def close(self) -> None:
        self._lms.clear()

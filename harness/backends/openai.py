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
from dataclasses import dataclass
from pathlib import Path

from harness.backends.chat_judge import reply_alternatives
from harness.backends.retry import RETRIED, wait_s
from harness.config import EndpointSpec, TokenPriceSpec
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




def server_message(body) -> str:
    """What a server said in a refusal: OpenAI's {"error": {"message"}}, FastAPI's {"detail"}, or its text."""
    if isinstance(body, dict):
        error = body.get("error")
        said = (error.get("message") if isinstance(error, dict) else error) or body.get("detail") or body.get("message")
        return str(said if said is not None else json.dumps(body))[:300]
    return str(body)[:300]


def _request(endpoint: EndpointSpec, path: str, payload: dict | None = None) -> tuple[int, dict | str]:
    """One GET (no payload) or POST, retried on 429, 5xx and no answer, as lm-eval retries the scoring
    requests (`max_retries` tries in all): after the wait the refusal asks for (retry_after), else with
    exponential backoff; the status and the body (JSON, or text) of the answer that settled it."""
    import time

    import requests

    url = endpoint.base_url.rstrip("/") + path
    headers = {"Authorization": f"Bearer {api_key(endpoint)}"} if endpoint.api_key_env else {}
    for attempt in range(1, endpoint.max_retries + 1):
        last, response = attempt == endpoint.max_retries, None
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
            if response.status_code not in RETRIED or last:
                try:
                    return response.status_code, response.json()
                except ValueError:
                    return response.status_code, response.text
        time.sleep(wait_s(attempt, None if response is None else response.headers))
    raise AssertionError("unreachable")


def _post(endpoint: EndpointSpec, path: str, payload: dict | None = None) -> dict:
    """`_request`, an answer other than 200 an error that quotes the server."""
    status, body = _request(endpoint, path, payload)
    if status == 200 and isinstance(body, dict):
        return body
    url = endpoint.base_url.rstrip("/") + path
    raise HarnessError(f"eval.endpoint: {url} answered {status}: {server_message(body)}")


@dataclass(frozen=True)
class Capabilities:
    """What a server offers for one model, as the probe found it."""

    completions: bool  # /v1/completions answers
    prompt_logprobs: bool  # completions echo the prompt's tokens' log-probabilities (log-likelihood scoring)
    completion_top_logprobs: bool  # completions give the generated token's alternatives (`logprobs: N`)
    chat: bool  # /v1/chat/completions answers
    chat_top_logprobs: bool  # chat gives the reply token's alternatives (`top_logprobs`)
    usage: bool  # answers count their tokens (`usage`)
    refusals: tuple[str, ...] = ()  # what the server said where it refused a probe (404s, logprobs refused)

    def describe(self) -> str:
        """One line: what the server offers."""
        parts = []
        if self.completions:
            parts.append("completions (" + ("prompt log-probabilities" if self.prompt_logprobs else
                                           "generated tokens' log-probabilities" if self.completion_top_logprobs
                                           else "no log-probabilities") + ")")
        if self.chat:
            parts.append("chat completions (" + ("top_logprobs" if self.chat_top_logprobs else
                                                "no log-probabilities") + ")")
        return ", ".join(parts) + ("" if self.usage else "; answers without `usage`")


@dataclass(frozen=True)
class ServedModel:
    """A model as a server serves it: its name, the API that scores it, what the server offers for it,
    its identity (what names its weights, harness.plan keys runs by it) and its tokenizer, if any."""

    name: str
    api: str  # "completions" (the harness renders prompts) or "chat" (the server applies its template)
    capabilities: Capabilities
    identity: str
    tokenizer: Path | None = None  # a local folder (or hub id) of its tokenizer; None: none known
    prices: TokenPriceSpec | None = None  # what its tokens cost (its token_prices, else roi's); None: by the hour

    def describe(self) -> str:
        """One line for the report: its name, the API that scored it, what the server offers."""
        api = "chat completions (the server's template)" if self.api == "chat" else "completions"
        return f"'{self.name}' through {api}; the server offers {self.capabilities.describe()}"

    @property
    def letters(self) -> bool:
        """Can read single-token choices from the first answer token's alternatives."""
        c = self.capabilities
        return c.chat_top_logprobs if self.api == "chat" else c.completion_top_logprobs


PROBE_PROMPTS = ("The capital of France is", "Claim: The worker slipped on a wet floor.\nCategory:")
PROBE_TOKENS = 8  # generated at temperature 0 from each probe prompt: a redeployed model answers otherwise


def _choice(body) -> dict:
    choices = body.get("choices") if isinstance(body, dict) else None
    return choices[0] if choices and isinstance(choices[0], dict) else {}


def _probe_api(endpoint: EndpointSpec, path: str, served: str, asked: dict, logprobs: dict,
               refusals: list[str]) -> dict | None:
    """One API's probe, asking for `logprobs`; asked again without them where the model refuses them (a
    400: the API may still answer); None where the server has no such API (404/405/501). Each refusal is
    kept in `refusals` with what the server said."""
    status, body = _request(endpoint, path, {**asked, **logprobs})
    if status == 400:
        refusals.append(f"{path} with logprobs: {status} {server_message(body)}")
        status, body = _request(endpoint, path, asked)
    if status == 200:
        return body
    if status in (404, 405, 501):
        refusals.append(f"{path}: {status} {server_message(body)}")
        return None
    raise HarnessError(f"eval.endpoint: {endpoint.base_url}{path} answered {status} for '{served}': "
                       f"{server_message(body)}")


def probe_server(endpoint: EndpointSpec, served: str, tokenizer=None, *, api: str = "auto", plain: bool = False,
                 tokenizer_ref: Path | None = None) -> ServedModel:
    """What the server offers for `served` (completions with or without the prompt's log-probabilities,
    chat completions, the answer token's alternatives, `usage`), which API scores it (`api`: auto picks
    completions where the harness has the tokenizer, or the prompts are `plain` text, else chat), and its
    identity: what the server says of it and its answers at temperature 0 to fixed probes (and the
    probe's log-probabilities where the server gives them), so that a model redeployed under the same
    name with other weights is keyed, and scored, anew. A tokenizer (loaded) lets the prompt
    log-probabilities be checked against the local tokens."""
    status, body = _request(endpoint, "/models")
    if status != 200 or not isinstance(body, dict):
        raise HarnessError(
            f"eval.endpoint.base_url: {endpoint.base_url}/models answered {status}: {server_message(body)}; an "
            "OpenAI-compatible server lists its models there: is base_url the server's /v1 root (e.g. "
            "http://HOST:PORT/v1)?")
    listed = {m.get("id"): m for m in body.get("data", []) if isinstance(m, dict)}
    if served not in listed:
        raise HarnessError(f"eval.endpoint: the server at {endpoint.base_url} serves no model '{served}' "
                           f"(it serves: {', '.join(sorted(map(str, listed))) or 'none'}); check `served:`")
    refusals: list[str] = []
    ids = tokenizer(PROBE_TEXT, add_special_tokens=False)["input_ids"] if tokenizer is not None else None
    completion = _probe_api(endpoint, "/completions", served, {
        "model": served, "prompt": ids if ids is not None else PROBE_TEXT, "max_tokens": 1, "temperature": 0},
        {"logprobs": 5, "echo": True}, refusals)
    chat = _probe_api(endpoint, "/chat/completions", served, {
        "model": served, "messages": [{"role": "user", "content": PROBE_PROMPTS[0]}], "max_tokens": 1,
        "temperature": 0}, {"logprobs": True, "top_logprobs": 5}, refusals)
    logprobs = (_choice(completion).get("logprobs") or {}) if completion else {}
    tokens_lp = logprobs.get("token_logprobs") or []
    prompt_lp = len(tokens_lp) > 2 and all(v is not None for v in tokens_lp[1:])
    top = logprobs.get("top_logprobs") or []
    caps = Capabilities(
        completions=completion is not None, prompt_logprobs=prompt_lp,
        completion_top_logprobs=bool(top) and isinstance(top[-1], dict) and bool(top[-1]),
        chat=chat is not None, chat_top_logprobs=chat is not None and bool(reply_alternatives(chat)),
        usage=all(isinstance(b.get("usage"), dict) for b in (completion, chat) if b),
        refusals=tuple(refusals))
    if not caps.completions and not caps.chat:
        raise HarnessError(f"eval.endpoint: the server at {endpoint.base_url} answers neither /completions nor "
                           f"/chat/completions for '{served}' ({'; '.join(refusals)}); is base_url its /v1 root?")
    if api == "auto":
        api = "completions" if caps.completions and (tokenizer is not None or plain or not caps.chat) else "chat"
    if api == "completions" and not caps.completions or api == "chat" and not caps.chat:
        said = next((r for r in refusals if r.startswith(f"/{api}")), "")
        raise HarnessError(f"eval.endpoint: '{served}' is to be scored through /{api}, which the server at "
                           f"{endpoint.base_url} does not answer ({said}); set `api:` to "
                           f"{'chat' if api == 'completions' else 'completions'} for it, or leave it auto")
    if prompt_lp and ids is not None and len(tokens_lp) != len(ids) + 1:
        raise HarnessError(
            f"eval.endpoint: '{served}' scored the probe's {len(ids)} tokens as {len(tokens_lp) - 1}: the server "
            "tokenises otherwise than the local tokenizer, so per-token scores would not line up; point the "
            "model's path (or tokenizer) at the served model's own tokenizer")
    answers = _answers(endpoint, served, api)
    # what names the weights: id, root (the base's path), parent (an adapter's base), context length;
    # not `created` or `permission` (ids and times that change on every call)
    identity = {"model": {k: listed[served].get(k) for k in ("id", "root", "parent", "max_model_len", "owned_by")},
                "api": api, "answers": answers,
                "probe": [None if v is None else round(float(v), 3) for v in tokens_lp] if prompt_lp else None}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
    return ServedModel(served, api, caps, digest, tokenizer_ref)


def _answers(endpoint: EndpointSpec, served: str, api: str) -> list[str]:
    """The served model's answers at temperature 0 to the fixed probe prompts (through `api`)."""
    if api == "completions":
        out = _post(endpoint, "/completions", {"model": served, "prompt": list(PROBE_PROMPTS),
                                               "max_tokens": PROBE_TOKENS, "temperature": 0, "seed": 0})
        return [str(c.get("text")) for c in sorted(out.get("choices", []), key=lambda c: c.get("index", 0))]
    return [str((_choice(_post(endpoint, "/chat/completions", {
        "model": served, "messages": [{"role": "user", "content": p}], "max_tokens": PROBE_TOKENS,
        "temperature": 0, "seed": 0})).get("message") or {}).get("content")) for p in PROBE_PROMPTS]


class OpenAIBackend:
    """Served models on one OpenAI-compatible server: the models of one base as its served names, or the
    candidates that live only there (hosted, no local weights)."""

    name = "openai"

    def __init__(self, endpoint: EndpointSpec, served: dict[str, ServedModel], *, max_length: int | None = None,
                 trust_remote_code: bool = False):
        self.endpoint, self._served = endpoint, served
        self._key = api_key(endpoint)
        self._max_length, self._trust_remote_code = max_length, trust_remote_code
        self._lms: dict[str, object] = {}

    def variants(self) -> list[str]:
        return list(self._served)

    def _lm(self, variant: str):
        if variant not in self._lms:
            from harness.backends.openai_lm import ChatEndpointLM, EndpointLM  # lm-eval: only when scoring

            model = self._served[variant]
            args = {"model": model.name, "num_concurrent": self.endpoint.concurrency,
                    "max_retries": self.endpoint.max_retries, "timeout": int(self.endpoint.timeout_s),
                    "max_length": self._max_length or 2048}
            root = self.endpoint.base_url.rstrip("/")
            if model.api == "chat":  # the server renders the messages with its own template
                lm = ChatEndpointLM(base_url=root + "/chat/completions", tokenizer_backend=None, **args)
            elif model.tokenizer is None:  # plain text, as sent; no tokens counted here
                lm = EndpointLM(base_url=root + "/completions", tokenizer_backend=None, tokenized_requests=False,
                                batch_size=self.endpoint.batch_size, **args)
            else:
                from transformers import AutoTokenizer

                # tokens as the hf backend makes them: lm-eval's HFLM keeps the tokenizer's own special
                # tokens (a BOS where it adds one), its API models none unless told
                tok = AutoTokenizer.from_pretrained(str(model.tokenizer), trust_remote_code=self._trust_remote_code)
                bos = tok.bos_token_id is not None and tok("a")["input_ids"][:1] == [tok.bos_token_id]
                lm = EndpointLM(base_url=root + "/completions", tokenizer=str(model.tokenizer),
                                tokenizer_backend="huggingface", batch_size=self.endpoint.batch_size,
                                trust_remote_code=self._trust_remote_code, add_bos_token=bos, **args)
            lm.harness_key, lm.harness_endpoint = self._key, self.endpoint
            lm.harness_priced = model.prices is not None
            self._lms[variant] = lm
        return self._lms[variant]

    @contextmanager
    def activate(self, variant: str, prompt: PromptFormat | None = None, who: str = "", scoring: str = "") -> Iterator:
        if variant not in self._served:
            raise HarnessError(f"variant '{variant}' is not served by this backend (have: {', '.join(self._served)})")
        lm = self._lm(variant)
        lm.harness_prompt, lm.harness_who, lm.harness_scoring = prompt or PromptFormat(), who or variant, scoring
        lm.harness_usage = {"input": 0, "output": 0, "answers": 0, "without": 0}
        yield lm

    def close(self) -> None:
        self._lms.clear()

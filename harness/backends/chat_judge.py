"""A judge behind an OpenAI-compatible chat API (`judge.endpoint`): vLLM's server, llama.cpp's, a hosted
model. No local weights or tokenizer: each judge prompt is one user message to `/v1/chat/completions`,
and the verdict is read from the first reply token's `top_logprobs` over the three labels (what vLLM,
llama.cpp's server and the hosted APIs return); a server that returns none is read from the reply's
text, and every record says which reading it got.

Judged through execute's one loop like the local judge (harness.judge.run_judge): this is the backend
its jobs load, with one variant, the judge itself. The judge's key is its id and what the server says of
it (/v1/models), never the API key, which is read from the configured variable and sent only in the
request's header.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from harness.backends.retry import RETRIED, wait_s
from harness.config import JudgeEndpointSpec
from harness.errors import HarnessError

# what /v1/models says of a model that names it, not the moment asked (vLLM's `created` is the request's
# time, `permission` holds per-request ids)
DESCRIBED = ("id", "object", "owned_by", "root", "parent", "max_model_len")


@dataclass(frozen=True)
class LabelReading:
    """The judge's answer to one prompt."""

    logprobs: tuple[float, float, float]  # of the three labels; NaN where read from the reply's text
    pick: int | None  # the label picked (0, 1, 2); None: the reply names none of them
    reading: str  # "logprobs" (top_logprobs of the first reply token) or "text"
    tokens: int  # prompt and reply tokens, as the server's `usage` counts them (0 where it says not)
    reply: str
    prompt: str = ""  # the prompt as the judge was given it (a local judge's: with its chat markup)


def label_logprobs(top: list[dict], labels: list[str]) -> tuple[float, ...] | None:
    """The labels' log-probabilities from a reply token's alternatives (`top_logprobs` entries:
    {token, logprob}); None when no alternative is a label. A token is a label when it is the label up
    to surrounding whitespace (" A" and "A" are both A: their probabilities add). A label outside the
    alternatives counts at the least likely alternative's log-probability: at most that, and the verdict
    still goes to a label that is among them."""
    floor = min(float(t["logprob"]) for t in top)
    found = [[float(t["logprob"]) for t in top if str(t.get("token", "")).strip() == label] for label in labels]
    if not any(found):
        return None
    return tuple(math.log(sum(math.exp(x) for x in hits)) if hits else floor for hits in found)


def reply_alternatives(out: dict) -> list[dict]:
    """The first reply token's alternatives ({token, logprob}) in a chat completions answer ([] if none)."""
    choices = out.get("choices") if isinstance(out, dict) else None
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    content = (choice.get("logprobs") or {}).get("content") or [{}]
    return content[0].get("top_logprobs") or [] if isinstance(content[0], dict) else []


def label_in_text(reply: str, labels: list[str]) -> int | None:
    """The label a reply names: its first word (punctuation aside), or None."""
    first = re.match(r"\W*([\w-]+)", reply)
    return labels.index(first.group(1)) if first and first.group(1) in labels else None


class ChatJudge:
    """The served judge as a backend of one variant (the judge); `read_labels` asks it."""

    name = "openai-chat"

    def __init__(self, endpoint: JudgeEndpointSpec):
        import requests

        self.endpoint = endpoint
        self.url = endpoint.base_url.rstrip("/")
        key = os.environ.get(endpoint.api_key_env, "") if endpoint.api_key_env else ""
        if endpoint.api_key_env and not key:
            raise HarnessError(f"judge.endpoint.api_key_env: the variable {endpoint.api_key_env} is not set; export "
                               "the judge server's API key in it")
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._local = threading.local()  # a requests.Session per thread: sessions are not thread-safe
        self._sessions: list[requests.Session] = []

    def variants(self) -> list[str]:
        from harness.records import BASE

        return [BASE]

    @contextmanager
    def activate(self, variant: str, prompt=None, who: str = "", scoring: str = "") -> Iterator[ChatJudge]:
        yield self

    def close(self) -> None:
        for session in self._sessions:
            session.close()

    def _session(self):
        import requests

        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
            self._sessions.append(self._local.session)
        return self._local.session

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        """One request, retried on 429, 5xx and a dropped connection (harness.backends.retry); any other
        refusal is an error that quotes the server."""
        import requests

        e = self.endpoint
        for attempt in range(1, e.max_retries + 1):
            r = None
            try:
                r = self._session().request(method, f"{self.url}{path}", json=body, headers=self._headers,
                                          timeout=e.timeout_s)
            except requests.RequestException as err:
                problem = f"{type(err).__name__}: {str(err)[:200]}"
            else:
                if r.ok:
                    return r.json()
                problem = f"HTTP {r.status_code}: {r.text[:300]}"
                if r.status_code not in RETRIED:
                    raise HarnessError(f"judge.endpoint: {self.url}{path} refused the request ({problem})")
            if attempt < e.max_retries:
                time.sleep(wait_s(attempt, None if r is None else r.headers))
        raise HarnessError(f"judge.endpoint: the server at {self.url} stopped answering ({problem}) after "
                           f"{e.max_retries} tries")

    def describe(self) -> dict:
        """What the server says of the judge's model (/v1/models), for its key; refused when it does not
        serve it."""
        served = self._call("GET", "/models").get("data", [])
        for m in served:
            if m.get("id") == self.endpoint.model:
                return {k: m[k] for k in DESCRIBED if k in m}
        names = ", ".join(str(m.get("id")) for m in served) or "nothing"
        raise HarnessError(f"judge.endpoint.model: '{self.endpoint.model}' is not served at {self.url} (it "
                           f"serves: {names})")

    def read_labels(self, texts: list[str], labels: list[str]) -> list[LabelReading]:
        """Each text as one user message; the judge's reading of the three labels, in order."""
        with ThreadPoolExecutor(max_workers=self.endpoint.concurrency) as pool:
            return list(pool.map(lambda t: self._read(t, labels), texts))

    def _read(self, text: str, labels: list[str]) -> LabelReading:
        out = self._call("POST", "/chat/completions", {
            "model": self.endpoint.model, "messages": [{"role": "user", "content": text}], "max_tokens": 1,
            "temperature": 0, "logprobs": True, "top_logprobs": self.endpoint.top_logprobs})
        try:
            choice = out["choices"][0]
            reply = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise HarnessError(f"judge.endpoint: {self.url}/chat/completions answered without a reply: "
                               f"{json.dumps(out)[:300]}") from None
        usage = out.get("usage") or {}
        tokens = int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0)
        top = reply_alternatives(out)
        lps = label_logprobs(top, labels) if top else None
        if lps is not None:
            return LabelReading(lps, max(range(3), key=lps.__getitem__), "logprobs", tokens, reply, text)
        return LabelReading((math.nan,) * 3, label_in_text(reply, labels), "text", tokens, reply, text)
